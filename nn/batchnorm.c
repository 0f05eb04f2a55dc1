/* batchnorm: see batchnorm.h. */
#include "batchnorm.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "parallel.h"
#include "pool.h"
#include "util.h"

/* The batch norm's output before the fused ReLU: one expression for the
 * forward and for the backward's mask, so that both round alike (with or
 * without FMA contraction: GCC -std=c11 contracts none), with sc and sh
 * from bn_affine. */
#define BN_V(xv, sc, sh) ((xv) * (sc) + (sh))
static inline void bn_affine(float *sc, float *sh, float mean, float invstd, float gamma, float beta) {
    *sc = invstd * gamma, *sh = beta - mean * *sc;
}

/* dy[i], or 0 where the ReLU after the batch norm output v <= 0
 * (relu_backward's rule on the ReLU's output max(v, 0), which is > 0 where
 * v is: the same bits as a separate ReLU); no ReLU: dy[i]. The backward
 * recomputes v from x (BN_V) instead of reading the ReLU's output: one
 * stream of memory fewer. relu is a constant at each call, so the loops are
 * compiled once each way. */
static inline float relu_cut(float d, float yv) { return yv > 0.0f ? d : 0.0f; }
/* (both loads unconditional, so that the loops vectorise) */
#define DY(i) (relu ? relu_cut(dy[i], BN_V(x[i], sc, sh)) : dy[i])

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

/* The lanes' share of grad_sums: va += d, vb += d * xhat, in double (one
 * rule for every path, so that they sum alike) */
static inline __attribute__((always_inline)) void lanes_grad_add(LanesD *va, LanesD *vb, const LanesF *d,
                                                                 const LanesF *xv, float mean, float invstd) {
    LanesD dd = __builtin_convertvector(*d, LanesD);
    *va += dd;
    *vb += dd * __builtin_convertvector((*xv - mean) * invstd, LanesD);
}

/* *a = sum of dy (n), *b = sum of dy * xhat, xhat = (x - mean) * invstd in
 * float; with relu, dy cut where the fused ReLU's output max(BN_V(x, sc,
 * sh), 0) is not > 0 first (relu_cut: the bits of these sums on
 * relu_backward's output). */
static inline __attribute__((always_inline)) void grad_sums(double *a, double *b, const float *dy,
                                                            const float *x, float mean, float invstd,
                                                            float sc, float sh, int n, int relu) {
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
        if (relu) /* relu_cut: +0 where the ReLU's output is not > 0 (v <= 0 or NaN) */
            d = (LanesF)((LanesI)d & (BN_V(xv, sc, sh) > 0.0f));
        lanes_grad_add(&va, &vb, &d, &xv, mean, invstd);
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
        float sc, sh;
        bn_affine(&sc, &sh, a->mean[c], a->invstd[c], a->gamma[c], a->beta[c]);
        float *y = a->out + o;
        const float *x = a->x + o;
        if (a->relu) {
            for (int i = 0; i < HW; i++) {
                float v = BN_V(x[i], sc, sh);
                y[i] = v < 0.0f ? 0.0f : v; /* relu_forward's rule */
            }
        } else {
            for (int i = 0; i < HW; i++) y[i] = BN_V(x[i], sc, sh);
        }
    }
}

void batchnorm_apply(float *y, const float *x, const float *mean, const float *invstd, const float *gamma,
                     const float *beta, int rows, int C, int HW, int relu) {
    BnPass a = {y, x, NULL, NULL, mean, invstd, gamma, beta, NULL, 0, C, HW, relu, NULL, NULL, 0, 0};
    parallel_for((size_t)rows * C, planes_grain(HW), apply_planes, &a);
}

void batchnorm_grad_sums(double *g, const float *dy, const float *x, const float *mean, const float *invstd,
                         const float *gamma, const float *beta, int rows, int C, int HW) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < C; c++) {
            size_t o = ((size_t)r * C + c) * HW;
            double a, b;
            if (beta) {
                float sc, sh;
                bn_affine(&sc, &sh, mean[c], invstd[c], gamma[c], beta[c]);
                grad_sums(&a, &b, dy + o, x + o, mean[c], invstd[c], sc, sh, HW, 1);
            } else {
                grad_sums(&a, &b, dy + o, x + o, mean[c], invstd[c], 0.0f, 0.0f, HW, 0);
            }
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
        const float *dy = a->dy + o, *x = a->x + o;
        float *dx = a->out + o;
        float k = a->gamma[c] * a->invstd[c], m1 = (float)(a->g[c] / a->N), m2 = (float)(a->g[C + c] / a->N);
        float mean = a->mean[c], invstd = a->invstd[c], sc = 0.0f, sh = 0.0f;
        if (relu) bn_affine(&sc, &sh, mean, invstd, a->gamma[c], a->beta[c]);
        for (int i = 0; i < HW; i++) {
            float xhat = (x[i] - mean) * invstd;
            dx[i] = k * (DY(i) - m1 - xhat * m2);
        }
    }
}

static void input_planes_relu(void *p, size_t lo, size_t hi) { input_planes(p, lo, hi, 1); }

static void input_planes_plain(void *p, size_t lo, size_t hi) { input_planes(p, lo, hi, 0); }

void batchnorm_backward_input(float *dx, const float *dy, const float *x, const float *mean,
                              const float *invstd, const float *gamma, const float *beta, const double *g,
                              double N, int rows, int C, int HW) {
    BnPass a = {dx, x, dy, NULL, mean, invstd, gamma, beta, g, N, C, HW, beta != NULL, NULL, NULL, 0, 0};
    parallel_for((size_t)rows * C, planes_grain(HW), beta ? input_planes_relu : input_planes_plain, &a);
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
        float sc, sh;
        bn_affine(&sc, &sh, a->mean[c], a->invstd[c], a->gamma[c], a->beta[c]);
        const float *x = a->x + pl * HW;
        for (int i = 0; i < HW; i++) {
            float v = BN_V(x[i], sc, sh);
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

/* Where a plane's rows are whole blocks of SUM_LANES values (W a multiple
 * of 16) and every row lies in a window (H even), t is made block by block
 * in registers instead: the block's 8 windows' 0 + dy, cut as above, each
 * taken by its two columns, kept where the window's argmax is the pixel
 * (unpool_block: the same values as t, no memset and no scattered stores). */
static int unpool_blocks(int H, int W) { return W % SUM_LANES == 0 && H % 2 == 0; }

typedef float Lanes8F __attribute__((vector_size(SUM_LANES / 2 * sizeof(float))));
typedef int32_t Lanes8I __attribute__((vector_size(SUM_LANES / 2 * sizeof(int32_t))));
_Static_assert(SUM_LANES == 16, "unpool_block takes 8 windows for 16 pixels");

/* t16 = t[i, i + 16) (a vector is not returned: its ABI differs with and without AVX-512) */
static inline __attribute__((always_inline)) void unpool_block(float *t16, const float *dy, const float *y,
                                                               const int32_t *id, int i, int W) {
    int o = (i / W / 2) * (W / 2) + i % W / 2; /* the block's first window */
    Lanes8F d8, y8;
    Lanes8I i8;
    memcpy(&d8, dy + o, sizeof d8), memcpy(&y8, y + o, sizeof y8), memcpy(&i8, id + o, sizeof i8);
    d8 = (Lanes8F)((Lanes8I)(0.0f + d8) & (y8 > 0.0f)); /* relu_cut(0 + dy, y) */
    LanesF d = __builtin_shufflevector(d8, d8, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    LanesI at = __builtin_shufflevector(i8, i8, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    const LanesI pix = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    d = (LanesF)((LanesI)d & (at == pix + i));
    memcpy(t16, &d, sizeof d);
}

/* grad_sums (relu = 0) on unpool_plane's t, t made by unpool_block */
static void grad_sums_unpool(double *a, double *b, const float *dy, const float *y, const int32_t *id,
                             const float *x, float mean, float invstd, int H, int W) {
    LanesD va = {0}, vb = {0};
    for (int i = 0; i < H * W; i += SUM_LANES) {
        float t16[SUM_LANES];
        unpool_block(t16, dy, y, id, i, W);
        LanesF d, xv;
        memcpy(&d, t16, sizeof d), memcpy(&xv, x + i, sizeof xv);
        lanes_grad_add(&va, &vb, &d, &xv, mean, invstd);
    }
    double la[SUM_LANES], lb[SUM_LANES];
    memcpy(la, &va, sizeof la), memcpy(lb, &vb, sizeof lb);
    *a = sum_lanes_total(la), *b = sum_lanes_total(lb);
}

void batchnorm_grad_sums_pool(double *g, const float *dy, const float *y, const int32_t *idx, const float *x,
                              const float *mean, const float *invstd, int rows, int C, int H, int W) {
    ASSERT(H >= 2 && W >= 2 && H * W <= BN_POOL_MAX_HW);
    int HW = H * W, HoWo = (H / 2) * (W / 2), blocks = unpool_blocks(H, W);
    float t[BN_POOL_MAX_HW];
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < C; c++) {
            size_t pl = (size_t)r * C + c;
            double a, b;
            if (blocks) {
                grad_sums_unpool(&a, &b, dy + pl * HoWo, y + pl * HoWo, idx + pl * HoWo, x + pl * HW, mean[c],
                                 invstd[c], H, W);
            } else {
                unpool_plane(t, dy + pl * HoWo, y + pl * HoWo, idx + pl * HoWo, HW, HoWo);
                grad_sums(&a, &b, t, x + pl * HW, mean[c], invstd[c], 0.0f, 0.0f, HW, 0);
            }
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
        const float *x = a->x + pl * HW;
        float *dx = a->out + pl * HW;
        float k = a->gamma[c] * a->invstd[c], m1 = (float)(a->g[c] / a->N), m2 = (float)(a->g[C + c] / a->N);
        float mean = a->mean[c], invstd = a->invstd[c];
        if (unpool_blocks(a->H, a->W)) { /* the loop below on unpool_block's t */
            for (int i = 0; i < HW; i += SUM_LANES) {
                float t16[SUM_LANES];
                unpool_block(t16, a->dy + pl * HoWo, a->y + pl * HoWo, a->iidx + pl * HoWo, i, a->W);
                LanesF d, xv;
                memcpy(&d, t16, sizeof d), memcpy(&xv, x + i, sizeof xv);
                LanesF xhat = (xv - mean) * invstd, v = k * (d - m1 - xhat * m2);
                memcpy(dx + i, &v, sizeof v);
            }
            continue;
        }
        unpool_plane(t, a->dy + pl * HoWo, a->y + pl * HoWo, a->iidx + pl * HoWo, HW, HoWo);
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
