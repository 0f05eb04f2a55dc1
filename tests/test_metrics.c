/* Tests of mining/metrics: blocked Recall@K and MAP@R against an O(N^2)
 * double brute force and a hand-worked case, AUC against pair counting, EER
 * on constructed cases, the best threshold against a scan of every
 * candidate, the pair set and the N-way trials. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../mining/metrics.h"
#include "test.h"

/* ---- retrieval reference --------------------------------------------------- */

typedef struct Nb {
    double d;
    int j;
} Nb;

static int cmp_nb(const void *pa, const void *pb) {
    const Nb *a = pa, *b = pb;
    if (a->d != b->d) return a->d < b->d ? -1 : 1;
    return a->j - b->j;
}

/* Every other sample of i by increasing squared distance (in double), ties
 * by index: nb gets N - 1 entries. */
static void rank_brute(Nb *nb, const float *E, int N, int D, int i) {
    int n = 0;
    for (int j = 0; j < N; j++) {
        if (j == i) continue;
        double s = 0;
        for (int d = 0; d < D; d++) {
            double t = (double)E[i * D + d] - E[j * D + d];
            s += t * t;
        }
        nb[n++] = (Nb){s, j};
    }
    qsort(nb, (size_t)n, sizeof *nb, cmp_nb);
}

/* Full sort of every row in double: recall (nk) and MAP@R. */
static void knn_brute(double *recall, double *map, const float *E, const int32_t *lab, int N, int D,
                      const int *ks, int nk) {
    Nb *nb = malloc((size_t)N * sizeof *nb);
    long *hits = calloc((size_t)nk, sizeof *hits);
    double ap_sum = 0;
    int ap_n = 0;
    for (int i = 0; i < N; i++) {
        int R = 0;
        for (int j = 0; j < N; j++) R += j != i && lab[j] == lab[i];
        rank_brute(nb, E, N, D, i);
        for (int q = 0; q < nk; q++) {
            int hit = 0;
            for (int r = 0; r < ks[q]; r++) hit |= lab[nb[r].j] == lab[i];
            hits[q] += hit;
        }
        if (R > 0) {
            double ap = 0;
            int found = 0;
            for (int r = 0; r < R; r++)
                if (lab[nb[r].j] == lab[i]) ap += (double)++found / (r + 1);
            ap_sum += ap / R;
            ap_n++;
        }
    }
    for (int q = 0; q < nk; q++) recall[q] = (double)hits[q] / N;
    *map = ap_n ? ap_sum / ap_n : 0;
    free(hits);
    free(nb);
}

static void test_hand_case(void) {
    /* 1-D points (second coordinate constant), labels, worked out by hand:
     * x = 0 1 2 4 5 7, labels 0 0 1 1 0 2 (label 2 is a singleton).
     * Nearest-first orders (ties -> lower index):
     *   0: 1 2 3 4 5    1: 0 2 3 4 5 (0 and 2 tie at 1)   2: 1 0 3 4 5 (0,3 tie)
     *   3: 4 2 1 5 0 (1,5 tie)   4: 3 5 2 1 0   5: 4 3 2 1 0
     * Rank of the first same-label neighbour: 1 1 3 2 4 never.
     * AP@R: 0 -> R=2, ranks {1} in top 2 -> 1/2; 1 -> 1/2; 2,3 (R=1) -> 0;
     * 4 (R=2) -> 0; 5 excluded. MAP@R = 1/5. */
    const float x[6] = {0, 1, 2, 4, 5, 7};
    const int32_t lab[6] = {0, 0, 1, 1, 0, 2};
    float E[12];
    for (int i = 0; i < 6; i++) E[2 * i] = x[i], E[2 * i + 1] = 3;
    const int ks[5] = {1, 2, 3, 4, 5};
    const double want[5] = {2. / 6, 3. / 6, 4. / 6, 5. / 6, 5. / 6};
    for (int br = 1; br <= 7; br += 2) {
        double rec[5], map = -1;
        Err e;
        int rc = metrics_knn(rec, &map, E, lab, 6, 2, ks, 5, br, &e);
        CHECK(rc == 0, "hand case rc %d", rc);
        for (int q = 0; q < 5; q++)
            CHECK(fabs(rec[q] - want[q]) < 1e-15, "hand Recall@%d = %g, want %g (block %d)", ks[q], rec[q],
                  want[q], br);
        CHECK(fabs(map - 0.2) < 1e-15, "hand MAP@R = %g, want 0.2 (block %d)", map, br);
    }
    double r1;
    CHECK(metrics_recall_at_k(&r1, E, lab, 6, 2, ks, 1) == 0 && fabs(r1 - 1. / 3) < 1e-15,
          "recall_at_k wrapper %g", r1);
}

static void test_vs_brute(void) {
    Rng r;
    rng_seed(&r, 11, RNG_TEST, 0);
    const int ks[6] = {1, 2, 5, 10, 100, 1000};
    /* Small integer coordinates: many exact duplicates and equal distances,
     * and every float operation is exact, so tie-breaking is tested. */
    int N = 1037, D = 5;
    float *E = malloc((size_t)N * D * sizeof *E);
    int32_t *lab = malloc((size_t)N * sizeof *lab);
    for (int i = 0; i < N * D; i++) E[i] = (float)rng_below(&r, 3);
    for (int i = 0; i < N; i++) lab[i] = (int32_t)rng_below(&r, 7) * 3 - 5;
    lab[17] = 1000; /* a singleton */
    double want[6], wmap;
    knn_brute(want, &wmap, E, lab, N, D, ks, 6);
    const int blocks[4] = {100, 1, 0, 2000};
    for (int b = 0; b < 4; b++) {
        double got[6], map;
        Err e;
        CHECK(metrics_knn(got, &map, E, lab, N, D, ks, 6, blocks[b], &e) == 0, "knn rc");
        for (int q = 0; q < 6; q++)
            CHECK(got[q] == want[q], "ties: Recall@%d %.9f vs brute %.9f (block %d)", ks[q], got[q], want[q],
                  blocks[b]);
        CHECK_CLOSE(map, wmap, 1e-12, "ties: MAP@R vs brute");
    }
    /* integer data: float arithmetic is exact, so the neighbours are the
     * brute ranking's exactly, ties broken by the lower index */
    int qs[3] = {3, 17, 1000}, nn0[3 * 12];
    Err e;
    CHECK(metrics_neighbours(nn0, NULL, E, N, D, qs, 3, 12, &e) == 0, "neighbours rc");
    Nb *nb0 = malloc((size_t)N * sizeof *nb0);
    int tbad = 0;
    for (int q = 0; q < 3; q++) {
        rank_brute(nb0, E, N, D, qs[q]);
        for (int r = 0; r < 12; r++) tbad += nn0[q * 12 + r] != nb0[r].j;
    }
    CHECK(tbad == 0, "neighbours with ties equal the brute ranking (%d differ)", tbad);
    free(nb0);
    double rnull[6];
    CHECK(metrics_knn(rnull, NULL, E, lab, N, D, ks, 6, 64, &e) == 0 && rnull[0] == want[0] &&
              rnull[5] == want[5],
          "knn without MAP");
    free(E);
    free(lab);

    /* Gaussian data, wider D: float and double may order near-ties
     * differently, so allow a couple of samples of difference. */
    N = 700, D = 33;
    E = malloc((size_t)N * D * sizeof *E);
    lab = malloc((size_t)N * sizeof *lab);
    for (int i = 0; i < N; i++) lab[i] = (int32_t)rng_below(&r, 10);
    for (int i = 0; i < N * D; i++)
        E[i] = (float)(rng_normal(&r) + 0.4 * lab[i / D] * ((i % D) == lab[i / D]));
    knn_brute(want, &wmap, E, lab, N, D, ks, 5);
    double got[5], map;
    CHECK(metrics_knn(got, &map, E, lab, N, D, ks, 5, 64, &e) == 0, "knn rc");
    for (int q = 0; q < 5; q++)
        CHECK(fabs(got[q] - want[q]) <= 2.0 / N, "gauss: Recall@%d %.6f vs brute %.6f", ks[q], got[q],
              want[q]);
    CHECK(fabs(map - wmap) <= 1e-3, "gauss: MAP@R %.6f vs brute %.6f", map, wmap);

    /* nearest neighbours of a few queries: the brute ranking's first k */
    int queries[4] = {0, 17, 350, N - 1}, k = 8;
    int nn[4 * 8];
    float nd[4 * 8];
    CHECK(metrics_neighbours(nn, nd, E, N, D, queries, 4, k, &e) == 0, "neighbours rc");
    Nb *nb = malloc((size_t)N * sizeof *nb);
    int nbad = 0, dbad = 0;
    for (int q = 0; q < 4; q++) {
        int i = queries[q];
        rank_brute(nb, E, N, D, i);
        for (int r = 0; r < k; r++) {
            /* float ranking vs double: a near-tie may swap neighbours, so
             * compare distances (the r-th distance is the same either way) */
            nbad += nn[q * k + r] == i;
            dbad += fabs(nd[q * k + r] - sqrt(nb[r].d)) > 1e-4 * sqrt(nb[r].d);
        }
    }
    CHECK(nbad == 0 && dbad == 0, "neighbours: %d self, %d distances off the brute ranking", nbad, dbad);
    free(nb);
    CHECK(metrics_neighbours(nn, NULL, E, N, D, queries, 1, N, &e) == -1, "k = N rejected: %s", e.msg);
    int outside = N;
    CHECK(metrics_neighbours(nn, NULL, E, N, D, &outside, 1, 3, &e) == -1, "query outside rejected: %s",
          e.msg);

    /* errors */
    int bad = 700;
    CHECK(metrics_knn(got, NULL, E, lab, N, D, &bad, 1, 0, &e) == -1 && strstr(e.msg, "700"),
          "K = N rejected: %s", e.msg);
    E[5] = NAN;
    CHECK(metrics_knn(got, NULL, E, lab, N, D, ks, 1, 0, &e) == -1 && strstr(e.msg, "nan"),
          "NaN rejected: %s", e.msg);
    CHECK(metrics_knn(got, NULL, E, lab, 1, D, ks, 1, 0, &e) == -1, "N = 1 rejected");
    free(E);
    free(lab);
}

/* ---- verification --------------------------------------------------------- */

static double auc_brute(const double *s, const uint8_t *y, int n) {
    double u = 0;
    long np = 0, nn = 0;
    for (int i = 0; i < n; i++) {
        np += y[i] != 0;
        nn += y[i] == 0;
        for (int j = 0; j < n; j++)
            if (y[i] && !y[j]) u += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
    }
    return u / ((double)np * nn);
}

static int cmp_double(const void *pa, const void *pb) {
    double a = *(const double *)pa, b = *(const double *)pb;
    return a < b ? -1 : a > b;
}

static void test_verification(void) {
    Rng r;
    rng_seed(&r, 12, RNG_TEST, 0);
    int n = 501;
    double *s = malloc((size_t)n * sizeof *s);
    uint8_t *y = malloc((size_t)n);
    for (int rep = 0; rep < 3; rep++) {
        for (int i = 0; i < n; i++) {
            y[i] = (uint8_t)rng_below(&r, 2);
            int range = rep == 2 ? 1000 : 10;
            s[i] = (double)rng_below(&r, (uint64_t)range) + range / 5 * y[i]; /* ties */
        }
        CHECK_CLOSE(metrics_roc_auc(s, y, n), auc_brute(s, y, n), 1e-12, "AUC vs pair counting");

        /* best threshold vs every candidate */
        double acc, thr = metrics_best_threshold(&acc, s, y, n);
        double *v = malloc((size_t)n * sizeof *v);
        memcpy(v, s, (size_t)n * sizeof *v);
        qsort(v, (size_t)n, sizeof *v, cmp_double);
        double best = metrics_accuracy_at(v[0] - 1, s, y, n);
        best = fmax(best, metrics_accuracy_at(v[n - 1] + 1, s, y, n));
        for (int i = 0; i + 1 < n; i++)
            if (v[i] != v[i + 1]) best = fmax(best, metrics_accuracy_at(0.5 * (v[i] + v[i + 1]), s, y, n));
        CHECK(acc == best, "best accuracy %.6f vs scan %.6f", acc, best);
        CHECK(metrics_accuracy_at(thr, s, y, n) == acc, "accuracy at the chosen threshold");

        /* the EER lies on the ROC between the two rates around it */
        double eer = metrics_eer(s, y, n);
        CHECK(eer > 0 && eer < 0.5, "random EER %g in (0, 0.5)", eer);

        /* the ROC curve: every point against counting the accepted pairs */
        double *fpr = malloc(3 * ((size_t)n + 1) * sizeof *fpr), *fnr = fpr + n + 1, *th = fnr + n + 1;
        int m = metrics_roc_curve(fpr, fnr, th, s, y, n), distinct = 1, bad = 0;
        for (int i = 1; i < n; i++) distinct += v[i] != v[i - 1];
        CHECK(m == distinct + 1, "ROC points %d = distinct scores + 1 = %d", m, distinct + 1);
        long np = 0, nn = 0;
        for (int i = 0; i < n; i++) np += y[i] != 0, nn += y[i] == 0;
        for (int k = 0; k < m; k++) {
            long fp = 0, fn = 0;
            for (int i = 0; i < n; i++) {
                int acc_i = s[i] >= th[k];
                fp += acc_i && !y[i];
                fn += !acc_i && y[i];
            }
            bad += fpr[k] != (double)fp / nn || fnr[k] != (double)fn / np;
            if (k > 0) bad += !(th[k] > th[k - 1]);
        }
        CHECK(bad == 0 && th[0] == -INFINITY && isinf(th[m - 1]), "ROC points match counting (%d bad)", bad);
        int seg;
        CHECK(metrics_eer_curve(&seg, fpr, fnr, m) == eer && seg > 0 && fpr[seg] <= fnr[seg] &&
                  fpr[seg - 1] > fnr[seg - 1],
              "EER of the curve = metrics_eer, on the crossing segment %d", seg);
        free(fpr);
        free(v);
    }

    /* hand cases */
    const double s1[6] = {0.9, 0.8, 0.4, 0.7, 0.3, 0.2};
    const uint8_t y1[6] = {1, 1, 1, 0, 0, 0};
    /* threshold 0.7 gives FPR = FNR = 1/3 exactly; AUC = 8/9 */
    CHECK_CLOSE(metrics_eer(s1, y1, 6), 1.0 / 3, 1e-15, "EER on a ROC point");
    CHECK_CLOSE(metrics_roc_auc(s1, y1, 6), 8.0 / 9, 1e-15, "hand AUC");
    double acc, thr = metrics_best_threshold(&acc, s1, y1, 6);
    /* best: accept >= 0.35 (5/6 correct: the 0.7 different pair is wrong)
     * or >= 0.75 (5/6: the 0.4 same pair wrong); the lower one wins */
    CHECK(fabs(thr - 0.35) < 1e-12 && fabs(acc - 5.0 / 6) < 1e-15, "hand threshold %g acc %g", thr, acc);
    /* tie of a same and a different pair at 1: the ROC segment rejecting it
     * runs from (FPR, FNR) = (0.5, 0) to (0, 0.5) and crosses at 0.25 */
    const double s2[4] = {1, 3, 1, 0};
    const uint8_t y2[4] = {1, 1, 0, 0};
    CHECK_CLOSE(metrics_eer(s2, y2, 4), 0.25, 1e-15, "interpolated EER");
    CHECK_CLOSE(metrics_roc_auc(s2, y2, 4), 0.875, 1e-15, "AUC with a tie");
    const double s3[4] = {5, 6, 1, 2};
    const uint8_t y3[4] = {1, 1, 0, 0};
    CHECK(metrics_eer(s3, y3, 4) == 0 && metrics_roc_auc(s3, y3, 4) == 1, "separable");
    thr = metrics_best_threshold(&acc, s3, y3, 4);
    CHECK(thr == 3.5 && acc == 1, "separable threshold %g", thr);
    const double s4[4] = {2, 2, 2, 2};
    CHECK(metrics_eer(s4, y3, 4) == 0.5 && metrics_roc_auc(s4, y3, 4) == 0.5, "all tied");
    CHECK(isnan(metrics_roc_auc(s4, y1 + 3, 3)) && isnan(metrics_eer(s4, y1, 3)), "one class only -> NaN");
    free(s);
    free(y);
}

static void test_pairs(void) {
    /* class sizes 1, 2, 50, 300, 10 */
    const int sizes[5] = {1, 2, 50, 300, 10};
    int N = 363;
    int32_t *lab = malloc((size_t)N * sizeof *lab);
    Rng r;
    rng_seed(&r, 13, RNG_TEST, 0);
    uint32_t *perm = malloc((size_t)N * sizeof *perm);
    for (int i = 0; i < N; i++) perm[i] = (uint32_t)i;
    rng_shuffle_u32(&r, perm, (size_t)N);
    for (int c = 0, k = 0; c < 5; c++)
        for (int t = 0; t < sizes[c]; t++) lab[perm[k++]] = 40 - 10 * c;
    int np = 1001;
    uint32_t *a = malloc(np * sizeof *a), *b = malloc(np * sizeof *b);
    uint32_t *a2 = malloc(np * sizeof *a), *b2 = malloc(np * sizeof *b);
    uint8_t *y = malloc(np), *y2 = malloc(np);
    Err e;
    CHECK(metrics_pairs_check(lab, N, &e) == 0, "pairs possible");
    metrics_make_pairs(a, b, y, np, lab, N, 5);
    int nsame = 0, valid = 1, pair_ok = 1, small_cls = 0;
    for (int p = 0; p < np; p++) {
        valid &= a[p] < (uint32_t)N && b[p] < (uint32_t)N && a[p] != b[p];
        pair_ok &= y[p] == (p % 2 == 0) && y[p] == (lab[a[p]] == lab[b[p]]);
        nsame += y[p];
        small_cls += y[p] && lab[a[p]] == 30;
    }
    CHECK(valid, "indices valid and distinct");
    CHECK(pair_ok, "same flags alternate and match the labels");
    CHECK(nsame == 501, "balanced: %d same of %d", nsame, np);
    CHECK(small_cls >= 1, "the 2-sample class appears in same pairs (%d)", small_cls);
    metrics_make_pairs(a2, b2, y2, np, lab, N, 5);
    CHECK(!memcmp(a, a2, np * sizeof *a) && !memcmp(b, b2, np * sizeof *b) && !memcmp(y, y2, np),
          "deterministic for a seed");
    metrics_make_pairs(a2, b2, y2, np, lab, N, 6);
    CHECK(memcmp(a, a2, np * sizeof *a) != 0, "another seed, other pairs");
    const int32_t single[3] = {4, 4, 4}, lone[3] = {1, 2, 3};
    CHECK(metrics_pairs_check(single, 3, &e) == -1, "one label rejected");
    CHECK(metrics_pairs_check(lone, 3, &e) == -1, "all singletons rejected");
    free(a), free(b), free(a2), free(b2), free(y), free(y2), free(perm), free(lab);
}

/* ---- N-way ----------------------------------------------------------------- */

typedef struct Audit {
    const int32_t *lab;
    const int *count; /* class sizes indexed by label */
    int n_way, k_shot, calls, ok, query;
    int32_t group_lab[64];
    int seen[4096];
} Audit;

/* Perfect similarity that also checks each trial's draw: calls come in
 * blocks of n_way * k_shot with one query; supports are distinct, not the
 * query, k_shot per label, distinct labels, the first group the query's. */
static double sim_audit(void *ctx, int i, int j) {
    Audit *a = ctx;
    int per = a->n_way * a->k_shot, t = a->calls % per, w = t / a->k_shot;
    if (t == 0) {
        a->query = i;
        memset(a->seen, 0, sizeof a->seen);
        a->ok &= a->count[a->lab[i]] >= a->k_shot + 1;
    }
    a->ok &= i == a->query && j != i && !a->seen[j];
    a->seen[j] = 1;
    if (t % a->k_shot == 0) {
        a->group_lab[w] = a->lab[j];
        for (int v = 0; v < w; v++) a->ok &= a->group_lab[v] != a->lab[j];
    }
    a->ok &= a->lab[j] == a->group_lab[w];
    if (w == 0) a->ok &= a->lab[j] == a->lab[i];
    a->calls++;
    return a->lab[i] == a->lab[j] ? 1.0 : 0.0;
}

static double sim_random(void *ctx, int i, int j) {
    (void)ctx;
    uint64_t k[2] = {(uint64_t)i, (uint64_t)j};
    return (double)(hash64(k, sizeof k, HASH64_INIT) >> 11);
}

static double sim_const(void *ctx, int i, int j) {
    (void)ctx, (void)i, (void)j;
    return 0.5;
}

static void test_nway(void) {
    /* 40 labels; label c has 2 + c % 5 samples (so 2..6), some exactly k_shot */
    int N = 0;
    int32_t lab[400];
    int count[40];
    for (int c = 0; c < 40; c++) {
        count[c] = 2 + c % 5;
        for (int t = 0; t < count[c]; t++) lab[N++] = c;
    }
    Rng r;
    rng_seed(&r, 14, RNG_TEST, 0);
    for (int i = N - 1; i > 0; i--) { /* shuffle the labels over indices */
        int j = (int)rng_below(&r, (uint64_t)i + 1);
        int32_t t = lab[i];
        lab[i] = lab[j];
        lab[j] = t;
    }
    const int cfg[3][2] = {{20, 1}, {5, 3}, {8, 5}};
    for (int c = 0; c < 3; c++) {
        Audit a = {.lab = lab, .count = count, .n_way = cfg[c][0], .k_shot = cfg[c][1], .ok = 1};
        double acc = metrics_nway(cfg[c][0], cfg[c][1], 300, 9, lab, N, sim_audit, &a);
        CHECK(acc == 1.0, "%d-way %d-shot with perfect similarity: %g", cfg[c][0], cfg[c][1], acc);
        CHECK(a.ok && a.calls == 300 * cfg[c][0] * cfg[c][1], "%d-way %d-shot draws valid", cfg[c][0],
              cfg[c][1]);
    }
    int trials = 4000;
    double acc = metrics_nway(20, 1, trials, 9, lab, N, sim_random, NULL);
    CHECK(fabs(acc - 0.05) < 0.02, "random similarity: %g, expected about 1/20", acc);
    CHECK(metrics_nway(20, 1, trials, 9, lab, N, sim_random, NULL) == acc, "deterministic");
    CHECK(metrics_nway(20, 1, trials, 10, lab, N, sim_random, NULL) != acc, "seed matters");
    CHECK_CLOSE(metrics_nway(7, 2, 100, 9, lab, N, sim_const, NULL), 1.0 / 7, 1e-12,
                "constant similarity: ties give 1/N");

    /* embedding version: labels as well separated clusters */
    float E[400 * 3];
    for (int i = 0; i < N; i++)
        for (int d = 0; d < 3; d++)
            E[i * 3 + d] = (float)(10.0 * (d == 0 ? lab[i] : 0) + 0.1 * rng_normal(&r));
    CHECK(metrics_nway_embed(20, 1, 500, 3, E, lab, N, 3) == 1.0, "clustered embeddings");

    Err e;
    CHECK(metrics_nway_check(41, 1, lab, N, &e) == -1, "too many ways: %s", e.msg);
    CHECK(metrics_nway_check(2, 6, lab, N, &e) == -1, "no label has k+1: %s", e.msg);
    CHECK(metrics_nway_check(17, 5, lab, N, &e) == -1, "16 labels with >= 5: %s", e.msg);
    CHECK(metrics_nway_check(16, 5, lab, N, &e) == 0, "16-way 5-shot possible");
    CHECK(isnan(metrics_nway(41, 1, 10, 1, lab, N, sim_const, NULL)), "impossible -> NaN");
}

int main(void) {
    test_hand_case();
    test_vs_brute();
    test_verification();
    test_pairs();
    test_nway();
    return test_finish();
}
