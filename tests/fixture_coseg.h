/* fixture_coseg: a small co-segmentation dataset for the trainer tests:
 * SIDE x SIDE grey images, each with a bright square object of its class
 * (a class-dependent stripe pattern) and a dim square distractor over
 * noise; the mask is the object's square. Pairs records from pairgen (same
 * = equal labels, so with and without a common object). With class masks
 * (meta masks = 2) the mask is class + 1 on the object's square and 0
 * elsewhere. Header-only; failures are FATAL. */
#ifndef SIAMESE_TESTS_FIXTURE_COSEG_H
#define SIAMESE_TESTS_FIXTURE_COSEG_H

#include <string.h>

#include "../io/dataset.h"
#include "../io/pairgen.h"
#include "../mining/coseg.h"

/* The name of a mask loss in test messages. */
static inline const char *fixture_mask_name(MaskLoss type) {
    return type == MASK_BCE ? "BCE" : type == MASK_DICE ? "Dice" : "BCE + Dice";
}

enum { FIXTURE_COSEG_SIDE = 12, FIXTURE_COSEG_CLASSES = 4, FIXTURE_COSEG_PER_CLASS = 12 };

/* Writes the dataset at path with npairs pairs records (seeded by seed),
 * with class masks when class_masks is set. */
static inline void fixture_coseg_dataset_masks(const char *path, uint64_t npairs, uint64_t seed, int class_masks) {
    enum { S = FIXTURE_COSEG_SIDE, C = FIXTURE_COSEG_CLASSES, N = C * FIXTURE_COSEG_PER_CLASS };
    Err e;
    DsWriterSpec spec = {1, S, S, C, 0, class_masks ? DS_MASKS_CLASS : DS_MASKS_OBJECT, "co-segmentation test", NULL};
    DsWriter *w;
    if (ds_writer_create(&w, path, &spec, &e)) FATAL("%s", e.msg);
    Rng r;
    rng_seed(&r, seed, RNG_TEST, 21);
    uint8_t px[S * S], mask[S * S];
    int32_t labels[N];
    for (int n = 0; n < N; n++) {
        int c = n % C, side = 4 + (int)rng_below(&r, 3);
        int y0 = (int)rng_below(&r, S - side + 1), x0 = (int)rng_below(&r, S - side + 1);
        int dy = (int)rng_below(&r, S - 3), dx = (int)rng_below(&r, S - 3);
        for (int p = 0; p < S * S; p++) {
            int y = p / S, x = p % S;
            int in = y >= y0 && y < y0 + side && x >= x0 && x < x0 + side;
            int other = y >= dy && y < dy + 3 && x >= dx && x < dx + 3;
            double v = 40 + 30 * rng_normal(&r);
            if (other) v += 80;
            if (in) v = 150 + 100 * (((x + y * c) % (c + 2)) == 0);
            px[p] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            mask[p] = in ? (uint8_t)(class_masks ? c + 1 : 255) : 0;
        }
        labels[n] = c;
        if (ds_writer_add(w, px, c, mask, &e)) FATAL("%s", e.msg);
    }
    if (ds_writer_finish(w, &e)) FATAL("%s", e.msg);
    uint32_t *a = xmalloc(npairs * sizeof *a), *b = xmalloc(npairs * sizeof *b);
    uint8_t *same = xmalloc(npairs);
    if (pairgen_pairs(a, b, same, npairs, labels, N, C, seed, &e)) FATAL("%s", e.msg);
    if (ds_write_pairs(path, a, b, same, npairs, &e)) FATAL("%s", e.msg);
    free(a), free(b), free(same);
}

static inline void fixture_coseg_dataset(const char *path, uint64_t npairs, uint64_t seed) {
    fixture_coseg_dataset_masks(path, npairs, seed, 0);
}

#endif
