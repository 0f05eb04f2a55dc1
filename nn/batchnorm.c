/* batchnorm: see batchnorm.h. */
#include "batchnorm.h"

#include <stddef.h>

#include "util.h"

/* A plane of at least SUM_LANES values is summed in lanes (nn/util.h:
 * sum_floats), two sums in one pass. */

/* *a = sum of p (n), *q = sum of p^2 */
static void plane_sums(double *a, double *q, const float *p, int n) {
    if (n < SUM_LANES) {
        double sa = 0, sq = 0;
        for (int i = 0; i < n; i++) {
            sa += p[i];
            sq += (double)p[i] * p[i];
        }
        *a = sa, *q = sq;
        return;
    }
    double la[SUM_LANES] = {0}, lq[SUM_LANES] = {0};
    int i = 0;
    for (; i + SUM_LANES <= n; i += SUM_LANES)
        for (int j = 0; j < SUM_LANES; j++) {
            double v = p[i + j];
            la[j] += v;
            lq[j] += v * v;
        }
    for (int j = 0; i < n; i++, j++) {
        double v = p[i];
        la[j] += v;
        lq[j] += v * v;
    }
    *a = sum_lanes_total(la), *q = sum_lanes_total(lq);
}

/* *a = sum of dy (n), *b = sum of dy * xhat, xhat = (x - mean) * invstd in float */
static void plane_grad_sums(double *a, double *b, const float *dy, const float *x, float mean, float invstd,
                            int n) {
    if (n < SUM_LANES) {
        double sa = 0, sb = 0;
        for (int i = 0; i < n; i++) {
            sa += dy[i];
            sb += (double)dy[i] * ((x[i] - mean) * invstd);
        }
        *a = sa, *b = sb;
        return;
    }
    double la[SUM_LANES] = {0}, lb[SUM_LANES] = {0};
    int i = 0;
    for (; i + SUM_LANES <= n; i += SUM_LANES)
        for (int j = 0; j < SUM_LANES; j++) {
            la[j] += dy[i + j];
            lb[j] += (double)dy[i + j] * ((x[i + j] - mean) * invstd);
        }
    for (int j = 0; i < n; i++, j++) {
        la[j] += dy[i];
        lb[j] += (double)dy[i] * ((x[i] - mean) * invstd);
    }
    *a = sum_lanes_total(la), *b = sum_lanes_total(lb);
}

void batchnorm_sums(double *s, const float *x, int rows, int C, int HW) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < C; c++) {
            double a, q;
            plane_sums(&a, &q, x + ((size_t)r * C + c) * HW, HW);
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
            double a, b;
            plane_grad_sums(&a, &b, dy + o, x + o, mean[c], invstd[c], HW);
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
