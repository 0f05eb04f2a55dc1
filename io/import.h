/* import: builds datasets (dataset.h) from MNIST idx files (plain or .gz), a
 * folder of class folders, or the Omniglot alphabet/character layout, with
 * optional resizing, inversion, and a seeded train/test split. Every input is
 * checked and a failure leaves nothing behind (the writers build in temporary
 * directories). Grey (1 channel, colour by luma) or, with color, 3 channels.
 *
 * Labels: idx keeps the file's labels (classes = max label + 1, names "0"..);
 * folder and omniglot number the classes 0..n-1 in byte-wise sorted name order
 * (omniglot: alphabets sorted, then characters within each; class name
 * "Alphabet/characterNN"). Samples keep the source order (idx file order;
 * classes, then files sorted by name). Every sample keeps its source name
 * (dataset.h): its path under the root ("Alphabet/character01/0975_14.png"),
 * or FILE#INDEX for idx (the images file's base name, INDEX from 0). Pixels
 * are stored as decoded: Omniglot keeps white background = 255, ink = 0
 * unless invert is set. Dotfiles are skipped; any other non-image entry is an
 * error naming it. */
#ifndef SIAMESE_IMPORT_H
#define SIAMESE_IMPORT_H

#include <stdint.h>

#include "../nn/util.h"

typedef enum { IMPORT_IDX, IMPORT_FOLDER, IMPORT_OMNIGLOT } ImportFormat;

/* Several roots (folder, omniglot): their classes in root order, each root's
 * sorted by name; a class name found under two roots is an error. A sample's
 * name is its path under its own root. */
#define IMPORT_MAX_ROOTS 8

/* The evaluation alphabets of Lake et al.'s one-shot classification runs,
 * which Koch et al. report on (20-way 1-shot within an alphabet); Koch's
 * background set is the other 40 alphabets of Omniglot. */
#define IMPORT_KOCH_GROUPS                                                                                   \
    "Atlantean,Ge_ez,Glagolitic,Gurmukhi,Kannada,Malayalam,Manipuri,Old_Church_Slavonic_(Cyrillic),Tengwar," \
    "Tibetan"

/* Split policy (seeded with rng_seed(seed, RNG_SPLIT, 0)):
 * CLASS: round(F * classes) whole classes (at least 1, at most classes - 1)
 *        go to test; each dataset renumbers its classes 0..n-1 in the source
 *        label order, keeping the names.
 * GROUP: the same with whole groups (ds_group_len: the class name before the
 *        first '/', the Omniglot alphabet; groups numbered in byte-wise name
 *        order before the shuffle): round(F * groups) groups go to test.
 * SAMPLE: within each class, round(F * n_c) samples go to test, capped so the
 *        class keeps at least one training sample; labels and names kept. */
typedef enum { IMPORT_SPLIT_NONE, IMPORT_SPLIT_CLASS, IMPORT_SPLIT_SAMPLE, IMPORT_SPLIT_GROUP } ImportSplit;
const char *import_split_name(ImportSplit s); /* "none", "class", "sample", "group" */

typedef struct ImportOptions {
    ImportFormat format;
    const char *out;                     /* dataset to create (must not exist) */
    const char *images, *labels;         /* idx */
    const char *roots[IMPORT_MAX_ROOTS]; /* folder, omniglot: the roots in order, NULL after the last */
    const char *exclude_groups;  /* folder, omniglot: comma-separated groups to leave out ("koch": the ten
                                    alphabets of IMPORT_KOCH_GROUPS), or NULL */
    uint32_t rotations;          /* 0 or 1: none; 2 or 4: every class of `out` also rotated by each
                                    multiple of 360 / rotations degrees, as new classes (square images
                                    only); test_out, the held-out part of a split, is stored as is */
    int mirror;                  /* every class of `out` (and its rotated copies) also mirrored left to
                                    right, as new classes "NAME@mirror"; test_out stored as is */
    uint32_t resize_h, resize_w; /* 0, 0: keep the source size (all must match) */
    int compress;                /* zlib-compress records */
    int invert;                  /* store 255 - pixel */
    int color;                   /* 3 channels (R, G, B as decoded; grey replicated), else grey by luma */
    const char *masks;           /* folder: the mask tree that mirrors root (see import_run), or NULL */
    ImportSplit split;
    double test_fraction; /* in (0, 1) when splitting */
    const char *test_out; /* the test dataset when splitting */
    uint64_t seed;
} ImportOptions;

typedef struct ImportResult {
    uint64_t count[2];   /* samples in out, test_out */
    uint32_t classes[2]; /* classes in out, test_out */
    uint32_t height, width, channels;
} ImportResult;

/* A whole idx image set in memory (for the synthetic benchmarks). */
typedef struct IdxSet {
    uint32_t n, h, w;
    uint8_t *pixels; /* (n, h, w) */
    uint8_t *labels; /* n */
} IdxSet;

/* Reads an idx images file and its labels file (plain or .gz) whole, with
 * the importer's checks. 0, or -1 with e naming the file. */
int import_idx_load(IdxSet *s, const char *images, const char *labels, Err *e);
void import_idx_free(IdxSet *s);

/* Runs one import. 0, or -1 with e naming the file or path at fault and what
 * to do; on failure no dataset and no temporary directory remain.
 *
 * Masks (folder format, `masks` set): the mask of image ROOT/C/N.EXT is
 * MASKS/C/N.png, or else MASKS/C/N.EXT; PNG (palette PNGs by their index) or
 * PGM/PPM, 0 background and anything else object (image_load_mask), the
 * image's size. Stored 0/1 with every sample; --resize resamples a mask by
 * area averaging and keeps a pixel as object when at least half of what it
 * covers is (rounded half up). A missing or mis-sized mask is an error
 * naming both files. */
int import_run(const ImportOptions *o, ImportResult *res, Err *e);

/* --rotations: dst (n x n) = src turned counter-clockwise by quarters x 90
 * degrees: dst(y, x) = src(x, n-1-y) for one quarter. */
void import_rotate(uint8_t *dst, const uint8_t *src, uint32_t n, uint32_t quarters);

/* --mirror: dst (h x w) = src mirrored left to right: dst(y, x) = src(y, w-1-x). */
void import_mirror(uint8_t *dst, const uint8_t *src, uint32_t h, uint32_t w);

#endif
