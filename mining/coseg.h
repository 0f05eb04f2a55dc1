/* coseg: the mask loss and the measures of object co-segmentation (Li et
 * al. 2018). The loss: per-pixel binary cross-entropy on logits, or the
 * soft Dice loss, averaged over pixels and images. The measures: for pairs
 * with a common object: Jaccard (intersection over union of the predicted
 * and true foreground, per image, averaged over images) and precision (the
 * fraction of correctly labelled pixels, per image, averaged), kept apart for
 * classes seen in training and unseen ones; for pairs without one: the
 * fraction of pixels wrongly marked as object and the fraction of images
 * predicted (almost) empty. Pure functions over masks (non-zero = object). */
#ifndef SIAMESE_COSEG_H
#define SIAMESE_COSEG_H

#include <stddef.h>
#include <stdint.h>

#include "mining.h"

/* The kind of pair an image belongs to. */
enum { COSEG_SEEN = 0, COSEG_UNSEEN = 1, COSEG_NONE = 2 };

/* An image is predicted (almost) empty when fewer than this fraction of its
 * pixels are marked as object. */
#define COSEG_EMPTY_FRACTION 0.01

/* Sums over images; zero it to start. */
typedef struct CosegStats {
    double jaccard[2], precision[2]; /* [COSEG_SEEN], [COSEG_UNSEEN] */
    uint64_t images[3];              /* [kind] */
    double wrong;                    /* none: sum of the fractions marked */
    uint64_t empty;                  /* none: images predicted empty */
} CosegStats;

/* Adds one image: pred and target (npix pixels each, non-zero = object).
 * Jaccard of an image whose prediction and target are both empty is 1. For
 * kind COSEG_NONE the target is not read (it is empty by definition). */
void coseg_stats_add(CosegStats *s, const uint8_t *pred, const uint8_t *target, size_t npix, int kind);
/* Adds b's sums into a (ranks' or threads' partial sums). */
void coseg_stats_merge(CosegStats *a, const CosegStats *b);

/* Means; NaN where a kind has no image. Pairs = images / 2. */
typedef struct CosegMetrics {
    double jaccard_seen, precision_seen, jaccard_unseen, precision_unseen;
    double jaccard, precision;            /* over both seen and unseen */
    double wrong_pixels_none, empty_none; /* pairs without a common object */
    uint64_t pairs_seen, pairs_unseen, pairs_none;
} CosegMetrics;
void coseg_stats_finish(const CosegStats *s, CosegMetrics *m);

/* ---- the loss ------------------------------------------------------------ */

#define COSEG_DICE_SMOOTH 1.0 /* added to the Dice numerator and denominator */

/* Loss of n images of npix pixels: logits z (n, npix) against targets t
 * (n, npix; non-zero = object), where image i's target is empty when
 * has_target[i] is 0 (an image of a pair without a common object; t is
 * then not read). Per image, with p = sigmoid(z):
 *   BCE:  (1/npix) sum_j softplus(z_j) - t_j z_j
 *   Dice: 1 - (2 sum p t + s) / (sum p + sum t + s), s = COSEG_DICE_SMOOTH;
 *   BCE + Dice: their sum (an empty target's Dice gradient is about
 *   1 / (sum p)^2, nothing once the image is marked; BCE's is not).
 * Returns the SUM of the n per-image losses (double); dz gets scale times
 * its gradient (WRITTEN), so scale = 1 / (images in the global batch) makes
 * the ranks' sums add up to the mean. */
double coseg_mask_loss(float *dz /* (n, npix) */, const float *z, const uint8_t *t, const uint8_t *has_target,
                       int n, size_t npix, MaskLoss type, double scale);
/* The same with the BCE term of a pixel on its target's outline (object
 * and background pixels whose value differs from one of their 4 neighbours
 * in the image; rows of width pixels) weighted 1 + edge ([loss]
 * edge_weight): (1/npix) sum_j w_j (softplus(z_j) - t_j z_j). An image
 * without a target has no outline; Dice is not weighted. edge = 0 is
 * coseg_mask_loss, bit for bit. */
double coseg_mask_loss_edge(float *dz /* (n, npix) */, const float *z, const uint8_t *t,
                            const uint8_t *has_target, int n, size_t npix, size_t width, MaskLoss type, double edge,
                            double scale);

/* log1p(e) for e in [0, 1] (the mask loss's softplus of e = exp(-|z|)) as
 * a series without branches, so that a loop of them vectorises (glibc's
 * log1p is a call: 60 % of the loss's time): within 3 ulp of libm's
 * log1p (3.0 the worst of 3e7 arguments; 1 in 1e4 beyond 2). */
double coseg_log1p_unit(double e);

/* The per-position class loss ([loss] mask = class): n images, each with
 * logits z (K, h, w) (K = classes + 1 channels: 0 background, c + 1 class
 * c) against a class mask t (H, W) of values 0..K-1, H = h fy, W = w fx.
 * Position (y, x) covers the fy x fx block of pixels at (y fy, x fx); its
 * target is the block's class histogram q (fractions; one class when fy =
 * fx = 1). Per image: (1/(h w)) sum_positions -sum_c q_c log softmax(z)_c.
 * Returns the SUM of the n per-image losses; dz gets scale times the
 * gradient, (softmax - q) / (h w) (WRITTEN). */
double coseg_class_loss(float *dz /* (n, K, h, w) */, const float *z, const uint8_t *t /* (n, H, W) */, int n,
                        int K, int h, int w, int H, int W, double scale);

/* pred[i] = 255 where logit[i] > 0 (probability above 1/2), else 0. */
void coseg_threshold(uint8_t *pred, const float *logit, size_t n);

#endif
