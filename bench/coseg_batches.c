/* coseg_batches: writes N global batches of the co-segmentation sampler
 * (the coseg mode of io/sampler.h, as the trainer draws them) for the
 * PyTorch twin bench/torch_coseg.py, so both sides train on the same
 * batches: PREFIX.x.npy (N * 2B rows of C*H*W normalised pixels, rows
 * [a; b] per batch), PREFIX.mask.npy (the same rows of H*W targets: 1 on
 * the mask of an image whose pair has a common object, else 0) and
 * PREFIX.shape ("N 2B C H W").
 *   coseg_batches DB PREFIX [--batches N] [--batch B] [--common F] [--seed S]
 * Defaults: 4 batches of 32 pairs, common 0.75, seed 1; normalisation by the
 * dataset's mean and std. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/atomic_file.h"
#include "../io/npy.h"
#include "../io/prefetch.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: coseg_batches DB PREFIX [--batches N] [--batch B] [--common F] [--seed S]\n");
        return 2;
    }
    long nb = 4, batch = 32, seed = 1;
    double common = 0.75;
    for (int i = 3; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        int bad = !strcmp(k, "--batches")  ? parse_long(v, 1, 1000, &nb)
                  : !strcmp(k, "--batch")  ? parse_long(v, 1, 100000, &batch)
                  : !strcmp(k, "--seed")   ? parse_long(v, 0, 1000000000, &seed)
                  : !strcmp(k, "--common") ? parse_double(v, 0, 1, &common)
                                           : 1;
        if (bad) {
            fprintf(stderr, "coseg_batches: bad option %s %s\n", k, v);
            return 2;
        }
    }
    Err e;
    Dataset *ds;
    DsReader *r;
    if (ds_open(&ds, argv[1], &e) || ds_reader_open(ds, &r, &e)) {
        fprintf(stderr, "coseg_batches: %s\n", e.msg);
        return 1;
    }
    const DsMeta *m = ds_meta(ds);
    if (!m->has_masks) {
        fprintf(stderr, "coseg_batches: %s has no masks\n", argv[1]);
        return 1;
    }
    SamplerSpec spec = {.mode = SAMPLER_COSEG, .batch = (int)batch, .common = common, .seed = (uint64_t)seed};
    Sampler s;
    if (sampler_init(&s, &spec, ds, &e)) {
        fprintf(stderr, "coseg_batches: %s\n", e.msg);
        return 1;
    }
    Batch b;
    batch_init(&b, &s, ds, 1);
    size_t img = (size_t)m->channels * m->height * m->width, hw = (size_t)m->height * m->width;
    size_t rows = (size_t)nb * 2 * (size_t)batch;
    float *x = xmalloc(rows * img * sizeof *x), *t = xmalloc(rows * hw * sizeof *t);
    for (long g = 0; g < nb; g++) {
        BatchDecode dec = {0};
        norm_uniform(&dec.norm, m->channels, m->mean, m->std > 0 ? m->std : 1);
        if (batch_load(&b, &s, r, 0, 1, &dec, (uint64_t)g, &e)) {
            fprintf(stderr, "coseg_batches: %s\n", e.msg);
            return 1;
        }
        size_t r0 = (size_t)g * 2 * (size_t)batch;
        memcpy(x + r0 * img, b.x, (size_t)b.lb.n_images * img * sizeof *x);
        for (int i = 0; i < b.lb.n_images; i++)
            for (size_t p = 0; p < hw; p++)
                t[(r0 + (size_t)i) * hw + p] =
                    b.lb.same[i % b.lb.n_items] && b.masks[(size_t)i * hw + p] ? 1.0f : 0.0f;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s.x.npy", argv[2]);
    int rc = npy_write_f32(path, x, (int64_t)rows, (int64_t)img, &e);
    snprintf(path, sizeof path, "%s.mask.npy", argv[2]);
    if (!rc) rc = npy_write_f32(path, t, (int64_t)rows, (int64_t)hw, &e);
    char shape[128];
    int n =
        snprintf(shape, sizeof shape, "%ld %ld %u %u %u\n", nb, 2 * batch, m->channels, m->height, m->width);
    snprintf(path, sizeof path, "%s.shape", argv[2]);
    if (!rc) rc = atomic_file_write_all(path, shape, (size_t)n, &e);
    if (rc) fprintf(stderr, "coseg_batches: %s\n", e.msg);
    batch_free(&b);
    sampler_free(&s);
    ds_reader_close(r);
    ds_close(ds);
    free(x);
    free(t);
    return rc ? 1 : 0;
}
