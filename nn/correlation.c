/* correlation: direct loops, one displacement at a time, so the innermost
 * loop runs over a contiguous row segment of both maps. */
#include "correlation.h"

#include <stddef.h>
#include <string.h>

#include "util.h"

/* Rows [lo, hi) of i with 0 <= i + d < n (and 0 <= i < n). */
static void corr_range(int *lo, int *hi, int n, int d) {
    *lo = d < 0 ? -d : 0;
    *hi = d > 0 ? n - d : n;
    if (*hi < *lo) *hi = *lo;
}

void correlation_forward(float *out, const float *fa, const float *fb, int B, int C, int H, int W, int D,
                         int dil, float scale) {
    ASSERT(D >= 1 && D % 2 == 1 && dil >= 1);
    int r = (D - 1) / 2;
    size_t HW = (size_t)H * W;
    memset(out, 0, (size_t)B * D * D * HW * sizeof *out);
    for (int b = 0; b < B; b++) {
        for (int k = 0; k < D * D; k++) {
            int dy = (k / D - r) * dil, dx = (k % D - r) * dil;
            int i0, i1, j0, j1;
            corr_range(&i0, &i1, H, dy);
            corr_range(&j0, &j1, W, dx);
            float *o = out + ((size_t)b * D * D + k) * HW;
            for (int c = 0; c < C; c++) {
                const float *a = fa + ((size_t)b * C + c) * HW;
                const float *f = fb + ((size_t)b * C + c) * HW;
                for (int i = i0; i < i1; i++) {
                    float *orow = o + (size_t)i * W;
                    const float *arow = a + (size_t)i * W;
                    const float *frow = f + (size_t)(i + dy) * W + dx;
                    for (int j = j0; j < j1; j++) orow[j] += arow[j] * frow[j];
                }
            }
            if (scale != 1.0f)
                for (size_t p = 0; p < HW; p++) o[p] *= scale;
        }
    }
}

void correlation_backward(float *dfa, float *dfb, const float *dout, const float *fa, const float *fb, int B,
                          int C, int H, int W, int D, int dil, float scale) {
    ASSERT(D >= 1 && D % 2 == 1 && dil >= 1);
    int r = (D - 1) / 2;
    size_t HW = (size_t)H * W;
    for (int b = 0; b < B; b++) {
        for (int k = 0; k < D * D; k++) {
            int dy = (k / D - r) * dil, dx = (k % D - r) * dil;
            int i0, i1, j0, j1;
            corr_range(&i0, &i1, H, dy);
            corr_range(&j0, &j1, W, dx);
            const float *g = dout + ((size_t)b * D * D + k) * HW;
            for (int c = 0; c < C; c++) {
                size_t pl = ((size_t)b * C + c) * HW;
                for (int i = i0; i < i1; i++) {
                    const float *grow = g + (size_t)i * W;
                    size_t ra = pl + (size_t)i * W, rb = pl + (size_t)(i + dy) * W + dx;
                    if (dfa)
                        for (int j = j0; j < j1; j++) dfa[ra + j] += scale * grow[j] * fb[rb + j];
                    if (dfb)
                        for (int j = j0; j < j1; j++) dfb[rb + j] += scale * grow[j] * fa[ra + j];
                }
            }
        }
    }
}
