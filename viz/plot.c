/* plot: see plot.h. Every chart is a <figure class="chart" data-figure=ID>
 * holding one <svg> (viewBox in pixels) and, for hover values, a
 * <div class="readout">; the report's script reads the svg's data-series
 * and data-axes attributes. Styling comes from the report's CSS classes. */
#include "plot.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 20 colours, distinguishable side by side; the first ten are the strong
 * ones, the next ten lighter variants. */
static const char *const palette[PLOT_COLORS] = {"#1f5fbf", "#e8731a", "#2a9d3a", "#d62f2f", "#8a57c2",
                                                 "#8c5a45", "#de6fb8", "#6b6b6b", "#a8a81e", "#17a5b8",
                                                 "#8db5ef", "#f5b073", "#8fd889", "#f29a97", "#c4acdf",
                                                 "#c49a8a", "#f4b6d6", "#383838", "#d6d67a", "#8fd8e2"};

const char *plot_color(int k) { return palette[((k % PLOT_COLORS) + PLOT_COLORS) % PLOT_COLORS]; }

PlotAxes plot_axes(const char *id, const char *title, const char *xlabel, const char *ylabel) {
    return (PlotAxes){.id = id,
                      .title = title,
                      .xlabel = xlabel,
                      .ylabel = ylabel,
                      .xmin = NAN,
                      .xmax = NAN,
                      .ymin = NAN,
                      .ymax = NAN,
                      .vline = NAN};
}

/* ---- numeric helpers ------------------------------------------------------- */

int plot_downsample(double *ox, double *oy, double *lo, double *hi, const double *x, const double *y, int n,
                    int m) {
    if (n <= m) {
        for (int i = 0; i < n; i++) ox[i] = x[i], oy[i] = lo[i] = hi[i] = y[i];
        return n;
    }
    for (int b = 0; b < m; b++) {
        long i0 = (long)b * n / m, i1 = (long)(b + 1) * n / m;
        double sx = 0, sy = 0, mn = INFINITY, mx = -INFINITY;
        int cy = 0;
        for (long i = i0; i < i1; i++) {
            sx += x[i];
            if (!isfinite(y[i])) continue;
            sy += y[i], cy++;
            mn = fmin(mn, y[i]), mx = fmax(mx, y[i]);
        }
        ox[b] = sx / (double)(i1 - i0);
        oy[b] = cy ? sy / cy : NAN;
        lo[b] = cy ? mn : NAN;
        hi[b] = cy ? mx : NAN;
    }
    return m;
}

long plot_histogram(double *counts, int nbins, double lo, double hi, const double *v, long n) {
    for (int k = 0; k < nbins; k++) counts[k] = 0;
    long counted = 0;
    double w = (hi - lo) / nbins;
    for (long i = 0; i < n; i++) {
        if (!(v[i] >= lo && v[i] <= hi)) continue;
        int k = w > 0 ? (int)((v[i] - lo) / w) : 0;
        if (k >= nbins) k = nbins - 1;
        counts[k]++;
        counted++;
    }
    return counted;
}

double plot_tick_step(double lo, double hi, int target) {
    double span = hi - lo;
    if (!(span > 0) || !isfinite(span)) return 1.0;
    double raw = span / target, p = pow(10.0, floor(log10(raw)));
    double m = raw / p;
    return (m <= 1.0 ? 1.0 : m <= 2.0 ? 2.0 : m <= 5.0 ? 5.0 : 10.0) * p;
}

/* ---- the frame: scales, axes, legend ---------------------------------------- */

typedef struct Frame {
    int W, H, ml, mr, mt, mb;
    double x0, x1, y0, y1; /* data limits (log10 for a log y) */
    int logy;
    int clip; /* clip-path id */
} Frame;

static double fx(const Frame *f, double x) {
    return f->ml + (x - f->x0) / (f->x1 - f->x0) * (f->W - f->ml - f->mr);
}

static double fy(const Frame *f, double y) {
    if (f->logy) y = y > 0 ? log10(y) : NAN;
    return f->H - f->mb - (y - f->y0) / (f->y1 - f->y0) * (f->H - f->mt - f->mb);
}

/* Widens [*lo, *hi] to a non-empty range; round = 1 snaps to ticks. */
static void fix_range(double *lo, double *hi, int round) {
    if (!isfinite(*lo) || !isfinite(*hi)) *lo = 0, *hi = 1;
    if (*hi <= *lo) {
        double d = fabs(*lo) > 0 ? 0.1 * fabs(*lo) : 1.0;
        *lo -= d, *hi += d;
    }
    if (round) {
        double st = plot_tick_step(*lo, *hi, 5);
        *lo = floor(*lo / st + 1e-9) * st;
        *hi = ceil(*hi / st - 1e-9) * st;
    }
}

static int legend_rows(const char *const *names, int nn, int width) {
    int rows = nn > 0, x = 0;
    for (int i = 0; i < nn; i++) {
        int w = 24 + 7 * (int)strlen(names[i]);
        if (x > 0 && x + w > width) rows++, x = 0;
        x += w;
    }
    return rows;
}

static void legend(Buf *b, const Frame *f, const char *const *names, const int *colors, const int *styles,
                   int nn) {
    int x = f->ml, y = 34, width = f->W - f->ml - f->mr;
    for (int i = 0; i < nn; i++) {
        int w = 24 + 7 * (int)strlen(names[i]);
        if (x > f->ml && x + w > f->ml + width) x = f->ml, y += 16;
        const char *c = colors[i] < 0 ? PLOT_GREY : plot_color(colors[i]);
        if (styles && styles[i] == PLOT_POINTS)
            buf_printf(b, "<circle cx=\"%d\" cy=\"%d\" r=\"4\" fill=\"%s\"/>", x + 8, y - 4, c);
        else
            buf_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"16\" height=\"%d\" fill=\"%s\"/>", x,
                       y - (styles ? 5 : 10), styles ? 3 : 10, c);
        buf_printf(b, "<text class=\"legend\" x=\"%d\" y=\"%d\">", x + 20, y);
        buf_esc(b, names[i]);
        buf_puts(b, "</text>");
        x += w;
    }
}

static void open_frame(Buf *b, Frame *f, const PlotAxes *a, int legend_n, const char *const *names,
                       int extra_w) {
    static int clip_ids;
    f->W = (a->width ? a->width : 520) + extra_w;
    f->H = a->height ? a->height : 300;
    f->ml = 64, f->mr = 16 + extra_w, f->mb = 44;
    f->mt = 26 + 16 * legend_rows(names, legend_n, f->W - f->ml - f->mr);
    f->clip = ++clip_ids;
    buf_puts(b, "<figure class=\"chart\" data-figure=\"");
    buf_esc(b, a->id ? a->id : "");
    buf_printf(b, "\"><svg viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\"", f->W, f->H, f->W,
               f->H);
}

/* After the svg's attributes: title, frame, grid and ticks, axis titles. */
static void axes(Buf *b, const Frame *f, const PlotAxes *a, int xticks) {
    buf_puts(b, "><title>");
    buf_esc(b, a->title ? a->title : "");
    buf_printf(b, "</title><text class=\"title\" x=\"%d\" y=\"17\">", f->ml);
    buf_esc(b, a->title ? a->title : "");
    buf_puts(b, "</text>");
    int px0 = f->ml, px1 = f->W - f->mr, py0 = f->mt, py1 = f->H - f->mb;
    buf_printf(b, "<clipPath id=\"clip%d\"><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/></clipPath>",
               f->clip, px0, py0, px1 - px0, py1 - py0);
    buf_printf(b, "<rect class=\"frame\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>", px0, py0, px1 - px0,
               py1 - py0);
    char s[32];
    double st = plot_tick_step(f->x0, f->x1, 6);
    for (double v = ceil(f->x0 / st - 1e-9) * st; xticks && v <= f->x1 + 1e-9 * st; v += st) {
        double p = fx(f, v);
        fmt_num(s, sizeof s, fabs(v) < 1e-9 * st ? 0 : v);
        buf_printf(b, "<line class=\"grid\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>", p, py0, p, py1);
        buf_printf(b, "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>", p,
                   py1 + 15, s);
    }
    {
        if (f->logy) {
            int d0 = (int)floor(f->y0), d1 = (int)ceil(f->y1), few = d1 - d0 <= 2;
            for (int d = d0; d <= d1; d++)
                for (int m = 1; m <= (few ? 5 : 1); m += (m == 1 ? 1 : 3)) {
                    double lv = d + log10((double)m);
                    if (lv < f->y0 - 1e-9 || lv > f->y1 + 1e-9) continue;
                    double p = fy(f, pow(10.0, lv));
                    fmt_num(s, sizeof s, pow(10.0, lv));
                    buf_printf(b, "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>", px0,
                               p, px1, p);
                    buf_printf(b, "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>",
                               px0 - 5, p + 4, s);
                }
        } else {
            st = plot_tick_step(f->y0, f->y1, 5);
            for (double v = ceil(f->y0 / st - 1e-9) * st; v <= f->y1 + 1e-9 * st; v += st) {
                double p = fy(f, v);
                fmt_num(s, sizeof s, fabs(v) < 1e-9 * st ? 0 : v);
                buf_printf(b, "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>", px0, p,
                           px1, p);
                buf_printf(b, "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>",
                           px0 - 5, p + 4, s);
            }
        }
    }
    buf_printf(b, "<text class=\"axis\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">", (px0 + px1) / 2,
               f->H - 8);
    buf_esc(b, a->xlabel ? a->xlabel : "");
    buf_printf(
        b, "</text><text class=\"axis\" transform=\"translate(14 %d) rotate(-90)\" text-anchor=\"middle\">",
        (py0 + py1) / 2);
    buf_esc(b, a->ylabel ? a->ylabel : "");
    buf_puts(b, "</text>");
    if (isfinite(a->vline) && a->vline >= f->x0 && a->vline <= f->x1) {
        double p = fx(f, a->vline);
        buf_printf(b, "<line class=\"marker\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>", p, py0, p, py1);
        int right = p > 0.5 * (px0 + px1); /* label on the side with room */
        buf_printf(b, "<text class=\"marker\" x=\"%.1f\" y=\"%d\" text-anchor=\"%s\">", right ? p - 4 : p + 4,
                   py0 + 14, right ? "end" : "start");
        buf_esc(b, a->vlabel ? a->vlabel : "");
        buf_puts(b, "</text>");
    }
}

static void close_frame(Buf *b, int readout) {
    buf_puts(b, readout ? "</svg><div class=\"readout\"></div></figure>\n" : "</svg></figure>\n");
}

/* data-series / data-axes for the hover script. */
static void hover_data(Buf *b, const Frame *f, const PlotAxes *a, const PlotSeries *s, int ns) {
    buf_puts(b, " data-series='[");
    int first = 1;
    for (int k = 0; k < ns; k++) {
        if (s[k].style == PLOT_POINTS) continue;
        buf_puts(b, first ? "{\"n\":" : ",{\"n\":");
        first = 0;
        buf_json_str(b, s[k].name ? s[k].name : "");
        buf_puts(b, ",\"x\":[");
        for (int i = 0; i < s[k].n; i++) {
            if (i) buf_puts(b, ",");
            buf_json_num(b, s[k].x[i]);
        }
        buf_puts(b, "],\"y\":[");
        for (int i = 0; i < s[k].n; i++) {
            if (i) buf_puts(b, ",");
            buf_json_num(b, s[k].y[i]);
        }
        buf_puts(b, "]}");
    }
    buf_printf(b, "]' data-axes='{\"x0\":%.9g,\"x1\":%.9g,\"px0\":%d,\"px1\":%d,\"xl\":", f->x0, f->x1, f->ml,
               f->W - f->mr);
    buf_json_str(b, a->xlabel ? a->xlabel : "x");
    buf_puts(b, "}'");
}

/* ---- charts ------------------------------------------------------------------ */

static void path_of(Buf *b, const Frame *f, const double *x, const double *y, int n) {
    int pen = 0;
    for (int i = 0; i < n; i++) {
        double py = fy(f, y[i]);
        if (!isfinite(py) || !isfinite(x[i])) {
            pen = 0;
            continue;
        }
        buf_printf(b, "%s%.1f %.1f", pen ? " L" : "M", fx(f, x[i]), py);
        pen = 1;
    }
}

void plot_lines(Buf *b, const PlotAxes *a, const PlotSeries *s, int ns) {
    Frame f;
    const char **names = xmalloc((size_t)(ns + 1) * sizeof *names);
    int *colors = xmalloc((size_t)(ns + 1) * sizeof *colors),
        *styles = xmalloc((size_t)(ns + 1) * sizeof *styles);
    int nn = 0;
    for (int k = 0; k < ns; k++)
        if (s[k].name && s[k].name[0])
            names[nn] = s[k].name, colors[nn] = s[k].color, styles[nn++] = s[k].style;
    open_frame(b, &f, a, nn, names, 0);
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            double ys[3] = {s[k].y[i], s[k].lo ? s[k].lo[i] : NAN, s[k].hi ? s[k].hi[i] : NAN};
            if (isfinite(s[k].x[i])) x0 = fmin(x0, s[k].x[i]), x1 = fmax(x1, s[k].x[i]);
            for (int t = 0; t < 3; t++) {
                double v = a->logy ? (ys[t] > 0 ? log10(ys[t]) : NAN) : ys[t];
                if (isfinite(v)) y0 = fmin(y0, v), y1 = fmax(y1, v);
            }
        }
    if (isfinite(a->xmin)) x0 = a->xmin;
    if (isfinite(a->xmax)) x1 = a->xmax;
    if (isfinite(a->ymin)) y0 = a->logy ? log10(a->ymin) : a->ymin;
    if (isfinite(a->ymax)) y1 = a->logy ? log10(a->ymax) : a->ymax;
    fix_range(&x0, &x1, 0);
    if (a->logy) {
        fix_range(&y0, &y1, 0);
        y0 = floor(y0 * 4) / 4, y1 = ceil(y1 * 4) / 4;
    } else {
        fix_range(&y0, &y1, !isfinite(a->ymin) || !isfinite(a->ymax));
    }
    f.x0 = x0, f.x1 = x1, f.y0 = y0, f.y1 = y1, f.logy = a->logy;
    hover_data(b, &f, a, s, ns);
    axes(b, &f, a, 1);
    buf_printf(b, "<g clip-path=\"url(#clip%d)\">", f.clip);
    for (int k = 0; k < ns; k++) {
        const PlotSeries *se = &s[k];
        const char *c = plot_color(se->color);
        if (se->lo && se->hi) { /* band: hi forward, lo back */
            buf_puts(b, "<path class=\"band\" d=\"");
            int pen = 0;
            for (int i = 0; i < se->n; i++) {
                if (!isfinite(fy(&f, se->hi[i]))) continue;
                buf_printf(b, "%s%.1f %.1f", pen ? " L" : "M", fx(&f, se->x[i]), fy(&f, se->hi[i]));
                pen = 1;
            }
            for (int i = se->n - 1; i >= 0; i--) {
                if (!isfinite(fy(&f, se->lo[i]))) continue;
                buf_printf(b, "%s%.1f %.1f", pen ? " L" : "M", fx(&f, se->x[i]), fy(&f, se->lo[i]));
                pen = 1;
            }
            buf_printf(b, " Z\" fill=\"%s\"/>", c);
        }
        if (se->style == PLOT_POINTS) {
            for (int i = 0; i < se->n; i++) {
                double py = fy(&f, se->y[i]);
                if (!isfinite(py)) continue;
                buf_printf(b, "<circle class=\"point\" cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"%s\"/>",
                           fx(&f, se->x[i]), py, c);
            }
            continue;
        }
        buf_printf(b, "<path class=\"line%s\" stroke=\"%s\" d=\"", se->style == PLOT_DASHED ? " dashed" : "",
                   c);
        path_of(b, &f, se->x, se->y, se->n);
        buf_puts(b, "\"/>");
    }
    buf_printf(b, "<line class=\"cursor\" x1=\"-10\" y1=\"%d\" x2=\"-10\" y2=\"%d\"/></g>", f.mt, f.H - f.mb);
    legend(b, &f, names, colors, styles, nn);
    close_frame(b, 1);
    free(names);
    free(colors);
    free(styles);
}

void plot_stacked(Buf *b, const PlotAxes *a, const double *x, int n, const double *const *ys,
                  const char *const *names, int nl) {
    Frame f;
    open_frame(b, &f, a, nl, names, 0);
    double *cum = xcalloc((size_t)(nl + 1) * (size_t)MAX(n, 1), sizeof *cum), top = 0;
    for (int k = 0; k < nl; k++)
        for (int i = 0; i < n; i++) {
            double v = isfinite(ys[k][i]) && ys[k][i] > 0 ? ys[k][i] : 0;
            cum[(size_t)(k + 1) * n + i] = cum[(size_t)k * n + i] + v;
            top = fmax(top, cum[(size_t)(k + 1) * n + i]);
        }
    f.x0 = n ? x[0] : 0, f.x1 = n ? x[n - 1] : 1, f.y0 = 0, f.y1 = top;
    fix_range(&f.x0, &f.x1, 0);
    fix_range(&f.y0, &f.y1, 1);
    f.logy = 0;
    PlotSeries *se = xcalloc((size_t)MAX(nl, 1), sizeof *se);
    for (int k = 0; k < nl; k++) se[k] = (PlotSeries){names[k], x, ys[k], NULL, NULL, n, k, PLOT_LINE};
    hover_data(b, &f, a, se, nl);
    axes(b, &f, a, 1);
    int *colors = xmalloc((size_t)MAX(nl, 1) * sizeof *colors);
    for (int k = 0; k < nl; k++) {
        colors[k] = k;
        buf_printf(b, "<path class=\"area\" fill=\"%s\" d=\"", plot_color(k));
        for (int i = 0; i < n; i++)
            buf_printf(b, "%s%.1f %.1f", i ? " L" : "M", fx(&f, x[i]), fy(&f, cum[(size_t)(k + 1) * n + i]));
        for (int i = n - 1; i >= 0; i--)
            buf_printf(b, " L%.1f %.1f", fx(&f, x[i]), fy(&f, cum[(size_t)k * n + i]));
        buf_puts(b, " Z\"/>");
    }
    buf_printf(b, "<line class=\"cursor\" x1=\"-10\" y1=\"%d\" x2=\"-10\" y2=\"%d\"/>", f.mt, f.H - f.mb);
    legend(b, &f, names, colors, NULL, nl);
    close_frame(b, 1);
    free(colors);
    free(se);
    free(cum);
}

/* Category axis: labels under the bands instead of numeric x ticks. */
static void category_labels(Buf *b, const Frame *f, const char *const *cats, int ncat) {
    double band = (double)(f->W - f->ml - f->mr) / ncat;
    for (int c = 0; c < ncat; c++) {
        buf_printf(b, "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">",
                   f->ml + band * (c + 0.5), f->H - f->mb + 15);
        buf_esc(b, cats[c]);
        buf_puts(b, "</text>");
    }
}

void plot_bars(Buf *b, const PlotAxes *a, const char *const *cats, int ncat, const double *const *vals,
               const char *const *names, int ns, int stacked) {
    Frame f;
    open_frame(b, &f, a, ns, names, 0);
    double top = 0;
    for (int c = 0; c < ncat; c++) {
        double sum = 0;
        for (int k = 0; k < ns; k++) {
            double v = isfinite(vals[k][c]) && vals[k][c] > 0 ? vals[k][c] : 0;
            sum += v;
            top = fmax(top, v);
        }
        if (stacked) top = fmax(top, sum);
    }
    f.x0 = 0, f.x1 = ncat, f.y0 = 0, f.y1 = top, f.logy = 0;
    fix_range(&f.y0, &f.y1, 1);
    axes(b, &f, a, 0);
    category_labels(b, &f, cats, ncat);
    double band = (double)(f.W - f.ml - f.mr) / ncat;
    int *colors = xmalloc((size_t)MAX(ns, 1) * sizeof *colors);
    for (int k = 0; k < ns; k++) colors[k] = k;
    char s[32];
    for (int c = 0; c < ncat; c++) {
        double base = 0;
        for (int k = 0; k < ns; k++) {
            double v = isfinite(vals[k][c]) && vals[k][c] > 0 ? vals[k][c] : 0;
            double w = stacked ? 0.6 * band : 0.8 * band / ns;
            double x = stacked ? f.ml + band * (c + 0.2) : f.ml + band * (c + 0.1) + w * k;
            double y1 = fy(&f, base + v), y0 = fy(&f, base);
            fmt_num(s, sizeof s, vals[k][c]);
            buf_printf(b,
                       "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                       "fill=\"%s\"><title>",
                       x, y1, w, y0 - y1, plot_color(k));
            buf_esc(b, cats[c]);
            buf_puts(b, ", ");
            buf_esc(b, names[k]);
            buf_printf(b, ": %s</title></rect>", s);
            if (stacked) base += v;
        }
    }
    legend(b, &f, names, colors, NULL, ns);
    close_frame(b, 0);
    free(colors);
}

void plot_hist(Buf *b, const PlotAxes *a, double lo, double hi, int nbins, const double *const *counts,
               const char *const *names, int ns) {
    Frame f;
    open_frame(b, &f, a, ns, names, 0);
    double top = 0;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < nbins; i++) top = fmax(top, counts[k][i]);
    f.x0 = lo, f.x1 = hi, f.y0 = 0, f.y1 = top, f.logy = 0;
    fix_range(&f.x0, &f.x1, 0);
    fix_range(&f.y0, &f.y1, 1);
    axes(b, &f, a, 1);
    int *colors = xmalloc((size_t)MAX(ns, 1) * sizeof *colors);
    double w = (f.x1 - f.x0) / nbins;
    for (int k = 0; k < ns; k++) {
        colors[k] = k;
        buf_printf(b, "<g class=\"hist\" fill=\"%s\" stroke=\"%s\">", plot_color(k), plot_color(k));
        for (int i = 0; i < nbins; i++) {
            if (counts[k][i] <= 0) continue;
            double x0 = fx(&f, f.x0 + i * w), x1 = fx(&f, f.x0 + (i + 1) * w), y = fy(&f, counts[k][i]);
            buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>", x0, y, x1 - x0,
                       fy(&f, 0) - y);
        }
        buf_puts(b, "</g>");
    }
    if (isfinite(a->vline)) { /* the marker again, over the bars */
        double p = fx(&f, a->vline);
        if (a->vline >= f.x0 && a->vline <= f.x1)
            buf_printf(b, "<line class=\"marker\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>", p, f.mt, p,
                       f.H - f.mb);
    }
    legend(b, &f, names, colors, NULL, ns);
    close_frame(b, 0);
    free(colors);
}

void plot_scatter(Buf *b, const PlotAxes *a, const float *xy, const int *cls, int n, const char *const *names,
                  const int *counts, int nl, const char *note) {
    Frame f;
    const int legend_w = 190;
    PlotAxes tall = *a;
    tall.height = MAX(a->height ? a->height : 300, 26 + 20 + 15 * nl + 44);
    a = &tall;
    open_frame(b, &f, a, 0, NULL, legend_w);
    f.ml = 44;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n; i++) {
        x0 = fmin(x0, xy[2 * i]), x1 = fmax(x1, xy[2 * i]);
        y0 = fmin(y0, xy[2 * i + 1]), y1 = fmax(y1, xy[2 * i + 1]);
    }
    fix_range(&x0, &x1, 0);
    fix_range(&y0, &y1, 0);
    double px = 0.03 * (x1 - x0), py = 0.03 * (y1 - y0);
    f.x0 = x0 - px, f.x1 = x1 + px, f.y0 = y0 - py, f.y1 = y1 + py, f.logy = 0;
    axes(b, &f, a, 1);
    /* grey first, then the classes: one path of dots per colour */
    for (int c = -1; c < nl; c++) {
        int any = 0;
        for (int i = 0; i < n; i++) {
            if (cls[i] != c) continue;
            if (!any)
                buf_printf(b, "<path class=\"dots\" data-class=\"%d\" stroke=\"%s\" d=\"", c,
                           c < 0 ? PLOT_GREY : plot_color(c));
            any = 1;
            buf_printf(b, "M%.1f %.1fh0", fx(&f, xy[2 * i]), fy(&f, xy[2 * i + 1]));
        }
        if (any) buf_puts(b, "\"/>");
    }
    int lx = f.W - legend_w + 14;
    for (int c = 0; c < nl; c++) {
        int y = f.mt + 12 + 15 * c;
        char shown[32];
        if (strlen(names[c]) > 22)
            snprintf(shown, sizeof shown, "%.19s...", names[c]);
        else
            snprintf(shown, sizeof shown, "%s", names[c]);
        buf_printf(
            b, "<circle cx=\"%d\" cy=\"%d\" r=\"4\" fill=\"%s\"/><text class=\"legend\" x=\"%d\" y=\"%d\">",
            lx, y - 4, plot_color(c), lx + 9, y);
        buf_esc(b, shown);
        buf_printf(b, " (%d)<title>", counts[c]);
        buf_esc(b, names[c]);
        buf_puts(b, "</title></text>");
    }
    buf_puts(b, "</svg>");
    if (note && note[0]) {
        buf_puts(b, "<figcaption>");
        buf_esc(b, note);
        buf_puts(b, "</figcaption>");
    }
    buf_puts(b, "</figure>\n");
}
