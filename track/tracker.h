/* tracker: links a sequence's detections into tracks. The link probability
 * of two detections comes from one logistic model (LinkModel) over
 * contextual features (IoU, distance, size change, time gap) and, when an
 * appearance model is given, a siamese CNN's score (Leal-Taixé et al. 2016);
 * without one it is the motion/IoU-only baseline, with the same code.
 * online: frame by frame, tracks with constant-velocity prediction matched to
 * detections by the Hungarian method (a pair needs probability >= gate),
 * birth by detection score, end after max_age frames unmatched. batch:
 * min-cost network flow over the whole sequence (entry, exit, detection and
 * link costs; links up to max_gap frames), solved exactly. Both fill the
 * frames a track skips by linear interpolation, and may extend tracks past
 * their ends at constant velocity. */
#ifndef SIAMESE_TRACKER_H
#define SIAMESE_TRACKER_H

#include "../io/mot.h"
#include "../nn/util.h"

/* Link features: 0 the appearance score (0 without appearance), 1 IoU of
 * the earlier box moved by its velocity over the gap with the later box, 2
 * their centre distance over the mean height, 3 its square, 4 |log| of the
 * height ratio, 5 |log| of the width ratio, 6 the gap in frames minus 1, 7
 * the distance per frame of gap. */
enum { TRACK_NFEAT = 8 };

typedef struct LinkModel {
    int appearance;           /* 1: w[0] weighs the appearance score */
    double w[TRACK_NFEAT], b; /* link logit = b + w . features */
    double det_w, det_b;      /* detection logit = det_b + det_w * score */
} LinkModel;

/* The built-in motion/IoU model (no appearance), fitted by track-fit on the
 * synthetic training sequences (docs/tracking.md). */
void link_model_default(LinkModel *m);

/* Reads / writes a combiner file: "key = value" lines (appearance, b, w0 ..
 * w7, det_w, det_b; '#' comments). 0 or -1 with e naming path and line. */
int link_model_read(LinkModel *m, const char *path, Err *e);
int link_model_write(const LinkModel *m, const char *path, const char *comment, Err *e);

/* Features of linking detection a (velocity vx, vy in pixels per frame; 0
 * when unknown) to detection b, gap frames later, with appearance score s. */
void track_features(double *phi /* TRACK_NFEAT */, const MotBox *a, double vx, double vy, const MotBox *b,
                    int gap, double s);

double link_logit(const LinkModel *m, const double *phi);
double det_logit(const LinkModel *m, double score);

/* Appearance scores of detection pairs: indices into the detection list the
 * tracker was given. score(ctx, a, b, n, out) fills out[k] for (a[k], b[k]);
 * 0 or -1 with e. */
typedef struct Appearance {
    void *ctx;
    int (*score)(void *ctx, const int *a, const int *b, int n, double *out, Err *e);
} Appearance;

typedef struct TrackOptions {
    int batch;        /* 0 online, 1 batch (min-cost flow) */
    double min_score; /* detections below are ignored (default 0) */
    double gate;      /* least link probability (default 0.1; online with appearance 0.5) */
    int max_gap;      /* batch: links up to this many frames (default 15) */
    double max_speed; /* no link moves more than this many box heights per frame (default 0.5) */
    double
        entry_cost;   /* batch: cost of starting and of ending a track, each (default 3; 5 with appearance) */
    double skip_cost; /* batch: added to a link's cost per frame it skips (default 0.5) */
    int max_age;      /* online: frames a track survives unmatched (default 10; 30 with appearance) */
    int min_hits;     /* online: matches before a track is reported (default 3) */
    double birth_score;  /* online: least detection score to start a track (default 0.6) */
    int min_len;         /* tracks with fewer detections are dropped (default 3) */
    int gallery;         /* gallery size (default 5). online: a track's last N detections, scored against
                            each detection; batch with relink: link a -> b is scored by the pairs of a and
                            up to N - 1 detections before it on its track, and b and up to N - 1 after it */
    int interpolate;     /* fill gaps of up to N skipped frames (0: none; default 15) */
    int extrapolate;     /* extend each track up to N frames before its first and after its last
                            detection at its end velocity (0: none, the default) */
    int relink;          /* batch: solve the flow again N times, each link's appearance score the
                            gallery score of the previous tracks (0: never, the default) */
    int gallery_mean;    /* a gallery's score is the mean of its pairs' (default in batch), else the
                            best (default online) */
    /* batch: the link model of the relink flows and joins (NULL: the first flow's), e.g. one
       fitted on their gallery scores (siamese track-fit --relink-from) */
    const LinkModel *relink_model;
    /* batch: in the relink flows and joins, features f1-f3 and f7 move a's box by its track's
       velocity (from the detection up to 5 before it on the previous flow's track to a), as
       online does (0: not moved, the default) */
    int relink_motion;
    /* batch with an appearance model: after the last flow, join a track's end to a later track's
       start more than max_gap and at most merge_gap frames later (0: never, the default), scored
       by their galleries as relinking does; a join needs probability >= merge_gate (0.5) */
    int merge_gap;
    double merge_gate;
    /* batch with an appearance model: after the flows and joins, where two tracks' boxes
       overlap by IoU above uncross_iou (0.5) over some frames, compare the galleries of up to
       `uncross` detections of each before and after those frames, and exchange the tracks'
       tails after them when the crossed pairing scores more than uncross_margin (0) higher
       (0: never, the default) */
    int uncross;
    double uncross_iou, uncross_margin;
    /* batch with an appearance model: last, join a track's end to another track's start 1 to
       `mend` frames later (0: never, the default) by appearance alone, for targets that turn
       while hidden or come back with boxes of another size: the mean score of up to `gallery`
       detections of each at that end and start must reach mend_score (default 0) and be
       higher than the score of every other end or start either could join (no motion but
       max_speed) */
    int mend;
    double mend_score;
    /* batch, after the joins and uncrossing (before mending): join a track that ends hidden behind
       another, one of its last 3 boxes covered by more than behind_cover (0.2) of its area by a
       track B's box, to a track that starts 1 to `behind` frames later with one of its first 3
       boxes so covered by the same B (0: never, the default); neither end box at the frame's
       border (2 px), whatever the velocities. A pair joins when it is the only one of its end and
       its start or, with an appearance model, when its mean gallery score (as mend) beats every
       other pair of either by more than behind_margin (0). The hidden frames are filled
       linearly, whatever interpolate says */
    int behind;
    double behind_cover, behind_margin;
    float width, height; /* the frame, to clip extrapolated boxes to (0: not clipped) */
} TrackOptions;

/* The defaults for a mode, with or without an appearance model (an
 * appearance score allows a stricter gate online and longer gaps). */
void track_options_default(TrackOptions *o, int batch, int appearance);

/* Sets the option named by a command-line flag ("--gate", "--max-gap", ...:
 * the tuning fields above, not batch, width, height) from value. 1 set, 0 not a tracker option, -1
 * a bad or missing value (e names the flag and the range). */
int track_option_parse(TrackOptions *o, const char *name, const char *value, Err *e);

/* The detection pairs the batch tracker (and track-fit) considers: scores
 * >= min_score, 1..max_gap frames apart, moving at most max_speed box heights
 * per frame; *a, *b (malloc'd, *n entries) index det, a before b. */
void track_candidates(const MotBoxes *det, const TrackOptions *o, int **a, int **b, int *n);

/* Tracks the detections det (a MotBoxes of the sequence) into out (ids from
 * 1, boxes with the detections' scores; interpolated and extrapolated boxes
 * score 0). app may be NULL (no appearance; m->appearance must be 0). 0 or
 * -1 with e (from the appearance model only). */
int track_run(MotBoxes *out, const MotBoxes *det, const LinkModel *m, const Appearance *app,
              const TrackOptions *o, Err *e);

/* The appearance scores s (nc entries) of the candidate links (track_candidates(det, o), nc of
 * them) that the last flow of the batch tracker uses: the single pairs' with o->relink 0, else
 * the gallery scores from the tracks of the flow before it (the first flow with m, later ones
 * with o->relink_model if set); vx, vy (nc entries each) the velocity that flow gives each
 * link's first detection (0 unless o->relink_motion). For fitting a link model on the relink
 * flow's features. 0 or -1 with e. */
int track_link_scores(double *s, double *vx, double *vy, int nc, const MotBoxes *det, const LinkModel *m,
                      const Appearance *app, const TrackOptions *o, Err *e);

/* Writes given tracks as track_run does (min_len, interpolate, extrapolate
 * of o apply): label[i] is detection i's track (0, 1, ...; -1 none), ids
 * are numbered from 1 in order of the tracks' first frames. For references
 * such as the perfect association of bench_track --oracle. */
void track_emit_labels(MotBoxes *out, const MotBoxes *det, const int *label, const TrackOptions *o);

#endif
