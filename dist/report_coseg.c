/* report_coseg: the co-segmentation panel. A run whose loss is [loss] type
 * = mask is scored by its masks, as siamese eval scores them (Jaccard and
 * precision on pairs with a common object of seen and unseen classes; wrong
 * pixels and empty predictions on pairs without one), and shown by a few
 * seeded test pairs: each image with the predicted mask filled in red and
 * the true one outlined in green. Several co-segmentation runs (a model and
 * its ablation) are put side by side on the same pairs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../io/image.h"
#include "../viz/plot.h"
#include "report.h"

#define SCALE 3 /* output pixels per model pixel in the overlays */
static const uint8_t PRED_COLOUR[3] = {235, 40, 40}, TRUTH_COLOUR[3] = {30, 210, 60};
#define ALPHA 0.45f

int panel_coseg_shown(const ReportRun *r) { return r->coseg; }

/* eval.json's mask metrics (siamese train and eval write the same keys). */
static void metrics_from_json(ReportCoseg *cs, const char *json) {
    CosegMetrics *m = &cs->m;
    m->jaccard_seen = report_json_number(json, "jaccard_seen");
    m->precision_seen = report_json_number(json, "precision_seen");
    m->jaccard_unseen = report_json_number(json, "jaccard_unseen");
    m->precision_unseen = report_json_number(json, "precision_unseen");
    m->jaccard = report_json_number(json, "jaccard");
    m->precision = report_json_number(json, "precision");
    m->wrong_pixels_none = report_json_number(json, "wrong_pixels_none");
    m->empty_none = report_json_number(json, "empty_none");
    double ps = report_json_number(json, "pairs_seen"), pu = report_json_number(json, "pairs_unseen"),
           pn = report_json_number(json, "pairs_none");
    m->pairs_seen = isfinite(ps) ? (uint64_t)ps : 0;
    m->pairs_unseen = isfinite(pu) ? (uint64_t)pu : 0;
    m->pairs_none = isfinite(pn) ? (uint64_t)pn : 0;
    cs->pairs = report_json_number(json, "pairs");
    cs->seconds = report_json_number(json, "seconds");
    cs->have = isfinite(m->jaccard) || isfinite(m->wrong_pixels_none);
    cs->from_json = cs->have;
}

/* Up to REPORT_COSEG_PAIRS pairs from a seeded order of the n pairs: the
 * first of each kind (seen, unseen, none) while kinds last, then the next
 * ones. kind[p] of every pair is given. Returns how many. */
static int choose_pairs(uint32_t *out, const int *kind, uint32_t n, uint64_t seed) {
    uint32_t *perm = xmalloc((size_t)n * sizeof *perm);
    for (uint32_t i = 0; i < n; i++) perm[i] = i;
    Rng rng;
    rng_seed(&rng, seed, RNG_REPORT, 5);
    rng_shuffle_u32(&rng, perm, n);
    int got = 0;
    uint8_t *taken = xcalloc(n, 1);
    static const int order[] = {COSEG_SEEN, COSEG_UNSEEN, COSEG_NONE};
    for (int k = 0; k < 3 && got < REPORT_COSEG_PAIRS; k++)
        for (uint32_t i = 0; i < n; i++)
            if (kind[perm[i]] == order[k]) {
                out[got++] = perm[i], taken[perm[i]] = 1;
                break;
            }
    for (uint32_t i = 0; i < n && got < REPORT_COSEG_PAIRS; i++)
        if (!taken[perm[i]]) out[got++] = perm[i], taken[perm[i]] = 1;
    free(taken);
    free(perm);
    return got;
}

/* The chosen pairs through the model: pixels, predictions, targets. */
static int draw_pairs(ReportCoseg *cs, EvalModel *em, Dataset *ds, Dataset *tr, uint64_t seed, Err *e) {
    const DsMeta *meta = ds_meta(ds);
    if (!meta->has_masks || meta->npairs == 0)
        return err_set(e, "%s has no %s: the overlays need test pairs with true masks (siamese synth coseg)",
                       ds_path(ds), meta->has_masks ? "pairs records" : "masks");
    if (meta->has_masks == DS_MASKS_CLASS)
        return err_set(
            e,
            "%s has class masks (every object by class): the overlays need the common object's mask "
            "(siamese synth coseg without --class-masks)",
            ds_path(ds));
    uint32_t np = (uint32_t)meta->npairs;
    uint32_t *a = xmalloc((size_t)np * sizeof *a), *b = xmalloc((size_t)np * sizeof *b);
    uint8_t *same = xmalloc(np);
    int *kind = xmalloc((size_t)np * sizeof *kind), rc = -1;
    CosegRunner run = {0};
    if (ds_load_pairs(ds, a, b, same, e) || coseg_runner_open(&run, &em->model, ds, &em->norm, 1, e))
        goto out;
    const int32_t *labels = ds_labels(ds);
    for (uint32_t p = 0; p < np; p++) kind[p] = coseg_pair_kind(tr, same[p], labels[a[p]]);
    int n = choose_pairs(cs->pair, kind, np, seed);
    uint32_t ia[REPORT_COSEG_PAIRS], ib[REPORT_COSEG_PAIRS];
    for (int k = 0; k < n; k++) ia[k] = a[cs->pair[k]], ib[k] = b[cs->pair[k]];
    if (coseg_runner_run(&run, ia, ib, n, e)) goto out;
    cs->c = em->model.in_c, cs->h = em->model.in_h, cs->w = em->model.in_w;
    size_t npix = (size_t)cs->h * cs->w, img = (size_t)cs->c * npix;
    cs->pix = xmalloc(2 * (size_t)n * img);
    cs->pred = xmalloc(2 * (size_t)n * npix);
    cs->truth = xcalloc(2 * (size_t)n * npix, 1);
    memcpy(cs->pix, run.pix, 2 * (size_t)n * img);
    memcpy(cs->pred, run.pred, 2 * (size_t)n * npix);
    for (int row = 0; row < 2 * n; row++) {
        int k = row % n;
        cs->kind[k] = tr || !same[cs->pair[k]] ? kind[cs->pair[k]] : -1;
        cs->label[row] = run.label[row];
        if (same[cs->pair[k]]) memcpy(cs->truth + (size_t)row * npix, run.truth + (size_t)row * npix, npix);
        CosegStats st = {0}; /* the image's Jaccard, as the evaluation computes it */
        coseg_stats_add(&st, cs->pred + (size_t)row * npix, cs->truth + (size_t)row * npix, npix, COSEG_SEEN);
        cs->jac[row] = (float)st.jaccard[COSEG_SEEN];
    }
    cs->n = n;
    rc = 0;
out:
    coseg_runner_close(&run);
    free(a), free(b), free(same), free(kind);
    return rc;
}

void report_coseg_load(ReportRun *r, const ReportOptions *o, int index, uint64_t seed) {
    ReportCoseg *cs = &r->cs;
    cs->pairs = cs->seconds = NAN;
    int own = index == 0 && o->coseg0;
    if (own) {
        cs->m = o->coseg0->m;
        cs->pairs = (double)o->coseg0->pairs, cs->seconds = o->coseg0->seconds;
        cs->have = 1;
    }
    const char *data = o->data ? o->data : r->cfg.data_test;
    if (o->no_eval || !r->ckpt[0] || !data[0]) {
        metrics_from_json(cs, r->eval_json);
        if (o->no_eval)
            snprintf(cs->missing, sizeof cs->missing,
                     "the run was not evaluated at its end ([train] eval = 0, or no [data] test): the "
                     "predicted masks of test pairs come with siamese report %s",
                     r->dir);
        else
            snprintf(cs->missing, sizeof cs->missing,
                     !r->ckpt[0]
                         ? "no checkpoint in %s (model.smpi or ckpt-*.smpi): the mask evaluation and "
                           "the predicted masks need one"
                         : "no test dataset: the run's [data] test is empty and --data was not given; "
                           "the mask evaluation and the predicted masks need one (siamese report %s "
                           "--data DB)",
                     r->dir);
        return;
    }
    snprintf(r->data_path, sizeof r->data_path, "%s", data);
    Err e;
    EvalModel em;
    Dataset *ds = NULL, *tr = NULL;
    if (eval_model_load(&em, r->ckpt, 32, &e)) {
        metrics_from_json(cs, r->eval_json);
        snprintf(cs->missing, sizeof cs->missing, "cannot load the checkpoint: %s", e.msg);
        return;
    }
    if (!r->world) r->world = em.world;
    const char *train = access(em.cfg.data_train, R_OK) == 0 ? em.cfg.data_train : NULL;
    if (coseg_model_check(&em.model, r->ckpt, &e) || ds_open(&ds, data, &e) ||
        (train && ds_open(&tr, train, &e))) {
        metrics_from_json(cs, r->eval_json);
        snprintf(cs->missing, sizeof cs->missing, "%s", e.msg);
        goto out;
    }
    if (!own) {
        CosegEval ce;
        if (!o->quiet) printf("report: evaluating the masks of %s on %s\n", r->ckpt, data), fflush(stdout);
        if (!train) {
            metrics_from_json(cs, r->eval_json);
            snprintf(cs->missing, sizeof cs->missing,
                     "the training set %s does not open: seen and unseen classes come from it, so the masks "
                     "were not evaluated%s",
                     em.cfg.data_train, cs->have ? " (the metrics are eval.json's)" : "");
        } else if (coseg_eval_run(&ce, &em.model, &em.norm, data, train, 0, 1, &e)) {
            metrics_from_json(cs, r->eval_json);
            snprintf(cs->missing, sizeof cs->missing, "evaluation failed: %s", e.msg);
        } else {
            cs->m = ce.m, cs->pairs = (double)ce.pairs, cs->seconds = ce.seconds;
            cs->have = 1;
        }
    }
    if (draw_pairs(cs, &em, ds, tr, seed, &e)) {
        size_t len = strlen(cs->missing);
        snprintf(cs->missing + len, sizeof cs->missing - len, "%sNo predicted masks drawn: %s",
                 len ? ". " : "", e.msg);
    }
out:
    if (tr) ds_close(tr);
    if (ds && !cs->n) ds_close(ds);
    if (cs->n) r->ds = ds; /* for the class names; free_run closes it */
    eval_model_free(&em);
}

void report_coseg_free(ReportRun *r) {
    free(r->cs.pix), free(r->cs.pred), free(r->cs.truth);
    memset(&r->cs, 0, sizeof r->cs);
}

/* ---- drawing ------------------------------------------------------------------ */

static const char *kind_name(int kind) {
    return kind == COSEG_SEEN     ? "common object, seen class"
           : kind == COSEG_UNSEEN ? "common object, unseen class"
           : kind == COSEG_NONE   ? "no common object"
                                  : "common object";
}

/* The metrics of runs (one column each) as a table. */
static void metrics_table(Buf *b, const ReportRun *const *runs, int n, const char *id) {
    buf_printf(b, "<table data-figure=\"%s\"><tr><th></th>", id);
    for (int i = 0; i < n; i++) {
        buf_puts(b, "<th>");
        buf_esc(b, n > 1 ? runs[i]->name : "value");
        buf_puts(b, "</th>");
    }
    buf_puts(b, "</tr>\n");
    static const char *const names[] = {"Jaccard, seen classes",          "precision, seen classes",
                                        "Jaccard, unseen classes",        "precision, unseen classes",
                                        "Jaccard, all common objects",    "precision, all common objects",
                                        "wrong pixels, no common object", "predicted empty, no common object",
                                        "pairs: seen / unseen / none"};
    for (int k = 0; k < 9; k++) {
        buf_puts(b, "<tr><th>");
        buf_esc(b, names[k]);
        buf_puts(b, "</th>");
        for (int i = 0; i < n; i++) {
            const ReportCoseg *cs = &runs[i]->cs;
            const CosegMetrics *m = &cs->m;
            const double v[8] = {m->jaccard_seen,      m->precision_seen, m->jaccard_unseen,
                                 m->precision_unseen,  m->jaccard,        m->precision,
                                 m->wrong_pixels_none, m->empty_none};
            if (!cs->have)
                buf_puts(b, "<td class=\"num\">-</td>");
            else if (k < 8) {
                char s[32];
                fmt_num(s, sizeof s, v[k]);
                buf_printf(b, "<td class=\"num\">%s</td>", isfinite(v[k]) ? s : "-");
            } else
                buf_printf(b, "<td class=\"num\">%llu / %llu / %llu</td>", (unsigned long long)m->pairs_seen,
                           (unsigned long long)m->pairs_unseen, (unsigned long long)m->pairs_none);
        }
        buf_puts(b, "</tr>\n");
    }
    buf_puts(b, "</table>\n");
}

/* Jaccard and precision, seen and unseen, one bar per run. */
static void metrics_bars(Buf *b, const ReportRun *const *runs, int n, const char *id) {
    static const char *const cats[] = {"Jaccard seen", "Jaccard unseen", "precision seen",
                                       "precision unseen"};
    double(*v)[4] = xcalloc((size_t)n, sizeof *v);
    const double **vals = xcalloc((size_t)n, sizeof *vals);
    const char **names = xcalloc((size_t)n, sizeof *names);
    for (int i = 0; i < n; i++) {
        const CosegMetrics *m = &runs[i]->cs.m;
        v[i][0] = m->jaccard_seen, v[i][1] = m->jaccard_unseen;
        v[i][2] = m->precision_seen, v[i][3] = m->precision_unseen;
        vals[i] = v[i], names[i] = n > 1 ? runs[i]->name : "test pairs";
    }
    PlotAxes a = plot_axes(id, "Masks of the test pairs with a common object", "", "mean over images");
    a.ymin = 0, a.ymax = 1;
    a.width = 460, a.height = 300;
    plot_bars(b, &a, cats, 4, vals, names, n, 0);
    free(v), free(vals), free(names);
}

static const char legend[] =
    "<p class=\"sub\"><span class=\"swatch\" style=\"background:#eb2828\"></span> predicted mask (filled) "
    "&nbsp; <span class=\"swatch outline\" style=\"border-color:#1ed23c\"></span> true mask (outlined; none "
    "when the pair has no common object) &nbsp; J: the image's Jaccard</p>\n";

/* Image row of pair k of run r, with its caption. */
static int overlay(Buf *b, const ReportRun *r, int row, Err *e) {
    const ReportCoseg *cs = &r->cs;
    uint32_t h = (uint32_t)cs->h, w = (uint32_t)cs->w;
    size_t npix = (size_t)h * w;
    uint8_t *rgb = xmalloc(npix * SCALE * SCALE * 3);
    image_overlay_masks(rgb, cs->pix + (size_t)row * cs->c * npix, cs->c, cs->pred + (size_t)row * npix,
                        cs->truth + (size_t)row * npix, h, w, SCALE, PRED_COLOUR, TRUTH_COLOUR, ALPHA);
    buf_puts(b, "<figure class=\"mask\">");
    int rc = report_png(b, rgb, (int)(h * SCALE), (int)(w * SCALE), 3, "predicted and true mask", e);
    free(rgb);
    if (rc) return -1;
    buf_printf(b, "<figcaption>%c: ", row < cs->n ? 'a' : 'b');
    if (r->ds && cs->label[row] >= 0)
        buf_esc(b, ds_class_name(r->ds, (uint32_t)cs->label[row]));
    else
        buf_printf(b, "class %d", (int)cs->label[row]);
    buf_printf(b, ", J %.2f</figcaption></figure>", cs->jac[row]);
    return 0;
}

void panel_coseg(Buf *b, const ReportRun *r) {
    const ReportCoseg *cs = &r->cs;
    if (cs->have) {
        buf_puts(b,
                 "<p class=\"sub\">The predicted masks (a pixel is object where its logit is above 0) of ");
        if (isfinite(cs->pairs)) buf_printf(b, "%.0f ", cs->pairs);
        buf_puts(b, "test pairs");
        if (!cs->from_json && r->data_path[0]) {
            buf_puts(b, " of ");
            buf_esc(b, r->data_path);
        }
        buf_puts(b,
                 ", scored as siamese eval scores them: for pairs with a common object, per image, Jaccard "
                 "(intersection over union with the true mask) and precision (the fraction of pixels "
                 "labelled right), for classes seen in training and unseen ones; for pairs without one, "
                 "the fraction of pixels wrongly marked and of images predicted empty");
        buf_puts(b, cs->from_json ? " (from the run's eval.json).</p>\n" : ".</p>\n");
        buf_puts(b, "<div class=\"charts\">");
        metrics_table(b, &r, 1, "coseg-metrics");
        metrics_bars(b, &r, 1, "coseg-bars");
        buf_puts(b, "</div>\n");
    }
    if (cs->missing[0]) report_missing(b, "%s", cs->missing);
    if (!cs->n) return;
    buf_printf(b,
               "<p class=\"sub\">%d seeded test pairs (the first of each kind while kinds last), each image "
               "with its predicted and true masks.</p>",
               cs->n);
    buf_puts(b, legend);
    buf_puts(b, "<div class=\"pairs\" data-figure=\"coseg-overlays\">\n");
    Err e;
    for (int k = 0; k < cs->n; k++) {
        buf_printf(b, "<div class=\"pair\" data-kind=\"%d\"><div class=\"pairhead\">pair %u: %s</div>",
                   cs->kind[k], cs->pair[k], kind_name(cs->kind[k]));
        for (int side = 0; side < 2; side++)
            if (overlay(b, r, k + side * cs->n, &e)) {
                buf_puts(b, "</div></div>\n");
                report_missing(b, "Overlays failed: %s", e.msg);
                return;
            }
        buf_puts(b, "</div>\n");
    }
    buf_puts(b, "</div>\n");
}

void panel_coseg_compare(Buf *b, const ReportRun *runs, int n) {
    const ReportRun **cr = xcalloc((size_t)n, sizeof *cr);
    int nc = 0;
    for (int i = 0; i < n; i++)
        if (runs[i].coseg) cr[nc++] = &runs[i];
    if (nc < 2) {
        free(cr);
        return;
    }
    buf_puts(b,
             "<section id=\"coseg-compare\" data-panel=\"coseg-compare\"><h2>Co-segmentation, runs side by "
             "side</h2>\n<div class=\"charts\">");
    metrics_table(b, cr, nc, "coseg-compare-metrics");
    metrics_bars(b, cr, nc, "coseg-compare-bars");
    buf_puts(b, "</div>\n");
    /* The same pairs for every run: those of the first run that drew any. */
    const ReportRun *ref = NULL;
    for (int i = 0; i < nc && !ref; i++)
        if (cr[i]->cs.n) ref = cr[i];
    if (!ref) {
        report_missing(b, "No run's predicted masks could be drawn (each run's section says why).");
        goto out;
    }
    buf_puts(b, legend);
    buf_puts(b, "<table class=\"side\" data-figure=\"coseg-compare-overlays\"><tr><th>pair</th>");
    for (int i = 0; i < nc; i++) {
        buf_puts(b, "<th>");
        buf_esc(b, cr[i]->name);
        buf_puts(b, "</th>");
    }
    buf_puts(b, "</tr>\n");
    Err e;
    for (int k = 0; k < ref->cs.n; k++) {
        buf_printf(b, "<tr><td>pair %u<br>%s</td>", ref->cs.pair[k], kind_name(ref->cs.kind[k]));
        for (int i = 0; i < nc; i++) {
            const ReportCoseg *cs = &cr[i]->cs;
            int same = cs->n == ref->cs.n && cs->pair[k] == ref->cs.pair[k] &&
                       !strcmp(cr[i]->data_path, ref->data_path);
            buf_puts(b, "<td>");
            if (!same) {
                buf_puts(b, "<span class=\"missing\">not drawn on these pairs</span>");
            } else {
                for (int side = 0; side < 2; side++)
                    if (overlay(b, cr[i], k + side * cs->n, &e)) {
                        buf_puts(b, "</td></tr></table>\n");
                        report_missing(b, "Overlays failed: %s", e.msg);
                        goto out;
                    }
            }
            buf_puts(b, "</td>");
        }
        buf_puts(b, "</tr>\n");
    }
    buf_puts(b, "</table>\n");
out:
    buf_puts(b, "</section>\n");
    free(cr);
}
