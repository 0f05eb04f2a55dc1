/* l2norm: row normalisation with double accumulation of the dot products,
 * rows split over the pool. */
#include "l2norm.h"

#include <math.h>
#include <stddef.h>

#include "parallel.h"

typedef struct Norm {
    float *out, *norms;
    const float *in, *dout, *y, *cnorms;
    int D;
} Norm;

static void norm_rows(void *p, size_t lo, size_t hi) {
    const Norm *q = p;
    int D = q->D;
    for (size_t r = lo; r < hi; r++) {
        const float *x = q->in + r * D;
        float *y = q->out + r * D;
        double ss = 0.0;
        for (int j = 0; j < D; j++) ss += (double)x[j] * x[j];
        float n = (float)sqrt(ss);
        q->norms[r] = n; /* the backward's clamp test sees the same float */
        double inv = 1.0 / (double)(n < L2NORM_EPS ? L2NORM_EPS : n);
        for (int j = 0; j < D; j++) y[j] = (float)(x[j] * inv);
    }
}

static void norm_grad_rows(void *p, size_t lo, size_t hi) {
    const Norm *q = p;
    int D = q->D;
    for (size_t r = lo; r < hi; r++) {
        const float *g = q->dout + r * D;
        const float *y = q->y + r * D;
        float *dx = q->out + r * D;
        double n = q->cnorms[r];
        if (n < L2NORM_EPS) { /* clamp_min passes no gradient to the norm */
            for (int j = 0; j < D; j++) dx[j] = (float)(g[j] / (double)L2NORM_EPS);
            continue;
        }
        double dot = 0.0;
        for (int j = 0; j < D; j++) dot += (double)y[j] * g[j];
        double inv = 1.0 / n;
        for (int j = 0; j < D; j++) dx[j] = (float)((g[j] - y[j] * dot) * inv);
    }
}

static size_t grain(int D) { return MAX((size_t)1, PARALLEL_GRAIN / 4 / (size_t)(D > 0 ? D : 1)); }

void l2norm_forward(float *out, float *norms, const float *in, int B, int D) {
    Norm q = {out, norms, in, NULL, NULL, NULL, D};
    parallel_for((size_t)B, grain(D), norm_rows, &q);
}

void l2norm_backward(float *din, const float *dout, const float *out, const float *norms, int B, int D) {
    Norm q = {din, NULL, NULL, dout, out, norms, D};
    parallel_for((size_t)B, grain(D), norm_grad_rows, &q);
}
