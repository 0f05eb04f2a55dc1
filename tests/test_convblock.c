/* Tests of nn/convblock (conv2d + bias + ReLU [+ 2x2 max pool] fused, NHWC):
 * forward, arg and backward against the naive loops conv2d_*_naive ->
 * relu -> maxpool of the layer kernels, on shapes that reach every path
 * (AVX-512 tiles with 1..4 filter vectors and their tails, multi-image
 * forward chunks, the per-pixel patch path, the plain C path for F % 16 != 0,
 * stride 2, floor-mode pooling, NCHW and NHWC outputs); ties and NaN;
 * finite differences of the whole block; and the encoders of
 * configs/fmnist-triplet.ini and configs/koch-omniglot.ini (fused where the
 * SIMD kernels run) against the same encoders built without fusion. */
#include <stdlib.h>
#include <string.h>

#include "../io/config.h"
#include "../nn/activation.h"
#include "../nn/conv2d.h"
#include "../nn/convblock.h"
#include "../nn/model.h"
#include "../nn/pool.h"
#include "../nn/util.h"
#include "fixture_num.h"
#include "test.h"

static Rng rng;

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
    float *in = fixture_rand_floats(&rng, nin, -1, 1), *w = fixture_rand_floats(&rng, nw, -0.5f, 0.5f);
    float *b = fixture_rand_floats(&rng, k->F, -0.3f, 0.3f);
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
    float *out = fixture_rand_floats(&rng, nout, -9, 9), *ref_out = xaligned_floats(nout);
    uint8_t *arg = k->pool ? xmalloc(nout) : NULL;
    float *ws = fixture_rand_floats(&rng, convblock_workspace_floats(k->C, k->H, k->W, k->F, k->K, k->S, k->pool),
                                    -9, 9);
    convblock_forward(out, arg, in_nhwc, w, b, k->B, k->C, k->H, k->W, k->F, k->K, k->S, k->pool, k->nchw, ws);
    if (k->nchw) memcpy(ref_out, R.r, nout * sizeof(float));
    else to_nhwc(ref_out, R.r, k->B, k->F, R.Hp, R.Wp);
    double e = fixture_max_rel_err_nan_eq(out, ref_out, nout);
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
    float *dout_ref = fixture_rand_floats(&rng, nout, -1, 1), *dout = xaligned_floats(nout);
    if (k->nchw) memcpy(dout, dout_ref, nout * sizeof(float));
    else to_nhwc(dout, dout_ref, k->B, k->F, R.Hp, R.Wp);
    size_t ny = (size_t)k->B * k->F * R.Ho * R.Wo;
    float *dy = xaligned_floats(ny);
    if (k->pool) maxpool_backward(dy, dout_ref, R.idx, k->B, k->F, R.Ho, R.Wo, 2, 2);
    else memcpy(dy, dout_ref, ny * sizeof(float));
    relu_backward(dy, dy, R.y, ny);
    float *din_r = xaligned_floats(nin), *dw_r = fixture_rand_floats(&rng, nw, -1, 1);
    float *db_r = fixture_rand_floats(&rng, k->F, -1, 1);
    float *dw = xaligned_floats(nw), *db = xaligned_floats(k->F), *dw0 = xaligned_floats(nw);
    memcpy(dw, dw_r, nw * sizeof(float));
    memcpy(dw0, dw_r, nw * sizeof(float));
    memcpy(db, db_r, k->F * sizeof(float));
    conv2d_backward_naive(din_r, dw_r, db_r, dy, in, w, k->B, k->C, k->H, k->W, k->F, k->K, k->S, 0);
    float *din = fixture_rand_floats(&rng, nin, -9, 9), *din_n = xaligned_floats(nin);
    convblock_backward(din, dw, db, dout, out, arg, in_nhwc, w, k->B, k->C, k->H, k->W, k->F, k->K, k->S, k->pool,
                       k->nchw, ws);
    to_nchw(din_n, din, k->B, k->C, k->H, k->W);
    if (special != 2) {
        e = fixture_max_rel_err_nan_eq(din_n, din_r, nin);
        CHECK(e < 1e-5, "%s: din differs from the reference by %g", what, e);
        e = fixture_max_rel_err_nan_eq(dw, dw_r, nw);
        CHECK(e < 1e-5, "%s: dw (accumulated) differs from the reference by %g", what, e);
        e = fixture_max_rel_err_nan_eq(db, db_r, k->F);
        CHECK(e < 1e-5, "%s: db (accumulated) differs from the reference by %g", what, e);
    }
    /* din = NULL: the same weight gradient, nothing else written */
    float *dw2 = xaligned_floats(nw), *db2 = xaligned_floats(k->F);
    convblock_backward(NULL, dw2, db2, dout, out, arg, in_nhwc, w, k->B, k->C, k->H, k->W, k->F, k->K, k->S,
                       k->pool, k->nchw, ws);
    for (size_t i = 0; i < nw; i++) dw0[i] = dw[i] - dw0[i];
    e = fixture_max_rel_err_nan_eq(dw2, dw0, nw);
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
    return fixture_dot(c->out, c->Rw, c->nout);
}

/* Central differences on entries of x against g. The block is piecewise
 * linear in each entry, so an entry whose two one-sided differences differ
 * crossed a relu or max kink within h: it is skipped. Returns the number of
 * disagreeing entries; *used counts the entries compared. */
static int fd_bad(FdCtx *c, float *x, const float *g, size_t n, int *used) {
    int bad = 0;
    *used = 0;
    double l0 = fd_loss(c);
    for (size_t i = 0; i < n; i += 1 + n / 60) {
        float x0 = x[i];
        double h = 2e-3;
        x[i] = x0 + (float)h;
        double lp = fd_loss(c);
        x[i] = x0 - (float)h;
        double lm = fd_loss(c);
        x[i] = x0;
        if (fabs((lp - l0) - (l0 - lm)) > 1e-3 * fabs(lp - l0) + 1e-5) continue; /* a kink */
        double num = (lp - lm) / (2 * h);
        (*used)++;
        bad += fabs(num - g[i]) > 1e-2 * fmax(1.0, fabs(num));
    }
    fd_loss(c);
    return bad;
}

static void test_fd(void) {
    FdCtx c;
    c.k = (Case){2, 3, 9, 8, 16, 3, 1, 1, 0};
    size_t nin = (size_t)2 * 3 * 9 * 8, nw = (size_t)16 * 3 * 9;
    c.in = fixture_rand_floats(&rng, nin, -1, 1), c.w = fixture_rand_floats(&rng, nw, -0.5f, 0.5f);
    c.b = fixture_rand_floats(&rng, 16, -0.1f, 0.3f);
    c.nout = (size_t)2 * 16 * 3 * 3;
    c.out = xaligned_floats(c.nout), c.Rw = fixture_rand_floats(&rng, c.nout, -1, 1), c.arg = xmalloc(c.nout);
    c.ws = xaligned_floats(convblock_workspace_floats(3, 9, 8, 16, 3, 1, 1));
    fd_loss(&c);
    float *din = xaligned_floats(nin), *dw = xaligned_floats(nw), *db = xaligned_floats(16);
    convblock_backward(din, dw, db, c.Rw, c.out, c.arg, c.in, c.w, 2, 3, 9, 8, 16, 3, 1, 1, 0, c.ws);
    int ui, uw, ub;
    int bi = fd_bad(&c, c.in, din, nin, &ui), bw = fd_bad(&c, c.w, dw, nw, &uw), bb = fd_bad(&c, c.b, db, 16, &ub);
    CHECK(bi == 0 && bw == 0 && bb == 0, "finite differences disagree on %d input, %d weight, %d bias entries", bi, bw,
          bb);
    CHECK(ui >= 30 && uw >= 30 && ub >= 8, "too many kinks: %d, %d, %d entries compared", ui, uw, ub);
    free(c.in), free(c.w), free(c.b), free(c.out), free(c.Rw), free(c.arg), free(c.ws), free(din), free(dw), free(db);
}

/* The encoder of a shipped config on C-channel inputs (fused where the SIMD
 * kernels run, with the layer override `set`) against the same encoder built
 * without fusion (every layer alone; conv2d's im2col path is itself checked
 * against the naive loops in test_layers): embeddings and parameter
 * gradients. */
static void test_model(const char *path, const char *set, int C, int h, int w, int B, int expect_fused) {
    Config cfg;
    Err e;
    CHECK(config_parse_file(&cfg, path, &e) == 0 && (!set || config_set(&cfg, set, &e) == 0), "%s: %s", path,
          e.msg);
    cfg.model.koch_head = 0;
    Model m, r;
    CHECK(model_build(&m, &cfg.model, cfg.path, C, h, w, B, &e) == 0, "build: %s", e.msg);
    cfg.model.no_fusion = 1;
    CHECK(model_build(&r, &cfg.model, cfg.path, C, h, w, B, &e) == 0, "build: %s", e.msg);
    int fused = 0, rfused = 0;
    for (int i = 0; i < m.nlayers; i++) fused += m.layers[i].fuse > 0, rfused += r.layers[i].fuse != 0;
    CHECK(fused == (convblock_fast(32) ? expect_fused : 0) && rfused == 0, "%s: %d fused blocks, expected %d",
          path, fused, convblock_fast(32) ? expect_fused : 0);
    model_init(&m, INIT_TORCH, 3);
    memcpy(r.params, m.params, m.nparams * sizeof(float));
    size_t nx = (size_t)B * C * h * w, ne = (size_t)B * m.emb_dim;
    float *x = fixture_rand_floats(&rng, nx, -1, 2), *dE = fixture_rand_floats(&rng, ne, -1, 1);
    memset(m.grads, 0, m.nparams * sizeof(float));
    memset(r.grads, 0, r.nparams * sizeof(float));
    const float *E = model_forward(&m, x, B), *E2 = model_forward(&r, x, B);
    double err = fixture_max_rel_err_nan_eq(E, E2, ne);
    CHECK(err < 1e-5, "%s: embeddings differ from the unfused model by %g", path, err);
    model_backward(&m, x, dE, B, NULL, NULL);
    model_backward(&r, x, dE, B, NULL, NULL);
    for (int v = 0; v < m.nviews; v++) {
        const ParamView *pv = &m.views[v];
        err = fixture_max_rel_err_nan_eq(m.grads + pv->offset, r.grads + pv->offset, pv->count);
        CHECK(err < 1e-4, "%s: gradient of %s differs from the unfused model by %g", path, pv->name, err);
    }
    free(x), free(dE);
    model_free(&m);
    model_free(&r);
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
    test_model("configs/fmnist-triplet.ini", NULL, 1, 28, 28, 3, 2);
    /* Colour: the channels-last block cannot take a 3-channel NCHW input, so
     * the first conv, and the block after it, run unfused (conv2d). */
    test_model("configs/fmnist-triplet.ini", NULL, 3, 28, 28, 3, 0);
    /* Koch's network on 70x70 (fc1 narrowed): pooling in floor mode (9x9 ->
     * 4x4), a block without pooling (conv4, NCHW into flatten), sigmoid. */
    test_model("configs/koch-omniglot.ini", "fc1.out=32", 1, 70, 70, 1, 4);
    return test_finish();
}
