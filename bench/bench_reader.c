/* bench_reader: ds_read throughput on one thread. With no argument it builds
 * two temporary datasets of 60,000 synthetic 28x28 images (a few random
 * rectangles on black, so deflate has something to do, like real digits),
 * one raw and one compressed, and times them; with arguments it times the
 * given datasets. Order: a seeded shuffle of all ids; best of 3 passes after a
 * warm-up pass (the data is in the page cache, as in training). Prints wall
 * and thread-CPU-time rates (the latter is steadier on a shared machine).
 *   usage: bench_reader [DB ...] */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../io/dataset.h"
#include "bench_util.h"

static uint64_t dir_bytes(const char *path) {
    char p[600];
    struct stat st;
    snprintf(p, sizeof p, "%s/data.mdb", path);
    return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static void build(const char *path, int compress, uint32_t n) {
    DsWriterSpec spec = {.channels = 1,
                         .height = 28,
                         .width = 28,
                         .classes = 10,
                         .compress = compress,
                         .source = "bench_reader synthetic"};
    DsWriter *w;
    Err e;
    if (ds_writer_create(&w, path, &spec, &e)) FATAL("%s", e.msg);
    Rng r;
    rng_seed(&r, 1, RNG_TEST, 0);
    uint8_t img[784];
    for (uint32_t i = 0; i < n; i++) {
        memset(img, 0, sizeof img);
        for (int k = 0; k < 4; k++) {
            int y0 = (int)rng_below(&r, 24), x0 = (int)rng_below(&r, 24);
            int h = 2 + (int)rng_below(&r, 10), wd = 2 + (int)rng_below(&r, 10);
            uint8_t v = (uint8_t)(64 + rng_below(&r, 192));
            for (int y = y0; y < MIN(28, y0 + h); y++)
                for (int x = x0; x < MIN(28, x0 + wd); x++) img[y * 28 + x] = (uint8_t)(v - (x & 3) * 8);
        }
        if (ds_writer_add(w, img, (int32_t)(i % 10), NULL, &e)) FATAL("%s", e.msg);
    }
    if (ds_writer_finish(w, &e)) FATAL("%s", e.msg);
}

static void bench(const char *path) {
    Dataset *ds;
    DsReader *rd;
    Err e;
    if (ds_open(&ds, path, &e) || ds_reader_open(ds, &rd, &e)) FATAL("%s", e.msg);
    const DsMeta *m = ds_meta(ds);
    uint32_t n = (uint32_t)m->count;
    uint32_t *ids = xmalloc(sizeof(uint32_t) * n);
    for (uint32_t i = 0; i < n; i++) ids[i] = i;
    Rng r;
    rng_seed(&r, 2, RNG_TEST, 0);
    rng_shuffle_u32(&r, ids, n);
    size_t bytes = (size_t)m->channels * m->height * m->width;
    uint8_t *buf = xmalloc(bytes);
    uint64_t check = 0;
    double best = 1e30, best_cpu = 1e30;
    for (int pass = 0; pass < 4; pass++) {
        double t0 = now_seconds(), c0 = bench_cpu_seconds();
        for (uint32_t i = 0; i < n; i++) {
            int32_t label;
            if (ds_read(rd, ids[i], buf, &label, NULL, &e)) FATAL("%s", e.msg);
            check += buf[bytes / 2] + (uint64_t)label;
        }
        double t = now_seconds() - t0, c = bench_cpu_seconds() - c0;
        if (pass > 0 && t < best) best = t; /* pass 0 warms up */
        if (pass > 0 && c < best_cpu) best_cpu = c;
    }
    printf("%s: %s, %u samples of %ux%ux%u, data.mdb %.1f MB\n  %.0f samples/s wall (%.0f ns/sample), %.0f "
           "samples/s of CPU time; best of 3 shuffled passes (check %llu)\n",
           path, m->compressed ? "compressed" : "uncompressed", n, m->channels, m->height, m->width,
           dir_bytes(path) / 1e6, n / best, best / n * 1e9, n / best_cpu, (unsigned long long)check);
    free(buf);
    free(ids);
    ds_reader_close(rd);
    ds_close(ds);
}

int main(int argc, char **argv) {
    if (argc > 1) {
        for (int i = 1; i < argc; i++) bench(argv[i]);
        return 0;
    }
    char dir[] = "/tmp/siamese-bench-reader.XXXXXX";
    if (!mkdtemp(dir)) FATAL("mkdtemp failed");
    char raw[64], z[64];
    snprintf(raw, sizeof raw, "%s/raw.lmdb", dir);
    snprintf(z, sizeof z, "%s/zlib.lmdb", dir);
    double t0 = now_seconds();
    build(raw, 0, 60000);
    double t1 = now_seconds();
    build(z, 1, 60000);
    double t2 = now_seconds();
    printf("built 60000 samples: uncompressed in %.2f s, compressed in %.2f s\n", t1 - t0, t2 - t1);
    bench(raw);
    bench(z);
    bench_rm_tree(dir);
    return 0;
}
