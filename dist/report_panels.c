/* report_panels: the report's panels from the run directory's files: the
 * summary table, training and validation curves (metrics.csv, timing.csv,
 * eval.csv), time per step by phase and per rank (timing.csv, ranks.csv),
 * and the run's config and command lines. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../viz/plot.h"
#include "report.h"

#define DRAW_POINTS 600 /* most points of a curve drawn; statistics use every row */

/* ---- summary ------------------------------------------------------------------ */

/* Mean of the last tenth (at least 1, at most 100) of the finite values. */
static double tail_mean(const CsvTable *t, const char *col) {
    int c = csv_col(t, col);
    if (c < 0 || t->nrow == 0) return NAN;
    int k = MAX(1, MIN(100, t->nrow / 10)), m = 0;
    double s = 0;
    for (int r = t->nrow - k; r < t->nrow; r++) {
        double v = t->v[(size_t)r * t->ncol + c];
        if (isfinite(v)) s += v, m++;
    }
    return m ? s / m : NAN;
}

static double last_value(const CsvTable *t, const char *col) {
    int c = csv_col(t, col);
    return c >= 0 && t->nrow > 0 ? t->v[(size_t)(t->nrow - 1) * t->ncol + c] : NAN;
}

/* Rows of timing.csv left out as warm-up: the first 3 of a run of more
 * than 10 steps. */
static int warmup_rows(const CsvTable *t) { return t->nrow > 10 ? 3 : 0; }

/* Mean of a timing column over the rows after the warm-up. */
static double timing_mean(const CsvTable *t, const char *col) {
    int c = csv_col(t, col), m = 0;
    double s = 0;
    for (int r = warmup_rows(t); c >= 0 && r < t->nrow; r++) {
        double v = t->v[(size_t)r * t->ncol + c];
        if (isfinite(v)) s += v, m++;
    }
    return m ? s / m : NAN;
}

/* The evaluation value of a run: its own evaluation, else eval.json. */
static double eval_value(const ReportRun *r, const char *key) {
    if (r->coseg) { /* the mask metrics, evaluated or eval.json's */
        const CosegMetrics *m = &r->cs.m;
        if (!r->cs.have) return NAN;
        if (!strcmp(key, "jaccard_seen")) return m->jaccard_seen;
        if (!strcmp(key, "jaccard_unseen")) return m->jaccard_unseen;
        if (!strcmp(key, "precision_seen")) return m->precision_seen;
        if (!strcmp(key, "precision_unseen")) return m->precision_unseen;
        if (!strcmp(key, "wrong_pixels_none")) return m->wrong_pixels_none;
        if (!strcmp(key, "empty_none")) return m->empty_none;
        return NAN;
    }
    if (r->have_eval) {
        const EvalResult *e = &r->er;
        if (!strcmp(key, "recall_at_1")) return e->recall1;
        if (!strcmp(key, "recall_at_5")) return e->recall5;
        if (!strcmp(key, "map_at_r")) return e->map_r;
        if (!strcmp(key, "verification_accuracy")) return e->ver_acc;
        if (!strcmp(key, "roc_auc")) return e->auc;
        if (!strcmp(key, "eer")) return e->eer;
        if (!strcmp(key, "nway_accuracy")) return e->nway;
        if (!strcmp(key, "nway")) return e->nway_n;
        if (!strcmp(key, "kshot")) return e->kshot;
        if (!strcmp(key, "samples")) return e->n;
    }
    return report_json_number(r->eval_json, key);
}

static void row_num(Buf *b, const char *what, const ReportRun *runs, int n,
                    double (*get)(const ReportRun *, int), int arg) {
    int any = 0;
    for (int i = 0; i < n; i++) any |= isfinite(get(&runs[i], arg));
    if (!any) return;
    buf_puts(b, "<tr><th>");
    buf_esc(b, what);
    buf_puts(b, "</th>");
    char s[32];
    for (int i = 0; i < n; i++) {
        fmt_num(s, sizeof s, get(&runs[i], arg));
        buf_printf(b, "<td class=\"num\">%s</td>", s);
    }
    buf_puts(b, "</tr>\n");
}

enum { S_STEPS, S_EPOCHS, S_LOSS, S_DATA_LOSS, S_ACTIVE, S_LR, S_IPS, S_MS, S_RANKS };
static const char *const eval_keys[] = {"recall_at_1",      "recall_at_5",
                                        "map_at_r",         "verification_accuracy",
                                        "roc_auc",          "eer",
                                        "nway_accuracy",    "jaccard_seen",
                                        "jaccard_unseen",   "precision_seen",
                                        "precision_unseen", "wrong_pixels_none",
                                        "empty_none"};
static const char *const eval_names[] = {"Recall@1",
                                         "Recall@5",
                                         "MAP@R",
                                         "verification accuracy",
                                         "ROC AUC",
                                         "EER",
                                         "N-way K-shot accuracy",
                                         "co-segmentation: Jaccard, seen classes",
                                         "co-segmentation: Jaccard, unseen classes",
                                         "co-segmentation: precision, seen classes",
                                         "co-segmentation: precision, unseen classes",
                                         "co-segmentation: wrong pixels, no common object",
                                         "co-segmentation: predicted empty, no common object"};

/* Images per second over the rows after the warm-up: all their images over
 * all their time (a mean of per-step rates would favour the fast steps). */
static double timing_throughput(const CsvTable *t) {
    int ci = csv_col(t, "images_per_s"), cs = csv_col(t, "step_s");
    double images = 0, secs = 0;
    for (int r = warmup_rows(t); ci >= 0 && cs >= 0 && r < t->nrow; r++) {
        double ips = t->v[(size_t)r * t->ncol + ci], s = t->v[(size_t)r * t->ncol + cs];
        if (isfinite(ips) && isfinite(s)) images += ips * s, secs += s;
    }
    return secs > 0 ? images / secs : NAN;
}

static double get_train(const ReportRun *r, int what) {
    switch (what) {
    case S_STEPS:
        return r->metrics.nrow ? last_value(&r->metrics, "step") + 1 : NAN;
    case S_EPOCHS:
        return r->metrics.nrow ? last_value(&r->metrics, "epoch") + 1 : NAN;
    case S_LOSS:
        return tail_mean(&r->metrics, "loss");
    case S_DATA_LOSS:
        return tail_mean(&r->metrics, "data_loss");
    case S_ACTIVE:
        return tail_mean(&r->metrics, "active_fraction");
    case S_LR:
        return last_value(&r->metrics, "lr");
    case S_IPS:
        return timing_throughput(&r->timing);
    case S_MS:
        return 1e3 * timing_mean(&r->timing, "step_s");
    case S_RANKS:
        return r->world > 0 ? r->world : NAN;
    }
    return NAN;
}

static double get_eval(const ReportRun *r, int k) { return eval_value(r, eval_keys[k]); }

/* eval.csv: the last value of column k (k indexes the table's columns). */
static const char *valid_name;
static double get_valid(const ReportRun *r, int unused) {
    (void)unused;
    return last_value(&r->valid, valid_name);
}

void panel_summary(Buf *b, const ReportRun *runs, int n) {
    buf_puts(b, "<section id=\"summary\" data-panel=\"summary\"><h2>Summary</h2>\n<table "
                "class=\"summary\"><tr><th></th>");
    for (int i = 0; i < n; i++) {
        buf_puts(b, "<th>");
        buf_esc(b, runs[i].name);
        buf_puts(b, "</th>");
    }
    buf_puts(b, "</tr>\n");
    row_num(b, "steps", runs, n, get_train, S_STEPS);
    row_num(b, "epochs", runs, n, get_train, S_EPOCHS);
    row_num(b, "ranks", runs, n, get_train, S_RANKS);
    row_num(b, "loss (mean of the last steps)", runs, n, get_train, S_LOSS);
    row_num(b, "data loss (mean of the last steps)", runs, n, get_train, S_DATA_LOSS);
    row_num(b, "active fraction (mean of the last steps)", runs, n, get_train, S_ACTIVE);
    row_num(b, "final learning rate", runs, n, get_train, S_LR);
    row_num(b, "images/s (all images over all step time)", runs, n, get_train, S_IPS);
    row_num(b, "time per step, ms (mean)", runs, n, get_train, S_MS);
    for (int k = 0; k < (int)(sizeof eval_keys / sizeof eval_keys[0]); k++)
        row_num(b, eval_names[k], runs, n, get_eval, k);
    /* The validation metrics' last values, by the first run's columns. */
    for (int i = 0; i < n; i++)
        for (int c = 0; c < runs[i].valid.ncol; c++) {
            const char *name = runs[i].valid.names[c];
            int seen = !strcmp(name, "step");
            for (int j = 0; j < i && !seen; j++) seen = csv_col(&runs[j].valid, name) >= 0;
            for (int d = 0; d < c && !seen; d++) seen = !strcmp(runs[i].valid.names[d], name);
            if (seen) continue;
            char what[160];
            snprintf(what, sizeof what, "validation %s (last)", name);
            valid_name = name;
            row_num(b, what, runs, n, get_valid, 0);
        }
    buf_puts(b, "</table>\n");
    for (int i = 0; i < n; i++) {
        const ReportRun *r = &runs[i];
        if (!r->metrics.ncol) report_missing(b, "%s: no metrics.csv: no training curves.", r->name);
        if (r->coseg && !r->cs.have)
            report_missing(b, "%s: no mask evaluation: %s", r->name, r->cs.missing);
        else if (r->coseg && r->cs.from_json)
            report_missing(b, "%s: mask metrics from eval.json; %s", r->name, r->cs.missing);
        else if (r->coseg)
            ;
        else if (!r->have_eval && !r->eval_json)
            report_missing(b, "%s: no evaluation: %s", r->name, r->eval_missing);
        else if (!r->have_eval)
            report_missing(b, "%s: evaluation numbers from eval.json; %s", r->name, r->eval_missing);
        if (r->metrics.skipped)
            report_missing(b, "%s: metrics.csv: %d malformed lines left out (the first at line %d).", r->name,
                           r->metrics.skipped, r->metrics.first_bad);
    }
    buf_puts(b, "</section>\n");
}

/* ---- curves ---------------------------------------------------------------------- */

typedef struct Curve {
    double *x, *y, *lo, *hi;
    int n;
} Curve;

/* Column ycol against column xcol, downsampled for drawing. */
static Curve curve_of(const CsvTable *t, const char *xcol, const char *ycol, double yscale) {
    Curve c = {0};
    int xi = csv_col(t, xcol), yi = csv_col(t, ycol);
    if (xi < 0 || yi < 0 || t->nrow == 0) return c;
    double *x = csv_column(t, xi), *y = csv_column(t, yi);
    for (int r = 0; r < t->nrow; r++) y[r] *= yscale;
    int m = MIN(t->nrow, DRAW_POINTS);
    c.x = xmalloc((size_t)m * sizeof(double)), c.y = xmalloc((size_t)m * sizeof(double));
    c.lo = xmalloc((size_t)m * sizeof(double)), c.hi = xmalloc((size_t)m * sizeof(double));
    c.n = plot_downsample(c.x, c.y, c.lo, c.hi, x, y, t->nrow, m);
    free(x);
    free(y);
    return c;
}

static void curve_free(Curve *c) {
    free(c->x), free(c->y), free(c->lo), free(c->hi);
    memset(c, 0, sizeof *c);
}

/* One chart: column ycol of table (0 metrics, 1 timing, 2 eval.csv) of
 * every run; a second, dashed column y2 (may be NULL) in the same colour. */
static int chart_of(Buf *b, const ReportRun *runs, int n, int table, const char *ycol, const char *y2,
                    const char *id, const char *title, const char *ylabel, int logy, double yscale) {
    PlotSeries *s = xcalloc(2 * (size_t)n, sizeof *s);
    Curve *cv = xcalloc(2 * (size_t)n, sizeof *cv);
    char(*names)[160] = xcalloc(2 * (size_t)n, sizeof *names);
    int ns = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < (y2 ? 2 : 1); k++) {
            const CsvTable *t = table == 0 ? &runs[i].metrics : table == 1 ? &runs[i].timing : &runs[i].valid;
            const char *col = k ? y2 : ycol;
            cv[ns] = curve_of(t, "step", col, yscale);
            if (!cv[ns].n) continue;
            int banded = cv[ns].n < t->nrow && !y2;
            if (n > 1 && y2)
                snprintf(names[ns], sizeof names[ns], "%s %s", runs[i].name, col);
            else if (n > 1)
                snprintf(names[ns], sizeof names[ns], "%s", runs[i].name);
            else if (y2)
                snprintf(names[ns], sizeof names[ns], "%s", col);
            s[ns] = (PlotSeries){names[ns],
                                 cv[ns].x,
                                 cv[ns].y,
                                 banded ? cv[ns].lo : NULL,
                                 banded ? cv[ns].hi : NULL,
                                 cv[ns].n,
                                 n > 1 ? runs[i].color : k,
                                 k ? PLOT_DASHED : PLOT_LINE};
            ns++;
        }
    if (ns) {
        PlotAxes a = plot_axes(id, title, "step", ylabel);
        a.logy = logy;
        plot_lines(b, &a, s, ns);
    }
    for (int k = 0; k < ns; k++) curve_free(&cv[k]);
    free(cv);
    free(s);
    free(names);
    return ns;
}

void panel_curves(Buf *b, const ReportRun *runs, int n) {
    buf_puts(b, "<section id=\"curves\" data-panel=\"curves\"><h2>Training curves</h2>\n");
    int any = 0;
    for (int i = 0; i < n; i++) any |= runs[i].metrics.nrow > 0;
    if (!any) {
        report_missing(b, "No metrics.csv rows: the run has not logged a step yet.");
        buf_puts(b, "</section>\n");
        return;
    }
    buf_puts(b, "<p class=\"sub\">Per step; runs longer than 600 steps are drawn as the mean of each "
                "bucket of steps with its minimum-maximum band. Hover a chart for values.</p><div "
                "class=\"charts\">\n");
    chart_of(b, runs, n, 0, "loss", "data_loss", "loss", "Loss (dashed: data loss, without L2 terms)", "loss",
             0, 1);
    chart_of(b, runs, n, 0, "active_fraction", NULL, "active", "Active fraction (terms with a non-zero loss)",
             "fraction", 0, 1);
    chart_of(b, runs, n, 0, "hardness", NULL, "hardness", "Mean hardness of the mined terms", "hardness", 0,
             1);
    chart_of(b, runs, n, 0, "lr", NULL, "lr", "Learning rate", "learning rate", 0, 1);
    chart_of(b, runs, n, 0, "grad_norm", NULL, "grad_norm", "Gradient norm (before clipping)", "L2 norm", 1,
             1);
    if (!chart_of(b, runs, n, 1, "images_per_s", NULL, "images_per_s", "Throughput (rank 0's step time)",
                  "images/s", 0, 1))
        report_missing(b, "No timing.csv: no throughput curve.");
    buf_puts(b, "</div></section>\n");
}

void panel_validation(Buf *b, const ReportRun *runs, int n) {
    int any = 0;
    for (int i = 0; i < n; i++) any |= runs[i].valid.nrow > 0;
    if (!any) return; /* a run without validation during training: nothing to say */
    buf_puts(b, "<section id=\"validation\" data-panel=\"validation\"><h2>Validation during training</h2>"
                "<p class=\"sub\">From eval.csv.</p><div class=\"charts\">\n");
    for (int i = 0; i < n; i++)
        for (int c = 0; c < runs[i].valid.ncol; c++) {
            const char *name = runs[i].valid.names[c];
            int seen = !strcmp(name, "step");
            for (int j = 0; j < i && !seen; j++) seen = csv_col(&runs[j].valid, name) >= 0;
            if (seen) continue;
            char id[96], title[160];
            snprintf(id, sizeof id, "valid-%s", name);
            snprintf(title, sizeof title, "Validation: %s", name);
            chart_of(b, runs, n, 2, name, NULL, id, title, name, 0, 1);
        }
    buf_puts(b, "</div></section>\n");
}

/* ---- time per step ------------------------------------------------------------------ */

static const char *const phase_cols[] = {"data_s",     "forward_s",        "imbalance_s", "exchange_mining_s",
                                         "backward_s", "allreduce_wait_s", "optimizer_s"};
static const char *const phase_names[] = {"data wait",         "forward",  "waiting for other ranks",
                                          "exchange + mining", "backward", "allreduce wait",
                                          "optimizer"};
#define NPHASES 7

void panel_timing(Buf *b, const ReportRun *r) {
    const CsvTable *t = &r->timing;
    if (t->nrow == 0) {
        report_missing(b, "No timing.csv rows: no time breakdown.");
        return;
    }
    /* The warm-up steps (first-touch allocation, caches) dwarf the rest:
     * left out of the chart as of the means. */
    int skip = warmup_rows(t), rows = t->nrow - skip;
    int m = MIN(rows, DRAW_POINTS), sc = csv_col(t, "step");
    double *x = csv_column(t, sc), *dx = xmalloc((size_t)m * sizeof *dx);
    double *ys[NPHASES], *lo = xmalloc((size_t)m * sizeof *lo), *hi = xmalloc((size_t)m * sizeof *hi);
    char s[32];
    buf_puts(b,
             "<p class=\"sub\">Rank 0's wall time per step by phase (ms), the mean of each bucket of steps; "
             "the first 3 steps (warm-up) are left out of the chart and the means.");
    double total = 1e3 * timing_mean(t, "step_s");
    fmt_num(s, sizeof s, total);
    buf_printf(b, " Mean step %s ms:", s);
    for (int k = 0; k < NPHASES; k++) {
        double *y = csv_column(t, csv_col(t, phase_cols[k]));
        for (int i = 0; i < t->nrow; i++) y[i] *= 1e3;
        ys[k] = xmalloc((size_t)m * sizeof(double));
        plot_downsample(dx, ys[k], lo, hi, x + skip, y + skip, rows, m);
        free(y);
        fmt_num(s, sizeof s, 1e3 * timing_mean(t, phase_cols[k]));
        buf_printf(b, "%s %s %s ms", k ? "," : "", phase_names[k], s);
    }
    buf_puts(b, ".</p><div class=\"charts\">\n");
    PlotAxes a = plot_axes("timing", "Time per step by phase (rank 0)", "step", "ms per step");
    plot_stacked(b, &a, dx, m, (const double *const *)ys, phase_names, NPHASES);
    for (int k = 0; k < NPHASES; k++) free(ys[k]);
    free(x), free(dx), free(lo), free(hi);
    /* Per rank: the last start's totals over its timed steps. */
    const CsvTable *rk = &r->ranks;
    int cf = csv_col(rk, "first_step"), cr = csv_col(rk, "rank"), cs = csv_col(rk, "timed_steps");
    if (rk->nrow > 1 && cf >= 0 && cr >= 0 && cs >= 0) {
        double first = rk->v[(size_t)(rk->nrow - 1) * rk->ncol + cf];
        int r0 = rk->nrow - 1;
        while (r0 > 0 && rk->v[(size_t)(r0 - 1) * rk->ncol + cf] == first) r0--;
        int nr = rk->nrow - r0;
        if (nr > 1) {
            const char *wait_cols[3] = {"data_s", "imbalance_s", "allreduce_wait_s"};
            const char *wait_names[3] = {"data wait", "waiting for other ranks", "allreduce wait"};
            double *vals[3];
            char(*cats)[16] = xcalloc((size_t)nr, sizeof *cats);
            const char **catp = xcalloc((size_t)nr, sizeof *catp);
            for (int k = 0; k < 3; k++) {
                vals[k] = xmalloc((size_t)nr * sizeof(double));
                int c = csv_col(rk, wait_cols[k]);
                for (int i = 0; i < nr; i++) {
                    const double *row = rk->v + (size_t)(r0 + i) * rk->ncol;
                    vals[k][i] = c >= 0 && row[cs] > 0 ? 1e3 * row[c] / row[cs] : NAN;
                }
            }
            for (int i = 0; i < nr; i++) {
                snprintf(cats[i], sizeof cats[i], "rank %.0f", rk->v[(size_t)(r0 + i) * rk->ncol + cr]);
                catp[i] = cats[i];
            }
            PlotAxes ra = plot_axes("rank-waiting", "Waiting per step, by rank", "rank", "ms per step");
            plot_bars(b, &ra, catp, nr, (const double *const *)vals, wait_names, 3, 1);
            for (int k = 0; k < 3; k++) free(vals[k]);
            free(cats);
            free(catp);
        }
    }
    buf_puts(b, "</div>\n");
    if (r->world > 1 && rk->nrow == 0) report_missing(b, "No ranks.csv: no per-rank waiting.");
}

/* ---- config and command lines ------------------------------------------------------ */

static void pre(Buf *b, const char *title, const char *text) {
    buf_puts(b, "<h4>");
    buf_esc(b, title);
    buf_puts(b, "</h4><pre>");
    buf_esc(b, text);
    buf_puts(b, "</pre>\n");
}

void panel_config(Buf *b, const ReportRun *r) {
    char s[64];
    buf_puts(b, "<table class=\"run\"><tr><th>directory</th><td>");
    buf_esc(b, r->dir);
    buf_puts(b, "</td></tr><tr><th>ranks</th><td>");
    if (r->world > 0)
        buf_printf(b, "%d", r->world);
    else
        buf_puts(b, "unknown");
    buf_puts(b, "</td></tr><tr><th>checkpoint evaluated</th><td>");
    buf_esc(b, r->ckpt[0] ? r->ckpt : "none");
    buf_puts(b, "</td></tr><tr><th>test data</th><td>");
    buf_esc(b, r->data_path[0] ? r->data_path : "none");
    if (r->have_eval) {
        fmt_num(s, sizeof s, r->eval_seconds);
        buf_printf(b, " (%d samples, %d classes; evaluated in %s s)", r->er.n, r->er.classes, s);
    }
    buf_puts(b, "</td></tr></table>\n");
    if (r->command_log) {
        buf_puts(b, "<h4>Command lines (command.log: time, version, ranks, first step, command)</h4><table>");
        for (const char *p = r->command_log; *p;) {
            const char *nl = strchr(p, '\n');
            size_t len = nl ? (size_t)(nl - p) : strlen(p);
            char *line = strndup(p, len);
            buf_puts(b, "<tr>");
            for (char *save, *f = strtok_r(line, "\t", &save); f; f = strtok_r(NULL, "\t", &save)) {
                buf_puts(b, "<td>");
                buf_esc(b, f);
                buf_puts(b, "</td>");
            }
            buf_puts(b, "</tr>");
            free(line);
            p += len + (nl ? 1 : 0);
        }
        buf_puts(b, "</table>\n");
    } else {
        report_missing(b, "No command.log (runs before it existed): command line and version not recorded.");
    }
    if (r->resume_log) pre(b, "Resumes (resume.log)", r->resume_log);
    if (r->config_text)
        pre(b, "Effective config (config.ini)", r->config_text);
    else
        report_missing(b, "No config.ini and no readable checkpoint: the config is unknown.");
}
