/* The trainer's mask-loss path ([loss] type = mask) on a small
 * co-segmentation net (tests/fixtures/graph/coseg.ini, data from
 * tests/fixture_coseg.h): the loss of a step equals per-pixel BCE and Dice
 * computed by naive loops from the model's logits, the batch's masks and
 * the pairs' flags (an image of a pair without a common object has an empty
 * target); the whole model's parameter gradients (ReLU replaced by tanh, so
 * the loss is smooth) against central finite differences, BCE and Dice; and
 * PyTorch parity of one Adam step (tests/parity_coseg.py builds the same
 * network with bench/torch_coseg.py's twin): logits, loss, every gradient
 * and the weights after the step within 1e-4 relative, also with the
 * cosine correlation and its max channel. [loss] mask = class
 * (tests/fixtures/graph/coseg-classes.ini): its loss against naive loops,
 * the model's gradients against finite differences, and what it refuses.
 * Test-time mirroring (coseg_logits with 2 views) against naive loops.
 * Runs from the
 * repository root (as tests/run.sh does). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../dist/eval_coseg.h"
#include "../dist/train.h"
#include "../mining/coseg.h"
#include "fixture_coseg.h"
#include "fixture_files.h"
#include "fixture_num.h"
#include "fixture_torch.h"
#include "test.h"

#define FIXTURE "tests/fixtures/graph/coseg.ini"
#define CLASSES "tests/fixtures/graph/coseg-classes.ini"
#define TOL 1e-4

static char root[PATH_MAX];

/* A trainer on the fixture's dataset: the fixture config with every "[relu]"
 * replaced by "[tanh]" when smooth, then the overrides sets[0..n). */
typedef struct Setup {
    Trainer t;
    Batch b;
} Setup;

static void setup_from(Setup *s, const char *fixture, const char *db, int smooth, const char *const *sets,
                       int n) {
    char path[PATH_MAX];
    fixture_path_fmt(path, sizeof path, "%s/%s", root, fixture);
    size_t len;
    char *text = (char *)fixture_read_file(path, &len);
    for (char *p = smooth ? strstr(text, "[relu]") : NULL; p; p = strstr(p, "[relu]")) memcpy(p, "[tanh]", 6);
    Config c;
    Err e;
    if (config_parse_text(&c, text, fixture, &e)) FATAL("%s", e.msg);
    free(text);
    char data[PATH_MAX], run[PATH_MAX];
    fixture_path_fmt(data, sizeof data, "data.train=%s/%s", fixture_dir(), db);
    fixture_path_fmt(run, sizeof run, "run.dir=%s/run", fixture_dir());
    const char *base[] = {data, run, "data.test="};
    for (int i = 0; i < 3; i++)
        if (config_set(&c, base[i], &e)) FATAL("%s", e.msg);
    for (int i = 0; i < n; i++)
        if (config_set(&c, sets[i], &e)) FATAL("%s", e.msg);
    if (config_validate(&c, &e)) FATAL("%s", e.msg);
    text = config_to_text(&c);
    if (trainer_setup(&s->t, text, 0, &e)) FATAL("%s", e.msg);
    free(text);
    batch_init(&s->b, &s->t.sampler, s->t.ds, s->t.world);
    DsReader *r;
    if (ds_reader_open(s->t.ds, &r, &e)) FATAL("%s", e.msg);
    BatchDecode dec = trainer_decode(&s->t);
    if (batch_load(&s->b, &s->t.sampler, r, 0, 1, &dec, 0, &e)) FATAL("%s", e.msg);
    ds_reader_close(r);
}

static void setup(Setup *s, int smooth, const char *const *sets, int n) {
    setup_from(s, FIXTURE, "coseg.lmdb", smooth, sets, n);
}

static void setup_free(Setup *s) {
    batch_free(&s->b);
    trainer_free(&s->t);
}

/* Image i's target pixel j: its mask when its pair has a common object. */
static int target(const Batch *b, int i, size_t j, size_t npix) {
    return b->lb.same[i % b->lb.n_items] && b->masks[(size_t)i * npix + j];
}

static const char *mask_set(MaskLoss type) {
    return type == MASK_BCE ? "loss.mask=bce" : type == MASK_DICE ? "loss.mask=dice" : "loss.mask=bce_dice";
}

/* The mean loss over the batch's images, by naive loops in double; with
 * edge > 0 the BCE of a pixel whose target differs from one of its 4
 * neighbours in the H x W image counts 1 + edge. */
static double naive_loss(const Batch *b, const float *z, int H, int W, MaskLoss type, double edge) {
    double total = 0;
    size_t npix = (size_t)H * W;
    for (int i = 0; i < b->lb.n_images; i++) {
        double bce = 0, pt = 0, ps = 0, ts = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t j = (size_t)y * W + x;
                double zj = z[(size_t)i * npix + j], p = 1 / (1 + exp(-zj));
                int t = target(b, i, j, npix), outline = 0;
                static const int dy[4] = {-1, 1, 0, 0}, dx[4] = {0, 0, -1, 1};
                for (int k = 0; k < 4; k++) {
                    int yy = y + dy[k], xx = x + dx[k];
                    if (yy >= 0 && yy < H && xx >= 0 && xx < W)
                        outline |= target(b, i, (size_t)yy * W + xx, npix) != t;
                }
                bce += -(t ? log(p) : log(1 - p)) * (outline ? 1 + edge : 1);
                pt += p * t, ps += p, ts += t;
            }
        double dice = 1 - (2 * pt + 1) / (ps + ts + 1);
        total += type == MASK_BCE ? bce / (double)npix : type == MASK_DICE ? dice : bce / (double)npix + dice;
    }
    return total / b->lb.n_images;
}

/* The trainer's loss against naive loops; edge > 0: [loss] edge_weight. */
static void test_loss_value(MaskLoss type, double edge) {
    char edge_set[64];
    snprintf(edge_set, sizeof edge_set, "loss.edge_weight=%g", edge);
    const char *sets[] = {mask_set(type), edge_set};
    Setup s;
    setup(&s, 0, sets, 2);
    Model *m = &s.t.model;
    size_t npix = (size_t)m->in_h * m->in_w;
    int B = s.b.lb.n_items, common = 0, fg = 0;
    for (int k = 0; k < B; k++) common += s.b.lb.same[k] != 0;
    CHECK(B == 8 && common == 6, "batch of 8 pairs, 6 with a common object (have %d, %d)", B, common);
    for (size_t j = 0; j < (size_t)2 * B * npix; j++) fg += s.b.masks[j] != 0;
    CHECK(fg > 0, "the batch has mask pixels");
    StepTimes st;
    double loss = trainer_grads(&s.t, &s.b, &st);
    const float *z = model_output(m, m->loss);
    double want = naive_loss(&s.b, z, m->in_h, m->in_w, type, edge);
    CHECK(fabs(loss - want) <= 1e-6 * fabs(want), "%s loss (edge weight %g) %.9g, naive loops %.9g",
          fixture_mask_name(type), edge, loss, want);
    if (edge > 0) {
        /* the outline's weight shows: the unweighted loss is another number */
        double plain = naive_loss(&s.b, z, m->in_h, m->in_w, type, 0);
        CHECK(fabs(plain - loss) > 1e-4 * fabs(loss), "edge weight %g changes the loss (%.9g, unweighted %.9g)",
              edge, loss, plain);
    }
    /* A pair without a common object is trained towards empty masks: with
     * the targets taken from the masks alone the loss would differ. */
    double own = 0;
    for (int i = 0; i < s.b.lb.n_images; i++) {
        const float *zi = z + (size_t)i * npix;
        for (size_t j = 0; j < npix; j++) {
            double p = 1 / (1 + exp(-(double)zi[j]));
            own += -(s.b.masks[(size_t)i * npix + j] ? log(p) : log(1 - p)) / (double)npix;
        }
    }
    if (type == MASK_BCE && edge == 0)
        CHECK(fabs(own / s.b.lb.n_images - loss) > 1e-4,
              "targets of pairs without a common object are empty");
    setup_free(&s);
}

static double max_abs(const float *p, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)p[i]));
    return m;
}

static double loss_only(void *ctx) {
    Setup *s = ctx;
    return trainer_loss_only(&s->t, &s->b, 0);
}

static void test_fd(MaskLoss type) {
    const char *sets[] = {mask_set(type)};
    Setup s;
    setup(&s, 1, sets, 1);
    Model *m = &s.t.model;
    StepTimes st;
    trainer_grads(&s.t, &s.b, &st);
    float *g = xmalloc(m->nparams * sizeof(float));
    memcpy(g, m->grads, m->nparams * sizeof(float));
    Rng r;
    rng_seed(&r, 5, RNG_TEST, (uint64_t)type);
    double worst = 0;
    for (int v = 0; v < m->nviews; v++) {
        const ParamView *pv = &m->views[v];
        double err =
            fixture_fd_error(loss_only, &s, m->params + pv->offset, g + pv->offset, pv->count, 1e-2f, 40, &r);
        CHECK(err < 2e-2, "%s: %s gradient vs finite differences, rel err %g", fixture_mask_name(type), pv->name,
              err);
        worst = fmax(worst, err);
    }
    printf("finite differences of the whole model (%s, %d tensors): worst rel err %.2g\n", fixture_mask_name(type),
           m->nviews, worst);
    free(g);
    setup_free(&s);
}

/* A loss node that is not one logit per input pixel is refused by name. */
static void test_bad_node(void) {
    char path[PATH_MAX], data[PATH_MAX];
    fixture_path_fmt(path, sizeof path, "%s/%s", root, FIXTURE);
    fixture_path_fmt(data, sizeof data, "data.train=%s/coseg.lmdb", fixture_dir());
    Config c;
    Err e;
    if (config_parse_file(&c, path, &e) || config_set(&c, data, &e) || config_set(&c, "loss.input=up1", &e))
        FATAL("%s", e.msg);
    char *text = config_to_text(&c);
    Trainer t;
    int rc = trainer_setup(&t, text, 0, &e);
    CHECK(rc != 0 && strstr(e.msg, "[loss] type = mask reads up1") && strstr(e.msg, "4x12x12") &&
              strstr(e.msg, "1x12x12"),
          "a 4-channel loss node is refused, naming it and the shape needed: %s", rc ? e.msg : "(accepted)");
    trainer_free(&t); /* after a failed setup too (train_main does) */
    free(text);
    /* Augmentation would move the images but not their masks. */
    if (config_set(&c, "loss.input=mask", &e) || config_set(&c, "augment.rotate=10", &e)) FATAL("%s", e.msg);
    rc = config_validate(&c, &e);
    CHECK(rc != 0 && strstr(e.msg, "[augment] distorts the images but not their masks"),
          "[augment] with a mask loss is refused: %s", rc ? e.msg : "(accepted)");
    /* The outline weight weights BCE: refused with Dice alone. */
    if (config_set(&c, "augment.rotate=0", &e) || config_set(&c, "loss.mask=dice", &e) ||
        config_set(&c, "loss.edge_weight=2", &e))
        FATAL("%s", e.msg);
    rc = config_validate(&c, &e);
    CHECK(rc != 0 && strstr(e.msg, "[loss] edge_weight = 2") && strstr(e.msg, "mask = bce or bce_dice"),
          "edge_weight with mask = dice is refused: %s", rc ? e.msg : "(accepted)");
    if (config_set(&c, "loss.mask=bce_dice", &e)) FATAL("%s", e.msg);
    rc = config_validate(&c, &e);
    CHECK(rc == 0, "edge_weight with mask = bce_dice is taken: %s", rc ? e.msg : "");
}

/* ---- [loss] mask = class (CLASSES: 5 x 6 x 6 on 12 x 12 images) --------- */

/* The mean over the batch's images of the per-position cross-entropy
 * against the class histogram of each 2 x 2 block, by naive loops. */
static double naive_class_loss(const Batch *b, const float *z, int K, int h, int w, int H, int W) {
    double total = 0;
    int fy = H / h, fx = W / w;
    for (int i = 0; i < b->lb.n_images; i++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double zc[8], mx = -1e30, se = 0;
                for (int c = 0; c < K; c++) {
                    zc[c] = z[(((size_t)i * K + c) * h + y) * w + x];
                    mx = fmax(mx, zc[c]);
                }
                for (int c = 0; c < K; c++) se += exp(zc[c] - mx);
                for (int dy = 0; dy < fy; dy++)
                    for (int dx = 0; dx < fx; dx++) {
                        int c = b->masks[(size_t)i * H * W + (size_t)(y * fy + dy) * W + x * fx + dx];
                        total += -(zc[c] - mx - log(se)) / (fy * fx) / (h * w);
                    }
            }
    return total / b->lb.n_images;
}

static void test_class_loss(void) {
    Setup s;
    setup_from(&s, CLASSES, "coseg-class.lmdb", 0, NULL, 0);
    Model *m = &s.t.model;
    const ModelLayer *L = &m->layers[m->loss];
    CHECK(L->oc == FIXTURE_COSEG_CLASSES + 1 && L->oh == 6 && L->ow == 6, "the class node is 5x6x6: %dx%dx%d",
          L->oc, L->oh, L->ow);
    int objects = 0, top = 0;
    for (size_t j = 0; j < (size_t)s.b.lb.n_images * m->in_h * m->in_w; j++) {
        objects += s.b.masks[j] != 0;
        top = MAX(top, s.b.masks[j]);
    }
    CHECK(objects > 0 && top >= 2, "the batch's class masks hold objects of several classes (max value %d)", top);
    StepTimes st;
    double loss = trainer_grads(&s.t, &s.b, &st);
    double want = naive_class_loss(&s.b, model_output(m, m->loss), L->oc, L->oh, L->ow, m->in_h, m->in_w);
    CHECK(fabs(loss - want) <= 1e-6 * fabs(want), "class loss %.9g, naive loops %.9g", loss, want);
    setup_free(&s);
    /* the whole model's gradients (ReLU replaced by tanh) */
    setup_from(&s, CLASSES, "coseg-class.lmdb", 1, NULL, 0);
    trainer_grads(&s.t, &s.b, &st);
    m = &s.t.model;
    float *g = xmalloc(m->nparams * sizeof(float));
    memcpy(g, m->grads, m->nparams * sizeof(float));
    Rng r;
    rng_seed(&r, 6, RNG_TEST, 0);
    for (int v = 0; v < m->nviews; v++) {
        const ParamView *pv = &m->views[v];
        double err =
            fixture_fd_error(loss_only, &s, m->params + pv->offset, g + pv->offset, pv->count, 1e-3f, 40, &r);
        printf("class loss: %s rel err %.2g\n", pv->name, err);
        CHECK(err < 2e-2, "class loss: %s gradient vs finite differences, rel err %g", pv->name, err);
    }
    free(g);
    setup_free(&s);
}

/* The class maps' evaluation by naive loops: each image (or each pair, as
 * the rows [a; b], for a two-image model) forwarded alone in inference
 * mode; per position the block's majority class (ties: the smaller) against
 * the largest logit (ties: the smaller), and the cross-entropy against the
 * block's class histogram. n: images, or pairs. */
static void naive_class_eval(CosegClassEval *r, Model *m, const Norm *norm, const char *db, int n) {
    Dataset *ds;
    DsReader *rd;
    Err e;
    if (ds_open(&ds, db, &e) || ds_reader_open(ds, &rd, &e)) FATAL("%s", e.msg);
    const ModelLayer *L = &m->layers[m->loss];
    int K = L->oc, h = L->oh, w = L->ow, H = m->in_h, W = m->in_w, fy = H / h, fx = W / w;
    uint64_t np = ds_meta(ds)->npairs;
    uint32_t *pa = xmalloc(sizeof(uint32_t) * (np + 1)), *pb = xmalloc(sizeof(uint32_t) * (np + 1));
    uint8_t *same = xmalloc(np + 1), px[2][FIXTURE_COSEG_SIDE * FIXTURE_COSEG_SIDE],
            cls[2][FIXTURE_COSEG_SIDE * FIXTURE_COSEG_SIDE];
    if (ds_load_pairs(ds, pa, pb, same, &e)) FATAL("%s", e.msg);
    float x[2 * FIXTURE_COSEG_SIDE * FIXTURE_COSEG_SIDE];
    double right = 0, right_obj = 0, right_bg = 0, obj = 0, loss = 0, images = 0;
    m->st.train = 0;
    for (int i = 0; i < n; i++) {
        int rows = m->pair ? 2 : 1;
        uint64_t ids[2] = {m->pair ? pa[i] : (uint64_t)i, pb[i]};
        for (int q = 0; q < rows; q++) {
            int32_t lab;
            if (ds_read(rd, ids[q], px[q], &lab, cls[q], &e)) FATAL("%s", e.msg);
            norm_apply(x + q * H * W, px[q], norm, (size_t)H * W);
        }
        const float *zl = model_forward(m, x, rows); /* the loss node's */
        for (int q = 0; q < rows; q++, images++)
            for (int y = 0; y < h; y++)
                for (int xx = 0; xx < w; xx++) {
                    int count[16] = {0}, want = 0, got = 0;
                    for (int dy = 0; dy < fy; dy++)
                        for (int dx = 0; dx < fx; dx++) count[cls[q][(y * fy + dy) * W + xx * fx + dx]]++;
                    double zc[16], mx = -1e30, se = 0;
                    for (int c = 0; c < K; c++) {
                        zc[c] = zl[(((size_t)q * K + c) * h + y) * w + xx];
                        mx = fmax(mx, zc[c]);
                    }
                    for (int c = 0; c < K; c++) {
                        se += exp(zc[c] - mx);
                        if (count[c] > count[want]) want = c;
                        if (zc[c] > zc[got]) got = c;
                    }
                    for (int c = 0; c < K; c++)
                        loss += -(double)count[c] / (fy * fx) * (zc[c] - mx - log(se)) / (h * w);
                    right += want == got;
                    obj += want != 0;
                    right_obj += want != 0 && want == got;
                    right_bg += want == 0 && got == 0;
                }
    }
    r->images = (uint64_t)images;
    r->positions = (uint64_t)(images * h * w);
    r->object_positions = (uint64_t)obj;
    r->accuracy = right / (images * h * w);
    r->object_accuracy = right_obj / obj;
    r->background_accuracy = right_bg / (images * h * w - obj);
    r->loss = loss / images;
    free(pa), free(pb), free(same);
    ds_reader_close(rd);
    ds_close(ds);
}

/* coseg_class_eval_run (siamese eval of a class-map model) against the
 * naive loops: the fixture's one-image model on 9 images (not a whole
 * batch), and the same with a correlation before its class convolution (a
 * two-image model: each image mapped with its partner) on 5 pairs. */
static void test_class_eval(void) {
    char path[PATH_MAX], db[PATH_MAX];
    fixture_path_fmt(path, sizeof path, "%s/%s", root, CLASSES);
    fixture_path_fmt(db, sizeof db, "%s/coseg-class.lmdb", fixture_dir());
    size_t len;
    char *one = (char *)fixture_read_file(path, &len);
    const char *head = "[conv2d]\nname = classes";
    char *at = strstr(one, head);
    ASSERT(at);
    const char *corr = "[correlation]\nname = corr\ninput = feat\ndisplacement = 1\n[concat]\nname = fused\n"
                       "input = corr, feat\n";
    char *two = xmalloc(len + strlen(corr) + 1);
    memcpy(two, one, (size_t)(at - one));
    strcpy(two + (at - one), corr);
    strcat(two, at);
    const char *texts[2] = {one, two};
    for (int k = 0; k < 2; k++) {
        Config c;
        Err e;
        Model m;
        if (config_parse_text(&c, texts[k], CLASSES, &e) ||
            model_build(&m, &c.model, CLASSES, 1, FIXTURE_COSEG_SIDE, FIXTURE_COSEG_SIDE, 32, &e))
            FATAL("%s", e.msg);
        model_init(&m, INIT_TORCH, 5);
        Norm norm = {1, {0.3f}, {0.25f}};
        int n = k ? 5 : 9;
        CHECK(m.pair == k, "%s model", k ? "a two-image" : "a one-image");
        CosegClassEval got, want;
        int rc = coseg_class_eval_run(&got, &m, &norm, db, n, &e);
        CHECK(rc == 0, "class eval: %s", rc ? e.msg : "");
        naive_class_eval(&want, &m, &norm, db, n);
        if (rc == 0)
            CHECK(
                got.images == want.images && got.positions == want.positions &&
                    got.object_positions == want.object_positions && got.accuracy == want.accuracy &&
                    got.object_accuracy == want.object_accuracy &&
                    got.background_accuracy == want.background_accuracy &&
                    fabs(got.loss - want.loss) <= 1e-6 * want.loss,
                "%s model on %d %s: %llu images, %llu positions (%llu object), accuracy %.6f / %.6f / %.6f, "
                "loss %.9g; naive: %llu, %llu (%llu), %.6f / %.6f / %.6f, %.9g",
                k ? "two-image" : "one-image", n, k ? "pairs" : "images", (unsigned long long)got.images,
                (unsigned long long)got.positions, (unsigned long long)got.object_positions, got.accuracy,
                got.object_accuracy, got.background_accuracy, got.loss, (unsigned long long)want.images,
                (unsigned long long)want.positions, (unsigned long long)want.object_positions, want.accuracy,
                want.object_accuracy, want.background_accuracy, want.loss);
        model_free(&m);
    }
    free(one);
    free(two);
}

/* Test-time mirroring (eval / segment --tta 2) on the fixture's model with
 * random weights: the runner's logits for 5 pairs against the naive
 * reference (the model on the pairs, then on the pairs with every image's
 * rows reversed, those logits reversed back, the two averaged as 0.5f *
 * (z + z')), to the bit, and its masks are them thresholded at 0; one view
 * is the model's output itself; the mirrored view changes the logits (the
 * model is not mirror-symmetric, so a no-op would fail). */
static void test_tta_mirror(void) {
    enum { S = FIXTURE_COSEG_SIDE, PAIRS = 5, ROWS = 2 * PAIRS, NPIX = ROWS * S * S };
    char path[PATH_MAX], db[PATH_MAX];
    fixture_path_fmt(path, sizeof path, "%s/%s", root, FIXTURE);
    fixture_path_fmt(db, sizeof db, "%s/coseg.lmdb", fixture_dir());
    Config c;
    Err e;
    Model m;
    Dataset *ds;
    if (config_parse_file(&c, path, &e) || model_build(&m, &c.model, FIXTURE, 1, S, S, 32, &e) ||
        ds_open(&ds, db, &e))
        FATAL("%s", e.msg);
    model_init(&m, INIT_TORCH, 9);
    Norm norm = {1, {0.3f}, {0.25f}};
    uint64_t np = ds_meta(ds)->npairs;
    uint32_t *a = xmalloc(np * sizeof *a), *b = xmalloc(np * sizeof *b);
    uint8_t *same = xmalloc(np);
    CosegRunner r;
    if (ds_load_pairs(ds, a, b, same, &e) || coseg_runner_open(&r, &m, ds, &norm, 2, &e) ||
        coseg_runner_run(&r, a + 3, b + 3, PAIRS, &e))
        FATAL("%s", e.msg);
    static float z[NPIX], zm[NPIX], xm[NPIX], want[NPIX], one[NPIX];
    m.st.train = 0;
    memcpy(z, model_forward(&m, r.x, ROWS), sizeof z);
    for (int i = 0; i < ROWS * S; i++)
        for (int x = 0; x < S; x++) xm[i * S + x] = r.x[i * S + S - 1 - x];
    memcpy(zm, model_forward(&m, xm, ROWS), sizeof zm);
    int moved = 0, masks = 0;
    for (int i = 0; i < ROWS * S; i++)
        for (int x = 0; x < S; x++) {
            int k = i * S + x;
            want[k] = 0.5f * (z[k] + zm[i * S + S - 1 - x]);
            moved += want[k] != z[k];
            masks += r.pred[k] == (want[k] > 0.0f ? 255 : 0);
        }
    CHECK(!memcmp(r.logit, want, sizeof want), "--tta 2: the runner's logits = the naive mean, to the bit");
    CHECK(masks == NPIX, "--tta 2: the masks are the mean logits above 0 (%d of %d pixels)", masks, NPIX);
    CHECK(moved > NPIX / 2, "the mirrored view changes the logits (%d of %d)", moved, NPIX);
    coseg_logits(&m, r.x, ROWS, 1, one);
    CHECK(!memcmp(one, z, sizeof z), "one view: the model's own logits, to the bit");
    coseg_runner_close(&r);
    ds_close(ds);
    free(a), free(b), free(same);
    model_free(&m);
}

/* What does not fit is refused by name: class masks with a mask loss of
 * one object, object masks with mask = class, a node of the wrong number of
 * channels or of a height that does not divide the input's. */
static void test_class_refused(void) {
    static const struct {
        const char *fixture, *db, *set, *want;
    } cases[] = {
        {FIXTURE, "coseg-class.lmdb", NULL, "has class masks"},
        {CLASSES, "coseg.lmdb", NULL, "object masks, not class masks"},
        {CLASSES, "coseg-class.lmdb", "loss.input=feat", "needs a per-image node of 5 channels"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char path[PATH_MAX], data[PATH_MAX];
        fixture_path_fmt(path, sizeof path, "%s/%s", root, cases[k].fixture);
        fixture_path_fmt(data, sizeof data, "data.train=%s/%s", fixture_dir(), cases[k].db);
        Config c;
        Err e;
        if (config_parse_file(&c, path, &e) || config_set(&c, data, &e) || config_set(&c, "data.test=", &e) ||
            (cases[k].set && config_set(&c, cases[k].set, &e)))
            FATAL("%s", e.msg);
        char *text = config_to_text(&c);
        Trainer t;
        int rc = trainer_setup(&t, text, 0, &e);
        CHECK(rc != 0 && strstr(e.msg, cases[k].want), "refused with \"%s\": %s", cases[k].want,
              rc ? e.msg : "(accepted)");
        trainer_free(&t); /* after a failed setup too (train_main does) */
        free(text);
    }
}

/* ---- PyTorch parity of one step ------------------------------------------- */

/* With the overrides sets[0..n) (the twin reads the effective config). */
static void test_parity(const char *const *sets, int n_sets) {
    Setup s;
    setup(&s, 0, sets, n_sets);
    Trainer *t = &s.t;
    Model *m = &t->model;
    const Batch *b = &s.b;
    int n = b->lb.n_images;
    size_t npix = (size_t)m->in_h * m->in_w, in = (size_t)m->in_c * npix;
    char cdir[PATH_MAX], path[PATH_MAX];
    static int cases;
    fixture_path_fmt(cdir, sizeof cdir, "%s/parity%d", fixture_dir(), cases++);
    if (mkdir(cdir, 0700)) FATAL("mkdir %s failed", cdir);
    char cfg[PATH_MAX];
    fixture_path_fmt(cfg, sizeof cfg, "%s/config.ini", cdir);
    fixture_write_file(cfg, t->cfg_text, strlen(t->cfg_text));
    float *params = xmalloc(m->nparams * sizeof(float)), *tg = xmalloc((size_t)n * npix * sizeof(float));
    memcpy(params, m->params, m->nparams * sizeof(float));
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < npix; j++) tg[(size_t)i * npix + j] = (float)target(b, i, j, npix);
    fixture_put_f32(cdir, "x.npy", b->x, n, (int64_t)in);
    fixture_put_f32(cdir, "target.npy", tg, n, (int64_t)npix);
    fixture_put_f32(cdir, "params.npy", params, 1, (int64_t)m->nparams);
    fixture_path_fmt(path, sizeof path, "%s/meta.txt", cdir);
    FILE *f = fopen(path, "w");
    if (!f) FATAL("cannot write %s", path);
    fprintf(f, "shape %d %d %d\nimages %d\nlr %.17g\nweight_decay %.17g\n", m->in_c, m->in_h, m->in_w, n,
            t->opt.lr, t->opt.weight_decay);
    fixture_put_views(f, m->views, m->nviews);
    if (fclose(f)) FATAL("cannot write %s", path);

    StepTimes st;
    double loss = trainer_grads(t, b, &st);
    float *z = xmalloc((size_t)n * npix * sizeof(float)), *g = xmalloc(m->nparams * sizeof(float));
    memcpy(z, model_output(m, m->loss), (size_t)n * npix * sizeof(float));
    memcpy(g, m->grads, m->nparams * sizeof(float));
    trainer_step(t, b, &st);
    CHECK(t->opt.type == OPTIM_ADAM && t->last_loss == loss, "one Adam step on the loss compared");

    char cmd[4 * PATH_MAX];
    fixture_path_fmt(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s '%s/tests/parity_coseg.py' '%s' '%s'", PYTHON,
                     root, cfg, cdir);
    if (fixture_run_python(cmd) == 0) {
        float *tz = fixture_get_f32(cdir, "torch_logits.npy", (size_t)n * npix);
        float *tl = fixture_get_f32(cdir, "torch_loss.npy", 1);
        float *tgr = fixture_get_f32(cdir, "torch_grads.npy", m->nparams);
        float *tp = fixture_get_f32(cdir, "torch_new_params.npy", m->nparams);
        if (tz && tl && tgr && tp) {
            double ez = fixture_max_rel_err(z, tz, (size_t)n * npix), el = fabs(loss - tl[0]) / fabs(tl[0]);
            printf("parity: logits %.2g, loss %.2g (C %.7f, torch %.7f)\n", ez, el, loss, (double)tl[0]);
            CHECK(ez <= TOL, "mask logits differ from torch by %.3g relative", ez);
            CHECK(el <= TOL, "loss %.9g vs torch %.9g", loss, (double)tl[0]);
            double gmax = max_abs(tgr, m->nparams);
            for (int v = 0; v < m->nviews; v++) {
                const ParamView *pv = &m->views[v];
                double eg = fixture_max_rel_err(g + pv->offset, tgr + pv->offset, pv->count);
                double ep = fixture_max_rel_err(m->params + pv->offset, tp + pv->offset, pv->count);
                printf("parity: %-12s grad %.2g, after the Adam step %.2g\n", pv->name, eg, ep);
                CHECK(max_abs(tgr + pv->offset, pv->count) > 1e-3 * gmax,
                      "torch gradient of %s is ~zero: nothing compared", pv->name);
                CHECK(eg <= TOL, "gradient of %s differs from torch by %.3g relative", pv->name, eg);
                CHECK(ep <= TOL, "%s after one Adam step differs from torch by %.3g relative", pv->name, ep);
            }
            /* The comparison can fail: a gradient entry moved by 2e-4 of
             * its tensor's largest is caught. */
            const ParamView *pv = &m->views[0];
            float big = 0;
            for (size_t i = 0; i < pv->count; i++) big = fmaxf(big, fabsf(tgr[pv->offset + i]));
            g[pv->offset + 1] += 2e-4f * big;
            CHECK(fixture_max_rel_err(g + pv->offset, tgr + pv->offset, pv->count) > TOL,
                  "a perturbed %s gradient passes the check", pv->name);
        }
        free(tz), free(tl), free(tgr), free(tp);
    }
    free(params), free(tg), free(z), free(g);
    setup_free(&s);
}

int main(void) {
    fixture_repo_root(root, sizeof root, FIXTURE);
    fixture_dir_create("coseg-train");
    char path[PATH_MAX];
    fixture_path_fmt(path, sizeof path, "%s/coseg.lmdb", fixture_dir());
    fixture_coseg_dataset(path, 200, 7);
    fixture_path_fmt(path, sizeof path, "%s/coseg-class.lmdb", fixture_dir());
    fixture_coseg_dataset_masks(path, 200, 7, 1);
    test_class_loss();
    test_class_eval();
    test_class_refused();
    test_tta_mirror();
    test_loss_value(MASK_BCE, 0);
    test_loss_value(MASK_DICE, 0);
    test_loss_value(MASK_BCE_DICE, 0);
    test_loss_value(MASK_BCE, 2);
    test_loss_value(MASK_BCE_DICE, 0.5);
    test_fd(MASK_BCE);
    test_fd(MASK_DICE);
    test_fd(MASK_BCE_DICE);
    test_bad_node();
    test_parity(NULL, 0);
    const char *cosmax[] = {"corr.normalize=cosine", "corr.max=1"};
    test_parity(cosmax, 2);
    if (!test_failed_) fixture_rm_tree(fixture_dir());
    return test_finish();
}
