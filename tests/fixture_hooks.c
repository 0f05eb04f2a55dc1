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
 *                                SIGUSR1 there instead;
 *   SIAMESE_TEST_STOP_STEP=N     that rank stops itself (SIGSTOP) there;
 *   SIAMESE_TEST_HANG_STEP=N     its step N waits forever for its data (an
 *                                I/O that never returns);
 *   SIAMESE_TEST_ONCE=FILE       the stop and hang fire only while FILE does
 *                                not exist, and create it (a requeued job
 *                                then runs through). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

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

/* 1 the first time (SIAMESE_TEST_ONCE's file did not exist; now it does)
 * or always without SIAMESE_TEST_ONCE. */
static int once(void) {
    const char *f = getenv("SIAMESE_TEST_ONCE");
    if (!f) return 1;
    FILE *m = fopen(f, "wx"); /* fails if it exists */
    if (!m) return 0;
    fclose(m);
    return 1;
}

static int at(const char *name, uint64_t step) {
    uint64_t n;
    return env_u64(name, &n) == 1 && n == step;
}

static void step_from_env(int rank, uint64_t done, int after) {
    uint64_t hook_rank = 0;
    env_u64("SIAMESE_TEST_RANK", &hook_rank);
    if ((uint64_t)rank != hook_rank) return;
    if (!after) {
        if (at("SIAMESE_TEST_HANG_STEP", done) && once())
            for (;;) pause(); /* the data never comes */
        return;
    }
    if (at("SIAMESE_TEST_KILL_STEP", done)) raise(SIGKILL);
    if (at("SIAMESE_TEST_SIGNAL_STEP", done)) raise(SIGUSR1);
    if (at("SIAMESE_TEST_STOP_STEP", done) && once()) raise(SIGSTOP);
}

__attribute__((constructor)) static void fixture_hooks_install(void) {
    atomic_file_faults = faults_from_env;
    train_step_hook = step_from_env;
}
