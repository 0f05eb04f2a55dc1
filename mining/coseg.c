/* coseg: see coseg.h. Sums are in double over images; an image's own counts
 * are exact integers. */
#include "coseg.h"

#include <math.h>
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

static double softplus(double z) { return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z)); }

static double sigmoid(double z) { return z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z)); }

/* Image i's BCE (mean over its pixels) and its gradient, scaled, into g. */
static double mask_bce(float *g, const float *z, const uint8_t *t, size_t npix, double scale) {
    double l = 0.0, s = scale / (double)npix;
    for (size_t j = 0; j < npix; j++) {
        int tj = t && t[j];
        l += softplus(z[j]) - (tj ? z[j] : 0.0);
        g[j] = (float)(s * (sigmoid(z[j]) - tj));
    }
    return l / (double)npix;
}

/* Image i's soft Dice loss; its gradient, scaled, ADDED to g. */
static double mask_dice(float *g, const float *z, const uint8_t *t, size_t npix, double scale) {
    double inter = 0.0, sp = 0.0, st = 0.0;
    for (size_t j = 0; j < npix; j++) {
        double p = sigmoid(z[j]);
        int tj = t && t[j];
        inter += tj ? p : 0.0;
        sp += p;
        st += tj;
    }
    double num = 2.0 * inter + COSEG_DICE_SMOOTH, den = sp + st + COSEG_DICE_SMOOTH;
    /* d/dp_j of -num/den = -(2 t_j den - num) / den^2; dp/dz = p (1 - p) */
    for (size_t j = 0; j < npix; j++) {
        double p = sigmoid(z[j]);
        int tj = t && t[j];
        g[j] += (float)(scale * -(2.0 * tj * den - num) / (den * den) * p * (1.0 - p));
    }
    return 1.0 - num / den;
}

double coseg_mask_loss(float *dz, const float *z, const uint8_t *t, const uint8_t *has_target, int n,
                       size_t npix, MaskLoss type, double scale) {
    ASSERT(type == MASK_BCE || type == MASK_DICE || type == MASK_BCE_DICE);
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const float *zi = z + (size_t)i * npix;
        const uint8_t *ti = has_target[i] ? t + (size_t)i * npix : NULL;
        float *gi = dz + (size_t)i * npix;
        if (type == MASK_DICE) memset(gi, 0, npix * sizeof *gi);
        if (type != MASK_DICE) total += mask_bce(gi, zi, ti, npix, scale);
        if (type != MASK_BCE) total += mask_dice(gi, zi, ti, npix, scale);
    }
    return total;
}

void coseg_threshold(uint8_t *pred, const float *logit, size_t n) {
    for (size_t i = 0; i < n; i++) pred[i] = logit[i] > 0.0f ? 255 : 0;
}
