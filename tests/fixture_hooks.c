/* fixture_hooks: the seams the test build installs, linked into every test
 * program and into build/siamese-test, never into the siamese users run.
 * From the environment, read when used:
 *   SIAMESE_FAULT_WRITE_LIMIT=N  durable writes (io/atomic_file: checkpoints,
 *                                .npy, safetensors) fail with ENOSPC once N
 *                                bytes are written, a partial write first;
 *   SIAMESE_FAULT_FSYNC=1        their fsync fails with EIO;
 *   SIAMESE_TEST_KILL_STEP=N     rank SIAMESE_TEST_RANK (default 0) of a
 *                                training run dies by SIGKILL right after
 *                                step N; SIAMESE_TEST_SIGNAL_STEP=N raises
 *                                SIGUSR1 there instead. */
#include <signal.h>
#include <stdlib.h>

#include "../dist/train.h"
#include "../io/atomic_file.h"

/* 0 unset, 1 set (value in *v), -1 not a number. */
static int env_u64(const char *name, uint64_t *v) {
    const char *s = getenv(name);
    if (!s || !*s) return 0;
    return parse_u64(s, v) == 0 ? 1 : -1;
}

static int faults_from_env(AtomicFaults *f, Err *e) {
    uint64_t fsync_fails = 0;
    if (env_u64("SIAMESE_FAULT_WRITE_LIMIT", &f->write_limit) < 0 ||
        env_u64("SIAMESE_FAULT_FSYNC", &fsync_fails) < 0)
        return err_set(e, "SIAMESE_FAULT_WRITE_LIMIT / SIAMESE_FAULT_FSYNC must be numbers (test-only)");
    f->fsync_fails = fsync_fails != 0;
    return 0;
}

static void step_from_env(int rank, uint64_t done) {
    uint64_t kill_step, signal_step, hook_rank = 0;
    env_u64("SIAMESE_TEST_RANK", &hook_rank);
    if ((uint64_t)rank != hook_rank) return;
    if (env_u64("SIAMESE_TEST_KILL_STEP", &kill_step) == 1 && done == kill_step) raise(SIGKILL);
    if (env_u64("SIAMESE_TEST_SIGNAL_STEP", &signal_step) == 1 && done == signal_step) raise(SIGUSR1);
}

__attribute__((constructor)) static void fixture_hooks_install(void) {
    atomic_file_faults = faults_from_env;
    train_step_hook = step_from_env;
}
