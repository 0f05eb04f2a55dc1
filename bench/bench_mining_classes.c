/* bench_mining_classes: one rank's share of a training step's mining, exact
 * global mining against [mining] pool = classes, as the global batch (the
 * pool) grows: `anchors` anchors (one rank's slice, the middle of the
 * batch) of a PK batch of N = P x K L2-normalised random embeddings.
 * exact: the triplet loss of the anchors against all N rows (what the
 * trainer runs after its allgather). classes: the fixed-point sums of the
 * slice, the m nearest classes of each anchor class, the needed rows copied
 * out as the alltoallv would deliver them, the loss class by class
 * (mining/classes.h). Per pool: wall ms per step (median of reps), ns per
 * anchor x row mined, and what a rank receives per step: exact, the other
 * ranks' N - anchors rows and the N labels (allgather); classes, the rows
 * of the classes its anchors need beyond its own, the P x D int64 sums
 * (allreduce) and the N labels. The gradients go back by the same volume
 * of rows (exact: a reduce-scatter of N rows). The allreduce's sum over
 * all rows is computed but not timed (each rank sums only its slice).
 * Usage: bench_mining_classes [anchors D K m reps threads miner pools]
 * (defaults 256 64 4 8 5 1 batch_all 1024,4096,16384,65536; miner
 * batch_all|batch_hard|semi_hard). Set OPENBLAS_NUM_THREADS=1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../mining/classes.h"
#include "../mining/distance.h"
#include "../mining/triplet.h"
#include "../nn/blas.h"
#include "../nn/parallel.h"
#include "../nn/util.h"
#include "bench_util.h"

typedef struct Trip {
    MiningStrategy miner;
    int D;
} Trip;

static LossStats trip_fn(void *ctx, float *dE, float *ws, const float *E, const int32_t *labels, int N,
                         int a0, int a1) {
    const Trip *t = ctx;
    return triplet_loss(dE, NULL, ws, E, labels, t->miner, 0.2f, 0, N, t->D, a0, a1);
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, c = *(const double *)y;
    return (a > c) - (a < c);
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return t[n / 2];
}

int main(int argc, char **argv) {
    blas_select_core(argv);
    static const char *what[] = {"anchors", "D", "K", "m", "reps", "threads"};
    static const long lo[] = {1, 1, 2, 1, 1, 1}, hi[] = {1 << 20, 4096, 1 << 16, 1 << 16, 1000, 256};
    long v[] = {256, 64, 4, 8, 5, 1};
    for (int i = 1; i < argc && i <= 6; i++)
        if (parse_long(argv[i], lo[i - 1], hi[i - 1], &v[i - 1]) != 0)
            FATAL("%s: want %ld..%ld, got '%s'", what[i - 1], lo[i - 1], hi[i - 1], argv[i]);
    const char *mn = argc > 7 ? argv[7] : "batch_all", *pools = argc > 8 ? argv[8] : "1024,4096,16384,65536";
    MiningStrategy miner = !strcmp(mn, "batch_all")    ? MINE_BATCH_ALL
                           : !strcmp(mn, "batch_hard") ? MINE_BATCH_HARD
                           : !strcmp(mn, "semi_hard")  ? MINE_SEMI_HARD
                                                       : (MiningStrategy)-1;
    if ((int)miner < 0) FATAL("miner: want batch_all, batch_hard or semi_hard, got '%s'", mn);
    int Na = (int)v[0], D = (int)v[1], K = (int)v[2], m = (int)v[3], reps = (int)v[4];
    parallel_init((int)v[5]);
    Trip t = {miner, D};
    printf("anchors %d, D %d, K %d, m %d, %s, threads %d\n", Na, D, K, m, mn, parallel_threads());
    printf("%8s %6s %-8s %10s %14s %10s %10s\n", "pool N", "P", "mode", "ms/step", "ns/(anchor*row)",
           "rows recv", "MiB recv");
    for (const char *s = pools; *s;) {
        long Nl;
        char num[32];
        size_t len = strcspn(s, ",");
        snprintf(num, sizeof num, "%.*s", (int)len, s);
        s += len + (s[len] == ',');
        if (parse_long(num, 2, 1 << 24, &Nl) != 0 || Nl % K || Nl < Na)
            FATAL("pool '%s': want a multiple of K >= anchors", num);
        int N = (int)Nl, P = N / K, a0 = (N - Na) / 2 / K * K + K / 2,
            a1 = a0 + Na; /* starts inside a class */
        if (a1 > N) a0 = N - Na, a1 = N;
        Rng r;
        rng_seed(&r, 1, RNG_TEST, 18);
        float *E = xaligned_floats((size_t)N * D), *dE = xaligned_floats((size_t)N * D);
        int32_t *labels = xmalloc(sizeof(int32_t) * (size_t)N);
        bench_unit_embeddings(E, labels, (size_t)N, (size_t)D, (size_t)K, &r);
        double *ts = xmalloc(sizeof(double) * (size_t)reps);
        /* exact */
        float *ws = xaligned_floats(triplet_workspace_floats(N, Na));
        for (int q = 0; q < reps; q++) {
            double t0 = now_seconds();
            memset(dE, 0, sizeof(float) * (size_t)N * D);
            triplet_loss(dE, NULL, ws, E, labels, miner, 0.2f, 0, N, D, a0, a1);
            ts[q] = now_seconds() - t0;
        }
        double med = median(ts, reps), row = 4.0 * D / 1048576.0;
        printf("%8d %6d %-8s %10.2f %14.3f %10d %10.2f\n", N, P, "exact", 1e3 * med,
               1e9 * med / ((double)Na * N), N - Na, (N - Na) * row + 4.0 * N / 1048576.0);
        free(ws);
        /* classes */
        ClassesPlan p;
        int Nc = (MIN(m, P - 1) + 1) * K;
        classes_plan_init(&p, P, K, D, m, Na, triplet_workspace_floats(Nc, K));
        for (int b = 0; b < P; b++) p.label[b] = labels[(size_t)b * K];
        int64_t *own = xcalloc((size_t)P * D, sizeof *own);
        float *U = xaligned_floats((size_t)p.max_union * K * D),
              *dU = xaligned_floats((size_t)p.max_union * K * D);
        for (int q = 0; q < reps; q++) {
            double t0 = now_seconds();
            p.bits = classes_fixed_bits(1.0, K);
            memset(own, 0, sizeof *own * (size_t)P * D);
            classes_sums(own, E + (size_t)a0 * D, a0, Na, K, D, p.bits); /* this rank's share of the sums */
            double sums = now_seconds() - t0;
            memset(p.S, 0, sizeof *p.S * (size_t)P * D); /* what the allreduce returns: not timed */
            classes_sums(p.S, E, 0, N, K, D, p.bits);
            double t1 = now_seconds();
            classes_plan_blocks(&p, a0, a1);
            size_t blk = (size_t)K * D;
            for (int j = 0; j < p.nu; j++)
                memcpy(U + j * blk, E + (size_t)p.ublocks[j] * blk, blk * sizeof *U);
            memset(dU, 0, sizeof(float) * (size_t)p.nu * blk);
            classes_plan_loss(&p, dU, U, trip_fn, &t);
            ts[q] = sums + (now_seconds() - t1);
        }
        med = median(ts, reps);
        int rows = p.nu * K - Na;
        double recv = rows * row + 8.0 * P * D / 1048576.0 + 4.0 * N / 1048576.0;
        printf("%8d %6d %-8s %10.2f %14.3f %10d %10.2f   (%d classes needed, %d rows per anchor's pool)\n", N,
               P, "classes", 1e3 * med, 1e9 * med / ((double)Na * Nc), rows, recv, p.nu, Nc);
        classes_plan_free(&p);
        free(own), free(U), free(dU), free(E), free(dE), free(labels), free(ts);
    }
    parallel_shutdown();
    return 0;
}
