/* fit: learns the tracker's link model (the combiner) from sequences with
 * ground truth. Detections are matched to ground-truth boxes frame by frame
 * (IoU >= 0.5, Hungarian method); every pair of detections the tracker would
 * consider (up to max_gap frames and max_speed apart) is a sample, positive
 * when both belong to the same target; the detection model learns whether a
 * detection's score means it matches a target. Both are logistic regressions
 * fitted by Newton's method with a small L2 penalty. */
#ifndef SIAMESE_FIT_H
#define SIAMESE_FIT_H

#include "tracker.h"

/* Logistic regression: X is (n, d) row-major with the bias column included
 * by the caller, y in {0, 1}; minimises the mean log-loss + l2/2 |w|^2 (the
 * bias too, lightly). w (d) starts at zero. Returns the Newton iterations
 * taken. */
int logreg_fit(double *w, const double *X, const double *y, int n, int d, double l2);

/* Samples from sequences: link features and labels, and detection scores
 * and labels. */
typedef struct FitSamples {
    int n, cap;
    double *phi; /* (n, TRACK_NFEAT) */
    double *y;
    int *seq; /* sequence of each sample, for held-out checks */
    int nd, dcap;
    double *det_score, *det_y;
    int *det_seq;
} FitSamples;

/* Adds one sequence's samples (appearance scores from app, or 0 without). With
 * first (and app), a link's appearance score is the one the batch tracker's
 * relink pass gives it (track_link_scores with o, o->relink >= 1): the gallery
 * score from the tracks of the flow with link model first. 0, or -1 with e
 * from the appearance model. */
int fit_add_sequence(FitSamples *s, int seq, const MotBoxes *det, const MotBoxes *gt, const Appearance *app,
                     const LinkModel *first, const TrackOptions *o, Err *e);
void fit_samples_free(FitSamples *s);

/* Fraction of link samples that are positive. */
double fit_positive_fraction(const FitSamples *s);

/* Quality of a link model on the samples of sequence `seq` (-1: all):
 * mean log-loss, accuracy at p = 0.5, ROC AUC. */
typedef struct FitQuality {
    long n;
    double logloss, accuracy, auc;
} FitQuality;

/* Fits m's link weights on the samples whose sequence is not `hold_out` (-1:
 * all) using the features in `use` (TRACK_NFEAT flags); unused weights are 0.
 * Also fits the detection model. */
void fit_link_model(LinkModel *m, const FitSamples *s, const int *use, int hold_out);
FitQuality fit_quality(const LinkModel *m, const FitSamples *s, int seq);

#endif
