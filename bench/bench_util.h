/* bench_util: helpers the benchmarks share: this thread's CPU time (steadier
 * than the wall clock on a shared machine), removing a temporary tree, and
 * random unit embeddings in classes of K rows. Header-only. */
#ifndef SIAMESE_BENCH_UTIL_H
#define SIAMESE_BENCH_UTIL_H

#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "../nn/util.h"

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

/* E (N, D): rows of normal draws scaled to unit length; labels[i] = i / K. */
static inline void bench_unit_embeddings(float *E, int32_t *labels, size_t N, size_t D, size_t K, Rng *r) {
    for (size_t i = 0; i < N; i++) {
        double n2 = 0;
        for (size_t k = 0; k < D; k++) {
            E[i * D + k] = (float)rng_normal(r);
            n2 += (double)E[i * D + k] * E[i * D + k];
        }
        for (size_t k = 0; k < D; k++) E[i * D + k] = (float)(E[i * D + k] / sqrt(n2));
        labels[i] = (int32_t)(i / K);
    }
}

#endif
