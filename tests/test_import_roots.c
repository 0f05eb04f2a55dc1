/* test_import_roots: the importer's several --root folders (classes in root
 * order, names under each sample's own root, a class under two roots is an
 * error), --exclude-groups (named and "koch", unknown names an error) and
 * --rotations (class and sample names, counts, pixels against rotations
 * worked out here by the forward map of each pixel, only the training part
 * of a --split-by group rotated, bad values and non-square sizes) and
 * --mirror (with 4 rotations: the eight copies' names, labels and pixels
 * against mirrors of the forward map; alone on a non-square size; only the
 * training part of a split). */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../io/dataset.h"
#include "../io/import.h"
#include "fixture_files.h"
#include "fixture_import.h"
#include "fixture_png.h"
#include "test.h"

enum { S = 7 };

/* Each image: a distinct asymmetric pattern from its index. */
static uint8_t img[16][S * S];
static int nimg;

static void put(const char *path) {
    uint8_t *p = img[nimg], rows[S];
    for (int y = 0; y < S; y++) {
        rows[y] = 0;
        for (int x = 0; x < S; x++) {
            int white = (x * 3 + y * 5 + nimg * 7 + x * y) % 4 != 0 && !(y == 0 && x < 3);
            p[y * S + x] = white ? 255 : 0;
            if (white) rows[y] |= (uint8_t)(1 << (7 - x));
        }
    }
    nimg++;
    fixture_write_png(fixture_path(path), S, S, 1, PNG_COLOR_TYPE_GRAY, 0, rows, 1, NULL, 0);
}

static void mkdirs(const char *const *dirs, int n) {
    for (int i = 0; i < n; i++) mkdir(fixture_path(dirs[i]), 0755);
}

/* The forward map of a counter-clockwise quarter turn: the pixel at row r,
 * column c goes to row S-1-c, column r. */
static void turn(uint8_t *dst, const uint8_t *src, int quarters) {
    uint8_t a[S * S], b[S * S];
    memcpy(a, src, sizeof a);
    for (int q = 0; q < quarters; q++) {
        for (int r = 0; r < S; r++)
            for (int c = 0; c < S; c++) b[(S - 1 - c) * S + r] = a[r * S + c];
        memcpy(a, b, sizeof a);
    }
    memcpy(dst, a, sizeof a);
}

/* Roots a/ (Alpha: 2 characters; Zeta: 1) and b/ (Beta: 1; Tengwar: 1). */
static void make_trees(void) {
    const char *dirs[] = {"a",
                          "a/Alpha",
                          "a/Alpha/character01",
                          "a/Alpha/character02",
                          "a/Zeta",
                          "a/Zeta/character01",
                          "b",
                          "b/Tengwar",
                          "b/Tengwar/character01",
                          "b/Beta",
                          "b/Beta/character01",
                          "c",
                          "c/Alpha",
                          "c/Alpha/character01"};
    mkdirs(dirs, 14);
    put("a/Alpha/character01/0001_01.png");   /* 0 */
    put("a/Alpha/character01/0001_02.png");   /* 1 */
    put("a/Alpha/character02/0002_01.png");   /* 2 */
    put("a/Zeta/character01/0003_01.png");    /* 3 */
    put("b/Beta/character01/0004_01.png");    /* 4 */
    put("b/Beta/character01/0004_02.png");    /* 5 */
    put("b/Tengwar/character01/0005_01.png"); /* 6 */
    put("c/Alpha/character01/0009_01.png");   /* 7 */
}

static void test_roots_rotations(void) {
    ImportOptions o = {.format = IMPORT_OMNIGLOT,
                       .out = fixture_path("rot.lmdb"),
                       .roots = {fixture_path("a"), fixture_path("b")},
                       .exclude_groups = "Zeta",
                       .rotations = 4};
    ImportResult res;
    Err e;
    CHECK(import_run(&o, &res, &e) == 0, "two roots, exclusion, 4 rotations: %s", e.msg);
    CHECK(res.count[0] == 24 && res.classes[0] == 16, "6 images x 4, 4 classes x 4: got %llu, %u",
          (unsigned long long)res.count[0], res.classes[0]);
    Dataset *ds;
    if (ds_open(&ds, fixture_path("rot.lmdb"), &e) || ds_load_names(ds, &e)) {
        CHECK(0, "%s", e.msg);
        return;
    }
    /* Classes: a's sorted (Alpha/character01, 02), then b's (Beta, Tengwar); then
     * each rotation's copies in that order. */
    const char *want_class[16] = {
        "Alpha/character01",         "Alpha/character02",         "Beta/character01",
        "Tengwar/character01",       "Alpha/character01@rot90",   "Alpha/character02@rot90",
        "Beta/character01@rot90",    "Tengwar/character01@rot90", "Alpha/character01@rot180",
        "Alpha/character02@rot180",  "Beta/character01@rot180",   "Tengwar/character01@rot180",
        "Alpha/character01@rot270",  "Alpha/character02@rot270",  "Beta/character01@rot270",
        "Tengwar/character01@rot270"};
    int ok = ds_meta(ds)->classes == 16;
    for (uint32_t c = 0; ok && c < 16; c++) ok = !strcmp(ds_class_name(ds, c), want_class[c]);
    CHECK(ok, "class names in root order, then the rotated copies");
    /* Samples: each source image, then its three turns. */
    const int src[6] = {0, 1, 2, 4, 5, 6}, base[6] = {0, 0, 1, 2, 2, 3};
    const char *name[6] = {"Alpha/character01/0001_01.png", "Alpha/character01/0001_02.png",
                           "Alpha/character02/0002_01.png", "Beta/character01/0004_01.png",
                           "Beta/character01/0004_02.png",  "Tengwar/character01/0005_01.png"};
    DsReader *rd;
    ds_reader_open(ds, &rd, &e);
    ok = 1;
    int names_ok = 1;
    for (int k = 0; k < 6; k++)
        for (int q = 0; q < 4; q++) {
            uint64_t id = (uint64_t)(4 * k + q);
            uint8_t got[S * S], want[S * S];
            int32_t l = -1;
            turn(want, img[src[k]], q);
            ok &=
                ds_read(rd, id, got, &l, NULL, &e) == 0 && l == base[k] + 4 * q && !memcmp(got, want, S * S);
            char nm[96];
            if (q)
                snprintf(nm, sizeof nm, "%s@rot%d", name[k], 90 * q);
            else
                snprintf(nm, sizeof nm, "%s", name[k]);
            const char *have = ds_sample_name(ds, id);
            names_ok &= have && !strcmp(have, nm);
        }
    CHECK(ok, "labels and pixels of every sample and its 90/180/270-degree turns");
    CHECK(names_ok, "sample names: the path under its own root, @rotNNN for the turns");
    ds_reader_close(rd);
    ds_close(ds);
    /* The turns are not the identity: the fixture is asymmetric. */
    uint8_t t[S * S];
    turn(t, img[0], 1);
    CHECK(memcmp(t, img[0], S * S) != 0, "fixture image changes under a quarter turn");
    /* import_rotate against the forward map for every quarter. */
    ok = 1;
    for (int q = 0; q < 4; q++) {
        uint8_t a[S * S], b[S * S];
        import_rotate(a, img[3], S, (uint32_t)q);
        turn(b, img[3], q);
        ok &= !memcmp(a, b, sizeof a);
    }
    CHECK(ok, "import_rotate = the forward map, quarters 0..3");
}

/* The forward map of a left-right mirror. */
static void flip(uint8_t *dst, const uint8_t *src, int h, int w) {
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++) dst[r * w + (w - 1 - c)] = src[r * w + c];
}

static void test_mirror(void) {
    ImportOptions o = {.format = IMPORT_OMNIGLOT,
                       .out = fixture_path("mir.lmdb"),
                       .roots = {fixture_path("a"), fixture_path("b")},
                       .exclude_groups = "Zeta",
                       .rotations = 4,
                       .mirror = 1};
    ImportResult res;
    Err e;
    CHECK(import_run(&o, &res, &e) == 0, "4 rotations and mirror: %s", e.msg);
    CHECK(res.count[0] == 48 && res.classes[0] == 32, "6 images x 8, 4 classes x 8: got %llu, %u",
          (unsigned long long)res.count[0], res.classes[0]);
    Dataset *ds;
    if (ds_open(&ds, fixture_path("mir.lmdb"), &e) || ds_load_names(ds, &e)) {
        CHECK(0, "%s", e.msg);
        return;
    }
    /* Classes: the four turns as with --rotations 4, then the same 16 mirrored. */
    const char *cls[4] = {"Alpha/character01", "Alpha/character02", "Beta/character01",
                          "Tengwar/character01"};
    int ok = ds_meta(ds)->classes == 32;
    for (int m = 0; m < 2 && ok; m++)
        for (int q = 0; q < 4 && ok; q++)
            for (int c = 0; c < 4 && ok; c++) {
                char want[96];
                snprintf(want, sizeof want, "%s%s%.0d%s", cls[c], q ? "@rot" : "", 90 * q,
                         m ? "@mirror" : "");
                ok = !strcmp(ds_class_name(ds, (uint32_t)(16 * m + 4 * q + c)), want);
            }
    CHECK(ok, "class names: the turns, then the turns mirrored (NAME@rot90@mirror)");
    /* Samples: each source image, its three turns, then those four mirrored. */
    const int src[6] = {0, 1, 2, 4, 5, 6}, base[6] = {0, 0, 1, 2, 2, 3};
    DsReader *rd;
    ds_reader_open(ds, &rd, &e);
    ok = 1;
    int names_ok = 1, differs = 0;
    for (int k = 0; k < 6; k++)
        for (int m = 0; m < 2; m++)
            for (int q = 0; q < 4; q++) {
                uint64_t id = (uint64_t)(8 * k + 4 * m + q);
                uint8_t got[S * S], want[S * S], t[S * S];
                int32_t l = -1;
                turn(t, img[src[k]], q);
                if (m)
                    flip(want, t, S, S);
                else
                    memcpy(want, t, sizeof want);
                differs += m && memcmp(want, t, sizeof t) != 0;
                ok &= ds_read(rd, id, got, &l, NULL, &e) == 0 && l == base[k] + 4 * q + 16 * m &&
                      !memcmp(got, want, S * S);
                const char *have = ds_sample_name(ds, id), *stem = have ? strstr(have, ".png") : NULL;
                char suffix[32];
                snprintf(suffix, sizeof suffix, ".png%s%.0d%s", q ? "@rot" : "", 90 * q, m ? "@mirror" : "");
                names_ok &= stem && !strcmp(stem, suffix);
            }
    CHECK(ok, "labels and pixels of every sample, its turns and their mirrors");
    CHECK(names_ok, "sample names: @rotNNN, then @mirror");
    CHECK(differs == 24, "the fixture changes under every mirror (%d of 24)", differs);
    ds_reader_close(rd);
    ds_close(ds);

    /* --mirror alone on a non-square size, split by group: the training part
     * holds each image and its mirror, the held-out part is as is. */
    ImportOptions n = {.format = IMPORT_OMNIGLOT,
                       .out = fixture_path("m-plain.lmdb"),
                       .roots = {fixture_path("a")},
                       .resize_h = 7,
                       .resize_w = 4};
    ImportOptions ms = n;
    ms.out = fixture_path("m-train.lmdb");
    ms.test_out = fixture_path("m-test.lmdb");
    ms.mirror = 1;
    ms.split = IMPORT_SPLIT_GROUP;
    ms.test_fraction = 0.5;
    ms.seed = 3;
    ImportResult rp, rm;
    CHECK(import_run(&n, &rp, &e) == 0, "a 7x4 import: %s", e.msg);
    CHECK(import_run(&ms, &rm, &e) == 0, "a 7x4 import, mirrored, split by group: %s", e.msg);
    Dataset *dp, *dt, *dh;
    if (ds_open(&dp, n.out, &e) || ds_open(&dt, ms.out, &e) || ds_open(&dh, ms.test_out, &e) ||
        ds_load_names(dp, &e) || ds_load_names(dt, &e) || ds_load_names(dh, &e)) {
        CHECK(0, "%s", e.msg);
        return;
    }
    CHECK(rm.count[0] % 2 == 0 && rm.count[0] / 2 + rm.count[1] == rp.count[0] && rm.classes[0] % 2 == 0,
          "the training part doubled, the held-out part as is: %llu + %llu of %llu",
          (unsigned long long)rm.count[0], (unsigned long long)rm.count[1], (unsigned long long)rp.count[0]);
    DsReader *rp_rd, *rt_rd;
    ds_reader_open(dp, &rp_rd, &e);
    ds_reader_open(dt, &rt_rd, &e);
    ok = 1;
    int found = 0;
    uint32_t half = ds_meta(dt)->classes / 2;
    for (uint64_t i = 0; i < ds_meta(dt)->count; i += 2) {
        uint64_t j; /* the same source image in the plain import */
        for (j = 0; j < ds_meta(dp)->count && strcmp(ds_sample_name(dp, j), ds_sample_name(dt, i)); j++) {
        }
        if (j == ds_meta(dp)->count) {
            ok = 0;
            break;
        }
        found++;
        uint8_t a[7 * 4], b[7 * 4], c[7 * 4], want[7 * 4];
        int32_t la, lb, lc;
        ok &= ds_read(rp_rd, j, a, &lc, NULL, &e) == 0 && ds_read(rt_rd, i, b, &la, NULL, &e) == 0 &&
              ds_read(rt_rd, i + 1, c, &lb, NULL, &e) == 0;
        flip(want, a, 7, 4);
        char nm[300];
        snprintf(nm, sizeof nm, "%s@mirror", ds_sample_name(dt, i));
        ok &= !memcmp(a, b, sizeof a) && !memcmp(c, want, sizeof c) && lb == la + (int32_t)half &&
              !strcmp(ds_sample_name(dt, i + 1), nm) && memcmp(a, c, sizeof a) != 0;
    }
    uint32_t C = ds_meta(dh)->classes;
    int plain = C > 0;
    for (uint32_t c = 0; c < C; c++) plain &= !strstr(ds_class_name(dh, c), "@mirror");
    CHECK(ok && found == (int)(ds_meta(dt)->count / 2), "7x4: each image, then its mirror (%d)", found);
    CHECK(plain, "the held-out part has no mirrored classes");
    CHECK(strstr(ds_meta(dt)->source, "; mirrored") && !strstr(ds_meta(dh)->source, "mirrored"),
          "meta source says mirrored for the training part only: '%s', '%s'", ds_meta(dt)->source,
          ds_meta(dh)->source);
    ds_reader_close(rp_rd);
    ds_reader_close(rt_rd);
    ds_close(dp);
    ds_close(dt);
    ds_close(dh);
}

static void test_split_and_two(void) {
    /* --rotations 2 with --split-by group: the split is made on the source
     * classes; the training part gets each class's 180-degree copy, the
     * held-out part stays unrotated. */
    ImportOptions o = {.format = IMPORT_OMNIGLOT,
                       .out = fixture_path("s-train.lmdb"),
                       .test_out = fixture_path("s-test.lmdb"),
                       .roots = {fixture_path("a")},
                       .rotations = 2,
                       .split = IMPORT_SPLIT_GROUP,
                       .test_fraction = 0.5,
                       .seed = 3};
    ImportResult res;
    Err e;
    CHECK(import_run(&o, &res, &e) == 0, "split by group with rotations: %s", e.msg);
    /* One group each side: Alpha (2 classes, 3 images) or Zeta (1 class, 1 image). */
    int alpha_trains = res.classes[1] == 1;
    CHECK(alpha_trains ? res.count[0] == 6 && res.classes[0] == 4 && res.count[1] == 1
                       : res.count[0] == 2 && res.classes[0] == 2 && res.count[1] == 3 && res.classes[1] == 2,
          "the training part doubled, the held-out part as is: %llu + %llu samples, %u + %u classes",
          (unsigned long long)res.count[0], (unsigned long long)res.count[1], res.classes[0], res.classes[1]);
    const char *outs[2] = {"s-train.lmdb", "s-test.lmdb"};
    int together = 1, said = 1;
    for (int d = 0; d < 2; d++) {
        Dataset *ds;
        if (ds_open(&ds, fixture_path(outs[d]), &e)) {
            CHECK(0, "%s", e.msg);
            continue;
        }
        uint32_t C = ds_meta(ds)->classes;
        for (uint32_t c = 0; d == 1 && c < C; c++) /* held out: no copies, one group */
            together &= !strstr(ds_class_name(ds, c), "@rot") &&
                        ds_group_len(ds_class_name(ds, c)) == ds_group_len(ds_class_name(ds, 0));
        together &= d == 1 || C % 2 == 0;
        said &= (strstr(ds_meta(ds)->source, "; 2 rotations") != NULL) == !d;
        for (uint32_t c = 0; d == 0 && c < C / 2; c++) {
            char want[300];
            snprintf(want, sizeof want, "%s@rot180", ds_class_name(ds, c));
            together &= !strcmp(ds_class_name(ds, c + C / 2), want) &&
                        ds_group_len(ds_class_name(ds, c)) == ds_group_len(ds_class_name(ds, 0));
        }
        ds_close(ds);
    }
    CHECK(together, "the training part: whole groups with their 180-degree copies; held out: unrotated");
    CHECK(said, "meta source says \"2 rotations\" for the training part only");
}

static void test_errors(void) {
    ImportOptions o = {.format = IMPORT_OMNIGLOT,
                       .out = fixture_path("bad.lmdb"),
                       .roots = {fixture_path("a"), fixture_path("c")}};
    expect_fail(&o, "Alpha/character01", "a class under two roots");
    ImportOptions x = {.format = IMPORT_OMNIGLOT,
                       .out = fixture_path("bad.lmdb"),
                       .roots = {fixture_path("a")},
                       .exclude_groups = "Zeta,Nope"};
    expect_fail(&x, "'Nope'", "an excluded group found nowhere");
    x.exclude_groups = "Alpha,,Zeta";
    expect_fail(&x, "empty group name", "an empty name in the list");
    x.exclude_groups = "Alpha,Zeta";
    expect_fail(&x, "nothing to import", "everything excluded");
    x.exclude_groups = "koch"; /* Tengwar is there, Atlantean and the others are not */
    x.roots[0] = fixture_path("b");
    expect_fail(&x, "'Atlantean'", "koch: every alphabet of the list must be found");
    ImportOptions r = {.format = IMPORT_OMNIGLOT,
                       .out = fixture_path("bad.lmdb"),
                       .roots = {fixture_path("a")},
                       .rotations = 3};
    expect_fail(&r, "--rotations 3", "3 rotations");
    r.rotations = 4;
    r.resize_h = 5;
    r.resize_w = 4;
    expect_fail(&r, "square", "rotations of a non-square size");
    ImportOptions i = {.format = IMPORT_IDX,
                       .out = fixture_path("bad.lmdb"),
                       .images = "x",
                       .labels = "y",
                       .exclude_groups = "koch"};
    expect_fail(&i, "--exclude-groups", "idx has no groups");
    /* koch with every alphabet of the list present: only the others stay. */
    const char *koch[] = {"k",
                          "k/Atlantean",
                          "k/Ge_ez",
                          "k/Glagolitic",
                          "k/Gurmukhi",
                          "k/Kannada",
                          "k/Malayalam",
                          "k/Manipuri",
                          "k/Old_Church_Slavonic_(Cyrillic)",
                          "k/Tengwar",
                          "k/Tibetan",
                          "k/Keep",
                          "k/Keep/character01"};
    mkdirs(koch, 13);
    put("k/Keep/character01/0007_01.png");
    ImportOptions k = {.format = IMPORT_OMNIGLOT,
                       .out = fixture_path("k.lmdb"),
                       .roots = {fixture_path("k")},
                       .exclude_groups = "koch"};
    ImportResult res;
    Err e;
    CHECK(import_run(&k, &res, &e) == 0 && res.classes[0] == 1 && res.count[0] == 1,
          "koch leaves out the ten evaluation alphabets (empty ones included): %s", e.msg);
}

int main(void) {
    fixture_dir_create("import_roots");
    make_trees();
    test_roots_rotations();
    test_split_and_two();
    test_mirror();
    test_errors();
    CHECK(!fixture_leftover_tmp(), "no .tmp-* directory left in %s", fixture_dir());
    fixture_rm_tree(fixture_dir());
    return test_finish();
}
