/* test_eval_scorer: the one-shot protocols (within-group trials, trials
 * files) and the all-class N-way trials score a two-image model that reads a
 * logit per pair (docs/graph.md) by that logit, as eval scores its pairs. An
 * early-fusion model (no embedding) and a two-tower model (an embedding and
 * a pair logit) on a small grouped dataset: eval's accuracies against a
 * brute-force reference that forwards every (query, support) pair of the
 * same trials by hand; a trials file written and read back scores the same;
 * a one-image model is still scored by -distance of its embeddings. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../dist/evaluate.h"
#include "../dist/protocol.h"
#include "../mining/metrics.h"
#include "../nn/model.h"
#include "fixture_files.h"
#include "test.h"

enum { GROUPS = 2, CLASSES = 4, DRAWINGS = 3, SIDE = 6, SAMPLES = GROUPS * CLASSES * DRAWINGS };

#define EVAL_KEYS "[run]\nseed = 5\n[eval]\nnway = 3\nkshot = 1\ntrials = 300\npairs = 60\n"
#define TOWER                                                                                                \
    "[conv2d]\nname = c1\nfilters = 3\nsize = 3\n[relu]\n[flatten]\n[linear]\nname = fc\nout = 5\n"          \
    "[sigmoid]\nname = emb\n"

static const char *early_fusion =
    "[sampler]\nmode = pairs\nbatch = 4\n"
    "[concat]\nname = stacked\ninput = input@a, input@b\n"
    "[conv2d]\nfilters = 4\nsize = 3\n[relu]\n[avgpool]\n[flatten]\n"
    "[linear]\nname = logit\nout = 1\n[loss]\ntype = bce\n[mining]\nstrategy = none\n" EVAL_KEYS;
static const char *two_tower =
    "[sampler]\nmode = pairs\nbatch = 4\n" TOWER
    "[absdiff]\nname = dist\ninput = emb@a, emb@b\n[linear]\nname = logit\nout = 1\n"
    "[model]\nembedding = emb\n[head]\ntype = none\n[loss]\ntype = bce\ninput = logit\n"
    "[mining]\nstrategy = none\n" EVAL_KEYS;
static const char *one_image =
    "[sampler]\nmode = pk\np = 2\nk = 2\n" TOWER "[loss]\ntype = triplet\n" EVAL_KEYS;

/* Grouped dataset: groups g0, g1 of 4 classes each ("gG/cC"), 3 named
 * drawings per class, random pixels. */
static void fill_random(uint8_t *px, int side, Rng *r) {
    for (int k = 0; k < side * side; k++) px[k] = (uint8_t)(rng_u64(r) & 255);
}

static const char *make_data(void) {
    return fixture_grouped_dataset("grouped.lmdb", GROUPS, CLASSES, DRAWINGS, SIDE, 3, fill_random);
}

/* The logit of the pair (i, j) by hand: both images normalised into one
 * two-row batch, forward in inference mode. */
static double pair_logit(Model *m, DsReader *rd, const Norm *norm, uint32_t i, uint32_t j) {
    float x[2 * SIDE * SIDE];
    uint8_t px[SIDE * SIDE];
    uint32_t id[2] = {i, j};
    for (int q = 0; q < 2; q++) {
        int32_t lab;
        Err e;
        ASSERT(ds_read(rd, id[q], px, &lab, NULL, &e) == 0);
        norm_apply(x + q * SIDE * SIDE, px, norm, SIDE * SIDE);
    }
    m->st.train = 0;
    return model_forward(m, x, 2)[0];
}

/* -distance of the embeddings of samples i and j, in double. */
static double neg_distance(const float *E, int D, uint32_t i, uint32_t j) {
    double d = 0;
    for (int k = 0; k < D; k++)
        d += ((double)E[i * D + k] - E[j * D + k]) * ((double)E[i * D + k] - E[j * D + k]);
    return -sqrt(d);
}

/* The accuracy of 1-shot trials t with every pair scored by pair_logit, or,
 * with E, by -distance of the embeddings (the reference). */
static double reference_accuracy(Model *m, Dataset *ds, const Norm *norm, const float *E, const Trials *t) {
    DsReader *rd;
    Err e;
    ASSERT(t->k_shot == 1 && t->n_way <= 8 && ds_reader_open(ds, &rd, &e) == 0);
    double sum = 0, score[8];
    for (int i = 0; i < t->n; i++) {
        for (int c = 0; c < t->n_way; c++) {
            uint32_t q = t->query[i], s = t->support[i * t->n_way + c];
            score[c] = E ? neg_distance(E, m->emb_dim, q, s) : pair_logit(m, rd, norm, q, s);
        }
        sum += metrics_trial_credit(score, t->n_way, t->answer[i]);
    }
    ds_reader_close(rd);
    return sum / t->n;
}

static void check_model(const char *what, const char *text, const char *data, int scorer) {
    Config cfg;
    Err e = {{0}};
    ASSERT(config_parse_text(&cfg, text, "s.ini", &e) == 0);
    Model m;
    ASSERT(model_build(&m, &cfg.model, "s.ini", 1, SIDE, SIDE, 64, &e) == 0);
    model_init(&m, INIT_TORCH, 11);
    CHECK(m.layers[m.loss].halved == scorer, "%s: scores pairs itself: %d", what, scorer);
    Norm norm = {1, {0.4f}, {0.3f}};
    const char *tf = fixture_path("trials.txt");
    EvalProtocol p = {.within_group = 1, .rule = TRIALS_ANY, .save_trials = tf};
    EvalResult r;
    int rc = eval_run_protocol(&m, &cfg, &norm, data, NULL, &p, &r, NULL, &e);
    CHECK(rc == 0, "%s: eval with within-group trials: %s", what, e.msg);
    if (rc) {
        model_free(&m);
        return;
    }

    Dataset *ds;
    ASSERT(ds_open(&ds, data, &e) == 0);
    GroupEval g = {3, 1, 300, 5, TRIALS_ANY, NULL};
    Trials t;
    ASSERT(protocol_group_trials(&t, ds, &g, &e) == 0);
    float *E = m.emb >= 0 ? eval_embed(&m, ds, &norm, &e) : NULL;
    double ref = reference_accuracy(&m, ds, &norm, scorer ? NULL : E, &t);
    CHECK(r.has_group && test_close(r.group.accuracy, ref, 1e-12) && ref > 1.0 / 3 - 0.25,
          "%s: within-group accuracy %.6f = the reference's %.6f (%s)", what, r.group.accuracy, ref,
          scorer ? "pair logits" : "-distance");
    if (scorer && E) { /* the embedding would have scored differently here */
        double by_dist = reference_accuracy(&m, ds, &norm, E, &t);
        CHECK(by_dist != ref, "%s: -distance scores %.6f, the pair logit %.6f: the test tells them apart",
              what, by_dist, ref);
    }
    trials_free(&t);

    /* The trials written, read back: the same accuracy. */
    EvalProtocol pf = {.trials_file = tf};
    EvalResult rf;
    rc = eval_run_protocol(&m, &cfg, &norm, data, NULL, &pf, &rf, NULL, &e);
    CHECK(rc == 0 && rf.trials_file && test_close(rf.file.accuracy, r.group.accuracy, 1e-12),
          "%s: trials file scores %.6f, within-group %.6f", what, rc ? NAN : rf.file.accuracy,
          r.group.accuracy);
    if (rc == 0) eval_result_free(&rf);

    /* Validation's entry points agree with eval. */
    NwayScore s;
    rc = eval_within_group(&s, &m, ds, &norm, E, &g, &e);
    CHECK(rc == 0 && test_close(s.accuracy, r.group.accuracy, 1e-12), "%s: eval_within_group %.6f", what,
          rc ? NAN : s.accuracy);
    if (rc == 0) nway_score_free(&s);
    double nw = eval_nway_model(&m, ds, &norm, E, &cfg);
    CHECK(test_close(nw, r.nway, 1e-12), "%s: eval_nway_model %.6f = eval's all-class N-way %.6f", what, nw,
          r.nway);
    free(E);
    ds_close(ds);
    eval_result_free(&r);
    model_free(&m);
}

int main(void) {
    fixture_dir_create("eval-scorer");
    const char *data = make_data();
    check_model("early fusion", early_fusion, data, 1);
    check_model("two-tower", two_tower, data, 1);
    check_model("one-image", one_image, data, 0);
    fixture_rm_tree(fixture_dir());
    return test_finish();
}
