/* plot: charts as inline SVG for the HTML report: lines (with an optional
 * min-max band and hover values), stacked areas, bars, histograms and
 * scatter maps, each with axes, ticks at round numbers, axis titles and a
 * legend. Plus the numeric helpers they rest on (downsampling for drawing,
 * histogram counts, round tick steps). Output goes to a Buf; no files. */
#ifndef SIAMESE_PLOT_H
#define SIAMESE_PLOT_H

#include <stdint.h>

#include "html.h"

#define PLOT_COLORS 20
/* Colour k of the palette ("#rrggbb"); k wraps around. */
const char *plot_color(int k);
#define PLOT_GREY "#b8b8b8"

enum { PLOT_LINE, PLOT_DASHED, PLOT_POINTS };

typedef struct PlotSeries {
    const char *name;
    const double *x, *y;   /* n points; a NaN y leaves a gap */
    const double *lo, *hi; /* optional band drawn under the line (NULL) */
    int n;
    int color; /* palette index */
    int style; /* PLOT_LINE, PLOT_DASHED, PLOT_POINTS */
} PlotSeries;

typedef struct PlotAxes {
    const char *id;    /* data-figure attribute: what tests query */
    const char *title; /* above the chart */
    const char *xlabel, *ylabel;
    int logy;                      /* log10 y axis (values <= 0 are left out) */
    double xmin, xmax, ymin, ymax; /* NaN: from the data */
    double vline;                  /* NaN or an x for a marked vertical line */
    const char *vlabel;            /* its label */
    int width, height;             /* 0: 520 x 300 */
} PlotAxes;

/* Axes with every field unset (NaN limits, no line, default size). */
PlotAxes plot_axes(const char *id, const char *title, const char *xlabel, const char *ylabel);

/* Line chart; hovering shows the nearest value of every series. */
void plot_lines(Buf *b, const PlotAxes *a, const PlotSeries *s, int ns);

/* Stacked areas: layer k's thickness at x[i] is ys[k][i] (>= 0). */
void plot_stacked(Buf *b, const PlotAxes *a, const double *x, int n, const double *const *ys,
                  const char *const *names, int nl);

/* Vertical bars for ncat categories: ns series, side by side or stacked. */
void plot_bars(Buf *b, const PlotAxes *a, const char *const *cats, int ncat, const double *const *vals,
               const char *const *names, int ns, int stacked);

/* Histograms over the same nbins equal bins of [lo, hi], overlaid. */
void plot_hist(Buf *b, const PlotAxes *a, double lo, double hi, int nbins, const double *const *counts,
               const char *const *names, int ns);

/* Scatter map of n points xy (n, 2): cls[i] is a legend entry (palette
 * colour) or -1 (grey). Legend: names (nl) with counts; note below it. */
void plot_scatter(Buf *b, const PlotAxes *a, const float *xy, const int *cls, int n, const char *const *names,
                  const int *counts, int nl, const char *note);

/* ---- numeric helpers ------------------------------------------------------- */

/* Bucket means for drawing n points in at most m: returns the number of
 * buckets written (n if n <= m: a copy, lo = hi = y); bucket b covers
 * points [b n / m, (b + 1) n / m) and gets the mean x, mean y and the min
 * and max y of its finite values (NaN if it has none). */
int plot_downsample(double *ox, double *oy, double *lo, double *hi, const double *x, const double *y, int n,
                    int m);

/* counts[k] = number of v in bin k of nbins equal bins of [lo, hi]; a value
 * equal to hi goes to the last bin; values outside [lo, hi] and NaN are not
 * counted. Returns the number counted. */
long plot_histogram(double *counts, int nbins, double lo, double hi, const double *v, long n);

/* The round tick step (1, 2 or 5 times a power of ten) giving at most about
 * `target` intervals over [lo, hi]. */
double plot_tick_step(double lo, double hi, int target);

#endif
