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
 * backward expands the pooled gradient back into it. This file: the
 * geometry, the workspace and the forward; the backward is convblock_bwd.c
 * (what both use: convblock_impl.h). */
#include "convblock.h"

#include <math.h>
#include <string.h>

#include "convblock_impl.h"
#include "parallel.h"
#include "util.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

static int wants_patches(const Geo *g);

/* Per-image buffers of a backward group, floats: the conv gradient, the
 * pixel pointers, the patches, the bias terms. */
static size_t slot_floats(const Geo *g) {
    size_t rows = g->nqi + PMAX;
    return rows * (size_t)g->F + 2 * rows + (g->patches ? rows * g->KKC : 0) + (size_t)g->F;
}

Geo convblock_geo(int C, int H, int W, int F, int K, int S, int pool, int nchw) {
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
    g.patches = wants_patches(&g);
    g.thr = parallel_threads();
    /* The backward by chunks of images when the weight gradient is small
     * enough for CHUNKS_MIN copies (the shape decides, never the threads). */
    size_t nc = PART_TARGET / (g.KKC * (size_t)F);
    g.chunks = nc >= CHUNKS_MIN ? (int)MIN(nc, (size_t)CHUNKS_MAX) : 0;
    /* By tiles: one image at a time on one thread (the conv gradient stays
     * in cache); with more, enough images per group for every thread, and
     * as many as fit in GROUP_TARGET floats (fewer rounds of the two passes). */
    g.grp = g.chunks || g.thr == 1 ? 1 : (int)MAX((size_t)2 * g.thr, GROUP_TARGET / slot_floats(&g));
    return g;
}




#define WS_TAKE(p, field, type, n)                                                                           \
    do {                                                                                                     \
        if (p) (p)->field = (type)(void *)(base + off);                                                      \
        off += ((size_t)(n) + 15) & ~(size_t)15;                                                             \
    } while (0)

static size_t thread_layout(ThreadWs *t, float *base, const Geo *g) {
    size_t off = 0, nq = (size_t)g->nimg * g->nqi;
    WS_TAKE(t, cb, float *, (nq + PMAX) * g->F);
    WS_TAKE(t, tmp, float *, (g->HpWp + 1) * g->F);
    WS_TAKE(t, pix, const float **, 2 * (nq + PMAX));
    WS_TAKE(t, dinp, const float **, 2 * (g->nqi + PMAX));
    return off;
}

static size_t slot_layout(SlotWs *s, float *base, const Geo *g) {
    size_t off = 0, rows = g->nqi + PMAX;
    WS_TAKE(s, cb, float *, rows * g->F);
    WS_TAKE(s, pix, const float **, 2 * rows);
    WS_TAKE(s, patch, float *, g->patches ? rows * g->KKC : 0);
    WS_TAKE(s, dsum, float *, g->F);
    return off;
}

/* One image chunk's partial gradients: F bias sums (doubles), then the
 * (KKC, F) packed weight gradient. */
static size_t part_floats(const Geo *g) {
    return ((2 * (size_t)g->F + 15) & ~(size_t)15) + ((g->KKC * (size_t)g->F + 15) & ~(size_t)15);
}

/* Buffers of partials (convblock_bwd.c): the sums of segments 1 ..
 * CHUNK_SEGS - 1 (segment 0 adds up in dwp), one per thread (a chunk next
 * in order in its segment, added at once) and, with threads, one per chunk
 * (the others, added after the run). */
int convblock_part_bufs(const Geo *g) {
    return !g->chunks ? 0 : CHUNK_SEGS - 1 + (g->thr == 1 ? 1 : g->thr + g->chunks);
}

size_t convblock_ws_layout(Ws *w, float *base, const Geo *g) {
    size_t off = 0, F = (size_t)g->F;
    size_t slot = slot_layout(NULL, NULL, g), thr = thread_layout(NULL, NULL, g), part = part_floats(g);
    size_t slots = g->chunks ? (size_t)g->thr : (size_t)(g->thr > 1 ? 2 : 1) * g->grp;
    size_t parts = (size_t)convblock_part_bufs(g);
    WS_TAKE(w, pack, float *, (g->KKC * F));
    WS_TAKE(w, dwp, float *, (g->KKC * F));
    WS_TAKE(w, dbs, double *, 2 * F);
    WS_TAKE(w, slot, float *, (slots * slot));
    WS_TAKE(w, part, float *, (parts * part));
    WS_TAKE(w, thr, float *, ((size_t)g->thr * thr));
    if (w) w->thr_floats = thr, w->part_floats = part;
    return off;
}

ThreadWs convblock_thread_ws(const Ws *w, const Geo *g, int tid) {
    ThreadWs t;
    thread_layout(&t, w->thr + (size_t)tid * w->thr_floats, g);
    return t;
}

SlotWs convblock_slot_ws(const Ws *w, const Geo *g, int j) {
    SlotWs s;
    slot_layout(&s, w->slot + (size_t)j * slot_layout(NULL, NULL, g), g);
    return s;
}
#undef WS_TAKE
int convblock_fast(int F) {
#ifdef __AVX512F__
    return F > 0 && F % 16 == 0;
#else
    (void)F;
    return 0;
#endif
}

size_t convblock_workspace_floats(int C, int H, int W, int F, int K, int stride, int pool) {
    Geo g = convblock_geo(C, H, W, F, K, stride, pool, 0);
    return convblock_ws_layout(NULL, NULL, &g);
}

/* pix[q] = base + the offset of the q-th listed conv pixel of images
 * [i0, i0+n) (images HWC floats apart), then PMAX copies of the last one
 * (tiles read them, never store them). With pooling the list goes window
 * by window, the 4 pixels of a 2x2 window adjacent in row-major window
 * order, and leaves out the pixels floor-mode pooling drops (they reach
 * neither the output nor any gradient). Without, it is row-major. */
void convblock_pixel_list(const float **pix, const float *base, const Geo *g, int i0, int n) {
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


/* Whether the AVX-512 kernels serve this shape (filters in whole vectors). */
int convblock_simd(const Geo *g) {
#ifdef __AVX512F__
    return g->F % 16 == 0;
#else
    (void)g;
    return 0;
#endif
}

/* The weight gradient gathers each pixel's taps into a contiguous patch
 * when the kernel rows are shorter than a weight tile. */
static int wants_patches(const Geo *g) {
#ifdef __AVX512F__
    return convblock_simd(g) && g->T < DW_KT[MIN(4, g->F / 16)];
#else
    (void)g;
    return 0;
#endif
}

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
    if (convblock_simd(g)) {
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

typedef struct Fwd {
    const Geo *g;
    Ws ws;
    float *out;
    uint8_t *arg;
    const float *in, *b;
    int B, per; /* images, images per chunk */
} Fwd;

/* One forward chunk: images [c per, ...). Every pixel's sum runs over the
 * taps in the same order whatever the chunk: the output does not depend on
 * how the images are cut. */
static void fwd_chunk(void *p, int c, int tid) {
    const Fwd *f = p;
    const Geo *g = f->g;
    ThreadWs t = convblock_thread_ws(&f->ws, g, tid);
    int i0 = c * f->per, n = MIN(f->per, f->B - i0);
    size_t nq = (size_t)n * g->nqi;
    if (g->KKC <= 2 * FWD_KB) { /* image by image: any number of images per chunk */
        for (int i = i0; i < i0 + n; i++) {
            convblock_pixel_list(t.pix, f->in, g, i, 1);
            for (size_t q0 = 0; q0 < g->nqi; q0 += FWD_SB) {
                size_t q1 = MIN(g->nqi, q0 + FWD_SB);
                conv_rows(t.cb, t.pix, f->ws.pack, f->b, g, q0, q1, -1, 0, 0);
                epilogue(f->out, f->arg, t.cb, g, i, q0, q1);
            }
        }
        return;
    }
    convblock_pixel_list(t.pix, f->in, g, i0, n);
    for (int r = 0; r < g->R; r++)
        for (int t0 = 0; t0 < g->T; t0 += FWD_KB)
            conv_rows(t.cb, t.pix, f->ws.pack, r == 0 && t0 == 0 ? f->b : NULL, g, 0, nq, r, t0,
                      MIN(FWD_KB, g->T - t0));
    epilogue(f->out, f->arg, t.cb, g, i0, 0, nq);
}


/* Rows [lo, hi) of wp (KKC, F) for the forward, wp[r][t][f] with r = kh,
 * t = kw*C + c, from w (F, C, K, K): by rows of the destination, so that no
 * two chunks write into one cache line. */
static void pack_rows(void *p, size_t lo, size_t hi) {
    const Pack *k = p;
    size_t C = (size_t)k->g->C, KK = (size_t)k->g->K * k->g->K, F = (size_t)k->g->F;
    for (size_t j = lo; j < hi; j++) {
        size_t kk = j / C, c = j % C;
        for (size_t f = 0; f < F; f++) k->dst[j * F + f] = k->w[(f * C + c) * KK + kk];
    }
}


/* Filters per chunk of the packing and unpacking loops: about
 * PARALLEL_GRAIN floats. */
size_t convblock_filter_grain(const Geo *g) { return MAX((size_t)1, PARALLEL_GRAIN / g->KKC); }

void convblock_forward(float *out, uint8_t *arg, const float *in, const float *w, const float *b, int B, int C,
                       int H, int W, int F, int K, int stride, int pool, int out_nchw, float *wsp) {
    Geo g = convblock_geo(C, H, W, F, K, stride, pool, out_nchw);
    ASSERT(!pool || arg);
    Fwd f = {&g, {0}, out, arg, in, b, B, 0};
    convblock_ws_layout(&f.ws, wsp, &g);
    Pack pk = {&g, f.ws.pack, w};
    parallel_for(g.KKC, MAX((size_t)1, PARALLEL_GRAIN / (size_t)F), pack_rows, &pk);
    /* At least four chunks per thread when the batch allows; with many taps,
     * of at most nimg images (the conv output buffer). */
    f.per = MAX(1, MIN(g.KKC <= 2 * FWD_KB ? B : g.nimg, (B + 4 * g.thr - 1) / (4 * g.thr)));
    parallel_run((B + f.per - 1) / f.per, fwd_chunk, &f);
}
