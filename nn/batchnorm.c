/* batchnorm: see batchnorm.h. */
#include "batchnorm.h"

#include <stddef.h>

void batchnorm_sums(double *s, const float *x, int rows, int C, int HW) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < C; c++) {
            const float *p = x + ((size_t)r * C + c) * HW;
            double a = 0, q = 0;
            for (int i = 0; i < HW; i++) {
                a += p[i];
                q += (double)p[i] * p[i];
            }
            s[c] += a;
            s[C + c] += q;
        }
}

void batchnorm_apply(float *y, const float *x, const float *mean, const float *invstd, const float *gamma,
                     const float *beta, int rows, int C, int HW) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < C; c++) {
            size_t o = ((size_t)r * C + c) * HW;
            float sc = invstd[c] * gamma[c], sh = beta[c] - mean[c] * sc;
            for (int i = 0; i < HW; i++) y[o + i] = x[o + i] * sc + sh;
        }
}

void batchnorm_grad_sums(double *g, const float *dy, const float *x, const float *mean, const float *invstd,
                         int rows, int C, int HW) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < C; c++) {
            size_t o = ((size_t)r * C + c) * HW;
            double a = 0, b = 0;
            for (int i = 0; i < HW; i++) {
                a += dy[o + i];
                b += (double)dy[o + i] * ((x[o + i] - mean[c]) * invstd[c]);
            }
            g[c] += a;
            g[C + c] += b;
        }
}

void batchnorm_backward_input(float *dx, const float *dy, const float *x, const float *mean,
                              const float *invstd, const float *gamma, const double *g, double N, int rows,
                              int C, int HW) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < C; c++) {
            size_t o = ((size_t)r * C + c) * HW;
            float k = gamma[c] * invstd[c], m1 = (float)(g[c] / N), m2 = (float)(g[C + c] / N);
            for (int i = 0; i < HW; i++) {
                float xhat = (x[o + i] - mean[c]) * invstd[c];
                dx[o + i] = k * (dy[o + i] - m1 - xhat * m2);
            }
        }
}
