/* convblock_tiles: the AVX-512 micro-kernels of nn/convblock.c and
 * convblock_bwd.c (included by convblock_impl.h only, after PMAX is
 * defined; each file uses some of them): a forward tile of P pixels x V filter
 * vectors, a weight-gradient tile of KT taps x V filter vectors, an
 * input-gradient tile of P pixels x NV tap vectors, each keeping its
 * accumulators in registers, and their instances by filter vectors. See
 * convblock.c for the layouts. */
#ifndef SIAMESE_CONVBLOCK_TILES_H
#define SIAMESE_CONVBLOCK_TILES_H

#ifdef __AVX512F__
#include <immintrin.h>
#include <stddef.h>

#define KINLINE static inline __attribute__((always_inline))
#define KSHARED static __attribute__((unused)) /* each including file uses some */

/* c[j][0..16V) (j < np) = bias + sum over nr kernel rows of the tile's
 * pixels; bias NULL: start from c. w: wp at (first row, t = 0, f0). */
KINLINE void fwd_tile(const int P, const int V, float *c, size_t ldc, const float *const *pix, size_t koff,
                      const float *w, size_t ldw, const float *bias, int nr, int T, size_t rs, int np) {
    __m512 acc[PMAX][4];
    const float *a[PMAX];
#pragma GCC unroll 24
    for (int j = 0; j < P; j++) a[j] = pix[j] + koff;
    if (bias) {
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) {
            __m512 bv = _mm512_loadu_ps(bias + 16 * v);
#pragma GCC unroll 24
            for (int j = 0; j < P; j++) acc[j][v] = bv;
        }
    } else {
#pragma GCC unroll 24
        for (int j = 0; j < P; j++)
#pragma GCC unroll 4
            for (int v = 0; v < V; v++) acc[j][v] = _mm512_loadu_ps(c + j * ldc + 16 * v);
    }
    for (int r = 0; r < nr; r++) {
        for (int t = 0; t < T; t++) {
            __m512 wv[4];
#pragma GCC unroll 4
            for (int v = 0; v < V; v++) wv[v] = _mm512_loadu_ps(w + 16 * v);
            w += ldw;
#pragma GCC unroll 24
            for (int j = 0; j < P; j++) {
                __m512 x = _mm512_set1_ps(a[j][t]);
#pragma GCC unroll 4
                for (int v = 0; v < V; v++) acc[j][v] = _mm512_fmadd_ps(x, wv[v], acc[j][v]);
            }
        }
#pragma GCC unroll 24
        for (int j = 0; j < P; j++) a[j] += rs;
    }
#pragma GCC unroll 24
    for (int j = 0; j < P; j++)
        if (j < np)
#pragma GCC unroll 4
            for (int v = 0; v < V; v++) _mm512_storeu_ps(c + j * ldc + 16 * v, acc[j][v]);
}

/* dw[j][0..16V) += sum_{q < nq} pix[q][koff + j] * dc[q][0..16V), stored
 * for j >= skip only (the tile may overlap the previous one). */
KINLINE void dw_tile(const int KT, const int V, float *dw, size_t ldw, const float *const *pix, size_t koff,
                     const float *dc, size_t ldd, int nq, int skip) {
    __m512 acc[PMAX][4];
#pragma GCC unroll 24
    for (int j = 0; j < KT; j++)
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) acc[j][v] = _mm512_loadu_ps(dw + j * ldw + 16 * v);
    for (int q = 0; q < nq; q++) {
        const float *a = pix[q] + koff, *d = dc + (size_t)q * ldd;
        __m512 dv[4];
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) dv[v] = _mm512_loadu_ps(d + 16 * v);
#pragma GCC unroll 24
        for (int j = 0; j < KT; j++) {
            __m512 x = _mm512_set1_ps(a[j]);
#pragma GCC unroll 4
            for (int v = 0; v < V; v++) acc[j][v] = _mm512_fmadd_ps(x, dv[v], acc[j][v]);
        }
    }
#pragma GCC unroll 24
    for (int j = 0; j < KT; j++)
        if (j >= skip)
#pragma GCC unroll 4
            for (int v = 0; v < V; v++) _mm512_storeu_ps(dw + j * ldw + 16 * v, acc[j][v]);
}

/* din[j] + doff + 16v += sum_f dc[j][f] * wt[f][16v..] for pixels j < np
 * and NV tap vectors, the last one masked by tail. */
KINLINE void dx_tile(const int P, const int NV, const float *const *dinp, size_t doff, const float *dc, size_t ldd,
                     const float *wt, size_t ldt, int F, int np, __mmask16 tail) {
    __m512 acc[PMAX][5];
#pragma GCC unroll 24
    for (int j = 0; j < P; j++)
#pragma GCC unroll 5
        for (int v = 0; v < NV; v++) acc[j][v] = _mm512_setzero_ps();
    for (int f = 0; f < F; f++) {
        __m512 wv[5];
#pragma GCC unroll 5
        for (int v = 0; v < NV - 1; v++) wv[v] = _mm512_loadu_ps(wt + 16 * v);
        wv[NV - 1] = _mm512_maskz_loadu_ps(tail, wt + 16 * (NV - 1));
        wt += ldt;
#pragma GCC unroll 24
        for (int j = 0; j < P; j++) {
            __m512 x = _mm512_set1_ps(dc[j * ldd + f]);
#pragma GCC unroll 5
            for (int v = 0; v < NV; v++) acc[j][v] = _mm512_fmadd_ps(x, wv[v], acc[j][v]);
        }
    }
#pragma GCC unroll 24
    for (int j = 0; j < P; j++) {
        if (j >= np) break;
        float *d = (float *)dinp[j] + doff; /* din itself is writable */
#pragma GCC unroll 5
        for (int v = 0; v < NV - 1; v++)
            _mm512_storeu_ps(d + 16 * v, _mm512_add_ps(_mm512_loadu_ps(d + 16 * v), acc[j][v]));
        float *e = d + 16 * (NV - 1);
        _mm512_mask_storeu_ps(e, tail, _mm512_add_ps(_mm512_maskz_loadu_ps(tail, e), acc[j][NV - 1]));
    }
}

/* Instances: filter vectors V -> pixels per forward tile and taps per
 * weight tile, about 24 accumulators each. */
KSHARED const int FWD_P[5] = {0, 12, 12, 8, 6};
KSHARED const int DW_KT[5] = {0, 24, 13, 8, 6};
#define DX_P 5


KSHARED void fwd_tile_v(int V, float *c, size_t ldc, const float *const *pix, size_t koff, const float *w,
                          size_t ldw, const float *bias, int nr, int T, size_t rs, int np) {
    switch (V) {
    case 1: fwd_tile(12, 1, c, ldc, pix, koff, w, ldw, bias, nr, T, rs, np); break;
    case 2: fwd_tile(12, 2, c, ldc, pix, koff, w, ldw, bias, nr, T, rs, np); break;
    case 3: fwd_tile(8, 3, c, ldc, pix, koff, w, ldw, bias, nr, T, rs, np); break;
    default: fwd_tile(6, 4, c, ldc, pix, koff, w, ldw, bias, nr, T, rs, np); break;
    }
}

KSHARED void dw_tile_v(int V, float *dw, size_t ldw, const float *const *pix, size_t koff, const float *dc,
                         size_t ldd, int nq, int skip) {
    switch (V) {
    case 1: dw_tile(24, 1, dw, ldw, pix, koff, dc, ldd, nq, skip); break;
    case 2: dw_tile(13, 2, dw, ldw, pix, koff, dc, ldd, nq, skip); break;
    case 3: dw_tile(8, 3, dw, ldw, pix, koff, dc, ldd, nq, skip); break;
    default: dw_tile(6, 4, dw, ldw, pix, koff, dc, ldd, nq, skip); break;
    }
}

KSHARED void dx_tile_nv(int NV, const float *const *dinp, size_t doff, const float *dc, size_t ldd, const float *wt,
                          size_t ldt, int F, int np, __mmask16 tail) {
    switch (NV) {
    case 1: dx_tile(DX_P, 1, dinp, doff, dc, ldd, wt, ldt, F, np, tail); break;
    case 2: dx_tile(DX_P, 2, dinp, doff, dc, ldd, wt, ldt, F, np, tail); break;
    case 3: dx_tile(DX_P, 3, dinp, doff, dc, ldd, wt, ldt, F, np, tail); break;
    case 4: dx_tile(DX_P, 4, dinp, doff, dc, ldd, wt, ldt, F, np, tail); break;
    default: dx_tile(DX_P, 5, dinp, doff, dc, ldd, wt, ldt, F, np, tail); break;
    }
}
#endif /* __AVX512F__ */

#endif
