/* pool: 2-D max pooling over batch-major NCHW tensors, no padding, floor
 * mode (PyTorch nn.MaxPool2d(size, stride) defaults). The forward pass keeps
 * an int32 argmax per output (index inside its H x W input plane) for the
 * backward pass. Ties go to the first maximum in row-major window order and a
 * NaN wins, as in PyTorch. No average pooling, no ceil mode. */
#ifndef SIAMESE_POOL_H
#define SIAMESE_POOL_H

#include <stdint.h>

/* Output side for an input side n: (n - size) / stride + 1 (floor). */
static inline int maxpool_out_size(int n, int size, int stride) { return (n - size) / stride + 1; }

/* out (B, C, Ho, Wo) = window maxima of in (B, C, H, W);
 * idx (B, C, Ho, Wo) = argmax as ih*W + iw within the (b, c) plane. */
void maxpool_forward(float *out, int32_t *idx, const float *in, int B, int C, int H, int W, int size,
                     int stride);

/* One H x W plane of the 2 x 2 stride-2 case: y, id (H / 2, W / 2), the
 * bits of maxpool_forward (which runs it; batch norm's fused block too). */
void maxpool2_plane(float *y, int32_t *id, const float *x, int H, int W);
/* din (B, C, H, W) is WRITTEN: zeroed, then each dout (B, C, Ho, Wo) added at
 * its argmax (overlapping windows sum). idx from maxpool_forward. */
void maxpool_backward(float *din, const float *dout, const int32_t *idx, int B, int C, int H, int W, int size,
                      int stride);

#endif
