/* fixture_files: temporary-directory and input-file helpers shared by the
 * serial I/O tests (one mkdtemp directory per test program, paths in it,
 * existence and leftover-".tmp-*" checks, recursive removal, raw files,
 * big-endian idx files, plain or gzip, small Omniglot-like trees and
 * grouped, named datasets).
 * Header-only; failures are ASSERTs. */
#ifndef SIAMESE_TESTS_FIXTURE_FILES_H
#define SIAMESE_TESTS_FIXTURE_FILES_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "../io/dataset.h"
#include "../nn/util.h"

enum { FIXTURE_DIR_MAX = 64 };

/* The test's temporary directory ("" until fixture_dir_create). */
static inline char *fixture_dir(void) {
    static char dir[FIXTURE_DIR_MAX];
    return dir;
}

/* Creates /tmp/siamese-test-<name>.XXXXXX (mkdtemp) as fixture_dir(). */
static inline const char *fixture_dir_create(const char *name) {
    char *dir = fixture_dir();
    snprintf(dir, FIXTURE_DIR_MAX, "/tmp/siamese-test-%s.XXXXXX", name);
    ASSERT(mkdtemp(dir));
    return dir;
}

/* fixture_dir()/name in one of 256 rotating static buffers: callers keep
 * several paths at once, none for long. */
static inline const char *fixture_path(const char *name) {
    static char buf[256][512];
    static int k;
    k = (k + 1) % 256;
    snprintf(buf[k], sizeof buf[k], "%s/%s", fixture_dir(), name);
    return buf[k];
}

static inline int fixture_exists(const char *p) {
    struct stat st;
    return lstat(p, &st) == 0;
}

/* 1 if fixture_dir() holds a leftover "*.tmp-*" anywhere below it. */
static inline int fixture_leftover_tmp(void) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "find %s -name '*.tmp-*' | grep -q .", fixture_dir());
    return system(cmd) == 0;
}

static inline int fixture_rm_entry_(const char *p, const struct stat *st, int flag, struct FTW *f) {
    (void)st, (void)flag, (void)f;
    return remove(p);
}

/* Removes path and everything below it (links not followed); nftw's result. */
static inline int fixture_rm_tree(const char *path) {
    return nftw(path, fixture_rm_entry_, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void fixture_put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* Writes n bytes of d as the whole file path. */
static inline void fixture_write_file(const char *path, const void *d, size_t n) {
    FILE *f = fopen(path, "wb");
    ASSERT(f && fwrite(d, 1, n, f) == n && fclose(f) == 0);
}

/* Reads the whole file path (xmalloc'd, NUL-terminated); *n its size. */
static inline uint8_t *fixture_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ASSERT(f && fseek(f, 0, SEEK_END) == 0);
    long len = ftell(f);
    ASSERT(len >= 0 && fseek(f, 0, SEEK_SET) == 0);
    uint8_t *d = xmalloc((size_t)len + 1);
    ASSERT(fread(d, 1, (size_t)len, f) == (size_t)len && fclose(f) == 0);
    d[len] = 0;
    *n = (size_t)len;
    return d;
}

/* Writes an idx file (gzip if gz): magic, the nd dims, then the n bytes of
 * data, all but the last `cut` bytes of the whole. */
static inline void fixture_write_idx(const char *path, int gz, uint32_t magic, const uint32_t *dims, int nd,
                                     const uint8_t *data, size_t n, size_t cut) {
    uint8_t *buf = xmalloc(4 + 4 * (size_t)nd + n);
    fixture_put_be32(buf, magic);
    for (int i = 0; i < nd; i++) fixture_put_be32(buf + 4 + 4 * i, dims[i]);
    memcpy(buf + 4 + 4 * nd, data, n);
    size_t total = 4 + 4 * (size_t)nd + n - cut;
    if (gz) {
        gzFile g = gzopen(path, "wb");
        ASSERT(g && gzwrite(g, buf, (unsigned)total) == (int)total && gzclose(g) == Z_OK);
    } else {
        fixture_write_file(path, buf, total);
    }
    free(buf);
}

/* An Omniglot-like tree under fixture_dir()/root: group g (name groups[g])
 * holds chars[g] folders characterNN (NN from 01), each with `draws`
 * side x side images named CCCC_DD.png (CCCC numbers the characters from
 * 0001 across the tree, DD the drawing from 01). The files hold binary PGM
 * (the importers read the magic bytes, not the name); pixel k of drawing d
 * of character number n is (n * 37 + d * 5 + k) & 255. */
static inline void fixture_omniglot_tree(const char *root, int ngroups, const char *const *groups,
                                         const int *chars, int draws, int side) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", fixture_dir(), root);
    ASSERT(mkdir(path, 0755) == 0);
    int n = 0;
    uint8_t *px = xmalloc((size_t)side * side + 32);
    for (int g = 0; g < ngroups; g++) {
        snprintf(path, sizeof path, "%s/%s/%s", fixture_dir(), root, groups[g]);
        ASSERT(mkdir(path, 0755) == 0);
        for (int c = 1; c <= chars[g]; c++) {
            n++;
            snprintf(path, sizeof path, "%s/%s/%s/character%02d", fixture_dir(), root, groups[g], c);
            ASSERT(mkdir(path, 0755) == 0);
            for (int d = 1; d <= draws; d++) {
                int h = snprintf((char *)px, 32, "P5\n%d %d\n255\n", side, side);
                for (int k = 0; k < side * side; k++) px[h + k] = (uint8_t)((n * 37 + d * 5 + k) & 255);
                snprintf(path, sizeof path, "%s/%s/%s/character%02d/%04d_%02d.png", fixture_dir(), root,
                         groups[g], c, n, d);
                fixture_write_file(path, px, (size_t)h + (size_t)side * side);
            }
        }
    }
    free(px);
}

/* A grouped, named dataset fixture_path(file): groups x classes classes
 * named "gG/cC", drawings samples each, named "gG/cC/CCCC_DD.png" as the
 * Omniglot importer names them (class C, drawing DD from 1), side x side
 * grey pixels that fill(px, side, rng) draws from one generator seeded
 * with seed, sample after sample. Returns the path. */
static inline const char *fixture_grouped_dataset(const char *file, int groups, int classes, int drawings, int side,
                                                  uint64_t seed, void (*fill)(uint8_t *px, int side, Rng *r)) {
    const char *path = fixture_path(file);
    int nc = groups * classes;
    char(*names)[16] = malloc(sizeof *names * (size_t)nc);
    const char **cn = malloc(sizeof *cn * (size_t)nc);
    for (int c = 0; c < nc; c++) {
        snprintf(names[c], sizeof names[c], "g%d/c%d", c / classes, c % classes);
        cn[c] = names[c];
    }
    DsWriterSpec spec = {
        .channels = 1, .height = (uint32_t)side, .width = (uint32_t)side, .classes = (uint32_t)nc, .source = "t",
        .class_names = cn};
    DsWriter *w;
    Err e;
    ASSERT(ds_writer_create(&w, path, &spec, &e) == 0);
    Rng r;
    rng_seed(&r, seed, 0, 0);
    uint8_t *px = malloc((size_t)side * side);
    for (int i = 0; i < nc * drawings; i++) {
        fill(px, side, &r);
        char name[48];
        int c = i / drawings;
        snprintf(name, sizeof name, "%s/%04d_%02d.png", names[c], c, i % drawings + 1);
        ASSERT(ds_writer_add_named(w, px, c, NULL, name, &e) == 0);
    }
    ASSERT(ds_writer_finish(w, &e) == 0);
    free(px), free(cn), free(names);
    return path;
}

#endif
