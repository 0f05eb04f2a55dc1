/* Tests of blocked mining (mine_block_rows in mining/distance.h): every miner
 * and loss of mining/ with its anchors cut into many blocks (a small budget)
 * against the same call in one block (the unblocked path): same counts and
 * chosen terms, loss and gradients to float rounding (check_same says
 * why); bit-identical for 1 and 3 threads. Then one rank's 4,096 anchors against a
 * pool of 65,536 synthetic embeddings in bounded memory: batch-hard's choices
 * against a naive double search on a subset of anchors, its loss and whole
 * gradient against a naive double evaluation of its chosen triplets, and
 * blocked against one block on the first 200 anchors (batch-hard, batch-all). */
#include <stdlib.h>
#include <string.h>

#include "../mining/distance.h"
#include "../mining/pairs.h"
#include "../mining/simloss.h"
#include "../mining/triplet.h"
#include "../nn/parallel.h"
#include "../nn/util.h"
#include "fixture_num.h"
#include "test.h"

/* ---- every mode, small: blocked against one block ------------------------ */

enum {
    M_ALL,
    M_ALL_SOFT,
    M_HARD,
    M_HARD_SOFT,
    M_SEMI,
    M_SEMI_SOFT,
    M_CALL,
    M_CHARD,
    M_KHARD,
    M_NCE,
    M_NCE_SYM,
    M_MS,
    M_MS_MINE,
    M_COUNT
};
static const char *mname[] = {"batch_all", "batch_all soft", "batch_hard",      "batch_hard soft",
                              "semi_hard", "semi_hard soft", "contrastive all", "contrastive hard",
                              "koch hard", "infonce",        "infonce sym",     "multi_similarity",
                              "ms mined"};
/* Sparse modes: each chosen term's pairs go straight into dE in row order;
 * dense ones go through G^T A (the sum over anchors split into blocks). */
static const int sparse[] = {0, 0, 1, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0};

/* Blocked against one block: OpenBLAS's sgemm rounds a dot product of the
 * distance (similarity) matrix according to the row's place in its register
 * tiles, which depends on the call's row count: a distance may differ in its
 * last bit, and a choice only where two candidates are that close (never
 * on these random data). Hence: same counts and choices, loss and dE to
 * float rounding. */
static void check_same(const LossStats *a, const LossStats *b, const char *what) {
    CHECK(a->count > 0 && a->count == b->count && a->active == b->active && a->candidates == b->candidates,
          "%s: same counts %g/%g %ld/%ld", what, a->count, b->count, a->active, b->active);
    CHECK(test_close(a->loss_sum, b->loss_sum, 1e-6) && test_close(a->hardness_sum, b->hardness_sum, 1e-6),
          "%s: loss %.17g vs %.17g, hardness %.17g vs %.17g", what, a->loss_sum, b->loss_sum, a->hardness_sum,
          b->hardness_sum);
}

typedef struct Run {
    LossStats st;
    float *dE, *dw, db;
    IndexTriplet *tch;
    IndexPair *pch;
} Run;

static void run_mode(Run *o, int mode, float *ws, const float *E, const int32_t *lab, const float *hw, int N,
                     int D, int a0, int a1) {
    memset(o->dE, 0, sizeof(float) * (size_t)N * D);
    memset(o->dw, 0, sizeof(float) * (size_t)D);
    o->db = 0.25f;
    static const MiningStrategy tm[] = {MINE_BATCH_ALL, MINE_BATCH_HARD, MINE_SEMI_HARD};
    if (mode <= M_SEMI_SOFT) {
        MiningStrategy s = tm[mode / 2];
        o->st = triplet_loss(o->dE, s == MINE_BATCH_ALL ? NULL : o->tch, ws, E, lab, s, 0.3f, mode % 2, N, D,
                             a0, a1);
    } else if (mode == M_CALL) {
        o->st = pairs_contrastive_all(o->dE, ws, E, lab, 1.0f, N, D, a0, a1);
    } else if (mode == M_CHARD) {
        o->st = pairs_contrastive_hard(o->dE, o->pch, ws, E, lab, 1.0f, N, D, a0, a1);
    } else if (mode == M_KHARD) {
        o->st = pairs_koch_hard(o->dE, o->dw, &o->db, o->pch, ws, E, lab, hw, 0.1f, N, D, a0, a1);
    } else if (mode == M_NCE || mode == M_NCE_SYM) {
        o->st = simloss_infonce(o->dE, ws, E, lab, 0.1f, mode == M_NCE_SYM, N, D, a0, a1);
    } else {
        o->st = simloss_multi_similarity(o->dE, ws, E, lab, 2.0f, 40.0f, 0.5f, 0.1f, mode == M_MS_MINE, N, D,
                                         a0, a1);
    }
}

static size_t ws_floats(int N, int Na) {
    size_t n = triplet_workspace_floats(N, Na);
    n = MAX(n, pairs_workspace_floats(N, Na));
    return MAX(n, simloss_workspace_floats(N, Na));
}

static void run_alloc(Run *o, int N, int D) {
    o->dE = xaligned_floats((size_t)N * D);
    o->dw = xaligned_floats((size_t)D);
    o->tch = xcalloc((size_t)N * N, sizeof *o->tch);
    o->pch = xcalloc((size_t)2 * N, sizeof *o->pch);
}

static void run_free(Run *o) { free(o->dE), free(o->dw), free(o->tch), free(o->pch); }

static void test_modes(Rng *r) {
    enum { N = 300, D = 16 };
    int a0 = 7, a1 = 293; /* 286 anchors: 18 blocks of 16, the last of 14 */
    float *E = fixture_rand_floats(r, (size_t)N * D, -1, 1), *hw = fixture_rand_floats(r, D, -1, 1);
    int32_t lab[N];
    for (int i = 0; i < N; i++) lab[i] = (int32_t)rng_below(r, 23);
    Run one, blk, thr;
    run_alloc(&one, N, D), run_alloc(&blk, N, D), run_alloc(&thr, N, D);
    CHECK(mine_block_rows(N, a1 - a0) == a1 - a0, "default budget: one block of %d", a1 - a0);
    parallel_init(3); /* workspaces sized for 3 threads serve 1 too */
    float *ws1 = xaligned_floats(ws_floats(N, a1 - a0));
    size_t old = mine_set_block_floats((size_t)3 * N * 16 + 100);
    CHECK(mine_block_rows(N, a1 - a0) == 16, "small budget: blocks of 16, got %d",
          mine_block_rows(N, a1 - a0));
    CHECK(triplet_workspace_floats(N, a1 - a0) <
              (size_t)3 * N * 16 + (size_t)(3 * parallel_threads() + 2) * N + 1024,
          "blocked workspace %zu floats holds one block", triplet_workspace_floats(N, a1 - a0));
    float *wsb = xaligned_floats(ws_floats(N, a1 - a0));
    parallel_init(1);
    for (int mode = 0; mode < M_COUNT; mode++) {
        mine_set_block_floats(old);
        run_mode(&one, mode, ws1, E, lab, hw, N, D, a0, a1);
        mine_set_block_floats((size_t)3 * N * 16 + 100);
        run_mode(&blk, mode, wsb, E, lab, hw, N, D, a0, a1);
        parallel_init(3);
        run_mode(&thr, mode, wsb, E, lab, hw, N, D, a0, a1);
        parallel_init(1);
        const char *mn = mname[mode];
        check_same(&one.st, &blk.st, mn);
        size_t nb = sizeof(float) * (size_t)N * D;
        CHECK(memcmp(blk.dE, thr.dE, nb) == 0 && memcmp(&blk.st, &thr.st, sizeof blk.st) == 0,
              "%s: blocked, 1 thread = 3 threads bit for bit", mn);
        double *g = malloc(sizeof(double) * (size_t)N * D);
        fixture_to_double(g, one.dE, N * D);
        double err = fixture_grad_err(blk.dE, g, N * D);
        CHECK(err < 1e-5, "%s: dE to rounding, rel err %g", mn, err);
        if (sparse[mode]) {
            fixture_to_double(g, one.dw, D);
            CHECK(fixture_grad_err(blk.dw, g, D) < 1e-5 && test_close(one.db, blk.db, 1e-5), "%s: dw, db",
                  mn);
            size_t nc = (size_t)one.st.count;
            CHECK(mode >= M_CHARD ? memcmp(one.pch, blk.pch, nc * sizeof *one.pch) == 0
                                  : memcmp(one.tch, blk.tch, nc * sizeof *one.tch) == 0,
                  "%s: same chosen terms", mn);
        }
        free(g);
    }
    mine_set_block_floats(old);
    run_free(&one), run_free(&blk), run_free(&thr);
    free(ws1), free(wsb), free(E), free(hw);
}

/* ---- one rank of a 65,536 pool: 4,096 anchors in bounded memory ----------- */

enum { BN = 65536, BD = 16, BK = 16, BA0 = 8192, BNA = 4096 };

static void normalise_rows(float *E, int N, int D) {
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int k = 0; k < D; k++) s += (double)E[(size_t)i * D + k] * E[(size_t)i * D + k];
        for (int k = 0; k < D; k++) E[(size_t)i * D + k] = (float)(E[(size_t)i * D + k] / sqrt(s));
    }
}

static double row_dist(const float *E, int i, int j) {
    double q = 0;
    for (int k = 0; k < BD; k++) {
        double u = (double)E[(size_t)i * BD + k] - E[(size_t)j * BD + k];
        q += u * u;
    }
    return sqrt(q);
}

static void test_scale(Rng *r) {
    float *E = fixture_rand_floats(r, (size_t)BN * BD, -1, 1);
    normalise_rows(E, BN, BD);
    int32_t *lab = xcalloc(BN, sizeof *lab);
    for (int i = 0; i < BN; i++) lab[i] = (int32_t)((i * 7919L) % (BN / BK)); /* 4,096 classes of 16 */
    size_t wsn = MAX(triplet_workspace_floats(BN, BNA), pairs_workspace_floats(BN, BNA));
    wsn = MAX(wsn, simloss_workspace_floats(BN, BNA));
    int nb = mine_block_rows(BN, BNA);
    CHECK(nb == 80, "blocks of 80 anchor rows at N = 65,536, got %d", nb);
    CHECK(wsn * sizeof(float) <= MINE_BLOCK_FLOATS * sizeof(float) + ((size_t)4 << 20),
          "workspace %.1f MiB <= 64 MiB + 4 (unblocked: %.0f MiB)", wsn * 4.0 / 1048576,
          3.0 * BNA * BN * 4 / 1048576);
    float *ws = xaligned_floats(wsn), *dE = xaligned_floats((size_t)BN * BD);
    IndexTriplet *ch = xcalloc(BNA, sizeof *ch);
    memset(dE, 0, sizeof(float) * (size_t)BN * BD);
    LossStats st = triplet_loss(dE, ch, ws, E, lab, MINE_BATCH_HARD, 0.2f, 1, BN, BD, BA0, BA0 + BNA);
    CHECK(st.count == BNA && st.candidates == (long)BNA * (BK - 1) * (BN - BK), "every anchor has a term: %g",
          st.count);
    /* The choices on every 64th anchor (a few in each block) against a naive
     * search in double: the chosen rows have the right labels and are the
     * farthest positive / nearest negative to within float rounding. */
    int bad = 0;
    for (int q = 0; q < BNA; q += 64) {
        int a = BA0 + q;
        double fp = -1, nn = 1e9;
        for (int j = 0; j < BN; j++) {
            if (j == a) continue;
            double d = row_dist(E, a, j);
            if (lab[j] == lab[a])
                fp = fmax(fp, d);
            else
                nn = fmin(nn, d);
        }
        const IndexTriplet *t = &ch[q];
        bad += t->a != a || lab[t->p] != lab[a] || t->p == a || lab[t->n] == lab[a] ||
               row_dist(E, a, t->p) < fp - 1e-5 || row_dist(E, a, t->n) > nn + 1e-5;
    }
    CHECK(bad == 0, "batch-hard choices against the naive search: %d of %d wrong", bad, BNA / 64);
    /* Loss and the whole gradient against the chosen triplets in double. */
    double *g = calloc((size_t)BN * BD, sizeof *g), loss = 0;
    for (int q = 0; q < BNA; q++) {
        const IndexTriplet *t = &ch[q];
        double dap = row_dist(E, t->a, t->p), dan = row_dist(E, t->a, t->n), x = dap - dan;
        double e = exp(-fabs(x)), sg = x >= 0 ? 1 / (1 + e) : e / (1 + e);
        loss += fmax(x, 0) + log1p(e);
        for (int k = 0; k < BD; k++) {
            double ea = E[(size_t)t->a * BD + k], up = sg * (ea - E[(size_t)t->p * BD + k]) / dap,
                   un = sg * (ea - E[(size_t)t->n * BD + k]) / dan;
            g[(size_t)t->a * BD + k] += up - un;
            g[(size_t)t->p * BD + k] -= up;
            g[(size_t)t->n * BD + k] += un;
        }
    }
    CHECK_CLOSE(st.loss_sum, loss, 1e-5, "batch-hard soft loss at scale vs naive");
    double err = fixture_grad_err(dE, g, BN * BD);
    CHECK(err < 1e-4, "batch-hard gradient at scale vs naive: rel err %g", err);
    /* Blocked against one block on the first 200 anchors (80 + 80 + 40). */
    float *dE1 = xaligned_floats((size_t)BN * BD), *ws1;
    size_t old = mine_set_block_floats((size_t)3 * BN * 200);
    ws1 = xaligned_floats(triplet_workspace_floats(BN, 200));
    for (int miner = 0; miner < 2; miner++) {
        MiningStrategy s = miner ? MINE_BATCH_ALL : MINE_BATCH_HARD;
        memset(dE1, 0, sizeof(float) * (size_t)BN * BD);
        mine_set_block_floats((size_t)3 * BN * 200);
        LossStats s1 =
            triplet_loss(dE1, miner ? NULL : ch + 200, ws1, E, lab, s, 0.2f, 0, BN, BD, BA0, BA0 + 200);
        mine_set_block_floats(old);
        memset(dE, 0, sizeof(float) * (size_t)BN * BD);
        LossStats sb = triplet_loss(dE, miner ? NULL : ch, ws, E, lab, s, 0.2f, 0, BN, BD, BA0, BA0 + 200);
        if (!miner)
            CHECK(memcmp(ch, ch + 200, 200 * sizeof *ch) == 0, "batch_hard at N = 65,536: same choices");
        check_same(&s1, &sb, miner ? "batch_all at N = 65,536" : "batch_hard at N = 65,536");
        fixture_to_double(g, dE1, BN * BD);
        err = fixture_grad_err(dE, g, BN * BD);
        CHECK(err < 1e-5, "%s at N = 65,536: dE to rounding, rel err %g", miner ? "batch_all" : "batch_hard",
              err);
    }
    free(dE1), free(ws1), free(g), free(ch), free(ws), free(dE), free(lab), free(E);
}

int main(void) {
    Rng r;
    rng_seed(&r, 18, RNG_TEST, 1);
    test_modes(&r);
    test_scale(&r);
    return test_finish();
}
