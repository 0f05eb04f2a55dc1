/* correlation: the mutual-correlation layer of Li et al. 2018 (docs/graph.md), as in
 * FlowNet's correlation with a 1x1 patch: for each pixel (i, j) of image A and
 * each displacement k of a D x D neighbourhood,
 *   out(k, i, j) = scale * <fa(:, i, j), fb(:, i + dy*dil, j + dx*dil)>,
 * k = (dy + r)*D + (dx + r), r = (D-1)/2; zero where the displaced pixel
 * falls outside the map. c_BA is the same call with fa and fb swapped. No
 * parameters. Options (flags): CORR_COSINE l2-normalises each position's
 * channel vector of fa and fb first (out = scale * cosine); CORR_MAX adds
 * channel D*D: the largest of the position's D*D values over the
 * displacements inside the map ("is this also somewhere in the partner"). */
#ifndef SIAMESE_CORRELATION_H
#define SIAMESE_CORRELATION_H

#include <stddef.h>

enum { CORR_COSINE = 1, CORR_MAX = 2 };
#define CORR_EPS 1e-12f /* cosine: x / max(||x||, eps), as l2norm */

/* Output channels: D*D, one more with CORR_MAX. */
int correlation_channels(int D, int flags);

/* Floats of the workspace ws the two calls need for maps of C x H x W
 * (sized with parallel_threads(): rebuild after the pool changes). */
size_t correlation_workspace_floats(int C, int H, int W, int D, int dil, int flags);

/* out (B, correlation_channels(D, flags), H, W); fa, fb (B, C, H, W); D odd
 * >= 1; dil >= 1. The images are split across the pool; the same bits for
 * any thread count. */
void correlation_forward(float *out, const float *fa, const float *fb, int B, int C, int H, int W, int D,
                         int dil, float scale, int flags, float *ws);

/* dfa and dfb (B, C, H, W) ACCUMULATE (+=), unlike most input gradients:
 * in a co-segmentation net each feature map feeds c_AB, c_BA and the decoder,
 * so its gradient is a sum anyway. Zero them before the first contribution.
 * Either may be NULL (skipped). dout and out (the forward's output) as out
 * above; out is read only with CORR_MAX (the max's displacement: the first
 * largest), else it may be NULL. */
void correlation_backward(float *dfa, float *dfb, const float *dout, const float *out, const float *fa,
                          const float *fb, int B, int C, int H, int W, int D, int dil, float scale, int flags,
                          float *ws);

#endif
