/* test_color: colour and masks in the data path, against values worked out
 * by hand: PPM (P6, P3, 16-bit) decoding as RGB and as luma grey; masks of
 * every PNG kind read by their stored values (a palette PNG by its index,
 * alpha ignored), PGM masks, JPEG masks refused; the importers' --color
 * (PNG, PPM, grey replicated, idx) and --masks (the mirrored tree, the .png
 * lookup, majority resampling, missing and mis-sized masks); the per-channel
 * normalisation (lists, the dataset's statistics, checkpoint state) and the
 * [data] mean / std config keys. Also: PNG of every kind decoded as RGB, the
 * imported per-channel mean and std against a naive two-pass loop, and
 * eval_embed of a 3-channel model against one-by-one forwards. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../dist/ckpt_check.h"
#include "../dist/evaluate.h"
#include "../io/config.h"
#include "../io/dataset.h"
#include "../io/image.h"
#include "../io/import.h"
#include "../io/norm.h"
#include "fixture_files.h"
#include "fixture_png.h"
#include "test.h"

static uint8_t luma(int r, int g, int b) { return (uint8_t)((299 * r + 587 * g + 114 * b + 500) / 1000); }

/* ---- PPM -------------------------------------------------------------------------- */

static void test_ppm(void) {
    Err e;
    Image img;
    /* 2x1 binary: (10, 200, 30) (255, 0, 128). */
    fixture_write_file(fixture_path("a.ppm"), "P6\n2 1\n255\n\x0a\xc8\x1e\xff\x00\x80", 17);
    int rc = image_load_color(&img, fixture_path("a.ppm"), 1, &e);
    const uint8_t want[6] = {10, 200, 30, 255, 0, 128};
    CHECK(rc == 0 && img.channels == 3 && img.height == 1 && img.width == 2 && !memcmp(img.pixels, want, 6),
          "P6 as RGB: %s", rc ? e.msg : "");
    if (!rc) image_free(&img);
    rc = image_load(&img, fixture_path("a.ppm"), &e);
    CHECK(rc == 0 && img.channels == 1 && img.pixels[0] == luma(10, 200, 30) &&
              img.pixels[1] == luma(255, 0, 128),
          "P6 as grey: luma %u %u", rc ? 0 : img.pixels[0], rc ? 0 : img.pixels[1]);
    if (!rc) image_free(&img);
    /* ascii, maxval 15: 15 -> 255, 1 -> (255 + 7) / 15 = 17, 7 -> (1785 + 7) / 15 = 119 */
    fixture_write_file(fixture_path("b.ppm"), "P3\n# c\n1 1 15\n15 1 7\n", 21);
    rc = image_load_color(&img, fixture_path("b.ppm"), 1, &e);
    CHECK(rc == 0 && img.pixels[0] == 255 && img.pixels[1] == 17 && img.pixels[2] == 119, "P3 maxval 15: %s",
          rc ? e.msg : "");
    if (!rc) image_free(&img);
    /* 16-bit: 0xffff -> 255, 0x0101 = 257 -> (257 * 255 + 32767) / 65535 = 1, 0x8000 -> 128 */
    fixture_write_file(fixture_path("c.ppm"), "P6\n1 1\n65535\n\xff\xff\x01\x01\x80\x00", 19);
    rc = image_load_color(&img, fixture_path("c.ppm"), 1, &e);
    CHECK(rc == 0 && img.pixels[0] == 255 && img.pixels[1] == 1 && img.pixels[2] == 128, "P6 16-bit: %s",
          rc ? e.msg : "");
    if (!rc) image_free(&img);
    fixture_write_file(fixture_path("d.ppm"), "P6\n2 1\n255\n\x0a\xc8\x1e\xff", 15);
    CHECK(image_load_color(&img, fixture_path("d.ppm"), 1, &e) == -1 && strstr(e.msg, "d.ppm: PPM truncated"),
          "truncated P6: %s", e.msg);
}

/* ---- PNG in colour ----------------------------------------------------------------------- */

/* Loads name in colour and compares its interleaved RGB pixels with want. */
static void expect_rgb(const char *name, const uint8_t *want, uint32_t h, uint32_t w, const char *what) {
    Image img;
    Err e;
    int rc = image_load_color(&img, fixture_path(name), 1, &e);
    CHECK(rc == 0 && img.channels == 3 && img.height == h && img.width == w &&
              !memcmp(img.pixels, want, (size_t)h * w * 3),
          "%s: %s", what, rc ? e.msg : "pixels differ");
    if (!rc) image_free(&img);
}

static void test_png_rgb(void) {
    /* 8-bit RGB, 2x2, two filter-friendly rows. */
    uint8_t rgb[12] = {10, 20, 30, 40, 50, 60, 255, 0, 128, 1, 2, 3};
    fixture_write_png(fixture_path("rgb.png"), 2, 2, 8, PNG_COLOR_TYPE_RGB, 0, rgb, 6, NULL, 0);
    expect_rgb("rgb.png", rgb, 2, 2, "8-bit RGB as stored");
    /* RGBA: alpha dropped, not composited (a transparent pixel keeps its colour). */
    uint8_t rgba[8] = {200, 100, 50, 0, 7, 8, 9, 255};
    fixture_write_png(fixture_path("rgba3.png"), 2, 1, 8, PNG_COLOR_TYPE_RGBA, 0, rgba, 8, NULL, 0);
    expect_rgb("rgba3.png", (const uint8_t[]){200, 100, 50, 7, 8, 9}, 1, 2, "RGBA: alpha dropped");
    /* 16-bit RGB: multiples of 257 scale exactly, 257 k -> k. */
    uint8_t r16[6] = {0xff, 0xff, 0x01, 0x01, 0x80, 0x80}; /* 65535, 257, 32896 */
    fixture_write_png(fixture_path("rgb16.png"), 1, 1, 16, PNG_COLOR_TYPE_RGB, 0, r16, 6, NULL, 0);
    expect_rgb("rgb16.png", (const uint8_t[]){255, 1, 128}, 1, 1, "16-bit RGB to 8 bits");
    /* 4-bit palette: indices 0 1 2 3 give the palette's colours. */
    png_color pal[4] = {{255, 255, 255}, {0, 0, 0}, {9, 90, 200}, {1, 2, 3}};
    uint8_t p4[2] = {0x01, 0x23};
    fixture_write_png(fixture_path("pal4.png"), 4, 1, 4, PNG_COLOR_TYPE_PALETTE, 0, p4, 2, pal, 4);
    expect_rgb("pal4.png", (const uint8_t[]){255, 255, 255, 0, 0, 0, 9, 90, 200, 1, 2, 3}, 1, 4,
               "palette PNG: its colours");
    /* 2-bit grey: 0 1 2 3 scale to 0 85 170 255, replicated to R = G = B. */
    uint8_t g2[1] = {0x1b};
    fixture_write_png(fixture_path("g2.png"), 4, 1, 2, PNG_COLOR_TYPE_GRAY, 0, g2, 1, NULL, 0);
    expect_rgb("g2.png", (const uint8_t[]){0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255}, 1, 4,
               "2-bit grey scaled and replicated");
    /* grey + alpha: the grey replicated, alpha dropped. */
    uint8_t ga[4] = {33, 0, 66, 255};
    fixture_write_png(fixture_path("ga3.png"), 2, 1, 8, PNG_COLOR_TYPE_GRAY_ALPHA, 0, ga, 4, NULL, 0);
    expect_rgb("ga3.png", (const uint8_t[]){33, 33, 33, 66, 66, 66}, 1, 2, "grey + alpha replicated");
    /* interlaced RGB 8x8: the pixels of the non-interlaced file. */
    uint8_t il[8 * 24];
    for (int i = 0; i < 8 * 24; i++) il[i] = (uint8_t)(i * 7 + 3);
    fixture_write_png(fixture_path("il3.png"), 8, 8, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7, il, 24, NULL,
                      0);
    expect_rgb("il3.png", il, 8, 8, "interlaced RGB");
}

/* ---- masks -------------------------------------------------------------------------- */

/* Loads a mask and compares it with want (n pixels). */
static void expect_mask(const char *name, const uint8_t *want, size_t n, const char *what) {
    Image m;
    Err e;
    int rc = image_load_mask(&m, fixture_path(name), &e);
    CHECK(rc == 0 && m.channels == 1 && (size_t)m.height * m.width == n && !memcmp(m.pixels, want, n),
          "%s: %s", what, rc ? e.msg : "values differ");
    if (!rc) image_free(&m);
}

static void test_mask_decode(void) {
    /* 4x1 palette, 2 bits: indices 0 1 2 3; entry 0 is white, 1 black: by index. */
    png_color pal[4] = {{255, 255, 255}, {0, 0, 0}, {9, 9, 9}, {0, 0, 0}};
    uint8_t p2[1] = {0x1b}; /* 00 01 10 11 */
    fixture_write_png(fixture_path("pal.png"), 4, 1, 2, PNG_COLOR_TYPE_PALETTE, 0, p2, 1, pal, 4);
    expect_mask("pal.png", (const uint8_t[]){0, 1, 1, 1}, 4, "palette PNG by index, not colour");
    uint8_t g1[2] = {0x60, 0x80}; /* 8x2, 1 bit: 0110 0000 / 1000 0000 */
    fixture_write_png(fixture_path("g1.png"), 8, 2, 1, PNG_COLOR_TYPE_GRAY, 0, g1, 1, NULL, 0);
    expect_mask("g1.png", (const uint8_t[]){0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}, 16,
                "1-bit grey");
    uint8_t g16[6] = {0, 1, 1, 0, 0, 0}; /* 3x1, 16-bit big-endian: 1, 256, 0 */
    fixture_write_png(fixture_path("g16.png"), 3, 1, 16, PNG_COLOR_TYPE_GRAY, 0, g16, 6, NULL, 0);
    expect_mask("g16.png", (const uint8_t[]){1, 1, 0}, 3, "16-bit grey: 1 and 256 are object");
    uint8_t rgba[8] = {0, 0, 0, 255, 0, 0, 1, 0}; /* opaque black, transparent (0, 0, 1) */
    fixture_write_png(fixture_path("rgba.png"), 2, 1, 8, PNG_COLOR_TYPE_RGBA, 0, rgba, 8, NULL, 0);
    expect_mask("rgba.png", (const uint8_t[]){0, 1}, 2, "RGBA: colour counts, alpha does not");
    uint8_t ga[4] = {0, 200, 5, 0};
    fixture_write_png(fixture_path("ga.png"), 2, 1, 8, PNG_COLOR_TYPE_GRAY_ALPHA, 0, ga, 4, NULL, 0);
    expect_mask("ga.png", (const uint8_t[]){0, 1}, 2, "grey + alpha");
    uint8_t il[8 * 8];
    for (int i = 0; i < 64; i++) il[i] = (uint8_t)(i % 3 == 0 ? 0 : 40);
    uint8_t want_il[64];
    for (int i = 0; i < 64; i++) want_il[i] = i % 3 != 0;
    fixture_write_png(fixture_path("il.png"), 8, 8, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_ADAM7, il, 8, NULL,
                      0);
    expect_mask("il.png", want_il, 64, "interlaced grey");
    fixture_write_file(fixture_path("m.pgm"), "P5\n3 1\n255\n\x00\xff\x01", 14);
    expect_mask("m.pgm", (const uint8_t[]){0, 1, 1}, 3, "PGM");
    fixture_write_file(fixture_path("m.ppm"), "P6\n2 1\n255\n\x00\x00\x00\x00\x00\x02", 17);
    expect_mask("m.ppm", (const uint8_t[]){0, 1}, 2, "PPM: any colour sample");
    fixture_write_file(fixture_path("m.jpg"), "\xff\xd8\xff\xe0 not really", 15);
    Image m;
    Err e;
    CHECK(image_load_mask(&m, fixture_path("m.jpg"), &e) == -1 &&
              strstr(e.msg, "m.jpg: a mask must be a PNG"),
          "JPEG mask refused: %s", e.msg);
}

/* ---- importers ------------------------------------------------------------------------- */

/* Reads sample i of path: pixels (C*H*W) and mask (H*W, if any). */
static int read_sample(const char *path, uint64_t i, uint8_t *px, uint8_t *mask, const DsMeta **meta) {
    static Dataset *ds;
    static DsMeta copy;
    Err e;
    if (ds_open(&ds, path, &e)) return -1;
    DsReader *r;
    int32_t l;
    int rc = ds_reader_open(ds, &r, &e) || ds_read(r, i, px, &l, mask, &e);
    if (!rc) ds_reader_close(r);
    copy = *ds_meta(ds);
    *meta = &copy;
    ds_close(ds);
    return rc ? -1 : 0;
}

static int import(ImportOptions o, Err *e) {
    ImportResult r;
    return import_run(&o, &r, e);
}

static void test_import_color(void) {
    ASSERT(mkdir(fixture_path("root"), 0755) == 0 && mkdir(fixture_path("root/k"), 0755) == 0);
    /* 2x1 RGB PNG, a grey PNG and a PPM of the same size. */
    uint8_t rgb[6] = {10, 20, 30, 200, 100, 0}, grey[2] = {7, 250};
    fixture_write_png(fixture_path("root/k/a.png"), 2, 1, 8, PNG_COLOR_TYPE_RGB, 0, rgb, 6, NULL, 0);
    fixture_write_png(fixture_path("root/k/b.png"), 2, 1, 8, PNG_COLOR_TYPE_GRAY, 0, grey, 2, NULL, 0);
    fixture_write_file(fixture_path("root/k/c.ppm"), "P6\n2 1\n255\n\x01\x02\x03\x04\x05\x06", 17);
    Err e;
    ImportOptions o = {
        .format = IMPORT_FOLDER, .roots = {fixture_path("root")}, .out = fixture_path("rgb.lmdb"), .color = 1};
    CHECK(import(o, &e) == 0, "%s", e.msg);
    uint8_t px[3 * 2 * 2], mask[4];
    const DsMeta *m;
    /* planes: R R, G G, B B */
    int ok = read_sample(o.out, 0, px, NULL, &m) == 0 && m->channels == 3 &&
             !memcmp(px, (const uint8_t[]){10, 200, 20, 100, 30, 0}, 6);
    ok &=
        read_sample(o.out, 1, px, NULL, &m) == 0 && !memcmp(px, (const uint8_t[]){7, 250, 7, 250, 7, 250}, 6);
    ok &= read_sample(o.out, 2, px, NULL, &m) == 0 && !memcmp(px, (const uint8_t[]){1, 4, 2, 5, 3, 6}, 6);
    CHECK(ok, "--color stores R, G, B planes as decoded (grey replicated)");
    CHECK_CLOSE(m->channel_mean[0], (10 + 200 + 7 + 250 + 1 + 4) / 6.0 / 255, 1e-7, "channel 0 mean");
    CHECK_CLOSE(m->channel_mean[2], (30 + 0 + 7 + 250 + 3 + 6) / 6.0 / 255, 1e-7, "channel 2 mean");
    o.out = fixture_path("grey.lmdb");
    o.color = 0;
    CHECK(import(o, &e) == 0, "%s", e.msg);
    CHECK(read_sample(o.out, 0, px, NULL, &m) == 0 && m->channels == 1 && px[0] == luma(10, 20, 30) &&
              px[1] == luma(200, 100, 0),
          "without --color: luma");
    /* --resize 1x1 per channel: area average, half up: (10 + 200) / 2 = 105, (20 + 100) / 2 = 60, 15 */
    o.out = fixture_path("rgb11.lmdb");
    o.color = 1;
    o.resize_h = o.resize_w = 1;
    CHECK(import(o, &e) == 0, "%s", e.msg);
    CHECK(read_sample(o.out, 0, px, NULL, &m) == 0 && px[0] == 105 && px[1] == 60 && px[2] == 15,
          "--resize averages each channel: %u %u %u", px[0], px[1], px[2]);

    /* idx in colour: three equal planes. */
    uint8_t ip[2 * 4] = {1, 2, 3, 4, 5, 6, 7, 8}, il[2] = {0, 1};
    uint32_t di[3] = {2, 2, 2}, dl[1] = {2};
    fixture_write_idx(fixture_path("i.idx"), 0, 0x803, di, 3, ip, 8, 0);
    fixture_write_idx(fixture_path("l.idx"), 0, 0x801, dl, 1, il, 2, 0);
    ImportOptions x = {.format = IMPORT_IDX,
                       .images = fixture_path("i.idx"),
                       .labels = fixture_path("l.idx"),
                       .out = fixture_path("idx.lmdb"),
                       .color = 1};
    CHECK(import(x, &e) == 0, "%s", e.msg);
    CHECK(read_sample(x.out, 1, px, NULL, &m) == 0 && m->channels == 3 &&
              !memcmp(px, (const uint8_t[]){5, 6, 7, 8, 5, 6, 7, 8, 5, 6, 7, 8}, 12),
          "idx --color: three equal planes");
    /* omniglot in colour: pixel k of drawing d of character n is (37 n + 5 d + k) & 255 in every plane;
     * sample 0 is drawing 1 of character 1. */
    const char *groups[1] = {"Greek"};
    int chars[1] = {2};
    fixture_omniglot_tree("omni", 1, groups, chars, 2, 2);
    ImportOptions g = {.format = IMPORT_OMNIGLOT,
                       .roots = {fixture_path("omni")},
                       .out = fixture_path("omni.lmdb"),
                       .color = 1};
    CHECK(import(g, &e) == 0, "%s", e.msg);
    int same = read_sample(g.out, 0, px, NULL, &m) == 0 && m->channels == 3;
    for (int c = 0; c < 3 && same; c++)
        for (int k = 0; k < 4; k++) same &= px[c * 4 + k] == ((37 + 5 + k) & 255);
    CHECK(same, "omniglot --color: the drawing in three equal planes");
    (void)mask;
}

static void test_import_masks(void) {
    Err e;
    /* Images 4x4 (grey PNG and PPM); masks: a.png palette, b.ppm's mask is
     * b.png (the .png lookup). */
    ASSERT(mkdir(fixture_path("ir"), 0755) == 0 && mkdir(fixture_path("ir/cls"), 0755) == 0);
    ASSERT(mkdir(fixture_path("mr"), 0755) == 0 && mkdir(fixture_path("mr/cls"), 0755) == 0);
    uint8_t g[16];
    for (int i = 0; i < 16; i++) g[i] = (uint8_t)(i * 16);
    fixture_write_png(fixture_path("ir/cls/a.png"), 4, 4, 8, PNG_COLOR_TYPE_GRAY, 0, g, 4, NULL, 0);
    char ppm[11 + 48];
    memcpy(ppm, "P6\n4 4\n255\n", 11);
    for (int i = 0; i < 48; i++) ppm[11 + i] = (char)i;
    fixture_write_file(fixture_path("ir/cls/b.ppm"), ppm, sizeof ppm);
    /* Mask a (palette indices; quadrants of 2x2): top-left 2 of 4 set, top-right
     * 1 of 4, bottom-left 3 of 4, bottom-right 0. */
    uint8_t ma[16] = {1, 0, 1, 0, /* */ 2, 0, 0, 0, /* */ 1, 1, 0, 0, /* */ 0, 3, 0, 0};
    png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
    fixture_write_png(fixture_path("mr/cls/a.png"), 4, 4, 8, PNG_COLOR_TYPE_PALETTE, 0, ma, 4, pal, 4);
    uint8_t mb[16] = {0};
    mb[5] = 255;
    fixture_write_png(fixture_path("mr/cls/b.png"), 4, 4, 8, PNG_COLOR_TYPE_GRAY, 0, mb, 4, NULL, 0);
    ImportOptions o = {.format = IMPORT_FOLDER,
                       .roots = {fixture_path("ir")},
                       .out = fixture_path("mk.lmdb"),
                       .masks = fixture_path("mr"),
                       .color = 1};
    CHECK(import(o, &e) == 0, "%s", e.msg);
    uint8_t px[3 * 16], mask[16];
    const DsMeta *m;
    int rc = read_sample(o.out, 0, px, mask, &m);
    uint8_t want_a[16] = {1, 0, 1, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0};
    CHECK(rc == 0 && m->has_masks && !memcmp(mask, want_a, 16), "palette mask stored 0/1 by index");
    uint8_t want_b[16] = {0};
    want_b[5] = 1;
    CHECK(read_sample(o.out, 1, px, mask, &m) == 0 && !memcmp(mask, want_b, 16) && px[0] == 0 && px[16] == 1,
          "b.ppm takes its mask from b.png");

    /* --resize 2x2: a quadrant is object when at least half of it is. */
    o.out = fixture_path("mk2.lmdb");
    o.resize_h = o.resize_w = 2;
    CHECK(import(o, &e) == 0, "%s", e.msg);
    CHECK(read_sample(o.out, 0, px, mask, &m) == 0 && !memcmp(mask, (const uint8_t[]){1, 0, 1, 0}, 4),
          "majority: 2 of 4 -> 1, 1 of 4 -> 0, 3 of 4 -> 1, 0 -> 0: %u %u %u %u", mask[0], mask[1], mask[2],
          mask[3]);
    o.resize_h = o.resize_w = 0;

    /* A mis-sized mask and a missing one: one line naming the files. */
    uint8_t small[9] = {0};
    fixture_write_png(fixture_path("mr/cls/b.png"), 3, 3, 8, PNG_COLOR_TYPE_GRAY, 0, small, 3, NULL, 0);
    o.out = fixture_path("bad1.lmdb");
    CHECK(import(o, &e) == -1 && strstr(e.msg, "mr/cls/b.png: mask is 3x3 (HxW) but its image") &&
              strstr(e.msg, "ir/cls/b.ppm is 4x4") && !strchr(e.msg, '\n'),
          "mis-sized mask: %s", e.msg);
    CHECK(!fixture_exists(o.out), "nothing written");
    unlink(fixture_path("mr/cls/b.png"));
    o.out = fixture_path("bad2.lmdb");
    CHECK(import(o, &e) == -1 && strstr(e.msg, "ir/cls/b.ppm: no mask for this image: expected") &&
              strstr(e.msg, "mr/cls/b.png"),
          "missing mask: %s", e.msg);
    CHECK(!fixture_exists(o.out) && !fixture_leftover_tmp(), "nothing written, no temporary left");
    ImportOptions bad = {.format = IMPORT_OMNIGLOT,
                         .roots = {fixture_path("ir")},
                         .out = fixture_path("bad3.lmdb"),
                         .masks = fixture_path("mr")};
    CHECK(import(bad, &e) == -1 && strstr(e.msg, "--masks goes with --format folder"), "%s", e.msg);
    bad.format = IMPORT_FOLDER;
    bad.masks = fixture_path("nowhere");
    CHECK(import(bad, &e) == -1 && strstr(e.msg, "nowhere: the --masks directory does not exist"), "%s",
          e.msg);
}

/* ---- per-channel statistics ---------------------------------------------------------------- */

/* Mean and population std of pixel / 255, per channel and over all channels,
 * by a naive two-pass loop over every sample of the dataset at path; checks
 * the dataset's meta against them. */
static void expect_stats(const char *path, const char *what) {
    Dataset *ds;
    Err e;
    ASSERT(ds_open(&ds, path, &e) == 0);
    const DsMeta *m = ds_meta(ds);
    uint32_t C = m->channels;
    size_t plane = (size_t)m->height * m->width, n = (size_t)m->count;
    uint8_t *all = xmalloc(n * C * plane);
    DsReader *r;
    ASSERT(ds_reader_open(ds, &r, &e) == 0);
    int32_t l;
    for (size_t i = 0; i < n; i++) ASSERT(ds_read(r, i, all + i * C * plane, &l, NULL, &e) == 0);
    ds_reader_close(r);
    double tot_mean = 0, tot_var = 0;
    for (uint32_t c = 0; c <= C; c++) { /* c = C: every channel at once */
        double s = 0, q = 0, cnt = 0;
        for (size_t i = 0; i < n; i++)
            for (uint32_t k = 0; k < C; k++)
                if (k == c || c == C)
                    for (size_t p = 0; p < plane; p++) s += all[(i * C + k) * plane + p] / 255.0, cnt++;
        double mean = s / cnt;
        for (size_t i = 0; i < n; i++)
            for (uint32_t k = 0; k < C; k++)
                if (k == c || c == C)
                    for (size_t p = 0; p < plane; p++) {
                        double d = all[(i * C + k) * plane + p] / 255.0 - mean;
                        q += d * d;
                    }
        if (c == C) {
            tot_mean = mean, tot_var = q / cnt;
            break;
        }
        CHECK_CLOSE(m->channel_mean[c], mean, 1e-6, what);
        CHECK_CLOSE(m->channel_std[c], sqrt(q / cnt), 1e-6, what);
    }
    CHECK_CLOSE(m->mean, tot_mean, 1e-6, what);
    CHECK_CLOSE(m->std, sqrt(tot_var), 1e-6, what);
    free(all);
    ds_close(ds);
}

static void test_channel_stats(void) {
    /* 3 classes x 5 PPM images of 5x7 with channels of different ranges: R
     * 0..255, G 100..149, B 0..9 (so a per-channel slip shows). */
    ASSERT(mkdir(fixture_path("st"), 0755) == 0);
    uint32_t s = 12345;
    for (int c = 0; c < 3; c++) {
        char dir[64];
        snprintf(dir, sizeof dir, "st/c%d", c);
        ASSERT(mkdir(fixture_path(dir), 0755) == 0);
        for (int k = 0; k < 5; k++) {
            char ppm[11 + 105];
            memcpy(ppm, "P6\n7 5\n255\n", 11);
            for (int i = 0; i < 35; i++)
                for (int ch = 0; ch < 3; ch++) {
                    s = s * 1103515245u + 12345u;
                    uint32_t v = s >> 16;
                    ppm[11 + i * 3 + ch] = (char)(ch == 0 ? v & 255 : ch == 1 ? 100 + v % 50 : v % 10);
                }
            char name[64];
            snprintf(name, sizeof name, "st/c%d/%d.ppm", c, k);
            fixture_write_file(fixture_path(name), ppm, sizeof ppm);
        }
    }
    Err e;
    ImportOptions o = {.format = IMPORT_FOLDER,
                       .roots = {fixture_path("st")},
                       .out = fixture_path("st-tr.lmdb"),
                       .test_out = fixture_path("st-te.lmdb"),
                       .split = IMPORT_SPLIT_SAMPLE,
                       .test_fraction = 0.4,
                       .seed = 5,
                       .color = 1};
    CHECK(import(o, &e) == 0, "%s", e.msg);
    expect_stats(o.out, "training set, per channel against a naive loop");
    expect_stats(o.test_out, "test set, its own statistics");
    o.out = fixture_path("st-grey.lmdb");
    o.test_out = NULL, o.split = IMPORT_SPLIT_NONE, o.color = 0;
    CHECK(import(o, &e) == 0, "%s", e.msg);
    expect_stats(o.out, "grey (luma), one channel");
}

/* eval_embed on a colour dataset: each embedding is the network run on that
 * sample alone, normalised per channel by a naive loop. */
static void test_eval_rgb(void) {
    Config c;
    Model m;
    Err e;
    ASSERT(
        config_parse_text(&c,
                          "[data]\ntrain = x\n[conv2d]\nfilters = 3\nsize = 3\n[relu]\n[flatten]\n[linear]\n"
                          "out = 4\n",
                          "t.ini", &e) == 0);
    Dataset *ds;
    ASSERT(ds_open(&ds, fixture_path("st-tr.lmdb"), &e) == 0);
    const DsMeta *dm = ds_meta(ds);
    int C = (int)dm->channels, H = (int)dm->height, W = (int)dm->width, per = C * H * W;
    ASSERT(C == 3 && model_build(&m, &c.model, "t.ini", C, H, W, 16, &e) == 0);
    model_init(&m, 1, 9);
    Norm n = {.channels = 3, .mean = {0.5f, 0.49f, 0.02f}, .std = {0.29f, 0.06f, 0.011f}};
    float *E = eval_embed(&m, ds, &n, &e);
    CHECK(E != NULL, "eval_embed: %s", e.msg);
    DsReader *r;
    ASSERT(ds_reader_open(ds, &r, &e) == 0);
    uint8_t *px = xmalloc((size_t)per);
    float *x = xmalloc(sizeof(float) * (size_t)per), worst = 0;
    for (uint64_t i = 0; E && i < dm->count; i++) {
        int32_t l;
        ASSERT(ds_read(r, i, px, &l, NULL, &e) == 0);
        for (int k = 0; k < per; k++) x[k] = (px[k] / 255.0f - n.mean[k / (H * W)]) / n.std[k / (H * W)];
        const float *y = model_embed(&m, x, 1);
        for (int d = 0; d < m.emb_dim; d++) worst = fmaxf(worst, fabsf(y[d] - E[i * (size_t)m.emb_dim + d]));
    }
    CHECK(E && worst < 1e-5f, "eval embeddings of 3-channel samples equal one-by-one forwards (max diff %g)",
          worst);
    ds_reader_close(r);
    free(px), free(x), free(E);
    model_free(&m);
    ds_close(ds);
}

/* ---- normalisation ---------------------------------------------------------------------- */

static void test_norm(void) {
    float v[NORM_MAX_CHANNELS];
    CHECK(norm_parse_list("0.5", 0, 1, v) == 1 && v[0] == 0.5f, "one number");
    CHECK(norm_parse_list("0.1,0.2,0.3", 0, 1, v) == 3 && v[2] == 0.3f, "three");
    CHECK(norm_parse_list("0.1,,0.3", 0, 1, v) == -1 && norm_parse_list("0.1,", 0, 1, v) == -1 &&
              norm_parse_list("", 0, 1, v) == -1 && norm_parse_list("2", 0, 1, v) == -1 &&
              norm_parse_list("0.1, 0.2", 0, 1, v) == -1,
          "malformed lists refused");
    CHECK(norm_parse_list("0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0", 0, 1, v) == 16 &&
              norm_parse_list("0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0", 0, 1, v) == -1,
          "16 values at most");
    Norm n;
    Err e;
    const float dm[3] = {0.1f, 0.2f, 0.3f}, ds[3] = {0.5f, 0.f, 0.25f};
    CHECK(norm_resolve(&n, "0", "0", 3, dm, ds, "t.ini", &e) == 0 && n.channels == 3 && n.mean[1] == 0.2f &&
              n.std[0] == 0.5f && n.std[1] == 1.0f && n.std[2] == 0.25f,
          "0: the dataset's, a constant channel's std 0 becomes 1");
    CHECK(norm_resolve(&n, "0.5", "0.2", 3, dm, ds, "t.ini", &e) == 0 && n.mean[0] == 0.5f &&
              n.mean[2] == 0.5f && n.std[1] == 0.2f,
          "one number: every channel");
    CHECK(norm_resolve(&n, "0.4,0.5,0.6", "1,2,3", 3, dm, ds, "t.ini", &e) == 0 && n.mean[2] == 0.6f &&
              n.std[1] == 2.0f,
          "one per channel");
    CHECK(norm_resolve(&n, "0.4,0.5", "0", 3, dm, ds, "t.ini", &e) == -1 &&
              strstr(e.msg, "t.ini: [data] mean = '0.4,0.5'") && strstr(e.msg, "or 3 comma-separated"),
          "two means for three channels: %s", e.msg);
    CHECK(norm_resolve(&n, "0", "1,0,1", 3, dm, ds, "t.ini", &e) == -1 &&
              strstr(e.msg, "channel 1 has std 0"),
          "a std of 0: %s", e.msg);
    /* x = (v / 255 - mean) / std per plane */
    uint8_t px[4] = {0, 255, 51, 102};
    float x[4];
    norm_resolve(&n, "0.2,0.4", "0.5,0.2", 2, dm, ds, "t.ini", &e);
    norm_apply(x, px, &n, 2);
    CHECK(x[0] == (0.0f - 0.2f) / 0.5f && x[1] == (1.0f - 0.2f) / 0.5f &&
              x[2] == (51 / 255.0f - 0.4f) / 0.2f && x[3] == (102 / 255.0f - 0.4f) / 0.2f,
          "norm_apply per channel: %g %g %g %g", x[0], x[1], x[2], x[3]);
    Norm one, in3 = {.channels = 3, .mean = {0.1f, 0.2f, 0.3f}, .std = {1, 2, 3}};
    norm_uniform(&one, 1, 0.25f, 0.5f);
    CHECK(norm_fit(&n, &one, 3, "c", &e) == 0 && n.channels == 3 && n.mean[2] == 0.25f && n.std[1] == 0.5f,
          "a grey checkpoint's single values apply to every channel");
    CHECK(norm_fit(&n, &in3, 3, "c", &e) == 0 && n.mean[1] == 0.2f && n.std[2] == 3.0f, "per channel");
    CHECK(norm_fit(&n, &in3, 2, "c.smpi", &e) == -1 &&
              strstr(e.msg, "c.smpi: its normalisation has 3 values"),
          "3 values for 2 channels: %s", e.msg);
    /* The checkpoint state: lists, as many means as stds, each in range. */
    char st[512];
    const char *head = "format=1\nstep=4\nepoch=1\nstep_in_epoch=0\nopt_t=4\nworld=1\nseed=1\ntotal_steps=8\n"
                       "steps_per_epoch=4\n";
    TrainState ts;
    snprintf(st, sizeof st, "%smean=0.1,0.2,0.3\nstd=1,2,3\n", head);
    CHECK(train_state_parse(st, strlen(st), &ts, &e) == 0 && ts.norm.channels == 3 && ts.norm.std[2] == 3.0f,
          "a state with three channels: %s", e.msg);
    snprintf(st, sizeof st, "%smean=0.1,0.2\nstd=1,2,3\n", head);
    CHECK(train_state_parse(st, strlen(st), &ts, &e) == -1 && strstr(e.msg, "hold 2 and 3 numbers"), "%s",
          e.msg);
    snprintf(st, sizeof st, "%smean=0.1,0.2,0.3\nstd=1,0,3\n", head);
    CHECK(train_state_parse(st, strlen(st), &ts, &e) == -1 && strstr(e.msg, "state std=1,0,3 is outside"),
          "%s", e.msg);
    char buf[64];
    const float three[3] = {0.1f, 0.25f, 1.0f / 3};
    norm_format(buf, sizeof buf, three, 3);
    CHECK(norm_parse_list(buf, 0, 1, v) == 3 && v[0] == three[0] && v[2] == three[2], "format reads back: %s",
          buf);

    /* The config keys. */
    Config c;
    const char *base = "[data]\ntrain = x\nmean = 0.5,0.4,0.3\nstd = 0.2\n[conv2d]\nfilters = 2\nsize = 1\n";
    CHECK(config_parse_text(&c, base, "t.ini", &e) == 0 && config_validate(&c, &e) == 0 &&
              !strcmp(c.data_mean, "0.5,0.4,0.3"),
          "a per-channel mean: %s", e.msg);
    char *text = config_to_text(&c);
    Config c2;
    CHECK(config_parse_text(&c2, text, "canon", &e) == 0 && !strcmp(c2.data_mean, "0.5,0.4,0.3") &&
              !strcmp(c2.data_std, "0.2"),
          "canonical text keeps the lists");
    free(text);
    CHECK(config_parse_text(&c, "[data]\ntrain = x\nmean = 0.5;0.4\n[conv2d]\nfilters = 2\nsize = 1\n",
                            "t.ini", &e) == -1 ||
              (config_validate(&c, &e) == -1 && strstr(e.msg, "[data] mean = '0.5;0.4'")),
          "a malformed mean refused: %s", e.msg);
    ASSERT(config_parse_text(&c, base, "t.ini", &e) == 0);
    CHECK(config_set(&c, "data.std=1,x", &e) == -1 ||
              (config_validate(&c, &e) == -1 && strstr(e.msg, "[data] std = '1,x'")),
          "a malformed std refused: %s", e.msg);
}

int main(void) {
    fixture_dir_create("color");
    test_ppm();
    test_png_rgb();
    test_mask_decode();
    test_import_color();
    test_import_masks();
    test_channel_stats();
    test_eval_rgb();
    test_norm();
    CHECK(!fixture_leftover_tmp(), "no .tmp-* left in %s", fixture_dir());
    fixture_rm_tree(fixture_dir());
    return test_finish();
}
