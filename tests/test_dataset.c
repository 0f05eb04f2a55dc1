/* test_dataset: the LMDB dataset format, its reader and writers, the
 * idx importer (through import_run, as the CLI calls them), masks, pairs and
 * triplets. Inputs (idx files, plain and gzip) are made here in a mkdtemp
 * directory; the image formats, folders, Omniglot, resizing and splits are in
 * test_import. Records are also parsed directly from LMDB against the format
 * documented in io/dataset.c, and corrupted through the LMDB API. */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "../io/dataset.h"
#include "../io/image.h"
#include "../io/import.h"
#include "../io/pairgen.h"
#include "fixture_files.h"
#include "test.h"

/* ---- input makers ---------------------------------------------------------- */

enum { N = 300, H = 12, W = 10, K = 7 };
static uint8_t px[N][H * W];
static uint8_t lab[N];

static void make_source(void) {
    Rng r;
    rng_seed(&r, 42, RNG_TEST, 0);
    for (int i = 0; i < N; i++) {
        lab[i] = (uint8_t)(i < K ? (uint64_t)i : rng_below(&r, K)); /* every class present */
        for (int j = 0; j < H * W; j++) /* mostly background: deflate shrinks it */
            px[i][j] = rng_uniform(&r) < 0.6f ? 0 : (uint8_t)rng_below(&r, 256);
    }
    uint32_t di[3] = {N, H, W}, dl[1] = {N};
    fixture_write_idx(fixture_path("img.idx"), 0, 0x803, di, 3, &px[0][0], sizeof px, 0);
    fixture_write_idx(fixture_path("lab.idx"), 0, 0x801, dl, 1, lab, N, 0);
    fixture_write_idx(fixture_path("img.idx.gz"), 1, 0x803, di, 3, &px[0][0], sizeof px, 0);
    fixture_write_idx(fixture_path("lab.idx.gz"), 1, 0x801, dl, 1, lab, N, 0);
}

static int import_idx(const char *out, const char *img, const char *labf, int compress, ImportSplit split,
                      double f, const char *test_out, uint64_t seed, Err *e) {
    ImportOptions o = {.format = IMPORT_IDX,
                       .out = out,
                       .images = img,
                       .labels = labf,
                       .compress = compress,
                       .split = split,
                       .test_fraction = f,
                       .test_out = test_out,
                       .seed = seed};
    ImportResult r;
    return import_run(&o, &r, e);
}

/* ---- checks on a whole dataset --------------------------------------------- */

/* by_class agrees with the labels, ids ascending, every id once. */
static void check_by_class(const Dataset *ds) {
    const DsMeta *m = ds_meta(ds);
    uint64_t total = 0;
    int ok = 1;
    for (uint32_t c = 0; c < m->classes; c++) {
        uint32_t n;
        const uint32_t *ids = ds_class_ids(ds, c, &n);
        for (uint32_t i = 0; i < n; i++) {
            ok &= ds_labels(ds)[ids[i]] == (int32_t)c;
            ok &= i == 0 || ids[i] > ids[i - 1];
        }
        total += n;
    }
    CHECK(ok && total == m->count, "by_class consistent with labels (%llu of %llu ids)",
          (unsigned long long)total, (unsigned long long)m->count);
}

/* The idx import of the whole source: exact pixels, labels, meta. */
static void check_full_import(const char *path, int compressed) {
    Dataset *ds;
    Err e;
    CHECK(ds_open(&ds, path, &e) == 0, "ds_open %s: %s", path, e.msg);
    if (!ds) return;
    const DsMeta *m = ds_meta(ds);
    CHECK(m->count == N && m->height == H && m->width == W && m->channels == 1 && m->classes == K,
          "meta count/shape/classes: %llu %ux%ux%u %u", (unsigned long long)m->count, m->channels, m->height,
          m->width, m->classes);
    CHECK(m->compressed == compressed && !m->has_masks && m->npairs == 0, "meta flags");
    CHECK(!strcmp(ds_class_name(ds, 3), "3"), "idx class name '%s'", ds_class_name(ds, 3));
    double s = 0, q = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < H * W; j++) s += px[i][j] / 255.0, q += (px[i][j] / 255.0) * (px[i][j] / 255.0);
    double mean = s / (N * H * W), sd = sqrt(q / (N * H * W) - mean * mean);
    CHECK_CLOSE(m->mean, mean, 1e-6, "meta mean vs direct");
    CHECK_CLOSE(m->std, sd, 1e-6, "meta std vs direct");
    DsReader *r;
    CHECK(ds_reader_open(ds, &r, &e) == 0, "reader: %s", e.msg);
    int bad = 0;
    for (int i = N - 1; i >= 0; i--) {
        uint8_t got[H * W];
        int32_t l;
        if (ds_read(r, (uint64_t)i, got, &l, NULL, &e) || l != lab[i] || memcmp(got, px[i], H * W) ||
            ds_labels(ds)[i] != lab[i])
            bad++;
    }
    CHECK(bad == 0, "%s: %d of %d records differ from the source", path, bad, N);
    uint8_t got[H * W];
    CHECK(ds_read(r, N, got, NULL, NULL, &e) == -1 && strstr(e.msg, "out of range"), "id past count: %s",
          e.msg);
    ds_reader_close(r);
    check_by_class(ds);
    ds_close(ds);
}

/* Reads record `key` of sub-database db raw through LMDB (returns a copy). */
static uint8_t *raw_get(const char *path, const char *db, uint64_t key, size_t *n) {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint8_t k[8], *out = NULL;
    for (int i = 0; i < 8; i++) k[i] = (uint8_t)(key >> (56 - 8 * i));
    MDB_val kv = {8, k}, v;
    ASSERT(mdb_env_create(&env) == 0);
    mdb_env_set_maxdbs(env, 16);
    if (mdb_env_open(env, path, MDB_RDONLY | MDB_NOLOCK, 0) == 0 &&
        mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
        if (mdb_dbi_open(txn, db, 0, &dbi) == 0 && mdb_get(txn, dbi, &kv, &v) == 0) {
            out = xmalloc(v.mv_size);
            memcpy(out, v.mv_data, v.mv_size);
            *n = v.mv_size;
        }
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return out;
}

/* Replaces record (key, klen) of sub-database db with (val, n) in a write
 * transaction. */
static void raw_put_db(const char *path, const char *db, const void *key, size_t klen, const void *val,
                       size_t n) {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val kv = {klen, (void *)key}, v = {n, (void *)val};
    ASSERT(mdb_env_create(&env) == 0);
    mdb_env_set_maxdbs(env, 16);
    ASSERT(mdb_env_open(env, path, 0, 0644) == 0);
    ASSERT(mdb_txn_begin(env, NULL, 0, &txn) == 0);
    ASSERT(mdb_dbi_open(txn, db, 0, &dbi) == 0);
    ASSERT(mdb_put(txn, dbi, &kv, &v, 0) == 0);
    ASSERT(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
}

/* Replaces record `key` of samples with (val, n). */
static void raw_put(const char *path, uint64_t key, const uint8_t *val, size_t n) {
    uint8_t k[8];
    for (int i = 0; i < 8; i++) k[i] = (uint8_t)(key >> (56 - 8 * i));
    raw_put_db(path, "samples", k, 8, val, n);
}

static uint32_t le32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

/* ds_read of `key` fails and the message names the key and contains `what`. */
static void expect_bad(const char *path, uint64_t key, const char *what) {
    Dataset *ds;
    Err e;
    if (ds_open(&ds, path, &e)) {
        CHECK(0, "ds_open after corruption: %s", e.msg);
        return;
    }
    DsReader *r;
    ds_reader_open(ds, &r, &e);
    uint8_t got[H * W];
    char name[64];
    snprintf(name, sizeof name, "samples key %llu:", (unsigned long long)key);
    int rc = ds_read(r, key, got, NULL, NULL, &e);
    CHECK(rc == -1 && strstr(e.msg, name) && strstr(e.msg, what) && !strncmp(e.msg, path, strlen(path)),
          "corrupt key %llu: want '%s' and '%s', got: %s", (unsigned long long)key, name, what,
          rc ? e.msg : "ok");
    CHECK(ds_read(r, (key + N / 2) % N, got, NULL, NULL, &e) == 0, "other records still read: %s", e.msg);
    ds_reader_close(r);
    ds_close(ds);
}

static void test_idx_and_format(void) {
    Err e;
    CHECK(import_idx(fixture_path("plain.lmdb"), fixture_path("img.idx"), fixture_path("lab.idx"), 0,
                     IMPORT_SPLIT_NONE, 0, NULL, 1, &e) == 0,
          "plain idx import: %s", e.msg);
    check_full_import(fixture_path("plain.lmdb"), 0);
    CHECK(import_idx(fixture_path("gz.lmdb"), fixture_path("img.idx.gz"), fixture_path("lab.idx.gz"), 1,
                     IMPORT_SPLIT_NONE, 0, NULL, 1, &e) == 0,
          "gz idx import --compress: %s", e.msg);
    check_full_import(fixture_path("gz.lmdb"), 1);
    CHECK(!fixture_exists(fixture_path("plain.lmdb/lock.mdb")) &&
              fixture_exists(fixture_path("plain.lmdb/data.mdb")),
          "a fresh dataset is data.mdb only");
    /* The documented record layout, parsed independently. */
    size_t n;
    uint8_t *v = raw_get(fixture_path("plain.lmdb"), "samples", 5, &n);
    CHECK(v && n == 24 + H * W, "raw record size %zu", n);
    if (v) {
        CHECK(v[0] == 1 && v[1] == 0 && (v[2] | v[3] << 8) == 1 && (v[4] | v[5] << 8) == H &&
                  (v[6] | v[7] << 8) == W,
              "record header version/flags/shape");
        CHECK(le32(v + 8) == lab[5] && le32(v + 12) == H * W && le32(v + 16) == H * W,
              "record label/lengths");
        CHECK(le32(v + 20) == (uint32_t)crc32(0, px[5], H * W) && !memcmp(v + 24, px[5], H * W),
              "record crc/pixels");
    }
    free(v);
    int zipped = 0, inflated_ok = 1;
    for (int i = 0; i < N; i++) {
        v = raw_get(fixture_path("gz.lmdb"), "samples", (uint64_t)i, &n);
        if (v && (v[1] & 1)) {
            zipped++;
            uint8_t out[H * W];
            z_stream z = {0};
            inflateInit2(&z, -15);
            z.next_in = v + 24, z.avail_in = (uInt)(n - 24), z.next_out = out, z.avail_out = sizeof out;
            inflated_ok &=
                inflate(&z, Z_FINISH) == Z_STREAM_END && !memcmp(out, px[i], H * W) && le32(v + 16) == n - 24;
            inflateEnd(&z);
        }
        free(v);
    }
    CHECK(zipped > N / 2 && inflated_ok, "compressed records are raw deflate of the pixels (%d of %d)",
          zipped, N);
}

static void test_corruption(void) {
    const char *p = fixture_path("corrupt.lmdb"), *pz = fixture_path("corruptz.lmdb");
    Err e;
    CHECK(import_idx(p, fixture_path("img.idx"), fixture_path("lab.idx"), 0, IMPORT_SPLIT_NONE, 0, NULL, 1,
                     &e) == 0,
          "%s", e.msg);
    CHECK(import_idx(pz, fixture_path("img.idx"), fixture_path("lab.idx"), 1, IMPORT_SPLIT_NONE, 0, NULL, 1,
                     &e) == 0,
          "%s", e.msg);
    size_t n;
    uint8_t *v = raw_get(p, "samples", 17, &n);
    v[24 + 50] ^= 0x5a; /* a pixel: only the CRC can tell */
    raw_put(p, 17, v, n);
    expect_bad(p, 17, "CRC");
    free(v);
    v = raw_get(p, "samples", 23, &n);
    raw_put(p, 23, v, n - 1);
    expect_bad(p, 23, "bytes, expected");
    free(v);
    v = raw_get(p, "samples", 31, &n);
    v[8] = K; /* label == classes */
    raw_put(p, 31, v, n);
    expect_bad(p, 31, "out of range");
    v[8] = (uint8_t)((lab[31] + 1) % K); /* valid but not what by_class says */
    raw_put(p, 31, v, n);
    expect_bad(p, 31, "by_class");
    free(v);
    v = raw_get(p, "samples", 40, &n);
    v[0] = 9;
    raw_put(p, 40, v, n);
    expect_bad(p, 40, "version");
    free(v);
    /* Compressed: a truncated deflate stream (lengths made consistent) and a
     * damaged one. */
    uint64_t kz = 0;
    while ((v = raw_get(pz, "samples", kz, &n)) && !(v[1] & 1)) free(v), kz++;
    ASSERT(v);
    uint32_t stored = le32(v + 16) - 3;
    v[16] = (uint8_t)stored, v[17] = (uint8_t)(stored >> 8);
    raw_put(pz, kz, v, n - 3);
    expect_bad(pz, kz, "truncated");
    free(v);
    for (kz++; (v = raw_get(pz, "samples", kz, &n)) && !(v[1] & 1); kz++) free(v);
    ASSERT(v);
    for (size_t i = 24 + 2; i < n; i += 3) v[i] ^= 0xff;
    raw_put(pz, kz, v, n);
    expect_bad(pz, kz, "");
    free(v);
    /* Missing and incomplete datasets. */
    Dataset *ds;
    CHECK(ds_open(&ds, fixture_path("nope.lmdb"), &e) == -1 && strstr(e.msg, "nope.lmdb"), "missing: %s",
          e.msg);
    mkdir(fixture_path("empty.lmdb"), 0755);
    CHECK(ds_open(&ds, fixture_path("empty.lmdb"), &e) == -1 && strstr(e.msg, "empty.lmdb"),
          "no data.mdb: %s", e.msg);
}

/* A writer that dies before finishing leaves a temporary directory that
 * never opens as a dataset, and no final path. */
static void test_interrupted(void) {
    const char *path = fixture_path("killed.lmdb");
    pid_t pid = fork();
    if (pid == 0) {
        DsWriter *w;
        DsWriterSpec spec = {.channels = 1, .height = 28, .width = 28, .classes = 2};
        Err e;
        if (ds_writer_create(&w, path, &spec, &e)) _exit(2);
        uint8_t img[784] = {1};
        for (int i = 0; i < 50000; i++) /* past one 32 MB transaction */
            if (ds_writer_add(w, img, i % 2, NULL, &e)) _exit(3);
        _exit(0); /* "crash": no finish */
    }
    int st;
    waitpid(pid, &st, 0);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && fixture_exists(tmp) && !fixture_exists(path),
          "killed writer leaves only %s", tmp);
    Dataset *ds;
    Err e;
    CHECK(ds_open(&ds, tmp, &e) == -1 && strstr(e.msg, "meta"), "interrupted import does not open: %s",
          e.msg);
    fixture_rm_tree(tmp);
}

/* More data than the writer's first 64 MB map: it must grow (MDB_MAP_FULL,
 * replay) and keep every record. */
static void test_map_growth(void) {
    enum { M = 20000, S = 56 * 56 }; /* one 4 KB overflow page each: 82 MB */
    const char *path = fixture_path("big.lmdb");
    DsWriterSpec spec = {.channels = 1, .height = 56, .width = 56, .classes = 3};
    DsWriter *w;
    Err e;
    CHECK(ds_writer_create(&w, path, &spec, &e) == 0, "%s", e.msg);
    static uint8_t img[S];
    int ok = 1;
    for (int i = 0; i < M && ok; i++) {
        memset(img, i & 255, S);
        img[0] = (uint8_t)(i >> 8);
        ok = ds_writer_add(w, img, i % 3, NULL, &e) == 0;
    }
    CHECK(ok && ds_writer_finish(w, &e) == 0, "writing %d x 3 KB: %s", M, e.msg);
    struct stat st;
    CHECK(stat(fixture_path("big.lmdb/data.mdb"), &st) == 0 && st.st_size > (64 << 20),
          "data.mdb %lld bytes > 64 MB", (long long)st.st_size);
    Dataset *ds;
    DsReader *r;
    if (ds_open(&ds, path, &e) || ds_reader_open(ds, &r, &e)) {
        CHECK(0, "%s", e.msg);
        return;
    }
    ok = ds_meta(ds)->count == M;
    for (int i = 0; i < M && ok; i += 97) {
        int32_t l;
        ok = ds_read(r, (uint64_t)i, img, &l, NULL, &e) == 0 && l == i % 3 && img[0] == (uint8_t)(i >> 8) &&
             img[S - 1] == (uint8_t)(i & 255);
    }
    CHECK(ok, "records intact after the map grew: %s", e.msg);
    ds_reader_close(r);
    ds_close(ds);
    fixture_rm_tree(path);
}

static void test_masks(void) {
    DsWriter *w;
    Err e;
    const char *names[2] = {"fg", "bg"};
    DsWriterSpec spec = {.channels = 3,
                         .height = 4,
                         .width = 5,
                         .classes = 2,
                         .compress = 1,
                         .has_masks = 1,
                         .source = "test",
                         .class_names = names};
    CHECK(ds_writer_create(&w, fixture_path("masks.lmdb"), &spec, &e) == 0, "%s", e.msg);
    uint8_t img[3][60], mask[3][20];
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 60; j++) img[i][j] = (uint8_t)(i * 60 + j);
        for (int j = 0; j < 20; j++) mask[i][j] = (uint8_t)((i + j) % 2);
        CHECK(ds_writer_add(w, img[i], i % 2, mask[i], &e) == 0, "%s", e.msg);
    }
    CHECK(ds_writer_add(w, img[0], 2, mask[0], &e) == -1 && strstr(e.msg, "label 2"),
          "writer label check: %s", e.msg);
    CHECK(ds_writer_finish(w, &e) == 0, "%s", e.msg);
    Dataset *ds;
    DsReader *r;
    if (ds_open(&ds, fixture_path("masks.lmdb"), &e)) {
        CHECK(0, "%s", e.msg);
        return;
    }
    ds_reader_open(ds, &r, &e);
    int ok = ds_meta(ds)->has_masks && ds_meta(ds)->channels == 3 && !strcmp(ds_class_name(ds, 1), "bg");
    for (int i = 0; i < 3; i++) {
        uint8_t gi[60], gm[20];
        int32_t l;
        ok &= ds_read(r, (uint64_t)i, gi, &l, gm, &e) == 0 && l == i % 2 && !memcmp(gi, img[i], 60) &&
              !memcmp(gm, mask[i], 20);
        ok &= ds_read(r, (uint64_t)i, gi, &l, NULL, &e) == 0 && !memcmp(gi, img[i], 60);
    }
    CHECK(ok, "3-channel records with masks round trip: %s", e.msg);
    ds_reader_close(r);
    ds_close(ds);
}

/* Class masks (meta masks = 2): values 0..classes round-trip, a larger one
 * is refused by the writer, and by the reader in a record made by hand. */
static void test_class_masks(void) {
    DsWriter *w;
    Err e;
    DsWriterSpec spec = {.channels = 1, .height = 2, .width = 2, .classes = 2, .has_masks = DS_MASKS_CLASS,
                         .source = "test"};
    CHECK(ds_writer_create(&w, fixture_path("classmasks.lmdb"), &spec, &e) == 0, "%s", e.msg);
    uint8_t img[4] = {1, 2, 3, 4}, mask[4] = {0, 1, 2, 2}, bad[4] = {0, 3, 1, 1};
    CHECK(ds_writer_add(w, img, 1, mask, &e) == 0, "%s", e.msg);
    CHECK(ds_writer_add(w, img, 0, bad, &e) == -1 && strstr(e.msg, "class mask value 3 at pixel 1") &&
              strstr(e.msg, "above classes (2)"),
          "writer refuses a class mask value above classes: %s", e.msg);
    CHECK(ds_writer_finish(w, &e) == 0, "%s", e.msg);
    Dataset *ds;
    DsReader *r;
    if (ds_open(&ds, fixture_path("classmasks.lmdb"), &e) || ds_reader_open(ds, &r, &e)) {
        CHECK(0, "%s", e.msg);
        return;
    }
    uint8_t gi[4], gm[4];
    int32_t l;
    CHECK(ds_meta(ds)->has_masks == DS_MASKS_CLASS && ds_meta(ds)->count == 1 &&
              ds_read(r, 0, gi, &l, gm, &e) == 0 && l == 1 && !memcmp(gm, mask, 4),
          "class masks round trip with meta masks = 2: %s", e.msg);
    ds_reader_close(r);
    ds_close(ds);
    /* A mask byte holds class + 1: at most 255 classes, at the writer and
     * in a dataset's meta. */
    DsWriterSpec many = spec;
    many.classes = 256;
    CHECK(ds_writer_create(&w, fixture_path("classmasks256.lmdb"), &many, &e) == -1 &&
              strstr(e.msg, "256 classes with class masks: a mask byte holds class + 1, at most 255 classes"),
          "writer refuses class masks with 256 classes: %s", e.msg);
    /* the same dataset written with object masks, then meta masks set to 2 */
    many.has_masks = DS_MASKS_OBJECT;
    CHECK(ds_writer_create(&w, fixture_path("classmasks256.lmdb"), &many, &e) == 0 &&
              ds_writer_add(w, img, 255, mask, &e) == 0 && ds_writer_finish(w, &e) == 0,
          "256 classes with object masks: %s", e.msg);
    raw_put_db(fixture_path("classmasks256.lmdb"), "meta", "masks", 5, "2", 1);
    int opened = ds_open(&ds, fixture_path("classmasks256.lmdb"), &e);
    CHECK(opened == -1 &&
              strstr(e.msg, "classmasks256.lmdb: meta masks = 2 (class masks) with 256 classes") &&
              strstr(e.msg, "at most 255 classes"),
          "a dataset claiming class masks with 256 classes is refused at open: %s",
          opened ? e.msg : "(opened)");
    if (!opened) ds_close(ds);
    /* a record whose mask holds 3 with 2 classes */
    DsMeta m = {.channels = 1, .height = 2, .width = 2, .classes = 2, .has_masks = DS_MASKS_CLASS};
    DsDecoder *d = ds_decoder_new(&m, "hand.lmdb");
    uint8_t rec[24 + 8] = {1, 0x02}, raw[8] = {1, 2, 3, 4, 0, 1, 3, 0};
    rec[2] = 1, rec[4] = 2, rec[6] = 2; /* 1 x 2 x 2, label 0 */
    rec[12] = 8, rec[16] = 8;           /* raw and stored lengths */
    uint32_t crc = (uint32_t)crc32(0L, raw, 8);
    for (int k = 0; k < 4; k++) rec[20 + k] = (uint8_t)(crc >> (8 * k));
    memcpy(rec + 24, raw, 8);
    int rc = ds_decode(d, 5, rec, sizeof rec, 0, gi, &l, gm, &e);
    CHECK(rc == -1 && strstr(e.msg, "samples key 5: class mask value 3 at pixel 2"),
          "reader refuses a class mask value above classes: %s", rc ? e.msg : "(accepted)");
    raw[6] = 2;
    crc = (uint32_t)crc32(0L, raw, 8);
    for (int k = 0; k < 4; k++) rec[20 + k] = (uint8_t)(crc >> (8 * k));
    memcpy(rec + 24, raw, 8);
    CHECK(ds_decode(d, 5, rec, sizeof rec, 0, gi, &l, gm, &e) == 0 && gm[2] == 2, "and reads it with 2: %s",
          e.msg);
    ds_decoder_free(d);
}

static void test_pairs(void) {
    const char *p = fixture_path("plain.lmdb");
    Dataset *ds;
    Err e;
    if (ds_open(&ds, p, &e)) {
        CHECK(0, "%s", e.msg);
        return;
    }
    const int32_t *labels = ds_labels(ds);
    enum { NP = 101, NT = 50 };
    uint32_t a[NP], b[NP], a2[NP], b2[NP], t[NT * 3], t2[NT * 3];
    uint8_t same[NP], same2[NP];
    CHECK(pairgen_pairs(a, b, same, NP, labels, N, K, 9, &e) == 0, "%s", e.msg);
    CHECK(pairgen_pairs(a2, b2, same2, NP, labels, N, K, 9, &e) == 0 && !memcmp(a, a2, sizeof a) &&
              !memcmp(b, b2, sizeof b) && !memcmp(same, same2, sizeof same),
          "pairs: same seed, same pairs");
    pairgen_pairs(a2, b2, same2, NP, labels, N, K, 10, &e);
    CHECK(memcmp(a, a2, sizeof a) || memcmp(b, b2, sizeof b), "pairs: another seed, other pairs");
    CHECK(pairgen_triplets(t, NT, labels, N, K, 9, &e) == 0, "%s", e.msg);
    pairgen_triplets(t2, NT, labels, N, K, 9, &e);
    CHECK(!memcmp(t, t2, sizeof t), "triplets: same seed, same triplets");
    ds_close(ds);
    CHECK(ds_write_pairs(p, a, b, same, NP, &e) == 0, "ds_write_pairs: %s", e.msg);
    CHECK(ds_write_triplets(p, t, NT, &e) == 0, "ds_write_triplets: %s", e.msg);
    if (ds_open(&ds, p, &e)) {
        CHECK(0, "%s", e.msg);
        return;
    }
    labels = ds_labels(ds);
    CHECK(ds_meta(ds)->npairs == NP && ds_meta(ds)->ntriplets == NT, "meta npairs/ntriplets");
    DsReader *r;
    ds_reader_open(ds, &r, &e);
    int ok = 1, nsame = 0;
    for (int i = 0; i < NP; i++) {
        uint32_t x, y;
        int sm;
        ok &= ds_read_pair(r, (uint64_t)i, &x, &y, &sm, &e) == 0 && x == a[i] && y == b[i] && sm == same[i];
        ok &= sm == (labels[x] == labels[y]) && x != y && sm == (i % 2 == 0);
        nsame += sm;
    }
    CHECK(ok && nsame == (NP + 1) / 2, "pairs read back, 'same' true to labels, balanced (%d same of %d)",
          nsame, NP);
    ok = 1;
    for (int i = 0; i < NT; i++) {
        uint32_t u[3];
        ok &= ds_read_triplet(r, (uint64_t)i, u, &e) == 0 && !memcmp(u, t + 3 * i, sizeof u);
        ok &= labels[u[0]] == labels[u[1]] && u[0] != u[1] && labels[u[2]] != labels[u[0]];
    }
    CHECK(ok, "triplets read back with anchor/positive/negative labels right: %s", e.msg);
    uint32_t x, y;
    int sm;
    CHECK(ds_read_pair(r, NP, &x, &y, &sm, &e) == -1 && strstr(e.msg, "out of range"),
          "pair index past npairs");
    ds_reader_close(r);
    ds_close(ds);
    /* Replacing: fewer pairs, the old ones gone; a bad record changes nothing. */
    CHECK(ds_write_pairs(p, a + 1, b + 1, same + 1, 10, &e) == 0, "%s", e.msg);
    same[0] = 0; /* a same-class pair flagged different */
    CHECK(ds_write_pairs(p, a, b, same, 10, &e) == -1 && strstr(e.msg, "pairs key 0") &&
              !strncmp(e.msg, p, strlen(p)),
          "bad pair refused, the message starting with the dataset: %s", e.msg);
    ds_open(&ds, p, &e);
    ds_reader_open(ds, &r, &e);
    CHECK(ds_meta(ds)->npairs == 10 && ds_read_pair(r, 0, &x, &y, &sm, &e) == 0 && x == a[1] && y == b[1] &&
              ds_read_pair(r, 10, &x, &y, &sm, &e) == -1,
          "pairs replaced in one transaction");
    ds_reader_close(r);
    ds_close(ds);
    /* Singleton classes are never anchors; impossible cases are errors. */
    int32_t l1[6] = {0, 0, 1, 2, 2, 3};
    uint32_t ta[40 * 3];
    CHECK(pairgen_triplets(ta, 40, l1, 6, 4, 1, &e) == 0, "%s", e.msg);
    ok = 1;
    for (int i = 0; i < 40; i++)
        ok &= l1[ta[3 * i]] != 1 && l1[ta[3 * i]] != 3 && l1[ta[3 * i + 2]] != l1[ta[3 * i]];
    CHECK(ok, "classes of one sample give no anchors");
    int32_t l2[3] = {0, 1, 2}, l3[3] = {1, 1, 1};
    CHECK(pairgen_pairs(a, b, same, 4, l2, 3, 3, 1, &e) == -1 && strstr(e.msg, "2 or more"),
          "all singletons: %s", e.msg);
    CHECK(pairgen_pairs(a, b, same, 4, l3, 3, 2, 1, &e) == -1 && strstr(e.msg, "one class"), "one class: %s",
          e.msg);
}

/* Pairs given to the writer land with the dataset; ds_load_pairs reads them
 * all; bad ids are refused. */
static void test_writer_pairs(void) {
    const char *p = fixture_path("wpairs.lmdb");
    DsWriterSpec spec = {.channels = 1, .height = 2, .width = 2, .classes = 3, .source = "t"};
    DsWriter *w;
    Err e;
    uint8_t px[4] = {1, 2, 3, 4};
    int32_t lab[4] = {0, 0, 2, 2};
    CHECK(ds_writer_create(&w, p, &spec, &e) == 0, "%s", e.msg);
    for (int i = 0; i < 4; i++) ds_writer_add(w, px, lab[i], NULL, &e);
    uint32_t a[3] = {0, 1, 3}, b[3] = {1, 2, 2}, bad[3] = {1, 4, 2};
    CHECK(ds_writer_set_pairs(w, a, bad, 3, &e) == -1 && strstr(e.msg, "pair 1 (1, 4)"), "id 4 of 4: %s",
          e.msg);
    CHECK(ds_writer_set_pairs(w, a, a, 3, &e) == -1 && strstr(e.msg, "pair 0 (0, 0)"), "a == b: %s", e.msg);
    CHECK(ds_writer_set_pairs(w, a, b, 3, &e) == 0, "%s", e.msg);
    CHECK(ds_writer_finish(w, &e) == 0, "%s", e.msg);
    Dataset *ds;
    if (ds_open(&ds, p, &e)) {
        CHECK(0, "%s", e.msg);
        return;
    }
    uint32_t ra[3], rb[3];
    uint8_t same[3];
    CHECK(ds_meta(ds)->npairs == 3 && ds_load_pairs(ds, ra, rb, same, &e) == 0 && !memcmp(ra, a, sizeof a) &&
              !memcmp(rb, b, sizeof b) && same[0] == 1 && same[1] == 0 && same[2] == 1,
          "writer pairs read back with 'same' from the labels: %s", e.msg);
    ds_close(ds);
}

int main(void) {
    fixture_dir_create("dataset");
    make_source();
    test_idx_and_format();
    test_corruption();
    test_interrupted();
    test_masks();
    test_class_masks();
    test_map_growth();
    test_pairs();
    test_writer_pairs();
    CHECK(!fixture_leftover_tmp(), "no .tmp-* directory left in %s", fixture_dir());
    fixture_rm_tree(fixture_dir());
    return test_finish();
}
