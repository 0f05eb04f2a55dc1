/* batchnorm: see batchnorm.h. */
#include "batchnorm.h"

#include <stddef.h>

#include "parallel.h"
#include "util.h"

/* dy[i], or 0 where the ReLU after the batch norm output y[i] <= 0
 * (relu_backward's rule: the same bits as a separate ReLU); no ReLU: dy[i].
 * relu is a constant at each call, so the loops are compiled once each way. */
static inline float relu_cut(float d, float yv) { return yv > 0.0f ? d : 0.0f; }
/* (both loads unconditional, so that the loops vectorise) */
#define DY(i) (relu ? relu_cut(dy[i], y[i]) : dy[i])

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

/* la[j], lb[j] += dy and dy * xhat, xhat = (x - mean) * invstd in float,
 * over n values in whole lanes, then the tail into lanes 0, 1, ... */
static void grad_lanes(double *la, double *lb, const float *dy, const float *x, float mean, float invstd,
                       int n) {
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
}

/* *a = sum of dy (n), *b = sum of dy * xhat, xhat = (x - mean) * invstd in
 * float. */
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
    grad_lanes(la, lb, dy, x, mean, invstd, n);
    *a = sum_lanes_total(la), *b = sum_lanes_total(lb);
}

/* The same with dy cut by a fused ReLU's output y: the cut values staged in
 * blocks of RELU_BLOCK floats (a multiple of SUM_LANES; a select inside the
 * sums' loop was 4x slower), added in the same lanes and order: the bits of
 * plane_grad_sums on relu_backward's output. */
#define RELU_BLOCK 1024
static void plane_grad_sums_relu(double *a, double *b, const float *dy, const float *y, const float *x,
                                 float mean, float invstd, int n) {
    float t[RELU_BLOCK];
    if (n < SUM_LANES) {
        for (int i = 0; i < n; i++) t[i] = relu_cut(dy[i], y[i]);
        plane_grad_sums(a, b, t, x, mean, invstd, n);
        return;
    }
    double la[SUM_LANES] = {0}, lb[SUM_LANES] = {0};
    for (int i = 0, len; i < n; i += len) {
        len = MIN(RELU_BLOCK, n - i);
        for (int k = 0; k < len; k++) t[k] = relu_cut(dy[i + k], y[i + k]);
        grad_lanes(la, lb, t, x + i, mean, invstd, len);
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

/* The elementwise passes run on the pool in chunks of whole planes (about
 * PARALLEL_GRAIN floats; they depend on HW only): each value is computed
 * alone, so the bits do not depend on the thread count. */
typedef struct BnPass {
    float *out;
    const float *x, *dy, *y, *mean, *invstd, *gamma, *beta;
    const double *g;
    double N;
    int C, HW, relu;
} BnPass;

static size_t planes_grain(int HW) {
    size_t g = PARALLEL_GRAIN / (size_t)HW;
    return g ? g : 1;
}

static void apply_planes(void *p, size_t lo, size_t hi) {
    const BnPass *a = p;
    int HW = a->HW;
    for (size_t pl = lo; pl < hi; pl++) {
        int c = (int)(pl % (size_t)a->C);
        size_t o = pl * HW;
        float sc = a->invstd[c] * a->gamma[c], sh = a->beta[c] - a->mean[c] * sc;
        float *y = a->out + o;
        const float *x = a->x + o;
        if (a->relu) {
            for (int i = 0; i < HW; i++) {
                float v = x[i] * sc + sh;
                y[i] = v < 0.0f ? 0.0f : v; /* relu_forward's rule */
            }
        } else {
            for (int i = 0; i < HW; i++) y[i] = x[i] * sc + sh;
        }
    }
}

void batchnorm_apply(float *y, const float *x, const float *mean, const float *invstd, const float *gamma,
                     const float *beta, int rows, int C, int HW, int relu) {
    BnPass a = {y, x, NULL, NULL, mean, invstd, gamma, beta, NULL, 0, C, HW, relu};
    parallel_for((size_t)rows * C, planes_grain(HW), apply_planes, &a);
}

void batchnorm_grad_sums(double *g, const float *dy, const float *y, const float *x, const float *mean,
                         const float *invstd, int rows, int C, int HW) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < C; c++) {
            size_t o = ((size_t)r * C + c) * HW;
            double a, b;
            if (y)
                plane_grad_sums_relu(&a, &b, dy + o, y + o, x + o, mean[c], invstd[c], HW);
            else
                plane_grad_sums(&a, &b, dy + o, x + o, mean[c], invstd[c], HW);
            g[c] += a;
            g[C + c] += b;
        }
}

static inline __attribute__((always_inline)) void input_planes(const BnPass *a, size_t lo, size_t hi,
                                                               int relu) {
    int C = a->C, HW = a->HW;
    for (size_t pl = lo; pl < hi; pl++) {
        int c = (int)(pl % (size_t)C);
        size_t o = pl * HW;
        const float *dy = a->dy + o, *y = (relu ? a->y : a->dy) + o, *x = a->x + o;
        float *dx = a->out + o;
        float k = a->gamma[c] * a->invstd[c], m1 = (float)(a->g[c] / a->N), m2 = (float)(a->g[C + c] / a->N);
        float mean = a->mean[c], invstd = a->invstd[c];
        for (int i = 0; i < HW; i++) {
            float xhat = (x[i] - mean) * invstd;
            dx[i] = k * (DY(i) - m1 - xhat * m2);
        }
    }
}

static void input_planes_relu(void *p, size_t lo, size_t hi) { input_planes(p, lo, hi, 1); }

static void input_planes_plain(void *p, size_t lo, size_t hi) { input_planes(p, lo, hi, 0); }

void batchnorm_backward_input(float *dx, const float *dy, const float *y, const float *x, const float *mean,
                              const float *invstd, const float *gamma, const double *g, double N, int rows,
                              int C, int HW) {
    BnPass a = {dx, x, dy, y, mean, invstd, gamma, NULL, g, N, C, HW, y != NULL};
    parallel_for((size_t)rows * C, planes_grain(HW), y ? input_planes_relu : input_planes_plain, &a);
}
