/* test_tracker: the online and batch trackers on hand-made detections whose
 * right answer is known (two targets in parallel, a gap filled by exact
 * linear interpolation, a lone low-score false positive left out), the
 * appearance path (a crossing the geometry gets wrong in each mode and an
 * appearance score puts right), track-level appearance (galleries of a
 * track's detections outvoting a misleading pair at a crossing, in batch by
 * relinking, online by the mean; the relink flow's scores and velocities
 * worked out by hand, its own link model, track velocities in it, tracks
 * joined over long gaps, and behind an occluder), tracks written from labels with their ends
 * extended and clipped (worked out by hand), the tracker options parsed from
 * flags, the link-model file, logistic regression
 * against its generating weights and its own gradient, and the pairs
 * track-fit learns from, counted by hand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../track/fit.h"
#include "../track/mot_eval.h"
#include "../track/tracker.h"
#include "fixture_files.h"
#include "test.h"

enum { MAXB = 256 };

typedef struct Scene {
    MotBox box[MAXB];
    int truth[MAXB]; /* target of each detection */
    int n, frames;
} Scene;

static void add(Scene *s, int f, int target, double x, double y, double score) {
    ASSERT(s->n < MAXB);
    s->box[s->n] = (MotBox){.frame = f,
                            .id = -1,
                            .x = (float)x,
                            .y = (float)y,
                            .w = 20,
                            .h = 20,
                            .score = (float)score,
                            .vis = 1,
                            .cls = 1,
                            .flag = 1};
    s->truth[s->n++] = target;
}

/* det (sorted by frame, so truth is reordered alike) and gt from a scene */
static void scene_boxes(const Scene *s, MotBoxes *det, MotBoxes *gt, int *truth_sorted) {
    mot_boxes_build(det, s->box, (size_t)s->n, s->frames);
    MotBox g[MAXB];
    for (int i = 0; i < s->n; i++) g[i] = s->box[i], g[i].id = s->truth[i];
    mot_boxes_build(gt, g, (size_t)s->n, s->frames);
    if (truth_sorted)
        for (size_t i = 0; i < det->n; i++) truth_sorted[i] = gt->box[i].id; /* same stable order */
}

static int track(MotBoxes *out, const Scene *s, int batch, const LinkModel *m, const Appearance *app) {
    MotBoxes det, gt;
    scene_boxes(s, &det, &gt, NULL);
    TrackOptions o;
    track_options_default(&o, batch, 0);
    Err e = {""};
    int rc = track_run(out, &det, m, app, &o, &e);
    mot_boxes_free(&det);
    mot_boxes_free(&gt);
    return rc;
}

static MotCounts score(const Scene *s, const MotBoxes *res) {
    MotBoxes det, gt;
    scene_boxes(s, &det, &gt, NULL);
    MotCounts c = {0};
    mot_eval_sequence(&c, &gt, res);
    mot_boxes_free(&det);
    mot_boxes_free(&gt);
    return c;
}

static void test_parallel_and_gap(void) {
    /* A at y 10 and B at y 60, both moving 3 px right per frame, frames
     * 1..10, score 0.9; A's detections in frames 4 and 5 are missing. */
    Scene s = {.frames = 10};
    for (int f = 1; f <= 10; f++) {
        if (f != 4 && f != 5) add(&s, f, 1, 10 + 3 * f, 10, 0.9);
        add(&s, f, 2, 10 + 3 * f, 60, 0.9);
    }
    LinkModel m;
    link_model_default(&m);
    for (int batch = 0; batch <= 1; batch++) {
        MotBoxes r;
        CHECK(track(&r, &s, batch, &m, NULL) == 0, "track");
        MotCounts c = score(&s, &r);
        CHECK(c.tp == 18 && c.idsw == 0 && c.res_ids == 2, "%s: two clean tracks (tp %ld idsw %ld ids %ld)",
              batch ? "batch" : "online", c.tp, c.idsw, c.res_ids);
        /* frames 4 and 5 of track 1 (A: first in frame 1) interpolated
         * exactly: x = 10 + 3 f, score 0 */
        int filled = 0;
        for (size_t i = 0; i < r.n; i++)
            if (r.box[i].id == 1 && (r.box[i].frame == 4 || r.box[i].frame == 5))
                filled += fabsf(r.box[i].x - (float)(10 + 3 * r.box[i].frame)) < 1e-4f && r.box[i].y == 10 &&
                          r.box[i].score == 0;
        CHECK(filled == 2 && r.n == 20, "%s: the gap is filled by interpolation (%d, %zu boxes)",
              batch ? "batch" : "online", filled, r.n);
        mot_boxes_free(&r);
    }
    /* a lone detection of score 0.3 far away is left out by both */
    add(&s, 5, 3, 200, 200, 0.3);
    for (int batch = 0; batch <= 1; batch++) {
        MotBoxes r;
        track(&r, &s, batch, &m, NULL);
        int stray = 0;
        for (size_t i = 0; i < r.n; i++) stray += r.box[i].x >= 199;
        CHECK(stray == 0 && r.n == 20, "%s: low-score false positive left out", batch ? "batch" : "online");
        mot_boxes_free(&r);
    }
}

/* Appearance that knows the truth: 1 for the same target, 0 otherwise. */
static int truth_score(void *ctx, const int *a, const int *b, int n, double *out, Err *e) {
    (void)e;
    const int *truth = ctx;
    for (int k = 0; k < n; k++) out[k] = truth[a[k]] == truth[b[k]];
    return 0;
}

/* Two targets on one line (y 50) meet in the middle and are hidden while
 * they overlap (no detections for 6 frames). pass: they go through each
 * other (the geometry without velocity links each to the nearest
 * reappearance: the wrong one); bounce: they turn back (the velocity
 * prediction picks the wrong one). */
static void crossing(Scene *s, int bounce) {
    memset(s, 0, sizeof *s);
    s->frames = 30;
    for (int f = 1; f <= 30; f++) {
        double t = f <= 15 ? f : (bounce ? 30 - f : f);
        double xa = 20 + 4 * t, xb = 140 - 4 * t;
        if (f >= 13 && f <= 18) continue; /* hidden while they overlap */
        add(s, f, 1, xa, 50, 0.9);
        add(s, f, 2, xb, 50, 0.9);
    }
}

static void test_appearance(void) {
    LinkModel geo, app_m;
    link_model_default(&geo);
    app_m = geo;
    app_m.appearance = 1;
    app_m.w[0] = 12, app_m.b -= 6; /* +6 same target, -6 different */
    for (int batch = 0; batch <= 1; batch++) {
        Scene s;
        crossing(&s, !batch); /* batch is fooled by passing, online by bouncing */
        MotBoxes det, gt, r;
        int truth[MAXB];
        scene_boxes(&s, &det, &gt, truth);
        TrackOptions o;
        track_options_default(&o, batch, 0);
        Err e = {""};
        CHECK(track_run(&r, &det, &geo, NULL, &o, &e) == 0, "%s", e.msg);
        MotCounts c0 = {0}, c1 = {0};
        mot_eval_sequence(&c0, &gt, &r);
        mot_boxes_free(&r);
        Appearance app = {truth, truth_score};
        CHECK(track_run(&r, &det, &app_m, &app, &o, &e) == 0, "%s", e.msg);
        mot_eval_sequence(&c1, &gt, &r);
        mot_boxes_free(&r);
        CHECK(c0.idsw >= 1, "%s: geometry alone switches at the crossing (idsw %ld)",
              batch ? "batch" : "online", c0.idsw);
        CHECK(c1.idsw == 0 && c1.idtp == c1.tp, "%s: with appearance no switch (idsw %ld)",
              batch ? "batch" : "online", c1.idsw);
        mot_boxes_free(&det);
        mot_boxes_free(&gt);
    }
}

/* Finds the box of track id in frame f of r, NULL. */
/* The truth, except that a pair from a detection of the last frame before
 * the crossing's hiding (12) to one after it (19 on) is flipped: the end
 * detections look like the other target. */
typedef struct Flipped {
    const int *truth;
    const MotBoxes *det;
} Flipped;

static int flipped_score(void *ctx, const int *a, const int *b, int n, double *out, Err *e) {
    (void)e;
    Flipped *c = ctx;
    for (int k = 0; k < n; k++) {
        int same = c->truth[a[k]] == c->truth[b[k]];
        int fa = c->det->box[a[k]].frame, fb = c->det->box[b[k]].frame;
        out[k] = (fa == 12 && fb >= 19) || (fb == 12 && fa >= 19) ? !same : same;
    }
    return 0;
}

/* The link model of the appearance tests: appearance weight 12, bias 6 lower
 * (a score of 0.5 is neutral). */
static void appearance_link_model(LinkModel *m) {
    link_model_default(m);
    m->appearance = 1;
    m->w[0] = 12, m->b -= 6;
}

/* Track-level appearance: the end detections of a crossing say the wrong
 * target, the detections before and after them the right one. Batch, pass
 * (geometry links each end to the nearer, wrong reappearance): link A12 ->
 * A19 scores 0 and A12 -> B19 scores 1 as single pairs; relinked with
 * galleries of 5 (A8..A12 against A19..A23) 20 of the 25 pairs are right:
 * 20/25 = 0.8 against 5/25 = 0.2 (logit 12 x 0.8 - 6 = 3.6 against -3.6).
 * Online, bounce (the velocity prediction picks the wrong one): track A's
 * last 5 detections A8..A12 against A19 score best 1 (A11) and mean 4/5,
 * against B19 best 1 (A12) and mean 1/5. */
static void test_gallery(void) {
    LinkModel m;
    appearance_link_model(&m);
    const struct {
        int batch, relink, gallery, mean, switches;
        const char *what;
    } runs[] = {
        {1, 0, 5, 1, 1, "batch, end pairs only"},
        {1, 1, 5, 1, 0, "batch, relinked with galleries of 5 (mean)"},
        {1, 2, 5, 1, 0, "batch, relinked twice"},
        {1, 1, 1, 1, 1, "batch, relinked with galleries of 1 (the end pairs again)"},
        {1, 1, 5, 0, 1, "batch, relinked with galleries of 5 (best)"},
        {0, 0, 5, 0, 1, "online, best of the last 5"},
        {0, 0, 5, 1, 0, "online, mean of the last 5"},
        {0, 0, 1, 1, 1, "online, last detection only"},
    };
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        Scene s;
        crossing(&s, !runs[r].batch);
        MotBoxes det, gt, res;
        int truth[MAXB];
        scene_boxes(&s, &det, &gt, truth);
        TrackOptions o;
        track_options_default(&o, runs[r].batch, 0);
        o.relink = runs[r].relink, o.gallery = runs[r].gallery, o.gallery_mean = runs[r].mean;
        Flipped ctx = {truth, &det};
        Appearance app = {&ctx, flipped_score};
        Err e = {""};
        CHECK(track_run(&res, &det, &m, &app, &o, &e) == 0, "%s", e.msg);
        MotCounts c = {0};
        mot_eval_sequence(&c, &gt, &res);
        CHECK(runs[r].switches ? c.idsw >= 1 : c.idsw == 0 && c.idtp == c.tp, "%s: idsw %ld (%s)",
              runs[r].what, c.idsw, runs[r].switches ? "fooled" : "none");
        mot_boxes_free(&res);
        mot_boxes_free(&det);
        mot_boxes_free(&gt);
    }
}

/* The detection of target `who` in frame f of det (truth sorted alike), -1. */
static int det_of(const MotBoxes *det, const int *truth, int32_t f, int who) {
    for (size_t i = det->first[f]; i < det->first[f + 1]; i++)
        if (truth[i] == who) return (int)i;
    return -1;
}

/* The candidate link a -> b among (ca, cb; nc), -1. */
static int cand_of(const int *ca, const int *cb, int nc, int a, int b) {
    for (int k = 0; k < nc; k++)
        if (ca[k] == a && cb[k] == b) return k;
    return -1;
}

/* Appearance that scores every pair *(double *)ctx: SCORE_0 or SCORE_1
 * (1: an appearance that sees no difference). */
static double SCORE_0 = 0, SCORE_1 = 1;
static int const_score(void *ctx, const int *a, const int *b, int n, double *out, Err *e) {
    (void)a, (void)b, (void)e;
    for (int k = 0; k < n; k++) out[k] = *(const double *)ctx;
    return 0;
}

/* The scores and velocities of the relink flow (track_link_scores), worked
 * out by hand on the crossing of test_gallery (pass): without relinking the
 * single pairs' scores; relinked with galleries of 5, A12 -> A19 scores
 * 20/25 and A12 -> B19 5/25 (test_gallery), and with --relink-motion A12
 * moves +4 px per frame (from A7: 20 px in 5 frames), B12 -4, both 0
 * without. A relink model that reads the gallery score backwards
 * (relink_model) makes the relinked flow switch where the first model's
 * does not. */
static void test_relink_scores(void) {
    LinkModel m;
    appearance_link_model(&m);
    Scene sc;
    crossing(&sc, 0);
    MotBoxes det, gt, res;
    int truth[MAXB];
    scene_boxes(&sc, &det, &gt, truth);
    TrackOptions o;
    track_options_default(&o, 1, 0);
    o.gallery = 5;
    Flipped ctx = {truth, &det};
    Appearance app = {&ctx, flipped_score};
    int *ca, *cb, nc;
    track_candidates(&det, &o, &ca, &cb, &nc);
    double *s = xmalloc(sizeof(double) * (size_t)nc), *vx = xmalloc(sizeof(double) * (size_t)nc),
           *vy = xmalloc(sizeof(double) * (size_t)nc), *ref = xmalloc(sizeof(double) * (size_t)nc);
    Err e = {""};
    CHECK(track_link_scores(s, vx, vy, nc, &det, &m, &app, &o, &e) == 0, "%s", e.msg);
    flipped_score(&ctx, ca, cb, nc, ref, &e);
    int same = 1;
    for (int k = 0; k < nc; k++) same &= s[k] == ref[k] && vx[k] == 0 && vy[k] == 0;
    CHECK(same && nc > 0, "no relink: the single pairs' scores, no velocity (%d links)", nc);
    int a12 = det_of(&det, truth, 12, 1), b12 = det_of(&det, truth, 12, 2), a19 = det_of(&det, truth, 19, 1),
        b19 = det_of(&det, truth, 19, 2);
    int kaa = cand_of(ca, cb, nc, a12, a19), kab = cand_of(ca, cb, nc, a12, b19),
        kbb = cand_of(ca, cb, nc, b12, b19);
    CHECK(kaa >= 0 && kab >= 0 && kbb >= 0, "the crossing's links are candidates");
    for (int motion = 0; motion <= 1; motion++) {
        o.relink = 1, o.relink_motion = motion;
        CHECK(track_link_scores(s, vx, vy, nc, &det, &m, &app, &o, &e) == 0, "%s", e.msg);
        CHECK(fabs(s[kaa] - 0.8) < 1e-12 && fabs(s[kab] - 0.2) < 1e-12,
              "relinked: A12 -> A19 %g (want 0.8), A12 -> B19 %g (want 0.2)", s[kaa], s[kab]);
        double want = motion ? 4 : 0;
        CHECK(vx[kaa] == want && vx[kab] == want && vx[kbb] == -want && vy[kaa] == 0 && vy[kbb] == 0,
              "relink motion %d: A12 vx %g, B12 vx %g (want %g, %g)", motion, vx[kaa], vx[kbb], want, -want);
    }
    o.relink_motion = 0;
    LinkModel back = m;
    back.w[0] = -12, back.b = m.b + 12;
    for (int inv = 0; inv <= 1; inv++) {
        o.relink_model = inv ? &back : &m;
        CHECK(track_run(&res, &det, &m, &app, &o, &e) == 0, "%s", e.msg);
        MotCounts c = {0};
        mot_eval_sequence(&c, &gt, &res);
        CHECK(inv ? c.idsw >= 1 : c.idsw == 0, "relink model %s: idsw %ld", inv ? "backwards" : "the same",
              c.idsw);
        mot_boxes_free(&res);
    }
    free(s), free(vx), free(vy), free(ref), free(ca), free(cb);
    mot_boxes_free(&det);
    mot_boxes_free(&gt);
}

/* --relink-motion: the crossing (pass) with an appearance that says
 * nothing (every pair 0, weight 0). The flow without velocities links each
 * end to the nearer reappearance, the wrong one, and so does a relinked one
 * without them; relinked with each track's velocity, A12 moved 7 frames at
 * +4 px lands exactly on A19 and B12 on B19: no switch. */
static void test_relink_motion(void) {
    LinkModel m;
    link_model_default(&m);
    m.appearance = 1;
    Scene sc;
    crossing(&sc, 0);
    MotBoxes det, gt, res;
    scene_boxes(&sc, &det, &gt, NULL);
    Appearance app = {&SCORE_0, const_score};
    for (int motion = 0; motion <= 1; motion++) {
        TrackOptions o;
        track_options_default(&o, 1, 0);
        o.relink = 1, o.relink_motion = motion;
        Err e = {""};
        CHECK(track_run(&res, &det, &m, &app, &o, &e) == 0, "%s", e.msg);
        MotCounts c = {0};
        mot_eval_sequence(&c, &gt, &res);
        CHECK(motion ? c.idsw == 0 && c.idtp == c.tp : c.idsw >= 1, "relink motion %d: idsw %ld", motion,
              c.idsw);
        mot_boxes_free(&res);
    }
    mot_boxes_free(&det);
    mot_boxes_free(&gt);
}

/* --merge-gap: target A (y 50, +2 px per frame) is seen in frames 1-10 and
 * 32-41 (a gap of 22 frames, more than max-gap 15), B far below (y 200) in
 * every frame. Appearance knows the truth. Without merging A is two tracks;
 * with --merge-gap 30 one (its ends 44 px, 2.2 box heights, apart: p = 0.99
 * with the score 1). If the second piece is another target C (the score
 * 0: p = 0.0007), it stays apart; so does A with --merge-gap 20, under its
 * gap. */
static void test_merge(void) {
    LinkModel m;
    appearance_link_model(&m);
    const struct {
        int other, merge_gap, ids;
        const char *what;
    } runs[] = {{0, 0, 3, "no merging: A in two tracks"},
                {0, 30, 2, "--merge-gap 30: A joined"},
                {0, 20, 3, "--merge-gap 20: the gap of 22 is longer"},
                {1, 30, 3, "--merge-gap 30, another target: apart"}};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        Scene sc = {.frames = 41};
        for (int f = 1; f <= 41; f++) {
            if (f <= 10 || f >= 32) add(&sc, f, f <= 10 || !runs[r].other ? 1 : 3, 10 + 2 * f, 50, 0.9);
            add(&sc, f, 2, 10 + 2 * f, 200, 0.9);
        }
        MotBoxes det, gt, res;
        int truth[MAXB];
        scene_boxes(&sc, &det, &gt, truth);
        TrackOptions o;
        track_options_default(&o, 1, 0);
        o.merge_gap = runs[r].merge_gap;
        Appearance app = {truth, truth_score};
        Err e = {""};
        CHECK(track_run(&res, &det, &m, &app, &o, &e) == 0, "%s", e.msg);
        MotCounts c = {0};
        mot_eval_sequence(&c, &gt, &res);
        CHECK(c.res_ids == runs[r].ids && c.tp == 61 && c.fp == 0,
              "%s: %ld result ids (want %d), tp %ld fp %ld", runs[r].what, c.res_ids, runs[r].ids, c.tp,
              c.fp);
        mot_boxes_free(&res);
        mot_boxes_free(&det);
        mot_boxes_free(&gt);
    }
}

static int untruth_score(void *ctx, const int *a, const int *b, int n, double *out, Err *e) {
    (void)e;
    const int *truth = ctx;
    for (int k = 0; k < n; k++) out[k] = truth[a[k]] != truth[b[k]];
    return 0;
}

/* --uncross: A and B (20 x 20, x = 10 + 3 f) come together, run 4 px apart
 * (A at y 100, B at 104: IoU 0.67) in frames 13-18 and part the other way
 * round, A down and B up at 8 px per frame (frame 19: A at 108, B at 96).
 * Before, A comes down and B up at 5 px per frame (frame 12: A 95, B 109,
 * IoU 0.18). The flow without velocities links A18 -> B19 (4 px) over
 * A18 -> A19 (8 px), B18 -> A19 likewise: the tracks bounce and swap for
 * good (A in track 1 in frames 1-18, B after). Their boxes overlap above
 * 0.3 in frames 13-18 only (frame 19: 12 px, IoU 0.25), so the crossing is
 * 13-18 and the galleries are frames 1-12 and 19-30. With an appearance
 * that knows the truth (1 same target, 0 not) the tracked pairing scores
 * 0 + 0, the crossed one 1 + 1: the tails after frame 18 are exchanged and
 * every box is right. Not with a margin of 2 (2 is not more than 0 + 2;
 * with 1.9 it is), not when the crossing needs IoU above 0.7, not when the
 * appearance says the opposite (tracked 2, crossed 0). The flow's link
 * model ignores the appearance score (weight 0) in every run. */
static void test_uncross(void) {
    LinkModel m;
    link_model_default(&m);
    m.appearance = 1; /* w0 = 0: the flow is the geometry's alone */
    Scene sc = {.frames = 30};
    for (int f = 1; f <= 30; f++) {
        double ya = f < 13 ? 100 - 5 * (13 - f) : f <= 18 ? 100 : 100 + 8 * (f - 18);
        double yb = f < 13 ? 104 + 5 * (13 - f) : f <= 18 ? 104 : 104 - 8 * (f - 18);
        add(&sc, f, 1, 10 + 3 * f, ya, 0.9);
        add(&sc, f, 2, 10 + 3 * f, yb, 0.9);
    }
    MotBoxes det, gt, res;
    int truth[MAXB];
    scene_boxes(&sc, &det, &gt, truth);
    const struct {
        int uncross, lie;
        double iou, margin;
        int fixed;
        const char *what;
    } runs[] = {{0, 0, 0.3, 0, 0, "no uncrossing: the tracks swap"},
                {5, 0, 0.3, 0, 1, "--uncross 5: exchanged"},
                {1, 0, 0.3, 0, 1, "--uncross 1: exchanged"},
                {5, 0, 0.3, 2, 0, "--uncross-margin 2: kept"},
                {5, 0, 0.3, 1.9, 1, "--uncross-margin 1.9: exchanged"},
                {5, 0, 0.7, 0, 0, "--uncross-iou 0.7: no crossing"},
                {5, 1, 0.3, 0, 0, "an appearance that says the opposite: kept"}};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        TrackOptions o;
        track_options_default(&o, 1, 0);
        o.uncross = runs[r].uncross, o.uncross_iou = runs[r].iou, o.uncross_margin = runs[r].margin;
        Appearance app = {truth, runs[r].lie ? untruth_score : truth_score};
        Err e = {""};
        CHECK(track_run(&res, &det, &m, &app, &o, &e) == 0, "%s", e.msg);
        MotCounts c = {0};
        mot_eval_sequence(&c, &gt, &res);
        CHECK(c.tp == 60 && c.fp == 0 && c.res_ids == 2, "%s: tp %ld fp %ld, %ld ids", runs[r].what, c.tp,
              c.fp, c.res_ids);
        CHECK(runs[r].fixed ? c.idsw == 0 && c.idtp == 60 : c.idsw == 2 && c.idtp == 36,
              "%s: idsw %ld, idtp %ld (want %s)", runs[r].what, c.idsw, c.idtp,
              runs[r].fixed ? "0, 60" : "2, 36");
        mot_boxes_free(&res);
    }
    mot_boxes_free(&det);
    mot_boxes_free(&gt);
}

/* --mend: target A (20 x 20, y 100) moves right in frames 1-10 (x = 50 + 4 f,
 * 90 at frame 10), is hidden 19 frames and comes back turned: frames 30-40 at
 * x = 80 - 4 (f - 30), moving left. B (y 200) is seen in every frame. The gap
 * of 20 frames is longer than --max-gap 15: the flows leave A in two tracks
 * (3 ids). A join moving A's end at its track's velocity (--merge-gap 30
 * --relink-motion 1) puts it at x 170, 4.5 box heights from where A comes
 * back: with the score 1, logit 8.258 + 0.627 * 4.5 - 0.729 * 4.5^2 - 0.037 *
 * 19 - 6.330 * 4.5 / 20 = -5.8, p 0.003, refused. --mend 30 asks the
 * appearance alone: the end of A (frame 10) and its start (frame 30) score 1
 * (truth), every other end or start they could join 0 (B ends at 40 and
 * starts at 1: none), so A is joined: 2 ids, every box on its target. Not
 * with --mend 19 (the gap is 20), nor with --mend-score 1.01 (1 is not
 * enough; with 1 it is), nor when the piece after the gap is another target
 * C (score 0), nor when A comes back 240 px further right (250 px from its
 * end: 0.625 box heights per frame, more than --max-speed 0.5; with 0.7 it
 * is joined). Apart, A's identity goes with its 11 boxes after the gap and
 * the 10 before are lost (idtp 51 of 61, one switch). With a second piece C starting at frame 32 at
 * x 120: the truth joins A to A (1 against C's 0) and leaves C alone (3 ids,
 * no switch); an appearance that scores every pair 1 cannot tell A's piece
 * from C's, so nothing is joined. */
static void test_mend(void) {
    LinkModel m;
    appearance_link_model(&m);
    const struct {
        int other, rival, blind, mend, merge;
        double score, speed;
        int ids, joined;
        const char *what;
    } runs[] = {{0, 0, 0, 0, 0, 0, 0.5, 3, 0, "no mending: A in two tracks"},
                {0, 0, 0, 0, 30, 0, 0.5, 3, 0, "--merge-gap 30 --relink-motion 1: refused"},
                {0, 0, 0, 30, 0, 0.5, 0.5, 2, 1, "--mend 30: A joined"},
                {0, 0, 0, 30, 30, 0.5, 0.5, 2, 1, "--mend 30 after --merge-gap 30: A joined"},
                {0, 0, 0, 20, 0, 0.5, 0.5, 2, 1, "--mend 20: A joined"},
                {0, 0, 0, 19, 0, 0.5, 0.5, 3, 0, "--mend 19: the gap of 20 is longer"},
                {0, 0, 0, 30, 0, 1, 0.5, 2, 1, "--mend-score 1: A joined"},
                {0, 0, 0, 30, 0, 1.01, 0.5, 3, 0, "--mend-score 1.01: apart"},
                {1, 0, 0, 30, 0, 0.5, 0.5, 3, 0, "--mend 30, another target: apart"},
                {2, 0, 0, 30, 0, 0.5, 0.5, 3, 0, "--mend 30, A back 240 px further: apart"},
                {2, 0, 0, 30, 0, 0.5, 0.7, 2, 1, "--mend 30 --max-speed 0.7, A back 240 px further: joined"},
                {0, 1, 0, 30, 0, 0.5, 0.5, 3, 1, "--mend 30, a rival start: A joined to A"},
                {0, 1, 1, 30, 0, 0.5, 0.5, 4, 0, "--mend 30, a rival start, blind: apart"}};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        Scene sc = {.frames = 40};
        for (int f = 1; f <= 40; f++) {
            if (f <= 10) add(&sc, f, 1, 50 + 4 * f, 100, 0.9);
            if (f >= 30)
                add(&sc, f, runs[r].other == 1 ? 3 : 1, 80 + 240 * (runs[r].other == 2) - 4 * (f - 30), 100,
                    0.9);
            if (f >= 32 && runs[r].rival) add(&sc, f, 4, 120, 100, 0.9);
            add(&sc, f, 2, 10 + 2 * f, 200, 0.9);
        }
        MotBoxes det, gt, res;
        int truth[MAXB];
        scene_boxes(&sc, &det, &gt, truth);
        TrackOptions o;
        track_options_default(&o, 1, 0);
        o.mend = runs[r].mend, o.mend_score = runs[r].score, o.max_speed = runs[r].speed;
        o.merge_gap = runs[r].merge, o.relink_motion = 1;
        Appearance app = runs[r].blind ? (Appearance){&SCORE_1, const_score} : (Appearance){truth, truth_score};
        Err e = {""};
        CHECK(track_run(&res, &det, &m, &app, &o, &e) == 0, "%s", e.msg);
        MotCounts c = {0};
        mot_eval_sequence(&c, &gt, &res);
        long boxes = 61 + (runs[r].rival ? 9 : 0);
        CHECK(c.res_ids == runs[r].ids && c.tp == boxes && c.fp == 0,
              "%s: %ld result ids (want %d), tp %ld (want %ld) fp %ld", runs[r].what, c.res_ids, runs[r].ids,
              c.tp, boxes, c.fp);
        /* joined: A's 21 boxes on one id; apart: A's identity goes with its 11 boxes after the gap,
           the 10 before are lost (one switch), unless those 11 are another target's */
        int whole = runs[r].joined || runs[r].other == 1;
        long idtp = whole ? boxes : boxes - 10;
        CHECK(c.idtp == idtp && c.idsw == !whole, "%s: idtp %ld (want %ld), idsw %ld", runs[r].what, c.idtp,
              idtp, c.idsw);
        mot_boxes_free(&res);
        mot_boxes_free(&det);
        mot_boxes_free(&gt);
    }
}

static const MotBox *find(const MotBoxes *r, int32_t id, int32_t f) {
    for (size_t i = r->first[f]; i < r->first[f + 1]; i++)
        if (r->box[i].id == id) return &r->box[i];
    return NULL;
}

static int near(const MotBox *b, double x, double y, double w, double h) {
    return b && fabs(b->x - x) < 1e-4 && fabs(b->y - y) < 1e-4 && fabs(b->w - w) < 1e-4 &&
           fabs(b->h - h) < 1e-4 && b->score == 0;
}

/* --behind: B (20 x 20, y = Y) moves right at 1 px per frame, x = 100 + f,
 * seen in every frame 1-40. A comes from the left at 4 px per frame, x = 60 +
 * 4 f, y = Y, seen in frames 1-10 (frame 10: x 100, half under B at 110:
 * covered 10 x 20 / 400 = 0.5), is hidden behind B in frames 11-29 where it
 * turns (the ground truth puts it on the line to where it comes back, 5.3 to
 * 9.8 px left of B, IoU with B's box at most 0.37) and comes back moving down
 * and left, x = 125 - 4 (f - 30), y = Y + 6 + 4 (f - 30), frames 30-40
 * (frame 30: covered 15 x 14 / 400 = 0.525 by B at 130). The gap of 20
 * frames is longer than --max-gap 15, so the flows leave A in two tracks:
 * 3 ids, 61 boxes matched (A's 19 hidden ones missed), A's identity goes
 * with its 11 boxes after the gap and the 10 before are lost (idtp 51, one
 * switch). --behind 30 (and 20) joins them, with or without an appearance
 * model (no other end or start is hidden by B), and fills frames 11-29 on
 * the line from A's end to its return, the ground truth's: 2 ids, all 80
 * boxes on their targets. Not with --behind 19 (gap 20), nor --behind-cover
 * 0.5 (A's end is covered 0.5, not more; 0.49 joins), nor with Y = 1 (A's
 * end touches the top border; its return, at y 7, does not), nor in a frame
 * 127 px high (A's return touches the bottom border at 126; A's end, at 120,
 * does not). When A's last detection is 12 px off to the left (x 88, not
 * under B), the one before it (frame 9: 7 / 20 under B) still is: joined,
 * and the line from x 88 misses the ground truth by 12 - 0.6 (f - 10) px, IoU
 * >= 0.5 (at most 6.67 px) in frames 19-29 only (11 boxes; 8 false positives
 * and 8 misses). A rival start C at frame 32 at x 200 (not under B) leaves
 * the join alone (3 ids, C's 9 boxes right too); a rival C at x 140, 8 px
 * from B at 132 (covered 0.6), is a second start hidden by B: without
 * appearance neither joins (4 ids); the truth (A's end scores 1 against A, 0
 * against C) joins A to A, but not with --behind-margin 1 (1 is not more than
 * 0 + 1); an appearance that scores every pair 1 joins neither. */
static void test_behind(void) {
    const struct {
        int behind, y, height, jitter, rival, app; /* rival: 1 away from B, 2 under B; app: 0 none,
                                                      1 truth, 2 blind */
        double cover, margin;
        int ids, joined, filled; /* filled: hidden frames put right */
        const char *what;
    } runs[] = {
        {0, 100, 240, 0, 0, 0, 0.2, 0, 3, 0, 0, "no --behind: A in two tracks"},
        {30, 100, 240, 0, 0, 0, 0.2, 0, 2, 1, 19, "--behind 30: A joined"},
        {20, 100, 240, 0, 0, 0, 0.2, 0, 2, 1, 19, "--behind 20: A joined"},
        {30, 100, 240, 0, 0, 1, 0.2, 0, 2, 1, 19, "--behind 30, with the truth: A joined"},
        {19, 100, 240, 0, 0, 0, 0.2, 0, 3, 0, 0, "--behind 19: the gap of 20 is longer"},
        {30, 100, 240, 0, 0, 0, 0.5, 0, 3, 0, 0, "--behind-cover 0.5: A's end is covered 0.5"},
        {30, 100, 240, 0, 0, 0, 0.49, 0, 2, 1, 19, "--behind-cover 0.49: A joined"},
        {30, 1, 240, 0, 0, 0, 0.2, 0, 3, 0, 0, "--behind 30, A's end at the top border: apart"},
        {30, 100, 127, 0, 0, 0, 0.2, 0, 3, 0, 0, "--behind 30, A's return at the bottom border: apart"},
        {30, 100, 240, 1, 0, 0, 0.2, 0, 2, 1, 11, "A's last box off B: joined by the one before"},
        {30, 100, 240, 0, 1, 0, 0.2, 0, 3, 1, 19, "--behind 30, a rival start away from B: A joined"},
        {30, 100, 240, 0, 2, 0, 0.2, 0, 4, 0, 0, "--behind 30, a rival start under B: apart"},
        {30, 100, 240, 0, 2, 1, 0.2, 0, 3, 1, 19, "--behind 30, a rival under B, the truth: A joined"},
        {30, 100, 240, 0, 2, 1, 0.2, 1, 4, 0, 0, "--behind-margin 1, a rival under B, the truth: apart"},
        {30, 100, 240, 0, 2, 2, 0.2, 0, 4, 0, 0, "--behind 30, a rival under B, blind: apart"}};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        Scene sc = {.frames = 40};
        int y = runs[r].y;
        double x10 = runs[r].jitter ? 88 : 100; /* A's last box before the gap */
        for (int f = 1; f <= 40; f++) {
            if (f <= 10) add(&sc, f, 1, f == 10 ? x10 : 60 + 4 * f, y, 0.9);
            if (f >= 30) add(&sc, f, 1, 125 - 4 * (f - 30), y + 6 + 4 * (f - 30), 0.9);
            if (f >= 32 && runs[r].rival) add(&sc, f, 3, runs[r].rival == 1 ? 200 : 140, y, 0.9);
            add(&sc, f, 2, 100 + f, y, 0.9);
        }
        MotBoxes det, gt, res;
        int truth[MAXB];
        scene_boxes(&sc, &det, &gt, truth);
        mot_boxes_free(&gt);
        MotBox g[MAXB + 20]; /* the ground truth: the detections and A's hidden frames */
        for (size_t i = 0; i < det.n; i++) g[i] = det.box[i], g[i].id = truth[i];
        size_t ng = det.n;
        for (int f = 11; f <= 29; f++, ng++)
            g[ng] = (MotBox){.frame = f,
                             .id = 1,
                             .x = (float)(100 + 25.0 * (f - 10) / 20),
                             .y = (float)(y + 6.0 * (f - 10) / 20),
                             .w = 20,
                             .h = 20,
                             .vis = 0,
                             .cls = 1,
                             .flag = 1};
        mot_boxes_build(&gt, g, ng, 40);
        LinkModel m;
        if (runs[r].app)
            appearance_link_model(&m);
        else
            link_model_default(&m);
        TrackOptions o;
        track_options_default(&o, 1, 0);
        o.width = 320, o.height = (float)runs[r].height;
        o.behind = runs[r].behind, o.behind_cover = runs[r].cover, o.behind_margin = runs[r].margin;
        Appearance app =
            runs[r].app == 2 ? (Appearance){&SCORE_1, const_score} : (Appearance){truth, truth_score};
        Err e = {""};
        CHECK(track_run(&res, &det, &m, runs[r].app ? &app : NULL, &o, &e) == 0, "%s", e.msg);
        MotCounts c = {0};
        mot_eval_sequence(&c, &gt, &res);
        long seen = 61 + (runs[r].rival ? 9 : 0), boxes = seen + runs[r].filled,
             fp = runs[r].joined ? 19 - runs[r].filled : 0;
        CHECK(c.res_ids == runs[r].ids && c.tp == boxes && c.fp == fp && c.fn == seen + 19 - boxes,
              "%s: %ld result ids (want %d), tp %ld (want %ld) fp %ld (want %ld) fn %ld", runs[r].what,
              c.res_ids, runs[r].ids, c.tp, boxes, c.fp, fp, c.fn);
        long idtp = runs[r].joined ? boxes : boxes - 10;
        CHECK(c.idtp == idtp && c.idsw == !runs[r].joined, "%s: idtp %ld (want %ld), idsw %ld", runs[r].what,
              c.idtp, idtp, c.idsw);
        /* the hidden frames on the line from A's end to its return, score 0 */
        int on_line = 1;
        for (int f = 11; f <= 29 && runs[r].joined; f++) {
            const MotBox *b = find(&res, 1, f);
            double s = (f - 10) / 20.0;
            on_line &= b && fabs(b->x - (x10 + s * (125 - x10))) < 1e-4 && fabs(b->y - (y + 6 * s)) < 1e-4 &&
                       b->score == 0;
        }
        CHECK(on_line, "%s: A's hidden frames filled linearly", runs[r].what);
        mot_boxes_free(&res);
        mot_boxes_free(&det);
        mot_boxes_free(&gt);
    }
}

static void test_extrapolate(void) {
    /* 16 frames of 50 x 100. Label 0: 20x20 boxes at x = 10 + 3 f, y 40 in
     * frames 4..9. Label 1: frames 6 and 8, x 5, y 70 and 74. A false
     * positive (label -1) in frame 5. */
    MotBox b[16];
    int n = 0, label[16];
    for (int f = 4; f <= 9; f++)
        label[n] = 0,
        b[n++] = (MotBox){.frame = f, .x = 10 + 3 * f, .y = 40, .w = 20, .h = 20, .score = 0.9f};
    label[n] = 1, b[n++] = (MotBox){.frame = 6, .x = 5, .y = 70, .w = 20, .h = 20, .score = 0.9f};
    label[n] = 1, b[n++] = (MotBox){.frame = 8, .x = 5, .y = 74, .w = 20, .h = 20, .score = 0.9f};
    label[n] = -1, b[n++] = (MotBox){.frame = 5, .x = 0, .y = 0, .w = 20, .h = 20, .score = 0.9f};
    MotBoxes det, r;
    mot_boxes_build(&det, b, (size_t)n, 16);
    int lab[16]; /* label in det's (frame-sorted, stable) order */
    for (size_t i = 0; i < det.n; i++)
        for (int k = 0; k < n; k++)
            if (b[k].frame == det.box[i].frame && b[k].x == det.box[i].x && b[k].y == det.box[i].y)
                lab[i] = label[k];
    TrackOptions o;
    track_options_default(&o, 1, 0);
    o.min_len = 1, o.extrapolate = 10, o.width = 50, o.height = 100;
    track_emit_labels(&r, &det, lab, &o);
    /* label 0 (id 1: first frame 4), velocity (37 - 22) / 5 = 3 px per
     * frame: back to frames 3, 2, 1 at x 19, 16, 13; on in frames 10..13 at
     * x 40, 43, 46, 49 clipped to width 10, 7, 4, 1; in frame 14 (x 52) it
     * has left. Label 1 (id 2): frame 7 interpolated (y 72); 2 px per frame
     * down: frames 5..1 at y 68 .. 60, frames 9..16 at y 76 .. 90, clipped
     * to height 100 from frame 12 on (h 18, 16, ... 10); the sequence ends. */
    int ok = r.n == 13 + 16 && !find(&r, 1, 14) && find(&r, 2, 16) && !find(&r, 3, 5);
    for (int f = 1; f <= 3; f++) ok &= near(find(&r, 1, f), 10 + 3 * f, 40, 20, 20);
    for (int f = 10; f <= 13; f++) ok &= near(find(&r, 1, f), 10 + 3 * f, 40, 50 - (10 + 3 * f), 20);
    ok &= near(find(&r, 2, 7), 5, 72, 20, 20);
    for (int f = 1; f <= 16; f++)
        if (f != 6 && f != 8 && f != 7)
            ok &= near(find(&r, 2, f), 5, 58 + 2 * f, 20, MIN(20, 100 - (58 + 2 * f)));
    CHECK(ok, "extrapolated and clipped ends as worked out by hand (%zu boxes, want 29)", r.n);
    mot_boxes_free(&r);
    /* min-len 3 drops label 1; without extrapolation only the detections */
    o.min_len = 3, o.extrapolate = 0;
    track_emit_labels(&r, &det, lab, &o);
    CHECK(r.n == 6 && find(&r, 1, 4) && !find(&r, 1, 3) && !find(&r, 2, 6),
          "min-len 3, no extrapolation: %zu (6)", r.n);
    mot_boxes_free(&r);
    mot_boxes_free(&det);
}

static void test_option_parse(void) {
    TrackOptions o;
    track_options_default(&o, 0, 0);
    Err e = {""};
    CHECK(track_option_parse(&o, "--extrapolate", "4", &e) == 1 && o.extrapolate == 4, "--extrapolate 4");
    CHECK(track_option_parse(&o, "--gate", "0.25", &e) == 1 && o.gate == 0.25, "--gate 0.25");
    CHECK(track_option_parse(&o, "--seq", "x", &e) == 0, "--seq is not a tracker option");
    CHECK(track_option_parse(&o, "--gate", "2", &e) == -1 &&
              strstr(e.msg, "--gate 2: expected a number in [1e-09, 1]"),
          "--gate 2 refused: %s", e.msg);
    CHECK(track_option_parse(&o, "--max-gap", NULL, &e) == -1 && strstr(e.msg, "--max-gap needs a value"),
          "--max-gap without value");
    CHECK(track_option_parse(&o, "--max-age", "2.5", &e) == -1 && strstr(e.msg, "whole number"),
          "--max-age 2.5: %s", e.msg);
    CHECK(o.relink == 0 && o.gallery_mean == 0, "online defaults: no relink, gallery best");
    CHECK(track_option_parse(&o, "--relink", "2", &e) == 1 && o.relink == 2, "--relink 2");
    CHECK(track_option_parse(&o, "--gallery-score", "mean", &e) == 1 && o.gallery_mean == 1,
          "--gallery-score mean");
    CHECK(track_option_parse(&o, "--gallery-score", "best", &e) == 1 && o.gallery_mean == 0,
          "--gallery-score best");
    CHECK(track_option_parse(&o, "--gallery-score", "max", &e) == -1 &&
              strstr(e.msg, "--gallery-score max: expected best or mean"),
          "--gallery-score max refused: %s", e.msg);
    track_options_default(&o, 1, 1);
    CHECK(o.relink == 0 && o.gallery_mean == 1 && o.gallery == 5,
          "batch defaults: no relink, gallery mean of 5");
    CHECK(o.merge_gap == 0 && o.merge_gate == 0.5 && o.relink_motion == 0 && !o.relink_model,
          "batch defaults: no merging (gate 0.5), no relink motion, one link model");
    CHECK(o.uncross == 0 && o.uncross_iou == 0.5 && o.uncross_margin == 0,
          "batch defaults: no uncrossing (IoU 0.5, margin 0)");
    CHECK(o.mend == 0 && o.mend_score == 0, "batch defaults: no mending (score 0)");
    CHECK(o.behind == 0 && o.behind_cover == 0.2 && o.behind_margin == 0,
          "batch defaults: no joins behind another (cover 0.2, margin 0)");
    /* the joins' options: a value taken (read back from its field) ... */
    const struct {
        const char *name, *value;
        const double *field; /* NULL: an int field */
        const int *ifield;
        double want;
    } takes[] = {{"--merge-gap", "30", NULL, &o.merge_gap, 30},
                 {"--merge-gate", "0.7", &o.merge_gate, NULL, 0.7},
                 {"--relink-motion", "1", NULL, &o.relink_motion, 1},
                 {"--uncross", "20", NULL, &o.uncross, 20},
                 {"--uncross-iou", "0.3", &o.uncross_iou, NULL, 0.3},
                 {"--uncross-margin", "0.3", &o.uncross_margin, NULL, 0.3},
                 {"--mend", "30", NULL, &o.mend, 30},
                 {"--mend-score", "-0.5", &o.mend_score, NULL, -0.5},
                 {"--behind", "50", NULL, &o.behind, 50},
                 {"--behind-cover", "0.3", &o.behind_cover, NULL, 0.3},
                 {"--behind-margin", "0.5", &o.behind_margin, NULL, 0.5}};
    for (size_t k = 0; k < sizeof takes / sizeof *takes; k++)
        CHECK(track_option_parse(&o, takes[k].name, takes[k].value, &e) == 1 &&
                  (takes[k].field ? *takes[k].field : *takes[k].ifield) == takes[k].want,
              "%s %s", takes[k].name, takes[k].value);
    /* ... and one out of range refused, with its range */
    const char *refused[][3] = {
        {"--uncross", "-1", "--uncross -1: expected a whole number in [0, 1000]"},
        {"--uncross-iou", "1.5", "--uncross-iou 1.5: expected a number in [0, 1]"},
        {"--mend", "-1", "--mend -1: expected a whole number in [0, 10000]"},
        {"--mend-score", "x", "--mend-score x: expected a number in [-1e+06, 1e+06]"},
        {"--behind", "1.5", "--behind 1.5: expected a whole number in [0, 10000]"},
        {"--behind-cover", "1.1", "--behind-cover 1.1: expected a number in [0, 1]"},
        {"--behind-margin", "-1", "--behind-margin -1: expected a number in [0, 1e+06]"},
        {"--relink-motion", "2", "--relink-motion 2: expected a whole number in [0, 1]"}};
    for (size_t k = 0; k < sizeof refused / sizeof *refused; k++)
        CHECK(track_option_parse(&o, refused[k][0], refused[k][1], &e) == -1 && strstr(e.msg, refused[k][2]),
              "%s %s refused: %s", refused[k][0], refused[k][1], e.msg);
}

static void test_model_file(void) {
    LinkModel m, r;
    link_model_default(&m);
    m.appearance = 1, m.w[0] = 3.25;
    Err e = {""};
    CHECK(link_model_write(&m, fixture_path("c.txt"), "test", &e) == 0, "%s", e.msg);
    int same = link_model_read(&r, fixture_path("c.txt"), &e) == 0 && m.appearance == r.appearance &&
               m.b == r.b && m.det_w == r.det_w && m.det_b == r.det_b; /* fields: memcmp would see padding */
    for (int k = 0; k < TRACK_NFEAT; k++) same &= m.w[k] == r.w[k];
    CHECK(same, "combiner file round trip: %s", e.msg);
    struct {
        const char *text, *want;
    } bad[] = {{"b = 1\nw9 = 2\n", "c.txt:2: unknown key 'w9'"},
               {"# only a comment\n", "no 'key = number'"},
               {"b = one\n", "c.txt:1: expected"},
               {"appearance = 2\n", "c.txt:1: appearance must be 0 or 1"},
               {"b = 1 2\n", "c.txt:1: expected"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fixture_write_file(fixture_path("c.txt"), bad[i].text, strlen(bad[i].text));
        int rc = link_model_read(&r, fixture_path("c.txt"), &e);
        CHECK(rc == -1 && strstr(e.msg, bad[i].want), "bad combiner %zu: %s", i, rc ? e.msg : "accepted");
    }
}

static double loss_at(const double *w, const double *X, const double *y, int n, int d, double l2) {
    double L = 0;
    for (int i = 0; i < n; i++) {
        double z = 0;
        for (int a = 0; a < d; a++) z += w[a] * X[i * d + a];
        L += y[i] > 0.5 ? log1p(exp(-z)) : log1p(exp(z));
    }
    L /= n;
    for (int a = 0; a < d; a++) L += 0.5 * l2 * w[a] * w[a];
    return L;
}

static void test_logreg(void) {
    enum { N = 20000, D = 3 };
    static double X[N * D], y[N];
    const double truth[D] = {0.5, 2.0, -1.0};
    Rng r;
    rng_seed(&r, 9, RNG_TEST, 0);
    for (int i = 0; i < N; i++) {
        X[i * D] = 1, X[i * D + 1] = rng_normal(&r), X[i * D + 2] = rng_normal(&r);
        double z = truth[0] + truth[1] * X[i * D + 1] + truth[2] * X[i * D + 2];
        y[i] = rng_uniform_d(&r) < 1 / (1 + exp(-z));
    }
    double w[D];
    int it = logreg_fit(w, X, y, N, D, 1e-4);
    int near = 1;
    for (int a = 0; a < D; a++) near &= fabs(w[a] - truth[a]) < 0.1;
    CHECK(near && it < 20, "weights %g %g %g near 0.5 2 -1 in %d iterations", w[0], w[1], w[2], it);
    /* the minimum: every partial derivative (central differences) ~ 0 */
    double worst = 0;
    for (int a = 0; a < D; a++) {
        double wp[D], wm[D];
        memcpy(wp, w, sizeof w), memcpy(wm, w, sizeof w);
        wp[a] += 1e-5, wm[a] -= 1e-5;
        worst = MAX(worst, fabs(loss_at(wp, X, y, N, D, 1e-4) - loss_at(wm, X, y, N, D, 1e-4)) / 2e-5);
    }
    CHECK(worst < 1e-6, "gradient at the fit %g", worst);
}

static void test_fit_pairs(void) {
    /* A (y 10) and B (y 60) moving 3 px per frame, frames 1..10, 20 px boxes.
     * Same-target pairs: 2 x C(10, 2) = 90, all within 15 frames and 0.5
     * heights per frame. Cross pairs at gap g are sqrt(9 g^2 + 2500) / 20
     * heights apart, within 0.5 g only for g >= 6: 2 (10 - g) pairs for g =
     * 6..9, 20 in all. */
    Scene s = {.frames = 10};
    for (int f = 1; f <= 10; f++) add(&s, f, 1, 10 + 3 * f, 10, 0.9), add(&s, f, 2, 10 + 3 * f, 60, 0.9);
    add(&s, 3, 3, 250, 250, 0.4); /* a false positive: far from everything, no pair */
    MotBoxes det, gt;
    scene_boxes(&s, &det, &gt, NULL);
    /* the false positive has an id in gt here; take it out of gt */
    MotBox g[MAXB];
    int ng = 0;
    for (size_t i = 0; i < gt.n; i++)
        if (gt.box[i].id != 3) g[ng++] = gt.box[i];
    mot_boxes_free(&gt);
    mot_boxes_build(&gt, g, (size_t)ng, 10);
    FitSamples fs = {0};
    TrackOptions o;
    track_options_default(&o, 1, 0);
    Err e = {""};
    CHECK(fit_add_sequence(&fs, 0, &det, &gt, NULL, NULL, &o, &e) == 0, "%s", e.msg);
    int pos = 0;
    for (int i = 0; i < fs.n; i++) pos += fs.y[i] > 0.5;
    CHECK(fs.n == 110 && pos == 90, "pairs %d (want 110), same target %d (want 90)", fs.n, pos);
    int tp = 0;
    for (int i = 0; i < fs.nd; i++) tp += fs.det_y[i] > 0.5;
    CHECK(fs.nd == 21 && tp == 20, "detections %d (21), matched %d (20)", fs.nd, tp);
    fit_samples_free(&fs);
    mot_boxes_free(&det);
    mot_boxes_free(&gt);
}

int main(void) {
    fixture_dir_create("tracker");
    test_parallel_and_gap();
    test_appearance();
    test_gallery();
    test_relink_scores();
    test_relink_motion();
    test_uncross();
    test_mend();
    test_behind();
    test_merge();
    test_extrapolate();
    test_option_parse();
    test_model_file();
    test_logreg();
    test_fit_pairs();
    fixture_rm_tree(fixture_dir());
    return test_finish();
}
