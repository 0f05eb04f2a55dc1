/* test_tta: test-time augmentation (siamese eval --tta N, eval_embed_views).
 * One view is eval_embed bit for bit; N views equal a naive reference that
 * distorts each sample on its own (augment_draw_view + augment_image through
 * the normalisation table), embeds it as a one-row batch, averages in double
 * and normalises again after an l2norm (without one, the plain mean); the
 * result does not depend on the batch size nor on the run, differs from one
 * view, and eval_run_protocol with tta scores the trials on those
 * embeddings and chooses the verification threshold on training pairs
 * embedded the same way. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../dist/evaluate.h"
#include "../dist/protocol.h"
#include "../io/augment.h"
#include "../mining/metrics.h"
#include "../nn/model.h"
#include "fixture_files.h"
#include "test.h"

enum { GROUPS = 2, CLASSES = 4, DRAWINGS = 3, SIDE = 8, SAMPLES = GROUPS * CLASSES * DRAWINGS, VIEWS = 5 };

#define TAIL                                                                                                 \
    "[loss]\ntype = triplet\n[run]\nseed = 7\n[eval]\nnway = 3\nkshot = 1\ntrials = 200\npairs = 40\n"
#define AUG                                                                                                  \
    "[augment]\nrotate = 10\nrotate_p = 0.5\nshear = 0.3\nshear_p = 0.5\nscale_min = 0.8\nscale_max = 1.2\n" \
    "scale_p = 0.5\ntranslate = 2\ntranslate_p = 0.5\n"
#define TOWER                                                                                                \
    "[sampler]\nmode = pk\np = 2\nk = 2\n[conv2d]\nname = c1\nfilters = 4\nsize = 3\npad = 1\n"              \
    "[batchnorm]\nname = bn1\n[relu]\n[maxpool]\nsize = 2\n[flatten]\n[linear]\nname = fc\nout = 6\n"

static const char *normed = TOWER "[l2norm]\n" AUG TAIL;
static const char *plain = TOWER "[sigmoid]\nname = emb\n" AUG TAIL;

/* Grouped dataset of blurred random strokes ("gG/cC", 3 named drawings a
 * class), so that distortions move ink about. */
static void fill_strokes(uint8_t *px, int side, Rng *r) {
    memset(px, 0, (size_t)side * side);
    for (int k = 0; k < 12; k++) px[rng_below(r, (uint64_t)side * side)] = (uint8_t)(128 + rng_below(r, 128));
}

static const char *make_data(void) {
    return fixture_grouped_dataset("tta.lmdb", GROUPS, CLASSES, DRAWINGS, SIDE, 4, fill_strokes);
}

/* The reference: sample by sample, view by view, one-row batches. */
static double *naive_views(Model *m, Dataset *ds, const Norm *norm, const Config *c, int views, int renorm,
                           int *distorted) {
    int D = m->emb_dim;
    double *out = calloc((size_t)SAMPLES * D, sizeof(double));
    float lut[256], x[SIDE * SIDE];
    norm_table(lut, norm, 0);
    uint8_t px[SIDE * SIDE];
    DsReader *rd;
    Err e;
    ASSERT(ds_reader_open(ds, &rd, &e) == 0);
    *distorted = 0;
    for (int i = 0; i < SAMPLES; i++) {
        int32_t lab;
        ASSERT(ds_read(rd, (uint64_t)i, px, &lab, NULL, &e) == 0);
        double *row = out + (size_t)i * D;
        for (int v = 0; v < views; v++) {
            AugmentMap map = {.identity = 1};
            if (v > 0) augment_draw_view(&map, &c->augment, (uint64_t)c->seed, (uint64_t)v, (uint64_t)i);
            *distorted += !map.identity;
            augment_image(x, px, lut, &map, (int)c->augment.fill, 1, SIDE, SIDE);
            const float *E = model_embed(m, x, 1);
            for (int k = 0; k < D; k++) row[k] += E[k];
        }
        double q = 0;
        for (int k = 0; k < D; k++) q += row[k] * row[k];
        double scale = renorm ? 1.0 / sqrt(q) : 1.0 / views;
        for (int k = 0; k < D; k++) row[k] *= scale;
    }
    ds_reader_close(rd);
    return out;
}

static void check_model(const char *what, const char *text, const char *data, int renorm) {
    Config cfg;
    Err e = {{0}};
    ASSERT(config_parse_text(&cfg, text, "t.ini", &e) == 0);
    Model m, small;
    ASSERT(model_build(&m, &cfg.model, "t.ini", 1, SIDE, SIDE, 64, &e) == 0);
    ASSERT(model_build(&small, &cfg.model, "t.ini", 1, SIDE, SIDE, 5, &e) == 0);
    model_init(&m, INIT_TORCH, 3);
    memcpy(small.params, m.params, m.nparams * sizeof(float));
    /* Running statistics other than the start values, so batch norm's
     * inference path is not the identity. */
    for (size_t k = 0; k < m.nbuffers; k++) m.buffers[k] = 0.1f + 0.05f * (float)(k % 4);
    memcpy(small.buffers, m.buffers, m.nbuffers * sizeof(float));
    Norm norm = {1, {0.2f}, {0.4f}};
    Dataset *ds;
    ASSERT(ds_open(&ds, data, &e) == 0);
    int D = m.emb_dim;
    size_t n = (size_t)SAMPLES * D;

    float *one = eval_embed(&m, ds, &norm, &e);
    float *v1 = eval_embed_views(&m, ds, &norm, &cfg.augment, (uint64_t)cfg.seed, 1, &e);
    ASSERT(one && v1);
    CHECK(memcmp(one, v1, n * sizeof(float)) == 0, "%s: one view is eval_embed bit for bit", what);

    float *E = eval_embed_views(&m, ds, &norm, &cfg.augment, (uint64_t)cfg.seed, VIEWS, &e);
    float *again = eval_embed_views(&m, ds, &norm, &cfg.augment, (uint64_t)cfg.seed, VIEWS, &e);
    float *by5 = eval_embed_views(&small, ds, &norm, &cfg.augment, (uint64_t)cfg.seed, VIEWS, &e);
    ASSERT(E && again && by5);
    CHECK(memcmp(E, again, n * sizeof(float)) == 0, "%s: %d views: the same bits on a second run", what,
          VIEWS);
    int distorted;
    double *ref = naive_views(&m, ds, &norm, &cfg, VIEWS, renorm, &distorted);
    CHECK(distorted > SAMPLES && distorted < SAMPLES * (VIEWS - 1),
          "%s: %d of %d views distorted (each component fires with probability 0.5)", what, distorted,
          SAMPLES * (VIEWS - 1));
    double worst = 0, worst_b = 0, moved = 0, unit = 0;
    for (int i = 0; i < SAMPLES; i++) {
        double q = 0;
        for (int k = 0; k < D; k++) {
            size_t j = (size_t)i * D + k;
            worst = fmax(worst, fabs(E[j] - ref[j]));
            worst_b = fmax(worst_b, fabs(E[j] - by5[j]));
            moved = fmax(moved, fabs(E[j] - one[j]));
            q += (double)E[j] * E[j];
        }
        unit = fmax(unit, fabs(sqrt(q) - 1));
    }
    CHECK(worst < 1e-5, "%s: %d views = the naive per-sample mean (largest difference %.3g)", what, VIEWS,
          worst);
    CHECK(worst_b < 1e-5, "%s: batches of 5 give the batches of 64's views (largest difference %.3g)", what,
          worst_b);
    CHECK(moved > 1e-3, "%s: the views change the embedding (by up to %.3g)", what, moved);
    if (renorm)
        CHECK(unit < 1e-6, "%s: the mean normalised again (|norm - 1| up to %.3g)", what, unit);
    else
        CHECK(unit > 1e-3, "%s: no l2norm: the plain mean (|norm - 1| up to %.3g)", what, unit);

    /* eval with --tta scores the within-group trials on these embeddings. */
    EvalProtocol p = {.within_group = 1, .rule = TRIALS_PAIRED, .tta = VIEWS};
    EvalResult r;
    int rc = eval_run_protocol(&m, &cfg, &norm, data, NULL, &p, &r, NULL, &e);
    CHECK(rc == 0, "%s: eval --tta: %s", what, e.msg);
    GroupEval g = {3, 1, 200, 7, TRIALS_PAIRED, NULL};
    NwayScore s, s1;
    ASSERT(eval_within_group(&s, &m, ds, &norm, E, &g, &e) == 0);
    ASSERT(eval_within_group(&s1, &m, ds, &norm, one, &g, &e) == 0);
    if (rc == 0) {
        CHECK(r.has_group && r.group.accuracy == s.accuracy,
              "%s: eval --tta's within-group accuracy %.6f = over the views' embeddings %.6f (one view %.6f)",
              what, r.group.accuracy, s.accuracy, s1.accuracy);
        eval_result_free(&r);
    }
    nway_score_free(&s);
    nway_score_free(&s1);

    /* The verification threshold is chosen on training pairs embedded the
     * same way (their views keyed by their own sample ids), not on plain
     * embeddings: here the training set is the test set, so it is the
     * threshold of those pairs' -distances over E. */
    int np = (int)cfg.eval_train_pairs;
    uint32_t *pa = malloc(sizeof(uint32_t) * (size_t)np), *pb = malloc(sizeof(uint32_t) * (size_t)np);
    uint8_t *same = malloc((size_t)np);
    double *sv = malloc(sizeof(double) * (size_t)np), *s0 = malloc(sizeof(double) * (size_t)np);
    metrics_make_pairs(pa, pb, same, np, ds_labels(ds), SAMPLES, (uint64_t)cfg.seed + 1);
    for (int q = 0; q < np; q++) {
        double dv = 0, d0 = 0;
        for (int k = 0; k < D; k++) {
            size_t i = (size_t)pa[q] * D + k, j = (size_t)pb[q] * D + k;
            dv += ((double)E[i] - E[j]) * ((double)E[i] - E[j]);
            d0 += ((double)one[i] - one[j]) * ((double)one[i] - one[j]);
        }
        sv[q] = -sqrt(dv), s0[q] = -sqrt(d0);
    }
    double acc_v, acc_0, thr_v = metrics_best_threshold(&acc_v, sv, same, np),
                         thr_0 = metrics_best_threshold(&acc_0, s0, same, np);
    rc = eval_run_protocol(&m, &cfg, &norm, data, data, &p, &r, NULL, &e);
    CHECK(rc == 0, "%s: eval --tta with training pairs: %s", what, e.msg);
    if (rc == 0) {
        CHECK(r.tta == VIEWS && fabs(r.threshold - thr_v) < 1e-5 && r.train_acc == acc_v,
              "%s: eval --tta's threshold %.6f (training accuracy %.4f) = over the views' embeddings %.6f "
              "(%.4f; one view %.6f, %.4f)",
              what, r.threshold, r.train_acc, thr_v, acc_v, thr_0, acc_0);
        eval_result_free(&r);
    }
    free(pa), free(pb), free(same), free(sv), free(s0);
    free(ref);
    free(one), free(v1), free(E), free(again), free(by5);
    ds_close(ds);
    model_free(&m);
    model_free(&small);
}

int main(void) {
    fixture_dir_create("tta");
    const char *data = make_data();
    check_model("l2norm", normed, data, 1);
    check_model("sigmoid", plain, data, 0);
    fixture_rm_tree(fixture_dir());
    return test_finish();
}
