/* Tests of nn/convblock (conv2d + bias + ReLU [+ 2x2 max pool] fused, NHWC):
 * forward, arg and backward against the naive loops conv2d_*_naive ->
 * relu -> maxpool of the layer kernels, on shapes that reach every path
 * (AVX-512 tiles with 1..4 filter vectors and their tails, multi-image
 * forward chunks, the per-pixel patch path, the plain C path for F % 16 != 0,
 * stride 2, floor-mode pooling, NCHW and NHWC outputs); ties and NaN;
 * finite differences of the whole block; and the fused fmnist-small encoder
 * of configs/fmnist-triplet.ini against the same encoder composed from the
 * naive kernels. */
#include <stdlib.h>
#include <string.h>

#include "../io/config.h"
#include "../nn/activation.h"
#include "../nn/conv2d.h"
#include "../nn/convblock.h"
#include "../nn/l2norm.h"
#include "../nn/linear.h"
#include "../nn/model.h"
#include "../nn/pool.h"
#include "../nn/util.h"
#include "test.h"

static Rng rng;

static float *rand_floats(size_t n, float lo, float hi) {
    float *p = xaligned_floats(n);
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * rng_uniform(&rng);
    return p;
}

/* Largest |a - b| relative to the largest |b|; NaN equals NaN. */
static double max_rel_err(const float *a, const float *b, size_t n) {
    double e = 0.0, s = 1e-30;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) && isnan(b[i])) continue;
        double d = fabs((double)a[i] - b[i]);
        if (d > e || isnan(d)) e = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > s) s = fabs(b[i]);
    }
    return e / s;
}

/* (B, C, H, W) <-> (B, H, W, C) */
static void to_nhwc(float *d, const float *s, int B, int C, int H, int W) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < H * W; p++) d[((size_t)b * H * W + p) * C + c] = s[((size_t)b * C + c) * H * W + p];
}
static void to_nchw(float *d, const float *s, int B, int C, int H, int W) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < H * W; p++) d[((size_t)b * C + c) * H * W + p] = s[((size_t)b * H * W + p) * C + c];
}

typedef struct Case {
    int B, C, H, W, F, K, S, pool, nchw;
} Case;

/* Reference of the block on NCHW tensors. y (conv out), r (pool out),
 * idx are kept for the backward. Returns the output size per image. */
typedef struct Ref {
    int Ho, Wo, Hp, Wp;
    float *y, *r;
    int32_t *idx;
} Ref;

static void ref_forward(Ref *R, const Case *k, const float *in, const float *w, const float *b) {
    R->Ho = (k->H - k->K) / k->S + 1, R->Wo = (k->W - k->K) / k->S + 1;
    R->Hp = k->pool ? R->Ho / 2 : R->Ho, R->Wp = k->pool ? R->Wo / 2 : R->Wo;
    size_t ny = (size_t)k->B * k->F * R->Ho * R->Wo, nr = (size_t)k->B * k->F * R->Hp * R->Wp;
    R->y = xaligned_floats(ny);
    R->r = xaligned_floats(nr);
    R->idx = xcalloc(nr, sizeof(int32_t));
    conv2d_forward_naive(R->y, in, w, b, k->B, k->C, k->H, k->W, k->F, k->K, k->S, 0);
    relu_forward(R->y, R->y, ny);
    if (k->pool) maxpool_forward(R->r, R->idx, R->y, k->B, k->F, R->Ho, R->Wo, 2, 2);
    else memcpy(R->r, R->y, ny * sizeof(float));
}

static void ref_free(Ref *R) {
    free(R->y), free(R->r), free(R->idx);
}

/* Runs one case; in/out tensors in the block's layouts. */
static void test_case(const Case *k, int special) {
    char what[160];
    snprintf(what, sizeof what, "B%d C%d %dx%d F%d K%d S%d pool%d %s%s", k->B, k->C, k->H, k->W, k->F, k->K, k->S,
             k->pool, k->nchw ? "nchw" : "nhwc", special == 1 ? " ties" : special == 2 ? " nan" : "");
    size_t nin = (size_t)k->B * k->C * k->H * k->W, nw = (size_t)k->F * k->C * k->K * k->K;
    float *in = rand_floats(nin, -1, 1), *w = rand_floats(nw, -0.5f, 0.5f), *b = rand_floats(k->F, -0.3f, 0.3f);
    if (special == 1) { /* all conv outputs equal b: every window ties */
        memset(w, 0, nw * sizeof *w);
        for (int f = 0; f < k->F; f++) b[f] = (f % 3 == 0) ? 0.0f : (f % 3 == 1 ? 0.25f : -0.25f);
    }
    if (special == 2) in[nin / 3] = NAN;
    float *in_nhwc = xaligned_floats(nin);
    to_nhwc(in_nhwc, in, k->B, k->C, k->H, k->W);
    Ref R;
    ref_forward(&R, k, in, w, b);
    size_t nout = (size_t)k->B * k->F * R.Hp * R.Wp;
    float *out = rand_floats(nout, -9, 9), *ref_out = xaligned_floats(nout);
    uint8_t *arg = k->pool ? xmalloc(nout) : NULL;
    float *ws = rand_floats(convblock_workspace_floats(k->C, k->H, k->W, k->F, k->K, k->S, k->pool), -9, 9);
    convblock_forward(out, arg, in_nhwc, w, b, k->B, k->C, k->H, k->W, k->F, k->K, k->S, k->pool, k->nchw, ws);
    if (k->nchw) memcpy(ref_out, R.r, nout * sizeof(float));
    else to_nhwc(ref_out, R.r, k->B, k->F, R.Hp, R.Wp);
    double e = max_rel_err(out, ref_out, nout);
    CHECK(e < 1e-5, "%s: forward differs from conv2d_forward_naive -> relu -> maxpool by %g", what, e);
    if (k->pool) { /* arg: the reference's argmax where the output is > 0, else NONE */
        int bad = 0;
        for (int n = 0; n < k->B; n++)
            for (int f = 0; f < k->F; f++)
                for (int o = 0; o < R.Hp * R.Wp; o++) {
                    size_t ri = ((size_t)n * k->F + f) * R.Hp * R.Wp + o;
                    int id = R.idx[ri], ph = o / R.Wp, pw = o % R.Wp;
                    int s = (id / R.Wo - 2 * ph) * 2 + (id % R.Wo - 2 * pw);
                    int want = R.r[ri] > 0 ? s : CONVBLOCK_ARG_NONE;
                    bad += arg[((size_t)n * R.Hp * R.Wp + o) * k->F + f] != want;
                }
        CHECK(bad == 0, "%s: %d argmax entries differ from maxpool_forward's", what, bad);
    }
    /* backward: reference maxpool_backward -> relu_backward -> naive conv */
    float *dout_ref = rand_floats(nout, -1, 1), *dout = xaligned_floats(nout);
    if (k->nchw) memcpy(dout, dout_ref, nout * sizeof(float));
    else to_nhwc(dout, dout_ref, k->B, k->F, R.Hp, R.Wp);
    size_t ny = (size_t)k->B * k->F * R.Ho * R.Wo;
    float *dy = xaligned_floats(ny);
    if (k->pool) maxpool_backward(dy, dout_ref, R.idx, k->B, k->F, R.Ho, R.Wo, 2, 2);
    else memcpy(dy, dout_ref, ny * sizeof(float));
    relu_backward(dy, dy, R.y, ny);
    float *din_r = xaligned_floats(nin), *dw_r = rand_floats(nw, -1, 1), *db_r = rand_floats(k->F, -1, 1);
    float *dw = xaligned_floats(nw), *db = xaligned_floats(k->F), *dw0 = xaligned_floats(nw);
    memcpy(dw, dw_r, nw * sizeof(float));
    memcpy(dw0, dw_r, nw * sizeof(float));
    memcpy(db, db_r, k->F * sizeof(float));
    conv2d_backward_naive(din_r, dw_r, db_r, dy, in, w, k->B, k->C, k->H, k->W, k->F, k->K, k->S, 0);
    float *din = rand_floats(nin, -9, 9), *din_n = xaligned_floats(nin);
    convblock_backward(din, dw, db, dout, out, arg, in_nhwc, w, k->B, k->C, k->H, k->W, k->F, k->K, k->S, k->pool,
                       k->nchw, ws);
    to_nchw(din_n, din, k->B, k->C, k->H, k->W);
    if (special != 2) {
        e = max_rel_err(din_n, din_r, nin);
        CHECK(e < 1e-5, "%s: din differs from the reference by %g", what, e);
        e = max_rel_err(dw, dw_r, nw);
        CHECK(e < 1e-5, "%s: dw (accumulated) differs from the reference by %g", what, e);
        e = max_rel_err(db, db_r, k->F);
        CHECK(e < 1e-5, "%s: db (accumulated) differs from the reference by %g", what, e);
    }
    /* din = NULL: the same weight gradient, nothing else written */
    float *dw2 = xaligned_floats(nw), *db2 = xaligned_floats(k->F);
    convblock_backward(NULL, dw2, db2, dout, out, arg, in_nhwc, w, k->B, k->C, k->H, k->W, k->F, k->K, k->S,
                       k->pool, k->nchw, ws);
    for (size_t i = 0; i < nw; i++) dw0[i] = dw[i] - dw0[i];
    e = max_rel_err(dw2, dw0, nw);
    CHECK(special == 2 || e < 1e-5, "%s: dw without din differs by %g", what, e);
    ref_free(&R);
    free(in), free(w), free(b), free(in_nhwc), free(out), free(ref_out), free(arg), free(ws), free(dout_ref);
    free(dout), free(dy), free(din_r), free(dw_r), free(db_r), free(dw), free(db), free(din), free(din_n);
    free(dw2), free(db2), free(dw0);
}

/* Finite differences of sum(out * Rw) through the whole block. */
typedef struct FdCtx {
    Case k;
    float *in, *w, *b, *out, *Rw, *ws;
    uint8_t *arg;
    size_t nout;
} FdCtx;

static double fd_loss(FdCtx *c) {
    convblock_forward(c->out, c->arg, c->in, c->w, c->b, c->k.B, c->k.C, c->k.H, c->k.W, c->k.F, c->k.K, c->k.S,
                      c->k.pool, c->k.nchw, c->ws);
    double s = 0;
    for (size_t i = 0; i < c->nout; i++) s += (double)c->out[i] * c->Rw[i];
    return s;
}

/* Fraction of checked entries of x whose central difference disagrees with
 * g (kinks of relu/max may be crossed by h). */
static double fd_bad(FdCtx *c, float *x, const float *g, size_t n) {
    int bad = 0, checked = 0;
    for (size_t i = 0; i < n; i += 1 + n / 60) {
        float x0 = x[i];
        double h = 1e-2;
        x[i] = x0 + (float)h;
        double lp = fd_loss(c);
        x[i] = x0 - (float)h;
        double lm = fd_loss(c);
        x[i] = x0;
        double num = (lp - lm) / (2 * h);
        checked++;
        bad += fabs(num - g[i]) > 2e-2 * fmax(1.0, fabs(num));
        if (fabs(num - g[i]) > 2e-2 * fmax(1.0, fabs(num))) fprintf(stderr, "%zu: fd %g an %g\n", i, num, g[i]);
    }
    fd_loss(c);
    return (double)bad / checked;
}

static void test_fd(void) {
    FdCtx c;
    c.k = (Case){2, 3, 9, 8, 16, 3, 1, 1, 0};
    size_t nin = (size_t)2 * 3 * 9 * 8, nw = (size_t)16 * 3 * 9;
    c.in = rand_floats(nin, -1, 1), c.w = rand_floats(nw, -0.5f, 0.5f), c.b = rand_floats(16, -0.1f, 0.3f);
    c.nout = (size_t)2 * 16 * 3 * 3;
    c.out = xaligned_floats(c.nout), c.Rw = rand_floats(c.nout, -1, 1), c.arg = xmalloc(c.nout);
    c.ws = xaligned_floats(convblock_workspace_floats(3, 9, 8, 16, 3, 1, 1));
    fd_loss(&c);
    float *din = xaligned_floats(nin), *dw = xaligned_floats(nw), *db = xaligned_floats(16);
    convblock_backward(din, dw, db, c.Rw, c.out, c.arg, c.in, c.w, 2, 3, 9, 8, 16, 3, 1, 1, 0, c.ws);
    double bi = fd_bad(&c, c.in, din, nin), bw = fd_bad(&c, c.w, dw, nw), bb = fd_bad(&c, c.b, db, 16);
    CHECK(bi <= 0.05 && bw <= 0.05 && bb <= 0.05, "finite differences disagree: input %.2f, weights %.2f, bias %.2f "
          "of the entries", bi, bw, bb);
    free(c.in), free(c.w), free(c.b), free(c.out), free(c.Rw), free(c.arg), free(c.ws), free(din), free(dw), free(db);
}

/* The fused fmnist-small encoder against the naive composition. */
static void test_model(void) {
    Config cfg;
    Err e;
    CHECK(config_parse_file(&cfg, "configs/fmnist-triplet.ini", &e) == 0, "config: %s", e.msg);
    Model m;
    int B = 3;
    CHECK(model_build(&m, cfg.layers, cfg.nlayers, 0, 1, 0, cfg.path, 1, 28, 28, B, &e) == 0, "build: %s", e.msg);
    CHECK(m.layers[0].fuse == 2 && m.layers[3].fuse == 2 && m.layers[0].nhwc && !m.layers[3].nhwc,
          "fmnist-small fuses conv1 and conv2 (conv1 -> conv2 channels-last)");
    model_init(&m, INIT_TORCH, 3);
    float *x = rand_floats((size_t)B * 784, -1, 2), *dE = rand_floats((size_t)B * 64, -1, 1);
    memset(m.grads, 0, m.nparams * sizeof(float));
    const float *E = model_forward(&m, x, B);
    model_backward(&m, x, dE, B, NULL, NULL);
    /* naive: conv1 relu pool conv2 relu pool fc1 relu fc2 l2norm */
    const float *p = m.params;
    const float *w1 = p, *b1 = p + 800, *w2 = p + 832, *b2 = p + 832 + 51200, *w3 = b2 + 64, *b3 = w3 + 262144;
    const float *w4 = b3 + 256, *b4 = w4 + 16384;
    float *y1 = xaligned_floats((size_t)B * 18432), *p1 = xaligned_floats((size_t)B * 4608);
    float *y2 = xaligned_floats((size_t)B * 4096), *p2 = xaligned_floats((size_t)B * 1024);
    float *h = xaligned_floats((size_t)B * 256), *z = xaligned_floats((size_t)B * 64);
    float *e2 = xaligned_floats((size_t)B * 64), *nr = xaligned_floats(B);
    int32_t *i1 = xcalloc((size_t)B * 4608, 4), *i2 = xcalloc((size_t)B * 1024, 4);
    conv2d_forward_naive(y1, x, w1, b1, B, 1, 28, 28, 32, 5, 1, 0);
    relu_forward(y1, y1, (size_t)B * 18432);
    maxpool_forward(p1, i1, y1, B, 32, 24, 24, 2, 2);
    conv2d_forward_naive(y2, p1, w2, b2, B, 32, 12, 12, 64, 5, 1, 0);
    relu_forward(y2, y2, (size_t)B * 4096);
    maxpool_forward(p2, i2, y2, B, 64, 8, 8, 2, 2);
    linear_forward(h, p2, w3, b3, B, 1024, 256);
    relu_forward(h, h, (size_t)B * 256);
    linear_forward(z, h, w4, b4, B, 256, 64);
    l2norm_forward(e2, nr, z, B, 64);
    double err = max_rel_err(E, e2, (size_t)B * 64);
    CHECK(err < 1e-5, "fused encoder embeddings differ from the naive composition by %g", err);
    float *g = xcalloc(m.nparams, sizeof(float));
    float *gz = xaligned_floats((size_t)B * 64), *gh = xaligned_floats((size_t)B * 256);
    float *gp2 = xaligned_floats((size_t)B * 1024), *gy2 = xaligned_floats((size_t)B * 4096);
    float *gp1 = xaligned_floats((size_t)B * 4608), *gy1 = xaligned_floats((size_t)B * 18432);
    l2norm_backward(gz, dE, e2, nr, B, 64);
    linear_backward(gh, g + (w4 - p), g + (b4 - p), gz, h, w4, B, 256, 64);
    relu_backward(gh, gh, h, (size_t)B * 256);
    linear_backward(gp2, g + (w3 - p), g + (b3 - p), gh, p2, w3, B, 1024, 256);
    maxpool_backward(gy2, gp2, i2, B, 64, 8, 8, 2, 2);
    relu_backward(gy2, gy2, y2, (size_t)B * 4096);
    conv2d_backward_naive(gp1, g + (w2 - p), g + (b2 - p), gy2, p1, w2, B, 32, 12, 12, 64, 5, 1, 0);
    maxpool_backward(gy1, gp1, i1, B, 32, 24, 24, 2, 2);
    relu_backward(gy1, gy1, y1, (size_t)B * 18432);
    conv2d_backward_naive(NULL, g, g + 800, gy1, x, w1, B, 1, 28, 28, 32, 5, 1, 0);
    for (int v = 0; v < m.nviews; v++) {
        const ParamView *pv = &m.views[v];
        err = max_rel_err(m.grads + pv->offset, g + pv->offset, pv->count);
        CHECK(err < 1e-4, "fused encoder gradient of %s differs from the naive composition by %g", pv->name, err);
    }
    free(x), free(dE), free(y1), free(p1), free(y2), free(p2), free(h), free(z), free(e2), free(nr), free(i1);
    free(i2), free(g), free(gz), free(gh), free(gp2), free(gy2), free(gp1), free(gy1);
    model_free(&m);
}

int main(void) {
    rng_seed(&rng, 1, RNG_TEST, 7);
    static const Case cases[] = {
        {3, 1, 28, 28, 32, 5, 1, 1, 0},  /* fmnist conv1: patch path, V=2 */
        {10, 32, 12, 12, 64, 5, 1, 1, 1}, /* fmnist conv2: two forward chunks, NCHW out */
        {2, 3, 11, 9, 48, 3, 1, 1, 0},   /* V=3, odd conv output (floor pooling) */
        {2, 4, 9, 10, 80, 3, 2, 0, 1},   /* stride 2, no pool, V=4 + V=1 */
        {2, 5, 8, 7, 20, 2, 1, 1, 1},    /* F % 16 != 0: plain C path */
        {1, 2, 6, 6, 16, 1, 1, 0, 0},    /* 1x1 kernel, runs shorter than any tile */
        {2, 1, 10, 10, 16, 3, 1, 1, 0},  /* C=1 K=3, V=1 */
        {2, 40, 9, 9, 32, 4, 1, 1, 0},   /* tap runs of 160: shifted last tile */
        {1, 7, 8, 8, 16, 3, 1, 0, 1},    /* runs of 21: masked input-gradient tail */
        {2, 8, 13, 12, 64, 4, 3, 1, 0},  /* stride 3 with pooling */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_case(&cases[i], 0);
    test_case(&cases[0], 1);
    test_case(&cases[4], 1);
    test_case(&cases[1], 2);
    test_fd();
    test_model();
    return test_finish();
}
