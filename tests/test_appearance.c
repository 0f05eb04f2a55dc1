/* test_appearance: the siamese tracker's appearance model against a direct
 * computation. A small sequence (PNG frames, up to 300 detections in one
 * frame so the forward passes split) is embedded by cnn_appearance_embed;
 * each embedding must equal the network run on that one detection's crop
 * (mot_crop, normalised by the model's mean and std, per channel in a
 * naive loop for RGB networks on colour frames), and a pair's score
 * must be minus the Euclidean distance (no head), the Koch head's logit
 * (with one), or for an early-fusion network (stacked crops) its logit for
 * that one pair run alone; an ensemble of two networks against each run
 * alone. mot_crop itself against hand-computed averages. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../io/config.h"
#include "../io/image.h"
#include "../mining/pairs.h"
#include "../track/appearance.h"
#include "fixture_files.h"
#include "test.h"

enum { DISTANCE, KOCH, STACKED };
static const char *kind_name[] = {"distance", "koch", "stacked"};

static const char *cfg_text(int kind) {
    static const char *text[] = {
        "[run]\ndir = x\n[data]\ntrain = x\n[conv2d]\nname = conv1\nfilters = 3\nsize = 3\n[relu]\n"
        "[maxpool]\nsize = 2\n[flatten]\n[linear]\nname = fc1\nout = 8\n[l2norm]\n",
        "[run]\ndir = x\n[data]\ntrain = x\n[conv2d]\nname = conv1\nfilters = 3\nsize = 3\n[relu]\n"
        "[maxpool]\nsize = 2\n[flatten]\n[linear]\nname = fc1\nout = 8\n[head]\ntype = koch\n[loss]\n"
        "type = bce\n[sampler]\nmode = pairs\n",
        /* early fusion: the two crops as one 2-channel input, one logit */
        "[run]\ndir = x\n[data]\ntrain = x\n[sampler]\nmode = pairs\n[concat]\nname = stacked\n"
        "input = input@a, input@b\n[conv2d]\nname = conv1\nfilters = 3\nsize = 3\n[relu]\n[maxpool]\n"
        "size = 2\n[flatten]\n[linear]\nname = logit\nout = 1\n[loss]\ntype = bce\ninput = logit\n"};
    return text[kind];
}

/* A freshly initialised network of a kind (what eval_model_load would load
 * from a checkpoint), C x 10 x 12 input, initialised from seed. */
static void build_model(EvalModel *em, int kind, int C, uint64_t seed) {
    memset(em, 0, sizeof *em);
    Err e = {""};
    ASSERT(config_parse_text(&em->cfg, cfg_text(kind), "test.ini", &e) == 0);
    ASSERT(model_build(&em->model, &em->cfg.model, "test.ini", C, 10, 12, 256, &e) == 0);
    model_init(&em->model, 1, seed);
    em->norm = (Norm){.channels = C, .mean = {0.3f, 0.5f, 0.1f}, .std = {0.2f, 0.4f, 0.05f}};
}

/* An appearance model over a freshly initialised network. */
static void make_app(CnnAppearance *a, int kind, int C) {
    memset(a, 0, sizeof *a);
    Err e = {""};
    build_model(&a->em, kind, C, 7);
    CHECK(cnn_appearance_init(a, "test.ini", &e) == 0, "%s: init: %s", kind_name[kind], e.msg);
    CHECK(a->C == C && a->H == 10 && a->W == 12 && a->pairwise == (kind == STACKED) &&
              a->D == (kind == STACKED ? C * 120 : 8),
          "%s: C %d H %d W %d D %d pairwise %d", kind_name[kind], a->C, a->H, a->W, a->D, a->pairwise);
}

static void test_crop(void) {
    /* 4 x 6 grey image, pixel = 10 y + x; box x 1.5 w 2 -> columns 1..3
     * (floor 1, ceil 3.5 = 4), y 0.2 h 1.5 -> rows 0..1; cropped to 1 x 3:
     * one output pixel per column, the mean of its two rows. */
    uint8_t px[24];
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 6; x++) px[y * 6 + x] = (uint8_t)(10 * y + x);
    Image img = {.height = 4, .width = 6, .channels = 1, .pixels = px};
    MotBox b = {.x = 1.5f, .y = 0.2f, .w = 2, .h = 1.5f};
    uint8_t out[3];
    mot_crop(out, &img, &b, 1, 3);
    CHECK(out[0] == 6 && out[1] == 7 && out[2] == 8, "crop %d %d %d (want 6 7 8: (1 + 11) / 2 ...)", out[0],
          out[1], out[2]);
    /* a box hanging over the border is clipped; RGB gives three planes */
    uint8_t rgb[24 * 3];
    for (int i = 0; i < 24; i++)
        rgb[3 * i] = px[i], rgb[3 * i + 1] = 100, rgb[3 * i + 2] = (uint8_t)(200 - px[i]);
    Image col = {.height = 4, .width = 6, .channels = 3, .pixels = rgb};
    MotBox c = {.x = 4, .y = 3, .w = 10, .h = 10};
    uint8_t o3[3];
    mot_crop(o3, &col, &c, 1, 1);
    CHECK(o3[0] == 35 && o3[1] == 100 && o3[2] == 166,
          "clipped RGB crop %d %d %d (want 35 100 166: means 34.5 and 165.5 rounded half up)", o3[0], o3[1],
          o3[2]);
}

/* n random boxes inside a 64 x 48 frame: the first in_frame1 in frame 1,
 * the rest in frame 2. */
static void random_boxes(MotBox *box, int n, int in_frame1, Rng *r) {
    for (int i = 0; i < n; i++)
        box[i] = (MotBox){.frame = i < in_frame1 ? 1 : 2,
                          .id = -1,
                          .x = (float)rng_uniform(r) * 50,
                          .y = (float)rng_uniform(r) * 35,
                          .w = 4 + (float)rng_uniform(r) * 10,
                          .h = 4 + (float)rng_uniform(r) * 10,
                          .score = 1};
}

static void test_embed(int kind, int C) {
    char dir[300];
    snprintf(dir, sizeof dir, "%s/seq%d-%d", fixture_dir(), kind, C);
    mkdir(dir, 0755);
    char p[400];
    snprintf(p, sizeof p, "%s/img1", dir);
    mkdir(p, 0755);
    Rng r;
    rng_seed(&r, 11, RNG_TEST, (uint64_t)kind);
    static uint8_t frame[48 * 64 * 3];
    for (int f = 1; f <= 2; f++) {
        for (int i = 0; i < 48 * 64 * C; i++) frame[i] = (uint8_t)rng_below(&r, 256);
        snprintf(p, sizeof p, "%s/img1/%06d.png", dir, f);
        Err e = {""};
        ASSERT(image_write_png(p, frame, 48, 64, (uint32_t)C, &e) == 0);
    }
    /* 300 detections in frame 1 (two forward passes), 5 in frame 2 */
    enum { N = 305 };
    static MotBox box[N];
    random_boxes(box, N, 300, &r);
    MotBoxes det;
    mot_boxes_build(&det, box, N, 2);
    MotSeq s = {.dir = dir,
                .info = {.im_dir = "img1", .im_ext = ".png", .frames = 2, .width = 64, .height = 48}};
    CnnAppearance a;
    make_app(&a, kind, C);
    Err e = {""};
    CHECK(cnn_appearance_embed(&a, &s, &det, &e) == 0 && a.n == N && a.frames == 2, "embed: %s", e.msg);
    /* each detection on its own: its embedding, or (pairwise) its crop */
    static float x[N][3 * 120];
    static uint8_t crop[3 * 120];
    float worst = 0;
    for (int i = 0; i < N; i++) {
        Image img;
        snprintf(p, sizeof p, "%s/img1/%06d.png", dir, det.box[i].frame);
        ASSERT(image_load_color(&img, p, C == 3, &e) == 0 && (int)img.channels == C);
        mot_crop(crop, &img, &det.box[i], 10, 12);
        image_free(&img);
        for (int k = 0; k < C * 120; k++)
            x[i][k] = ((float)crop[k] / 255.0f - a.em.norm.mean[k / 120]) / a.em.norm.std[k / 120];
        const float *E = kind == STACKED ? x[i] : model_embed(&a.em.model, x[i], 1);
        for (int k = 0; k < a.D; k++) worst = fmaxf(worst, fabsf(E[k] - a.emb[(size_t)i * a.D + k]));
    }
    CHECK(worst < 1e-5f,
          "%s, %d channels: embeddings (crops) of the batched frames equal one-by-one ones (max diff %g)",
          kind_name[kind], C, worst);
    /* scores: 300 pairs (pairwise: three forward passes of up to 128) */
    enum { NP = 300 };
    static int pa[NP], pb[NP];
    static double sc[NP];
    for (int k = 0; k < NP; k++) pa[k] = (int)rng_below(&r, N), pb[k] = (int)rng_below(&r, N);
    pb[1] = pa[1];
    CHECK(cnn_appearance_score(&a, pa, pb, NP, sc, &e) == 0, "score");
    double bad = 0;
    for (int k = 0; k < NP; k++) {
        const float *u = a.emb + (size_t)pa[k] * a.D, *v = a.emb + (size_t)pb[k] * a.D;
        const Model *m = &a.em.model;
        double want;
        if (kind == KOCH) {
            want = pairs_koch_logit(u, v, m->params + m->head_w_off, m->params[m->head_b_off], a.D);
        } else if (kind == STACKED) {
            static float two[2 * 3 * 120]; /* the pair alone: rows [a; b] */
            memcpy(two, x[pa[k]], sizeof(float) * (size_t)a.D);
            memcpy(two + a.D, x[pb[k]], sizeof(float) * (size_t)a.D);
            want = model_forward(&a.em.model, two, 2)[0];
        } else {
            double d2 = 0;
            for (int j = 0; j < a.D; j++) d2 += ((double)u[j] - v[j]) * ((double)u[j] - v[j]);
            want = -sqrt(d2);
        }
        bad = fmax(bad, fabs(want - sc[k]));
    }
    double tol = kind == STACKED ? 1e-5 : 1e-9; /* batched against one-pair forwards */
    CHECK(bad < tol && (kind != DISTANCE || sc[1] == 0) && (kind != STACKED || a.pairs == NP),
          "%s, %d channels: pair scores (max diff %g, %ld pairs counted)", kind_name[kind], C, bad, a.pairs);
    /* a missing frame is an error naming it */
    snprintf(p, sizeof p, "%s/img1/000002.png", dir);
    remove(p);
    int rc = cnn_appearance_embed(&a, &s, &det, &e);
    CHECK(rc == -1 && strstr(e.msg, "000002.png"), "missing frame: %s", e.msg);
    cnn_appearance_close(&a);
    mot_boxes_free(&det);
}

static EvalModel *new_model(int kind, int C, uint64_t seed) {
    EvalModel *em = xmalloc(sizeof *em);
    build_model(em, kind, C, seed);
    return em;
}

/* An ensemble of two distance networks (other weights, other input
 * statistics): each detection's row is both embeddings of its crop, each
 * normalised by its own network's mean and std, over sqrt(2); a pair's score
 * minus the root mean of the two squared distances. Networks that do not
 * embed for a distance, or take another input, are refused. */
static void test_ensemble(void) {
    char dir[300], p[400];
    snprintf(dir, sizeof dir, "%s/ens", fixture_dir());
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/img1", dir);
    mkdir(p, 0755);
    Rng r;
    rng_seed(&r, 12, RNG_TEST, 0);
    static uint8_t frame[48 * 64];
    for (int i = 0; i < 48 * 64; i++) frame[i] = (uint8_t)rng_below(&r, 256);
    snprintf(p, sizeof p, "%s/img1/000001.png", dir);
    Err e = {""};
    ASSERT(image_write_png(p, frame, 48, 64, 1, &e) == 0);
    enum { N = 20 };
    MotBox box[N];
    random_boxes(box, N, N, &r);
    MotBoxes det;
    mot_boxes_build(&det, box, N, 1);
    MotSeq s = {.dir = dir,
                .info = {.im_dir = "img1", .im_ext = ".png", .frames = 1, .width = 64, .height = 48}};
    CnnAppearance a;
    make_app(&a, DISTANCE, 1);
    EvalModel *second = new_model(DISTANCE, 1, 8);
    second->norm.mean[0] = 0.6f, second->norm.std[0] = 0.3f;
    CHECK(cnn_appearance_add(&a, second, "second.smpi", &e) == 0 && a.nmore == 1 && a.D == 16, "add: %s",
          e.msg);
    CHECK(cnn_appearance_embed(&a, &s, &det, &e) == 0, "embed: %s", e.msg);
    static float emb[N][2][8];
    uint8_t crop[120];
    float x[120], worst = 0;
    Image img;
    ASSERT(image_load_color(&img, p, 0, &e) == 0);
    for (int i = 0; i < N; i++) {
        mot_crop(crop, &img, &det.box[i], 10, 12);
        for (int n = 0; n < 2; n++) {
            const EvalModel *em = n ? second : &a.em;
            for (int k = 0; k < 120; k++)
                x[k] = ((float)crop[k] / 255.0f - em->norm.mean[0]) / em->norm.std[0];
            memcpy(emb[i][n], model_embed((Model *)&em->model, x, 1), sizeof emb[i][n]);
            for (int k = 0; k < 8; k++)
                worst = fmaxf(worst, fabsf(emb[i][n][k] / sqrtf(2) - a.emb[(size_t)i * 16 + 8 * n + k]));
        }
    }
    image_free(&img);
    CHECK(worst < 1e-5f, "ensemble rows: both embeddings over sqrt(2) (max diff %g)", worst);
    int pa[N], pb[N];
    double sc[N], bad = 0;
    for (int k = 0; k < N; k++) pa[k] = k, pb[k] = (k * 7 + 3) % N;
    CHECK(cnn_appearance_score(&a, pa, pb, N, sc, &e) == 0, "score");
    for (int k = 0; k < N; k++) {
        double d2[2] = {0, 0};
        for (int n = 0; n < 2; n++)
            for (int j = 0; j < 8; j++)
                d2[n] += ((double)emb[pa[k]][n][j] - emb[pb[k]][n][j]) *
                         ((double)emb[pa[k]][n][j] - emb[pb[k]][n][j]);
        bad = fmax(bad, fabs(-sqrt((d2[0] + d2[1]) / 2) - sc[k]));
    }
    CHECK(bad < 1e-5, "ensemble score: minus the root mean squared distance (max diff %g)", bad);
    CHECK(cnn_appearance_add(&a, new_model(KOCH, 1, 9), "koch.smpi", &e) == -1 &&
              strstr(e.msg, "koch.smpi: an ensemble needs") && strstr(e.msg, "this one does not"),
          "a Koch-head network refused: %s", e.msg);
    CHECK(cnn_appearance_add(&a, new_model(DISTANCE, 3, 9), "rgb.smpi", &e) == -1 &&
              strstr(e.msg, "rgb.smpi: the network takes 3x10x12, the first 1x10x12"),
          "another input shape refused: %s", e.msg);
    CHECK(a.nmore == 1 && a.D == 16, "refused networks leave the ensemble as it was");
    cnn_appearance_close(&a);
    make_app(&a, KOCH, 1);
    CHECK(cnn_appearance_add(&a, new_model(DISTANCE, 1, 9), "d.smpi", &e) == -1 &&
              strstr(e.msg, "the first does not"),
          "a Koch-head first network refused: %s", e.msg);
    cnn_appearance_close(&a);
    mot_boxes_free(&det);
}

int main(void) {
    fixture_dir_create("appearance");
    test_crop();
    for (int C = 1; C <= 3; C += 2) {
        test_embed(DISTANCE, C);
        test_embed(KOCH, C);
        test_embed(STACKED, C);
    }
    test_ensemble();
    fixture_rm_tree(fixture_dir());
    return test_finish();
}
