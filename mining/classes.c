/* classes: see classes.h. Centroid distances are taken between the int64
 * sums (every class has K rows, so the common factor 1 / (K 2^bits) does
 * not change the order), converted to double once per step and compared in
 * a fixed order of operations (no BLAS, whose blocking could depend on how
 * many classes a rank asks about): the same bits on every rank. The m
 * nearest are kept by insertion into a sorted list of m. */
#include "classes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/util.h"

typedef struct Near {
    double d;
    int32_t label, block;
} Near;

static int int_cmp(const void *x, const void *y) {
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return (a > b) - (a < b);
}

void classes_plan_init(ClassesPlan *p, int P, int K, int D, int m, int max_anchors, size_t ws_floats) {
    ASSERT(P >= 2 && K >= 1 && D >= 1 && m >= 1 && max_anchors >= 1);
    memset(p, 0, sizeof *p);
    p->P = P, p->K = K, p->D = D, p->m = MIN(m, P - 1);
    p->max_blocks = MIN(P, (max_anchors + K - 1) / K + 1); /* a slice may start inside a block */
    p->max_union = MIN(P, p->max_blocks * (p->m + 1));
    p->S = xcalloc((size_t)P * D, sizeof *p->S);
    p->Sd = xcalloc((size_t)P * D, sizeof *p->Sd);
    p->label = xcalloc((size_t)P, sizeof *p->label);
    p->nb = xcalloc((size_t)p->max_blocks * p->m, sizeof *p->nb);
    p->ublocks = xcalloc((size_t)p->max_union, sizeof *p->ublocks);
    p->upos = xcalloc((size_t)P, sizeof *p->upos);
    size_t rows = (size_t)classes_pool_rows(p);
    p->E = xaligned_floats(rows * D);
    p->dE = xaligned_floats(rows * D);
    p->ws = xaligned_floats(ws_floats ? ws_floats : 1);
    p->plabels = xcalloc(rows, sizeof *p->plabels);
    p->pblocks = xcalloc((size_t)p->m + 1, sizeof *p->pblocks);
    p->order = xcalloc((size_t)p->m, sizeof(Near));
}

void classes_plan_free(ClassesPlan *p) {
    free(p->S), free(p->Sd), free(p->label), free(p->nb), free(p->ublocks), free(p->upos);
    free(p->E), free(p->dE), free(p->ws), free(p->plabels), free(p->pblocks), free(p->order);
    memset(p, 0, sizeof *p);
}

int classes_pool_rows(const ClassesPlan *p) { return (p->m + 1) * p->K; }

int classes_fixed_bits(double maxabs, int K) {
    if (!isfinite(maxabs)) return 0;
    int e = 0, k = 0;
    if (maxabs > 0) frexp(maxabs, &e); /* maxabs < 2^e */
    while ((1L << k) < K) k++;         /* K <= 2^k */
    int bits = 61 - e - k;
    return bits > 40 ? 40 : bits < 0 ? 0 : bits;
}

void classes_sums(int64_t *S, const float *E, int row0, int n, int K, int D, int bits) {
    for (int i = 0; i < n; i++) {
        int64_t *s = S + (size_t)((row0 + i) / K) * D;
        const float *x = E + (size_t)i * D;
        for (int k = 0; k < D; k++) s[k] += isfinite(x[k]) ? llrint(ldexp((double)x[k], bits)) : 0;
    }
}

/* The squared distance of two rows of sums (as doubles) in eight
 * interleaved lanes, added in a fixed order: the same bits on every rank. */
static double sum_dist(const double *x, const double *y, int D) {
    double l[8] = {0};
    int k = 0;
    for (; k + 8 <= D; k += 8)
        for (int j = 0; j < 8; j++) l[j] += (x[k + j] - y[k + j]) * (x[k + j] - y[k + j]);
    for (int j = 0; k < D; k++, j++) l[j] += (x[k] - y[k]) * (x[k] - y[k]);
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

/* (d, label) before (d', label'): nearer, or as near with a lower label. */
static int near_before(double d, int32_t lab, const Near *o) {
    return d < o->d || (d == o->d && lab < o->label);
}

void classes_nearest(ClassesPlan *p, int32_t *nb, int c) {
    int P = p->P, D = p->D, m = p->m, n = 0;
    Near *o = p->order; /* the m best so far, in order */
    const double *sc = p->Sd + (size_t)c * D;
    for (int b = 0; b < P; b++) {
        if (b == c) continue;
        double d = sum_dist(sc, p->Sd + (size_t)b * D, D);
        int32_t lab = p->label[b];
        if (n == m && !near_before(d, lab, &o[m - 1])) continue;
        int j = n < m ? n++ : m - 1;
        for (; j > 0 && near_before(d, lab, &o[j - 1]); j--) o[j] = o[j - 1];
        o[j] = (Near){d, lab, b};
    }
    for (int j = 0; j < m; j++) nb[j] = o[j].block;
}

void classes_plan_blocks(ClassesPlan *p, int a0, int a1) {
    ASSERT(0 <= a0 && a0 < a1 && a1 <= p->P * p->K);
    p->a0 = a0, p->a1 = a1;
    p->c0 = a0 / p->K, p->c1 = (a1 - 1) / p->K + 1;
    ASSERT(p->c1 - p->c0 <= p->max_blocks);
    for (size_t i = 0; i < (size_t)p->P * p->D; i++) p->Sd[i] = (double)p->S[i];
    for (int b = 0; b < p->P; b++) p->upos[b] = -1;
    for (int c = p->c0; c < p->c1; c++) {
        int32_t *nb = p->nb + (size_t)(c - p->c0) * p->m;
        classes_nearest(p, nb, c);
        p->upos[c] = 0;
        for (int j = 0; j < p->m; j++) p->upos[nb[j]] = 0;
    }
    p->nu = 0;
    for (int b = 0; b < p->P; b++)
        if (p->upos[b] == 0) {
            p->upos[b] = p->nu;
            p->ublocks[p->nu++] = b;
        }
    ASSERT(p->nu <= p->max_union);
}

int classes_blocks_in(const ClassesPlan *p, int off, int n, int *first) {
    int j = 0, cnt = 0;
    while (j < p->nu && (p->ublocks[j] + 1) * p->K <= off) j++;
    *first = j;
    while (j + cnt < p->nu && p->ublocks[j + cnt] * p->K < off + n) cnt++;
    return n > 0 ? cnt : 0;
}

LossStats classes_plan_loss(ClassesPlan *p, float *dU, const float *U, ClassesLossFn f, void *ctx) {
    int K = p->K, D = p->D, nb1 = p->m + 1, N = classes_pool_rows(p);
    size_t blk = (size_t)K * D;
    LossStats st = {0};
    for (int c = p->c0; c < p->c1; c++) {
        p->pblocks[0] = c;
        memcpy(p->pblocks + 1, p->nb + (size_t)(c - p->c0) * p->m, (size_t)p->m * sizeof *p->pblocks);
        qsort(p->pblocks, (size_t)nb1, sizeof *p->pblocks, int_cmp); /* the pool in global order */
        int own = 0;
        for (int i = 0; i < nb1; i++) {
            int b = p->pblocks[i];
            memcpy(p->E + i * blk, U + (size_t)p->upos[b] * blk, blk * sizeof *p->E);
            for (int r = 0; r < K; r++) p->plabels[i * K + r] = p->label[b];
            if (b == c) own = i;
        }
        int r0 = MAX(p->a0, c * K) - c * K, r1 = MIN(p->a1, (c + 1) * K) - c * K;
        memset(p->dE, 0, (size_t)N * D * sizeof *p->dE);
        LossStats s = f(ctx, p->dE, p->ws, p->E, p->plabels, N, own * K + r0, own * K + r1);
        loss_stats_add(&st, &s);
        for (int i = 0; i < nb1; i++) {
            float *g = dU + (size_t)p->upos[p->pblocks[i]] * blk;
            const float *h = p->dE + i * blk;
            for (size_t k = 0; k < blk; k++) g[k] += h[k];
        }
    }
    return st;
}
