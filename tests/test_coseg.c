/* Tests of the co-segmentation layers: mutual correlation (reference loops
 * in double, the c_AB / c_BA symmetry, finite differences for both inputs,
 * gradients accumulating; plain, cosine and with the max channel) and 2-D upsampling (PyTorch's bilinear
 * values on a known case, nearest by replication, finite differences, din written). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/correlation.h"
#include "../nn/parallel.h"
#include "../nn/upsample.h"
#include "../nn/util.h"
#include "fixture_num.h"
#include "test.h"

static Rng rng;

/* ---- correlation ------------------------------------------------------- */

typedef struct CorrCase {
    int B, C, H, W, D, dil, flags;
    float scale;
    float *fa, *fb, *out, *R, *ws;
} CorrCase;

static size_t corr_outs(const CorrCase *c) {
    return (size_t)c->B * correlation_channels(c->D, c->flags) * c->H * c->W;
}

static double corr_loss(void *ctx) {
    CorrCase *c = ctx;
    correlation_forward(c->out, c->fa, c->fb, c->B, c->C, c->H, c->W, c->D, c->dil, c->scale, c->flags,
                        c->ws);
    return fixture_dot(c->out, c->R, corr_outs(c));
}

/* ref (B, OC, H, W) in double loops: the dot products of the (normalised)
 * maps at each displacement, then the max over the ones inside the map and
 * its displacement arg (B, H, W). */
static void corr_reference(float *ref, int *arg, const CorrCase *c) {
    int B = c->B, C = c->C, H = c->H, W = c->W, D = c->D, dil = c->dil, r = (D - 1) / 2;
    int OC = correlation_channels(D, c->flags);
    size_t HW = (size_t)H * W;
    double *na = calloc((size_t)B * C * HW, sizeof *na), *nb = calloc((size_t)B * C * HW, sizeof *nb);
    for (size_t bp = 0; bp < (size_t)B * HW; bp++) {
        size_t b = bp / HW, p = bp % HW;
        double sa = 0.0, sb = 0.0;
        for (int ch = 0; ch < C; ch++) {
            size_t i = (b * C + ch) * HW + p;
            sa += (double)c->fa[i] * c->fa[i], sb += (double)c->fb[i] * c->fb[i];
        }
        sa = c->flags & CORR_COSINE ? fmax(sqrt(sa), CORR_EPS) : 1.0;
        sb = c->flags & CORR_COSINE ? fmax(sqrt(sb), CORR_EPS) : 1.0;
        for (int ch = 0; ch < C; ch++) {
            size_t i = (b * C + ch) * HW + p;
            na[i] = c->fa[i] / sa, nb[i] = c->fb[i] / sb;
        }
    }
    for (int b = 0; b < B; b++)
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) {
                double best = -INFINITY;
                for (int k = 0; k < D * D; k++) {
                    int m = i + (k / D - r) * dil, n = j + (k % D - r) * dil;
                    double s = 0.0;
                    int inside = m >= 0 && m < H && n >= 0 && n < W;
                    if (inside)
                        for (int ch = 0; ch < C; ch++)
                            s += na[(((size_t)b * C + ch) * H + i) * W + j] *
                                 nb[(((size_t)b * C + ch) * H + m) * W + n];
                    ref[(((size_t)b * OC + k) * H + i) * W + j] = (float)(c->scale * s);
                    if (inside && c->scale * s > best) {
                        best = c->scale * s;
                        arg[((size_t)b * H + i) * W + j] = k;
                    }
                }
                if (c->flags & CORR_MAX) ref[(((size_t)b * OC + D * D) * H + i) * W + j] = (float)best;
            }
    free(na), free(nb);
}

static void test_correlation(int B, int C, int H, int W, int D, int dil, float scale, int flags) {
    char what[128];
    snprintf(what, sizeof what, "correlation B%d C%d %dx%d D%d dil%d%s%s", B, C, H, W, D, dil,
             flags & CORR_COSINE ? " cosine" : "", flags & CORR_MAX ? " max" : "");
    size_t nf = (size_t)B * C * H * W;
    CorrCase c = {B, C, H, W, D, dil, flags, scale, NULL, NULL, NULL, NULL, NULL};
    size_t no = corr_outs(&c);
    c.ws = xaligned_floats(correlation_workspace_floats(C, H, W, D, dil, flags) + 1);
    c.fa = fixture_rand_floats(&rng, nf, -1, 1);
    c.fb = fixture_rand_floats(&rng, nf, -1, 1);
    c.out = xaligned_floats(no);
    c.R = fixture_rand_floats(&rng, no, -1, 1);
    corr_loss(&c);
    float *ref = xaligned_floats(no);
    int *arg = calloc((size_t)B * H * W, sizeof *arg);
    corr_reference(ref, arg, &c);
    double e = fixture_max_rel_err(c.out, ref, no);
    CHECK(e < 1e-5, "%s: forward vs reference, rel err %g", what, e);

    /* c_BA(m, n, -k) == c_AB(i, j, k) */
    int r = (D - 1) / 2, OC = correlation_channels(D, flags), DD = D * D;
    size_t HW = (size_t)H * W;
    float *ba = xaligned_floats(no);
    correlation_forward(ba, c.fb, c.fa, B, C, H, W, D, dil, scale, flags, c.ws);
    int bad = 0;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < DD; k++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++) {
                    int m = i + (k / D - r) * dil, n = j + (k % D - r) * dil;
                    if (m < 0 || m >= H || n < 0 || n >= W) continue;
                    int kk = DD - 1 - k;
                    bad += fabsf(ba[(((size_t)b * OC + kk) * H + m) * W + n] -
                                 c.out[(((size_t)b * OC + k) * H + i) * W + j]) > 1e-5f;
                }
    CHECK(bad == 0, "%s: c_BA is c_AB at the opposite displacement (%d differ)", what, bad);

    /* The max channel's gradient is that of the value it took: its dout
     * moved to the reference's displacement of the max gives the same
     * gradients. Finite differences check the D*D channels (a max is not
     * differentiable where a step changes its displacement). */
    float *dfa = xaligned_floats(nf), *dfb = xaligned_floats(nf);
    if (flags & CORR_MAX) {
        float *dmax = xaligned_floats(no), *moved = xaligned_floats(no);
        float *ga = xaligned_floats(nf), *gb = xaligned_floats(nf);
        for (int b = 0; b < B; b++)
            for (size_t q = 0; q < HW; q++) {
                size_t at = ((size_t)b * OC + DD) * HW + q;
                dmax[at] = c.R[at], c.R[at] = 0.0f; /* the FD below: the D*D channels only */
                moved[((size_t)b * OC + arg[b * HW + q]) * HW + q] = dmax[at];
            }
        correlation_backward(dfa, dfb, dmax, c.out, c.fa, c.fb, B, C, H, W, D, dil, scale, flags, c.ws);
        correlation_backward(ga, gb, moved, c.out, c.fa, c.fb, B, C, H, W, D, dil, scale, flags, c.ws);
        e = fmax(fixture_max_rel_err(dfa, ga, nf), fixture_max_rel_err(dfb, gb, nf));
        CHECK(e < 1e-5, "%s: the max channel's gradient is its displacement's, rel err %g", what, e);
        memset(dfa, 0, nf * sizeof *dfa), memset(dfb, 0, nf * sizeof *dfb);
        free(dmax), free(moved), free(ga), free(gb);
    }
    correlation_backward(dfa, dfb, c.R, c.out, c.fa, c.fb, B, C, H, W, D, dil, scale, flags, c.ws);
    float h = flags & CORR_COSINE ? 2e-3f : 0.05f;
    e = fixture_fd_error(corr_loss, &c, c.fa, dfa, nf, h, nf, NULL);
    CHECK(e < 1e-3, "%s: dfa vs finite differences, rel err %g", what, e);
    e = fixture_fd_error(corr_loss, &c, c.fb, dfb, nf, h, nf, NULL);
    CHECK(e < 1e-3, "%s: dfb vs finite differences, rel err %g", what, e);

    float *twice = xaligned_floats(nf);
    for (size_t i = 0; i < nf; i++) twice[i] = 2 * dfa[i];
    correlation_backward(dfa, NULL, c.R, c.out, c.fa, c.fb, B, C, H, W, D, dil, scale, flags, c.ws);
    CHECK(fixture_max_rel_err(dfa, twice, nf) < 1e-6, "%s: dfa accumulates, dfb NULL skipped", what);
    free(c.fa), free(c.fb), free(c.out), free(c.R), free(ref), free(arg), free(ba), free(dfa), free(dfb),
        free(twice), free(c.ws);
}

/* The images split across the pool: 1 and 3 threads give the same bits,
 * in both forms (GEMM: a window as large as the map; direct loops). */
static void test_correlation_threads(int C, int H, int W, int D, int dil, int flags) {
    int B = 5;
    size_t nf = (size_t)B * C * H * W, no = (size_t)B * correlation_channels(D, flags) * H * W;
    float *fa = fixture_rand_floats(&rng, nf, -1, 1), *fb = fixture_rand_floats(&rng, nf, -1, 1);
    float *R = fixture_rand_floats(&rng, no, -1, 1);
    float *out[2], *dfa[2], *dfb[2];
    parallel_init(3);
    float *ws = xaligned_floats(correlation_workspace_floats(C, H, W, D, dil, flags) + 1); /* 3 threads' */
    for (int t = 0; t < 2; t++) {
        parallel_init(t ? 3 : 1);
        out[t] = xaligned_floats(no), dfa[t] = xaligned_floats(nf), dfb[t] = xaligned_floats(nf);
        memset(dfa[t], 0, nf * sizeof(float)), memset(dfb[t], 0, nf * sizeof(float));
        correlation_forward(out[t], fa, fb, B, C, H, W, D, dil, 1.0f / C, flags, ws);
        correlation_backward(dfa[t], dfb[t], R, out[t], fa, fb, B, C, H, W, D, dil, 1.0f / C, flags, ws);
    }
    parallel_init(1);
    CHECK(!memcmp(out[0], out[1], no * sizeof(float)) && !memcmp(dfa[0], dfa[1], nf * sizeof(float)) &&
              !memcmp(dfb[0], dfb[1], nf * sizeof(float)),
          "correlation C%d %dx%d D%d dil%d flags %d: 1 and 3 threads bit-identical", C, H, W, D, dil, flags);
    free(fa), free(fb), free(R), free(ws);
    for (int t = 0; t < 2; t++) free(out[t]), free(dfa[t]), free(dfb[t]);
}

/* ---- upsample ------------------------------------------------------------ */

typedef struct UpCase {
    int B, C, H, W, s;
    UpsampleMode mode;
    float *in, *out, *R;
} UpCase;

static double up_loss(void *ctx) {
    UpCase *u = ctx;
    upsample_forward(u->out, u->in, u->B, u->C, u->H, u->W, u->s, u->mode);
    return fixture_dot(u->out, u->R, (size_t)u->B * u->C * u->H * u->s * u->W * u->s);
}

/* PyTorch's source index (align_corners = False) along an axis of n, in float. */
static void up_ref_taps(int *i0, int *i1, float *t, int d, int n, int s) {
    float src = 1.0f / (float)s * ((float)d + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
    *i0 = (int)src;
    *i1 = *i0 + (*i0 < n - 1);
    *t = src - (float)*i0;
}

/* Bilinear: the output element by element (both rows interpolated along W,
 * then along H, in float) equals the kernel's bit for bit; din equals the
 * adjoint summed in double to rounding. */
static void up_reference(const UpCase *u, const float *din, const char *what) {
    int H = u->H, W = u->W, s = u->s, Ho = H * s, Wo = W * s;
    size_t ni = (size_t)u->B * u->C * H * W;
    double *g = xcalloc(ni, sizeof *g);
    int bad = 0;
    for (int pl = 0; pl < u->B * u->C; pl++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                int h0, h1, w0, w1;
                float th, tw;
                up_ref_taps(&h0, &h1, &th, oh, H, s);
                up_ref_taps(&w0, &w1, &tw, ow, W, s);
                const float *r0 = u->in + ((size_t)pl * H + h0) * W, *r1 = u->in + ((size_t)pl * H + h1) * W;
                float y = (1.0f - th) * ((1.0f - tw) * r0[w0] + tw * r0[w1]) +
                          th * ((1.0f - tw) * r1[w0] + tw * r1[w1]);
                size_t o = ((size_t)pl * Ho + oh) * Wo + ow;
                bad += memcmp(&y, &u->out[o], sizeof y) != 0;
                double d = u->R[o], *g0 = g + ((size_t)pl * H + h0) * W, *g1 = g + ((size_t)pl * H + h1) * W;
                g0[w0] += (1.0 - th) * (1.0 - tw) * d;
                g0[w1] += (1.0 - th) * tw * d;
                g1[w0] += th * (1.0 - tw) * d;
                g1[w1] += th * tw * d;
            }
    CHECK(bad == 0, "%s: forward equals the element-by-element formula bit for bit (%d differ)", what, bad);
    double e = 0;
    for (size_t i = 0; i < ni; i++) e = fmax(e, fabs(din[i] - g[i]));
    CHECK(e < 1e-5 * s * s, "%s: din equals the adjoint summed in double (max abs err %g)", what, e);
    free(g);
}

static void test_upsample(int B, int C, int H, int W, int s, UpsampleMode mode) {
    char what[96];
    snprintf(what, sizeof what, "upsample %s B%d C%d %dx%d x%d",
             mode == UPSAMPLE_NEAREST ? "nearest" : "bilinear", B, C, H, W, s);
    size_t ni = (size_t)B * C * H * W, no = ni * s * s;
    UpCase u = {B, C, H, W, s, mode, NULL, NULL, NULL};
    u.in = fixture_rand_floats(&rng, ni, -1, 1);
    u.out = xaligned_floats(no);
    u.R = fixture_rand_floats(&rng, no, -1, 1);
    up_loss(&u);
    if (mode == UPSAMPLE_NEAREST) {
        int bad = 0;
        for (size_t pl = 0; pl < (size_t)B * C; pl++)
            for (int oh = 0; oh < H * s; oh++)
                for (int ow = 0; ow < W * s; ow++)
                    bad += u.out[(pl * H * s + oh) * W * s + ow] != u.in[(pl * H + oh / s) * W + ow / s];
        CHECK(bad == 0, "%s: replication (%d differ)", what, bad);
    }
    float *din = fixture_rand_floats(&rng, ni, -1, 1);
    upsample_backward(din, u.R, B, C, H, W, s, mode);
    if (mode == UPSAMPLE_BILINEAR) up_reference(&u, din, what);
    double e = fixture_fd_error(up_loss, &u, u.in, din, ni, 0.05f, ni, NULL);
    CHECK(e < 1e-3, "%s: din vs finite differences, rel err %g", what, e);
    float *again = xaligned_floats(ni);
    upsample_backward(again, u.R, B, C, H, W, s, mode);
    upsample_backward(again, u.R, B, C, H, W, s, mode);
    CHECK(memcmp(again, din, ni * sizeof *din) == 0, "%s: din written, not added", what);
    free(u.in), free(u.out), free(u.R), free(din), free(again);
}

static void test_upsample_golden(void) {
    /* torch.nn.Upsample(scale_factor=2, mode='bilinear')(tensor([[1, 2], [3, 4]])) */
    const float in[4] = {1, 2, 3, 4};
    const float want[16] = {1.0f, 1.25f, 1.75f, 2.0f, 1.5f, 1.75f, 2.25f, 2.5f,
                            2.5f, 2.75f, 3.25f, 3.5f, 3.0f, 3.25f, 3.75f, 4.0f};
    float out[16];
    upsample_forward(out, in, 1, 1, 2, 2, 2, UPSAMPLE_BILINEAR);
    double e = fixture_max_rel_err(out, want, 16);
    CHECK(e < 1e-7, "bilinear 2x2 -> 4x4 equals PyTorch's values (rel err %g)", e);
    /* scale 3 on a 1x3 row (3 equal output rows): src = (d + 0.5)/3 - 0.5,
     * clamped to [0, 2] */
    const float row[3] = {0, 3, 6};
    float o3[27];
    upsample_forward(o3, row, 1, 1, 1, 3, 3, UPSAMPLE_BILINEAR);
    const float r3[9] = {0, 0, 1, 2, 3, 4, 5, 6, 6};
    float want3[27];
    for (int i = 0; i < 27; i++) want3[i] = r3[i % 9];
    e = fixture_max_rel_err(o3, want3, 27);
    CHECK(e < 1e-6, "bilinear x3 on a ramp: clamped ends, linear inside (rel err %g)", e);
}

int main(void) {
    rng_seed(&rng, 2, RNG_TEST, 0);
    test_correlation(1, 1, 3, 3, 1, 1, 1.0f, 0); /* D = 1: plain per-pixel dot product */
    test_correlation(2, 3, 5, 4, 3, 1, 1.0f, 0);
    test_correlation(2, 4, 6, 7, 5, 1, 0.25f, 0);
    test_correlation(1, 2, 7, 5, 3, 2, 1.0f, 0); /* dilated */
    test_correlation(1, 2, 3, 2, 7, 1, 1.0f, 0); /* neighbourhood larger than the map */
    test_correlation(2, 6, 8, 8, 15, 1, 1.0f / 6,
                     0);                         /* co-segmentation's: the window covers the map (GEMM) */
    test_correlation(2, 3, 6, 6, 5, 1, 0.5f, 0); /* GEMM, window smaller than the map */
    /* cosine and the max channel, in both forms */
    test_correlation(2, 6, 8, 8, 15, 1, 1.0f, CORR_COSINE);
    test_correlation(2, 6, 8, 8, 15, 1, 1.0f / 6, CORR_MAX);
    test_correlation(2, 6, 8, 8, 15, 1, 2.0f, CORR_COSINE | CORR_MAX);
    test_correlation(2, 4, 6, 7, 3, 1, 1.0f, CORR_COSINE | CORR_MAX); /* direct loops, max inside the map */
    test_correlation(1, 3, 7, 5, 3, 2, 1.0f, CORR_COSINE | CORR_MAX); /* dilated */
    test_correlation_threads(8, 8, 8, 15, 1, 0);
    test_correlation_threads(4, 9, 7, 3, 1, 0);
    test_correlation_threads(8, 8, 8, 15, 1, CORR_COSINE | CORR_MAX);
    test_correlation_threads(4, 9, 7, 3, 1, CORR_COSINE | CORR_MAX);
    test_upsample_golden();
    test_upsample(2, 3, 4, 5, 2, UPSAMPLE_NEAREST);
    test_upsample(2, 3, 4, 5, 2, UPSAMPLE_BILINEAR);
    test_upsample(1, 2, 3, 2, 3, UPSAMPLE_BILINEAR);
    test_upsample(1, 1, 1, 1, 4, UPSAMPLE_BILINEAR);
    test_upsample(1, 2, 3, 3, 1, UPSAMPLE_BILINEAR);
    test_upsample(3, 2, 16, 16, 2, UPSAMPLE_BILINEAR);  /* the co-segmentation decoder's x2 */
    test_upsample(1, 1, 2, 2100, 2, UPSAMPLE_BILINEAR); /* rows wider than the column taps' table */
    return test_finish();
}
