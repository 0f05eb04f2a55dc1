/* metrics: retrieval, verification and N-way evaluation (see metrics.h). */
#include "metrics.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- labels grouped by value ---------------------------------------------- */

/* The samples sorted by (label, index): class c (dense, in increasing label
 * order) holds order[start[c] .. start[c] + count[c]), indices ascending. */
typedef struct LabelGroups {
    int n_classes;
    int *cls;        /* (N) dense class of each sample */
    int *pos;        /* (N) position of each sample inside its class */
    uint32_t *order; /* (N) */
    int *start;      /* (n_classes) */
    int *count;      /* (n_classes) */
} LabelGroups;

typedef struct LabelIdx {
    int32_t label;
    uint32_t idx;
} LabelIdx;

static int cmp_label_idx(const void *pa, const void *pb) {
    const LabelIdx *a = pa, *b = pb;
    if (a->label != b->label) return a->label < b->label ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static void groups_build(LabelGroups *g, const int32_t *labels, int N) {
    LabelIdx *li = xmalloc((size_t)N * sizeof *li);
    for (int i = 0; i < N; i++) li[i] = (LabelIdx){labels[i], (uint32_t)i};
    qsort(li, (size_t)N, sizeof *li, cmp_label_idx);
    g->cls = xmalloc((size_t)N * sizeof *g->cls);
    g->pos = xmalloc((size_t)N * sizeof *g->pos);
    g->order = xmalloc((size_t)N * sizeof *g->order);
    g->start = xmalloc((size_t)N * sizeof *g->start);
    g->count = xcalloc((size_t)N, sizeof *g->count);
    int c = -1;
    for (int k = 0; k < N; k++) {
        if (k == 0 || li[k].label != li[k - 1].label) g->start[++c] = k;
        g->order[k] = li[k].idx;
        g->cls[li[k].idx] = c;
        g->pos[li[k].idx] = g->count[c]++;
    }
    g->n_classes = c + 1;
    free(li);
}

static void groups_free(LabelGroups *g) {
    free(g->cls);
    free(g->pos);
    free(g->order);
    free(g->start);
    free(g->count);
}

/* ---- retrieval --------------------------------------------------------------- */

/* Maps a float to a uint32 with the same order (for non-NaN values). */
static inline uint32_t float_order_key(float f) {
    if (f == 0.0f) f = 0.0f; /* -0 sorts with +0 */
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static int cmp_u64(const void *pa, const void *pb) {
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return a < b ? -1 : a > b;
}

/* Reorders a[0..n) so that a[0..m) are its m smallest values (in any order);
 * 1 <= m <= n. Quickselect with a median-of-three pivot, falling back to a
 * full sort of the remaining range if it recurses too deep. */
static void select_smallest(uint64_t *a, ptrdiff_t n, ptrdiff_t m) {
    ptrdiff_t lo = 0, hi = n - 1, k = m - 1;
    int depth = 0;
    while (hi > lo) {
        if (++depth > 64) {
            qsort(a + lo, (size_t)(hi - lo + 1), sizeof *a, cmp_u64);
            return;
        }
        uint64_t x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi];
        uint64_t pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        ptrdiff_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) {
                uint64_t t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return;
    }
}

/* The M nearest others of sample i, nearest first, as keys (order key of
 * ||e_j||^2 - 2 e_i.e_j in the high half, j in the low half) in keys[0..M);
 * gi = e_i . e_j for every j, sq = ||e_j||^2. keys holds N entries. */
static void rank_row(uint64_t *keys, const float *gi, const float *sq, int N, int i, int M) {
    int n = 0;
    for (int j = 0; j < N; j++) {
        if (j == i) continue;
        float s = sq[j] - 2.0f * gi[j];
        keys[n++] = ((uint64_t)float_order_key(s) << 32) | (uint32_t)j;
    }
    if (M < n) select_smallest(keys, n, M);
    qsort(keys, (size_t)M, sizeof *keys, cmp_u64);
}

/* Squared norms of the rows of E, in float (the ranking's own arithmetic). */
static void row_norms(float *sq, const float *E, int N, int D) {
    for (int j = 0; j < N; j++) {
        float s = 0.0f;
        for (int d = 0; d < D; d++) s += E[(size_t)j * D + d] * E[(size_t)j * D + d];
        sq[j] = s;
    }
}

static int check_finite(const float *E, int N, int D, Err *e) {
    for (size_t t = 0; t < (size_t)N * (size_t)D; t++)
        if (!isfinite(E[t]))
            return err_set(e, "metrics: embedding %zu, component %zu is %g; the model diverged?",
                           t / (size_t)D, t % (size_t)D, (double)E[t]);
    return 0;
}

int metrics_knn(double *recall, double *map_at_r, const float *E, const int32_t *labels, int N, int D,
                const int *ks, int nk, int block_rows, Err *e) {
    if (N < 2) return err_set(e, "metrics: %d samples, need at least 2 for nearest neighbours", N);
    if (D < 1) return err_set(e, "metrics: embedding dimension %d, need at least 1", D);
    if (nk < 0 || (nk > 0 && (!ks || !recall))) return err_set(e, "metrics: bad list of K (nk = %d)", nk);
    int kmax = 0;
    for (int q = 0; q < nk; q++) {
        if (ks[q] < 1 || ks[q] > N - 1)
            return err_set(e, "metrics: Recall@%d asked with %d samples; K must be in [1, %d]", ks[q], N,
                           N - 1);
        kmax = MAX(kmax, ks[q]);
    }
    if (check_finite(E, N, D, e)) return -1;

    if (block_rows <= 0) {
        block_rows = 512;
        size_t cap = ((size_t)32 << 20) / sizeof(float) / (size_t)N; /* 32 MB of distances */
        if ((size_t)block_rows > cap) block_rows = (int)MAX(cap, (size_t)1);
    }
    block_rows = MIN(block_rows, N);

    LabelGroups g;
    groups_build(&g, labels, N);
    float *sq = xmalloc((size_t)N * sizeof *sq);
    row_norms(sq, E, N, D);
    float *G = xmalloc((size_t)block_rows * (size_t)N * sizeof *G);
    uint64_t *keys = xmalloc((size_t)N * sizeof *keys);
    long *hits = xcalloc((size_t)MAX(nk, 1), sizeof *hits);
    double ap_sum = 0.0;
    long ap_count = 0;

    for (int r0 = 0; r0 < N; r0 += block_rows) {
        int B = MIN(block_rows, N - r0);
        /* G = E[r0:r0+B] E^T: (B, N) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, N, D, 1.0f, E + (size_t)r0 * D, D, E, D, 0.0f,
                    G, N);
        for (int b = 0; b < B; b++) {
            int i = r0 + b;
            int R = g.count[g.cls[i]] - 1;
            int M = kmax;
            if (map_at_r) M = MAX(M, R);
            if (M == 0) continue; /* no K asked and a singleton: nothing to rank */
            rank_row(keys, G + (size_t)b * N, sq, N, i, M);
            int first = M + 1; /* 1-based rank of the nearest same-label sample */
            int found = 0;
            double ap = 0.0;
            for (int r = 1; r <= M; r++) {
                int j = (int)(uint32_t)keys[r - 1];
                if (labels[j] != labels[i]) continue;
                if (!found) first = r;
                found++;
                if (r <= R) ap += (double)found / r;
            }
            for (int q = 0; q < nk; q++) hits[q] += first <= ks[q];
            if (map_at_r && R > 0) {
                ap_sum += ap / R;
                ap_count++;
            }
        }
    }
    for (int q = 0; q < nk; q++) recall[q] = (double)hits[q] / N;
    if (map_at_r) *map_at_r = ap_count ? ap_sum / ap_count : 0.0;

    free(hits);
    free(keys);
    free(G);
    free(sq);
    groups_free(&g);
    return 0;
}

int metrics_neighbours(int *nn, float *dist, const float *E, int N, int D, const int *queries, int nq, int k,
                       Err *e) {
    if (N < 2 || D < 1) return err_set(e, "metrics: %d samples of dimension %d, need at least 2 and 1", N, D);
    if (k < 1 || k > N - 1)
        return err_set(e, "metrics: %d neighbours asked with %d samples; need [1, %d]", k, N, N - 1);
    for (int q = 0; q < nq; q++)
        if (queries[q] < 0 || queries[q] >= N)
            return err_set(e, "metrics: query %d outside [0, %d)", queries[q], N);
    if (check_finite(E, N, D, e)) return -1;
    float *sq = xmalloc((size_t)N * sizeof *sq), *gi = xmalloc((size_t)N * sizeof *gi);
    uint64_t *keys = xmalloc((size_t)N * sizeof *keys);
    row_norms(sq, E, N, D);
    for (int q = 0; q < nq; q++) {
        int i = queries[q];
        cblas_sgemv(CblasRowMajor, CblasNoTrans, N, D, 1.0f, E, D, E + (size_t)i * D, 1, 0.0f, gi, 1);
        rank_row(keys, gi, sq, N, i, k);
        for (int r = 0; r < k; r++) {
            int j = (int)(uint32_t)keys[r];
            nn[(size_t)q * k + r] = j;
            if (dist) {
                double s = 0.0;
                for (int d = 0; d < D; d++) {
                    double t = (double)E[(size_t)i * D + d] - E[(size_t)j * D + d];
                    s += t * t;
                }
                dist[(size_t)q * k + r] = (float)sqrt(s);
            }
        }
    }
    free(keys);
    free(gi);
    free(sq);
    return 0;
}

int metrics_recall_at_k(double *out, const float *E, const int32_t *labels, int N, int D, const int *ks,
                        int nk) {
    Err e;
    if (metrics_knn(out, NULL, E, labels, N, D, ks, nk, 0, &e) == 0) return 0;
    util_warn("%s", e.msg);
    return -1;
}

/* ---- verification pairs ------------------------------------------------------ */

int metrics_pairs_check(const int32_t *labels, int N, Err *e) {
    if (N < 2) return err_set(e, "metrics: %d samples, pairs need at least 2", N);
    LabelGroups g;
    groups_build(&g, labels, N);
    int multi = 0;
    for (int c = 0; c < g.n_classes; c++) multi |= g.count[c] >= 2;
    int nc = g.n_classes;
    groups_free(&g);
    if (nc < 2) return err_set(e, "metrics: all %d samples have one label; no different pairs", N);
    if (!multi) return err_set(e, "metrics: every label of the %d samples occurs once; no same pairs", N);
    return 0;
}

void metrics_make_pairs(uint32_t *a, uint32_t *b, uint8_t *same, int npairs, const int32_t *labels, int N,
                        uint64_t seed) {
    ASSERT(npairs >= 0);
    ASSERT(metrics_pairs_check(labels, N, NULL) == 0);
    LabelGroups g;
    groups_build(&g, labels, N);
    uint32_t *elig = xmalloc((size_t)N * sizeof *elig); /* samples whose label occurs twice+ */
    int ne = 0;
    for (int i = 0; i < N; i++)
        if (g.count[g.cls[i]] >= 2) elig[ne++] = (uint32_t)i;
    Rng r;
    rng_seed(&r, seed, RNG_EVAL, 0);
    for (int p = 0; p < npairs; p++) {
        if (p % 2 == 0) {
            uint32_t x = elig[rng_below(&r, (uint64_t)ne)];
            int c = g.cls[x];
            int k = (int)rng_below(&r, (uint64_t)g.count[c] - 1);
            if (k >= g.pos[x]) k++; /* skip x itself */
            a[p] = x;
            b[p] = g.order[g.start[c] + k];
            same[p] = 1;
        } else {
            uint32_t x = (uint32_t)rng_below(&r, (uint64_t)N);
            int c = g.cls[x];
            int k = (int)rng_below(&r, (uint64_t)(N - g.count[c]));
            if (k >= g.start[c]) k += g.count[c]; /* skip x's label */
            a[p] = x;
            b[p] = g.order[k];
            same[p] = 0;
        }
    }
    free(elig);
    groups_free(&g);
}

typedef struct ScoredPair {
    double s;
    uint8_t same;
} ScoredPair;

static int cmp_scored(const void *pa, const void *pb) {
    double a = ((const ScoredPair *)pa)->s, b = ((const ScoredPair *)pb)->s;
    return a < b ? -1 : a > b;
}

/* Scores sorted ascending with their labels, and the counts of same (np) and
 * different (nn) pairs. NULL if a score is NaN. Caller frees. */
static ScoredPair *pairs_sorted(const double *score, const uint8_t *same, int n, long *np, long *nn) {
    *np = *nn = 0;
    for (int i = 0; i < n; i++) {
        if (isnan(score[i])) return NULL;
        if (same[i])
            ++*np;
        else
            ++*nn;
    }
    ScoredPair *sp = xmalloc((size_t)MAX(n, 1) * sizeof *sp);
    for (int i = 0; i < n; i++) sp[i] = (ScoredPair){score[i], same[i] != 0};
    qsort(sp, (size_t)n, sizeof *sp, cmp_scored);
    return sp;
}

double metrics_roc_auc(const double *score, const uint8_t *same, int n) {
    long np, nn;
    ScoredPair *sp = pairs_sorted(score, same, n, &np, &nn);
    if (!sp || np == 0 || nn == 0) {
        free(sp);
        return NAN;
    }
    double u = 0.0; /* same-over-different wins, ties 1/2 */
    long neg_below = 0;
    for (int i = 0; i < n;) {
        long p = 0, q = 0;
        int j = i;
        for (; j < n && sp[j].s == sp[i].s; j++) {
            if (sp[j].same)
                p++;
            else
                q++;
        }
        u += (double)p * neg_below + 0.5 * (double)p * q;
        neg_below += q;
        i = j;
    }
    free(sp);
    return u / ((double)np * nn);
}

int metrics_roc_curve(double *fpr, double *fnr, double *thr, const double *score, const uint8_t *same,
                      int n) {
    long np, nn;
    ScoredPair *sp = pairs_sorted(score, same, n, &np, &nn);
    if (!sp || np == 0 || nn == 0) {
        free(sp);
        return -1;
    }
    /* Raising the threshold past each group of equal scores rejects it. */
    int m = 0;
    long fp = nn, fn = 0;
    fpr[0] = 1.0, fnr[0] = 0.0, thr[0] = -INFINITY;
    for (int i = 0; i < n;) {
        int j = i;
        for (; j < n && sp[j].s == sp[i].s; j++) {
            if (sp[j].same)
                fn++;
            else
                fp--;
        }
        m++;
        fpr[m] = (double)fp / nn, fnr[m] = (double)fn / np;
        thr[m] = j < n ? sp[j].s : INFINITY;
        i = j;
    }
    free(sp);
    return m + 1;
}

double metrics_eer_curve(int *seg, const double *fpr, const double *fnr, int m) {
    /* FPR - FNR falls from 1 to -1: the crossing is on the first segment
     * whose end point has FPR <= FNR. */
    for (int k = 1; k < m; k++) {
        double d0 = fpr[k - 1] - fnr[k - 1], d1 = fpr[k] - fnr[k];
        if (d1 <= 0.0) {
            double t = d0 / (d0 - d1);
            if (seg) *seg = k;
            return fpr[k - 1] + t * (fpr[k] - fpr[k - 1]);
        }
    }
    if (seg) *seg = -1;
    return NAN;
}

double metrics_eer(const double *score, const uint8_t *same, int n) {
    double *c = xmalloc(3 * ((size_t)n + 1) * sizeof *c);
    int m = metrics_roc_curve(c, c + n + 1, c + 2 * (n + 1), score, same, n);
    double eer = m < 0 ? NAN : metrics_eer_curve(NULL, c, c + n + 1, m);
    free(c);
    return eer;
}

double metrics_accuracy_at(double thr, const double *score, const uint8_t *same, int n) {
    ASSERT(n > 0);
    long ok = 0;
    for (int i = 0; i < n; i++) ok += (score[i] >= thr) == (same[i] != 0);
    return (double)ok / n;
}

double metrics_best_threshold(double *best_acc, const double *score, const uint8_t *same, int n) {
    ASSERT(n > 0);
    long np, nn;
    ScoredPair *sp = pairs_sorted(score, same, n, &np, &nn);
    if (!sp) {
        if (best_acc) *best_acc = NAN;
        return NAN;
    }
    /* correct = same pairs at or above the threshold + different pairs below */
    double thr = sp[0].s - 1.0;
    if (!(thr < sp[0].s)) thr = nextafter(sp[0].s, -INFINITY);
    long best = np, correct = np;
    for (int i = 0; i < n;) {
        int j = i;
        for (; j < n && sp[j].s == sp[i].s; j++) correct += sp[j].same ? -1 : 1;
        double t;
        if (j < n) {
            t = sp[i].s + 0.5 * (sp[j].s - sp[i].s);
            if (!(t > sp[i].s)) t = sp[j].s;
        } else {
            t = sp[i].s + 1.0;
            if (!(t > sp[i].s)) t = nextafter(sp[i].s, INFINITY);
        }
        if (correct > best) {
            best = correct;
            thr = t;
        }
        i = j;
    }
    free(sp);
    if (best_acc) *best_acc = (double)best / n;
    return thr;
}

/* ---- N-way K-shot -------------------------------------------------------------- */

int metrics_nway_check(int n_way, int k_shot, const int32_t *labels, int N, Err *e) {
    if (n_way < 1 || k_shot < 1)
        return err_set(e, "metrics: %d-way %d-shot; both must be at least 1", n_way, k_shot);
    if (N < 1) return err_set(e, "metrics: no samples for N-way trials");
    LabelGroups g;
    groups_build(&g, labels, N);
    int ns = 0, nq = 0;
    for (int c = 0; c < g.n_classes; c++) {
        ns += g.count[c] >= k_shot;
        nq += g.count[c] >= k_shot + 1;
    }
    groups_free(&g);
    if (ns < n_way)
        return err_set(e, "metrics: %d-way %d-shot needs %d labels with >= %d samples, found %d", n_way,
                       k_shot, n_way, k_shot, ns);
    if (nq < 1)
        return err_set(e, "metrics: %d-shot needs a label with >= %d samples (query + supports)", k_shot,
                       k_shot + 1);
    return 0;
}

double metrics_trial_credit(const double *score, int n, int answer) {
    double top = score[0];
    for (int w = 1; w < n; w++) top = score[w] > top ? score[w] : top;
    if (score[answer] != top) return 0.0;
    int m = 0;
    for (int w = 0; w < n; w++) m += score[w] == top;
    return 1.0 / m;
}

double metrics_nway(int n_way, int k_shot, int trials, uint64_t seed, const int32_t *labels, int N,
                    MetricsSim sim, void *ctx) {
    if (trials < 1 || metrics_nway_check(n_way, k_shot, labels, N, NULL) != 0) return NAN;
    LabelGroups g;
    groups_build(&g, labels, N);
    uint32_t *qcls = xmalloc((size_t)g.n_classes * sizeof *qcls); /* >= k_shot + 1 samples */
    uint32_t *scls = xmalloc((size_t)g.n_classes * sizeof *scls); /* >= k_shot samples */
    int nq = 0, ns = 0;
    for (int c = 0; c < g.n_classes; c++) {
        if (g.count[c] >= k_shot + 1) qcls[nq++] = (uint32_t)c;
        if (g.count[c] >= k_shot) scls[ns++] = (uint32_t)c;
    }
    uint32_t *members = xmalloc((size_t)N * sizeof *members); /* permuted within classes */
    memcpy(members, g.order, (size_t)N * sizeof *members);
    double *score = xmalloc((size_t)n_way * sizeof *score);
    Rng r;
    rng_seed(&r, seed, RNG_EVAL, 1);
    double correct = 0.0;
    for (int t = 0; t < trials; t++) {
        uint32_t qc = qcls[rng_below(&r, (uint64_t)nq)];
        int at = 0; /* move qc to the end of scls, draw the others from the rest */
        while (scls[at] != qc) at++;
        scls[at] = scls[ns - 1];
        scls[ns - 1] = qc;
        rng_pick_u32(&r, scls, (size_t)ns - 1, (size_t)n_way - 1);
        uint32_t *qm = members + g.start[qc];
        rng_pick_u32(&r, qm, (size_t)g.count[qc], (size_t)k_shot + 1);
        int query = (int)qm[0];
        for (int w = 0; w < n_way; w++) {
            const uint32_t *sup;
            if (w == 0) {
                sup = qm + 1;
            } else {
                uint32_t *cm = members + g.start[scls[w - 1]];
                rng_pick_u32(&r, cm, (size_t)g.count[scls[w - 1]], (size_t)k_shot);
                sup = cm;
            }
            double s = 0.0;
            for (int k = 0; k < k_shot; k++) s += sim(ctx, query, (int)sup[k]);
            score[w] = s / k_shot;
        }
        correct += metrics_trial_credit(score, n_way, 0);
    }
    free(score);
    free(members);
    free(scls);
    free(qcls);
    groups_free(&g);
    return correct / trials;
}

typedef struct EmbedCtx {
    const float *E;
    int D;
} EmbedCtx;

static double embed_neg_dist(void *ctx, int i, int j) {
    const EmbedCtx *c = ctx;
    const float *x = c->E + (size_t)i * c->D, *y = c->E + (size_t)j * c->D;
    double s = 0.0;
    for (int d = 0; d < c->D; d++) {
        double t = (double)x[d] - (double)y[d];
        s += t * t;
    }
    return -sqrt(s);
}

double metrics_nway_embed(int n_way, int k_shot, int trials, uint64_t seed, const float *E,
                          const int32_t *labels, int N, int D) {
    EmbedCtx c = {E, D};
    return metrics_nway(n_way, k_shot, trials, seed, labels, N, embed_neg_dist, &c);
}
