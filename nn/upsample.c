/* upsample: the bilinear taps are computed per output row and column from
 * the same function in forward and backward, so they are exact adjoints;
 * the column taps once per plane, and (up to TAPS_MAX output columns) the
 * interpolation separably: along W once per input row, then along H per
 * output row, vectorised. One chunk of the pool per (image, channel) plane:
 * the same bits for any thread count. */
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

/* Bilinear rows, separably: row h of the plane interpolated along W (hrow:
 * Wo floats, the column taps ct), kept in slot h & 1 (tag[h & 1] = h) while
 * output rows need it; the output row is then (1 - th) hrow(h0) + th
 * hrow(h1), the same float operations as interpolating both rows per
 * output element. */
static const float *hrow(float (*slot)[TAPS_MAX], int *tag, const float *x, int h, int W, int Wo,
                         const ColTaps *ct) {
    float *r = slot[h & 1];
    if (tag[h & 1] == h) return r;
    const float *xr = x + (size_t)h * W;
    for (int ow = 0; ow < Wo; ow++)
        r[ow] = (1.0f - ct->tw[ow]) * xr[ct->w0[ow]] + ct->tw[ow] * xr[ct->w1[ow]];
    tag[h & 1] = h;
    return r;
}

/* dx row h += the horizontal adjoint of g (Wo), then g = 0. */
static void hrow_scatter(float *dx, float *g, int h, int W, int Wo, const ColTaps *ct) {
    float *r = dx + (size_t)h * W;
    for (int ow = 0; ow < Wo; ow++) {
        r[ct->w0[ow]] += (1.0f - ct->tw[ow]) * g[ow];
        r[ct->w1[ow]] += ct->tw[ow] * g[ow];
        g[ow] = 0.0f;
    }
}

static void up_forward_plane(void *p, int pl, int tid) {
    (void)tid;
    const Up *u = p;
    int H = u->H, W = u->W, s = u->s, Ho = H * s, Wo = W * s;
    const float *x = u->in + (size_t)pl * H * W;
    float *y = u->out + (size_t)pl * Ho * Wo;
    ColTaps ct;
    float slot[2][TAPS_MAX];
    int tag[2] = {-1, -1};
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
        if (pre) {
            const float *a = hrow(slot, tag, x, h0, W, Wo, &ct), *b = hrow(slot, tag, x, h1, W, Wo, &ct);
            for (int ow = 0; ow < Wo; ow++) yr[ow] = (1.0f - th) * a[ow] + th * b[ow];
            continue;
        }
        const float *r0 = x + (size_t)h0 * W, *r1 = x + (size_t)h1 * W;
        for (int ow = 0; ow < Wo; ow++) {
            upsample_taps(&w0, &w1, &tw, ow, W, s);
            yr[ow] = (1.0f - th) * ((1.0f - tw) * r0[w0] + tw * r0[w1]) +
                     th * ((1.0f - tw) * r1[w0] + tw * r1[w1]);
        }
    }
}

/* Bilinear, with the column taps: each output row's gradient is spread
 * over the two rows' slots (h & 1) of hg, and a row's slot, complete once
 * the output rows have moved past it (h0 grows with oh, h1 <= h0 + 1), is
 * scattered along W into dx. */
static void up_backward_separable(float *dx, const float *dy, int H, int W, int s, const ColTaps *ct) {
    int Ho = H * s, Wo = W * s, lo = 0;
    float hg[2][TAPS_MAX];
    memset(hg, 0, sizeof hg);
    for (int oh = 0; oh < Ho; oh++) {
        int h0, h1;
        float th;
        upsample_taps(&h0, &h1, &th, oh, H, s);
        for (; lo < h0; lo++) hrow_scatter(dx, hg[lo & 1], lo, W, Wo, ct);
        const float *g = dy + (size_t)oh * Wo;
        float *a = hg[h0 & 1], *b = hg[h1 & 1];
        for (int ow = 0; ow < Wo; ow++) a[ow] += (1.0f - th) * g[ow];
        for (int ow = 0; ow < Wo; ow++) b[ow] += th * g[ow];
    }
    for (; lo < H; lo++) hrow_scatter(dx, hg[lo & 1], lo, W, Wo, ct);
}

static void up_backward_plane(void *p, int pl, int tid) {
    (void)tid;
    const Up *u = p;
    int H = u->H, W = u->W, s = u->s, Ho = H * s, Wo = W * s;
    float *dx = u->din + (size_t)pl * H * W;
    const float *dy = u->dout + (size_t)pl * Ho * Wo;
    memset(dx, 0, (size_t)H * W * sizeof *dx);
    if (u->mode != UPSAMPLE_NEAREST && Wo <= TAPS_MAX) {
        ColTaps ct;
        for (int ow = 0; ow < Wo; ow++) upsample_taps(&ct.w0[ow], &ct.w1[ow], &ct.tw[ow], ow, W, s);
        up_backward_separable(dx, dy, H, W, s, &ct);
        return;
    }
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
