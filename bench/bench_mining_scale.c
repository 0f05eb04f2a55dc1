/* bench_mining_scale: one rank's share of global mining at a large pool:
 * `anchors` anchors against a pool of N L2-normalised random embeddings
 * (PK labels, K per class), blocked as the trainer does (mine_block_rows).
 * Per miner: wall ms per call (median of reps), ns per anchor x pool row,
 * the workspace and the process's peak resident memory so far.
 * Usage: bench_mining_scale [N anchors D K reps threads budget_mib]
 * (defaults 65536 4096 64 16 3 1 64; budget_mib = the blocking budget of
 * the three block matrices, MINE_BLOCK_FLOATS = 64 MiB by default). Set
 * OPENBLAS_NUM_THREADS=1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "../mining/distance.h"
#include "../mining/pairs.h"
#include "../mining/simloss.h"
#include "../mining/triplet.h"
#include "../nn/blas.h"
#include "../nn/parallel.h"
#include "../nn/util.h"
#include "bench_util.h"

enum { S_HARD, S_SEMI, S_ALL, S_CHARD, S_NCE, S_COUNT };
static const char *sname[] = {"triplet batch_hard", "triplet semi_hard", "triplet batch_all",
                              "contrastive hard", "infonce"};

typedef struct Scale {
    int N, D, a0, a1;
    float *E, *dE, *ws;
    int32_t *labels;
    IndexTriplet *tch;
    IndexPair *pch;
} Scale;

static LossStats run(const Scale *b, int which) {
    int N = b->N, D = b->D, a0 = b->a0, a1 = b->a1;
    memset(b->dE, 0, sizeof(float) * (size_t)N * D);
    switch (which) {
    case S_HARD:
        return triplet_loss(b->dE, b->tch, b->ws, b->E, b->labels, MINE_BATCH_HARD, 0.2f, 0, N, D, a0, a1);
    case S_SEMI:
        return triplet_loss(b->dE, b->tch, b->ws, b->E, b->labels, MINE_SEMI_HARD, 0.2f, 0, N, D, a0, a1);
    case S_ALL:
        return triplet_loss(b->dE, NULL, b->ws, b->E, b->labels, MINE_BATCH_ALL, 0.2f, 0, N, D, a0, a1);
    case S_CHARD:
        return pairs_contrastive_hard(b->dE, b->pch, b->ws, b->E, b->labels, 1.0f, N, D, a0, a1);
    default:
        return simloss_infonce(b->dE, b->ws, b->E, b->labels, 0.1f, 1, N, D, a0, a1);
    }
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, c = *(const double *)y;
    return (a > c) - (a < c);
}

static double peak_mib(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_maxrss / 1024.0; /* KiB on Linux */
}

int main(int argc, char **argv) {
    blas_select_core(argv); /* the OpenBLAS kernels siamese runs with */
    static const char *what[] = {"N", "anchors", "D", "K", "reps", "threads", "budget_mib"};
    static const long lo[] = {2, 1, 1, 2, 1, 1, 1},
                      hi[] = {1 << 22, 1 << 22, 4096, 1 << 20, 1000, 256, 1 << 20};
    long v[] = {65536, 4096, 64, 16, 3, 1, 64};
    for (int i = 1; i < argc && i <= 7; i++)
        if (parse_long(argv[i], lo[i - 1], hi[i - 1], &v[i - 1]) != 0)
            FATAL("%s: want %ld..%ld, got '%s'", what[i - 1], lo[i - 1], hi[i - 1], argv[i]);
    Scale b = {.N = (int)v[0], .D = (int)v[2]};
    int Na = (int)MIN(v[1], v[0]), K = (int)v[3], reps = (int)v[4];
    parallel_init((int)v[5]);
    mine_set_block_floats((size_t)v[6] << 18); /* MiB of floats */
    b.a0 = (b.N - Na) / 2, b.a1 = b.a0 + Na;   /* a rank in the middle of the pool */
    Rng r;
    rng_seed(&r, 1, RNG_TEST, 18);
    size_t N = (size_t)b.N, D = (size_t)b.D;
    b.E = xaligned_floats(N * D);
    b.dE = xaligned_floats(N * D);
    b.labels = xmalloc(sizeof(int32_t) * N);
    bench_unit_embeddings(b.E, b.labels, N, D, (size_t)K, &r);
    size_t wsz = MAX(triplet_workspace_floats(b.N, Na), pairs_workspace_floats(b.N, Na));
    wsz = MAX(wsz, simloss_workspace_floats(b.N, Na));
    b.ws = xaligned_floats(wsz);
    b.tch = xmalloc(sizeof(IndexTriplet) * (size_t)Na * (size_t)(K - 1));
    b.pch = xmalloc(sizeof(IndexPair) * 2 * (size_t)Na);
    printf("N %d, anchors %d, D %d, K %d, threads %d: blocks of %d anchor rows, workspace %.1f MiB "
           "(one block of all anchors: %.1f MiB)\n",
           b.N, Na, b.D, K, parallel_threads(), mine_block_rows(b.N, Na), 4.0 * (double)wsz / 1048576.0,
           12.0 * (double)Na * (double)N / 1048576.0);
    printf("%-20s %10s %10s %14s %12s %12s\n", "miner", "ms/call", "min ms", "ns/(anchor*row)", "count",
           "peak MiB");
    for (int which = 0; which < S_COUNT; which++) {
        double *ts = xmalloc(sizeof(double) * (size_t)reps);
        LossStats st = {0};
        for (int q = 0; q < reps; q++) {
            double t0 = now_seconds();
            st = run(&b, which);
            ts[q] = now_seconds() - t0;
        }
        qsort(ts, (size_t)reps, sizeof *ts, cmp_double);
        double med = ts[reps / 2];
        printf("%-20s %10.1f %10.1f %14.3f %12.0f %12.1f\n", sname[which], 1e3 * med, 1e3 * ts[0],
               1e9 * med / ((double)Na * (double)N), st.count, peak_mib());
        free(ts);
    }
    free(b.E), free(b.dE), free(b.ws), free(b.labels), free(b.tch), free(b.pch);
    parallel_shutdown();
    return 0;
}
