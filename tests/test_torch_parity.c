/* Parity with PyTorch (Debian's python3-torch, run as /usr/bin/python3
 * tests/parity_torch.py): fmnist-small on the same weights and batch gives
 * the same embeddings, loss, parameter gradients and weights after one SGD
 * step within 1e-4 relative, for the triplet-batchall recipe
 * (configs/fmnist-triplet.ini) and the pair-bce recipe (configs/fmnist-pair.ini).
 * The C side is the real trainer path: trainer_setup (torch init),
 * batch_load of step 0, trainer_grads, trainer_step. Relative error of a
 * tensor: max|c - torch| / max|torch| (the pair recipe's fc2.bias gradient
 * is zero by construction and checked as zero instead). The check is shown
 * able to fail by a perturbed copy of one gradient. Runs from the repository root (as
 * tests/run.sh does); without torch it FAILS and says to run `make deps`. */
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../dist/train.h"
#include "../io/npy.h"
#include "../io/pairgen.h"
#include "fixture_num.h"
#include "fixture_torch.h"
#include "test.h"

#define TOL 1e-4
#define CLASSES 10
#define PER_CLASS 40
#define SIDE 28
#define NPAIRS 256

static char root[PATH_MAX]; /* repository root */
static char dir[PATH_MAX];  /* temporary directory */
static uint8_t *images;     /* (CLASSES * PER_CLASS, SIDE * SIDE), by sample id */

/* 10 classes x 40 images: a class stripe pattern plus noise. */
static void make_dataset(void) {
    Err e;
    snprintf(dir, sizeof dir, "/tmp/siamese-parity-XXXXXX");
    if (!mkdtemp(dir)) FATAL("mkdtemp %s failed", dir);
    char path[PATH_MAX];
    fixture_path_fmt(path, sizeof path, "%s/data.lmdb", dir);
    DsWriterSpec spec = {1, SIDE, SIDE, CLASSES, 0, 0, "torch parity test", NULL};
    DsWriter *w;
    if (ds_writer_create(&w, path, &spec, &e)) FATAL("%s", e.msg);
    Rng r;
    rng_seed(&r, 4, RNG_TEST, 0);
    int n = CLASSES * PER_CLASS;
    images = xmalloc((size_t)n * SIDE * SIDE);
    int32_t labels[CLASSES * PER_CLASS];
    for (int i = 0; i < n; i++) {
        int c = i % CLASSES;
        uint8_t *px = images + (size_t)i * SIDE * SIDE;
        for (int p = 0; p < SIDE * SIDE; p++) {
            int on = (p % SIDE + p / SIDE * (c % 4)) % (c + 3) == 0;
            double v = 50 + 140 * on + 45 * rng_normal(&r);
            px[p] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        labels[i] = c;
        if (ds_writer_add(w, px, c, NULL, &e)) FATAL("%s", e.msg);
    }
    if (ds_writer_finish(w, &e)) FATAL("%s", e.msg);
    uint32_t a[NPAIRS], b[NPAIRS];
    uint8_t same[NPAIRS];
    if (pairgen_pairs(a, b, same, NPAIRS, labels, (uint64_t)n, CLASSES, 9, &e)) FATAL("%s", e.msg);
    if (ds_write_pairs(path, a, b, same, NPAIRS, &e)) FATAL("%s", e.msg);
}

/* What the C side computed for one recipe (all owned). */
typedef struct Side {
    int n, D;
    size_t nparams;
    int nviews;
    ParamView *views;
    float *x, *emb, *params, *grads, *new_params;
    double loss;
} Side;

static void side_free(Side *s) {
    free(s->views), free(s->x), free(s->emb), free(s->params), free(s->grads), free(s->new_params);
}

static float *copy_floats(const float *p, size_t n) {
    float *q = xmalloc(n * sizeof(float));
    memcpy(q, p, n * sizeof(float));
    return q;
}

static void write_i32(const char *cdir, const char *name, const int32_t *p, int64_t n) {
    char path[PATH_MAX];
    Err e;
    fixture_path_fmt(path, sizeof path, "%s/%s", cdir, name);
    if (npy_write_i32(path, p, n, &e)) FATAL("%s", e.msg);
}

/* Runs step 0 of the recipe (config file + overrides) through the trainer
 * and writes the case directory for parity_torch.py. */
static void run_c(Side *s, const char *recipe, const char *cfg_file, const char *cdir) {
    Err e;
    Config c;
    char path[PATH_MAX], data[PATH_MAX], rundir[PATH_MAX];
    fixture_path_fmt(path, sizeof path, "%s/%s", root, cfg_file);
    if (config_parse_file(&c, path, &e)) FATAL("%s", e.msg);
    fixture_path_fmt(data, sizeof data, "data.train=%s/data.lmdb", dir);
    fixture_path_fmt(rundir, sizeof rundir, "run.dir=%s/run-%s", dir, recipe);
    const char *sets[] = {data, "data.test=", rundir, "sampler.p=8"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        if (config_set(&c, sets[i], &e)) FATAL("%s", e.msg);
    if (config_validate(&c, &e)) FATAL("%s: %s", cfg_file, e.msg);
    char *text = config_to_text(&c);
    Trainer t;
    if (trainer_setup(&t, text, 0, &e)) FATAL("%s", e.msg);
    free(text);

    /* The config is the spec's recipe (parity_torch.py hard-codes it). */
    int pk = t.cfg.sampler.mode == SAMPLER_PK;
    CHECK(t.opt.type == OPTIM_SGD && t.opt.lr == 0.05 && t.opt.momentum == 0.9 &&
              t.opt.weight_decay == 5e-4 && !t.opt.nesterov && t.cfg.optim.clip_norm == 0,
          "%s: SGD lr 0.05 momentum 0.9 wd 5e-4 (have lr %g momentum %g wd %g)", cfg_file, t.opt.lr,
          t.opt.momentum, t.opt.weight_decay);
    CHECK(t.norm.channels == 1 && t.norm.mean[0] == 0.2860f && t.norm.std[0] == 0.3530f, "%s: mean/std %g/%g",
          cfg_file, t.norm.mean[0], t.norm.std[0]);
    CHECK(t.cfg.init_scheme == INIT_TORCH, "%s: init.scheme = torch", cfg_file);
    if (pk)
        CHECK(t.cfg.loss.type == LOSS_TRIPLET && t.cfg.mining.strategy == MINE_BATCH_ALL &&
                  t.cfg.loss.margin == 0.2 && !t.cfg.loss.soft && t.global_items == 256,
              "%s: triplet batch-all, margin 0.2, 256 images", cfg_file);
    else
        CHECK(t.cfg.loss.type == LOSS_BCE && t.model.has_head && t.global_items == 128,
              "%s: Koch BCE over 128 pairs", cfg_file);

    Batch b;
    batch_init(&b, &t.sampler, t.ds, t.world);
    DsReader *r;
    if (ds_reader_open(t.ds, &r, &e)) FATAL("%s", e.msg);
    BatchDecode dec = trainer_decode(&t);
    if (batch_load(&b, &t.sampler, r, t.rank, t.world, &dec, 0, &e)) FATAL("%s", e.msg);
    ds_reader_close(r);
    /* Sample id i has label i % CLASSES (make_dataset). */
    int bad_labels = 0;
    for (int i = 0; i < b.lb.n_images; i++) bad_labels += b.lb.labels[i] != (int32_t)(b.lb.ids[i] % CLASSES);
    for (int k = 0; !pk && k < b.lb.n_items; k++)
        bad_labels += !b.lb.same[k] != (b.lb.ids[k] % CLASSES != b.lb.ids[b.lb.n_items + k] % CLASSES);
    CHECK(bad_labels == 0, "%s: %d labels or same flags of the batch disagree with the dataset", recipe,
          bad_labels);

    Model *m = &t.model;
    s->n = b.lb.n_images;
    s->D = t.D;
    s->nparams = m->nparams;
    s->nviews = m->nviews;
    s->views = xmalloc((size_t)m->nviews * sizeof(ParamView));
    memcpy(s->views, m->views, (size_t)m->nviews * sizeof(ParamView));
    s->params = copy_floats(m->params, m->nparams);
    size_t in = (size_t)b.channels * b.height * b.width;
    s->x = copy_floats(b.x, (size_t)s->n * in);

    StepTimes st;
    s->loss = trainer_grads(&t, &b, &st);
    s->grads = copy_floats(m->grads, m->nparams);
    s->emb = copy_floats(model_forward(m, b.x, s->n), (size_t)s->n * (size_t)s->D);
    trainer_step(&t, &b, &st);
    s->new_params = copy_floats(m->params, m->nparams);
    /* The step applied exactly the gradient compared below. */
    CHECK(memcmp(s->grads, m->grads, m->nparams * sizeof(float)) == 0 && t.last_loss == s->loss,
          "%s: trainer_step recomputed a different gradient or loss than trainer_grads", recipe);

    /* The case directory. */
    int32_t *px = xmalloc((size_t)s->n * in * sizeof(int32_t));
    for (int i = 0; i < s->n; i++)
        for (size_t k = 0; k < in; k++) px[(size_t)i * in + k] = images[(size_t)b.lb.ids[i] * in + k];
    write_i32(cdir, "pixels.npy", px, (int64_t)((size_t)s->n * in));
    free(px);
    fixture_put_f32(cdir, "x.npy", s->x, s->n, (int64_t)in);
    fixture_put_f32(cdir, "params.npy", s->params, 1, (int64_t)s->nparams);
    if (pk) {
        write_i32(cdir, "labels.npy", b.lb.labels, s->n);
    } else {
        int B = b.lb.n_items, same = 0;
        int32_t *y = xmalloc((size_t)B * sizeof(int32_t));
        for (int k = 0; k < B; k++) same += y[k] = b.lb.same[k] ? 1 : 0;
        CHECK(same > 0 && same < B, "pair batch has both kinds of pairs (%d of %d same)", same, B);
        write_i32(cdir, "same.npy", y, B);
        free(y);
    }
    fixture_path_fmt(path, sizeof path, "%s/meta.txt", cdir);
    FILE *f = fopen(path, "w");
    if (!f) FATAL("cannot write %s", path);
    fprintf(f, "recipe %s\nshape %d %d %d\nimages %d\n", recipe, b.channels, b.height, b.width, s->n);
    fixture_put_views(f, m->views, m->nviews);
    if (fclose(f)) FATAL("cannot write %s", path);
    batch_free(&b);
    trainer_free(&t);
}

static double max_abs(const float *p, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)p[i]));
    return m;
}

static void compare(const Side *s, const char *recipe, const char *cdir) {
    size_t in = (size_t)SIDE * SIDE, ne = (size_t)s->n * (size_t)s->D;
    float *tx = fixture_get_f32(cdir, "torch_x.npy", (size_t)s->n * in);
    float *te = fixture_get_f32(cdir, "torch_emb.npy", ne);
    float *tl = fixture_get_f32(cdir, "torch_loss.npy", 1);
    float *tg = fixture_get_f32(cdir, "torch_grads.npy", s->nparams);
    float *tp = fixture_get_f32(cdir, "torch_new_params.npy", s->nparams);
    if (!tx || !te || !tl || !tg || !tp) goto out;

    double err = fixture_max_rel_err(s->x, tx, (size_t)s->n * in);
    printf("%-8s %-18s %-10s max rel err %.3g\n", recipe, "input x", "", err);
    CHECK(err <= 1e-6, "%s: normalised input differs from (px/255 - 0.2860)/0.3530 by %.3g", recipe, err);
    err = fixture_max_rel_err(s->emb, te, ne);
    printf("%-8s %-18s %-10s max rel err %.3g\n", recipe, "embeddings", "", err);
    CHECK(err <= TOL, "%s: embeddings differ by %.3g relative", recipe, err);
    err = fabs(s->loss - tl[0]) / fmax(fabs(tl[0]), 1e-30);
    printf("%-8s %-18s %-10s max rel err %.3g  (C %.7f, torch %.7f)\n", recipe, "loss", "", err, s->loss,
           (double)tl[0]);
    CHECK(err <= TOL && s->loss > 0 && isfinite(s->loss), "%s: loss %.9g vs torch %.9g", recipe, s->loss,
          (double)tl[0]);
    /* In the pair recipe the gradient of fc2.bias is zero by construction
     * (the bias cancels in |e1 - e2|): both sides hold only rounding noise
     * there, so that tensor is checked to be zero against the largest
     * gradient entry of the model, not relative to itself. */
    double gscale = max_abs(tg, s->nparams);
    for (int v = 0; v < s->nviews; v++) {
        const ParamView *pv = &s->views[v];
        const float *g = s->grads + pv->offset, *rg = tg + pv->offset;
        int zero = strcmp(recipe, "pair") == 0 && strcmp(pv->name, "fc2.bias") == 0;
        double eg = fixture_max_rel_err(g, rg, pv->count),
               ep = fixture_max_rel_err(s->new_params + pv->offset, tp + pv->offset, pv->count);
        /* The update itself, p_new - p_old, C vs torch (looser: its float
         * rounding is relative to p, not to the step). */
        double du = 0, ds = 0;
        for (size_t i = 0; i < pv->count; i++) {
            size_t k = pv->offset + i;
            double dc = (double)s->new_params[k] - s->params[k], dt = (double)tp[k] - s->params[k];
            du = fmax(du, fabs(dc - dt));
            ds = fmax(ds, fabs(dt));
        }
        if (zero) {
            double zc = max_abs(g, pv->count) / gscale, zt = max_abs(rg, pv->count) / gscale;
            printf("%-8s %-18s grad       zero by construction: max|C| %.3g, max|torch| %.3g of the largest "
                   "gradient   updated weight %.3g\n",
                   recipe, pv->name, zc, zt, ep);
            CHECK(zc <= 1e-6 && zt <= 1e-6, "%s: gradient of %s should be zero: C %.3g, torch %.3g", recipe,
                  pv->name, zc, zt);
        } else {
            printf("%-8s %-18s grad       max rel err %.3g   updated weight %.3g   update %.3g\n", recipe,
                   pv->name, eg, ep, du / fmax(ds, 1e-30));
            CHECK(max_abs(rg, pv->count) > 1e-3 * gscale,
                  "%s: torch gradient of %s is ~zero: nothing compared", recipe, pv->name);
            CHECK(eg <= TOL, "%s: gradient of %s differs by %.3g relative", recipe, pv->name, eg);
            CHECK(du <= 1e-3 * ds, "%s: SGD update of %s differs by %.3g relative", recipe, pv->name,
                  du / ds);
        }
        CHECK(ep <= TOL, "%s: %s after one SGD step differs by %.3g relative", recipe, pv->name, ep);
    }
    /* The comparison can fail: one element of a gradient moved by 2e-4 of
     * the tensor's largest entry must be caught. */
    const ParamView *pv = &s->views[2];
    float *bad = copy_floats(s->grads + pv->offset, pv->count);
    bad[pv->count / 2] += (float)(2e-4 * max_abs(tg + pv->offset, pv->count));
    err = fixture_max_rel_err(bad, tg + pv->offset, pv->count);
    CHECK(err > TOL, "%s: a perturbed %s gradient passed the check (err %.3g)", recipe, pv->name, err);
    free(bad);
out:
    free(tx), free(te), free(tl), free(tg), free(tp);
}

int main(void) {
    fixture_repo_root(root, sizeof root, "configs/fmnist-triplet.ini");
    make_dataset();
    static const struct {
        const char *name, *cfg;
    } recipes[2] = {{"triplet", "configs/fmnist-triplet.ini"}, {"pair", "configs/fmnist-pair.ini"}};
    Side sides[2];
    char cdirs[2][PATH_MAX];
    for (int k = 0; k < 2; k++) {
        fixture_path_fmt(cdirs[k], sizeof cdirs[k], "%s/%s", dir, recipes[k].name);
        if (mkdir(cdirs[k], 0700)) FATAL("mkdir %s failed", cdirs[k]);
        memset(&sides[k], 0, sizeof sides[k]);
        run_c(&sides[k], recipes[k].name, recipes[k].cfg, cdirs[k]);
    }
    free(images);

    char cmd[4 * PATH_MAX];
    fixture_path_fmt(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s '%s/tests/parity_torch.py' '%s' '%s'", PYTHON,
                     root, cdirs[0], cdirs[1]);
    int prc = fixture_run_python(cmd), no_torch = prc == 1;
    if (prc == 0) {
        compare(&sides[0], recipes[0].name, cdirs[0]);
        compare(&sides[1], recipes[1].name, cdirs[1]);
        printf("first-step losses: triplet-batchall %.4f, pair-bce %.4f (spec, other batch and init: "
               "batchhard 0.554, pair-bce 0.695)\n",
               sides[0].loss, sides[1].loss);
    }
    for (int k = 0; k < 2; k++) side_free(&sides[k]);
    if (test_failed_ && !no_torch) {
        printf("inputs and outputs kept in %s\n", dir);
    } else {
        fixture_path_fmt(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd)) util_warn("could not remove %s", dir);
    }
    return test_finish();
}
