/* report: `siamese report RUN_DIR...`: one self-contained HTML file (inline
 * SVG, PNG thumbnails as data: URIs, a few lines of plain script for hover
 * values; no other files, no network) showing one run or several overlaid:
 * training and validation curves, time per step, the evaluation (ROC with
 * the EER, pair-distance histograms with the threshold, Recall@K, N-way),
 * retrieval examples, an embedding map (PCA and t-SNE) and the run's config
 * and command lines. What the run directory lacks is said, not guessed.
 * Single process; written atomically. `siamese train` calls report_write
 * at the end of a run ([train] report). */
#ifndef SIAMESE_REPORT_H
#define SIAMESE_REPORT_H

#include "../io/csv.h"
#include "../io/dataset.h"
#include "../viz/html.h"
#include "eval_coseg.h"
#include "evaluate.h"

typedef struct ReportOptions {
    const char *const *runs; /* run directories */
    int nruns;
    const char *data; /* test dataset for every run; NULL: each run's [data] test */
    const char *out;  /* NULL: RUN/report.html (one run only) */
    int map_points;   /* most points on the embedding map (sampled beyond); 0 = 10000 */
    int tsne;         /* 1 = t-SNE map beside the PCA map */
    int quiet;        /* no progress lines on stdout */
    int no_eval;      /* draw only what the run directories hold: evaluate no checkpoint */
    /* Tracking: the sequences with ground truth (every sub-directory of
     * gt_root) and run i's results res_roots[i]/NAME.txt (nres: 0 or nruns). */
    const char *gt_root;
    const char *const *res_roots;
    int nres;
    /* From siamese train: the evaluation it just made of runs[0] (its
     * model, mean and std), so the report does not evaluate again. */
    const EvalResult *eval0;
    const EvalDetail *detail0;
    /* From siamese train, for a co-segmentation run: its mask evaluation. */
    const CosegEval *coseg0;
} ReportOptions;

/* Writes the report. 0, or -1 with e (nothing written). */
int report_write(const ReportOptions *o, Err *e);

/* ---- for panels -------------------------------------------------------------
 * A panel is one function of a run: it appends HTML for what r->dir holds
 * (tables, charts made with viz/plot.h) and, for what is missing, a note
 * made with report_missing. Panels of one kind of run (tracking, and
 * co-segmentation when it trains) come with a predicate saying whether the
 * run gets the panel at all; both go in the table run_panels[] in report.c. */

/* A co-segmentation run's test pairs drawn in the report: the model's
 * predicted masks and the true ones of REPORT_COSEG_PAIRS seeded pairs. */
#define REPORT_COSEG_PAIRS 4
typedef struct ReportCoseg {
    int have; /* m holds the mask metrics (evaluated, or eval.json) */
    CosegMetrics m;
    double pairs, seconds; /* pairs scored and the evaluation's time (NaN: unknown) */
    int from_json;         /* m is eval.json's */
    char missing[1200];    /* why there are no metrics, or no overlays */
    int n;                 /* pairs drawn (0: none, missing says why) */
    uint32_t pair[REPORT_COSEG_PAIRS];
    int kind[REPORT_COSEG_PAIRS]; /* COSEG_SEEN / UNSEEN / NONE; -1: common, seen unknown */
    int32_t label[2 * REPORT_COSEG_PAIRS];
    int c, h, w;
    uint8_t *pix;   /* (2 n, c, h, w): rows k, n + k are pair k's images a, b */
    uint8_t *pred;  /* (2 n, h, w): 255 = predicted object */
    uint8_t *truth; /* (2 n, h, w): the target (empty for a pair without a common object) */
    float jac[2 * REPORT_COSEG_PAIRS]; /* per image Jaccard of pred and truth */
} ReportCoseg;

typedef struct ReportRun {
    const char *dir;
    char name[128];    /* the directory's last component (unique in the report) */
    int color;         /* palette index of this run in overlaid charts */
    char *config_text; /* config.ini, or the checkpoint's; NULL if neither */
    Config cfg;        /* parsed from config_text (valid if config_text) */
    CsvTable metrics, timing, ranks,
        valid; /* metrics.csv, timing.csv, ranks.csv, eval.csv (ncol 0: absent) */
    char *command_log, *resume_log, *eval_json; /* texts, NULL if absent */
    char ckpt[1100];                            /* the checkpoint evaluated ("" if none) */
    int world; /* ranks (from ranks.csv, command.log or the checkpoint; 0 unknown) */
    /* The evaluation (have_eval): from the checkpoint and the data, or the
     * run's own (ReportOptions.eval0). ds stays open for thumbnails. */
    int have_eval, borrowed; /* borrowed: ed belongs to the caller */
    EvalResult er;
    EvalDetail ed;
    Dataset *ds;
    const int32_t *labels;
    char data_path[600];
    char eval_missing[1200]; /* why there is no evaluation, when there is none */
    double eval_seconds;
    int map_points, tsne;           /* ReportOptions' */
    const char *gt_root, *res_root; /* tracking results to show (NULL: none) */
    int mot_data;                   /* the test set is MOT crops (import --format mot) */
    int coseg;                      /* a co-segmentation run ([loss] type = mask) */
    ReportCoseg cs;                 /* its metrics and overlays (report_coseg.c) */
} ReportRun;

typedef void (*ReportPanel)(Buf *b, const ReportRun *r);
typedef int (*ReportPanelShown)(const ReportRun *r);

/* <p class="missing"> with the text. */
void report_missing(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A number from eval.json's flat "key": value pairs (NaN if absent/null). */
double report_json_number(const char *json, const char *key);
/* The first n numbers of the array "key": [a, b, null, ...] into out (NaN
 * for null and for entries it lacks); returns how many it read. */
int report_json_array(double *out, int n, const char *json, const char *key);
/* An <img> of pixels (h, w, ch interleaved; ch 1 or 3) as an embedded PNG.
 * 0, or -1 with e (nothing written). */
int report_png(Buf *b, const uint8_t *pixels, int h, int w, int ch, const char *alt, Err *e);

/* Panels over several runs (report_panels.c, report_eval.c). */
void panel_summary(Buf *b, const ReportRun *runs, int n);
void panel_curves(Buf *b, const ReportRun *runs, int n);
void panel_validation(Buf *b, const ReportRun *runs, int n);
void panel_eval_overlay(Buf *b, const ReportRun *runs, int n);
/* Panels of one run. */
void panel_timing(Buf *b, const ReportRun *r);
void panel_eval_run(Buf *b, const ReportRun *r);
void panel_retrieval(Buf *b, const ReportRun *r);
void panel_config(Buf *b, const ReportRun *r);
void panel_map(Buf *b, const ReportRun *r); /* computes PCA and t-SNE */
/* Tracking scores and frames (report_track.c), for runs with results or
 * trained on MOT crops. */
void panel_tracking(Buf *b, const ReportRun *r);
int panel_tracking_shown(const ReportRun *r);
/* Co-segmentation (report_coseg.c): report_coseg_load fills r->cs (the mask
 * metrics: o->coseg0, an evaluation of the checkpoint, or eval.json; the
 * overlays of pairs seeded by seed); the panel shows them; the comparison
 * puts the co-segmentation runs of a report side by side. */
void report_coseg_load(ReportRun *r, const ReportOptions *o, int index, uint64_t seed);
void report_coseg_free(ReportRun *r);
void panel_coseg(Buf *b, const ReportRun *r);
int panel_coseg_shown(const ReportRun *r);
void panel_coseg_compare(Buf *b, const ReportRun *runs, int n);

#endif
