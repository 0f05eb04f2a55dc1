/* bench_util: helpers the benchmarks share: this thread's CPU time (steadier
 * than the wall clock on a shared machine) and removing a temporary tree.
 * Header-only. */
#ifndef SIAMESE_BENCH_UTIL_H
#define SIAMESE_BENCH_UTIL_H

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

static inline double bench_cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline int bench_rm_entry_(const char *p, const struct stat *st, int flag, struct FTW *f) {
    (void)st, (void)flag, (void)f;
    return remove(p);
}

/* Removes path and everything below it (links not followed). */
static inline int bench_rm_tree(const char *path) {
    return nftw(path, bench_rm_entry_, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
