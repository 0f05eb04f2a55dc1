/* deconv2d: transposed convolution as conv2d's backward. Image i: the
 * columns col (F*K*K, H*W) = w^T x in_i, scattered into the output by
 * conv2d_col2im; backward: dcol = im2col(dout_i), din_i = w x dcol,
 * dw += the sum over the images of (dcol in_i^T)^T (the images' products
 * summed in (FKK, C) and added to dw at the end: equal to rounding to
 * adding each in_i x dcol^T to dw). */
#include "deconv2d.h"

#include <cblas.h>
#include <string.h>

#include "activation.h"
#include "conv2d.h"
#include "util.h"

size_t deconv2d_workspace_floats(int C, int H, int W, int F, int K, int stride, int pad) {
    size_t Ho = (size_t)MAX(deconv2d_out_size(H, K, stride, pad), 0), Wo = (size_t)MAX(deconv2d_out_size(W, K, stride, pad), 0);
    /* the columns, the transposed dw, one image's dout cut by the fused ReLU */
    return (size_t)F * K * K * ((size_t)H * W + (size_t)C) + (size_t)F * Ho * Wo;
}

void deconv2d_forward(float *out, const float *in, const float *w, const float *b, int B, int C, int H, int W,
                      int F, int K, int stride, int pad, int relu, float *ws) {
    int Ho = deconv2d_out_size(H, K, stride, pad), Wo = deconv2d_out_size(W, K, stride, pad);
    ASSERT(Ho > 0 && Wo > 0);
    int FKK = F * K * K, HW = H * W;
    size_t plane = (size_t)Ho * Wo;
    for (int i = 0; i < B; i++) {
        const float *x = in + (size_t)i * C * HW;
        float *y = out + (size_t)i * F * plane;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, FKK, HW, C, 1.0f, w, FKK, x, HW, 0.0f, ws, HW);
        conv2d_col2im_write(y, ws, 1, F, Ho, Wo, K, stride, pad); /* y = 0 + the taps */
        /* the bias and the fused ReLU in one pass (relu_forward's rule) */
        for (int f = 0; f < F && (b || relu); f++) {
            float bf = b ? b[f] : 0.0f, *yf = y + f * plane;
            if (!relu)
                for (size_t p = 0; p < plane; p++) yf[p] += bf;
            else if (b)
                for (size_t p = 0; p < plane; p++) {
                    float v = yf[p] + bf;
                    yf[p] = v < 0.0f ? 0.0f : v;
                }
            else
                for (size_t p = 0; p < plane; p++) yf[p] = yf[p] < 0.0f ? 0.0f : yf[p];
        }
    }
}

void deconv2d_backward(float *din, float *dw, float *db, const float *dout, const float *y, const float *in,
                       const float *w, int B, int C, int H, int W, int F, int K, int stride, int pad, float *ws) {
    int Ho = deconv2d_out_size(H, K, stride, pad), Wo = deconv2d_out_size(W, K, stride, pad);
    int FKK = F * K * K, HW = H * W;
    size_t plane = (size_t)Ho * Wo;
    float *dwt = ws + (size_t)FKK * HW; /* (FKK, C): the images' sum, transposed */
    float *cut = dwt + (size_t)FKK * C;
    for (int i = 0; i < B; i++) {
        const float *g = dout + (size_t)i * F * plane, *x = in + (size_t)i * C * HW;
        if (y) { /* the fused ReLU's backward on the block output */
            relu_backward(cut, g, y + (size_t)i * F * plane, (size_t)F * plane);
            g = cut;
        }
        if (db)
            for (int f = 0; f < F; f++) db[f] += (float)sum_floats(g + f * plane, plane);
        conv2d_im2col(ws, g, 1, F, Ho, Wo, K, stride, pad);
        /* dcol x^T (FKK rows) runs faster in OpenBLAS than x dcol^T (C rows)
         * when C is small: 16 channels at 32 x 32, 5.2 -> 3.8 ms a step */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, FKK, C, HW, 1.0f, ws, HW, x, HW, i ? 1.0f : 0.0f, dwt,
                    C);
        if (din)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, HW, FKK, 1.0f, w, FKK, ws, HW, 0.0f,
                        din + (size_t)i * C * HW, HW);
    }
    for (int c = 0; c < C && B > 0; c++)
        for (int k = 0; k < FKK; k++) dw[(size_t)c * FKK + k] += dwt[(size_t)k * C + c];
}
