/* upsample: integer-factor spatial upsampling of NCHW maps, nearest or
 * bilinear, matching PyTorch's nn.Upsample(scale_factor=s, mode=...) with the
 * default align_corners=False (source index (dst + 0.5)/s - 0.5, clamped at
 * 0, computed in float). For the decoder of a co-segmentation net. No
 * parameters; no downsampling, no align_corners=True. */
#ifndef SIAMESE_UPSAMPLE_H
#define SIAMESE_UPSAMPLE_H

typedef enum { UPSAMPLE_NEAREST = 0, UPSAMPLE_BILINEAR = 1 } UpsampleMode;

/* out (B, C, H*s, W*s) from in (B, C, H, W); s >= 1. */
void upsample_forward(float *out, const float *in, int B, int C, int H, int W, int s, UpsampleMode mode);

/* din (B, C, H, W) WRITTEN (zeroed, then each dout (B, C, H*s, W*s) entry
 * added to its source pixels with the forward's weights). */
void upsample_backward(float *din, const float *dout, int B, int C, int H, int W, int s, UpsampleMode mode);

#endif
