/* pool: max pooling with argmax indices. */
#include "pool.h"

#include <math.h>
#include <string.h>

#include "util.h"

void maxpool_forward(float *out, int32_t *idx, const float *in, int B, int C, int H, int W, int size,
                     int stride) {
    ASSERT(size > 0 && stride > 0 && H >= size && W >= size);
    ASSERT((int64_t)H * W <= INT32_MAX);
    int Ho = maxpool_out_size(H, size, stride), Wo = maxpool_out_size(W, size, stride);
    size_t planes = (size_t)B * C, HW = (size_t)H * W, HoWo = (size_t)Ho * Wo;
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
