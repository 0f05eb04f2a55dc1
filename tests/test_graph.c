/* Tests of models as graphs (nn/model.c, docs/graph.md): every joining layer
 * through its registry row against central differences of each input and
 * parameter (also on the halves of a two-image batch); whole graphs (a Koch
 * two-tower net, a co-segmentation net whose features feed both the
 * correlation and a concat, a node read twice, fan-out around layers that
 * could run in place, a dead branch) against finite differences of every
 * parameter; the halves meaning what docs/graph.md says (the tower of a
 * two-image model equals the one-image model on each half; one-input
 * correlation equals the two directions of the two-input form); every
 * parameter range reported ready exactly once; and every kind of bad graph
 * refused with its file and line. */
#include <stdlib.h>
#include <string.h>

#include "../io/config.h"
#include "../nn/layer.h"
#include "fixture_num.h"
#include "test.h"

static Rng rng;

static int build(Model *m, const char *text, int c, int h, int w, int rows, Err *e) {
    Config cfg;
    if (config_parse_text(&cfg, text, "g.ini", e)) return -1;
    if (model_build(m, &cfg.model, "g.ini", c, h, w, rows, e)) return -1;
    model_init(m, INIT_TORCH, 7);
    for (size_t i = 0; i < m->nbuffers; i++) m->buffers[i] = 0.5f + rng_uniform(&rng);
    return 0;
}

static void expect_error(const char *text, int c, int h, int w, const char *needle) {
    Model m;
    Err e = {{0}};
    int rc = build(&m, text, c, h, w, 4, &e);
    CHECK(rc == -1 && strstr(e.msg, needle), "expected an error containing '%s', got rc %d: %s", needle, rc,
          e.msg);
    if (rc == 0) model_free(&m);
}

/* ---- one node through its row --------------------------------------------- */

typedef struct Probe {
    Model *m;
    int node, rows;
    const float *x, *R;
} Probe;

/* sum(output of the node * R) after a forward over x. */
static double probe_loss(void *ctx) {
    Probe *p = ctx;
    model_forward(p->m, p->x, p->rows);
    int r = model_node_rows(p->m, p->node, p->rows);
    return fixture_dot(model_output(p->m, p->node), p->R, (size_t)r * model_node_size(p->m, p->node));
}

/* The last node of `text`, whose inputs all read the model input (whole or
 * halves): its backward (the row's glue, called directly with input
 * gradient buffers) against central differences of x and of the
 * parameters. */
static void check_node_mode(const char *what, const char *text, int c, int h, int w, int rows, double tol,
                            float step, int train) {
    Model m;
    Err e;
    if (build(&m, text, c, h, w, rows, &e)) {
        CHECK(0, "%s: %s", what, e.msg);
        return;
    }
    ModelStep st = {train, 3, 5, 1, 0, 0, 0};
    model_set_step(&m, &st);
    int i = m.nlayers - 1, ri = model_node_rows(&m, i, rows);
    ModelLayer *L = &m.layers[i];
    size_t in = (size_t)c * h * w, nx = (size_t)rows * in, ny = (size_t)ri * L->out_size;
    float *x = fixture_rand_floats(&rng, nx, -1, 1), *R = fixture_rand_floats(&rng, ny, -1, 1);
    Probe p = {&m, i, rows, x, R};
    probe_loss(&p);
    float *gx = xaligned_floats(nx), *dx[LAYER_MAX_INPUTS];
    const float *xin[LAYER_MAX_INPUTS];
    size_t off[LAYER_MAX_INPUTS], len[LAYER_MAX_INPUTS];
    for (int k = 0; k < L->nin; k++) {
        CHECK(L->in[k].node == MODEL_INPUT, "%s: input %d reads the model input", what, k);
        len[k] = L->in[k].half == REF_WHOLE ? nx : nx / 2;
        off[k] = L->in[k].half == REF_B ? nx / 2 : 0;
        xin[k] = x + off[k];
        dx[k] = xaligned_floats(len[k]); /* zero: also right for rows that add */
    }
    memset(m.grads, 0, m.nparams * sizeof(float));
    L->def->backward(&m, L, dx, R, model_output(&m, i), xin, ri);
    for (int k = 0; k < L->nin; k++)
        for (size_t j = 0; j < len[k]; j++) gx[off[k] + j] += dx[k][j];
    double err = fixture_fd_error(probe_loss, &p, x, gx, nx, step, 300, &rng);
    CHECK(err < tol, "%s: input gradient vs finite differences, rel err %g", what, err);
    if (m.nparams) {
        err = fixture_fd_error(probe_loss, &p, m.params, m.grads, m.nparams, step, 300, &rng);
        CHECK(err < tol, "%s: parameter gradient vs finite differences, rel err %g", what, err);
    }
    for (int k = 0; k < L->nin; k++) free(dx[k]);
    free(x), free(R), free(gx);
    model_free(&m);
}

static void check_node(const char *what, const char *text, int c, int h, int w, int rows, double tol,
                       float step) {
    check_node_mode(what, text, c, h, w, rows, tol, step, 0);
}

/* ---- whole graphs ----------------------------------------------------------- */

typedef struct Ready {
    size_t covered;
    int calls, overlap;
    unsigned char *seen;
} Ready;

static void on_ready(void *ctx, size_t off, size_t n) {
    Ready *r = ctx;
    r->calls++;
    for (size_t i = off; i < off + n; i++) {
        r->overlap += r->seen[i];
        r->seen[i] = 1;
    }
    r->covered += n;
}

/* sum(loss node output * R): backward seeds R on the loss node. */
static double graph_loss(void *ctx) {
    Probe *p = ctx;
    return probe_loss(p);
}

/* Every parameter of `text` against central differences of the loss node's
 * sum(out * R); each parameter range reported ready once. Returns the
 * model (caller frees) for further checks. */
static void check_graph_step(Model *m, const char *what, const char *text, int c, int h, int w, int rows,
                             double tol, float step) {
    Err e;
    if (build(m, text, c, h, w, rows, &e)) {
        CHECK(0, "%s: %s", what, e.msg);
        memset(m, 0, sizeof *m);
        return;
    }
    int node = m->loss, ri = model_node_rows(m, node, rows);
    size_t nx = (size_t)rows * c * h * w, ny = (size_t)ri * model_node_size(m, node);
    float *x = fixture_rand_floats(&rng, nx, -1, 1), *R = fixture_rand_floats(&rng, ny, -1, 1);
    Probe p = {m, node, rows, x, R};
    probe_loss(&p);
    memset(m->grads, 0, m->nparams * sizeof(float));
    Ready rd = {0, 0, 0, xcalloc(m->nparams, 1)};
    ModelSeed s = {node, R};
    model_backward_seeds(m, &s, 1, on_ready, &rd);
    int with_params = 0;
    for (int i = 0; i < m->nlayers; i++) with_params += m->layers[i].np > 0;
    CHECK(rd.covered == m->nparams && rd.overlap == 0 && rd.calls == with_params,
          "%s: ready reported %zu of %zu parameters in %d calls (%d nodes with parameters), %d twice", what,
          rd.covered, m->nparams, rd.calls, with_params, rd.overlap);
    double err = fixture_fd_error(graph_loss, &p, m->params, m->grads, m->nparams, step, 400, &rng);
    CHECK(err < tol, "%s: parameter gradients vs finite differences, rel err %g", what, err);
    free(rd.seen), free(x), free(R);
}

static void check_graph(Model *m, const char *what, const char *text, int c, int h, int w, int rows,
                        double tol) {
    check_graph_step(m, what, text, c, h, w, rows, tol, 1e-2f);
}

#define PAIR_TOWER                                                                                           \
    "[conv2d]\nname = c1\nfilters = 3\nsize = 3\n[sigmoid]\nname = s1\n[flatten]\n[linear]\nname = fc\nout " \
    "= 5\n"                                                                                                  \
    "[sigmoid]\nname = emb\n"

static void test_two_tower(void) {
    const char *text =
        PAIR_TOWER "[absdiff]\nname = dist\ninput = emb@a, emb@b\n[linear]\nname = logit\nout = 1\n"
                   "[model]\nembedding = emb\n[loss]\ninput = logit\n";
    Model m;
    int B = 3;
    check_graph(&m, "koch two-tower", text, 1, 6, 6, 2 * B, 2e-3);
    if (!m.nlayers) return;
    CHECK(m.pair && m.emb == model_node(&m, "emb") && m.loss == model_node(&m, "logit"),
          "two-image model, outputs");
    CHECK(model_node_rows(&m, m.emb, 2 * B) == 2 * B && model_node_rows(&m, m.loss, 2 * B) == B,
          "emb has a row per image, logit one per pair");
    /* The tower is one shared encoder: the embeddings of the b half equal
     * model_embed of the b images alone (3 rows: odd is fine there). */
    size_t in = 36;
    float *x = fixture_rand_floats(&rng, 2 * B * in, -1, 1), *emb = xaligned_floats((size_t)2 * B * 5);
    model_forward(&m, x, 2 * B);
    memcpy(emb, model_output(&m, m.emb), (size_t)2 * B * 5 * sizeof(float));
    float dist[15];
    memcpy(dist, model_output(&m, model_node(&m, "dist")), sizeof dist);
    const float *eb = model_embed(&m, x + B * in, B);
    CHECK(memcmp(eb, emb + B * 5, (size_t)B * 5 * sizeof(float)) == 0,
          "b half of emb = the tower on the b images");
    int bad = 0;
    for (int i = 0; i < B * 5; i++) bad += dist[i] != fabsf(emb[i] - emb[B * 5 + i]);
    CHECK(bad == 0, "dist = |emb@a - emb@b| (%d differ)", bad);
    free(x), free(emb);
    model_free(&m);
}

static void test_coseg(void) {
    const char *text =
        "[conv2d]\nname = feat\nfilters = 3\nsize = 3\npad = 1\n[sigmoid]\nname = fs\n"
        "[correlation]\nname = corr\ninput = fs\ndisplacement = 1\n"
        "[concat]\nname = fused\ninput = corr, fs\n[conv2d]\nname = mask\nfilters = 1\nsize = 1\n";
    Model m;
    int B = 2;
    check_graph(&m, "co-segmentation", text, 2, 5, 4, 2 * B, 2e-3);
    if (!m.nlayers) return;
    CHECK(m.pair && model_node_rows(&m, m.loss, 2 * B) == 2 * B && m.layers[m.loss].oc == 1,
          "one 1x5x4 mask per image");
    /* One-input correlation = the two directions of the two-input form. */
    Model d;
    Err e;
    const char *two = "[conv2d]\nname = feat\nfilters = 3\nsize = 3\npad = 1\n[sigmoid]\nname = fs\n"
                      "[correlation]\nname = ab\ninput = fs@a, fs@b\ndisplacement = 1\n"
                      "[correlation]\nname = ba\ninput = fs@b, fs@a\ndisplacement = 1\n";
    CHECK(build(&d, two, 2, 5, 4, 2 * B, &e) == 0, "two-input correlation: %s", e.msg);
    memcpy(d.params, m.params, d.nparams * sizeof(float));
    float *x = fixture_rand_floats(&rng, (size_t)2 * B * 40, -1, 1);
    model_forward(&m, x, 2 * B);
    model_forward(&d, x, 2 * B);
    const float *both = model_output(&m, model_node(&m, "corr"));
    size_t half = (size_t)B * 9 * 20;
    CHECK(model_node_rows(&d, model_node(&d, "ab"), 2 * B) == B, "two-input correlation is pair-level");
    CHECK(memcmp(both, model_output(&d, model_node(&d, "ab")), half * sizeof(float)) == 0 &&
              memcmp(both + half, model_output(&d, model_node(&d, "ba")), half * sizeof(float)) == 0,
          "one-input correlation = a against b, then b against a");
    free(x);
    model_free(&d);
    model_free(&m);
}

/* m: the graph of config text as built; r: the same built with no_fusion
 * (the reference the fusion tests compare with bit for bit). */
static void build_fused_unfused(Model *m, Model *r, const char *text, int c, int h, int w, int rows,
                                const char *what) {
    Config cfg;
    Err e;
    CHECK(config_parse_text(&cfg, text, "g.ini", &e) == 0 &&
              model_build(m, &cfg.model, "g.ini", c, h, w, rows, &e) == 0,
          "%s: %s", what, e.msg);
    cfg.model.no_fusion = 1;
    CHECK(model_build(r, &cfg.model, "g.ini", c, h, w, rows, &e) == 0, "%s unfused: %s", what, e.msg);
}

/* batchnorm -> relu [-> maxpool 2x2: 37 x 29 planes, floor mode] fused (one
 * node each way, the ReLU's mask recomputed from the input, or read from
 * the pooled output) against the
 * same graph built without fusion, in training and inference mode: outputs,
 * input-side and parameter gradients and the running statistics bit for bit.
 * A batch norm whose output something else reads (b2, also read by the
 * concat) or that is the embedding (emb) stays alone. */
static void test_bn_relu_fusion(int pool) {
    char text[600];
    snprintf(text, sizeof text, "%s%s%s",
             "[conv2d]\nname = c1\nfilters = 3\nsize = 3\npad = 1\n[batchnorm]\nname = b1\n[relu]\n",
             pool ? "[maxpool]\n" : "",
             "[conv2d]\nname = c2\nfilters = 4\nsize = 3\npad = 1\n[batchnorm]\nname = b2\n[relu]\n"
             "name = r2\n[concat]\ninput = r2, b2\n[batchnorm]\nname = emb\n[relu]\n"
             "[conv2d]\nname = out\nfilters = 2\nsize = 1\n[model]\nembedding = emb\n");
    int c = 2, h = 37, w = 29, rows = 3; /* planes of 1073 floats: two blocks of the staged sums and a tail */
    Model m, r;
    build_fused_unfused(&m, &r, text, c, h, w, rows, "bn + relu");
    CHECK(m.layers[model_node(&m, "b1")].fuse == 1 + pool && m.layers[model_node(&m, "b2")].fuse == 0 &&
              m.layers[model_node(&m, "emb")].fuse == 0 && r.layers[model_node(&r, "b1")].fuse == 0,
          "b1 fused with its relu (and the maxpool: %d); b2 (read twice) and emb (the embedding) alone",
          pool);
    model_init(&m, INIT_TORCH, 7);
    for (size_t i = 0; i < m.nparams; i++)
        m.params[i] += 0.3f * (rng_uniform(&rng) - 0.5f); /* gamma, beta != 1, 0 */
    for (size_t i = 0; i < m.nbuffers; i++) m.buffers[i] = 0.5f + rng_uniform(&rng);
    memcpy(r.params, m.params, m.nparams * sizeof(float));
    memcpy(r.buffers, m.buffers, m.nbuffers * sizeof(float));
    size_t nx = (size_t)rows * c * h * w, ny = (size_t)rows * m.layers[m.loss].out_size;
    float *x = fixture_rand_floats(&rng, nx, -1, 1), *R = fixture_rand_floats(&rng, ny, -1, 1);
    for (int train = 1; train >= 0; train--) {
        ModelStep st = {train, 3, 5, 1, 0, 0, 0};
        model_set_step(&m, &st);
        model_set_step(&r, &st);
        const float *ym = model_forward(&m, x, rows), *yr = model_forward(&r, x, rows);
        CHECK(!memcmp(ym, yr, ny * sizeof(float)), "bn + relu (train %d, pool %d): the unfused output's bits",
              train, pool);
        memset(m.grads, 0, m.nparams * sizeof(float));
        memset(r.grads, 0, r.nparams * sizeof(float));
        model_backward(&m, x, R, rows, NULL, NULL);
        model_backward(&r, x, R, rows, NULL, NULL);
        CHECK(!memcmp(m.grads, r.grads, m.nparams * sizeof(float)),
              "bn + relu (train %d, pool %d): the unfused parameter gradients' bits", train, pool);
        if (train) {
            model_update_buffers(&m);
            model_update_buffers(&r);
            CHECK(!memcmp(m.buffers, r.buffers, m.nbuffers * sizeof(float)),
                  "bn + relu: the unfused running statistics' bits");
        }
    }
    free(x), free(R);
    model_free(&m);
    model_free(&r);
}

/* deconv2d -> relu fused (one node, the ReLU with the bias, dout cut by
 * the block output in the backward) against the same graph without
 * fusion: outputs, input and parameter gradients bit for bit, in training
 * (two images); a deconv2d whose output the concat reads too (d2) stays
 * alone. */
static void test_deconv_relu_fusion(void) {
    const char *text = "[deconv2d]\nname = d1\nfilters = 3\nsize = 4\nstride = 2\npad = 1\n[relu]\n"
                       "[deconv2d]\nname = d2\nfilters = 2\nsize = 3\nstride = 1\npad = 1\n[relu]\nname = r2\n"
                       "[concat]\ninput = r2, d2\n[conv2d]\nname = out\nfilters = 2\nsize = 1\n";
    int c = 2, h = 9, w = 7, rows = 2;
    Model m, r;
    build_fused_unfused(&m, &r, text, c, h, w, rows, "deconv2d + relu");
    CHECK(m.layers[model_node(&m, "d1")].fuse == 1 && m.layers[model_node(&m, "d2")].fuse == 0 &&
              r.layers[model_node(&r, "d1")].fuse == 0,
          "d1 fused with its relu; d2 (read twice) alone");
    model_init(&m, INIT_TORCH, 8);
    for (size_t i = 0; i < m.nparams; i++) m.params[i] += 0.3f * (rng_uniform(&rng) - 0.5f);
    memcpy(r.params, m.params, m.nparams * sizeof(float));
    size_t nx = (size_t)rows * c * h * w, ny = (size_t)rows * m.layers[m.loss].out_size;
    float *x = fixture_rand_floats(&rng, nx, -1, 1), *R = fixture_rand_floats(&rng, ny, -1, 1);
    ModelStep st = {1, 3, 5, 1, 0, 0, 0};
    model_set_step(&m, &st);
    model_set_step(&r, &st);
    const float *ym = model_forward(&m, x, rows), *yr = model_forward(&r, x, rows);
    const float *dm = model_output(&m, model_node(&m, "d1")); /* the block's: after the ReLU */
    size_t nd = (size_t)rows * m.layers[model_node(&m, "d1")].out_size, zeros = 0;
    for (size_t i = 0; i < nd; i++) zeros += dm[i] == 0.0f;
    CHECK(!memcmp(ym, yr, ny * sizeof(float)) && zeros > nd / 8,
          "deconv2d + relu: the unfused output's bits (%zu of %zu values cut by the ReLU)", zeros, nd);
    memset(m.grads, 0, m.nparams * sizeof(float));
    memset(r.grads, 0, r.nparams * sizeof(float));
    model_backward(&m, x, R, rows, NULL, NULL);
    model_backward(&r, x, R, rows, NULL, NULL);
    CHECK(!memcmp(m.grads, r.grads, m.nparams * sizeof(float)), "deconv2d + relu: the unfused parameter gradients' bits");
    free(x), free(R);
    model_free(&m);
    model_free(&r);
}

static void test_shared_reads(void) {
    Model m;
    /* One node read twice by one layer, and by two layers. */
    check_graph(&m, "add(c, c)", "[conv2d]\nname = c\nfilters = 2\nsize = 3\n[add]\ninput = c, c\n", 2, 5, 5,
                3, 2e-3);
    model_free(&m);
    check_graph(&m, "concat(c, c, c)",
                "[conv2d]\nname = c\nfilters = 2\nsize = 3\n[concat]\ninput = c, c, c\n", 2, 5, 5, 3, 2e-3);
    model_free(&m);
    /* l1 feeds a relu and a sigmoid: neither may overwrite it. */
    const char *fan = "[flatten]\n[linear]\nname = l1\nout = 6\n[relu]\nname = r\ninput = l1\n"
                      "[sigmoid]\nname = s\ninput = l1\n[add]\ninput = r, s\n[linear]\nout = 2\n";
    check_graph_step(&m, "fan-out around in-place layers", fan, 1, 3, 3, 4, 5e-3,
                     1e-3f); /* relu: small steps */
    if (m.nlayers) {
        int r = model_node(&m, "r"), s = model_node(&m, "s");
        CHECK(m.layers[r].alias == r && m.layers[s].alias == s, "relu and sigmoid keep their own outputs");
        model_free(&m);
    }
    /* A conv reading concat(c, input) computes the input gradient of c's
     * channels only (conv2d_backward_part: the image's are not read), and
     * of all of them behind concat(input, c): c's gradients either way. */
    const char *img = "[conv2d]\nname = c\nfilters = 3\nsize = 3\npad = 1\n[concat]\ninput = c, input\n"
                      "[conv2d]\nname = d\nfilters = 2\nsize = 3\npad = 1\n";
    check_graph(&m, "conv2d after concat(c, input)", img, 2, 9, 8, 3, 2e-3);
    model_free(&m);
    const char *img2 = "[conv2d]\nname = c\nfilters = 3\nsize = 3\npad = 1\n[concat]\ninput = input, c\n"
                       "[conv2d]\nname = d\nfilters = 2\nsize = 3\npad = 1\n";
    check_graph(&m, "conv2d after concat(input, c)", img2, 2, 9, 8, 3, 2e-3);
    model_free(&m);
    /* A branch the loss does not read gets no gradient, but is reported. */
    const char *dead = "[flatten]\n[linear]\nname = a\nout = 4\n[linear]\nname = b\nout = 3\ninput = a\n"
                       "[linear]\nname = c\nout = 2\ninput = a\n";
    check_graph(&m, "dead branch", dead, 1, 2, 2, 3, 2e-3);
    if (m.nlayers) {
        const ModelLayer *b = &m.layers[model_node(&m, "b")];
        int zero = 1;
        for (size_t i = 0; i < b->np; i++) zero &= m.grads[b->p_off + i] == 0.0f;
        CHECK(zero && m.loss == model_node(&m, "c"), "the unread branch b has zero gradients");
        model_free(&m);
    }
    /* difference(c, c) is zero whatever c: its gradient too. */
    check_graph(&m, "difference(c, c)",
                "[conv2d]\nname = c\nfilters = 2\nsize = 3\n[difference]\ninput = c, c\n", 1, 4, 4, 2, 2e-3);
    if (m.nlayers) {
        int zero = 1;
        for (size_t i = 0; i < m.nparams; i++) zero &= m.grads[i] == 0.0f;
        CHECK(zero, "difference of a node with itself has zero gradients");
        model_free(&m);
    }
}

static void test_nodes(void) {
    check_node("concat of halves", "[concat]\ninput = input@a, input@b\n", 2, 3, 4, 6, 2e-3, 0.05f);
    check_node("concat of three", "[concat]\ninput = input, input, input\n", 2, 3, 3, 2, 2e-3, 0.05f);
    check_node("add", "[add]\ninput = input@b, input@a\n", 3, 2, 2, 4, 2e-3, 0.05f);
    check_node("difference", "[difference]\ninput = input@a, input@b\n", 2, 3, 3, 4, 2e-3, 0.05f);
    check_node("absdiff", "[absdiff]\ninput = input@a, input@b\n", 2, 3, 3, 4, 2e-3, 1e-3f);
    check_node("correlation a-b, d 2", "[correlation]\ninput = input@a, input@b\ndisplacement = 2\n", 3, 5, 6,
               4, 2e-3, 0.05f);
    check_node("correlation both ways, dilation 2",
               "[correlation]\ninput = input\ndisplacement = 1\ndilation = 2\n", 2, 6, 5, 4, 2e-3, 0.05f);
    check_node("correlation both ways, cosine, max",
               "[correlation]\ninput = input\ndisplacement = 1\nnormalize = cosine\nmax = 1\n", 4, 4, 3, 4,
               2e-3, 2e-3f);
    check_node("upsample nearest x3", "[upsample]\nfactor = 3\n", 2, 3, 4, 2, 2e-3, 0.05f);
    check_node("upsample bilinear x2", "[upsample]\nmode = bilinear\n", 2, 4, 3, 2, 2e-3, 0.05f);
    check_node("deconv2d stride 2 pad 1", "[deconv2d]\nfilters = 3\nsize = 4\nstride = 2\npad = 1\n", 2, 3, 4,
               2, 2e-3, 0.05f);
    check_node("deconv2d stride 3", "[deconv2d]\nfilters = 2\nsize = 3\nstride = 3\n", 3, 2, 3, 2, 2e-3,
               0.05f);
    check_node("avgpool", "[avgpool]\n", 3, 4, 5, 2, 2e-3, 0.05f);
    check_node("batchnorm, inference", "[batchnorm]\n", 3, 4, 2, 3, 2e-3, 0.05f);
    check_node_mode("batchnorm, training", "[batchnorm]\nmomentum = 0.3\n", 3, 4, 2, 3, 5e-3, 1e-2f, 1);
    check_node_mode("batchnorm on C x 1 x 1 rows (BatchNorm1d), training", "[batchnorm]\n", 6, 1, 1, 5, 5e-3,
                    1e-2f, 1);
    check_node_mode("dropout, training", "[dropout]\np = 0.3\n", 2, 3, 3, 4, 2e-3, 0.05f, 1);
}

/* model_copy_layers ([init] from): the layers of the same name and shapes
 * copied (parameters and running statistics), the others untouched; a
 * layer of another type or shape, or no common name, refused. */
static void test_copy_layers(void) {
    const char *dst_text = "[conv2d]\nname = c1\nfilters = 3\n[batchnorm]\nname = b1\n[relu]\n"
                           "[conv2d]\nname = c2\nfilters = 2\n";
    Model d, s;
    Err e = {{0}};
    if (build(&d, dst_text, 2, 5, 5, 2, &e) ||
        build(&s,
              "[conv2d]\nname = c1\nfilters = 3\n[batchnorm]\nname = b1\n[conv2d]\nname = x\nfilters = 4\n",
              2, 5, 5, 2, &e)) {
        CHECK(0, "copy layers: %s", e.msg);
        return;
    }
    for (size_t i = 0; i < s.nparams; i++) s.params[i] = rng_uniform(&rng);
    for (size_t i = 0; i < s.nbuffers; i++) s.buffers[i] = 2 + rng_uniform(&rng);
    float *before = xaligned_floats(d.nparams);
    memcpy(before, d.params, d.nparams * sizeof(float));
    int n = model_copy_layers(&d, &s, &e);
    CHECK(n == 2, "copy layers: c1 and b1 copied (%d: %s)", n, e.msg);
    int same = 1, kept = 1;
    for (int v = 0; v < d.nviews; v++) {
        const ParamView *pv = &d.views[v];
        int j = -1;
        for (int u = 0; u < s.nviews; u++)
            if (!strcmp(s.views[u].name, pv->name)) j = u;
        if (j >= 0)
            same &= !memcmp(d.params + pv->offset, s.params + s.views[j].offset, pv->count * sizeof(float));
        else
            kept &= !memcmp(d.params + pv->offset, before + pv->offset, pv->count * sizeof(float));
    }
    CHECK(same && kept && d.nbuffers == s.nbuffers &&
              !memcmp(d.buffers, s.buffers, d.nbuffers * sizeof(float)),
          "copy layers: c1, b1 and b1's running statistics equal the source's, c2 unchanged");
    model_free(&s);

    const char *bad[][2] = {
        {"[conv2d]\nname = c1\nfilters = 3\n[batchnorm]\nname = b1\n[relu]\n[conv2d]\nname = c2\nfilters = "
         "5\n",
         "layer c2 has other shapes: c2.weight is 2x3x3x3 here but 5x3x3x3 there"},
        {"[conv2d]\nname = b1\nfilters = 3\n", "layer b1 is a [batchnorm]"},
        {"[conv2d]\nname = q\nfilters = 3\n", "no layer with parameters has a name the other model has"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        if (build(&s, bad[k][0], 2, 5, 5, 2, &e)) {
            CHECK(0, "copy layers: %s", e.msg);
            continue;
        }
        memset(&e, 0, sizeof e);
        memcpy(before, d.params, d.nparams * sizeof(float));
        n = model_copy_layers(&d, &s, &e);
        CHECK(n == -1 && strstr(e.msg, bad[k][1]), "copy layers refused: want '%s', got %d '%s'", bad[k][1],
              n, e.msg);
        CHECK(!memcmp(before, d.params, d.nparams * sizeof(float)), "copy layers refused: nothing copied");
        model_free(&s);
    }
    model_free(&d);
    free(before);
}

static void test_errors(void) {
    expect_error(
        "[conv2d]\nfilters = 2\n[concat]\nname = j\ninput = conv2d1, zz\n", 1, 5, 5,
        "g.ini:3: [concat] j: input 'zz' is not a layer above this one (layers above: input, conv2d1)");
    expect_error("[relu]\ninput = later\n[relu]\nname = later\n", 1, 3, 3,
                 "g.ini:1: [relu] relu1: input 'later' is a layer below (line 3)");
    expect_error("[relu]\nname = r\ninput = r\n", 1, 3, 3, "input 'r' is this layer");
    expect_error("[concat]\ninput = input\n", 1, 3, 3,
                 "g.ini:1: [concat] concat1: takes 2 to 4 inputs, not 1");
    expect_error("[relu]\ninput = input, input\n", 1, 3, 3, "takes 1 input, not 2");
    expect_error("[relu]\ninput = input@c\n", 1, 3, 3, "input 'input@c': a half is NAME@a or NAME@b");
    expect_error("[relu]\ninput = input,\n", 1, 3, 3, "input '': empty name");
    expect_error("[relu]\nname = r\ninput = input@a\n[relu]\ninput = r@b\n", 1, 3, 3,
                 "g.ini:4: [relu] relu2: r is pair-level (one row per pair)");
    expect_error("[relu]\nname = r\ninput = input@a\n[add]\ninput = r, input\n", 1, 3, 3,
                 "they must have the same height, width and rows");
    expect_error("[conv2d]\nname = c\nfilters = 2\npad = 1\n[add]\ninput = c, input\n", 1, 5, 5,
                 "input 2 has 1 channels but input 1 has 2");
    expect_error("[maxpool]\nname = p\n[concat]\ninput = p, input\n", 1, 6, 6, "input 2 is 1x6x6");
    expect_error("[relu]\n[model]\nembedding = nope\n", 1, 3, 3,
                 "g.ini: [model] embedding = 'nope': no such layer");
    expect_error("[relu]\nname = r\ninput = input@a\n[model]\nembedding = r\n", 1, 3, 3,
                 "[model] embedding = 'r' is pair-level");
    expect_error("[relu]\n[loss]\ninput = nope\n", 1, 3, 3, "[loss] input = 'nope': no such layer");
    expect_error("[relu]\nname = input\n", 1, 3, 3, "layer name 'input' is reserved");
    expect_error("[flatten]\n[correlation]\n", 1, 3, 3, "its input is flat");
}

/* The three example configs of docs/graph.md build (planned, not
 * allocated: Koch's fc1 is large) on the inputs they are written for. */
static void test_doc_examples(void) {
    FILE *f = fopen("docs/graph.md", "r");
    CHECK(f != NULL, "docs/graph.md readable from the repository root");
    if (!f) return;
    static const struct {
        int c, h, w, pair;
        const char *emb, *loss;
    } want[3] = {
        {1, 105, 105, 1, "emb", "logit"}, {1, 28, 28, 1, NULL, "logit"}, {3, 64, 64, 1, "feat", "feat"}};
    char line[256], block[4096];
    size_t len = 0;
    int n = 0, in_block = 0;
    for (;;) {
        char *got = fgets(line, sizeof line, f);
        int code = got && !strncmp(line, "    ", 4);
        if (code) {
            len += (size_t)snprintf(block + len, sizeof block - len, "%s", line + 4);
            in_block = 1;
            continue;
        }
        if (in_block && got && line[0] == '\n') continue; /* a blank line inside a block */
        if (in_block && strstr(block, "[sampler]") && n < 3) {
            Config c;
            Model m;
            Err e;
            int ok = config_parse_text(&c, block, "graph.md", &e) == 0 &&
                     model_plan(&m, &c.model, "graph.md", want[n].c, want[n].h, want[n].w, 2, &e) == 0;
            CHECK(ok, "docs/graph.md example %d builds: %s", n + 1, e.msg);
            if (ok) {
                CHECK(
                    m.pair == want[n].pair && !strcmp(m.layers[m.loss].name, want[n].loss) &&
                        (want[n].emb ? m.emb >= 0 && !strcmp(m.layers[m.emb].name, want[n].emb) : m.emb < 0),
                    "docs/graph.md example %d: two-image model, embedding and loss node as documented",
                    n + 1);
                int mask = model_node(&m, "mask");
                if (n == 2)
                    CHECK(mask >= 0 && m.layers[mask].oc == 1 && m.layers[mask].oh == 64 &&
                              m.layers[mask].ow == 64 && !m.layers[mask].halved,
                          "docs/graph.md co-segmentation: one 1x64x64 mask per image");
                model_free(&m);
            }
            n++;
        }
        in_block = 0, len = 0, block[0] = 0;
        if (!got) break;
    }
    fclose(f);
    CHECK(n == 3, "docs/graph.md has its three example configs (found %d)", n);
}

int main(void) {
    rng_seed(&rng, 3, RNG_TEST, 11);
    test_nodes();
    test_two_tower();
    test_coseg();
    test_bn_relu_fusion(0);
    test_bn_relu_fusion(1);
    test_deconv_relu_fusion();
    test_shared_reads();
    test_copy_layers();
    test_errors();
    test_doc_examples();
    return test_finish();
}
