/* synth_coseg: `siamese synth coseg` makes an object
 * co-segmentation task from Fashion-MNIST: pairs of cluttered images that
 * share one object class (3 of 4 pairs) or none, with the mask of the object
 * each image is labelled with (docs/coseg.md has the rules, docs/formats.md
 * what a mask and a pair mean). Every pair is a pure function of (source
 * items, seed, split, pair index). */
#ifndef SIAMESE_SYNTH_COSEG_H
#define SIAMESE_SYNTH_COSEG_H

#include <stdint.h>

#include "../nn/util.h"

#define SYNTH_CLASSES 10      /* Fashion-MNIST */
#define SYNTH_TRAIN_CLASSES 8 /* classes 8 (bag) and 9 (ankle boot) only in the test set */
#define SYNTH_MAX_OBJECTS 4
#define SYNTH_MASK_THRESHOLD 25 /* an object covers a pixel where its scaled item is above this */

/* Source items of one split, grouped by class: item ids[c][j] of class c is
 * pixels[id * h * w ..]. Classes >= n_classes are never drawn. */
typedef struct SynthSource {
    const uint8_t *pixels;
    uint32_t h, w;
    int n_classes;
    const uint32_t *ids[SYNTH_CLASSES];
    uint32_t n[SYNTH_CLASSES];
} SynthSource;

/* What was drawn for one image, in painting order (later objects occlude
 * earlier ones). Box (y, x, size) in output pixels; the item is scaled to
 * size x size by area averaging (image_resize). */
typedef struct SynthObject {
    uint32_t item;
    int cls;
    uint32_t y, x, size;
} SynthObject;

typedef struct SynthImage {
    int n_objects;
    SynthObject obj[SYNTH_MAX_OBJECTS];
    int labelled;                          /* index into obj of the object the label and the mask name */
    uint32_t bg_item, bg_y, bg_x, bg_crop; /* background: crop of an item ... */
    float bg_alpha;                        /* ... enlarged to the side, times alpha */
} SynthImage;

/* Generates pair `index` of a split (split 0 train, 1 test) into images and
 * masks (each side x side, masks 0 or 255) and labels, each image holding
 * `objects` items (0: 2-4, the task; 1: one, for pretraining); common says whether
 * the two images share a class (then both are labelled with it and the
 * masks are that object's visible pixels); else each is labelled with one of
 * its own classes (they differ) and masked likewise. info (may be NULL) gets
 * what was drawn. Rng: rng_seed(seed, RNG_SYNTH, split << 40 | index).
 * 0, or -1 when no layout keeps half of an object visible (items too dark). */
int synth_coseg_pair(const SynthSource *src, uint32_t side, uint64_t seed, int split, uint64_t index,
                     int objects, int common, uint8_t *img[2], uint8_t *mask[2], int32_t label[2],
                     SynthImage info[2]);
/* The same pair (the same draws, the same images and labels) with class
 * masks when class_masks is set: every visible pixel of every object gets
 * its class + 1, the rest 0 (the dataset's masks = 2, docs/formats.md). */
int synth_coseg_pair_masks(const SynthSource *src, uint32_t side, uint64_t seed, int split, uint64_t index,
                           int objects, int common, int class_masks, uint8_t *img[2], uint8_t *mask[2],
                           int32_t label[2], SynthImage info[2]);

/* Pair `index` has a common object unless index % 4 == 3: exactly 3 of
 * every 4 pairs. */
int synth_coseg_common(uint64_t index);

typedef struct SynthCosegOptions {
    const char *fmnist; /* directory of the Fashion-MNIST idx files */
    const char *out, *test_out;
    uint64_t seed;
    uint32_t side;
    uint64_t pairs, test_pairs;
    int objects;     /* items per image: 0 = 2-4 (the task), else exactly this many */
    int class_masks; /* masks label every object by class + 1 (meta masks = 2) */
} SynthCosegOptions;

/* Reads the source and writes both datasets (images 2i, 2i+1 form pair i,
 * stored in the pairs sub-database), both or neither. 0, or -1 with e. */
int synth_coseg_run(const SynthCosegOptions *o, Err *e);

#endif
