/* coseg: see coseg.h. Sums are in double over images; an image's own counts
 * are exact integers. */
#include "coseg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/util.h"

void coseg_stats_add(CosegStats *s, const uint8_t *pred, const uint8_t *target, size_t npix, int kind) {
    ASSERT(kind >= COSEG_SEEN && kind <= COSEG_NONE && npix > 0);
    s->images[kind]++;
    size_t marked = 0;
    if (kind == COSEG_NONE) {
        for (size_t i = 0; i < npix; i++) marked += pred[i] != 0;
        s->wrong += (double)marked / (double)npix;
        s->empty += (double)marked < COSEG_EMPTY_FRACTION * (double)npix;
        return;
    }
    size_t inter = 0, uni = 0;
    for (size_t i = 0; i < npix; i++) {
        int p = pred[i] != 0, t = target[i] != 0;
        inter += p & t;
        uni += p | t;
    }
    s->jaccard[kind] += uni ? (double)inter / (double)uni : 1.0;
    s->precision[kind] += (double)(npix - (uni - inter)) / (double)npix;
}

void coseg_stats_merge(CosegStats *a, const CosegStats *b) {
    for (int k = 0; k < 2; k++) {
        a->jaccard[k] += b->jaccard[k];
        a->precision[k] += b->precision[k];
    }
    for (int k = 0; k < 3; k++) a->images[k] += b->images[k];
    a->wrong += b->wrong;
    a->empty += b->empty;
}

static double mean(double sum, uint64_t n) { return n ? sum / (double)n : NAN; }

void coseg_stats_finish(const CosegStats *s, CosegMetrics *m) {
    const uint64_t *n = s->images;
    m->jaccard_seen = mean(s->jaccard[0], n[0]);
    m->precision_seen = mean(s->precision[0], n[0]);
    m->jaccard_unseen = mean(s->jaccard[1], n[1]);
    m->precision_unseen = mean(s->precision[1], n[1]);
    m->jaccard = mean(s->jaccard[0] + s->jaccard[1], n[0] + n[1]);
    m->precision = mean(s->precision[0] + s->precision[1], n[0] + n[1]);
    m->wrong_pixels_none = mean(s->wrong, n[2]);
    m->empty_none = mean((double)s->empty, n[2]);
    m->pairs_seen = n[0] / 2;
    m->pairs_unseen = n[1] / 2;
    m->pairs_none = n[2] / 2;
}

/* The logistic sigmoid from z and e = exp(-|z|): 1 / (1 + exp(-z)) for
 * z >= 0, exp(z) / (1 + exp(z)) below (no overflow); log(1 + exp(z)) =
 * max(z, 0) + log1p(e). One exp serves the loss, its gradient and Dice's
 * sums. */

/* Whether pixel j of a target of rows of width w (npix pixels) lies on its
 * outline: its value (object or not) differs from one of its 4 neighbours
 * inside the image. */
static int mask_edge(const uint8_t *t, size_t j, size_t w, size_t npix) {
    int v = t[j] != 0;
    size_t x = j % w;
    return (x > 0 && (t[j - 1] != 0) != v) || (x + 1 < w && (t[j + 1] != 0) != v) ||
           (j >= w && (t[j - w] != 0) != v) || (j + w < npix && (t[j + w] != 0) != v);
}

double coseg_log1p_unit(double e) {
    /* log(1 + e) = 2 atanh(s), s = e / (2 + e) in [0, 1/3]: 2 s sum_k s^2k /
     * (2k + 1), 18 terms (the last below 1e-18 of the first) */
    double q = 2.0 * e / (2.0 + e), s2 = 0.25 * q * q, r = 1.0 / 35; /* q = 2 s: exact for denormal e too */
#pragma GCC unroll 17
    for (int k = 16; k >= 0; k--) r = r * s2 + 1.0 / (2 * k + 1);
    return q * r;
}

/* The softplus terms of image i's BCE without their weights: lb[j] =
 * softplus(z_j) - t_j z_j, e = exp(-|z_j|) (eb), and pk[j] = sigmoid(z_j).
 * No call inside: the loop vectorises (target is a constant once inlined). */
static inline __attribute__((always_inline)) void mask_terms(double *lb, double *pk, const double *eb,
                                                             const float *z, const uint8_t *t, size_t npix,
                                                             int target) {
    for (size_t j = 0; j < npix; j++) {
        double zj = z[j], e = eb[j], lp = coseg_log1p_unit(e);
        pk[j] = zj >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e); /* the sigmoid as above */
        double tz = 0.0;
        if (target) tz = t[j] ? zj : 0.0;
        lb[j] = (zj > 0 ? zj + lp : lp) - tz;
    }
}

/* One pass over image i: with bce, its BCE (mean over its pixels, returned)
 * and gradient, scaled, WRITTEN to g, a pixel on the target's outline
 * weighted 1 + edge (rows of width w); dice[0..3) = the sums of p over its
 * target, of p, of the target (Dice's, p = sigmoid(z)); pk (npix) = p, kept
 * for Dice's gradient. buf: 2 npix doubles of scratch. The exps one by one,
 * the sigmoid and softplus terms vectorised (mask_terms), then the sums in
 * pixel order. */
static double mask_pass(float *g, double *dice, double *pk, double *buf, const float *z, const uint8_t *t,
                        size_t npix, size_t w, double edge, double scale, int bce) {
    double l = 0.0, s = scale / (double)npix, inter = 0.0, sp = 0.0, st = 0.0, *eb = buf, *lb = buf + npix;
    for (size_t j = 0; j < npix; j++) eb[j] = exp(-fabs((double)z[j]));
    if (t)
        mask_terms(lb, pk, eb, z, t, npix, 1);
    else
        mask_terms(lb, pk, eb, z, t, npix, 0);
    for (size_t j = 0; j < npix; j++) {
        double p = pk[j];
        int tj = t && t[j];
        if (bce) {
            double wj = edge > 0 && t && mask_edge(t, j, w, npix) ? 1.0 + edge : 1.0;
            l += wj * lb[j];
            g[j] = (float)(s * wj * (p - tj));
        }
        inter += tj ? p : 0.0;
        sp += p;
        st += tj;
    }
    dice[0] = inter, dice[1] = sp, dice[2] = st;
    return l / (double)npix;
}

/* Image i's soft Dice loss from its sums; its gradient, scaled, ADDED to g
 * (pk: mask_pass's p). */
static double mask_dice(float *g, const double *dice, const double *pk, const uint8_t *t, size_t npix,
                        double scale) {
    double num = 2.0 * dice[0] + COSEG_DICE_SMOOTH, den = dice[1] + dice[2] + COSEG_DICE_SMOOTH;
    /* d/dp_j of -num/den = -(2 t_j den - num) / den^2; dp/dz = p (1 - p) */
    for (size_t j = 0; j < npix; j++) {
        double p = pk[j];
        int tj = t && t[j];
        g[j] += (float)(scale * -(2.0 * tj * den - num) / (den * den) * p * (1.0 - p));
    }
    return 1.0 - num / den;
}

double coseg_mask_loss(float *dz, const float *z, const uint8_t *t, const uint8_t *has_target, int n,
                       size_t npix, MaskLoss type, double scale) {
    return coseg_mask_loss_edge(dz, z, t, has_target, n, npix, npix, type, 0.0, scale);
}

double coseg_mask_loss_edge(float *dz, const float *z, const uint8_t *t, const uint8_t *has_target, int n,
                            size_t npix, size_t width, MaskLoss type, double edge, double scale) {
    ASSERT(type == MASK_BCE || type == MASK_DICE || type == MASK_BCE_DICE);
    ASSERT(width > 0 && npix % width == 0 && edge >= 0);
    double total = 0.0, *pk = xmalloc(3 * npix * sizeof *pk);
    for (int i = 0; i < n; i++) {
        const float *zi = z + (size_t)i * npix;
        const uint8_t *ti = has_target[i] ? t + (size_t)i * npix : NULL;
        float *gi = dz + (size_t)i * npix;
        double dice[3];
        if (type == MASK_DICE) memset(gi, 0, npix * sizeof *gi);
        double l = mask_pass(gi, dice, pk, pk + npix, zi, ti, npix, width, edge, scale, type != MASK_DICE);
        if (type != MASK_DICE) total += l;
        if (type != MASK_BCE) total += mask_dice(gi, dice, pk, ti, npix, scale);
    }
    free(pk);
    return total;
}

double coseg_class_loss(float *dz, const float *z, const uint8_t *t, int n, int K, int h, int w, int H, int W,
                        double scale) {
    ASSERT(K >= 2 && K <= 256 && h >= 1 && w >= 1 && H % h == 0 && W % w == 0);
    int fy = H / h, fx = W / w;
    size_t plane = (size_t)h * w;
    double total = 0.0, inv = 1.0 / (double)(fy * fx), s = scale / (double)plane;
    double *q = xmalloc(sizeof(double) * 2 * (size_t)K), *p = q + K;
    for (int i = 0; i < n; i++) {
        const float *zi = z + (size_t)i * K * plane;
        float *gi = dz + (size_t)i * K * plane;
        const uint8_t *ti = t + (size_t)i * H * W;
        double l = 0.0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                size_t pos = (size_t)y * w + x;
                memset(q, 0, sizeof(double) * (size_t)K);
                for (int dy = 0; dy < fy; dy++)
                    for (int dx = 0; dx < fx; dx++) {
                        int c = ti[(size_t)(y * fy + dy) * W + x * fx + dx];
                        ASSERT(c < K);
                        q[c] += inv;
                    }
                double mx = zi[pos], sum = 0.0;
                for (int c = 1; c < K; c++) mx = fmax(mx, zi[(size_t)c * plane + pos]);
                for (int c = 0; c < K; c++) sum += p[c] = exp(zi[(size_t)c * plane + pos] - mx);
                double lse = mx + log(sum);
                for (int c = 0; c < K; c++) {
                    double zc = zi[(size_t)c * plane + pos];
                    if (q[c] > 0) l += q[c] * (lse - zc);
                    gi[(size_t)c * plane + pos] = (float)(s * (p[c] / sum - q[c]));
                }
            }
        total += l / (double)plane;
    }
    free(q);
    return total;
}

void coseg_threshold(uint8_t *pred, const float *logit, size_t n) {
    for (size_t i = 0; i < n; i++) pred[i] = logit[i] > 0.0f ? 255 : 0;
}
