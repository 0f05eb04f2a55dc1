/* test_mot_eval: CLEAR MOT, identity and HOTA metrics on hand-made
 * sequences whose answers are worked out by hand in the comments: perfect
 * tracking, two tracks that swap identities, a fragmented track with a late
 * id switch, false positives and misses by IoU, the previous frame's match
 * kept against a better one, MOT16/17 distractor and zero-flag handling, an
 * empty result, MT/PT/ML at their thresholds, HOTA at the 0.5 IoU edge, and
 * sequences combined. Boxes are 10 x 10 and far apart unless said. */
#include <stdio.h>
#include <string.h>

#include "../track/mot_eval.h"
#include "test.h"

typedef struct B {
    int frame, id;
    float x, y, w, h;
    int cls, flag;
} B;

/* A 10 x 10 pedestrian box at (x, 0) */
#define BX(f, id, x) ((B){(f), (id), (x), 0, 10, 10, 1, 1})

static void build(MotBoxes *out, const B *b, int n, int frames) {
    MotBox box[64];
    ASSERT(n <= 64);
    for (int i = 0; i < n; i++)
        box[i] = (MotBox){.frame = b[i].frame,
                          .id = b[i].id,
                          .x = b[i].x,
                          .y = b[i].y,
                          .w = b[i].w,
                          .h = b[i].h,
                          .score = 1,
                          .vis = 1,
                          .cls = b[i].cls,
                          .flag = b[i].flag};
    mot_boxes_build(out, box, (size_t)n, frames);
}

static void eval(MotCounts *c, MotScores *s, const B *g, int ng, const B *r, int nr, int frames) {
    MotBoxes gt, res;
    build(&gt, g, ng, frames);
    build(&res, r, nr, frames);
    memset(c, 0, sizeof *c);
    mot_eval_sequence(c, &gt, &res);
    mot_scores(s, c);
    mot_boxes_free(&gt);
    mot_boxes_free(&res);
}

/* gt A (id 1) at x 0 and B (id 2) at x 50 in frames 1..3 */
static const B two[] = {BX(1, 1, 0), BX(1, 2, 50), BX(2, 1, 0), BX(2, 2, 50), BX(3, 1, 0), BX(3, 2, 50)};

static void test_perfect_and_empty(void) {
    B r[6];
    for (int i = 0; i < 6; i++) r[i] = two[i], r[i].id = two[i].id == 1 ? 7 : 9;
    MotCounts c;
    MotScores s;
    eval(&c, &s, two, 6, r, 6, 3);
    CHECK(c.tp == 6 && c.fp == 0 && c.fn == 0 && c.idsw == 0 && c.frag == 0 && c.mt == 2 && c.idtp == 6,
          "perfect: counts");
    CHECK(s.mota == 1 && s.motp == 1 && s.idf1 == 1 && fabs(s.hota - 1) < 1e-12 && fabs(s.deta - 1) < 1e-12 &&
              fabs(s.assa - 1) < 1e-12,
          "perfect: MOTA %g MOTP %g IDF1 %g HOTA %g", s.mota, s.motp, s.idf1, s.hota);
    /* empty result: every box a miss; MOTA 1 - 6/6 = 0, both targets ML */
    eval(&c, &s, two, 6, NULL, 0, 3);
    CHECK(c.tp == 0 && c.fn == 6 && c.fp == 0 && c.ml == 2 && c.mt == 0 && c.res_ids == 0 && s.mota == 0 &&
              s.idf1 == 0 && s.hota == 0 && c.idfn == 6,
          "empty result: fn %ld ml %ld MOTA %g", c.fn, c.ml, s.mota);
}

static void test_swap(void) {
    /* 4 frames; result 1 follows A in frames 1-2 then B, result 2 the other
     * way. IDSW 2 (both at frame 3), MOTA 1 - 2/8 = 0.75. Shared frames: every
     * (gt, result) pair shares 2, so the best identity matching has IDTP 4:
     * IDF1 = 2 * 4 / (8 + 8) = 0.5. HOTA: all IoU 1; alignment of each pair
     * 2 / (4 + 4 - 2) = 1/3, matches 2 per pair, AssA = sum 2 * 2/6 / 8 =
     * 1/3, DetA 1: HOTA = sqrt(1/3) at every threshold. */
    B g[8], r[8];
    for (int f = 1; f <= 4; f++) {
        g[2 * f - 2] = BX(f, 1, 0), g[2 * f - 1] = BX(f, 2, 50);
        int swap = f >= 3;
        r[2 * f - 2] = BX(f, swap ? 2 : 1, 0), r[2 * f - 1] = BX(f, swap ? 1 : 2, 50);
    }
    MotCounts c;
    MotScores s;
    eval(&c, &s, g, 8, r, 8, 4);
    CHECK(c.tp == 8 && c.idsw == 2 && c.frag == 0 && c.mt == 2 && s.mota == 0.75, "swap: idsw %ld MOTA %g",
          c.idsw, s.mota);
    CHECK(c.idtp == 4 && s.idf1 == 0.5 && s.idp == 0.5 && s.idr == 0.5, "swap: IDF1 %g", s.idf1);
    CHECK_CLOSE(s.hota, sqrt(1.0 / 3), 1e-12, "swap: HOTA");
    CHECK_CLOSE(s.assa, 1.0 / 3, 1e-12, "swap: AssA");
    CHECK_CLOSE(s.deta, 1.0, 1e-12, "swap: DetA");
}

static void test_fragment(void) {
    /* gt A frames 1-6; result 5 in frames 1, 2, 4, 5, result 6 in frame 6.
     * TP 5, FN 1 (frame 3), IDSW 1 (frame 6: last matched to 5), segments
     * 1-2 and 4-6: Frag 1. MOTA 1 - (1 + 0 + 1)/6 = 2/3. Tracked 5/6 > 0.8:
     * MT. IDTP 4 (A with 5): IDF1 = 8 / (6 + 5) = 8/11. HOTA: alignment
     * A-5 = 4/(6+4-4), A-6 = 1/6; DetA = 5/6; AssA = (4 * 4/6 + 1 * 1/6) / 5
     * = 17/30; HOTA = sqrt(5/6 * 17/30). */
    B g[6], r[5];
    for (int f = 1; f <= 6; f++) g[f - 1] = BX(f, 1, 0);
    int k = 0;
    for (int f = 1; f <= 6; f++)
        if (f != 3) r[k++] = BX(f, f == 6 ? 6 : 5, 0);
    MotCounts c;
    MotScores s;
    eval(&c, &s, g, 6, r, 5, 6);
    CHECK(c.tp == 5 && c.fn == 1 && c.fp == 0 && c.idsw == 1 && c.frag == 1 && c.mt == 1,
          "fragment: tp %ld fn %ld idsw %ld frag %ld mt %ld", c.tp, c.fn, c.idsw, c.frag, c.mt);
    CHECK_CLOSE(s.mota, 2.0 / 3, 1e-12, "fragment: MOTA");
    CHECK_CLOSE(s.idf1, 8.0 / 11, 1e-12, "fragment: IDF1");
    CHECK_CLOSE(s.hota, sqrt(5.0 / 6 * 17.0 / 30), 1e-12, "fragment: HOTA");
}

static void test_fp_fn_and_keep(void) {
    /* one frame: gt A at 0; result 1 at x 4 (IoU 60/140 < 0.5: a miss and a
     * false positive), result 2 far away (false positive). MOTA 1 - 3/1. */
    B g[1] = {BX(1, 1, 0)}, r[2] = {BX(1, 1, 4), BX(1, 2, 80)};
    MotCounts c;
    MotScores s;
    eval(&c, &s, g, 1, r, 2, 1);
    CHECK(c.tp == 0 && c.fp == 2 && c.fn == 1 && s.mota == -2 && s.motp == 0, "FP/FN: fp %ld fn %ld MOTA %g",
          c.fp, c.fn, s.mota);
    /* frame 1: result 1 at x 2 (IoU 80/120) matches A; frame 2: result 1 at x 2
     * again and result 2 exactly on A (IoU 1). The previous match is still
     * valid, so it is kept: TP 2, FP 1, IDSW 0, MOTP 2/3. */
    B g2[2] = {BX(1, 1, 0), BX(2, 1, 0)}, r2[3] = {BX(1, 1, 2), BX(2, 1, 2), BX(2, 2, 0)};
    eval(&c, &s, g2, 2, r2, 3, 2);
    CHECK(c.tp == 2 && c.fp == 1 && c.idsw == 0, "previous match kept: tp %ld fp %ld idsw %ld", c.tp, c.fp,
          c.idsw);
    CHECK_CLOSE(s.motp, 2.0 / 3, 1e-6, "previous match kept: MOTP");
    /* two gt, two results in one frame: Hungarian for the largest total IoU.
     * gt A at 0, B at 6; result 1 at 3 (IoU with A 70/130, with B 70/130
     * too... both equal), result 2 at 6 (IoU with B 1, with A 40/160 < 0.5).
     * Best total: A-1 (0.538) + B-2 (1): two matches. */
    B g3[2] = {BX(1, 1, 0), BX(1, 2, 6)}, r3[2] = {BX(1, 1, 3), BX(1, 2, 6)};
    eval(&c, &s, g3, 2, r3, 2, 1);
    CHECK(c.tp == 2 && c.fp == 0, "Hungarian: both matched (tp %ld)", c.tp);
    CHECK_CLOSE(c.iou_sum, 70.0 / 130 + 1, 1e-6, "Hungarian: summed IoU");
}

static void test_distractors(void) {
    /* gt 1 (pedestrian) at 0, gt 2 (class 7, static person) at 50, gt 3
     * (pedestrian, flag 0) at 100; a result on each. Result 2 is dropped
     * (matched to a distractor), gt 2 and 3 are not scored, result 3 stays
     * and is a false positive: TP 1, FP 1, FN 0, one gt id, two results. */
    B g[3] = {BX(1, 1, 0), {1, 2, 50, 0, 10, 10, 7, 1}, {1, 3, 100, 0, 10, 10, 1, 0}};
    B r[3] = {BX(1, 1, 0), BX(1, 2, 50), BX(1, 3, 100)};
    MotCounts c;
    MotScores s;
    eval(&c, &s, g, 3, r, 3, 1);
    CHECK(c.tp == 1 && c.fp == 1 && c.fn == 0 && c.gt_ids == 1 && c.res_dets == 2 && c.gt_dets == 1,
          "distractors: tp %ld fp %ld fn %ld gt_ids %ld res %ld", c.tp, c.fp, c.fn, c.gt_ids, c.res_dets);
}

static void test_mt_pt_ml_and_alpha(void) {
    /* 5 frames, 4 targets: gt 1 tracked in 4 of 5 (0.8: PT, MT needs more),
     * gt 2 in 1 of 5 (0.2: PT), gt 3 never (ML), gt 4 always (MT). */
    B g[20], r[10];
    int ng = 0, nr = 0;
    for (int f = 1; f <= 5; f++)
        for (int t = 1; t <= 4; t++) {
            g[ng++] = BX(f, t, 30.0f * t);
            if ((t == 1 && f <= 4) || (t == 2 && f == 1) || t == 4) r[nr++] = BX(f, t, 30.0f * t);
        }
    MotCounts c;
    MotScores s;
    eval(&c, &s, g, ng, r, nr, 5);
    CHECK(c.mt == 1 && c.pt == 2 && c.ml == 1, "MT %ld PT %ld ML %ld (want 1, 2, 1)", c.mt, c.pt, c.ml);
    /* IoU exactly 0.5 (10x5 inside 10x10) in 2 frames: a CLEAR match, and a
     * HOTA match at the 10 thresholds 0.05..0.50 only: HOTA = DetA = 10/19. */
    B g2[2] = {BX(1, 1, 0), BX(2, 1, 0)}, r2[2] = {{1, 1, 0, 0, 10, 5, 1, 1}, {2, 1, 0, 0, 10, 5, 1, 1}};
    eval(&c, &s, g2, 2, r2, 2, 2);
    CHECK(c.tp == 2 && s.motp == 0.5, "IoU 0.5 is a match");
    CHECK_CLOSE(s.hota, 10.0 / 19, 1e-12, "HOTA at the IoU 0.5 edge");
    CHECK_CLOSE(s.deta, 10.0 / 19, 1e-12, "DetA at the IoU 0.5 edge");
}

static void test_combined(void) {
    /* swap (IDTP 4 of 8 + 8) and fragment (IDTP 4 of 6 + 5) together:
     * IDF1 = 2 * 8 / 27, MOTA = 1 - (2 + 1 + 1) / 14 */
    B g[8], r[8], g2[6], r2[5];
    for (int f = 1; f <= 4; f++) {
        g[2 * f - 2] = BX(f, 1, 0), g[2 * f - 1] = BX(f, 2, 50);
        r[2 * f - 2] = BX(f, f >= 3 ? 2 : 1, 0), r[2 * f - 1] = BX(f, f >= 3 ? 1 : 2, 50);
    }
    int k = 0;
    for (int f = 1; f <= 6; f++) {
        g2[f - 1] = BX(f, 1, 0);
        if (f != 3) r2[k++] = BX(f, f == 6 ? 6 : 5, 0);
    }
    MotCounts a, b, sum = {0};
    MotScores s;
    eval(&a, &s, g, 8, r, 8, 4);
    eval(&b, &s, g2, 6, r2, 5, 6);
    mot_counts_add(&sum, &a);
    mot_counts_add(&sum, &b);
    mot_scores(&s, &sum);
    CHECK_CLOSE(s.idf1, 16.0 / 27, 1e-12, "combined IDF1");
    CHECK_CLOSE(s.mota, 1 - 4.0 / 14, 1e-12, "combined MOTA");
    CHECK(sum.idsw == 3 && sum.frag == 1 && sum.gt_ids == 3, "combined counts");
}

int main(void) {
    test_perfect_and_empty();
    test_swap();
    test_fragment();
    test_fp_fn_and_keep();
    test_distractors();
    test_mt_pt_ml_and_alpha();
    test_combined();
    return test_finish();
}
