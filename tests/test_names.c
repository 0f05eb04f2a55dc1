/* test_names: sample names in datasets (format version 2: writer, reader,
 * uniqueness, damaged names records, version 1 datasets still read), the
 * uniqueness check of the writer and of inspect --verify over 600000 names
 * (bounded memory), the class index's size checked against the file and a
 * limit before it is allocated (a meta claiming 2^24 classes), the
 * per-channel statistics worked out by hand, the names every importer keeps,
 * --split-by group, and the evaluation protocols that use names: within-group
 * trials on a generated Omniglot-like tree, trials files written and read
 * back, scored by hand, and every kind of bad line refused with its line. */
#include <lmdb.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../dist/protocol.h"
#include "../io/dataset.h"
#include "../io/import.h"
#include "fixture_files.h"
#include "test.h"

/* ---- raw LMDB edits ------------------------------------------------------------ */

/* In sub-database db of path: puts (key, val) or, with val NULL, deletes key;
 * with key NULL, empties and deletes db itself. */
static void raw_edit(const char *path, const char *db, const void *key, size_t klen, const void *val,
                     size_t vlen) {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    ASSERT(mdb_env_create(&env) == 0);
    mdb_env_set_maxdbs(env, 16);
    ASSERT(mdb_env_open(env, path, 0, 0644) == 0);
    ASSERT(mdb_txn_begin(env, NULL, 0, &txn) == 0);
    ASSERT(mdb_dbi_open(txn, db, 0, &dbi) == 0);
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    if (!key)
        ASSERT(mdb_drop(txn, dbi, 1) == 0);
    else if (val)
        ASSERT(mdb_put(txn, dbi, &k, &v, 0) == 0);
    else
        ASSERT(mdb_del(txn, dbi, &k, NULL) == 0);
    ASSERT(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
}

static void meta_set(const char *path, const char *key, const char *val) {
    raw_edit(path, "meta", key, strlen(key), val, val ? strlen(val) : 0);
}

static void name_set(const char *path, uint64_t id, const char *val, size_t n) {
    uint8_t k[8];
    for (int i = 0; i < 8; i++) k[i] = (uint8_t)(id >> (56 - 8 * i));
    raw_edit(path, "names", k, 8, val, n);
}

/* ---- writer and reader ------------------------------------------------------------ */

static const char *const three[3] = {"Alpha/character01/0001_01.png", "b c/\xc3\xbc \xc3\x9f.pgm", "x#0"};

/* A 1x2x2 dataset of 3 samples, named `three` if names. */
static void write_three(const char *path, int names) {
    DsWriter *w;
    Err e;
    DsWriterSpec spec = {.channels = 1, .height = 2, .width = 2, .classes = 2, .source = "t"};
    ASSERT(ds_writer_create(&w, path, &spec, &e) == 0);
    uint8_t px[4] = {1, 2, 3, 4};
    for (int i = 0; i < 3; i++)
        ASSERT(ds_writer_add_named(w, px, i % 2, NULL, names ? three[i] : NULL, &e) == 0);
    ASSERT(ds_writer_finish(w, &e) == 0);
}

static void test_writer(void) {
    const char *p = fixture_path("named.lmdb");
    DsWriter *w;
    Err e;
    DsWriterSpec spec = {.channels = 1, .height = 2, .width = 2, .classes = 2, .source = "t"};
    ASSERT(ds_writer_create(&w, p, &spec, &e) == 0);
    uint8_t px[4] = {1, 2, 3, 4};
    for (int i = 0; i < 3; i++)
        CHECK(ds_writer_add_named(w, px, i % 2, NULL, three[i], &e) == 0, "%s", e.msg);
    CHECK(ds_writer_add_named(w, px, 0, NULL, "", &e) == -1 && strstr(e.msg, "empty"), "empty: %s", e.msg);
    CHECK(ds_writer_add_named(w, px, 0, NULL, "a\tb", &e) == -1 && strstr(e.msg, "control"), "tab: %s",
          e.msg);
    char *longname = xmalloc(DS_MAX_NAME + 2);
    memset(longname, 'a', DS_MAX_NAME + 1);
    longname[DS_MAX_NAME + 1] = 0;
    CHECK(ds_writer_add_named(w, px, 0, NULL, longname, &e) == -1 && strstr(e.msg, "longer than 1024"),
          "1025 bytes: %.80s", e.msg);
    longname[DS_MAX_NAME] = 0;
    CHECK(ds_writer_add(w, px, 0, NULL, &e) == -1 &&
              strstr(e.msg, "has no name, but the samples before it have names"),
          "no name after named samples: %s", e.msg);
    CHECK(ds_writer_add_named(w, px, 0, NULL, longname, &e) == 0, "1024 bytes are allowed: %s", e.msg);
    CHECK(ds_writer_finish(w, &e) == 0, "%s", e.msg);
    Dataset *ds;
    if (ds_open(&ds, p, &e)) {
        CHECK(0, "%s", e.msg);
        free(longname);
        return;
    }
    const DsMeta *m = ds_meta(ds);
    CHECK(m->version == 2 && m->has_names && m->count == 4,
          "version 2, names, 4 samples (refused adds left out)");
    CHECK(ds_load_names(ds, &e) == 0 && ds_load_names(ds, &e) == 0, "names load (twice): %s", e.msg);
    int ok = 1;
    for (int i = 0; i < 3; i++)
        ok &= !strcmp(ds_sample_name(ds, (uint64_t)i), three[i]) &&
              ds_find_sample(ds, three[i], strlen(three[i])) == i;
    CHECK(ok && !strcmp(ds_sample_name(ds, 3), longname), "names round trip and are found");
    CHECK(ds_find_sample(ds, "x#", 2) == -1 && ds_find_sample(ds, "x#00", 3) == 2, "lookup by length");
    ds_close(ds);
    free(longname);

    write_three(fixture_path("unnamed.lmdb"), 0);
    DsWriter *w2;
    ASSERT(ds_writer_create(&w2, fixture_path("mixed.lmdb"), &spec, &e) == 0);
    CHECK(ds_writer_add(w2, px, 0, NULL, &e) == 0 && ds_writer_add_named(w2, px, 0, NULL, "n", &e) == -1 &&
              strstr(e.msg, "sample 1: has a name, but the samples before it have none"),
          "a name after unnamed samples: %s", e.msg);
    ds_writer_abort(w2);
    ASSERT(ds_open(&ds, fixture_path("unnamed.lmdb"), &e) == 0);
    CHECK(!ds_meta(ds)->has_names && ds_load_names(ds, &e) == 0 && ds_sample_name(ds, 0) == NULL &&
              ds_find_sample(ds, "x#0", 3) == -1,
          "a dataset written without names has none");
    ds_close(ds);
}

/* C = 3, H = 1, W = 2, two samples. Channel 0: 0 255 / 255 255 -> mean
 * 0.75, E[x^2] 0.75, std sqrt(0.1875); channel 1: all 51 -> 0.2, std 0;
 * channel 2: 0 0 / 0 102 -> mean 0.1, E[x^2] 0.04, std sqrt(0.03). All:
 * mean 0.35, E[x^2] 0.83 / 3, std sqrt(0.83 / 3 - 0.1225). */
static void test_channel_stats(void) {
    const char *p = fixture_path("rgb.lmdb");
    DsWriter *w;
    Err e;
    DsWriterSpec spec = {.channels = 3, .height = 1, .width = 2, .classes = 1, .source = "t"};
    ASSERT(ds_writer_create(&w, p, &spec, &e) == 0);
    uint8_t a[6] = {0, 255, 51, 51, 0, 0}, b[6] = {255, 255, 51, 51, 0, 102};
    ASSERT(ds_writer_add(w, a, 0, NULL, &e) == 0 && ds_writer_add(w, b, 0, NULL, &e) == 0);
    ASSERT(ds_writer_finish(w, &e) == 0);
    Dataset *ds;
    ASSERT(ds_open(&ds, p, &e) == 0);
    const DsMeta *m = ds_meta(ds);
    CHECK_CLOSE(m->channel_mean[0], 0.75, 1e-7, "channel 0 mean");
    CHECK_CLOSE(m->channel_std[0], sqrt(0.1875), 1e-7, "channel 0 std");
    CHECK_CLOSE(m->channel_mean[1], 0.2, 1e-7, "channel 1 mean");
    CHECK(m->channel_std[1] < 1e-6, "channel 1 std 0: %g", m->channel_std[1]);
    CHECK_CLOSE(m->channel_mean[2], 0.1, 1e-7, "channel 2 mean");
    CHECK_CLOSE(m->channel_std[2], sqrt(0.03), 1e-7, "channel 2 std");
    CHECK_CLOSE(m->mean, 0.35, 1e-7, "overall mean");
    CHECK_CLOSE(m->std, sqrt(0.83 / 3 - 0.1225), 1e-7, "overall std");
    ds_close(ds);
    DsWriterSpec wide = {.channels = DS_MAX_CHANNELS + 1, .height = 1, .width = 1, .classes = 1};
    CHECK(ds_writer_create(&w, fixture_path("wide.lmdb"), &wide, &e) == -1 && strstr(e.msg, "channels 1..16"),
          "17 channels refused: %s", e.msg);
}

/* A version 2 dataset edited back into what version 1 wrote. */
static void test_version1(void) {
    const char *p = fixture_path("v1.lmdb");
    write_three(p, 1);
    meta_set(p, "version", "1");
    meta_set(p, "names", NULL);
    meta_set(p, "channel_mean", NULL);
    meta_set(p, "channel_std", NULL);
    raw_edit(p, "names", NULL, 0, NULL, 0);
    Dataset *ds;
    Err e;
    int rc = ds_open(&ds, p, &e);
    CHECK(rc == 0, "a version 1 dataset opens: %s", rc ? e.msg : "");
    if (rc) return;
    const DsMeta *m = ds_meta(ds);
    CHECK(m->version == 1 && !m->has_names && m->channel_mean[0] == m->mean && m->channel_std[0] == m->std &&
              m->mean > 0,
          "version 1: no names, the channel statistics are the overall ones");
    CHECK(ds_load_names(ds, &e) == 0 && ds_sample_name(ds, 1) == NULL, "no names to load");
    DsReader *r;
    uint8_t px[4];
    int32_t l;
    CHECK(ds_reader_open(ds, &r, &e) == 0 && ds_read(r, 2, px, &l, NULL, &e) == 0 && px[3] == 4 && l == 0,
          "its records read");
    ds_reader_close(r);
    ds_close(ds);
    meta_set(p, "version", "3");
    CHECK(ds_open(&ds, p, &e) == -1 && strstr(e.msg, "version 3 is newer"), "version 3 refused: %s", e.msg);
}

/* Opens path and loads its names: the first failing step's message. */
static int open_load(const char *path, Err *e) {
    Dataset *ds;
    if (ds_open(&ds, path, e)) return -1;
    int rc = ds_load_names(ds, e);
    ds_close(ds);
    return rc;
}

/* Both ds_load_names and the bounded ds_verify_names (inspect --verify)
 * refuse the damage with one line naming path and containing want. */
static void expect_damage(const char *path, const char *what, const char *want) {
    Err e;
    int rc = open_load(path, &e);
    CHECK(rc == -1 && strstr(e.msg, path) && strstr(e.msg, want) && !strchr(e.msg, '\n'),
          "%s: want one line with '%s', got: %s", what, want, rc ? e.msg : "ok");
    Dataset *ds;
    rc = ds_open(&ds, path, &e);
    if (rc == 0) {
        rc = ds_verify_names(ds, &e);
        ds_close(ds);
    }
    CHECK(rc == -1 && strstr(e.msg, path) && strstr(e.msg, want) && !strchr(e.msg, '\n'),
          "%s, verified: want one line with '%s', got: %s", what, want, rc ? e.msg : "ok");
}

static void test_damage(void) {
    char p[160];
    int n = 0;
#define FRESH() (snprintf(p, sizeof p, "%s/dmg%d.lmdb", fixture_dir(), n++), write_three(p, 1), p)
    name_set(FRESH(), 1, "bad\nname", 8);
    expect_damage(p, "newline in a name", "names key 1: the name (8 bytes) holds a control character");
    name_set(FRESH(), 2, three[0], strlen(three[0]));
    expect_damage(p, "a name twice",
                  "names key 2: 'Alpha/character01/0001_01.png' is also the name of sample 0");
    name_set(FRESH(), 0, "", 0);
    expect_damage(p, "empty name", "names key 0: the name (0 bytes) empty");
    name_set(FRESH(), 2, NULL, 0);
    expect_damage(p, "a names record missing", "names holds 2 records, expected 3");
    name_set(FRESH(), 2, NULL, 0);
    name_set(p, 7, "seven", 5);
    expect_damage(p, "a names record under a wrong id", "names record 2: key is not sample id 2");
    uint8_t k7[7] = {0};
    FRESH();
    name_set(p, 2, NULL, 0);
    raw_edit(p, "names", k7, 7, "short", 5);
    expect_damage(p, "a 7-byte key", "names record 0: key is not sample id 0");
    raw_edit(FRESH(), "names", NULL, 0, NULL, 0);
    expect_damage(p, "names dropped, meta still says names", "names holds 0 records, expected 3");
    meta_set(FRESH(), "names", "0");
    expect_damage(p, "meta names 0 with names present", "names holds 3 records, expected 0");
    meta_set(FRESH(), "names", "2");
    expect_damage(p, "meta names 2", "meta key names = '2'");
    meta_set(FRESH(), "names", NULL);
    expect_damage(p, "meta names missing in version 2", "meta key names missing");
    meta_set(FRESH(), "channel_mean", "0.5,0.5");
    expect_damage(p, "two channel means for one channel",
                  "channel_mean = '0.5,0.5', expected 1 comma-separated");
    meta_set(FRESH(), "channel_std", "2");
    expect_damage(p, "a std above 1", "channel_std = '2'");
    meta_set(FRESH(), "channel_mean", NULL);
    expect_damage(p, "no channel_mean in version 2", "meta key channel_mean missing");
    meta_set(FRESH(), "channels", "17");
    expect_damage(p, "17 channels", "meta key channels = '17'");
#undef FRESH
}

/* ---- many names: uniqueness in bounded memory ------------------------------------------- */

#define MANY 600000 /* names: over 2 of names_unique's temporary files (2^18 each) */

/* Name of sample i: "n<i>", but samples 123456, 200000 and 250001 repeat
 * the names of 17, 40 and 3 when dups. */
static void many_name(char *buf, size_t cap, uint32_t i, int dups) {
    uint32_t j = i;
    if (dups) j = i == 123456 ? 17 : i == 200000 ? 40 : i == 250001 ? 3 : i;
    snprintf(buf, cap, "n%u", j);
}

static int write_many(const char *path, int dups, Err *e) {
    DsWriter *w;
    DsWriterSpec spec = {.channels = 1, .height = 1, .width = 1, .classes = 3, .source = "t"};
    ASSERT(ds_writer_create(&w, path, &spec, e) == 0);
    for (uint32_t i = 0; i < MANY; i++) {
        char name[32];
        uint8_t px = (uint8_t)i;
        many_name(name, sizeof name, i, dups);
        if (ds_writer_add_named(w, &px, (int32_t)(i % 3), NULL, name, e)) {
            ds_writer_abort(w);
            return -1;
        }
    }
    return ds_writer_finish(w, e);
}

/* The writer and inspect --verify find repeated names among 600000 without
 * holding them: the first sample to repeat an earlier name is named with
 * it (worked out by hand from many_name: 123456 repeats 17), and distinct
 * names pass. */
static void test_many_names(void) {
    const char *p = fixture_path("many.lmdb"), *q = fixture_path("manydup.lmdb");
    Err e;
    CHECK(write_many(q, 1, &e) == -1 && strstr(e.msg, "two samples are called 'n17' (17 and 123456)") &&
              !fixture_exists(q),
          "the writer refuses the first repeated name, naming both samples: %s", e.msg);
    int rc = write_many(p, 0, &e);
    CHECK(rc == 0, "600000 distinct names are written: %s", rc ? e.msg : "");
    if (rc) return;
    Dataset *ds;
    ASSERT(ds_open(&ds, p, &e) == 0);
    CHECK(ds_verify_names(ds, &e) == 0, "600000 distinct names verify: %s", e.msg);
    ds_close(ds);
    name_set(p, 599999, "n5", 2);
    name_set(p, 300000, "n299999", 7);
    ASSERT(ds_open(&ds, p, &e) == 0);
    rc = ds_verify_names(ds, &e);
    CHECK(rc == -1 && strstr(e.msg, "names key 300000: 'n299999' is also the name of sample 299999"),
          "verify names the first repeat: %s", rc ? e.msg : "ok");
    ds_close(ds);
}

/* ---- the class index's size, checked before it is allocated ------------------------------- */

/* ds_open of path in a child whose address space may grow by 64 MB only:
 * 1 if it refuses with want in one line, 0 otherwise (an allocation past
 * the bound kills the child). */
static int open_in_64mb(const char *path, const char *want) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        long vm = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (!f || fscanf(f, "%ld", &vm) != 1) _exit(3);
        fclose(f);
        struct rlimit r;
        r.rlim_cur = r.rlim_max = (rlim_t)vm * (rlim_t)sysconf(_SC_PAGESIZE) + (64u << 20);
        if (setrlimit(RLIMIT_AS, &r)) _exit(3);
        Dataset *ds;
        Err e;
        int rc = ds_open(&ds, path, &e);
        if (rc == 0) _exit(1);
        fprintf(stderr, "    (child) %s\n", e.msg);
        _exit(strstr(e.msg, want) && !strchr(e.msg, '\n') ? 0 : 2);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void test_index_size(void) {
    char p[160];
    snprintf(p, sizeof p, "%s/claims.lmdb", fixture_dir());
    write_three(p, 1);
    meta_set(p, "classes", "16777216");
    CHECK(open_in_64mb(p, "by_class has 2 entries for 16777216 classes"),
          "2^24 classes claimed by meta, 2 in the file: refused before 256 MB are allocated for them");
    meta_set(p, "classes", "3");
    CHECK(open_in_64mb(p, "by_class has 2 entries for 3 classes"), "one class more than by_class holds");
    meta_set(p, "classes", "2");
    Dataset *ds;
    Err e;
    /* 3 samples, 2 classes of 1-byte names "0" "1": 8 x 3 + 32 x 2 + 2 x 256 at most */
    int rc = ds_open_within(&ds, p, 100, "a limit of 100 bytes", &e);
    CHECK(rc == -1 && strstr(e.msg, p) && strstr(e.msg, "class index (3 samples, 2 classes)") &&
              strstr(e.msg, "a limit of 100 bytes"),
          "a class index over the caller's limit is refused: %s", rc ? e.msg : "ok");
    rc = ds_open_within(&ds, p, 1000, "a limit of 1000 bytes", &e);
    CHECK(rc == 0, "within the limit: %s", rc ? e.msg : "");
    if (!rc) ds_close(ds);
}

/* ---- importers ------------------------------------------------------------------------ */

static const char *const alphabets[5] = {"Alpha", "Beta", "Gamma", "Delta", "Eps"};
static const int chars5[5] = {3, 2, 4, 3, 2};

static int import(ImportOptions o, Err *e) {
    ImportResult r;
    return import_run(&o, &r, e);
}

static void test_import_names(void) {
    Err e;
    fixture_omniglot_tree("omni", 5, alphabets, chars5, 3, 4);
    char root[512];
    snprintf(root, sizeof root, "%s/omni//", fixture_dir());
    ImportOptions o = {.format = IMPORT_OMNIGLOT, .out = fixture_path("omni.lmdb"), .roots = {root}};
    CHECK(import(o, &e) == 0, "%s", e.msg);
    Dataset *ds;
    if (ds_open(&ds, fixture_path("omni.lmdb"), &e) || ds_load_names(ds, &e)) {
        CHECK(0, "%s", e.msg);
        return;
    }
    /* Written Alpha 0001-0003, Beta 0004-0005, Gamma 0006-0009, Delta, Eps;
     * stored sorted: Alpha, Beta, Delta, Eps, Gamma. */
    CHECK(ds_meta(ds)->count == 14 * 3 && !strcmp(ds_sample_name(ds, 0), "Alpha/character01/0001_01.png") &&
              !strcmp(ds_sample_name(ds, 4), "Alpha/character02/0002_02.png") &&
              !strcmp(ds_sample_name(ds, 9), "Beta/character01/0004_01.png") &&
              !strcmp(ds_sample_name(ds, 41), "Gamma/character04/0009_03.png"),
          "omniglot names are the paths under the root (a trailing '//' is not part of them): %s",
          ds_sample_name(ds, 0));
    int ok = 1;
    for (uint64_t i = 0; i < ds_meta(ds)->count; i++) {
        const char *cls = ds_class_name(ds, (uint32_t)ds_labels(ds)[i]), *name = ds_sample_name(ds, i);
        ok &= !strncmp(name, cls, strlen(cls)) && name[strlen(cls)] == '/';
    }
    CHECK(ok, "every name starts with its class");
    ds_close(ds);

    /* idx: FILE#INDEX with the images file's base name. */
    uint8_t px[5 * 4], lab[5] = {0, 1, 0, 1, 2};
    for (int i = 0; i < 20; i++) px[i] = (uint8_t)i;
    uint32_t di[3] = {5, 2, 2}, dl[1] = {5};
    fixture_write_idx(fixture_path("imgs.idx.gz"), 1, 0x803, di, 3, px, sizeof px, 0);
    fixture_write_idx(fixture_path("labs.idx"), 0, 0x801, dl, 1, lab, 5, 0);
    ImportOptions x = {.format = IMPORT_IDX,
                       .out = fixture_path("idx.lmdb"),
                       .images = fixture_path("imgs.idx.gz"),
                       .labels = fixture_path("labs.idx"),
                       .split = IMPORT_SPLIT_SAMPLE,
                       .test_fraction = 0.5,
                       .test_out = fixture_path("idx-test.lmdb"),
                       .seed = 3};
    CHECK(import(x, &e) == 0, "%s", e.msg);
    ok = 1;
    int seen[5] = {0};
    for (int d = 0; d < 2; d++) {
        if (ds_open(&ds, d ? x.test_out : x.out, &e) || ds_load_names(ds, &e)) {
            CHECK(0, "%s", e.msg);
            return;
        }
        DsReader *r;
        ASSERT(ds_reader_open(ds, &r, &e) == 0);
        for (uint64_t i = 0; i < ds_meta(ds)->count; i++) {
            int k;
            uint8_t got[4];
            ok &= sscanf(ds_sample_name(ds, i), "imgs.idx.gz#%d", &k) == 1 && k >= 0 && k < 5 &&
                  ds_read(r, i, got, NULL, NULL, &e) == 0 && got[0] == 4 * k;
            if (ok) seen[k]++;
        }
        ds_reader_close(r);
        ds_close(ds);
    }
    CHECK(ok && seen[0] == 1 && seen[1] == 1 && seen[2] == 1 && seen[3] == 1 && seen[4] == 1,
          "idx names imgs.idx.gz#K name image K, each once over both splits");
}

static void test_split_group(void) {
    Err e;
    char root[512];
    snprintf(root, sizeof root, "%s/omni", fixture_dir());
    ImportOptions o = {.format = IMPORT_OMNIGLOT,
                       .out = fixture_path("g-train.lmdb"),
                       .roots = {root},
                       .split = IMPORT_SPLIT_GROUP,
                       .test_fraction = 0.4,
                       .test_out = fixture_path("g-test.lmdb"),
                       .seed = 5};
    CHECK(import(o, &e) == 0, "%s", e.msg);
    /* round(0.4 x 5 groups) = 2 groups go to the test set, whole. */
    int in[2][5] = {{0}}, samples = 0, ok = 1;
    for (int d = 0; d < 2; d++) {
        Dataset *ds;
        if (ds_open(&ds, d ? o.test_out : o.out, &e) || ds_load_names(ds, &e)) {
            CHECK(0, "%s", e.msg);
            return;
        }
        for (uint32_t c = 0; c < ds_meta(ds)->classes; c++)
            for (int g = 0; g < 5; g++)
                if (!strncmp(ds_class_name(ds, c), alphabets[g], ds_group_len(ds_class_name(ds, c))) &&
                    strlen(alphabets[g]) == ds_group_len(ds_class_name(ds, c)))
                    in[d][g]++;
        for (uint64_t i = 0; i < ds_meta(ds)->count; i++) {
            const char *cls = ds_class_name(ds, (uint32_t)ds_labels(ds)[i]);
            ok &= !strncmp(ds_sample_name(ds, i), cls, strlen(cls));
        }
        samples += (int)ds_meta(ds)->count;
        ds_close(ds);
    }
    int test_groups = 0, whole = 1;
    for (int g = 0; g < 5; g++) {
        test_groups += in[1][g] > 0;
        whole &= (in[0][g] == chars5[g] && in[1][g] == 0) || (in[1][g] == chars5[g] && in[0][g] == 0);
    }
    CHECK(test_groups == 2 && whole && samples == 42 && ok,
          "2 whole groups in the test set (%d), every class once, names follow their labels", test_groups);

    ImportOptions one = o;
    const char *only[1] = {"Solo"};
    int c1[1] = {3};
    fixture_omniglot_tree("solo", 1, only, c1, 2, 4);
    snprintf(root, sizeof root, "%s/solo", fixture_dir());
    one.roots[0] = root;
    one.out = fixture_path("s-train.lmdb");
    one.test_out = fixture_path("s-test.lmdb");
    CHECK(import(one, &e) == -1 && strstr(e.msg, "cannot split by group: the source has 1 group"), "%s",
          e.msg);
    CHECK(!fixture_exists(one.out) && !fixture_exists(one.test_out), "nothing written");
}

/* ---- protocols and trials files ------------------------------------------------------- */

/* Perfect similarity, inverted for queries of group Beta. */
static double sim_beta_wrong(void *ctx, int i, int j) {
    Dataset *ds = ctx;
    const int32_t *l = ds_labels(ds);
    int beta = !strncmp(ds_class_name(ds, (uint32_t)l[i]), "Beta/", 5);
    return (l[i] == l[j]) != beta;
}

static void write_text(const char *name, const char *text) {
    fixture_write_file(fixture_path(name), text, strlen(text));
}

static void expect_file_error(Dataset *ds, const char *name, const char *text, const char *want) {
    write_text(name, text);
    Trials t;
    Err e;
    int rc = protocol_read_trials(&t, ds, fixture_path(name), &e);
    CHECK(rc == -1 && strstr(e.msg, fixture_path(name)) && strstr(e.msg, want) && !strchr(e.msg, '\n'),
          "%s: want '%s', got: %s", name, want, rc ? e.msg : "accepted");
    if (!rc) trials_free(&t);
}

static void test_protocol(void) {
    Dataset *ds;
    Err e;
    if (ds_open(&ds, fixture_path("omni.lmdb"), &e)) {
        CHECK(0, "%s", e.msg);
        return;
    }
    GroupEval g = {2, 1, 300, 4, TRIALS_PAIRED, "Beta,Gamma"};
    Trials t, u;
    int rc = protocol_group_trials(&t, ds, &g, &e);
    CHECK(rc == 0, "paired trials over Beta and Gamma: %s", rc ? e.msg : "");
    if (rc) {
        ds_close(ds);
        return;
    }
    int ok = 1;
    for (int i = 0; i < t.n; i++) {
        const char *q = ds_sample_name(ds, t.query[i]), *s0 = ds_sample_name(ds, t.support[2 * i]),
                   *s1 = ds_sample_name(ds, t.support[2 * i + 1]);
        ok &= (!strncmp(q, "Beta/", 5) || !strncmp(q, "Gamma/", 6)) && strncmp(q, s0, 4) == 0 &&
              !strcmp(s0 + strlen(s0) - 6, s1 + strlen(s1) - 6) &&
              strcmp(q + strlen(q) - 6, s0 + strlen(s0) - 6);
    }
    CHECK(ok, "every trial within Beta or Gamma, supports of one drawing, the query of another");

    /* Per group by hand: Beta's trials all wrong, Gamma's all right. */
    NwayScore sc;
    protocol_score(&sc, &t, ds, sim_beta_wrong, ds);
    int ib = 1, ig = 4; /* sorted groups: Alpha Beta Delta Eps Gamma */
    CHECK(sc.ngroups == 5 && !strcmp(sc.group_names[ib], "Beta") && !strcmp(sc.group_names[ig], "Gamma") &&
              sc.group_acc[ib] == 0.0 && sc.group_acc[ig] == 1.0 &&
              sc.group_trials[ib] + sc.group_trials[ig] == 300 && sc.groups_used == 2 &&
              sc.accuracy == sc.group_trials[ig] / 300.0 && isnan(sc.group_acc[0]),
          "Beta 0 (%d trials), Gamma 1 (%d), overall their share", sc.group_trials[ib], sc.group_trials[ig]);
    nway_score_free(&sc);

    /* Written and read back: the same trials. */
    CHECK(protocol_write_trials(&t, ds, fixture_path("t.trials"), &e) == 0, "%s", e.msg);
    rc = protocol_read_trials(&u, ds, fixture_path("t.trials"), &e);
    CHECK(rc == 0 && u.n == t.n && u.n_way == 2 && u.k_shot == 1 &&
              !memcmp(u.query, t.query, 4 * (size_t)t.n) && !memcmp(u.support, t.support, 8 * (size_t)t.n) &&
              !memcmp(u.answer, t.answer, 4 * (size_t)t.n) && !memcmp(u.group, t.group, 4 * (size_t)t.n),
          "trials file round trip: %s", rc ? e.msg : "");
    if (!rc) trials_free(&u);
    trials_free(&t);

    GroupEval bad = {2, 1, 10, 1, TRIALS_ANY, "Beta,Omega"};
    CHECK(protocol_group_trials(&t, ds, &bad, &e) == -1 && strstr(e.msg, "no group 'Omega'"), "%s", e.msg);

    /* A hand-written 2-shot file: 3 trials, Beta's wrong by sim_beta_wrong. */
    write_text("hand.trials",
               "# two-shot\n\nkshot 2\r\n"
               "Alpha/character01/0001_03.png\tAlpha/character01/0001_01.png\tAlpha/character01/"
               "0001_02.png\tAlpha/character02/0002_01.png\tAlpha/character02/0002_02.png\t1\n"
               "Beta/character02/0005_01.png\tBeta/character01/0004_01.png\tBeta/character01/"
               "0004_02.png\tBeta/character02/0005_02.png\tBeta/character02/0005_03.png\t2\n"
               "Eps/character01/0013_03.png\tDelta/character01/0010_01.png\tDelta/character01/"
               "0010_02.png\tEps/character01/0013_01.png\tEps/character01/0013_02.png\t2\n");
    rc = protocol_read_trials(&t, ds, fixture_path("hand.trials"), &e);
    CHECK(rc == 0 && t.n == 3 && t.k_shot == 2 && t.n_way == 2, "hand file: %s", rc ? e.msg : "");
    if (!rc) {
        protocol_score(&sc, &t, ds, sim_beta_wrong, ds);
        CHECK(fabs(sc.accuracy - 2.0 / 3) < 1e-15 && sc.groups_used == 3 && sc.group_acc[1] == 0.0 &&
                  sc.group_trials[3] == 1,
              "2 of 3 right (Beta's wrong), the Eps query counts for Eps: %g", sc.accuracy);
        nway_score_free(&sc);
        trials_free(&t);
    }

    const char *A1 = "Alpha/character01/0001_01.png", *A2 = "Alpha/character01/0001_02.png",
               *B1 = "Alpha/character02/0002_01.png";
    char line[1024];
    snprintf(line, sizeof line, "# c\n%s\t%s\t%s\t1\n%s\t%s\tAlpha/character09/0001_01.png\t1\n", A2, A1, B1,
             A2, A1);
    expect_file_error(ds, "name.trials", line,
                      ":3: field 3: no sample named 'Alpha/character09/0001_01.png'");
    snprintf(line, sizeof line, "%s\t%s\t1\n", A2, A1);
    expect_file_error(ds, "short.trials", line, ":1: 3 fields: a trial is QUERY");
    snprintf(line, sizeof line, "%s\t%s\t%s\t3\n", A2, A1, B1);
    expect_file_error(ds, "answer.trials", line, ":1: answer '3' is not a class number in 1..2");
    snprintf(line, sizeof line, "%s\t%s\t%s\t2\n", A2, A1, B1);
    expect_file_error(ds, "wrong.trials", line, ":1: answer 2, but the query");
    snprintf(line, sizeof line, "%s\t%s\t%s\t1\n", A1, A1, B1);
    expect_file_error(ds, "self.trials", line,
                      ":1: the query 'Alpha/character01/0001_01.png' is also a support");
    snprintf(line, sizeof line, "kshot 2\n%s\t%s\t%s\t%s\tAlpha/character02/0002_02.png\t1\n",
             "Alpha/character01/0001_03.png", A1, B1, A2);
    expect_file_error(ds, "mixed.trials", line, ":2: class 1: supports");
    snprintf(line, sizeof line, "%s\t%s\t%s\t1\n%s\t%s\t%s\tAlpha/character03/0003_01.png\t1\n", A2, A1, B1,
             A2, A1, B1);
    expect_file_error(ds, "ways.trials", line, ":2: 3 classes, but the first trial has 2");
    snprintf(line, sizeof line, "%s\t%s\t%s\t1\nkshot 1\n", A2, A1, B1);
    expect_file_error(ds, "late.trials", line, ":2: 'kshot' must come before the first trial");
    expect_file_error(ds, "junk.trials", "# ok\nhello world\n", ":2: 'hello world' is neither a trial");
    expect_file_error(ds, "empty.trials", "# nothing\n", "no trials");
    snprintf(line, sizeof line, "%s\t%s\t%s\t1\n%s\t%s\t%s\t1\n", A2, A1, A1, A2, A1, B1);
    expect_file_error(ds, "same.trials", line, ":1: classes 1 and 2 have the same label");
    fixture_write_file(fixture_path("nul.trials"), "# a\n# b\nx\0y\n", 12);
    Trials tn;
    CHECK(protocol_read_trials(&tn, ds, fixture_path("nul.trials"), &e) == -1 &&
              strstr(e.msg, ":3: NUL byte"),
          "NUL: %s", e.msg);
    CHECK(protocol_read_trials(&tn, ds, fixture_path("none.trials"), &e) == -1 &&
              strstr(e.msg, "cannot open"),
          "missing file: %s", e.msg);
    ds_close(ds);

    /* Datasets without names cannot use them. */
    ASSERT(ds_open(&ds, fixture_path("unnamed.lmdb"), &e) == 0);
    CHECK(protocol_read_trials(&tn, ds, fixture_path("hand.trials"), &e) == -1 &&
              strstr(e.msg, "no sample names"),
          "%s", e.msg);
    ds_close(ds);
}

int main(void) {
    fixture_dir_create("names");
    test_writer();
    test_channel_stats();
    test_version1();
    test_damage();
    test_many_names();
    test_index_size();
    test_import_names();
    test_split_group();
    test_protocol();
    CHECK(!fixture_leftover_tmp(), "no .tmp-* left in %s", fixture_dir());
    fixture_rm_tree(fixture_dir());
    return test_finish();
}
