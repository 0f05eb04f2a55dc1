/* pool: max pooling with argmax indices. */
#include "pool.h"

#include <math.h>
#include <string.h>

#include "util.h"

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

void maxpool_forward(float *out, int32_t *idx, const float *in, int B, int C, int H, int W, int size,
                     int stride) {
    ASSERT(size > 0 && stride > 0 && H >= size && W >= size);
    ASSERT((int64_t)H * W <= INT32_MAX);
    int Ho = maxpool_out_size(H, size, stride), Wo = maxpool_out_size(W, size, stride);
    size_t planes = (size_t)B * C, HW = (size_t)H * W, HoWo = (size_t)Ho * Wo;
    if (size == 2 && stride == 2) {
        for (size_t pl = 0; pl < planes; pl++) maxpool2_plane(out + pl * HoWo, idx + pl * HoWo, in + pl * HW, W, Ho, Wo);
        return;
    }
    for (size_t pl = 0; pl < planes; pl++) {
        const float *x = in + pl * HW;
        float *y = out + pl * HoWo;
        int32_t *id = idx + pl * HoWo;
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

void maxpool_backward(float *din, const float *dout, const int32_t *idx, int B, int C, int H, int W, int size,
                      int stride) {
    int Ho = maxpool_out_size(H, size, stride), Wo = maxpool_out_size(W, size, stride);
    size_t planes = (size_t)B * C, HW = (size_t)H * W, HoWo = (size_t)Ho * Wo;
    memset(din, 0, planes * HW * sizeof *din);
    for (size_t pl = 0; pl < planes; pl++) {
        float *dx = din + pl * HW;
        const float *dy = dout + pl * HoWo;
        const int32_t *id = idx + pl * HoWo;
        for (size_t o = 0; o < HoWo; o++) dx[id[o]] += dy[o];
    }
}
