/* bench_track: the trackers' speed, and how much appearance could help.
 *   bench_track CHECKPOINT [--frames N]
 *     makes one dense synthetic sequence (640x480, 30-45 targets: 20-50
 *     detections per frame) and times the siamese tracker on it: cropping
 *     and embedding (one forward pass per frame), then online and batch
 *     tracking; prints frames per second (wall and this thread's CPU time,
 *     steadier on a shared machine).
 *   bench_track --oracle ROOT [--mode online|batch]
 *     tracks every sequence under ROOT with the built-in motion/IoU model,
 *     then with an oracle appearance score (1 for two detections of the same
 *     ground-truth target, 0 otherwise): the most any appearance model can
 *     add to this tracker; prints both mot-eval rows. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../io/synth_mot.h"
#include "../track/appearance.h"
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

/* Each detection's ground-truth target: the box it overlaps most, at IoU >= 0.5. */
static void match(int *target, const MotBoxes *det, const MotBoxes *gt) {
    for (size_t i = 0; i < det->n; i++) {
        const MotBox *d = &det->box[i];
        double best = 0.5;
        target[i] = -1;
        for (size_t j = gt->first[d->frame]; j < gt->first[d->frame + 1]; j++) {
            double iou = mot_iou(d, &gt->box[j]);
            if (iou >= best) best = iou, target[i] = gt->box[j].id;
        }
    }
}

static void row(const char *what, const MotCounts *c) {
    MotScores s;
    mot_scores(&s, c);
    printf("  %-26s MOTA %5.1f  IDF1 %5.1f  IDP %5.1f  IDR %5.1f  HOTA %5.1f  IDsw %4ld  FP %5ld  FN %5ld\n",
           what, 100 * s.mota, 100 * s.idf1, 100 * s.idp, 100 * s.idr, 100 * s.hota, c->idsw, c->fp, c->fn);
}

static int oracle(const char *root, int batch) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "ls -d %s/*/ 2>/dev/null", root);
    FILE *p = popen(cmd, "r");
    if (!p) return 1;
    MotCounts none = {0}, orc = {0};
    char line[4200];
    int nseq = 0;
    Err e = {""};
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = 0;
        MotSeq s;
        MotBoxes det, gt;
        if (mot_seq_open(&s, line, &e) || mot_seq_boxes(&s, MOT_DET, &det, &e) ||
            mot_seq_boxes(&s, MOT_GT, &gt, &e))
            fail(&e);
        Oracle o = {xmalloc(sizeof(int) * (det.n + 1))};
        match(o.target, &det, &gt);
        TrackOptions opt;
        track_options_default(&opt, batch, 0);
        LinkModel m;
        link_model_default(&m);
        MotBoxes res;
        if (track_run(&res, &det, &m, NULL, &opt, &e)) fail(&e);
        mot_eval_sequence(&none, &gt, &res);
        mot_boxes_free(&res);
        m.appearance = 1, m.w[0] = 12, m.b -= 6; /* +6 same target, -6 different */
        Appearance app = {&o, oracle_score};
        if (track_run(&res, &det, &m, &app, &opt, &e)) fail(&e);
        mot_eval_sequence(&orc, &gt, &res);
        mot_boxes_free(&res);
        free(o.target);
        mot_boxes_free(&det);
        mot_boxes_free(&gt);
        mot_seq_close(&s);
        nseq++;
    }
    pclose(p);
    if (!nseq) {
        fprintf(stderr, "bench_track: no sequences under %s\n", root);
        return 1;
    }
    printf("%d sequences under %s, %s tracker, default options:\n", nseq, root, batch ? "batch" : "online");
    row("motion/IoU only", &none);
    row("oracle appearance", &orc);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "--oracle")) {
        int batch = argc >= 5 && !strcmp(argv[3], "--mode") && !strcmp(argv[4], "batch");
        return oracle(argv[2], batch);
    }
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: bench_track CHECKPOINT [--frames N]\n       bench_track --oracle ROOT "
                        "[--mode online|batch]\n");
        return 2;
    }
    long frames = 100;
    if (argc >= 4 && !strcmp(argv[2], "--frames") && parse_long(argv[3], 1, 100000, &frames)) return 2;
    return speed(argv[1], (int)frames);
}
