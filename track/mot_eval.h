/* mot_eval: multi-object tracking metrics of a result against ground truth.
 * CLEAR MOT (Bernardin and Stiefelhagen 2008): per frame, pairs with IoU >=
 * 0.5; a ground-truth target keeps the result track it was matched to in the
 * previous frame while their IoU stays >= 0.5, the rest are matched by the
 * Hungarian method for the largest summed IoU; MOTA, MOTP (mean IoU of the
 * matches), ID switches, fragmentations, MT/PT/ML (tracked > 80 %, >= 20 %,
 * less). Identity (Ristani et al. 2016): one matching of ground-truth to
 * result identities over the sequence maximising the frames they share
 * (IoU >= 0.5); IDF1, IDP, IDR. HOTA (Luiten et al. 2021) over the 19
 * thresholds 0.05 .. 0.95, with DetA, AssA and LocA. As MOTChallenge
 * (TrackEval) does for MOT16/17: result boxes matched (IoU >= 0.5) to a
 * ground-truth box of a distractor class (2 person on vehicle, 7 static
 * person, 8 distractor, 12 reflection) are dropped, then only ground truth
 * of class 1 (pedestrian) with a non-zero flag is scored; MOT15 files have
 * class 1 everywhere, so only the flag acts. */
#ifndef SIAMESE_MOT_EVAL_H
#define SIAMESE_MOT_EVAL_H

#include "../io/mot.h"

#define MOT_HOTA_ALPHAS 19

/* Sums over frames and sequences: counts add up, so many sequences combine
 * by mot_counts_add (as TrackEval combines them). */
typedef struct MotCounts {
    long gt_dets, res_dets, tp, fp, fn, idsw, frag, mt, pt, ml, gt_ids, res_ids;
    double iou_sum; /* summed IoU of the CLEAR matches (MOTP) */
    long idtp, idfp, idfn;
    double h_tp[MOT_HOTA_ALPHAS], h_fn[MOT_HOTA_ALPHAS], h_fp[MOT_HOTA_ALPHAS];
    double h_loc[MOT_HOTA_ALPHAS]; /* summed IoU of the HOTA matches */
    double h_ass[MOT_HOTA_ALPHAS]; /* AssA x TP: summed association accuracy of the matches */
} MotCounts;

typedef struct MotScores {
    double mota, motp, idf1, idp, idr, hota, deta, assa, loca;
} MotScores;

/* Adds one sequence's counts to c (gt and res of the same sequence: the same
 * frame count). */
void mot_eval_sequence(MotCounts *c, const MotBoxes *gt, const MotBoxes *res);

void mot_counts_add(MotCounts *sum, const MotCounts *c);

/* The ratios from the counts (0 where a denominator is 0). */
void mot_scores(MotScores *s, const MotCounts *c);

/* Files, as mot-eval and the report read them. mot_eval_files: opens the
 * sequence directory seqdir into s, reads its ground truth (gt_file, or
 * seqdir/gt/gt.txt when NULL) and the result file into res, and adds the
 * sequence's counts to c; the caller frees s and res (mot_seq_close,
 * mot_boxes_free). 0, or -1 with e naming the file (nothing to free). */
int mot_eval_files(MotCounts *c, MotSeq *s, MotBoxes *res, const char *seqdir, const char *gt_file,
                   const char *res_file, Err *e);
/* The sub-directory names of root (the sequences under a ground-truth root),
 * sorted; *names and each name malloc'd. 0, or -1 with e when root cannot be
 * opened or has none. */
int mot_list_sequences(const char *root, char ***names, int *n, Err *e);

#endif
