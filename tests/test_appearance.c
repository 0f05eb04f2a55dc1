/* test_appearance: the siamese tracker's appearance model against a direct
 * computation. A small sequence (PNG frames, up to 300 detections in one
 * frame so the forward passes split) is embedded by cnn_appearance_embed;
 * each embedding must equal the network run on that one detection's crop
 * (mot_crop, normalised by the model's mean and std, per channel in a
 * naive loop for RGB networks on colour frames), and a pair's score
 * must be minus the Euclidean distance (no head), the Koch head's logit
 * (with one), or for an early-fusion network (stacked crops) its logit for
 * that one pair run alone. mot_crop itself against hand-computed averages. */
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

/* An appearance model over a freshly initialised network (what
 * cnn_appearance_open would load from a checkpoint). */
static void make_app(CnnAppearance *a, int kind, int C) {
    memset(a, 0, sizeof *a);
    Err e = {""};
    ASSERT(config_parse_text(&a->em.cfg, cfg_text(kind), "test.ini", &e) == 0);
    const Config *c = &a->em.cfg;
    ASSERT(model_build(&a->em.model, &c->model, "test.ini", C, 10, 12, 256, &e) == 0);
    model_init(&a->em.model, 1, 7);
    a->em.norm = (Norm){.channels = C, .mean = {0.3f, 0.5f, 0.1f}, .std = {0.2f, 0.4f, 0.05f}};
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
    for (int i = 0; i < N; i++)
        box[i] = (MotBox){.frame = i < 300 ? 1 : 2,
                          .id = -1,
                          .x = (float)rng_uniform(&r) * 50,
                          .y = (float)rng_uniform(&r) * 35,
                          .w = 4 + (float)rng_uniform(&r) * 10,
                          .h = 4 + (float)rng_uniform(&r) * 10,
                          .score = 1};
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

int main(void) {
    fixture_dir_create("appearance");
    test_crop();
    for (int C = 1; C <= 3; C += 2) {
        test_embed(DISTANCE, C);
        test_embed(KOCH, C);
        test_embed(STACKED, C);
    }
    fixture_rm_tree(fixture_dir());
    return test_finish();
}
