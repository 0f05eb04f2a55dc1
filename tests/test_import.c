/* test_import: the importers through import_run (what `siamese import`
 * calls): idx input errors, the seeded train/test splits, folder import of
 * PGM (P5, P2, 16-bit) and PNG (1/2/16-bit grey, RGB, RGBA, grey+alpha,
 * palette, interlaced; written here with libpng), Omniglot layout, folder
 * errors, and image_resize against hand values and a double reference. */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../io/dataset.h"
#include "../io/image.h"
#include "../io/import.h"
#include "fixture_files.h"
#include "fixture_import.h"
#include "fixture_png.h"
#include "test.h"

enum { N = 300, H = 12, W = 10, K = 7 };
static uint8_t px[N][H * W];
static uint8_t lab[N];

static void make_source(void) {
    Rng r;
    rng_seed(&r, 43, RNG_TEST, 0);
    for (int i = 0; i < N; i++) {
        lab[i] = (uint8_t)(i < K ? (uint64_t)i : rng_below(&r, K));
        for (int j = 0; j < H * W; j++) px[i][j] = (uint8_t)rng_below(&r, 256); /* unique images */
    }
    uint32_t di[3] = {N, H, W}, dl[1] = {N};
    fixture_write_idx(fixture_path("img.idx"), 0, 0x803, di, 3, &px[0][0], sizeof px, 0);
    fixture_write_idx(fixture_path("lab.idx"), 0, 0x801, dl, 1, lab, N, 0);
}

static int find_source(const uint8_t *p) {
    for (int i = 0; i < N; i++)
        if (!memcmp(px[i], p, H * W)) return i;
    return -1;
}

/* ---- idx errors ------------------------------------------------------------ */

static void test_idx_errors(void) {
    uint32_t di[3] = {N, H, W}, dl[1] = {N}, dl2[1] = {N - 1};
    ImportOptions o = {.format = IMPORT_IDX,
                       .out = fixture_path("bad.lmdb"),
                       .images = fixture_path("img.idx"),
                       .labels = fixture_path("lab.idx")};
    o.images = fixture_path("missing.idx");
    expect_fail(&o, "missing.idx", "missing file");
    o.images = fixture_path("lab.idx"), o.labels = fixture_path("img.idx");
    expect_fail(&o, "img.idx", "swapped files (wrong magic)");
    fixture_write_idx(fixture_path("trunc.idx"), 0, 0x803, di, 3, &px[0][0], sizeof px, 5);
    o.images = fixture_path("trunc.idx"), o.labels = fixture_path("lab.idx");
    expect_fail(&o, "trunc.idx", "truncated images");
    fixture_write_idx(fixture_path("trunc.idx.gz"), 1, 0x803, di, 3, &px[0][0], sizeof px, 5);
    o.images = fixture_path("trunc.idx.gz");
    expect_fail(&o, "trunc.idx.gz", "truncated gzip images");
    uint8_t lab1[N + 1] = {0};
    memcpy(lab1, lab, N);
    fixture_write_idx(fixture_path("long.idx"), 0, 0x801, dl, 1, lab1, N + 1,
                      0); /* N + 1 labels, header says N */
    o.images = fixture_path("img.idx"), o.labels = fixture_path("long.idx");
    expect_fail(&o, "long.idx", "labels longer than the header");
    fixture_write_idx(fixture_path("short.idx"), 0, 0x801, dl2, 1, lab, N - 1, 0);
    o.labels = fixture_path("short.idx");
    expect_fail(&o, "short.idx", "count mismatch");
    fixture_write_idx(fixture_path("tlab.idx"), 0, 0x801, dl, 1, lab, N, 1);
    o.labels = fixture_path("tlab.idx");
    expect_fail(&o, "tlab.idx", "truncated labels");
    fixture_write_file(fixture_path("hdr.idx"), "\0\0\x08\x03\0\0", 6);
    o.images = fixture_path("hdr.idx"), o.labels = fixture_path("lab.idx");
    expect_fail(&o, "hdr.idx", "truncated header");
    /* Over an existing dataset: refused, the existing one untouched. */
    Err e;
    ImportResult r;
    o.images = fixture_path("img.idx"), o.out = fixture_path("exists.lmdb");
    CHECK(import_run(&o, &r, &e) == 0, "%s", e.msg);
    o.images = fixture_path("missing.idx");
    CHECK(import_run(&o, &r, &e) == -1 && strstr(e.msg, "exists.lmdb") && strstr(e.msg, "already exists"),
          "import over an existing dataset: %s", e.msg);
    Dataset *ds;
    CHECK(ds_open(&ds, fixture_path("exists.lmdb"), &e) == 0 && ds_meta(ds)->count == N,
          "existing dataset unchanged");
    ds_close(ds);
}

/* ---- idx int32 labels (0x00000c01): any class count ----------------------- */

static void test_idx_int_labels(void) {
    enum { M = N }; /* 300 samples: labels 0..298, so 299 classes, more than bytes hold */
    uint32_t want[M];
    for (int i = 0; i < M; i++) want[i] = i < M - 1 ? (uint32_t)i : 298;
    uint8_t wide[4 * M];
    for (int i = 0; i < M; i++) fixture_put_be32(wide + 4 * i, want[i]);
    uint32_t di[3] = {M, H, W}, dl[1] = {M};
    fixture_write_idx(fixture_path("img4.idx"), 0, 0x803, di, 3, &px[0][0], (size_t)M * H * W, 0);
    fixture_write_idx(fixture_path("lab4.idx"), 0, 0xc01, dl, 1, wide, sizeof wide, 0);
    ImportOptions o = {.format = IMPORT_IDX,
                       .out = fixture_path("wide.lmdb"),
                       .images = fixture_path("img4.idx"),
                       .labels = fixture_path("lab4.idx")};
    Err e;
    ImportResult r;
    CHECK(import_run(&o, &r, &e) == 0, "int32 labels: %s", e.msg);
    Dataset *ds;
    if (ds_open(&ds, o.out, &e)) {
        CHECK(0, "%s", e.msg);
        return;
    }
    CHECK(ds_meta(ds)->classes == 299 && ds_meta(ds)->count == M, "299 classes, %u", ds_meta(ds)->classes);
    DsReader *rd;
    ds_reader_open(ds, &rd, &e);
    int ok = 1;
    for (int i = 0; i < M; i++) {
        uint8_t got[H * W];
        int32_t l;
        char name[16];
        snprintf(name, sizeof name, "%u", want[i]);
        if (ds_read(rd, (uint64_t)i, got, &l, NULL, &e) || (uint32_t)l != want[i] ||
            memcmp(got, px[i], H * W) || strcmp(ds_class_name(ds, (uint32_t)l), name))
            ok = 0;
    }
    CHECK(ok, "int32 labels: every sample's pixels, label and class name");
    uint32_t n;
    ds_class_ids(ds, 298, &n);
    CHECK(n == 2, "class 298 holds 2 samples, got %u", n);
    ds_reader_close(rd);
    ds_close(ds);
    /* A label past max(256, samples) is refused naming the sample (a few
     * labels must not ask for millions of classes); the byte reader of the
     * benchmarks refuses labels over 255. */
    fixture_put_be32(wide + 4, 300);
    fixture_write_idx(fixture_path("lab4big.idx"), 0, 0xc01, dl, 1, wide, sizeof wide, 0);
    o.out = fixture_path("wide2.lmdb"), o.labels = fixture_path("lab4big.idx");
    expect_fail(&o, "label 300 of sample 1 is outside 0..299", "int32 label past the samples");
    fixture_put_be32(wide + 4, 15400961);
    fixture_write_idx(fixture_path("lab4big.idx"), 0, 0xc01, dl, 1, wide, sizeof wide, 0);
    expect_fail(&o, "label 15400961 of sample 1 is outside 0..299", "int32 label of the fuzz finding");
    IdxSet set;
    CHECK(import_idx_load(&set, fixture_path("img4.idx"), fixture_path("lab4.idx"), &e) == -1 &&
              strstr(e.msg, "label 256 of sample 256 does not fit"),
          "import_idx_load: %s", e.msg);
}

/* ---- splits ------------------------------------------------------------------ */

/* Loads a dataset: source index and label name of every sample. */
static int load(const char *path, int *src, char names[][8], uint32_t *classes) {
    Dataset *ds;
    Err e;
    if (ds_open(&ds, path, &e)) {
        CHECK(0, "%s", e.msg);
        return 0;
    }
    DsReader *r;
    ds_reader_open(ds, &r, &e);
    int n = (int)ds_meta(ds)->count;
    *classes = ds_meta(ds)->classes;
    for (int i = 0; i < n; i++) {
        uint8_t got[H * W];
        int32_t l;
        src[i] = ds_read(r, (uint64_t)i, got, &l, NULL, &e) ? -2 : find_source(got);
        snprintf(names[i], 8, "%s", ds_class_name(ds, (uint32_t)l));
    }
    ds_reader_close(r);
    ds_close(ds);
    return n;
}

static void test_splits(void) {
    static int src[2][N];
    static char names[2][N][8];
    uint32_t classes[2];
    Err e;
    ImportResult res;
    for (int by = 0; by < 2; by++) {
        char a[32], b[32], a2[32], b2[32];
        snprintf(a, sizeof a, "s%d_train.lmdb", by), snprintf(b, sizeof b, "s%d_test.lmdb", by);
        snprintf(a2, sizeof a2, "s%d_train2.lmdb", by), snprintf(b2, sizeof b2, "s%d_test2.lmdb", by);
        ImportOptions o = {.format = IMPORT_IDX,
                           .out = fixture_path(a),
                           .images = fixture_path("img.idx"),
                           .labels = fixture_path("lab.idx"),
                           .split = by ? IMPORT_SPLIT_SAMPLE : IMPORT_SPLIT_CLASS,
                           .test_fraction = 0.3,
                           .test_out = fixture_path(b),
                           .seed = 5};
        CHECK(import_run(&o, &res, &e) == 0, "split: %s", e.msg);
        int n0 = load(fixture_path(a), src[0], names[0], &classes[0]),
            n1 = load(fixture_path(b), src[1], names[1], &classes[1]);
        int seen[N] = {0}, ok = 1, order = 1;
        for (int d = 0; d < 2; d++)
            for (int i = 0; i < (d ? n1 : n0); i++) {
                int s = src[d][i];
                ok &= s >= 0 && !seen[s] && atoi(names[d][i]) == lab[s];
                if (s >= 0) seen[s] = d + 1;
                order &= i == 0 || s > src[d][i - 1];
            }
        CHECK(ok && n0 + n1 == N, "split by %s: disjoint, complete, names kept (%d + %d)",
              by ? "sample" : "class", n0, n1);
        CHECK(order, "split keeps the source order");
        if (by == 0) {
            /* round(0.3 * 7) = 2 whole classes in test, none shared. */
            int where[K] = {0}, mixed = 0;
            for (int s = 0; s < N; s++) {
                if (where[lab[s]] && where[lab[s]] != seen[s]) mixed = 1;
                where[lab[s]] = seen[s];
            }
            int ntest = 0;
            for (int c = 0; c < K; c++) ntest += where[c] == 2;
            CHECK(!mixed && ntest == 2 && classes[1] == 2 && classes[0] == 5,
                  "whole classes move: %d test classes", ntest);
            /* Relabelled 0..n-1 in source label order: names ascend. */
            Dataset *ds;
            ds_open(&ds, fixture_path(a), &e);
            int asc = 1;
            for (uint32_t c = 1; c < ds_meta(ds)->classes; c++)
                asc &= atoi(ds_class_name(ds, c)) > atoi(ds_class_name(ds, c - 1));
            ds_close(ds);
            CHECK(asc, "classes renumbered in source order");
        } else {
            int per[K][2] = {{0}};
            for (int s = 0; s < N; s++) per[lab[s]][seen[s] - 1]++;
            int ok2 = classes[0] == K && classes[1] == K;
            for (int c = 0; c < K; c++) {
                int nc = per[c][0] + per[c][1];
                ok2 &= per[c][1] == (int)(0.3 * nc + 0.5) && per[c][0] >= 1;
            }
            CHECK(ok2, "split by sample: round(0.3 n_c) of every class in test, labels kept");
        }
        /* Same seed: the same split; another seed: another one. */
        o.out = fixture_path(a2), o.test_out = fixture_path(b2);
        CHECK(import_run(&o, &res, &e) == 0, "%s", e.msg);
        static int src2[N];
        static char names2[N][8];
        uint32_t c2;
        int m1 = load(fixture_path(b2), src2, names2, &c2);
        CHECK(m1 == n1 && !memcmp(src2, src[1], sizeof(int) * (size_t)n1),
              "split is deterministic for a seed");
        char a3[32], b3[32];
        snprintf(a3, sizeof a3, "s%d_train3.lmdb", by), snprintf(b3, sizeof b3, "s%d_test3.lmdb", by);
        o.out = fixture_path(a3), o.test_out = fixture_path(b3), o.seed = 6;
        CHECK(import_run(&o, &res, &e) == 0, "%s", e.msg);
        m1 = load(fixture_path(b3), src2, names2, &c2);
        CHECK(m1 != n1 || memcmp(src2, src[1], sizeof(int) * (size_t)n1), "another seed, another split");
    }
    ImportOptions o = {.format = IMPORT_IDX,
                       .out = fixture_path("sx.lmdb"),
                       .images = fixture_path("img.idx"),
                       .labels = fixture_path("lab.idx"),
                       .split = IMPORT_SPLIT_SAMPLE,
                       .test_fraction = 0.001,
                       .test_out = fixture_path("sy.lmdb"),
                       .seed = 5};
    expect_fail(&o, "empty", "a split with an empty test part");
}

/* ---- images --------------------------------------------------------------------- */

enum { IH = 9, IW = 7 };

static void write_png(const char *path, int depth, int ctype, int interlace, const uint8_t *rows,
                      size_t rowbytes, const png_color *pal, int npal) {
    fixture_write_png(path, IW, IH, depth, ctype, interlace, rows, rowbytes, pal, npal);
}

static uint8_t luma(int r, int g, int b) { return (uint8_t)((299 * r + 587 * g + 114 * b + 500) / 1000); }

/* Writes one image of every kind into dir; expected[k] gets its 8-bit grey
 * pixels, in the sorted order of the file names. Returns the count. */
static int write_images(const char *dir, uint8_t expected[][IH * IW]) {
    char path[600];
    uint8_t rows[IH * IW * 8];
    Rng r;
    rng_seed(&r, 7, RNG_TEST, 1);
    int k = 0;
#define V(bits) ((int)rng_below(&r, 1u << (bits)))
    /* a: P5 8-bit */
    memcpy(rows, "P5\n# comment\n7 9\n255\n", 21);
    for (int i = 0; i < IH * IW; i++) expected[k][i] = rows[21 + i] = (uint8_t)V(8);
    snprintf(path, sizeof path, "%s/a.pgm", dir), fixture_write_file(path, rows, 21 + IH * IW), k++;
    /* b: P2 ascii, maxval 255 */
    {
        char txt[2048];
        int n = sprintf(txt, "P2\n7 9\n255\n");
        for (int i = 0; i < IH * IW; i++)
            expected[k][i] = (uint8_t)V(8), n += sprintf(txt + n, "%d\n", expected[k][i]);
        snprintf(path, sizeof path, "%s/b.pgm", dir), fixture_write_file(path, txt, (size_t)n), k++;
    }
    /* c: P5 16-bit (v * 257 -> v) */
    memcpy(rows, "P5 7 9 65535\n", 13);
    for (int i = 0; i < IH * IW; i++) {
        int v = V(8);
        expected[k][i] = (uint8_t)v, rows[13 + 2 * i] = (uint8_t)v, rows[14 + 2 * i] = (uint8_t)v;
    }
    snprintf(path, sizeof path, "%s/c.pgm", dir), fixture_write_file(path, rows, 13 + 2 * IH * IW), k++;
    /* d: PNG 1-bit grey (0 -> 0, 1 -> 255) */
    memset(rows, 0, sizeof rows);
    for (int y = 0; y < IH; y++)
        for (int x = 0; x < IW; x++) {
            int v = V(1);
            expected[k][y * IW + x] = (uint8_t)(v * 255);
            rows[y + (x >> 3)] |= (uint8_t)(v << (7 - (x & 7))); /* rowbytes 1 */
        }
    snprintf(path, sizeof path, "%s/d.png", dir),
        write_png(path, 1, PNG_COLOR_TYPE_GRAY, 0, rows, 1, NULL, 0), k++;
    /* e: PNG 2-bit grey (v -> 85 v) */
    memset(rows, 0, sizeof rows);
    for (int y = 0; y < IH; y++)
        for (int x = 0; x < IW; x++) {
            int v = V(2);
            expected[k][y * IW + x] = (uint8_t)(v * 85);
            rows[2 * y + (x >> 2)] |= (uint8_t)(v << (6 - 2 * (x & 3))); /* rowbytes 2 */
        }
    snprintf(path, sizeof path, "%s/e.png", dir),
        write_png(path, 2, PNG_COLOR_TYPE_GRAY, 0, rows, 2, NULL, 0), k++;
    /* f: PNG 8-bit grey, interlaced */
    for (int i = 0; i < IH * IW; i++) expected[k][i] = rows[i] = (uint8_t)V(8);
    snprintf(path, sizeof path, "%s/f.png", dir);
    write_png(path, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_ADAM7, rows, IW, NULL, 0), k++;
    /* g: PNG 16-bit grey */
    for (int i = 0; i < IH * IW; i++) expected[k][i] = rows[2 * i] = rows[2 * i + 1] = (uint8_t)V(8);
    snprintf(path, sizeof path, "%s/g.png", dir),
        write_png(path, 16, PNG_COLOR_TYPE_GRAY, 0, rows, 2 * IW, NULL, 0), k++;
    /* h: grey + alpha (alpha dropped) */
    for (int i = 0; i < IH * IW; i++)
        expected[k][i] = rows[2 * i] = (uint8_t)V(8), rows[2 * i + 1] = (uint8_t)V(8);
    snprintf(path, sizeof path, "%s/h.png", dir);
    write_png(path, 8, PNG_COLOR_TYPE_GRAY_ALPHA, 0, rows, 2 * IW, NULL, 0), k++;
    /* i: RGB, j: RGBA (luma) */
    for (int c = 3; c <= 4; c++) {
        for (int i = 0; i < IH * IW; i++) {
            uint8_t *q = rows + c * i;
            for (int j = 0; j < c; j++) q[j] = (uint8_t)V(8);
            expected[k][i] = luma(q[0], q[1], q[2]);
        }
        snprintf(path, sizeof path, "%s/%c.png", dir, c == 3 ? 'i' : 'j');
        write_png(path, 8, c == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGBA, 0, rows, (size_t)c * IW, NULL,
                  0),
            k++;
    }
    /* k: palette, 4-bit indices */
    png_color pal[16];
    for (int i = 0; i < 16; i++) pal[i] = (png_color){(uint8_t)V(8), (uint8_t)V(8), (uint8_t)V(8)};
    memset(rows, 0, sizeof rows);
    for (int y = 0; y < IH; y++)
        for (int x = 0; x < IW; x++) {
            int v = V(4);
            expected[k][y * IW + x] = luma(pal[v].red, pal[v].green, pal[v].blue);
            rows[4 * y + (x >> 1)] |= (uint8_t)(v << (4 - 4 * (x & 1))); /* rowbytes 4 */
        }
    snprintf(path, sizeof path, "%s/k.png", dir),
        write_png(path, 4, PNG_COLOR_TYPE_PALETTE, 0, rows, 4, pal, 16), k++;
#undef V
    return k;
}

static void test_folder(void) {
    static uint8_t exp_a[16][IH * IW], exp_b[16][IH * IW];
    mkdir(fixture_path("root"), 0755), mkdir(fixture_path("root/beta"), 0755),
        mkdir(fixture_path("root/alpha"), 0755);
    int na = write_images(fixture_path("root/alpha"), exp_a),
        nb = write_images(fixture_path("root/beta"), exp_b);
    fixture_write_file(fixture_path("root/beta/.DS_Store"), "junk", 4); /* dotfiles are skipped */
    /* Direct decode of every kind first. */
    const char *kinds = "abcdefghijk";
    for (int i = 0; i < na; i++) {
        char name[32];
        snprintf(name, sizeof name, "root/alpha/%c.%s", kinds[i], i < 3 ? "pgm" : "png");
        Image img;
        Err e;
        int rc = image_load(&img, fixture_path(name), &e);
        CHECK(rc == 0 && img.height == IH && img.width == IW && !memcmp(img.pixels, exp_a[i], IH * IW),
              "decode %s: %s", name, rc ? e.msg : "pixels differ");
        if (!rc) image_free(&img);
    }
    for (int z = 0; z < 2; z++) {
        ImportOptions o = {.format = IMPORT_FOLDER,
                           .out = fixture_path(z ? "fz.lmdb" : "f.lmdb"),
                           .roots = {fixture_path("root")},
                           .compress = z};
        ImportResult res;
        Err e;
        CHECK(import_run(&o, &res, &e) == 0, "folder import: %s", e.msg);
        Dataset *ds;
        if (ds_open(&ds, o.out, &e)) {
            CHECK(0, "%s", e.msg);
            continue;
        }
        const DsMeta *m = ds_meta(ds);
        CHECK(m->count == (uint64_t)(na + nb) && m->classes == 2 && m->height == IH && m->width == IW,
              "folder meta: %llu samples, %u classes", (unsigned long long)m->count, m->classes);
        CHECK(!strcmp(ds_class_name(ds, 0), "alpha") && !strcmp(ds_class_name(ds, 1), "beta"),
              "class names = sorted folder names");
        DsReader *r;
        ds_reader_open(ds, &r, &e);
        int ok = 1;
        for (int i = 0; i < na + nb; i++) {
            uint8_t got[IH * IW];
            int32_t l;
            ok &= ds_read(r, (uint64_t)i, got, &l, NULL, &e) == 0 && l == (i >= na) &&
                  !memcmp(got, i < na ? exp_a[i] : exp_b[i - na], IH * IW);
        }
        CHECK(ok, "folder round trip of PGM and PNG pixels (compress %d): %s", z, e.msg);
        ds_reader_close(r);
        ds_close(ds);
    }
    /* Errors, each naming its file or folder. */
    ImportOptions o = {
        .format = IMPORT_FOLDER, .out = fixture_path("fbad.lmdb"), .roots = {fixture_path("root")}};
    fixture_write_file(fixture_path("root/beta/notes.txt"), "hello\n", 6);
    expect_fail(&o, "notes.txt", "non-image file in a class folder");
    unlink(fixture_path("root/beta/notes.txt"));
    mkdir(fixture_path("root/gamma"), 0755);
    expect_fail(&o, "gamma", "empty class folder");
    rmdir(fixture_path("root/gamma"));
    fixture_write_file(fixture_path("root/README"), "x", 1);
    expect_fail(&o, "README", "a file at the root");
    unlink(fixture_path("root/README"));
    uint8_t big[21 + 10 * 7];
    memcpy(big, "P5\n7 10\n255\n", 12);
    memset(big + 12, 9, 70);
    fixture_write_file(fixture_path("root/beta/z.pgm"), big, 12 + 70);
    expect_fail(&o, "z.pgm", "image of the wrong size");
    fixture_write_file(fixture_path("root/beta/z.pgm"), big, 12 + 30);
    expect_fail(&o, "z.pgm", "truncated PGM");
    unlink(fixture_path("root/beta/z.pgm"));
    fixture_write_file(fixture_path("root/beta/y.png"), "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16);
    expect_fail(&o, "y.png", "truncated PNG");
    unlink(fixture_path("root/beta/y.png"));
    o.roots[0] = fixture_path("nowhere");
    expect_fail(&o, "nowhere", "missing root");
}

/* ---- Omniglot ---------------------------------------------------------------------- */

static void test_omniglot(void) {
    const char *dirs[] = {"omni",
                          "omni/Zeta",
                          "omni/Alpha",
                          "omni/Zeta/character01",
                          "omni/Alpha/character02",
                          "omni/Alpha/character01"};
    for (int i = 0; i < 6; i++) mkdir(fixture_path(dirs[i]), 0755);
    enum { S = 15 };
    static uint8_t img[6][S * S];
    Rng r;
    rng_seed(&r, 8, RNG_TEST, 2);
    uint8_t rows[S * 2];
    /* In sorted order: Alpha/character01 (2), Alpha/character02 (2), Zeta/character01 (2). */
    const char *files[6] = {"omni/Alpha/character01/0001_01.png", "omni/Alpha/character01/0001_02.png",
                            "omni/Alpha/character02/0002_01.png", "omni/Alpha/character02/0002_02.png",
                            "omni/Zeta/character01/0003_01.png",  "omni/Zeta/character01/0003_02.png"};
    for (int k = 0; k < 6; k++) {
        memset(rows, 0, sizeof rows);
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                int ink = rng_uniform(&r) < 0.2f;
                img[k][y * S + x] = ink ? 0 : 255;
                if (!ink) rows[2 * y + (x >> 3)] |= (uint8_t)(1 << (7 - (x & 7)));
            }
        fixture_write_png(fixture_path(files[k]), S, S, 1, PNG_COLOR_TYPE_GRAY, 0, rows, 2, NULL, 0);
    }
    for (int variant = 0; variant < 3; variant++) { /* plain, --invert, --resize 5x5 */
        char out[32];
        snprintf(out, sizeof out, "omni%d.lmdb", variant);
        ImportOptions o = {.format = IMPORT_OMNIGLOT,
                           .out = fixture_path(out),
                           .roots = {fixture_path("omni")},
                           .invert = variant == 1,
                           .resize_h = variant == 2 ? 5 : 0,
                           .resize_w = variant == 2 ? 5 : 0,
                           .compress = 1};
        ImportResult res;
        Err e;
        CHECK(import_run(&o, &res, &e) == 0, "omniglot import: %s", e.msg);
        Dataset *ds;
        if (ds_open(&ds, fixture_path(out), &e)) {
            CHECK(0, "%s", e.msg);
            continue;
        }
        CHECK(ds_meta(ds)->classes == 3 && !strcmp(ds_class_name(ds, 0), "Alpha/character01") &&
                  !strcmp(ds_class_name(ds, 1), "Alpha/character02") &&
                  !strcmp(ds_class_name(ds, 2), "Zeta/character01"),
              "omniglot classes: alphabet/character, sorted");
        DsReader *rd;
        ds_reader_open(ds, &rd, &e);
        int ok = 1;
        for (int k = 0; k < 6; k++) {
            uint8_t got[S * S], want[S * S];
            int32_t l;
            ok &= ds_read(rd, (uint64_t)k, got, &l, NULL, &e) == 0 && l == k / 2;
            if (variant == 2) {
                for (int y = 0; y < 5; y++) /* 3x3 block means, rounded half up */
                    for (int x = 0; x < 5; x++) {
                        int s = 0;
                        for (int i = 0; i < 9; i++) s += img[k][(3 * y + i / 3) * S + 3 * x + i % 3];
                        want[y * 5 + x] = (uint8_t)((s + 4) / 9);
                    }
                ok &= !memcmp(got, want, 25);
            } else {
                for (int i = 0; i < S * S; i++) want[i] = variant ? (uint8_t)(255 - img[k][i]) : img[k][i];
                ok &= !memcmp(got, want, S * S);
            }
        }
        CHECK(ok, "omniglot variant %d: labels and pixels (white 255, ink 0 unless inverted)", variant);
        ds_reader_close(rd);
        ds_close(ds);
    }
    ImportOptions o = {
        .format = IMPORT_OMNIGLOT, .out = fixture_path("obad.lmdb"), .roots = {fixture_path("omni/Alpha")}};
    expect_fail(&o, "0001_01.png", "omniglot root one level too low");
}

/* ---- resize -------------------------------------------------------------------------- */

/* Area average in doubles: the reference for image_resize. */
static double ref_resize(const uint8_t *src, int sh, int sw, int dh, int dw, int y, int x) {
    double y0 = (double)y * sh / dh, y1 = (double)(y + 1) * sh / dh, x0 = (double)x * sw / dw,
           x1 = (double)(x + 1) * sw / dw, acc = 0;
    for (int i = 0; i < sh; i++)
        for (int j = 0; j < sw; j++) {
            double oy = fmin(y1, i + 1) - fmax(y0, i), ox = fmin(x1, j + 1) - fmax(x0, j);
            if (oy > 0 && ox > 0) acc += oy * ox * src[i * sw + j];
        }
    return acc / ((y1 - y0) * (x1 - x0));
}

static void test_resize(void) {
    uint8_t a[16] = {0, 1, 10, 20, 2, 3, 30, 40, 100, 100, 7, 7, 100, 101, 7, 8}, d[64];
    image_resize(d, 2, 2, a, 4, 4);
    CHECK(d[0] == 2 && d[1] == 25 && d[2] == 100 && d[3] == 7, "4x4 -> 2x2 block means: %d %d %d %d", d[0],
          d[1], d[2], d[3]);
    uint8_t b[9] = {0, 90, 180, 90, 180, 255, 180, 255, 255};
    image_resize(d, 2, 2, b, 3, 3);
    /* (0,0): weights (2,1)x(2,1)/9: (4*0 + 2*90 + 2*90 + 180)/9 = 60. */
    CHECK(d[0] == 60, "3x3 -> 2x2 fractional weights: %d, expected 60", d[0]);
    uint8_t c[4] = {10, 20, 30, 40};
    image_resize(d, 4, 4, c, 2, 2);
    CHECK(d[0] == 10 && d[1] == 10 && d[2] == 20 && d[5] == 10 && d[15] == 40 && d[10] == 40,
          "2x2 -> 4x4 replicates");
    static uint8_t big[28 * 28], out[13 * 17];
    memset(big, 77, sizeof big);
    image_resize(out, 13, 17, big, 28, 28);
    int flat = 1;
    for (int i = 0; i < 13 * 17; i++) flat &= out[i] == 77;
    CHECK(flat, "a constant image stays constant");
    Rng r;
    rng_seed(&r, 3, RNG_TEST, 3);
    for (int i = 0; i < 28 * 28; i++) big[i] = (uint8_t)rng_below(&r, 256);
    static const int sizes[][2] = {{13, 17}, {28, 28}, {5, 9}, {40, 33}, {1, 1}};
    for (int s = 0; s < 5; s++) {
        int dh = sizes[s][0], dw = sizes[s][1], bad = 0;
        uint8_t *o = xmalloc((size_t)dh * dw);
        image_resize(o, (uint32_t)dh, (uint32_t)dw, big, 28, 28);
        for (int y = 0; y < dh; y++)
            for (int x = 0; x < dw; x++) {
                double v = ref_resize(big, 28, 28, dh, dw, y, x);
                double frac = v - floor(v);
                if (fabs(frac - 0.5) < 1e-9 ? (o[y * dw + x] != floor(v) && o[y * dw + x] != ceil(v))
                                            : o[y * dw + x] != (int)floor(v + 0.5))
                    bad++;
            }
        CHECK(bad == 0, "28x28 -> %dx%d matches the double reference (%d differ)", dh, dw, bad);
        free(o);
    }
}

int main(void) {
    fixture_dir_create("import");
    make_source();
    test_idx_errors();
    test_idx_int_labels();
    test_splits();
    test_resize();
    test_folder();
    test_omniglot();
    CHECK(!fixture_leftover_tmp(), "no .tmp-* directory left in %s", fixture_dir());
    fixture_rm_tree(fixture_dir());
    return test_finish();
}
