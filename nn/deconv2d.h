/* deconv2d: 2-D transposed convolution (PyTorch nn.ConvTranspose2d, no
 * output padding, no groups, no dilation), the adjoint of conv2d: output
 * side (n - 1) * stride - 2 * pad + K. Per image one GEMM and conv2d's
 * col2im (forward), im2col and two GEMMs (backward). Batch-major NCHW. */
#ifndef SIAMESE_DECONV2D_H
#define SIAMESE_DECONV2D_H

#include <stddef.h>

static inline int deconv2d_out_size(int n, int K, int stride, int pad) {
    return (n - 1) * stride - 2 * pad + K;
}

/* Floats of workspace forward and backward need: F*K*K*(H*W + C) + F*Ho*Wo. */
size_t deconv2d_workspace_floats(int C, int H, int W, int F, int K, int stride, int pad);

/* out (B, F, Ho, Wo) = conv_transpose(in, w) + b, then max(., 0) if relu
 * (a ReLU fused after it: the same bits as relu_forward on the output).
 *   in (B, C, H, W)   w (C, F, K, K) (PyTorch's layout)   b (F) or NULL */
void deconv2d_forward(float *out, const float *in, const float *w, const float *b, int B, int C, int H, int W,
                      int F, int K, int stride, int pad, int relu, float *ws);
/* din (B, C, H, W) WRITTEN unless NULL; dw (C, F, K, K) and db (F)
 * ACCUMULATE (db may be NULL). dout (B, F, Ho, Wo); in the forward input.
 * y: NULL, or the forward's output with relu: dout is then the gradient of
 * the ReLU's output, cut where y <= 0 first (relu_backward's rule). */
void deconv2d_backward(float *din, float *dw, float *db, const float *dout, const float *y, const float *in,
                       const float *w, int B, int C, int H, int W, int F, int K, int stride, int pad, float *ws);

#endif
