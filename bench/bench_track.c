/* bench_track: the trackers' speed, and how much appearance could help.
 *   bench_track CHECKPOINT [--frames N]
 *     makes one dense synthetic sequence (640x480, 30-45 targets: 20-50
 *     detections per frame) and times the siamese tracker on it: cropping
 *     and embedding (one forward pass per frame), then online and batch
 *     tracking; prints frames per second (wall and this thread's CPU time,
 *     steadier on a shared machine).
 *   bench_track --oracle ROOT [--mode online|batch] [tracker options]
 *     tracks every sequence under ROOT with the built-in motion/IoU model,
 *     then with an oracle appearance score (1 for two detections of the same
 *     ground-truth target, 0 otherwise): the most any appearance model can
 *     add to this tracker; prints both mot-eval rows, with the options of
 *     siamese track (--max-gap, --interpolate, ...; the defaults of the mode
 *     without appearance). Then the ceiling of every tracker that reports
 *     detections and fills gaps the same way: the perfect association (each
 *     detection matched to its ground-truth target, false positives dropped,
 *     written with the same --min-len, --interpolate, --extrapolate), and
 *     where the ground truth that no detection covers lies. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../io/synth_mot.h"
#include "../track/appearance.h"
#include "../track/assign.h"
#include "../track/mot_eval.h"
#include "../track/tracker.h"
#include "bench_util.h"

static void fail(const Err *e) {
    fprintf(stderr, "bench_track: %s\n", e->msg);
    exit(1);
}

static int speed(const char *ckpt, int frames) {
    char dir[64] = "/tmp/bench-track.XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char out[128];
    snprintf(out, sizeof out, "%s/seq", dir);
    SynthMotOptions so;
    synth_mot_defaults(&so);
    so.out = out, so.sequences = 1, so.frames = frames, so.width = 640, so.height = 480;
    so.min_targets = 30, so.max_targets = 45;
    Err e = {""};
    if (synth_mot_run(&so, NULL, &e)) fail(&e);
    char seqdir[160];
    snprintf(seqdir, sizeof seqdir, "%s/synth-0001", out);
    MotSeq s;
    MotBoxes det;
    if (mot_seq_open(&s, seqdir, &e) || mot_seq_boxes(&s, MOT_DET, &det, &e)) fail(&e);
    CnnAppearance cnn;
    if (cnn_appearance_open(&cnn, ckpt, &e)) fail(&e);
    printf("sequence: %d frames of 640x480, %.1f detections per frame (%zu)\n", frames,
           (double)det.n / frames, det.n);
    printf("network: input %dx%dx%d, embedding %d\n", cnn.C, cnn.H, cnn.W, cnn.D);
    double w0 = now_seconds(), c0 = bench_cpu_seconds();
    if (cnn_appearance_embed(&cnn, &s, &det, &e)) fail(&e);
    double we = now_seconds() - w0, ce = bench_cpu_seconds() - c0;
    printf("  %-34s %8.1f frames/s wall  %8.1f frames/s CPU\n", "read, crop, embed (1 pass/frame)",
           frames / we, frames / ce);
    LinkModel m;
    link_model_default(&m);
    m.appearance = 1, m.w[0] = 1;
    Appearance app = {&cnn, cnn_appearance_score};
    for (int batch = 0; batch <= 1; batch++) {
        TrackOptions o;
        track_options_default(&o, batch, 1);
        MotBoxes res;
        w0 = now_seconds(), c0 = bench_cpu_seconds();
        if (track_run(&res, &det, &m, &app, &o, &e)) fail(&e);
        double wt = now_seconds() - w0, ct = bench_cpu_seconds() - c0;
        printf("  %-34s %8.1f frames/s wall  %8.1f frames/s CPU\n",
               batch ? "batch tracking (min-cost flow)" : "online tracking", frames / wt, frames / ct);
        printf("  %-34s %8.1f frames/s wall  %8.1f frames/s CPU\n",
               batch ? "siamese tracker, batch, in all" : "siamese tracker, online, in all",
               frames / (wt + we), frames / (ct + ce));
        mot_boxes_free(&res);
    }
    cnn_appearance_close(&cnn);
    mot_boxes_free(&det);
    mot_seq_close(&s);
    bench_rm_tree(dir);
    return 0;
}

/* ---- oracle -------------------------------------------------------------------------- */

typedef struct Oracle {
    int *target; /* ground-truth id of each detection (IoU >= 0.5), -1 */
} Oracle;

static int oracle_score(void *ctx, const int *a, const int *b, int n, double *out, Err *e) {
    (void)e;
    const Oracle *o = ctx;
    for (int k = 0; k < n; k++) out[k] = o->target[a[k]] >= 0 && o->target[a[k]] == o->target[b[k]];
    return 0;
}

/* Each detection's ground-truth target: frame by frame, the Hungarian
 * matching for the largest summed IoU over pairs at IoU >= 0.5 (as mot-eval
 * matches); -1 for false positives. gt_det[j]: the detection matched to
 * ground-truth box j, -1. */
static void match(int *target, int *gt_det, const MotBoxes *det, const MotBoxes *gt) {
    for (size_t j = 0; j < gt->n; j++) gt_det[j] = -1;
    for (int32_t f = 1; f <= det->frames; f++) {
        size_t d0 = det->first[f], g0 = gt->first[f];
        int nd = (int)(det->first[f + 1] - d0), ng = (int)(gt->first[f + 1] - g0);
        double *cost = xmalloc(sizeof(double) * ((size_t)nd * ng + 1));
        int *m = xmalloc(sizeof(int) * ((size_t)nd + 1));
        for (int i = 0; i < nd; i++)
            for (int j = 0; j < ng; j++) {
                double iou = mot_iou(&det->box[d0 + i], &gt->box[g0 + j]);
                cost[i * ng + j] = iou >= 0.5 ? -iou : ASSIGN_FORBIDDEN;
            }
        if (nd) assign_solve(m, cost, nd, ng, NULL);
        for (int i = 0; i < nd; i++) {
            target[d0 + i] = m[i] >= 0 ? gt->box[g0 + m[i]].id : -1;
            if (m[i] >= 0) gt_det[g0 + m[i]] = (int)(d0 + i);
        }
        free(cost);
        free(m);
    }
}

/* Where the ground truth lies for a tracker that reports detections: kind[0]
 * detected, [1] between two detections of its target (a gap), [2] before
 * its target's first detection, [3] after its last, [4] a target never
 * detected; [5] the undetected ones under half visible. */
static void coverage(long *kind, const MotBoxes *gt, const int *gt_det) {
    int32_t ids = 0;
    for (size_t j = 0; j < gt->n; j++) ids = MAX(ids, gt->box[j].id + 1);
    int32_t *f0 = xmalloc(sizeof(int32_t) * ((size_t)ids + 1)),
            *f1 = xmalloc(sizeof(int32_t) * ((size_t)ids + 1));
    for (int32_t k = 0; k < ids; k++) f0[k] = INT32_MAX, f1[k] = -1;
    for (size_t j = 0; j < gt->n; j++)
        if (gt_det[j] >= 0)
            f0[gt->box[j].id] = MIN(f0[gt->box[j].id], gt->box[j].frame),
            f1[gt->box[j].id] = gt->box[j].frame;
    for (size_t j = 0; j < gt->n; j++) {
        const MotBox *g = &gt->box[j];
        if (!g->flag || g->cls != 1) continue;
        int k = gt_det[j] >= 0         ? 0
                : f1[g->id] < 0        ? 4
                : g->frame < f0[g->id] ? 2
                : g->frame > f1[g->id] ? 3
                                       : 1;
        kind[k]++;
        kind[5] += k && g->vis < 0.5;
    }
    free(f0);
    free(f1);
}

static void row(const char *what, const MotCounts *c) {
    MotScores s;
    mot_scores(&s, c);
    printf("  %-26s MOTA %5.1f  IDF1 %5.1f  IDP %5.1f  IDR %5.1f  HOTA %5.1f  IDsw %4ld  FP %5ld  FN %5ld\n",
           what, 100 * s.mota, 100 * s.idf1, 100 * s.idp, 100 * s.idr, 100 * s.hota, c->idsw, c->fp, c->fn);
}

static int oracle(const char *root, const TrackOptions *options) {
    char **names;
    int nseq;
    Err e = {""};
    if (mot_list_sequences(root, &names, &nseq, &e)) fail(&e);
    MotCounts none = {0}, orc = {0}, best = {0};
    long kind[6] = {0};
    for (int q = 0; q < nseq; q++) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/%s", root, names[q]);
        MotSeq s;
        MotBoxes det, gt;
        if (mot_seq_open(&s, dir, &e) || mot_seq_boxes(&s, MOT_DET, &det, &e) ||
            mot_seq_boxes(&s, MOT_GT, &gt, &e))
            fail(&e);
        TrackOptions o1 = *options, *opt = &o1;
        o1.width = (float)s.info.width, o1.height = (float)s.info.height;
        Oracle o = {xmalloc(sizeof(int) * (det.n + 1))};
        int *gt_det = xmalloc(sizeof(int) * (gt.n + 1));
        match(o.target, gt_det, &det, &gt);
        LinkModel m;
        link_model_default(&m);
        MotBoxes res;
        if (track_run(&res, &det, &m, NULL, opt, &e)) fail(&e);
        mot_eval_sequence(&none, &gt, &res);
        mot_boxes_free(&res);
        m.appearance = 1, m.w[0] = 12, m.b -= 6; /* +6 same target, -6 different */
        Appearance app = {&o, oracle_score};
        if (track_run(&res, &det, &m, &app, opt, &e)) fail(&e);
        mot_eval_sequence(&orc, &gt, &res);
        mot_boxes_free(&res);
        track_emit_labels(&res, &det, o.target, opt); /* the perfect association */
        mot_eval_sequence(&best, &gt, &res);
        mot_boxes_free(&res);
        coverage(kind, &gt, gt_det);
        free(gt_det);
        free(o.target);
        mot_boxes_free(&det);
        mot_boxes_free(&gt);
        mot_seq_close(&s);
        free(names[q]);
    }
    free(names);
    printf("%d sequences under %s, %s tracker:\n", nseq, root, options->batch ? "batch" : "online");
    row("motion/IoU only", &none);
    row("oracle appearance", &orc);
    row("perfect association", &best);
    long n = kind[0] + kind[1] + kind[2] + kind[3] + kind[4];
    printf("ground truth: %ld boxes; detected %.1f %%, in a gap between two detections of the target %.1f "
           "%%,\n  before its first detection %.1f %%, after its last %.1f %%, target never detected %.1f "
           "%%;\n  of the undetected, %.1f %% under half visible\n",
           n, 100.0 * kind[0] / MAX(n, 1), 100.0 * kind[1] / MAX(n, 1), 100.0 * kind[2] / MAX(n, 1),
           100.0 * kind[3] / MAX(n, 1), 100.0 * kind[4] / MAX(n, 1), 100.0 * kind[5] / MAX(n - kind[0], 1));
    return 0;
}

static const char usage[] = "usage: bench_track CHECKPOINT [--frames N]\n"
                            "       bench_track --oracle ROOT [--mode online|batch] [siamese track's "
                            "tuning options]\n";

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "--oracle")) {
        int batch = 0;
        for (int i = 3; i + 1 < argc; i += 2)
            batch |= !strcmp(argv[i], "--mode") && !strcmp(argv[i + 1], "batch");
        TrackOptions o;
        track_options_default(&o, batch, 0);
        for (int i = 3; i < argc; i += 2) {
            Err e = {""};
            if (!strcmp(argv[i], "--mode") && i + 1 < argc) continue;
            int r = track_option_parse(&o, argv[i], i + 1 < argc ? argv[i + 1] : NULL, &e);
            if (r < 0) fail(&e);
            if (!r) {
                fprintf(stderr, "bench_track: unexpected argument '%s'\n%s", argv[i], usage);
                return 2;
            }
        }
        return oracle(argv[2], &o);
    }
    if (argc < 2 || argv[1][0] == '-') {
        fputs(usage, stderr);
        return 2;
    }
    long frames = 100;
    if (argc >= 4 && !strcmp(argv[2], "--frames") && parse_long(argv[3], 1, 100000, &frames)) return 2;
    return speed(argv[1], (int)frames);
}
