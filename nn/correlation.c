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
 *   segments of both maps. */
#include "correlation.h"

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

size_t correlation_workspace_floats(int H, int W, int D, int dil) {
    size_t HW = (size_t)H * W;
    return corr_gemm(H, W, D, dil) ? (size_t)parallel_threads() * HW * HW : 0;
}

typedef struct Corr {
    float *out, *dfa, *dfb, *ws;
    const float *fa, *fb, *dout;
    int C, H, W, D, dil;
    float scale;
} Corr;

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

static void corr_forward_image(void *p, int b, int tid) {
    const Corr *c = p;
    int C = c->C, W = c->W, DD = c->D * c->D;
    size_t HW = (size_t)c->H * W;
    const float *fa = c->fa + (size_t)b * C * HW, *fb = c->fb + (size_t)b * C * HW;
    float *out = c->out + (size_t)b * DD * HW;
    memset(out, 0, (size_t)DD * HW * sizeof *out);
    if (corr_gemm(c->H, W, c->D, c->dil)) {
        float *g = c->ws + (size_t)tid * HW * HW; /* g(p, q) = <fa(:, p), fb(:, q)> */
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

static void corr_backward_image(void *p, int b, int tid) {
    const Corr *c = p;
    int C = c->C, W = c->W, DD = c->D * c->D;
    size_t HW = (size_t)c->H * W, off = (size_t)b * C * HW;
    const float *fa = c->fa + off, *fb = c->fb + off, *dout = c->dout + (size_t)b * DD * HW;
    float *dfa = c->dfa ? c->dfa + off : NULL, *dfb = c->dfb ? c->dfb + off : NULL;
    if (corr_gemm(c->H, W, c->D, c->dil)) {
        float *dg = c->ws + (size_t)tid * HW * HW; /* dg(p, q) = scale * dout(k(q - p), p) */
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

void correlation_forward(float *out, const float *fa, const float *fb, int B, int C, int H, int W, int D,
                         int dil, float scale, float *ws) {
    ASSERT(D >= 1 && D % 2 == 1 && dil >= 1);
    Corr c = {
        .out = out, .ws = ws, .fa = fa, .fb = fb, .C = C, .H = H, .W = W, .D = D, .dil = dil, .scale = scale};
    parallel_run(B, corr_forward_image, &c);
}

void correlation_backward(float *dfa, float *dfb, const float *dout, const float *fa, const float *fb, int B,
                          int C, int H, int W, int D, int dil, float scale, float *ws) {
    ASSERT(D >= 1 && D % 2 == 1 && dil >= 1);
    if (!dfa && !dfb) return;
    Corr c = {.dfa = dfa,
              .dfb = dfb,
              .ws = ws,
              .fa = fa,
              .fb = fb,
              .dout = dout,
              .C = C,
              .H = H,
              .W = W,
              .D = D,
              .dil = dil,
              .scale = scale};
    parallel_run(B, corr_backward_image, &c);
}
