/* Tests of io/config and nn/model: the shipped configs parse and build to
 * the spec's parameter counts, the canonical text round-trips, every kind
 * of bad config is refused with its line, and the whole encoder's gradient
 * (through every layer type) matches finite differences. */
#include <stdlib.h>
#include <string.h>

#include "../io/config.h"
#include "../nn/model.h"
#include "test.h"

static int parse(Config *c, const char *text, Err *e) { return config_parse_text(c, text, "t.ini", e); }

static void expect_error(const char *text, const char *needle) {
    Config c;
    Err e = {{0}};
    int rc = parse(&c, text, &e);
    CHECK(rc == -1 && strstr(e.msg, needle), "expected error containing '%s', got rc %d '%s'", needle, rc, e.msg);
}

static const char *tiny =
    "[run]\nseed = 5\n[data]\ntrain = x\n[sampler]\nmode = pk\np = 2\nk = 2\n"
    "[conv2d]\nname = c1\nfilters = 3\nsize = 3\npad = 1\nstride = 2\n[relu]\n[maxpool]\nsize = 2\n"
    "[conv2d]\nfilters = 4\nsize = 2\n[sigmoid]\n[flatten]\n[linear]\nname = fc\nout = 5\n[l2norm]\n";

/* Loss = sum(E * R): its gradient w.r.t. E is R. */
static double model_loss(Model *m, const float *x, int B, const float *R) {
    const float *E = model_forward(m, x, B);
    double s = 0;
    for (int i = 0; i < B * m->emb_dim; i++) s += (double)E[i] * R[i];
    return s;
}

static void gradient_check(void) {
    Config c;
    Err e;
    CHECK(parse(&c, tiny, &e) == 0, "parse tiny: %s", e.msg);
    Model m;
    CHECK(model_build(&m, &c.model, "t.ini", 2, 9, 9, 3, &e) == 0, "build: %s", e.msg);
    model_init(&m, INIT_HE, 11);
    CHECK(m.emb_dim == 5, "embedding dim %d", m.emb_dim);
    int B = 3;
    size_t nx = (size_t)B * 2 * 9 * 9;
    float *x = xaligned_floats(nx), *R = xaligned_floats((size_t)B * 5);
    Rng r;
    rng_seed(&r, 1, RNG_TEST, 0);
    for (size_t i = 0; i < nx; i++) x[i] = (float)rng_normal(&r);
    for (int i = 0; i < B * 5; i++) R[i] = (float)rng_normal(&r);
    memset(m.grads, 0, m.nparams * sizeof(float));
    model_forward(&m, x, B);
    model_backward(&m, x, R, B, NULL, NULL);
    /* Compare every 7th parameter with central differences. */
    int bad = 0, checked = 0;
    for (size_t i = 0; i < m.nparams; i += 7) {
        float keep = m.params[i];
        double h = 1e-2;
        m.params[i] = keep + (float)h;
        double lp = model_loss(&m, x, B, R);
        m.params[i] = keep - (float)h;
        double lm = model_loss(&m, x, B, R);
        m.params[i] = keep;
        double fd = (lp - lm) / (2 * h), an = m.grads[i];
        checked++;
        if (fabs(fd - an) > 2e-2 * fmax(1.0, fabs(fd))) {
            if (bad < 5) fprintf(stderr, "param %zu: fd %g analytic %g\n", i, fd, an);
            bad++;
        }
    }
    /* A few kinks of relu/maxpool may be crossed by h: allow 2%. */
    CHECK(bad <= checked / 50, "model gradient: %d of %d parameters disagree with finite differences", bad, checked);
    /* Backward accumulates: a second call doubles the gradients. */
    float *g1 = xmalloc(m.nparams * sizeof(float));
    memcpy(g1, m.grads, m.nparams * sizeof(float));
    model_forward(&m, x, B);
    model_backward(&m, x, R, B, NULL, NULL);
    int acc = 1;
    for (size_t i = 0; i < m.nparams; i++) acc &= fabsf(m.grads[i] - 2 * g1[i]) <= 1e-5f * (1 + fabsf(g1[i]));
    CHECK(acc, "backward accumulates into the gradient arena");
    free(g1);
    free(x);
    free(R);
    model_free(&m);
}

int main(void) {
    Config c, d;
    Err e = {{0}};
    /* The shipped configs parse, validate and build to the spec's sizes. */
    CHECK(config_parse_file(&c, "configs/fmnist-triplet.ini", &e) == 0, "fmnist-triplet: %s", e.msg);
    CHECK(config_validate(&c, &e) == 0, "validate: %s", e.msg);
    Model m;
    CHECK(model_build(&m, &c.model, c.path, 1, 28, 28, 4, &e) == 0, "build: %s", e.msg);
    CHECK(m.nparams == 330944, "fmnist-small has %zu parameters, spec says 330,944", m.nparams);
    CHECK(m.emb_dim == 64, "embedding %d", m.emb_dim);
    CHECK(m.nviews == 8 && !strcmp(m.views[0].name, "conv1.weight") && !strcmp(m.views[7].name, "fc2.bias"),
          "views named from the config");
    model_free(&m);
    CHECK(config_parse_file(&d, "configs/fmnist-pair.ini", &e) == 0, "fmnist-pair: %s", e.msg);
    CHECK(config_validate(&d, &e) == 0, "validate pair: %s", e.msg);
    CHECK(model_build(&m, &d.model, d.path, 1, 28, 28, 4, &e) == 0, "build: %s", e.msg);
    CHECK(m.nparams == 330944 + 65, "pair model has %zu parameters", m.nparams);
    CHECK(m.head_w_off == 330944, "head at the end of the arena");
    model_free(&m);
    const char *others[] = {"configs/fmnist-contrastive.ini", "configs/koch-omniglot.ini", "configs/tiny.ini"};
    for (int i = 0; i < 3; i++) {
        CHECK(config_parse_file(&d, others[i], &e) == 0 && config_validate(&d, &e) == 0, "%s: %s", others[i], e.msg);
    }
    CHECK(model_build(&m, &d.model, d.path, 1, 12, 12, 4, &e) == 0, "tiny builds: %s", e.msg);
    model_free(&m);
    Config k;
    config_parse_file(&k, "configs/koch-omniglot.ini", &e);
    CHECK(model_build(&m, &k.model, k.path, 1, 105, 105, 2, &e) == 0, "koch builds: %s", e.msg);
    CHECK(m.layers[k.model.nlayers - 2].in_size == 9216, "Koch flatten is 9216 features (%zu)",
          m.layers[k.model.nlayers - 2].in_size);
    model_free(&m);
    /* SGD momentum per layer: a weighted layer's momentum key and [head]
     * momentum reach their tensors; batch norm (its momentum key is the
     * running statistics') and layers without the key follow [optim]. */
    Config mc;
    const char *mom =
        "[run]\nseed = 1\n[data]\ntrain = x\n[sampler]\nmode = pairs\n"
        "[conv2d]\nname = c1\nfilters = 2\nsize = 3\nmomentum = 0.7\n[batchnorm]\nname = bn\n"
        "momentum = 0.2\n[flatten]\n[linear]\nname = fc\nout = 3\n[head]\ntype = koch\nmomentum = 0\n"
        "[loss]\ntype = bce\n[mining]\nstrategy = none\n[optim]\nmomentum = 0.9\n";
    CHECK(parse(&mc, mom, &e) == 0 && config_validate(&mc, &e) == 0, "per-layer momentum: %s", e.msg);
    CHECK(model_build(&m, &mc.model, mc.path, 1, 6, 6, 2, &e) == 0, "per-layer momentum builds: %s", e.msg);
    int mom_ok = m.nviews == 8;
    for (int v = 0; v < m.nviews && mom_ok; v++) {
        const ParamView *pv = &m.views[v];
        if (!strncmp(pv->name, "c1.", 3))
            mom_ok = pv->has_momentum && pv->momentum == 0.7f;
        else if (!strncmp(pv->name, "head.", 5))
            mom_ok = pv->has_momentum && pv->momentum == 0.0f;
        else
            mom_ok = !pv->has_momentum; /* bn, fc: [optim] momentum */
    }
    CHECK(mom_ok, "views' own momentum: c1 0.7, head 0, bn and fc none (%d views)", m.nviews);
    CHECK(mc.model.layers[1].momentum == 0.2, "batch norm keeps its running-statistics momentum");
    model_free(&m);
    CHECK(parse(&mc, mom, &e) == 0 && config_set(&mc, "optim.momentum=0", &e) == 0 &&
              config_validate(&mc, &e) == -1 && strstr(e.msg, "[c1] momentum = 0.7"),
          "a layer momentum without a momentum buffer is refused: %s", e.msg);

    /* Canonical text round trip: text -> config -> same text. */
    char *t1 = config_to_text(&c);
    CHECK(parse(&d, t1, &e) == 0, "canonical text parses: %s", e.msg);
    char *t2 = config_to_text(&d);
    CHECK(!strcmp(t1, t2), "canonical text is a fixed point");
    CHECK(config_same_topology(&c, &d, &e) == 0, "same topology");
    free(t1);
    free(t2);

    /* Long values (a deep cluster path) and the INI line forms: lines of any
     * length round-trip; BOM, '#' and ';' comments, indented keys, inline
     * comments after a space. */
    {
        char set[700], path[600];
        memset(path, 'p', 450);
        memcpy(path, "/scratch/", 9);
        path[450] = 0;
        snprintf(set, sizeof set, "data.train=%s", path);
        Config l = c;
        CHECK(config_set(&l, set, &e) == 0, "long path set: %s", e.msg);
        char *lt = config_to_text(&l);
        CHECK(parse(&d, lt, &e) == 0 && !strcmp(d.data_train, path), "450-character path round-trips: %s", e.msg);
        free(lt);
        char *src = config_to_text(&c);
        char *txt = xmalloc(strlen(src) + 200);
        sprintf(txt, "\xEF\xBB\xBF# hash comment\n; semicolon comment\n%s\n[train]\n   seed = 77 ; inline\n", src);
        free(src);
        Config h;
        int rc = parse(&h, txt, &e);
        CHECK(rc == -1 && strstr(e.msg, "section [train] appears twice"), "second [train] refused: %s", e.msg);
        free(txt);
        CHECK(parse(&h, "\xEF\xBB\xBF# c\n[conv2d]\n  filters = 4 ; four\n  size=3\n[relu]\n", &e) == 0 &&
                  h.model.layers[0].filters == 4 && h.model.layers[0].size == 3,
              "BOM, comments, indented keys, inline comment: %s", e.msg);
        CHECK(parse(&h, "[conv2d]\nfilters = 4\nsize 3\n", &e) == -1 && strstr(e.msg, ":3: malformed line"),
              "a line without '=' is named: %s", e.msg);
        CHECK(parse(&h, "[conv\nfilters = 4\n", &e) == -1 && strstr(e.msg, ":1: malformed line"),
              "a section without ']' is named: %s", e.msg);
    }

    /* --set on singletons and layers; topology differences are named. */
    CHECK(config_set(&d, "optim.lr=0.01", &e) == 0 && d.optim.lr == 0.01, "set lr");
    CHECK(config_set(&d, "conv1.filters=16", &e) == 0 && d.model.layers[0].filters == 16, "set layer key");
    CHECK(config_same_topology(&c, &d, &e) == -1 && strstr(e.msg, "conv1.filters: 32 vs 16"), "diff named: %s", e.msg);
    CHECK(config_set(&d, "optim.lr=abc", &e) == -1 && strstr(e.msg, "optim.lr=abc"), "bad --set value: %s", e.msg);
    CHECK(config_set(&d, "optim.speed=1", &e) == -1 && strstr(e.msg, "unknown key 'speed'"), "unknown --set key");
    CHECK(config_set(&d, "conv9.size=3", &e) == -1 && strstr(e.msg, "conv9"), "unknown layer");
    CHECK(config_set(&d, "lr0.1", &e) == -1, "malformed --set");

    /* Bad configs: each error names the line. */
    expect_error("[run]\nseed = 1\nspeed = 3\n[conv2d]\nfilters=1\n", "t.ini:3: unknown key 'speed'");
    expect_error("[run]\nseed = -4\n[relu]\n", "t.ini:2:");
    expect_error("[optim]\nlr = fast\n[relu]\n", "t.ini:2: [optim] lr = 'fast'");
    expect_error("[optim]\ntype = rmsprop\n[relu]\n", "expected one of sgd|adam|adamw");
    expect_error("[relu]\n[bogus]\n", "t.ini:2: unknown section [bogus]");
    expect_error("[conv2d]\nsize = 3\n", "t.ini:1: [conv2d] conv2d1 needs 'filters'");
    expect_error("[run]\n[run]\n[relu]\n", "t.ini:2: section [run] appears twice");
    expect_error("[optim]\nlr = 1\nlr = 2\n[relu]\n", "t.ini:3: key 'lr' set twice");
    expect_error("[run]\nseed = 1\n", "no layer sections");
    expect_error("[linear]\nname = a\nout = 2\n[linear]\nname = a\nout = 3\n", "t.ini:4: layer name 'a' already used");
    expect_error("[run]\nthis is not ini\n[relu]\n", "t.ini:2:");

    /* A layer that does not fit its input: named with its line. */
    CHECK(parse(&d, "[conv2d]\nfilters = 2\nsize = 3\n[maxpool]\nsize = 2\n[conv2d]\nname = big\nfilters = 2\nsize = 9\n",
                &e) == 0, "parse: %s", e.msg);
    CHECK(model_build(&m, &d.model, "t.ini", 1, 12, 12, 2, &e) == -1 &&
              strstr(e.msg, "t.ini:6: [conv2d] big: kernel 9 does not fit its 2x5x5 input"),
          "misfit: %s", e.msg);
    /* Validation across sections. */
    CHECK(parse(&d, "[data]\ntrain = x\n[loss]\ntype = bce\n[relu]\n", &e) == 0, "parse");
    CHECK(config_validate(&d, &e) == -1 && strstr(e.msg, "needs [head] type = koch"), "bce without head: %s", e.msg);
    static const char *const bad[][2] = {
        {"[loss]\ntype = infonce\n", "set [mining] strategy = none"},
        {"[loss]\ntype = multi_similarity\n[mining]\nstrategy = batch_hard\n",
         "strategy = multi_similarity (its"},
        {"[mining]\nstrategy = multi_similarity\n", "goes with [loss] type = multi_similarity"},
        {"[sampler]\nmode = pairs\n[loss]\ntype = infonce\n[mining]\nstrategy = none\n",
         "needs [sampler] mode = pk"},
        {"[augment]\nscale_min = 1.2\nscale_max = 0.8\n", "scale_min = 1.2 is above scale_max = 0.8"},
        {"[mining]\nscope = local\nexchange = bf16\n",
         "exchange = bf16 rounds the embeddings of global mining"},
        {"[sampler]\nmode = pairs\n[loss]\ntype = contrastive\n[mining]\nstrategy = none\npool = classes\n",
         "pool = classes picks classes of a pk batch: it needs [sampler] mode = pk"},
        {"[mining]\nscope = local\npool = classes\n", "pool = classes picks classes of a pk batch"},
        {"[mining]\npool = classes\nexchange = fp16\n", "pool = classes exchanges fp32 rows"},
        {"[sampler]\np = 8\ngroups = 3\n", "groups = 3 needs mode = pk and p (8) a multiple of it"},
        {"[sampler]\nmode = pairs\ngroups = 2\n[loss]\ntype = contrastive\n[mining]\nstrategy = none\n",
         "groups = 2 needs mode = pk"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "[data]\ntrain = x\n%s[relu]\n", bad[i][0]);
        CHECK(parse(&d, text, &e) == 0 && config_validate(&d, &e) == -1 && strstr(e.msg, bad[i][1]),
              "refused with '%s': %s", bad[i][1], e.msg);
    }
    CHECK(parse(&d, "[data]\ntrain = x\n[loss]\ntype = infonce\n[mining]\nstrategy = none\n[relu]\n", &e) ==
                  0 &&
              config_validate(&d, &e) == 0 && d.loss.temperature == 0.1 && d.loss.symmetric == 1,
          "infonce with its defaults validates: %s", e.msg);
    CHECK(parse(&d, "[mining]\nclasses = 0\n[relu]\n", &e) == -1 && strstr(e.msg, "classes"),
          "[mining] classes = 0 refused: %s", e.msg);
    CHECK(parse(&d, "[data]\ntrain = x\n[mining]\npool = classes\nclasses = 3\n[relu]\n", &e) == 0 &&
              config_validate(&d, &e) == 0 && d.mining.pool == POOL_CLASSES && d.mining.classes == 3,
          "pool = classes with a pk sampler validates: %s", e.msg);
    CHECK(parse(&d, "[data]\ntrain = x\n[sampler]\np = 8\ngroups = 4\n[relu]\n", &e) == 0 &&
              config_validate(&d, &e) == 0 && d.sampler.groups == 4,
          "groups = 4 with p = 8 validates: %s", e.msg);
    CHECK(parse(&d, "[augment]\nshear = 1\n[relu]\n", &e) == -1 && strstr(e.msg, "shear = '1'"),
          "shear of 1 (a singular map) refused: %s", e.msg);

    int sc, sh, sw;
    CHECK(model_parse_shape("1x28x28", &sc, &sh, &sw) == 0 && sc == 1 && sh == 28 && sw == 28, "shape parse");
    CHECK(model_parse_shape("1x28", &sc, &sh, &sw) == -1 && model_parse_shape("1x28x28x2", &sc, &sh, &sw) == -1,
          "bad shapes refused");

    gradient_check();
    return test_finish();
}
