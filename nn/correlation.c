/* correlation: one chunk of the pool per image (each image's outputs and
 * input gradients are computed whole by one chunk, so the bits do not
 * depend on the thread count or on the other images of the batch). Two
 * forms per image:
 * - GEMM, when the window is about as large as the map (dil = 1 and
 *   H*W <= 2*D*D; co-segmentation's windows cover the whole map): the Gram
 *   matrix G (HW, HW) = fa^T fb of all position pairs in one sgemm, then
 *   out(k, p) = scale * G(p, p + d_k); backward scatters dout into dG and
 *   takes dfa += fb dG^T and dfb += fa dG, two more sgemms.
 * - direct loops otherwise, one displacement at a time over contiguous row
 *   segments of both maps.
 * CORR_COSINE normalises both images' maps into the thread's workspace
 * first (the backward normalises them again and takes the gradient through
 * the normalisation, as l2norm's); CORR_MAX takes each position's largest
 * value over the displacements inside the map after the D*D channels, and
 * its backward adds dout of the max to the first largest displacement's
 * dout (a copy in the workspace) before the usual backward. */
#include "correlation.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "blas.h"
#include "parallel.h"
#include "util.h"

/* Rows [lo, hi) of i with 0 <= i + d < n (and 0 <= i < n). */
static void corr_range(int *lo, int *hi, int n, int d) {
    *lo = d < 0 ? -d : 0;
    *hi = d > 0 ? n - d : n;
    if (*hi < *lo) *hi = *lo;
}

static int corr_gemm(int H, int W, int D, int dil) { return dil == 1 && (size_t)H * W <= 2 * (size_t)D * D; }

int correlation_channels(int D, int flags) { return D * D + (flags & CORR_MAX ? 1 : 0); }

/* One thread's workspace, offsets in floats: the Gram matrix g (GEMM form);
 * with CORR_COSINE the normalised maps na, nb, their norms ra, rb and the
 * gradients dna, dnb; with CORR_MAX dd, dout of the D*D channels, and the
 * max's displacements arg (ints) and values best. */
typedef struct CorrWs {
    size_t g, na, nb, ra, rb, dna, dnb, dd, arg, best, total;
} CorrWs;

static CorrWs corr_ws(int C, int H, int W, int D, int dil, int flags) {
    size_t HW = (size_t)H * W, CHW = (size_t)C * HW, n = 0;
    CorrWs w;
    w.g = n, n += corr_gemm(H, W, D, dil) ? HW * HW : 0;
    int cos = (flags & CORR_COSINE) != 0;
    w.na = n, n += cos ? CHW : 0;
    w.nb = n, n += cos ? CHW : 0;
    w.ra = n, n += cos ? HW : 0;
    w.rb = n, n += cos ? HW : 0;
    w.dna = n, n += cos ? CHW : 0;
    w.dnb = n, n += cos ? CHW : 0;
    w.dd = n, n += flags & CORR_MAX ? (size_t)D * D * HW : 0;
    w.arg = n, n += flags & CORR_MAX ? HW : 0; /* ints */
    w.best = n, n += flags & CORR_MAX ? HW : 0;
    w.total = n;
    return w;
}

size_t correlation_workspace_floats(int C, int H, int W, int D, int dil, int flags) {
    return (size_t)parallel_threads() * corr_ws(C, H, W, D, dil, flags).total;
}

typedef struct Corr {
    float *out, *dfa, *dfb, *ws;
    const float *fa, *fb, *dout, *fwd;
    int C, H, W, D, dil, flags;
    float scale;
    CorrWs lay;
} Corr;

/* Positions per block of the normalisation's sums (double, on the stack). */
#define CORR_PBLOCK 64

/* y (C, HW) = x / max(||x(:, p)||, eps) per position p; r (HW) the norms.
 * Each position's sum of squares runs over the channels in order, a block
 * of positions side by side (the loops vectorise across positions). */
static void corr_normalise(float *y, float *r, const float *x, int C, size_t HW) {
    double ss[CORR_PBLOCK], inv[CORR_PBLOCK];
    for (size_t p0 = 0; p0 < HW; p0 += CORR_PBLOCK) {
        size_t n = MIN((size_t)CORR_PBLOCK, HW - p0);
        for (size_t p = 0; p < n; p++) ss[p] = 0.0;
        for (int ch = 0; ch < C; ch++) {
            const float *xc = x + ch * HW + p0;
            for (size_t p = 0; p < n; p++) ss[p] += (double)xc[p] * xc[p];
        }
        for (size_t p = 0; p < n; p++) {
            float nr = (float)sqrt(ss[p]);
            r[p0 + p] = nr;
            inv[p] = 1.0 / (double)(nr < CORR_EPS ? CORR_EPS : nr);
        }
        for (int ch = 0; ch < C; ch++) {
            const float *xc = x + ch * HW + p0;
            float *yc = y + ch * HW + p0;
            for (size_t p = 0; p < n; p++) yc[p] = (float)(xc[p] * inv[p]);
        }
    }
}

/* dx (C, HW) += the gradient through corr_normalise given dy of y (each
 * position's dot product over the channels in order, as above). */
static void corr_normalise_grad(float *dx, const float *dy, const float *y, const float *r, int C,
                                size_t HW) {
    double dot[CORR_PBLOCK];
    for (size_t p0 = 0; p0 < HW; p0 += CORR_PBLOCK) {
        size_t n = MIN((size_t)CORR_PBLOCK, HW - p0);
        for (size_t p = 0; p < n; p++) dot[p] = 0.0;
        for (int ch = 0; ch < C; ch++) {
            const float *yc = y + ch * HW + p0, *dc = dy + ch * HW + p0;
            for (size_t p = 0; p < n; p++) dot[p] += (double)yc[p] * dc[p];
        }
        for (int ch = 0; ch < C; ch++) {
            const float *yc = y + ch * HW + p0, *dc = dy + ch * HW + p0;
            float *gc = dx + ch * HW + p0;
            const float *rc = r + p0;
            for (size_t p = 0; p < n; p++) {
                double nr = rc[p];
                gc[p] += nr < CORR_EPS ? (float)(dc[p] / (double)CORR_EPS)
                                       : (float)((dc[p] - yc[p] * dot[p]) / nr);
            }
        }
    }
}

/* Displacement k = (dy, dx) of the window and its valid rows [i0, i1) and
 * columns [j0, j1). */
typedef struct Disp {
    int dy, dx, i0, i1, j0, j1;
} Disp;

static Disp corr_disp(const Corr *c, int k) {
    int r = (c->D - 1) / 2;
    Disp d = {(k / c->D - r) * c->dil, (k % c->D - r) * c->dil, 0, 0, 0, 0};
    corr_range(&d.i0, &d.i1, c->H, d.dy);
    corr_range(&d.j0, &d.j1, c->W, d.dx);
    return d;
}

/* arg (HW): each position's displacement of its largest value in out
 * (D*D, HW) among the displacements inside the map (the first of equal
 * ones; the zero displacement is always inside), and best (HW) that value.
 * The displacements are visited in order, each over its valid rows. */
static void corr_argmax(int *arg, float *best, const Corr *c, const float *out) {
    size_t HW = (size_t)c->H * c->W;
    int W = c->W;
    for (size_t q = 0; q < HW; q++) arg[q] = -1, best[q] = 0.0f;
    for (int k = 0; k < c->D * c->D; k++) {
        Disp d = corr_disp(c, k);
        const float *o = out + (size_t)k * HW;
        for (int i = d.i0; i < d.i1; i++)
            for (int j = d.j0; j < d.j1; j++) {
                size_t q = (size_t)i * W + j;
                int take = arg[q] < 0 || o[q] > best[q];
                best[q] = take ? o[q] : best[q];
                arg[q] = take ? k : arg[q];
            }
    }
}

/* out (D*D, HW), zeroed, of one image's (normalised) maps fa, fb. */
static void corr_forward_core(const Corr *c, float *out, const float *fa, const float *fb, float *ws) {
    int C = c->C, W = c->W;
    size_t HW = (size_t)c->H * W;
    if (corr_gemm(c->H, W, c->D, c->dil)) {
        float *g = ws + c->lay.g; /* g(p, q) = <fa(:, p), fb(:, q)> */
        blas_sgemm(1, 0, (int)HW, (int)HW, C, 1.0f, fa, (int)HW, fb, (int)HW, 0.0f, g, (int)HW);
        for (int k = 0; k < c->D * c->D; k++) {
            Disp d = corr_disp(c, k);
            int dy = d.dy, dx = d.dx, i0 = d.i0, i1 = d.i1, j0 = d.j0, j1 = d.j1;
            float *o = out + (size_t)k * HW;
            for (int i = i0; i < i1; i++)
                for (int j = j0; j < j1; j++) {
                    size_t pa = (size_t)i * W + j, q = (size_t)(i + dy) * W + (size_t)(j + dx);
                    o[pa] = c->scale * g[pa * HW + q];
                }
        }
        return;
    }
    for (int k = 0; k < c->D * c->D; k++) {
        Disp d = corr_disp(c, k);
        int dy = d.dy, dx = d.dx, i0 = d.i0, i1 = d.i1, j0 = d.j0, j1 = d.j1;
        float *o = out + (size_t)k * HW;
        for (int ch = 0; ch < C; ch++) {
            const float *a = fa + (size_t)ch * HW, *f = fb + (size_t)ch * HW;
            for (int i = i0; i < i1; i++) {
                float *orow = o + (size_t)i * W;
                const float *arow = a + (size_t)i * W, *frow = f + (size_t)(i + dy) * W + dx;
                for (int j = j0; j < j1; j++) orow[j] += arow[j] * frow[j];
            }
        }
        if (c->scale != 1.0f)
            for (size_t q = 0; q < HW; q++) o[q] *= c->scale;
    }
}

static void corr_forward_image(void *p, int b, int tid) {
    const Corr *c = p;
    int C = c->C, DD = c->D * c->D;
    size_t HW = (size_t)c->H * c->W;
    const float *fa = c->fa + (size_t)b * C * HW, *fb = c->fb + (size_t)b * C * HW;
    float *out = c->out + (size_t)b * correlation_channels(c->D, c->flags) * HW;
    float *ws = c->ws + (size_t)tid * c->lay.total;
    if (c->flags & CORR_COSINE) {
        corr_normalise(ws + c->lay.na, ws + c->lay.ra, fa, C, HW);
        corr_normalise(ws + c->lay.nb, ws + c->lay.rb, fb, C, HW);
        fa = ws + c->lay.na, fb = ws + c->lay.nb;
    }
    memset(out, 0, (size_t)DD * HW * sizeof *out);
    corr_forward_core(c, out, fa, fb, ws);
    if (c->flags & CORR_MAX) corr_argmax((int *)(void *)(ws + c->lay.arg), out + (size_t)DD * HW, c, out);
}

/* dfa, dfb (C, HW) += the gradient of one image's (normalised) maps fa, fb
 * given dout (D*D, HW); either may be NULL. */
static void corr_backward_core(const Corr *c, float *dfa, float *dfb, const float *dout, const float *fa,
                               const float *fb, float *ws) {
    int C = c->C, W = c->W;
    size_t HW = (size_t)c->H * W;
    if (corr_gemm(c->H, W, c->D, c->dil)) {
        float *dg = ws + c->lay.g; /* dg(p, q) = scale * dout(k(q - p), p) */
        memset(dg, 0, HW * HW * sizeof *dg);
        for (int k = 0; k < c->D * c->D; k++) {
            Disp d = corr_disp(c, k);
            int dy = d.dy, dx = d.dx, i0 = d.i0, i1 = d.i1, j0 = d.j0, j1 = d.j1;
            const float *g = dout + (size_t)k * HW;
            for (int i = i0; i < i1; i++)
                for (int j = j0; j < j1; j++) {
                    size_t pa = (size_t)i * W + j, q = (size_t)(i + dy) * W + (size_t)(j + dx);
                    dg[pa * HW + q] = c->scale * g[pa];
                }
        }
        if (dfa) blas_sgemm(0, 1, C, (int)HW, (int)HW, 1.0f, fb, (int)HW, dg, (int)HW, 1.0f, dfa, (int)HW);
        if (dfb) blas_sgemm(0, 0, C, (int)HW, (int)HW, 1.0f, fa, (int)HW, dg, (int)HW, 1.0f, dfb, (int)HW);
        return;
    }
    for (int k = 0; k < c->D * c->D; k++) {
        Disp d = corr_disp(c, k);
        int dy = d.dy, dx = d.dx, i0 = d.i0, i1 = d.i1, j0 = d.j0, j1 = d.j1;
        const float *g = dout + (size_t)k * HW;
        for (int ch = 0; ch < C; ch++) {
            size_t pl = (size_t)ch * HW;
            for (int i = i0; i < i1; i++) {
                const float *grow = g + (size_t)i * W;
                size_t ra = pl + (size_t)i * W, rb = pl + (size_t)(i + dy) * W + dx;
                if (dfa)
                    for (int j = j0; j < j1; j++) dfa[ra + j] += c->scale * grow[j] * fb[rb + j];
                if (dfb)
                    for (int j = j0; j < j1; j++) dfb[rb + j] += c->scale * grow[j] * fa[ra + j];
            }
        }
    }
}

static void corr_backward_image(void *p, int b, int tid) {
    const Corr *c = p;
    int C = c->C, DD = c->D * c->D, OC = correlation_channels(c->D, c->flags);
    size_t HW = (size_t)c->H * c->W, off = (size_t)b * C * HW, CHW = (size_t)C * HW;
    const float *fa = c->fa + off, *fb = c->fb + off, *dout = c->dout + (size_t)b * OC * HW;
    float *dfa = c->dfa ? c->dfa + off : NULL, *dfb = c->dfb ? c->dfb + off : NULL;
    float *ws = c->ws + (size_t)tid * c->lay.total;
    if (c->flags & CORR_MAX) { /* the max's dout goes to its displacement */
        const float *out = c->fwd + (size_t)b * OC * HW;
        float *dd = ws + c->lay.dd;
        int *arg = (int *)(void *)(ws + c->lay.arg);
        const float *dm = dout + (size_t)DD * HW;
        memcpy(dd, dout, (size_t)DD * HW * sizeof *dd);
        corr_argmax(arg, ws + c->lay.best, c, out);
        for (size_t q = 0; q < HW; q++) dd[(size_t)arg[q] * HW + q] += dm[q];
        dout = dd;
    }
    if (!(c->flags & CORR_COSINE)) {
        corr_backward_core(c, dfa, dfb, dout, fa, fb, ws);
        return;
    }
    float *na = ws + c->lay.na, *nb = ws + c->lay.nb, *ra = ws + c->lay.ra, *rb = ws + c->lay.rb;
    float *dna = ws + c->lay.dna, *dnb = ws + c->lay.dnb;
    corr_normalise(na, ra, fa, C, HW);
    corr_normalise(nb, rb, fb, C, HW);
    memset(dna, 0, CHW * sizeof *dna), memset(dnb, 0, CHW * sizeof *dnb);
    corr_backward_core(c, dfa ? dna : NULL, dfb ? dnb : NULL, dout, na, nb, ws);
    if (dfa) corr_normalise_grad(dfa, dna, na, ra, C, HW);
    if (dfb) corr_normalise_grad(dfb, dnb, nb, rb, C, HW);
}

/* The shared part of both calls' job. */
static Corr corr_job(const float *fa, const float *fb, int C, int H, int W, int D, int dil, float scale,
                     int flags, float *ws) {
    ASSERT(D >= 1 && D % 2 == 1 && dil >= 1);
    Corr c = {.ws = ws, .fa = fa, .fb = fb, .C = C, .H = H, .W = W, .D = D, .dil = dil, .flags = flags};
    c.scale = scale, c.lay = corr_ws(C, H, W, D, dil, flags);
    return c;
}

void correlation_forward(float *out, const float *fa, const float *fb, int B, int C, int H, int W, int D,
                         int dil, float scale, int flags, float *ws) {
    Corr c = corr_job(fa, fb, C, H, W, D, dil, scale, flags, ws);
    c.out = out;
    parallel_run(B, corr_forward_image, &c);
}

void correlation_backward(float *dfa, float *dfb, const float *dout, const float *out, const float *fa,
                          const float *fb, int B, int C, int H, int W, int D, int dil, float scale, int flags,
                          float *ws) {
    ASSERT(out || !(flags & CORR_MAX));
    if (!dfa && !dfb) return;
    Corr c = corr_job(fa, fb, C, H, W, D, dil, scale, flags, ws);
    c.dfa = dfa, c.dfb = dfb, c.dout = dout, c.fwd = out;
    parallel_run(B, corr_backward_image, &c);
}
