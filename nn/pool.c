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

/* The 2x2 stride-2 case without branches (select instead of if, so that
 * the compiler can vectorise over the row): the same first-maximum and
 * NaN-wins rule, in the same window order. */
static void maxpool2_plane(float *y, int32_t *id, const float *x, int W, int Ho, int Wo) {
    for (int oh = 0; oh < Ho; oh++) {
        const float *r0 = x + (size_t)2 * oh * W, *r1 = r0 + W;
        float *yo = y + (size_t)oh * Wo;
        int32_t *io = id + (size_t)oh * Wo, base = 2 * oh * W;
        for (int ow = 0; ow < Wo; ow++) {
            float v[4] = {r0[2 * ow], r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1]};
            int32_t off[4] = {0, 1, W, W + 1};
            float m = v[0];
            int32_t best = off[0];
            for (int k = 1; k < 4; k++) {
                int take = (v[k] > m) | (v[k] != v[k]); /* strict: first maximum wins; NaN wins */
                m = take ? v[k] : m;
                best = take ? off[k] : best;
            }
            yo[ow] = m;
            io[ow] = base + 2 * ow + best;
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
            maxpool2_plane(q->y + pl * HoWo, q->idx + pl * HoWo, q->x + pl * HW, W, Ho, Wo);
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
