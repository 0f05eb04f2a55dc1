/* upsample: the bilinear taps are computed per output row and column from
 * the same function in forward and backward, so they are exact adjoints. */
#include "upsample.h"

#include <stddef.h>
#include <string.h>

#include "util.h"

/* Source taps of output index d along an axis of n input samples: the
 * output is (1 - t) * x[i0] + t * x[i1]. PyTorch's area_pixel_compute_
 * source_index with align_corners=False, in float. */
static void upsample_taps(int *i0, int *i1, float *t, int d, int n, int s) {
    float scale = 1.0f / (float)s;
    float src = scale * ((float)d + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
    int a = (int)src;
    *i0 = a;
    *i1 = a + (a < n - 1 ? 1 : 0);
    *t = src - (float)a;
}

void upsample_forward(float *out, const float *in, int B, int C, int H, int W, int s, UpsampleMode mode) {
    ASSERT(s >= 1 && H > 0 && W > 0);
    int Ho = H * s, Wo = W * s;
    size_t planes = (size_t)B * C, HW = (size_t)H * W, HoWo = (size_t)Ho * Wo;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *x = in + pl * HW;
        float *y = out + pl * HoWo;
        for (int oh = 0; oh < Ho; oh++) {
            float *yr = y + (size_t)oh * Wo;
            if (mode == UPSAMPLE_NEAREST) {
                const float *xr = x + (size_t)(oh / s) * W;
                for (int ow = 0; ow < Wo; ow++) yr[ow] = xr[ow / s];
                continue;
            }
            int h0, h1, w0, w1;
            float th, tw;
            upsample_taps(&h0, &h1, &th, oh, H, s);
            const float *r0 = x + (size_t)h0 * W, *r1 = x + (size_t)h1 * W;
            for (int ow = 0; ow < Wo; ow++) {
                upsample_taps(&w0, &w1, &tw, ow, W, s);
                yr[ow] = (1.0f - th) * ((1.0f - tw) * r0[w0] + tw * r0[w1]) +
                         th * ((1.0f - tw) * r1[w0] + tw * r1[w1]);
            }
        }
    }
}

void upsample_backward(float *din, const float *dout, int B, int C, int H, int W, int s, UpsampleMode mode) {
    ASSERT(s >= 1 && H > 0 && W > 0);
    int Ho = H * s, Wo = W * s;
    size_t planes = (size_t)B * C, HW = (size_t)H * W, HoWo = (size_t)Ho * Wo;
    memset(din, 0, planes * HW * sizeof *din);
    for (size_t pl = 0; pl < planes; pl++) {
        float *dx = din + pl * HW;
        const float *dy = dout + pl * HoWo;
        for (int oh = 0; oh < Ho; oh++) {
            const float *g = dy + (size_t)oh * Wo;
            if (mode == UPSAMPLE_NEAREST) {
                float *xr = dx + (size_t)(oh / s) * W;
                for (int ow = 0; ow < Wo; ow++) xr[ow / s] += g[ow];
                continue;
            }
            int h0, h1, w0, w1;
            float th, tw;
            upsample_taps(&h0, &h1, &th, oh, H, s);
            float *r0 = dx + (size_t)h0 * W, *r1 = dx + (size_t)h1 * W;
            for (int ow = 0; ow < Wo; ow++) {
                upsample_taps(&w0, &w1, &tw, ow, W, s);
                float a = (1.0f - th) * g[ow], c = th * g[ow];
                r0[w0] += (1.0f - tw) * a;
                r0[w1] += tw * a;
                r1[w0] += (1.0f - tw) * c;
                r1[w1] += tw * c;
            }
        }
    }
}
