/* batchnorm: see batchnorm.h. */
#include "batchnorm.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "parallel.h"
#include "pool.h"
#include "util.h"

/* dy[i], or 0 where the ReLU after the batch norm output y[i] <= 0
 * (relu_backward's rule: the same bits as a separate ReLU); no ReLU: dy[i].
 * relu is a constant at each call, so the loops are compiled once each way. */
static inline float relu_cut(float d, float yv) { return yv > 0.0f ? d : 0.0f; }
/* (both loads unconditional, so that the loops vectorise) */
#define DY(i) (relu ? relu_cut(dy[i], y[i]) : dy[i])

/* A plane of at least SUM_LANES values is summed in lanes (nn/util.h:
 * sum_floats), two sums in one pass. The lanes are one GCC / Clang vector
 * of SUM_LANES doubles (two AVX-512 registers; as plain arrays behind
 * pointers GCC kept them in memory, one scalar add at a time): lane j still
 * takes the values i = j mod SUM_LANES in order, the same bits. Vectors go
 * in and out of the functions through memcpy, not as arguments (their ABI
 * differs with and without AVX-512; see mining/lanes.h). */
typedef double LanesD __attribute__((vector_size(SUM_LANES * sizeof(double))));
typedef float LanesF __attribute__((vector_size(SUM_LANES * sizeof(float))));
typedef int32_t LanesI __attribute__((vector_size(SUM_LANES * sizeof(int32_t))));

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
    LanesD va = {0}, vq = {0};
    int i = 0;
    for (; i + SUM_LANES <= n; i += SUM_LANES) {
        LanesF f;
        memcpy(&f, p + i, sizeof f);
        LanesD v = __builtin_convertvector(f, LanesD);
        va += v;
        vq += v * v;
    }
    double la[SUM_LANES], lq[SUM_LANES];
    memcpy(la, &va, sizeof la), memcpy(lq, &vq, sizeof lq);
    for (int j = 0; i < n; i++, j++) {
        double v = p[i];
        la[j] += v;
        lq[j] += v * v;
    }
    *a = sum_lanes_total(la), *q = sum_lanes_total(lq);
}

/* *a = sum of dy (n), *b = sum of dy * xhat, xhat = (x - mean) * invstd in
 * float; with relu, dy cut by the fused ReLU's output y first (relu_cut:
 * the bits of these sums on relu_backward's output). */
static inline __attribute__((always_inline)) void grad_sums(double *a, double *b, const float *dy,
                                                            const float *y, const float *x, float mean,
                                                            float invstd, int n, int relu) {
    if (n < SUM_LANES) {
        double sa = 0, sb = 0;
        for (int i = 0; i < n; i++) {
            float d = DY(i);
            sa += d;
            sb += (double)d * ((x[i] - mean) * invstd);
        }
        *a = sa, *b = sb;
        return;
    }
    LanesD va = {0}, vb = {0};
    int i = 0;
    for (; i + SUM_LANES <= n; i += SUM_LANES) {
        LanesF d, xv;
        memcpy(&d, dy + i, sizeof d);
        memcpy(&xv, x + i, sizeof xv);
        if (relu) {
            LanesF yv;
            memcpy(&yv, y + i, sizeof yv);
            d = (LanesF)((LanesI)d & (yv > 0.0f)); /* relu_cut: +0 where y <= 0 or NaN */
        }
        LanesD dd = __builtin_convertvector(d, LanesD);
        va += dd;
        vb += dd * __builtin_convertvector((xv - mean) * invstd, LanesD);
    }
    double la[SUM_LANES], lb[SUM_LANES];
    memcpy(la, &va, sizeof la), memcpy(lb, &vb, sizeof lb);
    for (int j = 0; i < n; i++, j++) {
        float d = DY(i);
        la[j] += d;
        lb[j] += (double)d * ((x[i] - mean) * invstd);
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
    int32_t *oidx;       /* the fused block's argmax: written (forward) */
    const int32_t *iidx; /* read (backward) */
    int H, W;
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
    BnPass a = {y, x, NULL, NULL, mean, invstd, gamma, beta, NULL, 0, C, HW, relu, NULL, NULL, 0, 0};
    parallel_for((size_t)rows * C, planes_grain(HW), apply_planes, &a);
}

void batchnorm_grad_sums(double *g, const float *dy, const float *y, const float *x, const float *mean,
                         const float *invstd, int rows, int C, int HW) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < C; c++) {
            size_t o = ((size_t)r * C + c) * HW;
            double a, b;
            if (y)
                grad_sums(&a, &b, dy + o, y + o, x + o, mean[c], invstd[c], HW, 1);
            else
                grad_sums(&a, &b, dy + o, NULL, x + o, mean[c], invstd[c], HW, 0);
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
    BnPass a = {dx, x, dy, y, mean, invstd, gamma, NULL, g, N, C, HW, y != NULL, NULL, NULL, 0, 0};
    parallel_for((size_t)rows * C, planes_grain(HW), y ? input_planes_relu : input_planes_plain, &a);
}

/* ---- batch norm + ReLU + 2 x 2 stride-2 max pooling as one block ---------- */

/* The forward normalises a plane into a buffer on the stack and pools it
 * from there, so the block writes only the pooled values and their argmax
 * (the ReLU's H x W output is never stored); the backward rebuilds each
 * plane's gradient of that output in a buffer from the pooled gradient,
 * output and argmax. Every value goes through the same operations as in
 * the three nodes one after the other: the same bits. */

static void apply_pool_planes(void *p, size_t lo, size_t hi) {
    const BnPass *a = p;
    int HW = a->HW, HoWo = (a->H / 2) * (a->W / 2);
    float t[BN_POOL_MAX_HW];
    for (size_t pl = lo; pl < hi; pl++) {
        int c = (int)(pl % (size_t)a->C);
        float sc = a->invstd[c] * a->gamma[c], sh = a->beta[c] - a->mean[c] * sc;
        const float *x = a->x + pl * HW;
        for (int i = 0; i < HW; i++) {
            float v = x[i] * sc + sh;
            t[i] = v < 0.0f ? 0.0f : v; /* relu_forward's rule */
        }
        maxpool2_plane(a->out + pl * HoWo, a->oidx + pl * HoWo, t, a->H, a->W);
    }
}

void batchnorm_apply_pool(float *y, int32_t *idx, const float *x, const float *mean, const float *invstd,
                          const float *gamma, const float *beta, int rows, int C, int H, int W) {
    ASSERT(H >= 2 && W >= 2 && H * W <= BN_POOL_MAX_HW);
    BnPass a = {y, x, NULL, NULL, mean, invstd, gamma, beta, NULL, 0, C, H * W, 1, idx, NULL, H, W};
    parallel_for((size_t)rows * C, planes_grain(H * W), apply_pool_planes, &a);
}

/* t (HW) = the gradient reaching the batch norm's output of one plane:
 * maxpool_backward's 0 + dy at each argmax, cut by relu_backward's rule where
 * the ReLU's output there (the pooled value y) is not > 0, +0 elsewhere. */
static void unpool_plane(float *t, const float *dy, const float *y, const int32_t *id, int HW, int HoWo) {
    memset(t, 0, (size_t)HW * sizeof *t);
    for (int o = 0; o < HoWo; o++) t[id[o]] = relu_cut(0.0f + dy[o], y[o]);
}

void batchnorm_grad_sums_pool(double *g, const float *dy, const float *y, const int32_t *idx, const float *x,
                              const float *mean, const float *invstd, int rows, int C, int H, int W) {
    ASSERT(H >= 2 && W >= 2 && H * W <= BN_POOL_MAX_HW);
    int HW = H * W, HoWo = (H / 2) * (W / 2);
    float t[BN_POOL_MAX_HW];
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < C; c++) {
            size_t pl = (size_t)r * C + c;
            double a, b;
            unpool_plane(t, dy + pl * HoWo, y + pl * HoWo, idx + pl * HoWo, HW, HoWo);
            grad_sums(&a, &b, t, NULL, x + pl * HW, mean[c], invstd[c], HW, 0);
            g[c] += a;
            g[C + c] += b;
        }
}

static void input_pool_planes(void *p, size_t lo, size_t hi) {
    const BnPass *a = p;
    int C = a->C, HW = a->HW, HoWo = (a->H / 2) * (a->W / 2);
    float t[BN_POOL_MAX_HW];
    for (size_t pl = lo; pl < hi; pl++) {
        int c = (int)(pl % (size_t)C);
        unpool_plane(t, a->dy + pl * HoWo, a->y + pl * HoWo, a->iidx + pl * HoWo, HW, HoWo);
        const float *x = a->x + pl * HW;
        float *dx = a->out + pl * HW;
        float k = a->gamma[c] * a->invstd[c], m1 = (float)(a->g[c] / a->N), m2 = (float)(a->g[C + c] / a->N);
        float mean = a->mean[c], invstd = a->invstd[c];
        for (int i = 0; i < HW; i++) {
            float xhat = (x[i] - mean) * invstd;
            dx[i] = k * (t[i] - m1 - xhat * m2);
        }
    }
}

void batchnorm_backward_input_pool(float *dx, const float *dy, const float *y, const int32_t *idx,
                                   const float *x, const float *mean, const float *invstd, const float *gamma,
                                   const double *g, double N, int rows, int C, int H, int W) {
    ASSERT(H >= 2 && W >= 2 && H * W <= BN_POOL_MAX_HW);
    BnPass a = {dx, x, dy, y, mean, invstd, gamma, NULL, g, N, C, H * W, 1, NULL, idx, H, W};
    parallel_for((size_t)rows * C, planes_grain(H * W), input_pool_planes, &a);
}
