/* test_threads: every kernel that nn/parallel splits gives the same bits
 * for 1, 2, 3 and 4 threads (oversubscribed on small machines: fine for a
 * correctness test), on shapes that reach every path and odd sizes: the
 * fused conv blocks (forward, both backward passes), im2col convolutions,
 * pooling, activations, linear layers, l2norm, the distance matrix, every
 * miner and loss, the optimizer updates, and the decoding and augmentation of
 * a batch (against a naive loop over its images, too). The single-threaded
 * results are themselves checked against references by the other tests. */
#include <stdlib.h>
#include <string.h>

#include "../io/augment.h"
#include "../io/dataset.h"
#include "../io/prefetch.h"
#include "../io/sampler.h"
#include "../mining/distance.h"
#include "../mining/pairs.h"
#include "../mining/triplet.h"
#include "../nn/activation.h"
#include "../nn/blas.h"
#include "../nn/conv2d.h"
#include "../nn/convblock.h"
#include "../nn/l2norm.h"
#include "../nn/linear.h"
#include "../nn/optim.h"
#include "../nn/parallel.h"
#include "../nn/pool.h"
#include "fixture_files.h"
#include "fixture_num.h"
#include "test.h"

#define TMAX 4

static Rng rng;

/* A set of output buffers compared between thread counts. */
typedef struct Outs {
    int n;
    void *p[8];
    size_t bytes[8];
    const char *name[8];
} Outs;

static void outs_add(Outs *o, const char *name, void *p, size_t bytes) {
    o->name[o->n] = name;
    o->p[o->n] = p;
    o->bytes[o->n++] = bytes;
}

/* Keeps T = 1's outputs and compares later ones with them. */
typedef struct Ref {
    void *p[8];
} Ref;

static void compare(Ref *r, const Outs *o, int T, const char *what) {
    for (int i = 0; i < o->n; i++) {
        if (T == 1) {
            r->p[i] = xmalloc(o->bytes[i] ? o->bytes[i] : 1);
            memcpy(r->p[i], o->p[i], o->bytes[i]);
            continue;
        }
        CHECK(!memcmp(r->p[i], o->p[i], o->bytes[i]), "%s: %s differs with %d threads", what, o->name[i], T);
    }
}

static void ref_free(Ref *r, const Outs *o) {
    for (int i = 0; i < o->n; i++) free(r->p[i]);
}

/* ---- conv blocks --------------------------------------------------------- */

typedef struct CbCase {
    int B, C, H, W, F, K, S, pool, nchw;
} CbCase;

static void convblock_case(const CbCase *k) {
    char what[128];
    snprintf(what, sizeof what, "convblock B%d C%d %dx%d F%d K%d S%d pool%d nchw%d", k->B, k->C, k->H, k->W,
             k->F, k->K, k->S, k->pool, k->nchw);
    int Hp = convblock_out_size(k->H, k->K, k->S, k->pool),
        Wp = convblock_out_size(k->W, k->K, k->S, k->pool);
    size_t nin = (size_t)k->B * k->H * k->W * k->C, nw = (size_t)k->F * k->C * k->K * k->K;
    size_t nout = (size_t)k->B * Hp * Wp * k->F;
    float *in = fixture_rand_floats(&rng, nin, -1, 1), *w = fixture_rand_floats(&rng, nw, -0.3f, 0.3f);
    float *b = fixture_rand_floats(&rng, k->F, -0.2f, 0.3f), *dout = fixture_rand_floats(&rng, nout, -1, 1);
    float *dw0 = fixture_rand_floats(&rng, nw, -1, 1), *db0 = fixture_rand_floats(&rng, k->F, -1, 1);
    float *out = xaligned_floats(nout), *din = xaligned_floats(nin), *dw = xaligned_floats(nw);
    float *db = xaligned_floats(k->F), *dw1 = xaligned_floats(nw), *db1 = xaligned_floats(k->F);
    uint8_t *arg = xmalloc(nout);
    Ref r;
    Outs o = {0};
    outs_add(&o, "out", out, nout * 4);
    if (k->pool) outs_add(&o, "arg", arg, nout);
    outs_add(&o, "din", din, nin * 4);
    outs_add(&o, "dw", dw, nw * 4);
    outs_add(&o, "db", db, (size_t)k->F * 4);
    outs_add(&o, "dw (no din)", dw1, nw * 4);
    outs_add(&o, "db (no din)", db1, (size_t)k->F * 4);
    for (int T = 1; T <= TMAX; T++) {
        parallel_init(T);
        float *ws = xaligned_floats(convblock_workspace_floats(k->C, k->H, k->W, k->F, k->K, k->S, k->pool));
        convblock_forward(out, k->pool ? arg : NULL, in, w, b, k->B, k->C, k->H, k->W, k->F, k->K, k->S,
                          k->pool, k->nchw, ws);
        memcpy(dw, dw0, nw * 4), memcpy(db, db0, (size_t)k->F * 4);
        memcpy(dw1, dw0, nw * 4), memcpy(db1, db0, (size_t)k->F * 4);
        convblock_backward(din, dw, db, dout, out, k->pool ? arg : NULL, in, w, k->B, k->C, k->H, k->W, k->F,
                           k->K, k->S, k->pool, k->nchw, ws);
        convblock_backward(NULL, dw1, db1, dout, out, k->pool ? arg : NULL, in, w, k->B, k->C, k->H, k->W,
                           k->F, k->K, k->S, k->pool, k->nchw, ws);
        compare(&r, &o, T, what);
        free(ws);
    }
    ref_free(&r, &o);
    free(in), free(w), free(b), free(dout), free(dw0), free(db0), free(out), free(din), free(dw), free(db);
    free(dw1), free(db1), free(arg);
}

static void test_convblocks(void) {
    const CbCase cases[] = {
        {37, 1, 28, 28, 32, 5, 1, 1, 0},  /* fmnist conv1: patches, 2 tiles, backward by images */
        {29, 32, 12, 12, 64, 5, 1, 1, 1}, /* fmnist conv2: NCHW out, many tiles, by images */
        {300, 2, 7, 7, 16, 3, 1, 1, 0},   /* more images than the backward's image chunks */
        {9, 64, 9, 8, 128, 5, 1, 1, 0},   /* a weight gradient too large for image chunks: by tiles */
        {5, 3, 11, 10, 48, 3, 2, 1, 0},   /* stride 2, floor pooling, 3 vectors */
        {7, 16, 9, 9, 80, 3, 1, 0, 0},    /* no pooling, 5 vectors (two blocks) */
        {3, 1, 21, 21, 64, 10, 1, 1, 0},  /* Koch conv1 shape, smaller */
        {6, 4, 8, 8, 12, 3, 1, 1, 1},     /* F % 16 != 0: the plain C loops */
        {1, 2, 6, 7, 16, 2, 1, 1, 0},     /* one image, a row shorter than a tile */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) convblock_case(&cases[i]);
}

/* ---- the generic runner: fn recomputes the outputs in o from fixed inputs
 * (resetting what it accumulates into) at 1..TMAX threads --------------- */

static void over_threads(const char *what, void (*fn)(void *), void *ctx, const Outs *o) {
    Ref r;
    for (int T = 1; T <= TMAX; T++) {
        parallel_init(T);
        fn(ctx);
        compare(&r, o, T, what);
    }
    ref_free(&r, o);
}

static float *rnd(size_t n, float lo, float hi) { return fixture_rand_floats(&rng, n, lo, hi); }

/* ---- im2col convolutions --------------------------------------------------- */

typedef struct Conv {
    int B, C, H, W, F, K, S, P;
    float *in, *w, *b, *dout, *dw0, *db0, *out, *din, *dw, *db;
} Conv;

static void conv_run(void *p) {
    Conv *c = p;
    int Ho = conv2d_out_size(c->H, c->K, c->S, c->P), Wo = conv2d_out_size(c->W, c->K, c->S, c->P);
    size_t nw = (size_t)c->F * c->C * c->K * c->K;
    float *ws = xaligned_floats(conv2d_workspace_floats(c->B, c->C, c->H, c->W, c->F, c->K, c->S, c->P));
    conv2d_forward(c->out, c->in, c->w, c->b, c->B, c->C, c->H, c->W, c->F, c->K, c->S, c->P, ws);
    memcpy(c->dw, c->dw0, nw * 4), memcpy(c->db, c->db0, (size_t)c->F * 4);
    conv2d_backward(c->din, c->dw, c->db, c->dout, c->in, c->w, c->B, c->C, c->H, c->W, c->F, c->K, c->S,
                    c->P, ws);
    (void)Ho, (void)Wo;
    free(ws);
}

static void test_conv2d(void) {
    const int cases[][8] = {
        {13, 3, 11, 11, 10, 3, 1, 1}, {5, 8, 9, 7, 24, 3, 2, 0}, {5, 16, 34, 34, 32, 3, 1, 0}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const int *v = cases[k];
        Conv c = {.B = v[0], .C = v[1], .H = v[2], .W = v[3], .F = v[4], .K = v[5], .S = v[6], .P = v[7]};
        int Ho = conv2d_out_size(c.H, c.K, c.S, c.P), Wo = conv2d_out_size(c.W, c.K, c.S, c.P);
        size_t nin = (size_t)c.B * c.C * c.H * c.W, nout = (size_t)c.B * c.F * Ho * Wo;
        size_t nw = (size_t)c.F * c.C * c.K * c.K;
        c.in = rnd(nin, -1, 1), c.w = rnd(nw, -0.3f, 0.3f), c.b = rnd(c.F, -1, 1), c.dout = rnd(nout, -1, 1);
        c.dw0 = rnd(nw, -1, 1), c.db0 = rnd(c.F, -1, 1);
        c.out = xaligned_floats(nout), c.din = xaligned_floats(nin), c.dw = xaligned_floats(nw);
        c.db = xaligned_floats(c.F);
        Outs o = {0};
        outs_add(&o, "out", c.out, nout * 4);
        outs_add(&o, "din", c.din, nin * 4);
        outs_add(&o, "dw", c.dw, nw * 4);
        outs_add(&o, "db", c.db, (size_t)c.F * 4);
        char what[96];
        snprintf(what, sizeof what, "conv2d B%d C%d %dx%d F%d K%d S%d P%d", c.B, c.C, c.H, c.W, c.F, c.K, c.S,
                 c.P);
        over_threads(what, conv_run, &c, &o);
        free(c.in), free(c.w), free(c.b), free(c.dout), free(c.dw0), free(c.db0), free(c.out), free(c.din);
        free(c.dw), free(c.db);
    }
}

/* ---- pooling, activations, l2norm ---------------------------------------- */

typedef struct Elem {
    int B, C, H, W, size, stride, D;
    size_t n;
    float *x, *dy, *y, *dx, *y2, *dx2, *norms;
    int32_t *idx;
} Elem;

static void elem_run(void *p) {
    Elem *e = p;
    maxpool_forward(e->y, e->idx, e->x, e->B, e->C, e->H, e->W, e->size, e->stride);
    maxpool_backward(e->dx, e->dy, e->idx, e->B, e->C, e->H, e->W, e->size, e->stride);
    relu_forward(e->y2, e->x, e->n);
    relu_backward(e->dx2, e->dy, e->y2, e->n);
    sigmoid_forward(e->y2 + e->n, e->x, e->n);
    sigmoid_backward(e->dx2 + e->n, e->dy, e->y2 + e->n, e->n);
    int rows = (int)(e->n / (size_t)e->D);
    l2norm_forward(e->y2 + 2 * e->n, e->norms, e->x, rows, e->D);
    l2norm_backward(e->dx2 + 2 * e->n, e->dy, e->y2 + 2 * e->n, e->norms, rows, e->D);
}

static void test_elementwise(void) {
    for (int pk = 0; pk < 2; pk++) {
        Elem e = {.B = 67, .C = 5, .H = 23, .W = 21, .size = pk ? 3 : 2, .stride = 2, .D = 37};
        e.n = (size_t)e.B * e.C * e.H * e.W;
        int Ho = maxpool_out_size(e.H, e.size, e.stride), Wo = maxpool_out_size(e.W, e.size, e.stride);
        size_t no = (size_t)e.B * e.C * Ho * Wo;
        e.x = rnd(e.n, -3, 3), e.dy = rnd(e.n, -1, 1);
        for (int r = 0; r < 5; r++)
            memset(e.x + (size_t)r * 7 * e.D, 0, (size_t)e.D * 4); /* zero rows for l2norm */
        e.y = xaligned_floats(no), e.dx = xaligned_floats(e.n), e.idx = xcalloc(no, 4);
        e.y2 = xaligned_floats(3 * e.n), e.dx2 = xaligned_floats(3 * e.n),
        e.norms = xaligned_floats(e.n / e.D);
        Outs o = {0};
        outs_add(&o, "maxpool out", e.y, no * 4);
        outs_add(&o, "maxpool idx", e.idx, no * 4);
        outs_add(&o, "maxpool din", e.dx, e.n * 4);
        outs_add(&o, "relu, sigmoid, l2norm out", e.y2, 3 * e.n * 4);
        outs_add(&o, "relu, sigmoid, l2norm din", e.dx2, 3 * e.n * 4);
        outs_add(&o, "l2norm norms", e.norms, e.n / e.D * 4);
        over_threads(pk ? "maxpool 3/2, activations, l2norm" : "maxpool 2/2, activations, l2norm", elem_run,
                     &e, &o);
        free(e.x), free(e.dy), free(e.y), free(e.dx), free(e.idx), free(e.y2), free(e.dx2), free(e.norms);
    }
}

/* ---- GEMMs and linear layers ------------------------------------------------ */

typedef struct Gemm {
    int M, N, K, ta, tb;
    float *A, *B, *C0, *C, *in, *w, *b, *dout, *out, *din, *dw0, *dw, *db;
    int LB, Nin, Nout;
} Gemm;

static void gemm_run(void *p) {
    Gemm *g = p;
    memcpy(g->C, g->C0, (size_t)g->M * g->N * 4);
    blas_sgemm(g->ta, g->tb, g->M, g->N, g->K, 0.75f, g->A, g->ta ? g->M : g->K, g->B, g->tb ? g->K : g->N,
               1.0f, g->C, g->N);
    linear_forward(g->out, g->in, g->w, g->b, g->LB, g->Nin, g->Nout);
    memcpy(g->dw, g->dw0, (size_t)g->Nin * g->Nout * 4);
    memset(g->db, 0, (size_t)g->Nout * 4);
    linear_backward(g->din, g->dw, g->db, g->dout, g->in, g->w, g->LB, g->Nin, g->Nout);
}

static void test_gemm_linear(void) {
    const int shapes[][6] = {
        {437, 301, 33, 0, 0}, {211, 650, 17, 1, 0}, {64, 999, 40, 0, 1}, {1000, 130, 9, 1, 1}};
    const int lin[][3] = {{77, 1000, 600}, {300, 50, 10}, {24, 288, 512}};
    for (int k = 0; k < 4; k++) {
        Gemm g = {
            .M = shapes[k][0], .N = shapes[k][1], .K = shapes[k][2], .ta = shapes[k][3], .tb = shapes[k][4]};
        g.LB = lin[k % 3][0], g.Nin = lin[k % 3][1], g.Nout = lin[k % 3][2];
        g.A = rnd((size_t)g.M * g.K, -1, 1), g.B = rnd((size_t)g.K * g.N, -1, 1),
        g.C0 = rnd((size_t)g.M * g.N, -1, 1);
        g.C = xaligned_floats((size_t)g.M * g.N);
        g.in = rnd((size_t)g.LB * g.Nin, -1, 1), g.w = rnd((size_t)g.Nout * g.Nin, -0.1f, 0.1f);
        g.b = rnd(g.Nout, -1, 1), g.dout = rnd((size_t)g.LB * g.Nout, -1, 1),
        g.dw0 = rnd((size_t)g.Nout * g.Nin, -1, 1);
        g.out = xaligned_floats((size_t)g.LB * g.Nout), g.din = xaligned_floats((size_t)g.LB * g.Nin);
        g.dw = xaligned_floats((size_t)g.Nout * g.Nin), g.db = xaligned_floats(g.Nout);
        Outs o = {0};
        outs_add(&o, "blas_sgemm C", g.C, (size_t)g.M * g.N * 4);
        outs_add(&o, "linear out", g.out, (size_t)g.LB * g.Nout * 4);
        outs_add(&o, "linear din", g.din, (size_t)g.LB * g.Nin * 4);
        outs_add(&o, "linear dw", g.dw, (size_t)g.Nout * g.Nin * 4);
        outs_add(&o, "linear db", g.db, (size_t)g.Nout * 4);
        char what[96];
        snprintf(what, sizeof what, "sgemm %dx%dx%d t%d%d, linear %dx%d->%d", g.M, g.N, g.K, g.ta, g.tb, g.LB,
                 g.Nin, g.Nout);
        over_threads(what, gemm_run, &g, &o);
        int cols, w = blas_sgemm_blocks(g.M, g.N, g.K, &cols);
        CHECK((cols ? g.N : g.M) > w, "%s: cut into several blocks (width %d)", what, w);
        free(g.A), free(g.B), free(g.C0), free(g.C), free(g.in), free(g.w), free(g.b), free(g.dout),
            free(g.dw0);
        free(g.out), free(g.din), free(g.dw), free(g.db);
    }
}

/* ---- miners and losses (the global contract: anchors [a0, a1)) ---------- */

typedef struct Mining {
    int N, D, a0, a1, which;
    float *E, *dE, *dw, *hw, *dists, *ddist, *dA;
    float db;
    int32_t *labels;
    IndexTriplet *tch, *tl;
    IndexPair *pch, *pl;
    LossStats st[12];
} Mining;

static void mining_run(void *p) {
    Mining *m = p;
    int N = m->N, D = m->D, a0 = m->a0, a1 = m->a1, k = 0;
    size_t ws_n = triplet_workspace_floats(N, a1 - a0);
    if (pairs_workspace_floats(N, a1 - a0) > ws_n) ws_n = pairs_workspace_floats(N, a1 - a0);
    float *ws = xaligned_floats(ws_n);
    memset(m->dE, 0, sizeof(float) * (size_t)12 * N * D);
    memset(m->dw, 0, sizeof(float) * (size_t)3 * D);
    m->db = 0.5f;
    for (int soft = 0; soft < 2; soft++)
        for (int miner = 0; miner < 3; miner++) {
            IndexTriplet *ch = miner == MINE_BATCH_ALL ? NULL : m->tch + (size_t)(2 * miner + soft) * N * N;
            m->st[k] = triplet_loss(m->dE + (size_t)k * N * D, ch, ws, m->E, m->labels, (MiningStrategy)miner,
                                    0.3f, soft, N, D, a0, a1);
            k++;
        }
    m->st[k] = triplet_list_loss(m->dE + (size_t)k * N * D, m->E, m->tl, 0.3f, 0, N, D, 3, N / 3), k++;
    m->st[k] = pairs_contrastive(m->dE + (size_t)k * N * D, m->E, m->pl, 1.0f, N, D, 2, N / 2), k++;
    m->st[k] = pairs_koch(m->dE + (size_t)k * N * D, m->dw, &m->db, m->E, m->pl, m->hw, 0.1f, N, D, 2, N / 2),
    k++;
    m->st[k] =
        pairs_contrastive_hard(m->dE + (size_t)k * N * D, m->pch, ws, m->E, m->labels, 1.0f, N, D, a0, a1),
    k++;
    m->st[k] = pairs_koch_hard(m->dE + (size_t)k * N * D, m->dw + D, &m->db, m->pch + 2 * N, ws, m->E,
                               m->labels, m->hw, -0.2f, N, D, a0, a1),
    k++;
    m->st[k] = pairs_contrastive_all(m->dE + (size_t)k * N * D, ws, m->E, m->labels, 0.8f, N, D, a0, a1), k++;
    free(ws);
    ws = xaligned_floats(dist_backward_workspace_floats(N, N - 5));
    dist_matrix(m->dists, m->E, m->E + (size_t)5 * D, N, N - 5, D, ws);
    memset(m->dA, 0, sizeof(float) * (size_t)N * D);
    dist_matrix_backward(m->dA, m->dA + (size_t)5 * D, m->ddist, m->dists, m->E, m->E + (size_t)5 * D, N,
                         N - 5, D, ws);
    free(ws);
}

static void test_mining(void) {
    const int shapes[][4] = {{150, 24, 20, 117}, {64, 70, 0, 64}, {203, 8, 190, 203}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        Mining m = {.N = shapes[s][0], .D = shapes[s][1], .a0 = shapes[s][2], .a1 = shapes[s][3]};
        int N = m.N, D = m.D;
        m.E = xaligned_floats((size_t)N * D);
        m.labels = xcalloc((size_t)N, 4);
        fixture_gen_ties(m.E, m.labels, N, D, 5, &rng); /* equal rows and distances: the tie rules */
        m.dE = xaligned_floats((size_t)12 * N * D), m.dw = xaligned_floats((size_t)3 * D);
        m.hw = rnd((size_t)D, -1, 1), m.dists = xaligned_floats((size_t)N * N),
        m.ddist = rnd((size_t)N * N, -1, 1);
        m.dA = xaligned_floats((size_t)N * D);
        m.tch = xcalloc((size_t)6 * N * N, sizeof *m.tch), m.pch = xcalloc((size_t)4 * N, sizeof *m.pch);
        m.tl = xcalloc((size_t)N, sizeof *m.tl), m.pl = xcalloc((size_t)N, sizeof *m.pl);
        for (int i = 0; i < N; i++) {
            m.tl[i] = (IndexTriplet){i, (i * 7 + 1) % N, (i * 13 + 5) % N};
            m.pl[i] = (IndexPair){i, (i * 11 + 3) % N, i % 3 == 0};
        }
        Outs o = {0};
        outs_add(&o, "dE of every loss", m.dE, sizeof(float) * (size_t)12 * N * D);
        outs_add(&o, "Koch head dw", m.dw, sizeof(float) * (size_t)3 * D);
        outs_add(&o, "Koch head db", &m.db, sizeof m.db);
        outs_add(&o, "stats", m.st, sizeof m.st);
        outs_add(&o, "chosen triplets", m.tch, sizeof *m.tch * (size_t)6 * N * N);
        outs_add(&o, "chosen pairs", m.pch, sizeof *m.pch * (size_t)4 * N);
        outs_add(&o, "distance matrix", m.dists, sizeof(float) * (size_t)N * (N - 5));
        outs_add(&o, "distance backward", m.dA, sizeof(float) * (size_t)N * D);
        char what[96];
        snprintf(what, sizeof what, "mining N%d D%d anchors [%d, %d)", N, D, m.a0, m.a1);
        over_threads(what, mining_run, &m, &o);
        free(m.E), free(m.labels), free(m.dE), free(m.dw), free(m.hw), free(m.dists), free(m.ddist),
            free(m.dA);
        free(m.tch), free(m.pch), free(m.tl), free(m.pl);
    }
}

/* ---- optimizer updates and clipping ------------------------------------ */

typedef struct Opt {
    size_t n;
    ParamView views[3];
    float *p0, *g0, *p, *g, *state;
    double norm[4];
} Opt;

static void opt_run(void *ctx) {
    Opt *o = ctx;
    OptimSpec spec;
    optim_spec_default(&spec);
    float *st = o->state;
    for (int k = 0; k < 4; k++) { /* SGD momentum, Nesterov, Adam, AdamW */
        spec.type = k < 2 ? OPTIM_SGD : k == 2 ? OPTIM_ADAM : OPTIM_ADAMW;
        spec.momentum = 0.9, spec.nesterov = k == 1, spec.weight_decay = 1e-3;
        float *p = o->p + (size_t)k * o->n, *g = o->g + (size_t)k * o->n;
        memcpy(p, o->p0, o->n * 4), memcpy(g, o->g0, o->n * 4);
        memset(st, 0, 2 * o->n * 4);
        o->norm[k] = optim_clip(g, o->n, k == 3 ? 1e9 : 0.5);
        for (uint64_t t = 1; t <= 3; t++) optim_step(&spec, p, g, st, o->n, o->views, 3, 0.01, 0, t);
        st += 2 * o->n;
    }
}

static void test_optim(void) {
    Opt o = {.n = 200003};
    size_t cuts[4] = {0, 7, 70001, o.n};
    for (int v = 0; v < 3; v++) {
        o.views[v] = (ParamView){
            .offset = cuts[v], .count = cuts[v + 1] - cuts[v], .lr_mult = 1.0f + v, .decay_mult = 0.5f * v};
        snprintf(o.views[v].name, sizeof o.views[v].name, "v%d", v);
    }
    o.p0 = rnd(o.n, -1, 1), o.g0 = rnd(o.n, -1, 1);
    o.p = xaligned_floats(4 * o.n), o.g = xaligned_floats(4 * o.n), o.state = xaligned_floats(8 * o.n);
    Outs out = {0};
    outs_add(&out, "params", o.p, 4 * o.n * 4);
    outs_add(&out, "clipped gradients", o.g, 4 * o.n * 4);
    outs_add(&out, "state", o.state, 8 * o.n * 4);
    outs_add(&out, "norms", o.norm, sizeof o.norm);
    over_threads("optimizers and clipping, 200003 floats in 3 views", opt_run, &o, &out);
    free(o.p0), free(o.g0), free(o.p), free(o.g), free(o.state);
}

/* ---- decoding and augmenting a batch -------------------------------------- */

#define DC_C 3
#define DC_H 40
#define DC_W 37
#define DC_N 60

typedef struct DecCase {
    Sampler s;
    DsReader *r;
    BatchDecode dec;
    Batch b;
} DecCase;

static void dec_run(void *p) {
    DecCase *k = p;
    Err e;
    if (batch_load(&k->b, &k->s, k->r, 0, 1, &k->dec, 5, &e)) FATAL("%s", e.msg);
}

/* batch_load of a PK batch of 15 colour images with masks, about 3 images
 * a chunk: the same bits at 1..4 threads, and the same as a naive loop that
 * reads each record and distorts it with its own map (or, without
 * augmentation, maps its pixels through the channel's table). */
static void test_decode(void) {
    fixture_dir_create("threads");
    const char *path = fixture_path("dec.lmdb");
    Err e;
    DsWriterSpec ws = {.channels = DC_C,
                       .height = DC_H,
                       .width = DC_W,
                       .classes = 5,
                       .has_masks = 1,
                       .source = "test_threads"};
    DsWriter *w;
    if (ds_writer_create(&w, path, &ws, &e)) FATAL("%s", e.msg);
    static uint8_t px[DC_C * DC_H * DC_W], mk[DC_H * DC_W];
    for (int i = 0; i < DC_N; i++) {
        for (size_t j = 0; j < sizeof px; j++) px[j] = (uint8_t)(rng_u64(&rng) >> 56);
        for (size_t j = 0; j < sizeof mk; j++) mk[j] = (uint8_t)(j % DC_W > (size_t)(i % 20) + 5);
        if (ds_writer_add(w, px, i % 5, mk, &e)) FATAL("%s", e.msg);
    }
    if (ds_writer_finish(w, &e)) FATAL("%s", e.msg);
    Dataset *ds;
    if (ds_open(&ds, path, &e)) FATAL("%s", e.msg);
    AugmentSpec aug = {.rotate = 15,
                       .rotate_p = 0.8,
                       .shear = 0.2,
                       .shear_p = 0.5,
                       .scale_min = 0.9,
                       .scale_max = 1.1,
                       .scale_p = 0.5,
                       .translate = 3,
                       .translate_p = 0.7,
                       .hflip = 0.5,
                       .crop_pad = 2,
                       .fill = 30};
    for (int a = 0; a < 2; a++) {
        DecCase k;
        memset(&k, 0, sizeof k);
        SamplerSpec spec = {.mode = SAMPLER_PK, .p = 3, .k = 5, .seed = 3};
        if (sampler_init(&k.s, &spec, ds, &e) || ds_reader_open(ds, &k.r, &e)) FATAL("%s", e.msg);
        k.dec.norm.channels = DC_C;
        for (int c = 0; c < DC_C; c++)
            k.dec.norm.mean[c] = 0.2f + 0.1f * c, k.dec.norm.std[c] = 0.3f + 0.05f * c;
        k.dec.aug = a ? &aug : NULL;
        k.dec.seed = 9;
        batch_init(&k.b, &k.s, ds, 1);
        int n = 15;
        size_t hw = DC_H * DC_W, img = DC_C * hw;
        Outs o = {0};
        outs_add(&o, "images", k.b.x, n * img * 4);
        outs_add(&o, "masks", k.b.masks, n * hw);
        over_threads(a ? "batch_load with augmentation" : "batch_load", dec_run, &k, &o);
        CHECK(k.b.lb.n_images == n, "batch_load: %d images", k.b.lb.n_images);
        /* the naive loop */
        float *x = xaligned_floats(img), lut[DC_C][256];
        uint8_t m[DC_H * DC_W];
        int same_x = 1, same_m = 1, moved = 0;
        for (int c = 0; c < DC_C; c++) norm_table(lut[c], &k.dec.norm, c);
        for (int i = 0; i < n; i++) {
            int32_t label;
            if (ds_read(k.r, k.b.lb.ids[i], px, &label, mk, &e)) FATAL("%s", e.msg);
            AugmentMap map;
            augment_draw(&map, &aug, 9, 5, (uint64_t)sampler_global_image(&k.b.lb, i));
            for (int c = 0; c < DC_C; c++) {
                if (a)
                    augment_image(x + c * hw, px + c * hw, lut[c], &map, 30, 1, DC_H, DC_W);
                else
                    for (size_t j = 0; j < hw; j++) x[c * hw + j] = lut[c][px[c * hw + j]];
            }
            if (a)
                augment_mask(m, mk, &map, DC_H, DC_W);
            else
                memcpy(m, mk, hw);
            same_x &= !memcmp(x, k.b.x + i * img, img * 4);
            same_m &= !memcmp(m, k.b.masks + i * hw, hw);
            moved += a && !map.identity;
        }
        CHECK(same_x && same_m, "%s: images %d masks %d equal the naive loop's", a ? "augmented" : "plain",
              same_x, same_m);
        CHECK(!a || moved >= 10, "augmentation moved %d of %d images", moved, n);
        free(x);
        batch_free(&k.b);
        ds_reader_close(k.r);
        sampler_free(&k.s);
    }
    ds_close(ds);
    fixture_rm_tree(fixture_dir());
}

int main(void) {
    rng_seed(&rng, 16, RNG_TEST, 0);
    test_convblocks();
    test_conv2d();
    test_elementwise();
    test_gemm_linear();
    test_mining();
    test_optim();
    test_decode();
    parallel_shutdown();
    return test_finish();
}
