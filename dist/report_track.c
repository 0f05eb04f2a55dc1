/* report_track: the tracking panel. Given the sequences with ground truth
 * and a tracker's results (--gt-root, --res-root RES/NAME.txt, as mot-eval
 * takes them) it shows every sequence's MOTA, IDF1, HOTA, ID switches ...
 * with the combined row, and frames of the first sequences drawn with the
 * result's boxes and track ids. A run trained on MOT crops (import --format
 * mot) without results is told how to add them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../io/draw.h"
#include "../track/mot_eval.h"
#include "report.h"

#define TRACK_SEQS_DRAWN 2 /* sequences whose frames are shown */
#define TRACK_FRAMES 3     /* frames of each, evenly spaced */

int panel_tracking_shown(const ReportRun *r) { return r->res_root || r->mot_data; }

static void score_row(Buf *b, const char *name, const MotCounts *c, int frames) {
    MotScores s;
    mot_scores(&s, c);
    buf_puts(b, "<tr><td>");
    buf_esc(b, name);
    buf_printf(b, "</td><td class=\"num\">%d</td>", frames);
    const double pct[] = {s.mota, s.idf1, s.hota, s.motp};
    for (int k = 0; k < 4; k++) buf_printf(b, "<td class=\"num\">%.1f</td>", 100 * pct[k]);
    const long cnt[] = {c->idsw, c->fp, c->fn, c->gt_ids, c->res_ids};
    for (int k = 0; k < 5; k++) buf_printf(b, "<td class=\"num\">%ld</td>", cnt[k]);
    buf_puts(b, "</tr>\n");
}

/* Frame f of sequence s with the result's boxes and ids. */
static int frame_figure(Buf *b, const MotSeq *s, const MotBoxes *res, int32_t f, Err *e) {
    uint8_t *rgb;
    int h, w;
    if (draw_mot_frame(&rgb, &h, &w, s, res, f, 1, e)) return -1;
    buf_printf(b, "<figure class=\"frame\" data-frame=\"%d\">", (int)f);
    int rc = report_png(b, rgb, h, w, 3, "frame", e);
    free(rgb);
    if (rc) return -1;
    buf_puts(b, "<figcaption>");
    buf_esc(b, s->info.name);
    buf_printf(b, ", frame %d of %d: %d result boxes</figcaption></figure>", (int)f, (int)s->info.frames,
               (int)(res->first[f + 1] - res->first[f]));
    return 0;
}

void panel_tracking(Buf *b, const ReportRun *r) {
    if (!r->res_root) {
        report_missing(
            b,
            "No tracking results: this run's test set holds MOT crops; track sequences with its model "
            "(siamese track %s/model.smpi --seq SEQS/NAME --out RES/NAME.txt) and add --gt-root SEQS "
            "--res-root RES to see the tracks and their scores here.",
            r->dir);
        return;
    }
    Err e;
    char **names;
    int n;
    if (mot_list_sequences(r->gt_root, &names, &n, &e)) {
        report_missing(b, "%s", e.msg);
        return;
    }
    buf_puts(b, "<p class=\"sub\">The tracking results in ");
    buf_esc(b, r->res_root);
    buf_puts(b, " against the ground truth of the sequences in ");
    buf_esc(b, r->gt_root);
    buf_puts(b,
             ", scored as siamese mot-eval scores them: MOTA, IDF1, HOTA and MOTP in percent; ID switches, "
             "false positives and misses counted over the frames; ids: the ground truth's and the result's "
             "tracks.</p>\n<table data-figure=\"tracking-scores\"><tr><th>sequence</th><th>frames</th>"
             "<th>MOTA</th><th>IDF1</th><th>HOTA</th><th>MOTP</th><th>ID switches</th><th>FP</th><th>FN</th>"
             "<th>GT ids</th><th>ids</th></tr>\n");
    MotSeq seq[TRACK_SEQS_DRAWN];
    MotBoxes res[TRACK_SEQS_DRAWN];
    MotCounts all = {0};
    int drawn = 0, scored = 0, frames = 0;
    Buf notes = {0};
    for (int i = 0; i < n; i++) {
        char sd[4096], rf[4096];
        snprintf(sd, sizeof sd, "%s/%s", r->gt_root, names[i]);
        snprintf(rf, sizeof rf, "%s/%s.txt", r->res_root, names[i]);
        if (access(rf, F_OK) != 0) {
            report_missing(&notes, "No result for sequence %s (%s).", names[i], rf);
            continue;
        }
        MotCounts c = {0};
        MotSeq s;
        MotBoxes rb;
        if (mot_eval_files(&c, &s, &rb, sd, NULL, rf, &e)) {
            report_missing(&notes, "Sequence %s not scored: %s", names[i], e.msg);
            continue;
        }
        score_row(b, s.info.name, &c, s.info.frames);
        mot_counts_add(&all, &c);
        scored++, frames += s.info.frames;
        if (drawn < TRACK_SEQS_DRAWN) {
            seq[drawn] = s, res[drawn++] = rb;
        } else {
            mot_boxes_free(&rb);
            mot_seq_close(&s);
        }
    }
    if (scored > 1) score_row(b, "all", &all, frames);
    buf_puts(b, "</table>\n");
    if (notes.len) buf_puts(b, notes.p);
    buf_free(&notes);
    if (drawn) {
        buf_printf(
            b,
            "<p class=\"sub\">Frames of the first %s, evenly spaced, with the result's boxes and track "
            "ids (one colour per id).</p><div class=\"frames\" data-figure=\"tracking-frames\">\n",
            drawn > 1 ? "sequences" : "sequence");
        for (int k = 0; k < drawn; k++)
            for (int j = 0; j < TRACK_FRAMES; j++) {
                int32_t f = (int32_t)((long)seq[k].info.frames * (2 * j + 1) / (2 * TRACK_FRAMES)) + 1;
                if (frame_figure(b, &seq[k], &res[k], f, &e)) report_missing(b, "%s", e.msg);
            }
        buf_puts(b, "</div>\n");
    }
    for (int k = 0; k < drawn; k++) {
        mot_boxes_free(&res[k]);
        mot_seq_close(&seq[k]);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}
