/* upsample: the bilinear taps are computed per output row and column from
 * the same function in forward and backward, so they are exact adjoints;
 * the column taps once per plane. One chunk of the pool per (image,
 * channel) plane: the same bits for any thread count. */
#include "upsample.h"

#include <stddef.h>
#include <string.h>

#include "parallel.h"
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

/* Column taps of a whole output row, computed once per plane (the same
 * values upsample_taps gives each element). */
enum { TAPS_MAX = 4096 };
typedef struct ColTaps {
    int w0[TAPS_MAX], w1[TAPS_MAX];
    float tw[TAPS_MAX];
} ColTaps;

typedef struct Up {
    float *out, *din;
    const float *in, *dout;
    int H, W, s;
    UpsampleMode mode;
} Up;

static void up_forward_plane(void *p, int pl, int tid) {
    (void)tid;
    const Up *u = p;
    int H = u->H, W = u->W, s = u->s, Ho = H * s, Wo = W * s;
    const float *x = u->in + (size_t)pl * H * W;
    float *y = u->out + (size_t)pl * Ho * Wo;
    ColTaps ct;
    int pre = u->mode != UPSAMPLE_NEAREST && Wo <= TAPS_MAX;
    for (int ow = 0; pre && ow < Wo; ow++) upsample_taps(&ct.w0[ow], &ct.w1[ow], &ct.tw[ow], ow, W, s);
    for (int oh = 0; oh < Ho; oh++) {
        float *yr = y + (size_t)oh * Wo;
        if (u->mode == UPSAMPLE_NEAREST) {
            const float *xr = x + (size_t)(oh / s) * W;
            for (int ow = 0; ow < Wo; ow++) yr[ow] = xr[ow / s];
            continue;
        }
        int h0, h1, w0, w1;
        float th, tw;
        upsample_taps(&h0, &h1, &th, oh, H, s);
        const float *r0 = x + (size_t)h0 * W, *r1 = x + (size_t)h1 * W;
        for (int ow = 0; ow < Wo; ow++) {
            if (pre)
                w0 = ct.w0[ow], w1 = ct.w1[ow], tw = ct.tw[ow];
            else
                upsample_taps(&w0, &w1, &tw, ow, W, s);
            yr[ow] = (1.0f - th) * ((1.0f - tw) * r0[w0] + tw * r0[w1]) +
                     th * ((1.0f - tw) * r1[w0] + tw * r1[w1]);
        }
    }
}

static void up_backward_plane(void *p, int pl, int tid) {
    (void)tid;
    const Up *u = p;
    int H = u->H, W = u->W, s = u->s, Ho = H * s, Wo = W * s;
    float *dx = u->din + (size_t)pl * H * W;
    const float *dy = u->dout + (size_t)pl * Ho * Wo;
    memset(dx, 0, (size_t)H * W * sizeof *dx);
    ColTaps ct;
    int pre = u->mode != UPSAMPLE_NEAREST && Wo <= TAPS_MAX;
    for (int ow = 0; pre && ow < Wo; ow++) upsample_taps(&ct.w0[ow], &ct.w1[ow], &ct.tw[ow], ow, W, s);
    for (int oh = 0; oh < Ho; oh++) {
        const float *g = dy + (size_t)oh * Wo;
        if (u->mode == UPSAMPLE_NEAREST) {
            float *xr = dx + (size_t)(oh / s) * W;
            for (int ow = 0; ow < Wo; ow++) xr[ow / s] += g[ow];
            continue;
        }
        int h0, h1, w0, w1;
        float th, tw;
        upsample_taps(&h0, &h1, &th, oh, H, s);
        float *r0 = dx + (size_t)h0 * W, *r1 = dx + (size_t)h1 * W;
        for (int ow = 0; ow < Wo; ow++) {
            if (pre)
                w0 = ct.w0[ow], w1 = ct.w1[ow], tw = ct.tw[ow];
            else
                upsample_taps(&w0, &w1, &tw, ow, W, s);
            float a = (1.0f - th) * g[ow], c = th * g[ow];
            r0[w0] += (1.0f - tw) * a;
            r0[w1] += tw * a;
            r1[w0] += (1.0f - tw) * c;
            r1[w1] += tw * c;
        }
    }
}

void upsample_forward(float *out, const float *in, int B, int C, int H, int W, int s, UpsampleMode mode) {
    ASSERT(s >= 1 && H > 0 && W > 0);
    Up u = {.out = out, .in = in, .H = H, .W = W, .s = s, .mode = mode};
    parallel_run(B * C, up_forward_plane, &u);
}

void upsample_backward(float *din, const float *dout, int B, int C, int H, int W, int s, UpsampleMode mode) {
    ASSERT(s >= 1 && H > 0 && W > 0);
    Up u = {.din = din, .dout = dout, .H = H, .W = W, .s = s, .mode = mode};
    parallel_run(B * C, up_backward_plane, &u);
}
