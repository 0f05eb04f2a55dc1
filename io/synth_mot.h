/* synth_mot: synthetic MOTChallenge sequences for training and testing the
 * trackers. Fashion-MNIST items (Debian's dataset-fashion-mnist) move over a
 * cluttered static background with constant velocity and random turns,
 * occlude each other by drawing order, leave the frame and are replaced;
 * a simulated detector misses some, adds false positives and jitters the
 * boxes. Grey frames (PNG), det/det.txt, gt/gt.txt with visibility. Every
 * draw comes from Rng(seed of the sequence, RNG_SYNTH, stream). */
#ifndef SIAMESE_SYNTH_MOT_H
#define SIAMESE_SYNTH_MOT_H

#include <stdint.h>

#include "../nn/util.h"

typedef struct SynthMotOptions {
    const char *out;              /* directory to create (must not exist) */
    const char *fmnist;           /* directory with the idx files */
    int test_split;               /* objects from the test set (t10k-*) instead of train-* */
    uint64_t seed;                /* sequence k has seed + k and is named synth-<seed + k> */
    int sequences;                /* default 4 */
    int frames;                   /* per sequence, default 300 */
    int width, height;            /* default 320 x 240 */
    int min_targets, max_targets; /* on screen at once, default 8 .. 14 */
    int min_size, max_size;       /* longer side of a target in pixels, default 28 .. 56 */
    double speed;                 /* mean speed in pixels per frame, default 4.2 */
    double turn_every;            /* mean frames between turns, default 25 */
    double miss;                  /* fraction of visible targets the detector misses, default 0.10 */
    double fp_rate;               /* false positives per frame (Poisson mean), default 1 */
    double jitter;                /* detection box noise, fraction of the size, default 0.05 */
    double min_visible;           /* the detector sees targets at least this visible, default 0.5 */
} SynthMotOptions;

/* What one sequence came out as (for the summary line). */
typedef struct SynthMotStats {
    int tracks; /* distinct target ids */
    long gt_boxes, det_boxes, false_pos, missed, occluded;
    double crossings; /* overlap episodes (IoU >= 0.2) per target per 30 frames */
} SynthMotStats;

void synth_mot_defaults(SynthMotOptions *o);

/* Writes o->sequences sequences under o->out (built as out.tmp-PID and
 * renamed when complete); stats gets one entry per sequence (may be NULL).
 * 0, or -1 with e; nothing is left behind on failure. */
int synth_mot_run(const SynthMotOptions *o, SynthMotStats *stats, Err *e);

#endif
