/* bench_mining: time per call of every miner and loss of mining/ on a PK
 * batch of L2-normalised random embeddings (D = 64): P = 8 x K = 32 (N = 256,
 * the triplet-batchall recipe) and N = 1024 (P = 32 x K = 32), once with all
 * anchors (one process) and once with a quarter of them (one of 4 ranks).
 * Usage: bench_mining [reps]  (set OPENBLAS_NUM_THREADS=1). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../mining/distance.h"
#include "../mining/pairs.h"
#include "../mining/simloss.h"
#include "../mining/triplet.h"
#include "../nn/blas.h"
#include "../nn/util.h"
#include "bench_util.h"

enum { B_ALL, B_ALL_SOFT, B_HARD, B_SEMI, B_TLIST, B_CALL, B_CHARD, B_KHARD, B_KLIST, B_NCE, B_MS, B_COUNT };
static const char *bname[] = {"triplet batch_all",  "triplet batch_all soft",
                              "triplet batch_hard", "triplet semi_hard",
                              "triplet list (N/3)", "contrastive all",
                              "contrastive hard",   "koch hard",
                              "koch list (N/2)",    "infonce",
                              "multi_similarity"};

typedef struct Bench {
    int N, D, a0, a1;
    float *E, *dE, *ws, *w, *dw, db;
    int32_t *labels;
    IndexTriplet *tl, *tch;
    IndexPair *pl, *pch;
} Bench;

static LossStats run(Bench *b, int which) {
    int N = b->N, D = b->D, a0 = b->a0, a1 = b->a1;
    switch (which) {
    case B_ALL:
        return triplet_loss(b->dE, NULL, b->ws, b->E, b->labels, MINE_BATCH_ALL, 0.2f, 0, N, D, a0, a1);
    case B_ALL_SOFT:
        return triplet_loss(b->dE, NULL, b->ws, b->E, b->labels, MINE_BATCH_ALL, 0.2f, 1, N, D, a0, a1);
    case B_HARD:
        return triplet_loss(b->dE, b->tch, b->ws, b->E, b->labels, MINE_BATCH_HARD, 0.2f, 0, N, D, a0, a1);
    case B_SEMI:
        return triplet_loss(b->dE, b->tch, b->ws, b->E, b->labels, MINE_SEMI_HARD, 0.2f, 0, N, D, a0, a1);
    case B_TLIST:
        return triplet_list_loss(b->dE, b->E, b->tl, 0.2f, 0, N, D, a0 / 3, a1 / 3);
    case B_CALL:
        return pairs_contrastive_all(b->dE, b->ws, b->E, b->labels, 1.0f, N, D, a0, a1);
    case B_CHARD:
        return pairs_contrastive_hard(b->dE, b->pch, b->ws, b->E, b->labels, 1.0f, N, D, a0, a1);
    case B_KHARD:
        return pairs_koch_hard(b->dE, b->dw, &b->db, b->pch, b->ws, b->E, b->labels, b->w, 0.1f, N, D, a0,
                               a1);
    case B_NCE:
        return simloss_infonce(b->dE, b->ws, b->E, b->labels, 0.1f, 1, N, D, a0, a1);
    case B_MS:
        return simloss_multi_similarity(b->dE, b->ws, b->E, b->labels, 2.0f, 50.0f, 0.5f, 0.1f, 1, N, D, a0,
                                        a1);
    default:
        return pairs_koch(b->dE, b->dw, &b->db, b->E, b->pl, b->w, 0.1f, N, D, a0 / 2, a1 / 2);
    }
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, c = *(const double *)y;
    return (a > c) - (a < c);
}

int main(int argc, char **argv) {
    blas_select_core(argv); /* the OpenBLAS kernels siamese runs with */
    long reps = 20;
    if (argc > 1 && parse_long(argv[1], 1, 100000, &reps) != 0)
        FATAL("reps: want 1..100000, got '%s'", argv[1]);
    Rng r;
    rng_seed(&r, 1, RNG_TEST, 99);
    int sizes[2][2] = {{8, 32}, {32, 32}};
    printf("%-24s %6s %6s %10s %10s %12s\n", "loss", "N", "anchors", "ms/call", "min ms", "count");
    for (int s = 0; s < 2; s++) {
        Bench b = {0};
        int P = sizes[s][0], K = sizes[s][1], N = P * K, D = 64;
        b.N = N;
        b.D = D;
        b.E = xaligned_floats((size_t)N * D);
        b.dE = xaligned_floats((size_t)N * D);
        size_t wsz = triplet_workspace_floats(N, N);
        if (pairs_workspace_floats(N, N) > wsz) wsz = pairs_workspace_floats(N, N);
        if (simloss_workspace_floats(N, N) > wsz) wsz = simloss_workspace_floats(N, N);
        b.ws = xaligned_floats(wsz);
        b.w = xaligned_floats(D);
        b.dw = xaligned_floats(D);
        b.labels = xmalloc(sizeof(int32_t) * N);
        b.tl = xmalloc(sizeof(IndexTriplet) * N);
        b.tch = xmalloc(sizeof(IndexTriplet) * triplet_chosen_capacity(MINE_SEMI_HARD, N, N));
        b.pl = xmalloc(sizeof(IndexPair) * N);
        b.pch = xmalloc(sizeof(IndexPair) * 2 * N);
        bench_unit_embeddings(b.E, b.labels, (size_t)N, (size_t)D, (size_t)K, &r);
        for (int k = 0; k < D; k++) b.w[k] = (float)rng_normal(&r);
        triplet_list_thirds(b.tl, 0, N / 3);
        pairs_list_halves(b.pl, b.labels, 0, N / 2);
        for (int part = 0; part < 2; part++) {
            b.a0 = 0;
            b.a1 = part ? N / 4 : N;
            for (int which = 0; which < B_COUNT; which++) {
                double *ts = xmalloc(sizeof(double) * (size_t)reps);
                LossStats st = run(&b, which); /* warm-up */
                for (long q = 0; q < reps; q++) {
                    double t0 = now_seconds();
                    st = run(&b, which);
                    ts[q] = now_seconds() - t0;
                }
                qsort(ts, (size_t)reps, sizeof *ts, cmp_double);
                printf("%-24s %6d %6d %10.3f %10.3f %12.0f\n", bname[which], N, b.a1 - b.a0,
                       1e3 * ts[reps / 2], 1e3 * ts[0], st.count);
                free(ts);
            }
        }
        free(b.E);
        free(b.dE);
        free(b.ws);
        free(b.w);
        free(b.dw);
        free(b.labels);
        free(b.tl);
        free(b.tch);
        free(b.pl);
        free(b.pch);
    }
    return 0;
}
