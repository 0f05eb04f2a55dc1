/* convblock: see convblock.h. The convolution is an implicit GEMM over
 * pixels q, filters f and taps k = (r, t): kernel row r < K and t < K*C,
 * the run of K*C floats that one kernel row covers in an NHWC input row, so
 *     conv[q][f] = b[f] + sum_{r,t} in[pix(q) + r*W*C + t] * wp[r][t][f].
 * Three micro-kernels (AVX-512, F in vectors of 16, the input broadcast):
 *   forward   a tile of P pixels x V filter vectors, reduction over (r, t);
 *   weights   dwp[r][t][f] += sum_q in[pix(q) + ...] * dconv[q][f], a tile
 *             of KT taps x V filter vectors, reduction over pixels;
 *   input     din[pix(q) + r*W*C + t] += sum_f dconv[q][f] * wt[f][r][t],
 *             a tile of P pixels x NV tap vectors whose epilogue adds
 *             straight into din (col2im fused, no column buffer).
 * The convolution output of a few images at a time lives in a small buffer
 * (cb, cache-resident); the epilogue pools it into the block output and the
 * backward expands the pooled gradient back into it. */
#include "convblock.h"

#include <math.h>
#include <string.h>

#include "util.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#define CB_TARGET 32768 /* floats of conv output per forward chunk */
#define QB_TARGET 6144  /* floats of dconv per weight-gradient pixel block */
#define PMAX 24         /* largest pixel tile: slack rows after cb */

typedef struct Geo {
    int C, H, W, F, K, S, pool, nchw;
    int Ho, Wo, Hp, Wp;
    int R, T;  /* taps: R kernel rows of T = K*C contiguous input floats */
    size_t rs; /* input row stride, floats: W*C */
    size_t HWC, KKC, HoWo, HpWp;
    size_t nqi; /* pixels per image in the pixel list (pool: 4 per window) */
    int nimg;   /* images per forward chunk */
    int qb;   /* pixels per weight-gradient block */
} Geo;

static Geo geo(int C, int H, int W, int F, int K, int S, int pool, int nchw) {
    Geo g;
    memset(&g, 0, sizeof g);
    ASSERT(C > 0 && F > 0 && K > 0 && S > 0 && H >= K && W >= K);
    g.C = C, g.H = H, g.W = W, g.F = F, g.K = K, g.S = S, g.pool = pool ? 1 : 0, g.nchw = nchw;
    g.Ho = (H - K) / S + 1, g.Wo = (W - K) / S + 1;
    g.Hp = pool ? g.Ho / 2 : g.Ho, g.Wp = pool ? g.Wo / 2 : g.Wo;
    ASSERT(g.Hp > 0 && g.Wp > 0);
    g.R = K, g.T = K * C, g.rs = (size_t)W * C;
    g.HWC = (size_t)H * W * C, g.KKC = (size_t)K * K * C;
    g.HoWo = (size_t)g.Ho * g.Wo, g.HpWp = (size_t)g.Hp * g.Wp;
    g.nqi = pool ? 4 * g.HpWp : g.HoWo;
    size_t per = g.nqi * (size_t)F;
    g.nimg = per >= CB_TARGET ? 1 : (int)(CB_TARGET / per);
    g.qb = MAX(PMAX, QB_TARGET / F);
    return g;
}

/* Workspace layout, floats. Pointer arrays are stored as pointers in the
 * float block (64-byte aligned, never read as floats). */
typedef struct Ws {
    float *pack;  /* (KKC, F) wp or (F, KKC) wt */
    float *dwp;   /* (KKC, F) weight gradient, packed */
    float *cb;    /* (nimg*nqi + PMAX, F) conv output / its gradient */
    float *tmp;   /* (HpWp + 1, F) NCHW <-> NHWC, then bias sums */
    float *patch; /* (qb + PMAX, KKC) per-pixel patches for short tap runs */
    double *dbs;  /* (F) bias gradient sums */
    const float **pix; /* (nimg*nqi + PMAX) input pixel pointers */
    const float **dinp; /* (nqi + PMAX) input-gradient pixel pointers (written through) */
} Ws;

static size_t ws_layout(Ws *w, float *base, const Geo *g) {
    size_t off = 0, F = (size_t)g->F, nq = (size_t)g->nimg * g->nqi;
#define WS_TAKE(field, type, n)                                                                                   \
    do {                                                                                                          \
        if (w) w->field = (type)(void *)(base + off);                                                             \
        off += ((size_t)(n) + 15) & ~(size_t)15;                                                                  \
    } while (0)
    WS_TAKE(pack, float *, g->KKC * F);
    WS_TAKE(dwp, float *, g->KKC * F);
    WS_TAKE(cb, float *, (nq + PMAX) * F);
    WS_TAKE(tmp, float *, (g->HpWp + 1) * F);
    WS_TAKE(patch, float *, ((size_t)g->qb + PMAX) * g->KKC);
    WS_TAKE(dbs, double *, 2 * F);
    WS_TAKE(pix, const float **, 2 * (nq + PMAX));
    WS_TAKE(dinp, const float **, 2 * (g->nqi + PMAX));
#undef WS_TAKE
    return off;
}

int convblock_fast(int F) {
#ifdef __AVX512F__
    return F > 0 && F % 16 == 0;
#else
    (void)F;
    return 0;
#endif
}

size_t convblock_workspace_floats(int C, int H, int W, int F, int K, int stride, int pool) {
    Geo g = geo(C, H, W, F, K, stride, pool, 0);
    return ws_layout(NULL, NULL, &g);
}

/* pix[q] = base + the offset of the q-th listed conv pixel of images
 * [i0, i0+n) (images HWC floats apart), then PMAX copies of the last one
 * (tiles read them, never store them). With pooling the list goes window
 * by window, the 4 pixels of a 2x2 window adjacent in row-major window
 * order, and leaves out the pixels floor-mode pooling drops (they reach
 * neither the output nor any gradient). Without, it is row-major. */
static void pixel_list(const float **pix, const float *base, const Geo *g, int i0, int n) {
    size_t q = 0, S = (size_t)g->S, C = (size_t)g->C, W = (size_t)g->W;
    for (int i = i0; i < i0 + n; i++) {
        const float *b = base + (size_t)i * g->HWC;
        if (g->pool) {
            for (int ph = 0; ph < g->Hp; ph++)
                for (int pw = 0; pw < g->Wp; pw++)
                    for (int s = 0; s < 4; s++) {
                        size_t oh = (size_t)2 * ph + s / 2, ow = (size_t)2 * pw + s % 2;
                        pix[q++] = b + (oh * S * W + ow * S) * C;
                    }
        } else {
            for (int oh = 0; oh < g->Ho; oh++)
                for (int ow = 0; ow < g->Wo; ow++) pix[q++] = b + ((size_t)oh * S * W + (size_t)ow * S) * C;
        }
    }
    for (int j = 0; j < PMAX; j++) pix[q + j] = pix[q - 1];
}

/* ---- micro-kernels ------------------------------------------------------ */

#ifdef __AVX512F__
#define KINLINE static inline __attribute__((always_inline))

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
static const int FWD_P[5] = {0, 12, 12, 8, 6};
static const int DW_KT[5] = {0, 24, 13, 8, 6};
#define DX_P 5

/* Whether the AVX-512 kernels serve this shape (filters in whole vectors). */
static int use_simd(const Geo *g) { return g->F % 16 == 0; }

static void fwd_tile_v(int V, float *c, size_t ldc, const float *const *pix, size_t koff, const float *w,
                       size_t ldw, const float *bias, int nr, int T, size_t rs, int np) {
    switch (V) {
    case 1: fwd_tile(12, 1, c, ldc, pix, koff, w, ldw, bias, nr, T, rs, np); break;
    case 2: fwd_tile(12, 2, c, ldc, pix, koff, w, ldw, bias, nr, T, rs, np); break;
    case 3: fwd_tile(8, 3, c, ldc, pix, koff, w, ldw, bias, nr, T, rs, np); break;
    default: fwd_tile(6, 4, c, ldc, pix, koff, w, ldw, bias, nr, T, rs, np); break;
    }
}

static void dw_tile_v(int V, float *dw, size_t ldw, const float *const *pix, size_t koff, const float *dc,
                      size_t ldd, int nq, int skip) {
    switch (V) {
    case 1: dw_tile(24, 1, dw, ldw, pix, koff, dc, ldd, nq, skip); break;
    case 2: dw_tile(13, 2, dw, ldw, pix, koff, dc, ldd, nq, skip); break;
    case 3: dw_tile(8, 3, dw, ldw, pix, koff, dc, ldd, nq, skip); break;
    default: dw_tile(6, 4, dw, ldw, pix, koff, dc, ldd, nq, skip); break;
    }
}

static void dx_tile_nv(int NV, const float *const *dinp, size_t doff, const float *dc, size_t ldd, const float *wt,
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


/* ---- forward ------------------------------------------------------------ */

/* relu as relu_forward: x < 0 ? 0 : x (NaN and -0 pass). */
static inline float relu1(float x) { return x < 0.0f ? 0.0f : x; }

/* Block output (and arg) of the listed pixels [q0, q1) of the chunk that
 * starts at image i0 (q0, q1 multiples of 4 when pooling). */
static void epilogue(float *out, uint8_t *arg, const float *cb, const Geo *g, int i0, size_t q0, size_t q1) {
    size_t F = (size_t)g->F, HpWp = g->HpWp, per = g->pool ? 4 : 1;
    for (size_t w = q0 / per; w < q1 / per; w++) {
        size_t i = (size_t)i0 + w / HpWp, o = w % HpWp; /* image, output pixel */
        const float *c0 = cb + w * per * F;
        float *oi = out + i * HpWp * F;
        uint8_t *ai = arg ? arg + (i * HpWp + o) * F : NULL;
        size_t f = 0;
#ifdef __AVX512F__
        const __m512 zero = _mm512_setzero_ps();
        for (; f + 16 <= F; f += 16) {
            __m512 m = _mm512_loadu_ps(c0 + f);
            m = _mm512_mask_mov_ps(m, _mm512_cmp_ps_mask(m, zero, _CMP_LT_OQ), zero);
            if (g->pool) {
                __m512i idx = _mm512_setzero_si512();
                for (int s = 1; s < 4; s++) {
                    __m512 v = _mm512_loadu_ps(c0 + s * F + f);
                    v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), zero);
                    __mmask16 take = _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
                    m = _mm512_mask_mov_ps(m, take, v);
                    idx = _mm512_mask_mov_epi32(idx, take, _mm512_set1_epi32(s));
                }
                __mmask16 pos = _mm512_cmp_ps_mask(m, zero, _CMP_GT_OQ);
                idx = _mm512_mask_mov_epi32(_mm512_set1_epi32(CONVBLOCK_ARG_NONE), pos, idx);
                _mm_storeu_si128((__m128i *)(void *)(ai + f), _mm512_cvtepi32_epi8(idx));
            }
            if (g->nchw) {
                float t[16];
                _mm512_storeu_ps(t, m);
                for (int l = 0; l < 16; l++) oi[(f + l) * HpWp + o] = t[l];
            } else {
                _mm512_storeu_ps(oi + o * F + f, m);
            }
        }
#endif
        for (; f < F; f++) {
            float m = relu1(c0[f]);
            if (g->pool) { /* relu first, then the first maximum (NaN wins), as relu -> maxpool */
                int best = 0;
                for (int s = 1; s < 4; s++) {
                    float x = relu1(c0[s * F + f]);
                    if (x > m || isnan(x)) m = x, best = s;
                }
                ai[f] = m > 0.0f ? (uint8_t)best : CONVBLOCK_ARG_NONE;
            }
            if (g->nchw) oi[f * HpWp + o] = m;
            else oi[o * F + f] = m;
        }
    }
}

/* Rows [q0, q1) of cb (conv output of the listed pixels) = bias + the
 * taps [t0, t0+len) of kernel row r, or every tap if r < 0; bias NULL:
 * accumulate onto cb instead. */
static void conv_rows(float *cb, const float *const *pix, const float *wp, const float *bias, const Geo *g,
                      size_t q0, size_t q1, int r, int t0, int len) {
    size_t F = (size_t)g->F;
#ifdef __AVX512F__
    if (use_simd(g)) {
        for (int f0 = 0; f0 < g->F; f0 += 64) {
            int V = MIN(4, (g->F - f0) / 16), P = FWD_P[V];
            const float *w = wp + (r < 0 ? 0 : ((size_t)r * g->T + t0) * F) + f0;
            size_t koff = r < 0 ? 0 : (size_t)r * g->rs + t0;
            for (size_t q = q0; q < q1; q += P)
                fwd_tile_v(V, cb + q * F + f0, F, pix + q, koff, w, F, bias ? bias + f0 : NULL, r < 0 ? g->R : 1,
                           r < 0 ? g->T : len, g->rs, (int)MIN((size_t)P, q1 - q));
        }
        return;
    }
#endif
    int r0 = r < 0 ? 0 : r, r1 = r < 0 ? g->R : r + 1, ta = r < 0 ? 0 : t0, tb = r < 0 ? g->T : t0 + len;
    for (size_t q = q0; q < q1; q++) {
        float *c = cb + q * F;
        if (bias)
            for (size_t f = 0; f < F; f++) c[f] = bias[f];
        for (int rr = r0; rr < r1; rr++) {
            const float *a = pix[q] + (size_t)rr * g->rs;
            const float *w = wp + ((size_t)rr * g->T + ta) * F;
            for (int t = ta; t < tb; t++, w += F) {
                float x = a[t];
                for (size_t f = 0; f < F; f++) c[f] += x * w[f];
            }
        }
    }
}

/* The taps go in blocks of FWD_KB per kernel row when there are many, so
 * that a block of wp (FWD_KB x F floats) stays in L1 while every pixel tile
 * of the chunk passes over it; with few taps, sub-blocks of FWD_SB pixels
 * go through all taps and straight through the epilogue, their conv output
 * still in L1. FWD_SB: a multiple of 4 (pool windows) and of every tile. */
#define FWD_KB 80
#define FWD_SB 48

void convblock_forward(float *out, uint8_t *arg, const float *in, const float *w, const float *b, int B, int C,
                       int H, int W, int F, int K, int stride, int pool, int out_nchw, float *wsp) {
    Geo g = geo(C, H, W, F, K, stride, pool, out_nchw);
    ASSERT(!pool || arg);
    Ws ws;
    ws_layout(&ws, wsp, &g);
    /* wp[r][t][f] = w[f][c][kh][kw] with r = kh, t = kw*C + c */
    for (int f = 0; f < F; f++)
        for (int c = 0; c < C; c++)
            for (int kh = 0; kh < K; kh++)
                for (int kw = 0; kw < K; kw++)
                    ws.pack[(((size_t)kh * K + kw) * C + c) * F + f] = w[(((size_t)f * C + c) * K + kh) * K + kw];
    for (int i0 = 0; i0 < B; i0 += g.nimg) {
        int n = MIN(g.nimg, B - i0);
        size_t nq = (size_t)n * g.nqi;
        pixel_list(ws.pix, in, &g, i0, n);
        if (g.KKC <= 2 * FWD_KB) {
            for (size_t q0 = 0; q0 < nq; q0 += FWD_SB) {
                size_t q1 = MIN(nq, q0 + FWD_SB);
                conv_rows(ws.cb, ws.pix, ws.pack, b, &g, q0, q1, -1, 0, 0);
                epilogue(out, arg, ws.cb, &g, i0, q0, q1);
            }
            continue;
        }
        for (int r = 0; r < g.R; r++)
            for (int t0 = 0; t0 < g.T; t0 += FWD_KB)
                conv_rows(ws.cb, ws.pix, ws.pack, r == 0 && t0 == 0 ? b : NULL, &g, 0, nq, r, t0,
                          MIN(FWD_KB, g.T - t0));
        epilogue(out, arg, ws.cb, &g, i0, 0, nq);
    }
}

/* ---- backward ----------------------------------------------------------- */

/* cb (nqi, F) = d(loss)/d(conv output) of image i's listed pixels; adds
 * its bias terms to dbs. */
static void expand(float *cb, double *dbs, float *tmp, const float *dout, const float *out, const uint8_t *arg,
                   const Geo *g, int i) {
    size_t F = (size_t)g->F, HpWp = g->HpWp;
    const float *d = dout + (size_t)i * HpWp * F;
    if (g->nchw) { /* (F, HpWp) -> (HpWp, F) */
        for (size_t f = 0; f < F; f++)
            for (size_t o = 0; o < HpWp; o++) tmp[o * F + f] = d[f * HpWp + o];
        d = tmp;
    }
    float *dsum = tmp + HpWp * F; /* (F) this image's bias terms, summed in float */
    memset(dsum, 0, F * sizeof *dsum);
    if (!g->pool) {
        const float *y = out + (size_t)i * HpWp * F;
        for (size_t o = 0; o < HpWp; o++)
            for (size_t f = 0; f < F; f++) {
                float yv = g->nchw ? y[f * HpWp + o] : y[o * F + f];
                float v = yv > 0.0f ? d[o * F + f] : 0.0f;
                cb[o * F + f] = v;
                dsum[f] += v;
            }
    } else {
        const uint8_t *a = arg + (size_t)i * HpWp * F;
        size_t f = 0;
#ifdef __AVX512F__
        for (; f + 16 <= F; f += 16) { /* filters outer: the bias sum stays in a register */
            __m512 sum = _mm512_setzero_ps();
            for (size_t o = 0; o < HpWp; o++) {
                float *c = cb + 4 * o * F + f; /* the window's 4 rows */
                __m512 x = _mm512_loadu_ps(d + o * F + f);
                __m512i ai = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(a + o * F + f)));
                for (int s = 0; s < 4; s++)
                    _mm512_storeu_ps(c + s * F, _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(ai, _mm512_set1_epi32(s)), x));
                sum = _mm512_mask_add_ps(sum, _mm512_cmpneq_epi32_mask(ai, _mm512_set1_epi32(CONVBLOCK_ARG_NONE)),
                                         sum, x);
            }
            _mm512_storeu_ps(dsum + f, sum);
        }
#endif
        for (size_t o = 0; o < HpWp; o++) {
            float *c = cb + 4 * o * F; /* the window's 4 rows */
            const float *dv = d + o * F;
            const uint8_t *av = a + o * F;
            for (size_t ff = f; ff < F; ff++) {
                for (int s = 0; s < 4; s++) c[s * F + ff] = av[ff] == s ? dv[ff] : 0.0f;
                dsum[ff] += av[ff] != CONVBLOCK_ARG_NONE ? dv[ff] : 0.0f;
            }
        }
    }
    for (size_t f = 0; f < F; f++) dbs[f] += dsum[f];
}

#ifdef __AVX512F__
/* patch (n, KKC): the taps of pixels pix[0..n) in one contiguous run each;
 * pix[q] is pointed at its patch (the caller rebuilds pix per image). end:
 * the end of the input tensor. */
__attribute__((noinline)) static void build_patches(float *patch, const float **pix, int n, const Geo *g,
                                                     const float *end) {
    int R = g->R, T = g->T;
    size_t rs = g->rs, ld = g->KKC;
    if (T > 8) {
        for (int q = 0; q < n; q++) {
            for (int r = 0; r < R; r++) memcpy(patch + q * ld + (size_t)r * T, pix[q] + r * rs, (size_t)T * 4);
            pix[q] = patch + q * ld;
        }
        return;
    }
    /* Rows of T <= 8 floats: 8-float loads and stores in increasing address
     * order, each store's tail overwritten by the next row (the last one's
     * lands in the slack rows after the patches); a masked load where 8
     * floats would read past the input's end. */
    __mmask8 m = (__mmask8)((1u << T) - 1);
    for (int q = 0; q < n; q++) {
        const float *src = pix[q];
        float *d = patch + q * ld;
        for (int r = 0; r < R; r++, src += rs, d += T) {
            __m256 v = src + 8 <= end ? _mm256_loadu_ps(src) : _mm256_maskz_loadu_ps(m, src);
            _mm256_storeu_ps(d, v);
        }
        pix[q] = patch + q * ld;
    }
}
#endif

/* dwp += sum over the image's pixels of patch x dconv. */
static void weight_grad(float *dwp, float *patch, const float **pix, const float *cb, const Geo *g,
                        const float *end) {
    size_t F = (size_t)g->F;
    int nq = (int)g->nqi;
#ifdef __AVX512F__
    if (use_simd(g)) {
        for (int q0 = 0; q0 < nq; q0 += g->qb) {
            int n = MIN(g->qb, nq - q0);
            const float *const *pp = pix + q0;
            int R = g->R, T = g->T;
            size_t rs = g->rs;
            if (T < DW_KT[MIN(4, g->F / 16)]) { /* short runs: gather each pixel's patch */
                build_patches(patch, pix + q0, n, g, end);
                R = 1, T = (int)g->KKC, rs = 0;
            }
            for (int f0 = 0; f0 < g->F; f0 += 64) {
                int V = MIN(4, (g->F - f0) / 16), KT = DW_KT[V];
                if (T < KT) goto scalar_block;
                for (int r = 0; r < R; r++)
                    for (int t0 = 0; t0 < T; t0 += KT) {
                        int ts = MIN(t0, T - KT); /* the last tile shifts back */
                        dw_tile_v(V, dwp + ((size_t)r * g->T + ts) * F + f0, F, pp, (size_t)r * rs + ts,
                                  cb + (size_t)q0 * F + f0, F, n, t0 - ts);
                    }
                continue;
            scalar_block:
                for (int q = 0; q < n; q++)
                    for (int r = 0; r < R; r++)
                        for (int t = 0; t < T; t++) {
                            float x = pp[q][(size_t)r * rs + t];
                            float *dw = dwp + ((size_t)r * g->T + t) * F + f0;
                            const float *d = cb + (size_t)(q0 + q) * F + f0;
                            for (int f = 0; f < 16 * V; f++) dw[f] += x * d[f];
                        }
            }
        }
        return;
    }
#endif
    (void)patch, (void)end;
    for (int q = 0; q < nq; q++) {
        const float *d = cb + (size_t)q * F;
        for (int r = 0; r < g->R; r++) {
            const float *a = pix[q] + (size_t)r * g->rs;
            float *dw = dwp + (size_t)r * g->T * F;
            for (int t = 0; t < g->T; t++, dw += F) {
                float x = a[t];
                for (size_t f = 0; f < F; f++) dw[f] += x * d[f];
            }
        }
    }
}

/* din of image i (HWC, zeroed here) from cb and wt (F, KKC). */
static void input_grad(float *dini, const float **dinp, const float *cb, const float *wt, const Geo *g) {
    size_t F = (size_t)g->F;
    int nq = (int)g->nqi;
    memset(dini, 0, g->HWC * sizeof *dini);
    pixel_list(dinp, dini, g, 0, 1);
#ifdef __AVX512F__
    if (use_simd(g)) {
        for (int r = 0; r < g->R; r++)
            for (int t0 = 0; t0 < g->T; t0 += 80) {
                int len = MIN(80, g->T - t0), nv = (len + 15) / 16, rem = len - 16 * (nv - 1);
                __mmask16 tail = (__mmask16)(rem == 16 ? 0xFFFF : (1u << rem) - 1);
                size_t off = (size_t)r * g->rs + t0;
                for (int q0 = 0; q0 < nq; q0 += DX_P)
                    dx_tile_nv(nv, dinp + q0, off, cb + (size_t)q0 * F, F, wt + (size_t)r * g->T + t0, g->KKC,
                               g->F, MIN(DX_P, nq - q0), tail);
            }
        return;
    }
#endif
    for (int q = 0; q < nq; q++) {
        const float *d = cb + (size_t)q * F;
        for (int r = 0; r < g->R; r++) {
            float *o = (float *)dinp[q] + (size_t)r * g->rs;
            for (int t = 0; t < g->T; t++) {
                float s = 0.0f;
                const float *w = wt + (size_t)r * g->T + t;
                for (size_t f = 0; f < F; f++) s += d[f] * w[f * g->KKC];
                o[t] += s;
            }
        }
    }
}

void convblock_backward(float *din, float *dw, float *db, const float *dout, const float *out, const uint8_t *arg,
                        const float *in, const float *w, int B, int C, int H, int W, int F, int K, int stride,
                        int pool, int out_nchw, float *wsp) {
    Geo g = geo(C, H, W, F, K, stride, pool, out_nchw);
    Ws ws;
    ws_layout(&ws, wsp, &g);
    /* wt[f][r][t] = w[f][c][kh][kw]: per filter, (c, kh, kw) -> (kh, kw, c) */
    if (din)
        for (int f = 0; f < F; f++)
            for (int c = 0; c < C; c++)
                for (int k = 0; k < K * K; k++)
                    ws.pack[(size_t)f * g.KKC + (size_t)k * C + c] = w[((size_t)f * C + c) * K * K + k];
    memset(ws.dwp, 0, g.KKC * (size_t)F * sizeof *ws.dwp);
    memset(ws.dbs, 0, (size_t)F * sizeof *ws.dbs);
    for (int i = 0; i < B; i++) {
        expand(ws.cb, ws.dbs, ws.tmp, dout, out, arg, &g, i);
        pixel_list(ws.pix, in, &g, i, 1);
        weight_grad(ws.dwp, ws.patch, ws.pix, ws.cb, &g, in + (size_t)B * g.HWC);
        if (din) input_grad(din + (size_t)i * g.HWC, ws.dinp, ws.cb, ws.pack, &g);
    }
    for (int f = 0; f < F; f++) {
        db[f] += (float)ws.dbs[f];
        for (int c = 0; c < C; c++)
            for (int k = 0; k < K * K; k++)
                dw[((size_t)f * C + c) * K * K + k] += ws.dwp[((size_t)k * C + c) * F + f];
    }
}
