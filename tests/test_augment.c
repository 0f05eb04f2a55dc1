/* test_augment: the distortions against references worked out independently:
 * exact pixel moves (integer shifts, mirror, a 90-degree turn of a square),
 * a naive double-precision bilinear sampler for general maps, constant
 * images staying constant, colour channels each resampled like a grey
 * image, masks by nearest pixel; the draws are a pure function of (seed,
 * step, item) with Koch's ranges and probabilities; and through batch_load
 * and the prefetch thread, rank r of p ranks gets bit for bit the rows of
 * the 1-rank batch, a step loads the same whatever was loaded before
 * (resume), everything off leaves the plain decode untouched, and each
 * channel goes through its own normalisation table. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../io/augment.h"
#include "../io/dataset.h"
#include "../io/prefetch.h"
#include "../io/sampler.h"
#include "test.h"

static float lut[256];

static void make_lut(float mean, float std) {
    for (int v = 0; v < 256; v++) lut[v] = ((float)v / 255.0f - mean) / std;
}

static AugmentMap map_of(double m0, double m1, double m2, double m3, double tx, double ty) {
    AugmentMap m = {{m0, m1, m2, m3}, {tx, ty}, 0};
    return m;
}

/* Naive reference: the value at real source position (px, py), reading
 * outside pixels as fill, in double. */
static double ref_sample(const uint8_t *src, int H, int W, double px, double py, int fill) {
    double x0 = floor(px), y0 = floor(py), fx = px - x0, fy = py - y0, v = 0;
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) {
            int x = (int)x0 + dx, y = (int)y0 + dy;
            double p = x >= 0 && x < W && y >= 0 && y < H ? lut[src[y * W + x]] : lut[fill];
            v += p * (dx ? fx : 1 - fx) * (dy ? fy : 1 - fy);
        }
    return v;
}

static void test_exact_moves(void) {
    enum { H = 7, W = 7 };
    uint8_t src[H * W];
    for (int i = 0; i < H * W; i++) src[i] = (uint8_t)(i * 37 % 251 + 3);
    float out[H * W];
    make_lut(0.2f, 0.3f);
    /* Integer shift (+2, -1): out(x, y) = src(x - 2, y + 1), fill outside. */
    AugmentMap sh = map_of(1, 0, 0, 1, 2, -1);
    augment_image(out, src, lut, &sh, 9, 1, H, W);
    int ok = 1;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int sx = x - 2, sy = y + 1;
            float want = sx >= 0 && sx < W && sy >= 0 && sy < H ? lut[src[sy * W + sx]] : lut[9];
            ok &= out[y * W + x] == want;
        }
    CHECK(ok, "integer shift moves pixels exactly and fills the rest");
    /* Mirror: out(x, y) = src(W - 1 - x, y). */
    AugmentMap mi = map_of(-1, 0, 0, 1, 0, 0);
    augment_image(out, src, lut, &mi, 0, 1, H, W);
    ok = 1;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) ok &= out[y * W + x] == lut[src[y * W + W - 1 - x]];
    CHECK(ok, "mirror is exact");
    /* A quarter turn of a square about its centre: the source of (x, y) is
     * (y, W - 1 - x) for m = [[0, 1], [-1, 0]]. */
    AugmentMap q = map_of(0, 1, -1, 0, 0, 0);
    augment_image(out, src, lut, &q, 0, 1, H, W);
    ok = 1;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) ok &= out[y * W + x] == lut[src[(W - 1 - x) * W + y]];
    CHECK(ok, "90-degree turn of a square is an exact permutation");
    /* Identity copies the decode bit for bit. */
    AugmentMap id = map_of(1, 0, 0, 1, 0, 0);
    id.identity = 1;
    augment_image(out, src, lut, &id, 0, 1, H, W);
    ok = 1;
    for (int i = 0; i < H * W; i++) ok &= out[i] == lut[src[i]];
    CHECK(ok, "identity map is the plain decode");
}

static void test_bilinear_reference(void) {
    enum { H = 9, W = 11, C = 3 };
    uint8_t src[C * H * W];
    Rng r;
    rng_seed(&r, 1, RNG_TEST, 40);
    for (int i = 0; i < C * H * W; i++) src[i] = (uint8_t)rng_below(&r, 256);
    make_lut(0.1f, 0.5f);
    float out[C * H * W], one[H * W];
    double worst = 0;
    int chan_ok = 1;
    for (int trial = 0; trial < 50; trial++) {
        double a = rng_uniform_d(&r) * 6.28, s = 0.7 + 0.6 * rng_uniform_d(&r);
        AugmentMap m = map_of(cos(a) * s, -sin(a) * s + 0.2 * rng_uniform_d(&r), sin(a) * s, cos(a) * s,
                              4 * rng_uniform_d(&r) - 2, 4 * rng_uniform_d(&r) - 2);
        int fill = (int)rng_below(&r, 256);
        augment_image(out, src, lut, &m, fill, C, H, W);
        double cx = 0.5 * (W - 1), cy = 0.5 * (H - 1);
        for (int c = 0; c < C; c++) {
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    double dx = x - cx - m.t[0], dy = y - cy - m.t[1];
                    double px = m.m[0] * dx + m.m[1] * dy + cx, py = m.m[2] * dx + m.m[3] * dy + cy;
                    double want = ref_sample(src + c * H * W, H, W, px, py, fill);
                    worst = fmax(worst, fabs(want - out[c * H * W + y * W + x]));
                }
            augment_image(one, src + c * H * W, lut, &m, fill, 1, H, W);
            chan_ok &= !memcmp(one, out + c * H * W, sizeof one);
        }
    }
    CHECK(worst < 2e-5, "bilinear resampling equals the naive double reference (worst %.3g)", worst);
    CHECK(chan_ok, "each colour channel is resampled exactly as a grey image with the same map");
    /* A constant image stays constant where the fill is the same value. */
    uint8_t flat[H * W];
    memset(flat, 77, sizeof flat);
    AugmentMap m = map_of(0.83, 0.31, -0.27, 1.12, 1.3, -0.6);
    augment_image(one, flat, lut, &m, 77, 1, H, W);
    double dev = 0;
    for (int i = 0; i < H * W; i++) dev = fmax(dev, fabs(one[i] - lut[77]));
    CHECK(dev < 1e-6, "a constant image stays constant (%.3g)", dev);
}

static void test_mask(void) {
    enum { H = 6, W = 5 };
    uint8_t src[H * W], out[H * W];
    for (int i = 0; i < H * W; i++) src[i] = (uint8_t)(i + 1);
    AugmentMap sh = map_of(1, 0, 0, 1, -1, 2);
    augment_mask(out, src, &sh, H, W);
    int ok = 1;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int sx = x + 1, sy = y - 2;
            ok &= out[y * W + x] == (sx < W && sy >= 0 ? src[sy * W + sx] : 0);
        }
    CHECK(ok, "mask: integer shift by nearest pixel, 0 outside");
}

static void test_draws(void) {
    AugmentSpec koch = augment_spec_koch();
    CHECK(augment_enabled(&koch), "Koch's spec is enabled");
    AugmentSpec off = {
        .rotate = 10, .rotate_p = 0, .scale_min = 1, .scale_max = 1, .scale_p = 1, .shear_p = 1};
    CHECK(!augment_enabled(&off), "ranges of 0 or probabilities of 0 disable everything");
    AugmentMap a, b;
    augment_draw(&a, &koch, 5, 17, 3);
    augment_draw(&b, &koch, 5, 17, 3);
    CHECK(!memcmp(&a, &b, sizeof a), "the same (seed, step, item) draws the same map");
    int differ_item = 0, differ_step = 0, differ_seed = 0, n_id = 0, n = 4000;
    double tmax = 0, detmin = 1e9, detmax = 0;
    for (int i = 0; i < n; i++) {
        augment_draw(&a, &koch, 5, 17, (uint64_t)i);
        augment_draw(&b, &koch, 5, 17, (uint64_t)i + 1);
        differ_item += memcmp(&a, &b, sizeof a) != 0;
        augment_draw(&b, &koch, 5, 18, (uint64_t)i);
        differ_step += memcmp(&a, &b, sizeof a) != 0;
        augment_draw(&b, &koch, 6, 17, (uint64_t)i);
        differ_seed += memcmp(&a, &b, sizeof a) != 0;
        n_id += a.identity;
        tmax = fmax(tmax, fmax(fabs(a.t[0]), fabs(a.t[1])));
        double det = a.m[0] * a.m[3] - a.m[1] * a.m[2];
        detmin = fmin(detmin, det), detmax = fmax(detmax, det);
    }
    /* Both maps are the identity with probability (1/16)^2: a few equal pairs. */
    CHECK(differ_item > n * 0.98 && differ_step > n * 0.98 && differ_seed > n * 0.98,
          "neighbouring items, steps and seeds draw other maps (%d %d %d of %d)", differ_item, differ_step,
          differ_seed, n);
    /* P(nothing fires) = 0.5^4 = 1/16: 250 of 4000, sd 15.3. */
    CHECK(n_id > 250 - 70 && n_id < 250 + 70, "identity in 1/16 of the draws (%d of %d)", n_id, n);
    CHECK(tmax <= 2 && tmax > 1.9, "translation within +-2 px and reaching it (%.3f)", tmax);
    /* det(m) = 1 / (s_x s_y (1 - rho_x rho_y)): within [1/(1.44 * 1.09), 1/(0.64 * 0.91)]. */
    CHECK(detmin >= 1 / (1.44 * 1.09) - 1e-9 && detmax <= 1 / (0.64 * 0.91) + 1e-9,
          "scale and shear in range (%.3f %.3f)", detmin, detmax);
    /* Rotation alone: the angle stays within +-10 degrees and fires half the time. */
    AugmentSpec rot = {.rotate = 10, .rotate_p = 0.5, .scale_min = 1, .scale_max = 1};
    int fired = 0;
    double amax = 0;
    for (int i = 0; i < n; i++) {
        augment_draw(&a, &rot, 1, 2, (uint64_t)i);
        fired += !a.identity;
        amax = fmax(amax, fabs(atan2(a.m[2], a.m[0])) * 180 / M_PI);
    }
    CHECK(fired > 2000 - 130 && fired < 2000 + 130, "rotation fires with probability 0.5 (%d of %d)", fired,
          n);
    CHECK(amax <= 10 + 1e-9 && amax > 9.8, "rotation angle within +-10 degrees, reaching it (%.4f)", amax);
    AugmentSpec crop = {.crop_pad = 3, .scale_min = 1, .scale_max = 1};
    int seen[7] = {0};
    int integral = 1;
    for (int i = 0; i < 700; i++) {
        augment_draw(&a, &crop, 1, 2, (uint64_t)i);
        integral &= a.t[0] == floor(a.t[0]) && fabs(a.t[0]) <= 3 && a.m[0] == 1 && a.m[3] == 1;
        if (integral) seen[(int)a.t[0] + 3]++;
    }
    int all = 1;
    for (int k = 0; k < 7; k++) all &= seen[k] > 50;
    CHECK(integral && all, "crop/pad: integer shifts covering [-3, 3]");
}

/* A small dataset of 3 channels: 10 classes x 6. */
#define DC 3
#define DH 8
#define DW 8
static void write_db(const char *path) {
    Err e;
    DsWriterSpec ws = {.channels = DC, .height = DH, .width = DW, .classes = 10, .source = "test_augment"};
    DsWriter *w;
    if (ds_writer_create(&w, path, &ws, &e)) FATAL("%s", e.msg);
    uint8_t px[DC * DH * DW];
    for (int i = 0; i < 60; i++) {
        for (int j = 0; j < DC * DH * DW; j++) px[j] = (uint8_t)((i * 31 + j * 7) % 256);
        if (ds_writer_add(w, px, i % 10, NULL, &e)) FATAL("%s", e.msg);
    }
    if (ds_writer_finish(w, &e)) FATAL("%s", e.msg);
}

static void test_batches(const char *path) {
    Err e;
    Dataset *ds;
    if (ds_open(&ds, path, &e)) FATAL("%s", e.msg);
    SamplerSpec spec = {.mode = SAMPLER_PK, .p = 4, .k = 3, .seed = 9};
    Sampler s;
    if (sampler_init(&s, &spec, ds, &e)) FATAL("%s", e.msg);
    DsReader *r;
    if (ds_reader_open(ds, &r, &e)) FATAL("%s", e.msg);
    AugmentSpec aug = {.rotate = 15,
                       .rotate_p = 0.7,
                       .shear = 0.2,
                       .shear_p = 0.5,
                       .scale_min = 0.9,
                       .scale_max = 1.1,
                       .scale_p = 0.5,
                       .translate = 1.5,
                       .translate_p = 0.5,
                       .hflip = 0.5,
                       .crop_pad = 2,
                       .fill = 10};
    /* a normalisation of its own per channel */
    BatchDecode plain = {.norm = {.channels = DC, .mean = {0.25f, 0.4f, 0.1f}, .std = {0.5f, 0.3f, 0.2f}},
                         .seed = 9},
                dec = plain, offd = plain;
    AugmentSpec off = {.scale_min = 1, .scale_max = 1, .rotate_p = 1};
    dec.aug = &aug, offd.aug = &off;
    Batch whole, part, again, p0;
    batch_init(&whole, &s, ds, 1);
    batch_init(&part, &s, ds, 3);
    batch_init(&again, &s, ds, 1);
    batch_init(&p0, &s, ds, 1);
    size_t img = (size_t)DC * DH * DW;
    int slices_ok = 1, changed = 0, off_ok = 1;
    for (uint64_t g = 0; g < 4; g++) {
        if (batch_load(&whole, &s, r, 0, 1, &dec, g, &e)) FATAL("%s", e.msg);
        for (int rank = 0; rank < 3; rank++) {
            if (batch_load(&part, &s, r, rank, 3, &dec, g, &e)) FATAL("%s", e.msg);
            for (int i = 0; i < part.lb.n_images; i++) {
                int gi = sampler_global_image(&part.lb, i);
                slices_ok &= !memcmp(part.x + i * img, whole.x + (size_t)gi * img, img * sizeof(float));
            }
        }
        if (batch_load(&p0, &s, r, 0, 1, &plain, g, &e)) FATAL("%s", e.msg);
        changed += memcmp(p0.x, whole.x, (size_t)whole.lb.n_images * img * sizeof(float)) != 0;
        if (batch_load(&again, &s, r, 0, 1, &offd, g, &e)) FATAL("%s", e.msg);
        off_ok &= !memcmp(p0.x, again.x, (size_t)whole.lb.n_images * img * sizeof(float));
    }
    CHECK(slices_ok, "rank r of 3 gets bit for bit its rows of the 1-rank augmented batch");
    CHECK(changed == 4, "augmentation changes every batch (%d of 4)", changed);
    CHECK(off_ok, "a spec with nothing enabled decodes exactly like none");
    /* Per channel (step 3 in whole): channel c is channel c of the
     * 3-channel augment_image through channel c's table. */
    int planes_ok = 1;
    for (int i = 0; i < whole.lb.n_images; i++) {
        uint8_t px[DC * DH * DW];
        float ref[DC * DH * DW], t[256];
        int32_t label;
        if (ds_read(r, whole.lb.ids[i], px, &label, NULL, &e)) FATAL("%s", e.msg);
        AugmentMap map;
        augment_draw(&map, &aug, 9, 3, (uint64_t)sampler_global_image(&whole.lb, i));
        for (int c = 0; c < DC; c++) {
            norm_table(t, &dec.norm, c);
            augment_image(ref, px, t, &map, (int)aug.fill, DC, DH, DW);
            planes_ok &= !memcmp(whole.x + i * img + c * DH * DW, ref + c * DH * DW, sizeof(float) * DH * DW);
        }
    }
    CHECK(planes_ok, "per-channel normalisation: each plane as the whole image through that channel's table");
    /* Resume: step 3 loaded fresh equals step 3 loaded after 0..2. */
    if (batch_load(&again, &s, r, 0, 1, &dec, 3, &e)) FATAL("%s", e.msg);
    CHECK(!memcmp(again.x, whole.x, (size_t)whole.lb.n_images * img * sizeof(float)),
          "a step's augmented batch does not depend on what was loaded before");
    /* The prefetch thread returns what batch_load does. */
    Prefetch *p = prefetch_start(ds, &s, 1, 2, &dec, 1, 4, &e);
    if (!p) FATAL("%s", e.msg);
    int pf_ok = 1;
    Batch half;
    batch_init(&half, &s, ds, 2);
    for (uint64_t g = 1; g < 4; g++) {
        const Batch *b = prefetch_next(p, &e);
        if (!b) FATAL("%s", e.msg);
        if (batch_load(&half, &s, r, 1, 2, &dec, g, &e)) FATAL("%s", e.msg);
        pf_ok &= !memcmp(b->x, half.x, (size_t)half.lb.n_images * img * sizeof(float));
    }
    prefetch_stop(p);
    batch_free(&half);
    CHECK(pf_ok, "the prefetch thread's augmented batches equal batch_load's");
    batch_free(&whole), batch_free(&part), batch_free(&again), batch_free(&p0);
    ds_reader_close(r);
    sampler_free(&s);
    ds_close(ds);
}

int main(void) {
    test_exact_moves();
    test_bilinear_reference();
    test_mask();
    test_draws();
    char dir[] = "/tmp/siamese-augment-XXXXXX";
    if (!mkdtemp(dir)) FATAL("mkdtemp failed");
    char path[64];
    snprintf(path, sizeof path, "%s/d.lmdb", dir);
    write_db(path);
    test_batches(path);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) util_warn("could not remove %s", dir);
    return test_finish();
}
