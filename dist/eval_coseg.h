/* eval_coseg: a co-segmentation model ([loss] type = mask: one mask logit
 * per input pixel, docs/coseg.md) on the pairs records of a dataset. The
 * runner reads a batch of pairs as rows [a...; b...], runs the model in
 * inference and thresholds the logits at 0; eval scores the masks with
 * mining/coseg.c (Jaccard and precision on seen and unseen classes, wrong
 * pixels and empty predictions for pairs without a common object). A pair's
 * common class is seen when the training set has samples of it. With
 * test-time mirroring (views 2) every pair also runs mirrored left-right and
 * the two logits of a pixel are averaged before the threshold. Serial. */
#ifndef SIAMESE_EVAL_COSEG_H
#define SIAMESE_EVAL_COSEG_H

#include <stdint.h>
#include <stdio.h>

#include "../io/dataset.h"
#include "../io/norm.h"
#include "../mining/coseg.h"
#include "../nn/model.h"

/* 0 when m's loss node is one mask logit per input pixel (1 x H x W per
 * image), else -1 with e saying what it is (what names the checkpoint). */
int coseg_model_check(const Model *m, const char *what, Err *e);

/* The mask logits (rows, H, W) of m on x (rows, C, H, W normalised; a
 * batch of pairs as the rows [a...; b...]), in inference, into logit.
 * views 1: the model's output. views 2 (test-time mirroring): the rows
 * mirrored left-right (both images of every pair) run too, and logit is
 * 0.5f * (z + z'), z' their logits mirrored back. */
#define COSEG_MAX_VIEWS 2
/* What --tta refuses on a co-segmentation model (eval and segment). */
#define COSEG_TTA_ONLY "a co-segmentation model takes --tta 2 only (the pair and its left-right mirror)"
void coseg_logits(Model *m, const float *x, int rows, int views, float *logit);

typedef struct CosegRunner {
    Model *m;
    DsReader *rd;
    Norm norm;      /* the model's input normalisation, per channel */
    int cap;        /* pairs per forward */
    int views;      /* 1, or 2 with test-time mirroring (coseg_logits) */
    int has_masks;  /* the dataset has true masks (object masks; class masks are not) */
    float *x;       /* (2 cap, C, H, W) normalised */
    uint8_t *pix;   /* (2 cap, C, H, W) pixels as stored */
    uint8_t *truth; /* (2 cap, H, W) true masks (zero without) */
    int32_t *label; /* (2 cap) */
    float *logit;   /* (2 cap, H, W) the mask logits (coseg_logits) */
    uint8_t *pred;  /* (2 cap, H, W) predicted masks: 255 where the logit is above 0 */
} CosegRunner;

/* A runner over ds for m (checked with coseg_model_check; ds of m's input
 * shape) with views 1 or 2 (coseg_logits). 0, or -1 with e. */
int coseg_runner_open(CosegRunner *r, Model *m, Dataset *ds, const Norm *norm, int views, Err *e);
void coseg_runner_close(CosegRunner *r);
/* Reads the n <= cap pairs (a[k], b[k]) and runs the model: row k of every
 * buffer is image a[k], row n + k image b[k]. 0, or -1 with e (a bad record). */
int coseg_runner_run(CosegRunner *r, const uint32_t *a, const uint32_t *b, int n, Err *e);

/* The kind of a pair (COSEG_SEEN, COSEG_UNSEEN, COSEG_NONE): none without a
 * common object, else seen when train has samples of the common class
 * (label); train NULL: every common class counts as seen. */
int coseg_pair_kind(const Dataset *train, int same, int32_t label);

typedef struct CosegEval {
    CosegMetrics m;
    uint64_t pairs; /* pairs records scored */
    int views;      /* 2: with test-time mirroring */
    double seconds;
} CosegEval;

/* Scores the first max_pairs pairs records of test_path (all when
 * max_pairs <= 0) with views 1 or 2 (coseg_logits); seen classes are those
 * train_path has samples of. 0, or -1 with e naming the dataset at fault. */
int coseg_eval_run(CosegEval *out, Model *m, const Norm *norm, const char *test_path, const char *train_path,
                   long max_pairs, int views, Err *e);
void coseg_eval_print(const CosegEval *r, FILE *out);
/* JSON keys: docs/commands.md (eval on a co-segmentation model). */
int coseg_eval_write_json(const CosegEval *r, const char *path, Err *e);

/* A class-map model ([loss] mask = class: a per-image node of classes + 1
 * channels at a resolution dividing the input's) on the images of a
 * class-mask dataset (meta masks = 2), in id order (a two-image model: the
 * dataset's pairs, as the rows [a_1..a_k; b_1..b_k]): every position's
 * argmax against its block's majority class (ties: the smaller value),
 * and the loss of coseg_class_loss. */
typedef struct CosegClassEval {
    double accuracy;        /* over all positions */
    double object_accuracy; /* over the positions whose majority is an object */
    double background_accuracy;
    double loss;            /* mean per image */
    uint64_t images, positions, object_positions;
    double seconds;
} CosegClassEval;
/* Scores the first max_images images (two-image model: pairs) of test_path
 * (all when <= 0). 0, or -1 with e naming what does not fit. */
int coseg_class_eval_run(CosegClassEval *out, Model *m, const Norm *norm, const char *test_path,
                         long max_images, Err *e);
void coseg_class_eval_print(const CosegClassEval *r, FILE *out);
int coseg_class_eval_write_json(const CosegClassEval *r, const char *path, Err *e);

#endif
