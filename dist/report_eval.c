/* report_eval: the report's panels from an evaluation: ROC with the EER
 * point, histograms of same- and different-class pair distances with the
 * threshold, Recall@K for K = 1..16, N-way accuracy, retrieval examples
 * (seeded queries and their 8 nearest test images as PNG thumbnails), and
 * the embedding map (PCA and t-SNE of a seeded sample, coloured by class). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/image.h"
#include "../mining/metrics.h"
#include "../viz/pca.h"
#include "../viz/plot.h"
#include "../viz/tsne.h"
#include "report.h"

#define ROC_DRAW 800 /* most ROC points drawn */
#define HIST_BINS 50
#define QUERIES 8 /* retrieval examples */
#define NEIGHBOURS 8
#define MAP_COLORS 20 /* classes with a colour of their own */

/* ---- ROC and Recall@K ------------------------------------------------------------ */

typedef struct Roc {
    double *fpr, *tpr, *thr;
    int n; /* points drawn */
    double eer, eer_thr;
} Roc;

static Roc roc_of(const EvalDetail *d) {
    Roc r = {0};
    int n = d->pairs;
    double *fpr = xmalloc(3 * ((size_t)n + 1) * sizeof *fpr), *fnr = fpr + n + 1, *thr = fnr + n + 1;
    int m = metrics_roc_curve(fpr, fnr, thr, d->score, d->same, n), seg;
    if (m < 0) {
        free(fpr);
        r.eer = r.eer_thr = NAN;
        return r;
    }
    r.eer = metrics_eer_curve(&seg, fpr, fnr, m);
    r.eer_thr = seg > 0 ? thr[seg - 1] : NAN; /* the last threshold before the crossing */
    int step = (m + ROC_DRAW - 1) / ROC_DRAW;
    r.fpr = xmalloc(((size_t)m / step + 2) * sizeof(double));
    r.tpr = xmalloc(((size_t)m / step + 2) * sizeof(double));
    for (int k = 0; k < m; k += step) r.fpr[r.n] = fpr[k], r.tpr[r.n++] = 1 - fnr[k];
    if ((m - 1) % step) r.fpr[r.n] = fpr[m - 1], r.tpr[r.n++] = 1 - fnr[m - 1];
    free(fpr);
    return r;
}

static void roc_free(Roc *r) {
    free(r->fpr);
    free(r->tpr);
}

/* ROC of runs (overlaid) with each EER point and the chance diagonal. */
static void roc_chart(Buf *b, const ReportRun *runs, int n, const char *id) {
    PlotSeries *s = xcalloc(2 * (size_t)n + 1, sizeof *s);
    Roc *roc = xcalloc((size_t)n, sizeof *roc);
    char(*names)[200] = xcalloc(2 * (size_t)n, sizeof *names);
    double *ex = xcalloc((size_t)n, sizeof *ex), *ey = xcalloc((size_t)n, sizeof *ey);
    static const double diag[2] = {0, 1};
    int ns = 0;
    s[ns++] = (PlotSeries){"chance", diag, diag, NULL, NULL, 2, PLOT_COLORS - 3, PLOT_DASHED};
    for (int i = 0; i < n; i++) {
        if (!runs[i].have_eval) continue;
        roc[i] = roc_of(&runs[i].ed);
        if (!roc[i].n) continue;
        int col = n > 1 ? runs[i].color : 0;
        snprintf(names[2 * i], sizeof names[0], "%s%sAUC %.4f", n > 1 ? runs[i].name : "", n > 1 ? ": " : "",
                 runs[i].er.auc);
        s[ns++] = (PlotSeries){names[2 * i], roc[i].fpr, roc[i].tpr, NULL, NULL, roc[i].n, col, PLOT_LINE};
        ex[i] = roc[i].eer, ey[i] = 1 - roc[i].eer;
        snprintf(names[2 * i + 1], sizeof names[0], "EER %.4f", roc[i].eer);
        s[ns++] = (PlotSeries){names[2 * i + 1], &ex[i], &ey[i], NULL, NULL, 1, col, PLOT_POINTS};
    }
    PlotAxes a = plot_axes(id, "ROC of the balanced test pairs", "false positive rate", "true positive rate");
    a.xmin = 0, a.xmax = 1, a.ymin = 0, a.ymax = 1;
    a.width = 420, a.height = 380;
    plot_lines(b, &a, s, ns);
    for (int i = 0; i < n; i++) roc_free(&roc[i]);
    free(roc), free(s), free(names), free(ex), free(ey);
}

static void recall_chart(Buf *b, const ReportRun *runs, int n, const char *id) {
    static const double ks[EVAL_MAX_K] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    PlotSeries *s = xcalloc((size_t)n, sizeof *s);
    double(*rk)[EVAL_MAX_K] = xcalloc((size_t)n, sizeof *rk);
    int ns = 0;
    for (int i = 0; i < n; i++) {
        int have = runs[i].have_eval;
        for (int k = 0; k < EVAL_MAX_K; k++) rk[i][k] = have ? runs[i].er.recall_k[k] : NAN;
        if (!have) report_json_array(rk[i], EVAL_MAX_K, runs[i].eval_json, "recall_at_k");
        int any = 0;
        for (int k = 0; k < EVAL_MAX_K; k++) any |= isfinite(rk[i][k]);
        if (any)
            s[ns++] = (PlotSeries){n > 1 ? runs[i].name : "Recall@K", ks,       rk[i], NULL, NULL, EVAL_MAX_K,
                                   n > 1 ? runs[i].color : 0,         PLOT_LINE};
    }
    if (ns) {
        PlotAxes a = plot_axes(id, "Recall@K: same class among the K nearest", "K", "Recall@K");
        a.xmin = 1, a.xmax = EVAL_MAX_K, a.ymax = 1;
        a.width = 420, a.height = 380;
        plot_lines(b, &a, s, ns);
    }
    free(s);
    free(rk);
}

void panel_eval_overlay(Buf *b, const ReportRun *runs, int n) {
    buf_puts(b, "<section id=\"compare\" data-panel=\"compare\"><h2>Evaluation, runs overlaid</h2>"
                "<div class=\"charts\">\n");
    int any = 0;
    for (int i = 0; i < n; i++) any |= runs[i].have_eval;
    if (any) roc_chart(b, runs, n, "roc-all");
    recall_chart(b, runs, n, "recall-all");
    buf_puts(b, "</div></section>\n");
}

/* ---- one run's evaluation ----------------------------------------------------------- */

void panel_eval_run(Buf *b, const ReportRun *r) {
    if (!r->have_eval) {
        report_missing(b, "%s", r->eval_missing);
        if (r->eval_json) {
            buf_puts(b, "<div class=\"charts\">");
            recall_chart(b, r, 1, "recall");
            buf_puts(b, "</div>");
        }
        return;
    }
    const EvalResult *e = &r->er;
    const EvalDetail *d = &r->ed;
    char s1[32], s2[32];
    buf_printf(
        b, "<p class=\"sub\">%d test samples of %d classes; %d balanced test pairs (seeded). Pair score: %s.",
        e->n, e->classes, e->pairs,
        !d->koch ? "minus the Euclidean distance"
        : d->E   ? "the logit of the model's pair head"
                 : "the logit the model computes on the two images (it has no per-image embedding)");
    if (isfinite(e->nway)) {
        fmt_num(s1, sizeof s1, e->nway);
        fmt_num(s2, sizeof s2, 1.0 / e->nway_n);
        buf_printf(b, " <b>%d-way %d-shot accuracy %s</b> over %d seeded trials (chance %s).", e->nway_n,
                   e->kshot, s1, e->trials, s2);
    }
    buf_puts(b, "</p><div class=\"charts\">\n");
    roc_chart(b, r, 1, "roc");
    /* Distances (or logits) of same- and different-class pairs. */
    double *v[2];
    long nv[2] = {0, 0};
    v[0] = xmalloc((size_t)MAX(d->pairs, 1) * sizeof(double));
    v[1] = xmalloc((size_t)MAX(d->pairs, 1) * sizeof(double));
    double lo = INFINITY, hi = -INFINITY, sign = d->koch ? 1 : -1;
    for (int p = 0; p < d->pairs; p++) {
        double x = sign * d->score[p];
        v[d->same[p] ? 0 : 1][nv[d->same[p] ? 0 : 1]++] = x;
        lo = fmin(lo, x), hi = fmax(hi, x);
    }
    double c0[HIST_BINS], c1[HIST_BINS];
    plot_histogram(c0, HIST_BINS, lo, hi, v[0], nv[0]);
    plot_histogram(c1, HIST_BINS, lo, hi, v[1], nv[1]);
    const double *counts[2] = {c0, c1};
    const char *hn[2] = {"same-class pairs", "different-class pairs"};
    Roc roc = roc_of(d);
    char vl[96];
    PlotAxes a =
        plot_axes("histogram", d->koch ? "Head logit of the test pairs" : "Distance of the test pairs",
                  d->koch ? "head logit" : "Euclidean distance between embeddings", "pairs per bin");
    if (isfinite(e->threshold)) {
        a.vline = sign * e->threshold;
        fmt_num(s1, sizeof s1, a.vline);
        snprintf(vl, sizeof vl, "threshold %s (best on training pairs)", s1);
    } else {
        a.vline = sign * roc.eer_thr;
        fmt_num(s1, sizeof s1, a.vline);
        snprintf(vl, sizeof vl, "threshold %s (at the EER; no training pairs)", s1);
    }
    a.vlabel = vl;
    a.height = 380;
    plot_hist(b, &a, lo, hi, HIST_BINS, counts, hn, 2);
    roc_free(&roc);
    free(v[0]);
    free(v[1]);
    recall_chart(b, r, 1, "recall");
    buf_puts(b, "</div>\n");
}

/* ---- retrieval ------------------------------------------------------------------------ */

/* Sample id's pixels as PNG (grey for 1 channel, RGB for 3, else the first
 * channel) in a data: URI. */
static int thumb(Buf *b, DsReader *rd, const DsMeta *m, int id, uint8_t *pix, uint8_t *il, Err *e) {
    int32_t label;
    if (ds_read(rd, (uint64_t)id, pix, &label, NULL, e)) return -1;
    size_t hw = (size_t)m->height * m->width;
    uint32_t ch = m->channels == 3 ? 3 : 1;
    for (size_t p = 0; p < hw; p++)
        for (uint32_t c = 0; c < ch; c++) il[p * ch + c] = pix[c * hw + p]; /* planar -> interleaved */
    return report_png(b, il, (int)m->height, (int)m->width, (int)ch, "sample", e);
}

/* The note for a model that scores pairs without a per-image embedding
 * (early fusion); 1 if it was written. */
static int no_embedding(Buf *b, const ReportRun *r, const char *what) {
    if (r->ed.E) return 0;
    report_missing(
        b, "No %s: the model has no per-image embedding (it scores the two images of a pair together).",
        what);
    return 1;
}

void panel_retrieval(Buf *b, const ReportRun *r) {
    if (!r->have_eval) {
        report_missing(b, "%s", r->eval_missing);
        return;
    }
    if (no_embedding(b, r, "retrieval examples")) return;
    const EvalDetail *d = &r->ed;
    int N = d->n, nq = MIN(QUERIES, N), k = MIN(NEIGHBOURS, N - 1);
    if (k < 1) {
        report_missing(b, "Too few test samples for retrieval.");
        return;
    }
    /* Seeded queries, from distinct classes while there are new ones. */
    uint32_t *perm = xmalloc((size_t)N * sizeof *perm);
    for (int i = 0; i < N; i++) perm[i] = (uint32_t)i;
    Rng rng;
    rng_seed(&rng, (uint64_t)r->cfg.seed, RNG_REPORT, 3);
    rng_shuffle_u32(&rng, perm, (size_t)N);
    int q[QUERIES], got = 0;
    for (int pass = 0; pass < 2 && got < nq; pass++)
        for (int i = 0; i < N && got < nq; i++) {
            int dup = 0;
            for (int j = 0; j < got; j++)
                dup |= pass == 0 ? r->labels[q[j]] == r->labels[perm[i]] : q[j] == (int)perm[i];
            if (!dup) q[got++] = (int)perm[i];
        }
    free(perm);
    int *nn = xmalloc((size_t)got * k * sizeof *nn);
    float *dist = xmalloc((size_t)got * k * sizeof *dist);
    Err e;
    DsReader *rd = NULL;
    const DsMeta *m = ds_meta(r->ds);
    uint8_t *pix = xmalloc((size_t)m->channels * m->height * m->width);
    uint8_t *il = xmalloc((size_t)m->channels * m->height * m->width);
    if (metrics_neighbours(nn, dist, d->E, N, d->dim, q, got, k, &e) || ds_reader_open(r->ds, &rd, &e)) {
        report_missing(b, "Retrieval failed: %s", e.msg);
        goto out;
    }
    buf_printf(
        b,
        "<p class=\"sub\">%d seeded test queries (one per class while classes last) and their %d nearest "
        "test images by Euclidean distance of the embeddings; green: same class as the query, red: "
        "another class. Under each: its class, and its distance.</p><div class=\"queries\" "
        "data-figure=\"retrieval\">\n",
        got, k);
    for (int i = 0; i < got; i++) {
        buf_puts(b, "<div class=\"thumb query\">");
        if (thumb(b, rd, m, q[i], pix, il, &e)) goto fail;
        buf_puts(b, "query<br>");
        buf_esc(b, ds_class_name(r->ds, (uint32_t)r->labels[q[i]]));
        buf_puts(b, "</div><div class=\"row\">");
        for (int j = 0; j < k; j++) {
            int id = nn[(size_t)i * k + j], right = r->labels[id] == r->labels[q[i]];
            buf_printf(b, "<div class=\"thumb %s\" data-right=\"%d\">", right ? "right" : "wrong", right);
            if (thumb(b, rd, m, id, pix, il, &e)) goto fail;
            buf_printf(b, "<span>%s</span> ", right ? "&#10003;" : "&#10007;");
            buf_esc(b, ds_class_name(r->ds, (uint32_t)r->labels[id]));
            buf_printf(b, "<br>%.3g</div>", dist[(size_t)i * k + j]);
        }
        buf_puts(b, "</div>\n");
    }
    buf_puts(b, "</div>\n");
    goto out;
fail:
    buf_puts(b, "</div></div>\n");
    report_missing(b, "Thumbnails failed: %s", e.msg);
out:
    if (rd) ds_reader_close(rd);
    free(pix), free(il), free(nn), free(dist);
}

/* ---- embedding map ---------------------------------------------------------------------- */

typedef struct ClassCount {
    int label, count;
} ClassCount;

static int cmp_count(const void *pa, const void *pb) {
    const ClassCount *a = pa, *b = pb;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    return (a->label > b->label) - (a->label < b->label);
}

static int cmp_u32(const void *pa, const void *pb) {
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    return (a > b) - (a < b);
}

void panel_map(Buf *b, const ReportRun *r) {
    if (!r->have_eval) {
        report_missing(b, "%s", r->eval_missing);
        return;
    }
    if (no_embedding(b, r, "embedding map")) return;
    const EvalDetail *d = &r->ed;
    int N = d->n, D = d->dim, M = MIN(N, r->map_points), C = (int)ds_meta(r->ds)->classes;
    uint64_t seed = (uint64_t)r->cfg.seed;
    /* A seeded sample of M points, in sample order. */
    uint32_t *idx = xmalloc((size_t)N * sizeof *idx);
    for (int i = 0; i < N; i++) idx[i] = (uint32_t)i;
    if (M < N) {
        Rng rng;
        rng_seed(&rng, seed, RNG_REPORT, 4);
        rng_shuffle_u32(&rng, idx, (size_t)N);
        qsort(idx, (size_t)M, sizeof *idx, cmp_u32);
    }
    float *X = xmalloc((size_t)M * D * sizeof *X), *Y = xmalloc(2 * (size_t)M * sizeof *Y);
    for (int i = 0; i < M; i++) memcpy(X + (size_t)i * D, d->E + (size_t)idx[i] * D, (size_t)D * sizeof *X);
    /* Colours: the MAP_COLORS classes with the most points in the sample. */
    ClassCount *cc = xcalloc((size_t)C, sizeof *cc);
    for (int c = 0; c < C; c++) cc[c].label = c;
    for (int i = 0; i < M; i++) cc[r->labels[idx[i]]].count++;
    qsort(cc, (size_t)C, sizeof *cc, cmp_count);
    int nl = 0, *color = xmalloc((size_t)C * sizeof *color), *cls = xmalloc((size_t)M * sizeof *cls);
    int present = 0, grey_pts = 0;
    for (int c = 0; c < C; c++) color[c] = -1;
    for (int c = 0; c < C; c++) {
        if (cc[c].count == 0) continue;
        present++;
        if (nl < MAP_COLORS)
            color[cc[c].label] = nl++;
        else
            grey_pts += cc[c].count;
    }
    const char **names = xcalloc((size_t)MAX(nl, 1), sizeof *names);
    int *counts = xcalloc((size_t)MAX(nl, 1), sizeof *counts);
    for (int k = 0; k < nl; k++)
        names[k] = ds_class_name(r->ds, (uint32_t)cc[k].label), counts[k] = cc[k].count;
    for (int i = 0; i < M; i++) cls[i] = color[r->labels[idx[i]]];
    char note[512];
    int nn = snprintf(note, sizeof note,
                      "%d of the %d test samples%s, coloured by class (legend: class and points).", M, N,
                      M < N ? " (a seeded sample)" : "");
    if (present > nl)
        snprintf(note + nn, sizeof note - (size_t)nn,
                 " The %d largest classes have colours; the other %d classes "
                 "(%d points) are grey.",
                 nl, present - nl, grey_pts);
    buf_puts(b, "<div class=\"charts\">\n");
    Err e;
    float *comp = xmalloc(2 * (size_t)D * sizeof *comp), *mean = xmalloc((size_t)D * sizeof *mean);
    double var[2];
    if (M >= 2 && D >= 2 && pca_fit(comp, var, mean, X, M, D, 2, 6, seed, &e) == 0) {
        double total = 0; /* the total variance, for the axes' shares */
        for (int c = 0; c < D; c++) {
            double s = 0, s2 = 0;
            for (int i = 0; i < M; i++)
                s += X[(size_t)i * D + c], s2 += (double)X[(size_t)i * D + c] * X[(size_t)i * D + c];
            total += (s2 - s * s / M) / (M - 1);
        }
        pca_project(Y, X, M, D, comp, mean, 2);
        char xl[64], yl[64];
        snprintf(xl, sizeof xl, "PC1 (%.0f%% of the variance)", total > 0 ? 100 * var[0] / total : 0.0);
        snprintf(yl, sizeof yl, "PC2 (%.0f%%)", total > 0 ? 100 * var[1] / total : 0.0);
        PlotAxes a = plot_axes("map-pca", "PCA of the test embeddings", xl, yl);
        plot_scatter(b, &a, Y, cls, M, names, counts, nl, note);
    } else {
        report_missing(b, "No PCA map: %s", M < 2 || D < 2 ? "fewer than 2 points or dimensions" : e.msg);
    }
    if (r->tsne && M >= 4) {
        double t0 = now_seconds();
        int Dr = MIN(D, 50);
        float *Xr = X;
        if (D > Dr) { /* wide embeddings: t-SNE of the top 50 principal components */
            float *c50 = xmalloc((size_t)Dr * D * sizeof *c50);
            double *v50 = xmalloc((size_t)Dr * sizeof *v50);
            Xr = xmalloc((size_t)M * Dr * sizeof *Xr);
            if (pca_fit(c50, v50, mean, X, M, D, Dr, 3, seed, &e) == 0)
                pca_project(Xr, X, M, D, c50, mean, Dr);
            free(c50);
            free(v50);
        }
        TsneSpec ts;
        tsne_spec_default(&ts);
        ts.seed = seed;
        double kl[64];
        if (tsne_run(Y, kl, Xr, M, Dr, &ts, &e) == 0) {
            char tn[512];
            int nk = (ts.iters + 49) / 50 + 1;
            snprintf(tn, sizeof tn,
                     "t-SNE of the same points%s: perplexity %g, %d steps (Barnes-Hut, theta %g), seed "
                     "%llu; KL divergence %.3f after the early exaggeration, %.3f at the end; %.1f s.",
                     D > Dr ? " (their top 50 principal components)" : "", ts.perplexity, ts.iters, ts.theta,
                     (unsigned long long)seed, kl[MIN(ts.exag_iters / 50, nk - 1)], kl[nk - 1],
                     now_seconds() - t0);
            PlotAxes a = plot_axes("map-tsne", "t-SNE of the test embeddings", "t-SNE 1", "t-SNE 2");
            plot_scatter(b, &a, Y, cls, M, names, counts, nl, tn);
        } else {
            report_missing(b, "No t-SNE map: %s", e.msg);
        }
        if (Xr != X) free(Xr);
    } else if (r->tsne) {
        report_missing(b, "No t-SNE map: fewer than 4 points.");
    }
    buf_puts(b, "</div>\n");
    free(comp), free(mean), free(names), free(counts), free(cls), free(color), free(cc), free(X), free(Y),
        free(idx);
}
