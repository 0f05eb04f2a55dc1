/* convblock: conv2d + bias + ReLU, optionally followed by 2x2 stride-2 max
 * pooling (floor mode), as one fused layer over NHWC (channels-last)
 * activations: the same numbers as conv2d -> relu -> maxpool (PyTorch
 * semantics, ties to the first maximum, NaN wins), without ever storing the
 * convolution's full output. Implicit GEMM (no im2col for the input
 * gradient and the forward) with AVX-512 micro-kernels when F % 16 == 0;
 * plain C loops otherwise or without AVX-512. No padding (callers use
 * conv2d for pad > 0), any stride. The ReLU and the pooling are part of the
 * block: the backward needs only `arg`, the block output and the input. */
#ifndef SIAMESE_CONVBLOCK_H
#define SIAMESE_CONVBLOCK_H

#include <stddef.h>
#include <stdint.h>

/* arg value of a pooled output with no gradient (its max is <= 0 or NaN). */
#define CONVBLOCK_ARG_NONE 0xFF

/* Side of the block output for an input side n: the conv output
 * (n - K) / stride + 1, halved (floor) when pooling. */
static inline int convblock_out_size(int n, int K, int stride, int pool) {
    int o = (n - K) / stride + 1;
    return pool ? o / 2 : o;
}

/* 1 if the AVX-512 micro-kernels serve F filters (built with AVX-512 and
 * F % 16 == 0); otherwise the plain C loops run: correct, but slower than
 * conv2d's im2col + sgemm, so callers may prefer conv2d then. */
int convblock_fast(int F);

/* Floats of workspace convblock_forward / convblock_backward need (the same
 * number serves both, for any batch size). */
size_t convblock_workspace_floats(int C, int H, int W, int F, int K, int stride, int pool);

/* out = maxpool2(relu(conv(in, w) + b)), or relu(conv(in, w) + b) if !pool.
 *   in  (B, H, W, C) NHWC   w (F, C, K, K) (PyTorch layout)   b (F)
 *   out (B, Ho', Wo', F) NHWC, or (B, F, Ho', Wo') NCHW if out_nchw
 *       (Ho', Wo' from convblock_out_size)
 *   arg (B, Ho', Wo', F) if pool: the argmax in the 2x2 window (row-major,
 *       0..3), CONVBLOCK_ARG_NONE where the output is not > 0; NULL if !pool.
 *   ws  convblock_workspace_floats(...) floats, clobbered. */
void convblock_forward(float *out, uint8_t *arg, const float *in, const float *w, const float *b, int B, int C,
                       int H, int W, int F, int K, int stride, int pool, int out_nchw, float *ws);

/* Backward of the whole block. din (B, H, W, C) NHWC is WRITTEN (=) unless
 * NULL (first layer: skipped); dw (F, C, K, K) and db (F) ACCUMULATE (+=).
 * dout has out's shape and layout; out and arg are the forward's outputs,
 * in and w its inputs. */
void convblock_backward(float *din, float *dw, float *db, const float *dout, const float *out, const uint8_t *arg,
                        const float *in, const float *w, int B, int C, int H, int W, int F, int K, int stride,
                        int pool, int out_nchw, float *ws);

#endif
