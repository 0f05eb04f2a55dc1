/* test_watchdog: the limits of dist/watchdog.c in one process (the MPI
 * side is tests/e2e_watchdog.sh): a step may take max(timeout, 10 x the
 * median step so far), a checkpoint (or any phase outside the steps) the
 * timeout itself; past it the process ends with exit status 76 and one line
 * naming the phase; timeout 0 starts nothing. Each case runs in a child
 * process (the watchdog ends it), with sleeps as the work. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../dist/watchdog.h"
#include "test.h"

static void nap(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts)) continue;
}

/* n steps of `each` seconds (their time is what the median sees). */
static void steps(uint64_t first, int n, double each) {
    for (int i = 0; i < n; i++) {
        watchdog_step(first + (uint64_t)i);
        watchdog_phase(WD_FORWARD);
        nap(each);
        watchdog_step_done();
    }
}

typedef void (*Case)(void);

/* Runs c in a child with stderr to a pipe: its exit status, its stderr in
 * err, the seconds it ran in *secs. */
static int run(Case c, char *err, size_t cap, double *secs) {
    int fd[2];
    ASSERT(pipe(fd) == 0);
    double t0 = now_seconds();
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 2);
        c();
        _exit(0);
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t k;
    while (n + 1 < cap && (k = read(fd[0], err + n, cap - 1 - n)) > 0) n += (size_t)k;
    err[n] = 0;
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    *secs = now_seconds() - t0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Steps of 20 ms, then one whose data never comes: limit 0.3 s. */
static void case_hang(void) {
    Err e;
    ASSERT(watchdog_start(0.3, &e) == 0);
    steps(0, 5, 0.02);
    watchdog_step(5);
    nap(20);
}

/* Steps of 100 ms (step limit 10 x 0.1 = 1 s > timeout 0.3 s): a step of
 * 0.5 s passes; a checkpoint gets the timeout itself and ends the run. */
static void case_checkpoint(void) {
    Err e;
    ASSERT(watchdog_start(0.3, &e) == 0);
    steps(0, 7, 0.1);
    steps(7, 1, 0.5);
    fprintf(stderr, "slow step passed, limit %.2f\n", watchdog_step_limit());
    watchdog_phase(WD_CHECKPOINT);
    nap(20);
}

/* Steps of 20 ms (limit: the timeout, 0.5 s), then the process is stopped
 * 3 s inside step 5 (SIGSTOP; a grandchild continues it) and the step goes on
 * 0.3 s: the stop is no stall, the run goes on. */
static void case_stopped(void) {
    Err e;
    ASSERT(watchdog_start(0.5, &e) == 0);
    steps(0, 5, 0.02);
    watchdog_step(5);
    watchdog_phase(WD_FORWARD);
    pid_t me = getpid();
    if (fork() == 0) {
        nap(3);
        kill(me, SIGCONT);
        _exit(0);
    }
    raise(SIGSTOP);
    nap(0.3);
    watchdog_step_done();
    steps(6, 2, 0.02);
    fprintf(stderr, "went on\n");
    watchdog_stop();
}

/* Timeout 0: nothing watches. */
static void case_off(void) {
    Err e;
    ASSERT(watchdog_start(0, &e) == 0);
    steps(0, 2, 0.01);
    watchdog_step(2);
    nap(0.6);
}

int main(void) {
    /* The limit follows the median step: steps of 50 ms, timeout 0.2 s. */
    Err e;
    CHECK(watchdog_start(0.2, &e) == 0, "start: %s", e.msg);
    CHECK_CLOSE(watchdog_step_limit(), 0.2, 1e-12, "no step yet: the timeout");
    steps(0, 9, 0.05);
    double lim = watchdog_step_limit();
    CHECK(lim > 0.42 && lim < 0.7, "10 x the median of 50 ms steps: %.3f s", lim);
    watchdog_stop();

    char err[4096];
    double secs;
    int rc = run(case_hang, err, sizeof err, &secs);
    CHECK(rc == WATCHDOG_EXIT, "a hung step ends the run with %d: %d", WATCHDOG_EXIT, rc);
    CHECK(strstr(err, "the run stopped making progress: step 6 has lasted") && strstr(err, "(now in data)") &&
              strstr(err, "limit of 0.3 s") && strstr(err, "exit status 76") &&
              !strchr(strchr(err, '\n') + 1, '\n'),
          "one line naming step 6 and its phase: %s", err);
    CHECK(secs > 0.3 && secs < 10, "it fires after the limit, not much later: %.2f s", secs);

    rc = run(case_checkpoint, err, sizeof err, &secs);
    CHECK(rc == WATCHDOG_EXIT && strstr(err, "slow step passed, limit 1.") &&
              strstr(err, "the checkpoint has lasted") && strstr(err, "limit of 0.3 s ([dist] timeout)"),
          "a 0.5 s step under a 1 s step limit passes, a checkpoint past 0.3 s does not: exit %d, %s", rc,
          err);

    rc = run(case_stopped, err, sizeof err, &secs);
    CHECK(rc == 0 && !strcmp(err, "went on\n") && secs > 3,
          "a process stopped 3 s inside a step (limit 0.5 s), then continued, goes on: exit %d after %.1f s, "
          "%s",
          rc, secs, err);

    rc = run(case_off, err, sizeof err, &secs);
    CHECK(rc == 0 && !err[0], "timeout 0: no watchdog: exit %d, %s", rc, err);
    return test_finish();
}
