/* l2norm: row normalisation with double accumulation of the dot products. */
#include "l2norm.h"

#include <math.h>
#include <stddef.h>

void l2norm_forward(float *out, float *norms, const float *in, int B, int D) {
    for (int r = 0; r < B; r++) {
        const float *x = in + (size_t)r * D;
        float *y = out + (size_t)r * D;
        double ss = 0.0;
        for (int j = 0; j < D; j++) ss += (double)x[j] * x[j];
        float n = (float)sqrt(ss);
        norms[r] = n; /* the backward's clamp test sees the same float */
        double inv = 1.0 / (double)(n < L2NORM_EPS ? L2NORM_EPS : n);
        for (int j = 0; j < D; j++) y[j] = (float)(x[j] * inv);
    }
}

void l2norm_backward(float *din, const float *dout, const float *out, const float *norms, int B, int D) {
    for (int r = 0; r < B; r++) {
        const float *g = dout + (size_t)r * D;
        const float *y = out + (size_t)r * D;
        float *dx = din + (size_t)r * D;
        double n = norms[r];
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
