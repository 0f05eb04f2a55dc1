/* Tests of io/checkpoint: bit-exact round trips, the on-disk layout checked
 * by hand against the documented format, rejection of every truncation and
 * of bit flips everywhere, atomic replacement under injected write faults,
 * rotation, and newest-valid lookup. Also the driver of
 * tests/e2e_ckpt_fullfs.sh on a real small filesystem:
 *   test_checkpoint --fill DIR      write checkpoints into DIR until it is full
 *   test_checkpoint --readonly DIR  DIR (filled as above) is now read-only */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "../io/checkpoint.h"
#include "../nn/util.h"
#include "test.h"

/* ---- helpers ------------------------------------------------------------- */

static unsigned char *file_load(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = xmalloc((size_t)len);
    size_t got = fread(b, 1, (size_t)len, f);
    fclose(f);
    *n = got;
    return b;
}

static void file_save(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    ASSERT(f);
    ASSERT(fwrite(b, 1, n, f) == n);
    ASSERT(fclose(f) == 0);
}

static int file_equals(const char *path, const unsigned char *b, size_t n) {
    size_t m;
    unsigned char *x = file_load(path, &m);
    int same = x && m == n && memcmp(x, b, n) == 0;
    free(x);
    return same;
}

static int count_tmp(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int k = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) k += strstr(de->d_name, ".tmp-") != NULL;
    closedir(d);
    return k;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}
static void rm_rf(const char *dir) { nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static uint32_t le32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t le64(const unsigned char *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }
static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Recomputes table, header and file CRCs after an edit, following the
 * documented layout (so crafted inconsistencies get past the CRCs). */
static void fix_crcs(unsigned char *b, size_t n) {
    uint32_t cnt = le32(b + 12);
    put32(b + 24, (uint32_t)crc32(0, b + 32, 72 * cnt));
    put32(b + 28, (uint32_t)crc32(0, b, 28));
    put32(b + n - 4, (uint32_t)crc32(0, b, (uInt)(n - 4)));
}

static void fill_random(unsigned char *b, size_t n, uint64_t id) {
    Rng r;
    rng_seed(&r, 17, RNG_TEST, id);
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)rng_u64(&r);
}

/* Runs fn with stderr sent to a file; returns what it printed (caller frees). */
static char *capture_stderr(int (*fn)(void *), void *arg, int *rc) {
    char path[] = "/tmp/ckpt-stderr.XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    *rc = fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    size_t n;
    unsigned char *b = file_load(path, &n);
    unlink(path);
    char *s = xmalloc(n + 1);
    memcpy(s, b, n);
    s[n] = 0;
    free(b);
    return s;
}

/* stderr to /dev/null until quiet_end. */
static int quiet_begin(void) {
    fflush(stderr);
    int saved = dup(2), devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    close(devnull);
    return saved;
}
static void quiet_end(int saved) {
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
}

/* A ~2 KB checkpoint with every kind of section, for the damage tests. */
static const char *CONFIG_TEXT = "[run]\ndir = runs/x\nseed = 1\n\n[optim]\ntype = adam\nlr = 0.001\n";
static CkptWriter *small_writer(unsigned char *rnd, float *f, size_t nf) {
    CkptWriter *w = ckpt_writer_new();
    ckpt_add(w, "config", CONFIG_TEXT, strlen(CONFIG_TEXT));
    ckpt_add(w, "empty", NULL, 0);
    ckpt_add(w, "state", rnd, 1200);
    ckpt_add_f32(w, "params", f, nf);
    ckpt_add(w, "text:note", "resumed twice\n", 14);
    return w;
}

/* ---- round trip and layout ----------------------------------------------- */

static void test_round_trip(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/rt.smpi", dir);
    size_t big = 10u << 20, comp = 4u << 20, nf = 300001;
    unsigned char *rnd = xmalloc(big), *zeros = xmalloc(comp);
    fill_random(rnd, big, 1);
    for (size_t i = 0; i < comp; i++) zeros[i] = (unsigned char)(i % 7 == 0 ? i / 4096 : 0);
    float *f = xmalloc(nf * sizeof *f);
    Rng r;
    rng_seed(&r, 3, RNG_TEST, 2);
    for (size_t i = 0; i < nf; i++) f[i] = (float)(0.05 * rng_normal(&r));
    char tmpbuf[40] = "copied before being overwritten";

    CkptWriter *w = ckpt_writer_new();
    ckpt_add(w, "empty", NULL, 0);
    ckpt_add(w, "small", "hello", 5);
    ckpt_add(w, "random", rnd, big);
    ckpt_add(w, "compressible", zeros, comp);
    ckpt_add_f32(w, "params", f, nf);
    ckpt_add_f32(w, "no floats", NULL, 0);
    ckpt_add_copy(w, "copy", tmpbuf, sizeof tmpbuf);
    ckpt_add(w, "name-of-31-chars_0123456789abcd", "x", 1);
    memset(tmpbuf, 'Z', sizeof tmpbuf);
    Err e;
    CHECK(ckpt_write(w, path, &e) == 0, "write: %s", e.msg);
    CHECK(count_tmp(dir) == 0, "no temp file after a good write");

    Ckpt *c = NULL;
    CHECK(ckpt_read(&c, path, NULL, &e) == 0, "read: %s", e.msg);
    if (c) {
        const char *names[] = {"empty",  "small",     "random", "compressible",
                               "params", "no floats", "copy",   "name-of-31-chars_0123456789abcd"};
        CHECK(ckpt_count(c) == 8, "count %d", ckpt_count(c));
        for (int i = 0; i < 8 && i < ckpt_count(c); i++)
            CHECK(!strcmp(ckpt_name(c, i), names[i]), "name %d: %s", i, ckpt_name(c, i));
        size_t n;
        const unsigned char *p;
        p = ckpt_get(c, "empty", &n);
        CHECK(p && n == 0, "empty section present with 0 bytes");
        p = ckpt_get(c, "small", &n);
        CHECK(p && n == 5 && !memcmp(p, "hello", 5), "small");
        p = ckpt_get(c, "random", &n);
        CHECK(p && n == big && !memcmp(p, rnd, big), "10 MB random bit-exact");
        CHECK(((uintptr_t)p & 15) == 0, "section data 16-byte aligned");
        p = ckpt_get(c, "compressible", &n);
        CHECK(p && n == comp && !memcmp(p, zeros, comp), "compressible bit-exact");
        p = ckpt_get(c, "params", &n);
        CHECK(p && n == nf * 4 && !memcmp(p, f, nf * 4), "f32 (shuffled, 2 blocks) bit-exact");
        p = ckpt_get(c, "no floats", &n);
        CHECK(p && n == 0, "empty f32 section");
        p = ckpt_get(c, "copy", &n);
        CHECK(p && n == 40 && !strcmp((const char *)p, "copied before being overwritten"),
              "ckpt_add_copy copies");
        CHECK(ckpt_get(c, "absent", &n) == NULL, "missing section gives NULL");
        CHECK(ckpt_require(c, "params", nf * 4, &e) != NULL, "require right size");
        CHECK(ckpt_require(c, "params", 12, &e) == NULL && strstr(e.msg, path) && strstr(e.msg, "'params'"),
              "require wrong size names file and section: %s", e.msg);
        CHECK(ckpt_require(c, "absent", CKPT_ANY_SIZE, &e) == NULL && strstr(e.msg, "'absent'"),
              "require absent");
        CHECK(ckpt_stored_size(c, 3) < comp / 50, "compressible shrinks: %llu",
              (unsigned long long)ckpt_stored_size(c, 3));
        CHECK(ckpt_stored_size(c, 2) < big + big / 500, "random barely grows: %llu",
              (unsigned long long)ckpt_stored_size(c, 2));
        CHECK(ckpt_stored_size(c, 4) < nf * 4 * 0.9, "shuffled floats compress: %.3f",
              (double)ckpt_stored_size(c, 4) / (double)(nf * 4));
        CHECK(ckpt_size(c, 2) == big && !strcmp(ckpt_path(c), path), "size and path accessors");
        ckpt_free(c);
    }
    /* Same sections, same bytes: writing is deterministic. */
    char path2[600];
    snprintf(path2, sizeof path2, "%s.again", path);
    size_t n1, n2;
    CHECK(ckpt_write(w, path2, &e) == 0, "second write: %s", e.msg);
    unsigned char *b1 = file_load(path, &n1), *b2 = file_load(path2, &n2);
    CHECK(b1 && b2 && n1 == n2 && !memcmp(b1, b2, n1), "deterministic bytes");
    free(b1);
    free(b2);
    ckpt_writer_free(w);
    w = ckpt_writer_new(); /* no sections at all */
    CHECK(ckpt_write(w, path2, &e) == 0 && ckpt_read(&c, path2, NULL, &e) == 0 && ckpt_count(c) == 0 &&
              ckpt_verify(path2, NULL, &e) == 0,
          "empty checkpoint: %s", e.msg);
    ckpt_free(c);
    ckpt_writer_free(w);
    free(rnd);
    free(zeros);
    free(f);
    unlink(path);
    unlink(path2);
}

/* Parses the small file by hand per the header comment of checkpoint.h. */
static void test_layout(const unsigned char *b, size_t n, const unsigned char *rnd, const float *f,
                        size_t nf) {
    CHECK(n > 44 && !memcmp(b, "SMPICKPT", 8), "magic");
    CHECK(le32(b + 8) == 1, "version 1");
    uint32_t cnt = le32(b + 12);
    CHECK(cnt == 5, "5 sections, got %u", cnt);
    CHECK(le64(b + 16) == n, "file size field");
    CHECK(le32(b + 24) == (uint32_t)crc32(0, b + 32, 72 * cnt), "table CRC");
    CHECK(le32(b + 28) == (uint32_t)crc32(0, b, 28), "header CRC");
    CHECK(!memcmp(b + n - 12, "SMPI-END", 8), "end magic");
    CHECK(le32(b + n - 4) == (uint32_t)crc32(0, b, (uInt)(n - 4)), "whole-file CRC");
    const void *want[] = {CONFIG_TEXT, "", rnd, f, "resumed twice\n"};
    size_t want_n[] = {strlen(CONFIG_TEXT), 0, 1200, nf * 4, 14};
    uint64_t off = 32 + 72 * cnt;
    for (uint32_t i = 0; i < cnt && i < 5; i++) {
        const unsigned char *t = b + 32 + 72 * i;
        uint64_t o = le64(t + 32), cs = le64(t + 40), rs = le64(t + 48);
        CHECK(o == off && rs == want_n[i], "entry %u offset %llu size %llu", i, (unsigned long long)o,
              (unsigned long long)rs);
        CHECK(t[31] == 0 && le32(t + 68) == 0 && le32(t + 64) == (i == 3 ? 1u : 0u), "entry %u padding/flags",
              i);
        CHECK(le32(t + 60) == (uint32_t)crc32(0, b + o, (uInt)cs), "entry %u stored CRC", i);
        CHECK(le32(t + 56) == (uint32_t)crc32(0, want[i], (uInt)rs), "entry %u raw CRC", i);
        unsigned char *raw = xmalloc(rs + 1);
        uLongf got = rs + 1;
        int zr = uncompress(raw, &got, b + o, cs);
        if (i == 3) { /* byte-planar: byte j of float k at j*m + k */
            unsigned char *un = xmalloc(rs);
            size_t m = rs / 4;
            for (size_t k = 0; k < m; k++)
                for (int j = 0; j < 4; j++) un[4 * k + j] = raw[j * m + k];
            memcpy(raw, un, rs);
            free(un);
        }
        CHECK(zr == Z_OK && got == rs && !memcmp(raw, want[i], rs),
              "entry %u: plain zlib stream of the bytes", i);
        free(raw);
        off += cs;
    }
    CHECK(off + 12 == n, "payloads back to back, then the trailer");
}

/* ---- damage ---------------------------------------------------------------- */

/* 1 if reading b[0..n) from path fails cleanly, naming path (and `want`). */
static int rejects(const char *path, const unsigned char *b, size_t n, const char *want, char *msg,
                   size_t msgn) {
    file_save(path, b, n);
    Ckpt *c = (Ckpt *)1;
    Err e = {{0}};
    int rc = ckpt_read(&c, path, NULL, &e);
    snprintf(msg, msgn, "%s", e.msg);
    if (rc == 0) ckpt_free(c);
    return rc == -1 && c == NULL && strstr(e.msg, path) && (!want || strstr(e.msg, want));
}

static void test_damage(const char *dir, const unsigned char *good, size_t n) {
    char path[512], msg[1024];
    snprintf(path, sizeof path, "%s/ckpt-0000000500.smpi", dir);
    unsigned char *b = xmalloc(n + 1);
    int bad = 0;
    Rng r;
    rng_seed(&r, 5, RNG_TEST, 0);

    for (size_t len = 0; len < n; len++)
        if (!rejects(path, good, len, NULL, msg, sizeof msg) && !bad++)
            fprintf(stderr, "prefix of %zu bytes accepted or badly reported: %s\n", len, msg);
    CHECK(bad == 0, "every one of the %zu truncations rejected naming the file (%d not)", n, bad);
    memcpy(b, good, n);
    b[n] = 0;
    CHECK(rejects(path, b, n + 1, "extra bytes", msg, sizeof msg), "one byte appended: %s", msg);
    CHECK(rejects(path, good, 0, "bytes", msg, sizeof msg), "zero-length file: %s", msg);

    /* One random bit of every byte; the message says where the damage is. */
    uint32_t cnt = le32(good + 12);
    size_t table_end = 32 + 72 * (size_t)cnt;
    bad = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(b, good, n);
        b[i] ^= (unsigned char)(1u << rng_below(&r, 8));
        const char *want = i < 8           ? "not a siamese checkpoint"
                           : i < 32        ? "header CRC"
                           : i < table_end ? "table CRC"
                           : i >= n - 4    ? "whole-file CRC"
                           : i >= n - 12   ? "end marker"
                                           : "section '";
        if (!rejects(path, b, n, want, msg, sizeof msg) && !bad++)
            fprintf(stderr, "flip in byte %zu: want '%s', got: %s\n", i, want, msg);
    }
    CHECK(bad == 0, "a flipped bit in each of the %zu bytes is rejected and located (%d not)", n, bad);
    /* Every bit of the header, the table and the trailer. */
    bad = 0;
    int flips = 0;
    for (size_t i = 0; i < n; i++) {
        if (i >= table_end && i < n - 12) continue;
        for (int bit = 0; bit < 8; bit++, flips++) {
            memcpy(b, good, n);
            b[i] ^= (unsigned char)(1u << bit);
            if (!rejects(path, b, n, NULL, msg, sizeof msg) && !bad++)
                fprintf(stderr, "flip of bit %d of byte %zu accepted: %s\n", bit, i, msg);
        }
    }
    CHECK(bad == 0, "all %d single-bit flips of header, table and trailer rejected (%d not)", flips, bad);

    memcpy(b, good, n);
    memcpy(b, "GARBAGE!", 8);
    CHECK(rejects(path, b, n, "not a siamese checkpoint", msg, sizeof msg), "wrong magic: %s", msg);
    memcpy(b, good, n);
    put32(b + 8, 2);
    fix_crcs(b, n);
    CHECK(rejects(path, b, n, "version 2", msg, sizeof msg) && strstr(msg, "reads version 1"),
          "newer version refused naming the supported one: %s", msg);
    put32(b + 8, 0);
    fix_crcs(b, n);
    CHECK(rejects(path, b, n, "version 0", msg, sizeof msg), "version 0: %s", msg);

    /* Consistent CRCs, inconsistent contents: the structural checks. */
    size_t e2 = 32 + 72 * 2; /* entry of 'state' */
    memcpy(b, good, n);
    put64(b + e2 + 48, (uint64_t)1 << 60);
    fix_crcs(b, n);
    CHECK(rejects(path, b, n, "impossible", msg, sizeof msg), "absurd raw size refused before allocating: %s",
          msg);
    memcpy(b, good, n);
    put64(b + e2 + 48, 1201);
    fix_crcs(b, n);
    CHECK(rejects(path, b, n, "fewer bytes", msg, sizeof msg), "raw size too big: %s", msg);
    memcpy(b, good, n);
    put64(b + e2 + 48, 1199);
    fix_crcs(b, n);
    CHECK(rejects(path, b, n, "more bytes", msg, sizeof msg), "raw size too small: %s", msg);
    memcpy(b, good, n);
    put64(b + e2 + 32, le64(b + e2 + 32) + 1);
    fix_crcs(b, n);
    CHECK(rejects(path, b, n, "does not fit the layout", msg, sizeof msg), "gap before a payload: %s", msg);
    memcpy(b, good, n);
    memcpy(b + 32 + 72, "config", 7); /* 'empty' renamed 'config' */
    fix_crcs(b, n);
    CHECK(rejects(path, b, n, "twice", msg, sizeof msg), "duplicate name: %s", msg);
    memcpy(b, good, n);
    b[32 + 72 + 10] = 'x'; /* a byte after the name's NUL */
    fix_crcs(b, n);
    CHECK(rejects(path, b, n, "invalid name", msg, sizeof msg), "junk after a name: %s", msg);
    memcpy(b, good, n);
    put32(b + e2 + 64, 4);
    fix_crcs(b, n);
    CHECK(rejects(path, b, n, "unknown flags", msg, sizeof msg), "unknown flag: %s", msg);
    memcpy(b, good, n);
    uint64_t po = le64(b + e2 + 32);
    b[po + 100] ^= 0x10;
    put32(b + e2 + 60, (uint32_t)crc32(0, b + po, (uInt)le64(b + e2 + 40))); /* stored CRC fixed too */
    fix_crcs(b, n);
    CHECK(rejects(path, b, n, "section 'state'", msg, sizeof msg), "damage behind a matching stored CRC: %s",
          msg);

    Ckpt *c;
    Err e;
    CHECK(ckpt_read(&c, dir, NULL, &e) == -1 && strstr(e.msg, "directory") && strstr(e.msg, dir),
          "a directory: %s", e.msg);
    snprintf(path, sizeof path, "%s/does-not-exist.smpi", dir);
    CHECK(ckpt_read(&c, path, NULL, &e) == -1 && strstr(e.msg, path), "missing file: %s", e.msg);
    CHECK(ckpt_verify("/dev/null", NULL, &e) == -1 && strstr(e.msg, "/dev/null"), "a device: %s", e.msg);
    snprintf(path, sizeof path, "%s/ckpt-0000000500.smpi", dir);
    unlink(path);
    free(b);
}

/* Random truncations and bit flips of a larger (~1.5 MB, multi-chunk) file. */
static void test_damage_large(const char *dir) {
    char path[512], msg[1024];
    snprintf(path, sizeof path, "%s/large.smpi", dir);
    size_t nf = 300000, nr = 300000;
    float *f = xmalloc(nf * 4);
    unsigned char *rnd = xmalloc(nr);
    fill_random(rnd, nr, 9);
    for (size_t i = 0; i < nf; i++) f[i] = (float)i * 1e-3f;
    CkptWriter *w = ckpt_writer_new();
    ckpt_add_f32(w, "params", f, nf);
    ckpt_add(w, "random", rnd, nr);
    Err e;
    CHECK(ckpt_write(w, path, &e) == 0, "large write: %s", e.msg);
    size_t n;
    unsigned char *good = file_load(path, &n), *b = xmalloc(n);
    Rng r;
    rng_seed(&r, 6, RNG_TEST, 0);
    int bad = 0;
    for (int k = 0; k < 30; k++) {
        size_t len = (size_t)rng_below(&r, n);
        if (!rejects(path, good, len, NULL, msg, sizeof msg) && !bad++)
            fprintf(stderr, "len %zu: %s\n", len, msg);
        memcpy(b, good, n);
        b[rng_below(&r, n)] ^= (unsigned char)(1u << rng_below(&r, 8));
        if (!rejects(path, b, n, NULL, msg, sizeof msg) && !bad++) fprintf(stderr, "flip: %s\n", msg);
    }
    CHECK(bad == 0, "30 random truncations and 30 random flips of a %zu-byte file rejected", n);
    ckpt_writer_free(w);
    free(f);
    free(rnd);
    free(good);
    free(b);
    unlink(path);
}

static void test_print(const char *dir, const unsigned char *good, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/print.smpi", dir);
    file_save(path, good, n);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    Err e;
    CHECK(ckpt_print(path, out, NULL, &e) == 0, "print good: %s", e.msg);
    fclose(out);
    CHECK(strstr(buf, "all CRCs ok") && strstr(buf, "params") &&
              strstr(buf, "    [optim]\n    type = adam\n") &&
              strstr(buf, "text:note:\n    resumed twice\n") && !strstr(buf, "DAMAGED"),
          "print lists sections and indents text:\n%s", buf);
    free(buf);

    unsigned char *b = xmalloc(n);
    memcpy(b, good, n);
    size_t e2 = 32 + 72 * 2;
    b[le64(b + e2 + 32) + 5] ^= 1; /* inside 'state' */
    file_save(path, b, n);
    out = open_memstream(&buf, &len);
    CHECK(ckpt_print(path, out, NULL, &e) == -1 && strstr(e.msg, "'state'"), "print damaged returns -1: %s",
          e.msg);
    fclose(out);
    char *line = strstr(buf, "\n  state");
    CHECK(line && strstr(line, "DAMAGED") && strstr(line, "DAMAGED") < strchr(line + 1, '\n') &&
              strstr(buf, "\n  params") && strstr(buf, "    [optim]"),
          "print marks the damaged section and still shows the others:\n%s", buf);
    free(buf);
    b[40] ^= 1; /* the table too: nothing to list */
    file_save(path, b, n);
    out = open_memstream(&buf, &len);
    CHECK(ckpt_print(path, out, NULL, &e) == -1 && strstr(e.msg, "table CRC"), "print, damaged table: %s",
          e.msg);
    fclose(out);
    CHECK(len == 0, "nothing printed for an unreadable table: %s", buf);
    free(buf);
    free(b);
    unlink(path);
}

/* ---- atomicity ------------------------------------------------------------- */

static void test_atomic(const char *dir, CkptWriter *small, const unsigned char *good, size_t n) {
    char path[512];
    Err e;
    snprintf(path, sizeof path, "%s/ckpt-0000000007.smpi", dir);
    file_save(path, good, n); /* the previous checkpoint */
    unsigned char other[3000];
    fill_random(other, sizeof other, 77);
    CkptWriter *w = ckpt_writer_new();
    ckpt_add(w, "other", other, sizeof other);
    int bad = 0, tries = 0;
    for (size_t limit = 0; limit < sizeof other + 400; limit += 1, tries++) {
        char v[32];
        snprintf(v, sizeof v, "%zu", limit);
        setenv("SIAMESE_FAULT_WRITE_LIMIT", v, 1);
        int rc = ckpt_write(w, path, &e);
        if (rc == 0) break;
        if ((!strstr(e.msg, path) || !strstr(e.msg, "No space left on device") ||
             !file_equals(path, good, n) || count_tmp(dir) != 0) &&
            !bad++)
            fprintf(stderr, "limit %zu: %s\n", limit, e.msg);
    }
    CHECK(bad == 0 && tries > (int)sizeof other,
          "%d failing writes (ENOSPC after 0..N bytes) left the old file "
          "bit-identical and no temp file",
          tries);
    size_t nn;
    unsigned char *now = file_load(path, &nn);
    CHECK(ckpt_verify(path, NULL, &e) == 0 && !(nn == n && !memcmp(now, good, n)),
          "write under a large enough limit "
          "replaced the file: %s",
          e.msg);
    free(now);
    unsetenv("SIAMESE_FAULT_WRITE_LIMIT");

    file_save(path, good, n);
    setenv("SIAMESE_FAULT_FSYNC", "1", 1);
    CHECK(ckpt_write(w, path, &e) == -1 && strstr(e.msg, "Input/output error") && strstr(e.msg, path),
          "fsync EIO fails the write: %s", e.msg);
    unsetenv("SIAMESE_FAULT_FSYNC");
    CHECK(file_equals(path, good, n) && count_tmp(dir) == 0, "after EIO: old file intact, no temp file");
    setenv("SIAMESE_FAULT_WRITE_LIMIT", "lots", 1);
    CHECK(ckpt_write(w, path, &e) == -1 && strstr(e.msg, "SIAMESE_FAULT_WRITE_LIMIT"), "junk fault value: %s",
          e.msg);
    unsetenv("SIAMESE_FAULT_WRITE_LIMIT");

    char p2[600];
    snprintf(p2, sizeof p2, "%s/no/such/dir/x.smpi", dir);
    CHECK(ckpt_write(small, p2, &e) == -1 && strstr(e.msg, p2) && strstr(e.msg, "No such file"), "no dir: %s",
          e.msg);
    snprintf(p2, sizeof p2, "%s/adir", dir);
    mkdir(p2, 0755);
    CHECK(ckpt_write(small, p2, &e) == -1 && strstr(e.msg, p2) && count_tmp(dir) == 0,
          "a directory in the way: %s", e.msg);
    rmdir(p2);
    CHECK(ckpt_write(small, "", &e) == -1, "empty path");
    ckpt_writer_free(w);
    unlink(path);
}

/* ---- run directories -------------------------------------------------------- */

static int exists(const char *dir, const char *name) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

typedef struct FindArgs {
    char out[512];
    const char *dir;
    Err e;
} FindArgs;
static int find_fn(void *a) {
    FindArgs *f = a;
    return ckpt_find_latest(f->out, sizeof f->out, f->dir, NULL, &f->e);
}

static void test_dirs(const char *root, CkptWriter *small, const unsigned char *good, size_t n) {
    char dir[512], p[600];
    Err e;
    snprintf(dir, sizeof dir, "%s/run", root);
    CHECK(ckpt_path_for_step(p, sizeof p, "runs/a", 500) == 0 && !strcmp(p, "runs/a/ckpt-0000000500.smpi"),
          "%s", p);
    CHECK(ckpt_path_for_step(p, sizeof p, "d", 12345678901ull) == 0 && !strcmp(p, "d/ckpt-12345678901.smpi"),
          "%s", p);
    CHECK(ckpt_path_for_step(p, 10, "runs/a", 500) == -1, "too small a buffer");

    FindArgs fa = {.dir = dir};
    int rc;
    char *err = capture_stderr(find_fn, &fa, &rc);
    CHECK(rc == 1, "missing dir: none (%d)", rc);
    free(err);
    mkdir(dir, 0755);
    err = capture_stderr(find_fn, &fa, &rc);
    CHECK(rc == 1, "empty dir: none (%d)", rc);
    free(err);
    CHECK(ckpt_rotate(dir, 3, &e) == 0, "rotate empty dir: %s", e.msg);

    uint64_t steps[] = {2, 100, 1, 11, 3, 10};
    for (int i = 0; i < 6; i++) {
        ckpt_path_for_step(p, sizeof p, dir, steps[i]);
        CHECK(ckpt_write(small, p, &e) == 0, "%s", e.msg);
    }
    const char *others[] = {"notes.txt", "ckpt-12.smpi", "ckpt-0000000005.smpi.bak", "ckpt-0000000009.smpiX"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, others[i]);
        file_save(p, "x", 1);
    }
    pid_t child = fork();
    if (child == 0) _exit(0);
    waitpid(child, NULL, 0); /* now a dead pid */
    char live_tmp[64], dead_old[64], dead_new[64];
    snprintf(live_tmp, sizeof live_tmp, "ckpt-0000000004.smpi.tmp-%ld", (long)getpid());
    snprintf(dead_old, sizeof dead_old, "ckpt-0000000006.smpi.tmp-%ld", (long)child);
    snprintf(dead_new, sizeof dead_new, "ckpt-0000000008.smpi.tmp-%ld", (long)child);
    const char *tmps[] = {live_tmp, dead_old, dead_new};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, tmps[i]);
        file_save(p, "x", 1);
        if (i < 2) { /* make it old */
            struct timeval tv[2] = {{time(NULL) - 2 * CKPT_STALE_TMP_SECONDS, 0},
                                    {time(NULL) - 2 * CKPT_STALE_TMP_SECONDS, 0}};
            utimes(p, tv);
        }
    }
    CHECK(ckpt_rotate(dir, 0, &e) == 0 && exists(dir, "ckpt-0000000001.smpi"), "keep <= 0 deletes none");
    CHECK(!exists(dir, dead_old) && exists(dir, dead_new) && exists(dir, live_tmp),
          "only the old temp file of a dead writer is removed");
    CHECK(ckpt_rotate(dir, 3, &e) == 0, "rotate: %s", e.msg);
    int kept = exists(dir, "ckpt-0000000100.smpi") && exists(dir, "ckpt-0000000011.smpi") &&
               exists(dir, "ckpt-0000000010.smpi");
    int gone = !exists(dir, "ckpt-0000000001.smpi") && !exists(dir, "ckpt-0000000002.smpi") &&
               !exists(dir, "ckpt-0000000003.smpi");
    int untouched = 1;
    for (int i = 0; i < 4; i++) untouched &= exists(dir, others[i]);
    CHECK(kept && gone && untouched, "rotate keeps exactly the newest 3 by step (%d %d %d)", kept, gone,
          untouched);

    err = capture_stderr(find_fn, &fa, &rc);
    snprintf(p, sizeof p, "%s/ckpt-0000000100.smpi", dir);
    CHECK(rc == 0 && !strcmp(fa.out, p) && err[0] == 0, "latest is step 100: %d %s %s", rc, fa.out, err);
    free(err);
    /* Damage the newest: flip a byte in the middle. */
    size_t len;
    unsigned char *b = file_load(p, &len);
    b[len / 2] ^= 0x40;
    file_save(p, b, len);
    free(b);
    err = capture_stderr(find_fn, &fa, &rc);
    snprintf(p, sizeof p, "%s/ckpt-0000000011.smpi", dir);
    CHECK(rc == 0 && !strcmp(fa.out, p), "damaged newest skipped, previous returned: %d %s", rc, fa.out);
    CHECK(strstr(err, "warning") && strstr(err, "ckpt-0000000100.smpi") && strstr(err, "damaged"),
          "the skip is warned about, naming the file and why: %s", err);
    free(err);
    Ckpt *c = NULL;
    char got[512], tiny[8];
    int saved = quiet_begin(); /* the skip warnings were checked above */
    rc = ckpt_read_latest(&c, got, sizeof got, dir, NULL, &e);
    size_t sn;
    const void *st = c ? ckpt_get(c, "config", &sn) : NULL;
    CHECK(rc == 0 && c && !strcmp(got, p) && st && sn == strlen(CONFIG_TEXT),
          "read_latest hands over the checkpoint");
    ckpt_free(c);
    rc = ckpt_find_latest(tiny, sizeof tiny, dir, NULL, &e);
    quiet_end(saved);
    CHECK(rc == -1 && strstr(e.msg, "longer"), "small out: %s", e.msg);

    /* Everything damaged: an error, not a silent fresh start. */
    const char *names[] = {"ckpt-0000000011.smpi", "ckpt-0000000010.smpi"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        file_save(p, good, n / 2);
    }
    err = capture_stderr(find_fn, &fa, &rc);
    CHECK(rc == -1 && strstr(fa.e.msg, "none of its 3") && strstr(err, "ckpt-0000000010.smpi"),
          "all damaged: %d %s", rc, fa.e.msg);
    free(err);
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    CHECK(ckpt_find_latest(fa.out, sizeof fa.out, p, NULL, &e) == -1 && strstr(e.msg, p), "not a dir: %s",
          e.msg);
}

/* ---- drivers for tests/e2e_ckpt_fullfs.sh ----------------------------------- */

static int fill_mode(const char *dir) {
    char base[600], p[600];
    Err e;
    unsigned char small[1000];
    fill_random(small, sizeof small, 1);
    CkptWriter *w = ckpt_writer_new();
    ckpt_add(w, "state", small, sizeof small);
    ckpt_path_for_step(base, sizeof base, dir, 0);
    CHECK(ckpt_write(w, base, &e) == 0, "first small checkpoint: %s", e.msg);
    size_t bn;
    unsigned char *bb = file_load(base, &bn);
    int failed_at = -1;
    for (int step = 1; step <= 400 && failed_at < 0; step++) {
        size_t sz = (size_t)step * 16384;
        unsigned char *rnd = xmalloc(sz);
        fill_random(rnd, sz, (uint64_t)step);
        CkptWriter *g = ckpt_writer_new();
        ckpt_add(g, "random", rnd, sz);
        ckpt_path_for_step(p, sizeof p, dir, (uint64_t)step);
        if (ckpt_write(g, p, &e) < 0) {
            failed_at = step;
            printf("write of step %d (%zu bytes) failed as expected: %s\n", step, sz, e.msg);
            CHECK(strstr(e.msg, "No space left on device") && strstr(e.msg, p), "ENOSPC named: %s", e.msg);
            CHECK(access(p, F_OK) != 0, "no partial file at the target path");
        }
        ckpt_writer_free(g);
        free(rnd);
    }
    CHECK(failed_at > 1, "the filesystem filled up after some good writes (step %d)", failed_at);
    CHECK(count_tmp(dir) == 0, "no temp file left behind");
    CHECK(file_equals(base, bb, bn), "the first checkpoint survived the full disk bit-identical");
    int bad = 0;
    for (int step = 0; step < failed_at; step++) {
        ckpt_path_for_step(p, sizeof p, dir, (uint64_t)step);
        if (ckpt_verify(p, NULL, &e) < 0 && !bad++) fprintf(stderr, "%s\n", e.msg);
    }
    CHECK(bad == 0, "all %d checkpoints written before the disk filled verify", failed_at);
    /* Replacing an existing file on the full disk fails and keeps it. */
    unsigned char *big = xmalloc(1 << 20);
    fill_random(big, 1 << 20, 99);
    CkptWriter *g = ckpt_writer_new();
    ckpt_add(g, "random", big, 1 << 20);
    CHECK(ckpt_write(g, base, &e) == -1 && file_equals(base, bb, bn) && count_tmp(dir) == 0,
          "overwrite on a full disk: old file kept: %s", e.msg);
    ckpt_writer_free(g);
    free(big);
    CHECK(ckpt_rotate(dir, 2, &e) == 0, "rotate on the full disk: %s", e.msg);
    ckpt_path_for_step(p, sizeof p, dir, 1000);
    CHECK(ckpt_write(w, p, &e) == 0, "after rotation there is room again: %s", e.msg);
    ckpt_writer_free(w);
    free(bb);
    return test_finish();
}

static int readonly_mode(const char *dir) {
    char latest[600], p[600];
    Err e;
    int rc = ckpt_find_latest(latest, sizeof latest, dir, NULL, &e);
    CHECK(rc == 0 && strstr(latest, "ckpt-0000001000.smpi"), "find_latest on a read-only dir: %d %s", rc,
          latest);
    size_t n;
    unsigned char *old = file_load(latest, &n);
    CkptWriter *w = ckpt_writer_new();
    ckpt_add(w, "x", "abc", 3);
    ckpt_path_for_step(p, sizeof p, dir, 2000);
    CHECK(ckpt_write(w, p, &e) == -1 && strstr(e.msg, "Read-only file system") && strstr(e.msg, p),
          "write to a read-only filesystem fails naming it: %s", e.msg);
    CHECK(ckpt_write(w, latest, &e) == -1 && old && file_equals(latest, old, n),
          "overwrite refused, file kept");
    CHECK(ckpt_rotate(dir, 1, &e) == -1 && strstr(e.msg, "Read-only file system"), "rotate reports EROFS: %s",
          e.msg);
    CHECK(ckpt_verify(latest, NULL, &e) == 0, "still valid: %s", e.msg);
    ckpt_writer_free(w);
    free(old);
    return test_finish();
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--fill")) return fill_mode(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "--readonly")) return readonly_mode(argv[2]);
    if (argc != 1) {
        fprintf(stderr, "usage: test_checkpoint [--fill DIR | --readonly DIR]\n");
        return 2;
    }
    unsetenv("SIAMESE_FAULT_WRITE_LIMIT");
    unsetenv("SIAMESE_FAULT_FSYNC");
    char root[] = "/tmp/ckpt-test.XXXXXX";
    ASSERT(mkdtemp(root));
    double t0 = now_seconds();

    unsigned char rnd[1200];
    fill_random(rnd, sizeof rnd, 4);
    float f[100];
    for (int i = 0; i < 100; i++) f[i] = (float)i * 0.25f - 3.0f;
    CkptWriter *small = small_writer(rnd, f, 100);
    char path[600];
    snprintf(path, sizeof path, "%s/small.smpi", root);
    Err e;
    CHECK(ckpt_write(small, path, &e) == 0, "small write: %s", e.msg);
    size_t n;
    unsigned char *good = file_load(path, &n);
    CHECK(good && n > 1500 && n < 4000, "small file is %zu bytes", n);

    test_layout(good, n, rnd, f, 100);
    test_round_trip(root);
    test_damage(root, good, n);
    test_damage_large(root);
    test_print(root, good, n);
    test_atomic(root, small, good, n);
    test_dirs(root, small, good, n);

    ckpt_writer_free(small);
    free(good);
    rm_rf(root);
    printf("(%.2f s)\n", now_seconds() - t0);
    return test_finish();
}
