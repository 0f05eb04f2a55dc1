/* Tests of mining/coseg.c: the measures against masks whose Jaccard,
 * precision, wrongly marked fraction and emptiness were worked out by hand,
 * the 1 % emptiness boundary, merging partial sums, the threshold of logits;
 * the mask loss (BCE and Dice) against hand values and finite differences,
 * with images whose target is empty, large logits, and the gradient scale. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../mining/coseg.h"
#include "fixture_coseg.h"
#include "fixture_num.h"
#include "test.h"

/* A 4x4 mask from 16 characters, '#' = object. */
static void mask4(uint8_t m[16], const char *rows) {
    for (int i = 0; i < 16; i++) m[i] = rows[i] == '#' ? 255 : 0;
}

static void test_hand(void) {
    uint8_t p[6][16], t[6][16];
    /* seen image 1: truth = top-left 2x2, prediction = top row:
     * intersection 2, union 6 -> J = 1/3; 2 + 2 pixels wrong -> 12/16 */
    mask4(t[0], "##..##.........."), mask4(p[0], "####............");
    /* seen image 2: truth = everything, prediction = 12 pixels: J = 12/16, precision 12/16 */
    mask4(t[1], "################"), mask4(p[1], "############....");
    /* unseen image 1: truth 3 pixels, nothing predicted: J = 0, precision 13/16 */
    mask4(t[2], "#....#....#....."), mask4(p[2], "................");
    /* unseen image 2: both empty: J = 1 (by definition), precision 1 */
    mask4(t[3], "................"), mask4(p[3], "................");
    /* none: one pixel marked (1/16, not empty), nothing marked (empty); the target is ignored */
    mask4(p[4], ".......#........"), mask4(t[4], "################");
    mask4(p[5], "................"), mask4(t[5], "################");
    CosegStats s;
    memset(&s, 0, sizeof s);
    int kind[6] = {COSEG_SEEN, COSEG_SEEN, COSEG_UNSEEN, COSEG_UNSEEN, COSEG_NONE, COSEG_NONE};
    for (int i = 0; i < 6; i++) coseg_stats_add(&s, p[i], t[i], 16, kind[i]);
    CosegMetrics m;
    coseg_stats_finish(&s, &m);
    CHECK_CLOSE(m.jaccard_seen, (1.0 / 3 + 0.75) / 2, 1e-12, "jaccard_seen");
    CHECK_CLOSE(m.precision_seen, 0.75, 1e-12, "precision_seen");
    CHECK_CLOSE(m.jaccard_unseen, 0.5, 1e-12, "jaccard_unseen");
    CHECK_CLOSE(m.precision_unseen, (13.0 / 16 + 1) / 2, 1e-12, "precision_unseen");
    CHECK_CLOSE(m.jaccard, (1.0 / 3 + 0.75 + 0 + 1) / 4, 1e-12, "jaccard over all");
    CHECK_CLOSE(m.precision, (0.75 + 0.75 + 13.0 / 16 + 1) / 4, 1e-12, "precision over all");
    CHECK_CLOSE(m.wrong_pixels_none, 1.0 / 32, 1e-12, "wrong_pixels_none");
    CHECK_CLOSE(m.empty_none, 0.5, 1e-12, "empty_none");
    CHECK(m.pairs_seen == 1 && m.pairs_unseen == 1 && m.pairs_none == 1, "pairs %llu %llu %llu",
          (unsigned long long)m.pairs_seen, (unsigned long long)m.pairs_unseen,
          (unsigned long long)m.pairs_none);

    /* merging two halves gives the whole */
    CosegStats a, b;
    memset(&a, 0, sizeof a), memset(&b, 0, sizeof b);
    for (int i = 0; i < 6; i++) coseg_stats_add(i % 2 ? &a : &b, p[i], t[i], 16, kind[i]);
    coseg_stats_merge(&a, &b);
    CosegMetrics m2;
    coseg_stats_finish(&a, &m2);
    CHECK_CLOSE(m2.jaccard_seen, m.jaccard_seen, 1e-15, "merged jaccard_seen");
    CHECK_CLOSE(m2.empty_none, m.empty_none, 1e-15, "merged empty_none");
    CHECK(m2.pairs_none == 1, "merged pairs_none");

    /* a kind without images is NaN, not 0 */
    memset(&s, 0, sizeof s);
    coseg_stats_add(&s, p[0], t[0], 16, COSEG_SEEN);
    coseg_stats_finish(&s, &m);
    CHECK(isnan(m.jaccard_unseen) && isnan(m.wrong_pixels_none) && !isnan(m.jaccard_seen),
          "missing kinds are NaN");
}

/* 100 x 100: 99 marked pixels are below 1 % (empty), 100 are not. */
static void test_empty_boundary(void) {
    static uint8_t p[10000], t[10000];
    CosegStats s;
    memset(&s, 0, sizeof s);
    memset(p, 255, 99);
    coseg_stats_add(&s, p, t, 10000, COSEG_NONE);
    memset(p, 255, 100);
    coseg_stats_add(&s, p, t, 10000, COSEG_NONE);
    CHECK(s.empty == 1, "99 of 10000 pixels is empty, 100 is not (%llu empty)", (unsigned long long)s.empty);
    CHECK_CLOSE(s.wrong, 0.0099 + 0.01, 1e-12, "wrong fractions");
}

static void test_threshold(void) {
    float l[5] = {-1.0f, 0.0f, 1e-7f, 3.0f, -0.0f};
    uint8_t m[5];
    coseg_threshold(m, l, 5);
    CHECK(m[0] == 0 && m[1] == 0 && m[2] == 255 && m[3] == 255 && m[4] == 0,
          "logit > 0 is object: %d %d %d %d %d", m[0], m[1], m[2], m[3], m[4]);
}

static void test_loss_hand(void) {
    float z[8] = {0}, dz[8];
    uint8_t t[8] = {1, 1, 0, 0, 9, 9, 9, 9}, has[2] = {1, 0};
    /* z = 0: BCE is log 2 per pixel whatever the target */
    double l = coseg_mask_loss(dz, z, t, has, 2, 4, MASK_BCE, 1.0);
    CHECK_CLOSE(l, 2 * log(2.0), 1e-12, "BCE at z = 0");
    CHECK(dz[0] == -0.125f && dz[2] == 0.125f && dz[4] == 0.125f, "BCE gradient (p - t) / npix: %g %g %g",
          dz[0], dz[2], dz[4]);
    /* Dice at p = 1/2: image 0 (t = 1100): 1 - (2*1 + 1) / (2 + 2 + 1) = 0.4;
     * image 1 (no target: t ignored): 1 - 1 / (2 + 0 + 1) = 2/3 */
    l = coseg_mask_loss(dz, z, t, has, 2, 4, MASK_DICE, 1.0);
    CHECK_CLOSE(l, 0.4 + 2.0 / 3, 1e-12, "Dice at z = 0");
    /* large logits stay finite: BCE of z = +-100 against the wrong target is 100 */
    float zz[2] = {100.0f, -100.0f};
    uint8_t tt[2] = {0, 1}, h1[1] = {1};
    l = coseg_mask_loss(dz, zz, tt, h1, 1, 2, MASK_BCE, 1.0);
    CHECK_CLOSE(l, 100.0, 1e-9, "BCE of confident mistakes");
    CHECK(dz[0] == 0.5f && dz[1] == -0.5f, "their gradients: %g %g", dz[0], dz[1]);
}

/* [loss] edge_weight by hand: a 3 x 3 target with only its centre marked.
 * Its outline is the centre and its 4 neighbours (each differs from a
 * neighbour); the corners are not. At z = 0 every pixel's BCE is log 2:
 * (4 + 5 (1 + w)) log 2 / 9, gradients (p - t) w_j / 9. Read as one row of
 * 9 pixels the outline is pixels 3, 4 and 5 only. */
static void test_edge_hand(void) {
    float z[9] = {0}, dz[9];
    uint8_t t[9] = {0, 0, 0, 0, 1, 0, 0, 0, 0}, has[1] = {1};
    double w = 2.0, l = coseg_mask_loss_edge(dz, z, t, has, 1, 9, 3, MASK_BCE, w, 1.0);
    CHECK_CLOSE(l, (4 + 5 * (1 + w)) * log(2.0) / 9, 1e-12, "edge-weighted BCE of a 3 x 3 centre");
    CHECK(dz[0] == (float)(0.5 / 9) && dz[1] == (float)(0.5 * 3 / 9) && dz[4] == (float)(-0.5 * 3 / 9) &&
              dz[8] == (float)(0.5 / 9),
          "its gradient: corner %g, side %g, centre %g", dz[0], dz[1], dz[4]);
    l = coseg_mask_loss_edge(dz, z, t, has, 1, 9, 9, MASK_BCE, w, 1.0);
    CHECK_CLOSE(l, (6 + 3 * (1 + w)) * log(2.0) / 9, 1e-12, "the same pixels as one row of 9");
    CHECK(dz[1] == (float)(0.5 / 9) && dz[3] == (float)(0.5 * 3 / 9), "one row: pixel 1 %g, pixel 3 %g", dz[1],
          dz[3]);
    /* an image without a target has no outline: BCE as unweighted */
    has[0] = 0;
    l = coseg_mask_loss_edge(dz, z, t, has, 1, 9, 3, MASK_BCE, w, 1.0);
    CHECK_CLOSE(l, log(2.0), 1e-12, "no target, no outline");
}

typedef struct LossCase {
    float *z, *dz;
    uint8_t *t, *has;
    int n;
    MaskLoss type;
    size_t npix, width;
    double edge;
} LossCase;

/* The case's loss and gradient (into dz) at a scale: the plain function
 * when the case has no outline weight. */
static double case_loss(const LossCase *c, float *dz, double scale) {
    if (c->edge > 0)
        return coseg_mask_loss_edge(dz, c->z, c->t, c->has, c->n, c->npix, c->width, c->type, c->edge, scale);
    return coseg_mask_loss(dz, c->z, c->t, c->has, c->n, c->npix, c->type, scale);
}

static double loss_of(void *ctx) {
    LossCase *c = ctx;
    return case_loss(c, c->dz, 1.0);
}

static void test_loss_fd(MaskLoss type, double edge) {
    Rng r;
    rng_seed(&r, 11, RNG_TEST, (uint64_t)type);
    LossCase c = {.n = 3, .npix = 50, .width = 10, .type = type, .edge = edge};
    size_t nz = (size_t)c.n * c.npix;
    c.z = fixture_rand_floats(&r, nz, -3, 3);
    c.dz = xaligned_floats(nz);
    c.t = xmalloc(nz);
    for (size_t i = 0; i < nz; i++) c.t[i] = (uint8_t)(rng_below(&r, 3) == 0 ? 255 : 0);
    uint8_t has[3] = {1, 0, 1};
    c.has = has;
    float *g = xaligned_floats(nz), *g2 = xaligned_floats(nz);
    double l = loss_of(&c);
    memcpy(g, c.dz, nz * sizeof *g);
    double err = fixture_fd_error(loss_of, &c, c.z, g, nz, 1e-2f, nz, NULL);
    CHECK(err < 2e-3, "%s (edge weight %g): finite differences, rel err %g", fixture_mask_name(type), edge, err);
    if (edge > 0) {
        /* weight 0 is the unweighted loss, bit for bit, and the weight changes it */
        double l0 = coseg_mask_loss(g2, c.z, c.t, c.has, c.n, c.npix, type, 1.0);
        float *g0 = xaligned_floats(nz);
        double l0e = coseg_mask_loss_edge(g0, c.z, c.t, c.has, c.n, c.npix, c.width, type, 0.0, 1.0);
        CHECK(l0e == l0 && !memcmp(g0, g2, nz * sizeof *g0), "edge weight 0 is the plain loss, bit for bit");
        CHECK(fabs(l - l0) > 1e-3, "edge weight %g changes the loss: %g against %g", edge, l, l0);
        free(g0);
    }
    /* the scale multiplies the gradient only */
    double l2 = case_loss(&c, g2, 0.25);
    int scaled = 1;
    for (size_t i = 0; i < nz; i++) scaled &= fabsf(g2[i] - 0.25f * g[i]) <= 1e-7f * fabsf(g[i]) + 1e-12f;
    CHECK(l2 == l && scaled, "%s: scale 1/4 scales the gradient, not the loss", fixture_mask_name(type));
    /* an image without a target: its t is never read (same loss with other bytes there) */
    memset(c.t + c.npix, 255, c.npix);
    CHECK(loss_of(&c) == l, "%s: the target of an image without one is ignored", fixture_mask_name(type));
    free(c.z), free(c.dz), free(c.t), free(g), free(g2);
}

/* The series log1p against libm's over [0, 1]: relative error at most 3 *
 * 2^-52 (3.0 ulp the worst of 3e7 arguments measured once), exact at 0,
 * and tiny and denormal arguments kept (log1p(e) = e there). */
static void test_log1p_unit(void) {
    Rng r;
    rng_seed(&r, 13, RNG_TEST, 0);
    double worst = 0.0;
    for (int i = 0; i <= 100000; i++) {
        double e = i < 100 ? ldexp(1.0, -i * 11) : i == 100000 ? 1.0 : rng_uniform_d(&r);
        if (i == 99) e = 4.9e-324;
        double a = coseg_log1p_unit(e), b = log1p(e), rel = b > 0 ? fabs(a - b) / b : fabs(a);
        if (rel > worst) worst = rel;
    }
    CHECK(worst <= 3 * 0x1p-52, "coseg_log1p_unit within 2-3 ulp of log1p on [0, 1]: worst %g", worst);
    CHECK(coseg_log1p_unit(0.0) == 0.0, "log1p(0) = 0");
}

/* The loss and gradient against the formulas written plainly (libm's exp
 * and log1p, one pixel after another): the gradient bit for bit (it does
 * not use the log), the loss to 1e-14 relative. Logits large and small,
 * an image without target; 3 images of 523 pixels (no multiple of a
 * vector). */
static void test_loss_naive(MaskLoss type) {
    Rng r;
    rng_seed(&r, 14, RNG_TEST, (uint64_t)type);
    int n = 3;
    size_t npix = 523, nz = (size_t)n * npix;
    float *z = fixture_rand_floats(&r, nz, -20, 20), *g = xaligned_floats(nz), *ref = xaligned_floats(nz);
    uint8_t *t = xmalloc(nz), has[3] = {1, 0, 1};
    for (size_t i = 0; i < nz; i++) t[i] = (uint8_t)(rng_below(&r, 3) == 0 ? 255 : 0);
    z[0] = 0.0f, z[1] = -0.0f, z[2] = 100.0f, z[3] = -100.0f, z[4] = 1e-30f, z[5] = -800.0f, z[6] = 3e38f;
    double scale = 0.37, l = coseg_mask_loss(g, z, t, has, n, npix, type, scale), want = 0.0;
    double *p = xmalloc(npix * sizeof *p);
    for (int i = 0; i < n; i++) {
        const float *zi = z + (size_t)i * npix;
        const uint8_t *ti = has[i] ? t + (size_t)i * npix : NULL;
        float *gi = ref + (size_t)i * npix;
        double bce = 0.0, inter = 0.0, sp = 0.0, st = 0.0, s = scale / (double)npix;
        for (size_t j = 0; j < npix; j++) {
            double zj = zi[j], e = exp(-fabs(zj));
            int tj = ti && ti[j];
            p[j] = zj >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
            bce += (zj > 0 ? zj + log1p(e) : log1p(e)) - (tj ? zj : 0.0);
            gi[j] = type == MASK_DICE ? 0.0f : (float)(s * 1.0 * (p[j] - tj));
            inter += tj ? p[j] : 0.0;
            sp += p[j];
            st += tj;
        }
        if (type != MASK_DICE) want += bce / (double)npix;
        if (type == MASK_BCE) continue;
        double num = 2.0 * inter + COSEG_DICE_SMOOTH, den = sp + st + COSEG_DICE_SMOOTH;
        for (size_t j = 0; j < npix; j++) {
            int tj = ti && ti[j];
            gi[j] += (float)(scale * -(2.0 * tj * den - num) / (den * den) * p[j] * (1.0 - p[j]));
        }
        want += 1.0 - num / den;
    }
    CHECK(fabs(l - want) <= 1e-14 * fabs(want), "%s: the loss %.17g against the plain loops' %.17g",
          fixture_mask_name(type), l, want);
    CHECK(!memcmp(g, ref, nz * sizeof *g), "%s: the gradient equals the plain loops' bit for bit",
          fixture_mask_name(type));
    free(z), free(g), free(ref), free(t), free(p);
}

/* [loss] mask = class by hand: one position over a 2 x 2 block of classes
 * {0, 1, 1, 2}: q = (1/4, 1/2, 1/4). Logits (0, ln 2, 0) give p = q: loss
 * = the entropy of q = 1.5 ln 2, gradient 0. Logits 0: loss ln 3, gradient
 * 1/3 - q. Blocks of one pixel: position j's class is t_j. */
static void test_class_hand(void) {
    float z[3] = {0.0f, (float)log(2.0), 0.0f}, dz[12];
    uint8_t t[4] = {0, 1, 1, 2};
    double l = coseg_class_loss(dz, z, t, 1, 3, 1, 1, 2, 2, 1.0);
    CHECK_CLOSE(l, 1.5 * log(2.0), 1e-7, "class loss at p = q is the entropy of q");
    CHECK(fabsf(dz[0]) < 1e-7f && fabsf(dz[1]) < 1e-7f && fabsf(dz[2]) < 1e-7f, "and its gradient is 0: %g %g %g",
          dz[0], dz[1], dz[2]);
    float z0[12] = {0};
    l = coseg_class_loss(dz, z0, t, 1, 3, 1, 1, 2, 2, 1.0);
    CHECK_CLOSE(l, log(3.0), 1e-12, "class loss at z = 0 is ln 3");
    CHECK_CLOSE(dz[0], 1.0 / 3 - 0.25, 1e-7, "gradient 1/3 - q_0");
    CHECK_CLOSE(dz[1], 1.0 / 3 - 0.5, 1e-7, "gradient 1/3 - q_1");
    /* 2 x 2 positions, one pixel each, classes {2, 0, 0, 1}: (K, h, w) layout,
     * so channel c of position j is dz[c * 4 + j]; gradients / (h w) */
    uint8_t t1[4] = {2, 0, 0, 1};
    l = coseg_class_loss(dz, z0, t1, 1, 3, 2, 2, 2, 2, 1.0);
    CHECK_CLOSE(l, log(3.0), 1e-12, "ln 3 at every position, averaged");
    CHECK_CLOSE(dz[2 * 4 + 0], (1.0 / 3 - 1) / 4, 1e-7, "position 0, its class 2");
    CHECK_CLOSE(dz[0 * 4 + 0], (1.0 / 3) / 4, 1e-7, "position 0, class 0");
    CHECK_CLOSE(dz[1 * 4 + 3], (1.0 / 3 - 1) / 4, 1e-7, "position 3, its class 1");
    /* confident and wrong: a logit of 100 for the wrong class costs 100 */
    float zb[3] = {100.0f, 0.0f, 0.0f};
    uint8_t tb[1] = {1};
    l = coseg_class_loss(dz, zb, tb, 1, 3, 1, 1, 1, 1, 1.0);
    CHECK_CLOSE(l, 100.0, 1e-9, "a confident mistake stays finite");
}

typedef struct ClassCase {
    float *z, *dz;
    uint8_t *t;
    int n, K, h, w, H, W;
} ClassCase;

static double class_loss_of(void *ctx) {
    ClassCase *c = ctx;
    return coseg_class_loss(c->dz, c->z, c->t, c->n, c->K, c->h, c->w, c->H, c->W, 1.0);
}

/* Finite differences of the class loss, blocks of 1 x 1 and 3 x 2 pixels,
 * and the scale multiplying the gradient only. */
static void test_class_fd(int fy, int fx) {
    Rng r;
    rng_seed(&r, 12, RNG_TEST, (uint64_t)(fy * 10 + fx));
    ClassCase c = {.n = 2, .K = 4, .h = 3, .w = 4};
    c.H = c.h * fy, c.W = c.w * fx;
    size_t nz = (size_t)c.n * c.K * c.h * c.w, nt = (size_t)c.n * c.H * c.W;
    c.z = fixture_rand_floats(&r, nz, -3, 3);
    c.dz = xaligned_floats(nz);
    c.t = xmalloc(nt);
    for (size_t i = 0; i < nt; i++) c.t[i] = (uint8_t)rng_below(&r, (uint64_t)c.K);
    float *g = xaligned_floats(nz), *g2 = xaligned_floats(nz);
    double l = class_loss_of(&c);
    memcpy(g, c.dz, nz * sizeof *g);
    double err = fixture_fd_error(class_loss_of, &c, c.z, g, nz, 1e-2f, nz, NULL);
    CHECK(err < 2e-3, "class loss, blocks %dx%d: finite differences, rel err %g", fy, fx, err);
    double l2 = coseg_class_loss(g2, c.z, c.t, c.n, c.K, c.h, c.w, c.H, c.W, 0.25);
    int scaled = 1;
    for (size_t i = 0; i < nz; i++) scaled &= fabsf(g2[i] - 0.25f * g[i]) <= 1e-7f * fabsf(g[i]) + 1e-12f;
    CHECK(l2 == l && scaled, "class loss: scale 1/4 scales the gradient, not the loss");
    free(c.z), free(c.dz), free(c.t), free(g), free(g2);
}

int main(void) {
    test_class_hand();
    test_class_fd(1, 1);
    test_class_fd(3, 2);
    test_loss_hand();
    test_log1p_unit();
    test_loss_naive(MASK_BCE);
    test_loss_naive(MASK_DICE);
    test_loss_naive(MASK_BCE_DICE);
    test_loss_fd(MASK_BCE, 0);
    test_loss_fd(MASK_DICE, 0);
    test_edge_hand();
    test_loss_fd(MASK_BCE, 2);
    test_loss_fd(MASK_BCE_DICE, 0.5);
    test_hand();
    test_empty_boundary();
    test_threshold();
    return test_finish();
}
