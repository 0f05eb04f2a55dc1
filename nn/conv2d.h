/* conv2d: 2-D convolution (cross-correlation, no kernel flip, as PyTorch's
 * nn.Conv2d) with square kernels, one stride and symmetric zero padding, over
 * batch-major NCHW tensors. The fast path is im2col + cblas_sgemm over chunks
 * of images, using a caller-provided workspace; the naive loops are exported
 * as the reference for tests and benchmarks. No dilation, no groups. */
#ifndef SIAMESE_CONV2D_H
#define SIAMESE_CONV2D_H

#include <stddef.h>

/* Output side for an input side n: (n + 2*pad - K) / stride + 1 (floor). */
static inline int conv2d_out_size(int n, int K, int stride, int pad) {
    return (n + 2 * pad - K) / stride + 1;
}

/* Floats of workspace conv2d_forward and conv2d_backward need for these
 * sizes (the same number serves both). The column buffer covers a chunk of
 * images chosen to keep it near CONV2D_WS_TARGET floats, so it stays modest
 * whatever B is. A 1 x 1 convolution (stride 1, no padding) with at most 4
 * filters needs only B F (C + 1) doubles of sums (ws 8-byte aligned, as
 * xaligned_floats gives). */
#define CONV2D_WS_TARGET (1u << 19)
size_t conv2d_workspace_floats(int B, int C, int H, int W, int F, int K, int stride, int pad);

/* out = conv(in, w) + b.
 *   out (B, F, Ho, Wo)   in (B, C, H, W)   w (F, C, K, K)   b (F) or NULL
 *   ws  conv2d_workspace_floats(...) floats, contents clobbered. */
void conv2d_forward(float *out, const float *in, const float *w, const float *b, int B, int C, int H, int W,
                    int F, int K, int stride, int pad, float *ws);

/* Backward. din is WRITTEN (=) unless NULL (first layer: skipped, saves a
 * GEMM); dw and db ACCUMULATE (+=); db may be NULL (no bias).
 *   din (B, C, H, W)   dw (F, C, K, K)   db (F)   dout (B, F, Ho, Wo)
 *   in (B, C, H, W) is the forward input, w (F, C, K, K). */
void conv2d_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                     int B, int C, int H, int W, int F, int K, int stride, int pad, float *ws);
/* The same where only din's channels [0, Cd) are read (the input is a
 * concatenation whose last inputs need no gradient: co-segmentation's dec3
 * beside the image): channels [Cd, C) of din are written as zeros, and the
 * flipped input gradient computes only the others (the same bits with the
 * direct kernel, K = 3 with AVX-512; else to rounding). Cd = C is
 * conv2d_backward. */
void conv2d_backward_part(float *din, int Cd, float *dw, float *db, const float *dout, const float *in,
                          const float *w, int B, int C, int H, int W, int F, int K, int stride, int pad, float *ws);

/* The column buffer of conv2d's GEMMs, for other kernels (transposed
 * convolution): col (C*K*K, n*Ho*Wo), column i*Ho*Wo + p = image i, output
 * pixel p, from in (n, C, H, W); and its adjoint, which ADDS col into din
 * (n, C, H, W) (zero din first), or (_write) WRITES it: the bits of zeroing
 * din, then adding (no zeroing pass, no read of din where AVX-512 runs). */
void conv2d_im2col(float *col, const float *in, int n, int C, int H, int W, int K, int stride, int pad);
void conv2d_col2im(float *din, const float *col, int n, int C, int H, int W, int K, int stride, int pad);
void conv2d_col2im_write(float *din, const float *col, int n, int C, int H, int W, int K, int stride, int pad);

/* Reference loops (double accumulation, slow): the same contracts as above
 * without the workspace. For tests and benchmarks only. */
void conv2d_forward_naive(float *out, const float *in, const float *w, const float *b, int B, int C, int H,
                          int W, int F, int K, int stride, int pad);
void conv2d_backward_naive(float *din, float *dw, float *db, const float *dout, const float *in,
                           const float *w, int B, int C, int H, int W, int F, int K, int stride, int pad);

#endif
