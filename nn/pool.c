/* pool: max pooling with argmax indices, planes split over the pool. */
#include "pool.h"

#include <math.h>
#include <string.h>

#include "parallel.h"
#include "util.h"

typedef struct Pool {
    float *y;
    int32_t *idx;
    const float *x;
    const int32_t *cidx;
    int H, W, Ho, Wo, size, stride;
} Pool;

/* The 2x2 stride-2 case, sixteen outputs at a time in GCC / Clang vectors
 * (one AVX-512 register each): each row's 32 inputs split into even and odd
 * columns, then the same first-maximum and NaN-wins rule in the same window
 * order as one output at a time (select instead of if). A block whose 32
 * inputs would reach past the plane is copied first; a short block's
 * outputs are copied out, so nothing outside the plane is read or written. */
typedef float PoolF __attribute__((vector_size(64)));
typedef int32_t PoolI __attribute__((vector_size(64)));
#define POOL_LANES 16

void maxpool2_plane(float *y, int32_t *id, const float *x, int H, int W) {
    int Ho = H / 2, Wo = W / 2;
    const PoolI even = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
    for (int oh = 0; oh < Ho; oh++) {
        float *yo = y + (size_t)oh * Wo;
        int32_t *io = id + (size_t)oh * Wo;
        for (int ow = 0; ow < Wo; ow += POOL_LANES) {
            size_t o0 = (size_t)2 * oh * W + 2 * (size_t)ow;
            const float *r0 = x + o0, *r1 = r0 + W;
            float b0[2 * POOL_LANES], b1[2 * POOL_LANES];
            if (o0 + W + 2 * POOL_LANES > (size_t)H * W) { /* the plane's end: copy what is there */
                int n = MIN(2 * POOL_LANES, W - 2 * ow);
                memset(b0, 0, sizeof b0), memset(b1, 0, sizeof b1);
                memcpy(b0, r0, (size_t)n * sizeof *b0), memcpy(b1, r1, (size_t)n * sizeof *b1);
                r0 = b0, r1 = b1;
            }
            PoolF a0, a1, c0, c1;
            memcpy(&a0, r0, sizeof a0), memcpy(&a1, r0 + POOL_LANES, sizeof a1);
            memcpy(&c0, r1, sizeof c0), memcpy(&c1, r1 + POOL_LANES, sizeof c1);
            PoolF v[4] = {
                __builtin_shufflevector(a0, a1, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30),
                __builtin_shufflevector(a0, a1, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31),
                __builtin_shufflevector(c0, c1, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30),
                __builtin_shufflevector(c0, c1, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31)};
            const int32_t off[4] = {0, 1, W, W + 1};
            PoolF m = v[0];
            PoolI best = (PoolI){0} + off[0];
            for (int k = 1; k < 4; k++) {
                PoolI take = (v[k] > m) | (v[k] != v[k]); /* strict: first maximum wins; NaN wins */
                m = (PoolF)(((PoolI)v[k] & take) | ((PoolI)m & ~take));
                best = (((PoolI){0} + off[k]) & take) | (best & ~take);
            }
            PoolI ix = best + even + (int32_t)o0;
            int n = MIN(POOL_LANES, Wo - ow);
            if (n == POOL_LANES) {
                memcpy(yo + ow, &m, sizeof m), memcpy(io + ow, &ix, sizeof ix);
            } else {
                memcpy(yo + ow, &m, (size_t)n * sizeof *yo), memcpy(io + ow, &ix, (size_t)n * sizeof *io);
            }
        }
    }
}

/* Planes [lo, hi) of the forward. */
static void pool_planes(void *p, size_t lo, size_t hi) {
    const Pool *q = p;
    int H = q->H, W = q->W, Ho = q->Ho, Wo = q->Wo, size = q->size, stride = q->stride;
    size_t HW = (size_t)H * W, HoWo = (size_t)Ho * Wo;
    if (size == 2 && stride == 2) {
        for (size_t pl = lo; pl < hi; pl++)
            maxpool2_plane(q->y + pl * HoWo, q->idx + pl * HoWo, q->x + pl * HW, H, W);
        return;
    }
    for (size_t pl = lo; pl < hi; pl++) {
        const float *x = q->x + pl * HW;
        float *y = q->y + pl * HoWo;
        int32_t *id = q->idx + pl * HoWo;
        for (int oh = 0; oh < Ho; oh++) {
            for (int ow = 0; ow < Wo; ow++) {
                int h0 = oh * stride, w0 = ow * stride;
                int32_t best = h0 * W + w0;
                float m = -INFINITY;
                for (int kh = 0; kh < size; kh++) {
                    const float *r = x + (size_t)(h0 + kh) * W + w0;
                    for (int kw = 0; kw < size; kw++) {
                        float v = r[kw];
                        if (v > m || isnan(v)) { /* strict: first maximum wins */
                            m = v;
                            best = (h0 + kh) * W + w0 + kw;
                        }
                    }
                }
                y[(size_t)oh * Wo + ow] = m;
                id[(size_t)oh * Wo + ow] = best;
            }
        }
    }
}

/* Planes [lo, hi) of the backward: zeroed, then the gradients scattered. */
static void unpool_planes(void *p, size_t lo, size_t hi) {
    const Pool *q = p;
    size_t HW = (size_t)q->H * q->W, HoWo = (size_t)q->Ho * q->Wo;
    memset(q->y + lo * HW, 0, (hi - lo) * HW * sizeof(float));
    for (size_t pl = lo; pl < hi; pl++) {
        float *dx = q->y + pl * HW;
        const float *dy = q->x + pl * HoWo;
        const int32_t *id = q->cidx + pl * HoWo;
        for (size_t o = 0; o < HoWo; o++) dx[id[o]] += dy[o];
    }
}

void maxpool_forward(float *out, int32_t *idx, const float *in, int B, int C, int H, int W, int size,
                     int stride) {
    ASSERT(size > 0 && stride > 0 && H >= size && W >= size);
    ASSERT((int64_t)H * W <= INT32_MAX);
    int Ho = maxpool_out_size(H, size, stride), Wo = maxpool_out_size(W, size, stride);
    Pool q = {out, idx, in, NULL, H, W, Ho, Wo, size, stride};
    parallel_for((size_t)B * C, MAX((size_t)1, PARALLEL_GRAIN / ((size_t)H * W)), pool_planes, &q);
}

void maxpool_backward(float *din, const float *dout, const int32_t *idx, int B, int C, int H, int W, int size,
                      int stride) {
    int Ho = maxpool_out_size(H, size, stride), Wo = maxpool_out_size(W, size, stride);
    Pool q = {din, NULL, dout, idx, H, W, Ho, Wo, size, stride};
    parallel_for((size_t)B * C, MAX((size_t)1, PARALLEL_GRAIN / ((size_t)H * W)), unpool_planes, &q);
}
