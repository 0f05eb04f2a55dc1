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

#include "parallel.h"
#include "util.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#define CB_TARGET 32768     /* floats of conv output per forward chunk */
#define QB_TARGET 6144      /* floats of dconv per weight-gradient pixel block */
#define PMAX 24             /* largest pixel tile: slack rows after cb */
#define GROUP_TARGET 1048576 /* floats of the backward's per-image buffers per group */
#define PART_TARGET 2097152  /* floats of the backward's per-chunk weight gradients, at most */
#define CHUNKS_MIN 16        /* fewer image chunks than this: the backward splits the tiles */
#define CHUNKS_MAX 64

typedef struct Geo {
    int C, H, W, F, K, S, pool, nchw;
    int Ho, Wo, Hp, Wp;
    int R, T;  /* taps: R kernel rows of T = K*C contiguous input floats */
    size_t rs; /* input row stride, floats: W*C */
    size_t HWC, KKC, HoWo, HpWp;
    size_t nqi;  /* pixels per image in the pixel list (pool: 4 per window) */
    int nimg;    /* images per forward chunk, at most */
    int qb;      /* pixels per weight-gradient block */
    int patches; /* the weight gradient reads per-pixel patches (short tap runs) */
    int thr;     /* threads of the pool */
    int chunks;  /* backward by images: at most this many chunks of images (0: by tiles) */
    int grp;     /* by tiles: images per backward group (with threads, two groups' slots: one is read
                  * while the next is written) */
} Geo;

static int wants_patches(const Geo *g);

/* Per-image buffers of a backward group, floats: the conv gradient, the
 * pixel pointers, the patches, the bias terms. */
static size_t slot_floats(const Geo *g) {
    size_t rows = g->nqi + PMAX;
    return rows * (size_t)g->F + 2 * rows + (g->patches ? rows * g->KKC : 0) + (size_t)g->F;
}

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

/* Workspace layout, floats. Pointer arrays are stored as pointers in the
 * float block (64-byte aligned, never read as floats). Shared by all
 * threads: pack, dwp, dbs, the backward's per-image slots (by tiles: a
 * group's; by images: one per thread) and the image chunks' partial
 * gradients; one block per thread: cb, tmp, pix, dinp. */
typedef struct Ws {
    float *pack; /* (KKC, F) wp or (F, KKC) wt */
    float *dwp;  /* (KKC, F) weight gradient, packed */
    double *dbs; /* (F) bias gradient sums */
    float *slot; /* by tiles: (2 with threads) grp x slot_floats; by images: thr x slot_floats */
    float *part; /* by images: part_bufs x part_floats */
    float *thr;  /* thr x thr_floats: per-thread blocks */
    size_t thr_floats, part_floats;
} Ws;

/* One thread's block. */
typedef struct ThreadWs {
    float *cb;          /* (nimg*nqi + PMAX, F) conv output of a forward chunk */
    float *tmp;         /* (HpWp + 1, F) NCHW <-> NHWC, then bias sums */
    const float **pix;  /* (nimg*nqi + PMAX) input pixel pointers */
    const float **dinp; /* (nqi + PMAX) input-gradient pixel pointers (written through) */
} ThreadWs;

/* One image's buffers in a backward group. */
typedef struct SlotWs {
    float *cb;         /* (nqi + PMAX, F) the conv output's gradient */
    const float **pix; /* (nqi + PMAX) input pixels, or their patches */
    float *patch;      /* (nqi + PMAX, KKC) if g->patches */
    float *dsum;       /* (F) the image's bias terms */
} SlotWs;

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

/* Buffers of partials: one thread adds each chunk's before it starts the
 * next (one buffer); with more, every chunk keeps its own until all are
 * done, and then the threads add them up over ranges of elements, in chunk
 * order (no thread waits for another's chunk, and each reads the others'
 * partials once). */
static int part_bufs(const Geo *g) { return !g->chunks ? 0 : g->thr == 1 ? 1 : g->chunks; }

static size_t ws_layout(Ws *w, float *base, const Geo *g) {
    size_t off = 0, F = (size_t)g->F;
    size_t slot = slot_layout(NULL, NULL, g), thr = thread_layout(NULL, NULL, g), part = part_floats(g);
    size_t slots = g->chunks ? (size_t)g->thr : (size_t)(g->thr > 1 ? 2 : 1) * g->grp;
    size_t parts = (size_t)part_bufs(g);
    WS_TAKE(w, pack, float *, (g->KKC * F));
    WS_TAKE(w, dwp, float *, (g->KKC * F));
    WS_TAKE(w, dbs, double *, 2 * F);
    WS_TAKE(w, slot, float *, (slots * slot));
    WS_TAKE(w, part, float *, (parts * part));
    WS_TAKE(w, thr, float *, ((size_t)g->thr * thr));
    if (w) w->thr_floats = thr, w->part_floats = part;
    return off;
}

static ThreadWs thread_ws(const Ws *w, const Geo *g, int tid) {
    ThreadWs t;
    thread_layout(&t, w->thr + (size_t)tid * w->thr_floats, g);
    return t;
}

static SlotWs slot_ws(const Ws *w, const Geo *g, int j) {
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

#include "convblock_tiles.h"

/* Whether the AVX-512 kernels serve this shape (filters in whole vectors). */
static int use_simd(const Geo *g) {
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
    return use_simd(g) && g->T < DW_KT[MIN(4, g->F / 16)];
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
    ThreadWs t = thread_ws(&f->ws, g, tid);
    int i0 = c * f->per, n = MIN(f->per, f->B - i0);
    size_t nq = (size_t)n * g->nqi;
    if (g->KKC <= 2 * FWD_KB) { /* image by image: any number of images per chunk */
        for (int i = i0; i < i0 + n; i++) {
            pixel_list(t.pix, f->in, g, i, 1);
            for (size_t q0 = 0; q0 < g->nqi; q0 += FWD_SB) {
                size_t q1 = MIN(g->nqi, q0 + FWD_SB);
                conv_rows(t.cb, t.pix, f->ws.pack, f->b, g, q0, q1, -1, 0, 0);
                epilogue(f->out, f->arg, t.cb, g, i, q0, q1);
            }
        }
        return;
    }
    pixel_list(t.pix, f->in, g, i0, n);
    for (int r = 0; r < g->R; r++)
        for (int t0 = 0; t0 < g->T; t0 += FWD_KB)
            conv_rows(t.cb, t.pix, f->ws.pack, r == 0 && t0 == 0 ? f->b : NULL, g, 0, nq, r, t0,
                      MIN(FWD_KB, g->T - t0));
    epilogue(f->out, f->arg, t.cb, g, i0, 0, nq);
}

typedef struct Pack {
    const Geo *g;
    float *dst;
    const float *w;
} Pack;

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

/* Filters [lo, hi) of wt (F, KKC) for the input gradient: wt[f][kh][kw][c]. */
static void pack_filters(void *p, size_t lo, size_t hi) {
    const Pack *k = p;
    int C = k->g->C, K = k->g->K;
    size_t KKC = k->g->KKC;
    for (size_t f = lo; f < hi; f++)
        for (int c = 0; c < C; c++)
            for (int kk = 0; kk < K * K; kk++) k->dst[f * KKC + (size_t)kk * C + c] = k->w[(f * C + c) * K * K + kk];
}

/* Filters per chunk of the packing and unpacking loops: about
 * PARALLEL_GRAIN floats. */
static size_t filter_grain(const Geo *g) { return MAX((size_t)1, PARALLEL_GRAIN / g->KKC); }

void convblock_forward(float *out, uint8_t *arg, const float *in, const float *w, const float *b, int B, int C,
                       int H, int W, int F, int K, int stride, int pool, int out_nchw, float *wsp) {
    Geo g = geo(C, H, W, F, K, stride, pool, out_nchw);
    ASSERT(!pool || arg);
    Fwd f = {&g, {0}, out, arg, in, b, B, 0};
    ws_layout(&f.ws, wsp, &g);
    Pack pk = {&g, f.ws.pack, w};
    parallel_for(g.KKC, MAX((size_t)1, PARALLEL_GRAIN / (size_t)F), pack_rows, &pk);
    /* At least four chunks per thread when the batch allows; with many taps,
     * of at most nimg images (the conv output buffer). */
    f.per = MAX(1, MIN(g.KKC <= 2 * FWD_KB ? B : g.nimg, (B + 4 * g.thr - 1) / (4 * g.thr)));
    parallel_run((B + f.per - 1) / f.per, fwd_chunk, &f);
}

/* ---- backward ----------------------------------------------------------- */

/* cb (nqi, F) = d(loss)/d(conv output) of image i's listed pixels; dsum
 * (F) = its bias terms, summed in float. tmp: (HpWp, F) of scratch. */
static void expand(float *cb, float *dsum, float *tmp, const float *dout, const float *out,
                   const uint8_t *arg, const Geo *g, int i) {
    size_t F = (size_t)g->F, HpWp = g->HpWp;
    const float *d = dout + (size_t)i * HpWp * F;
    if (g->nchw) { /* (F, HpWp) -> (HpWp, F) */
        for (size_t f = 0; f < F; f++)
            for (size_t o = 0; o < HpWp; o++) tmp[o * F + f] = d[f * HpWp + o];
        d = tmp;
    }
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

/* ---- the weight gradient in tiles --------------------------------------
 * dwp[k][f] += sum over pixels q of tap k of q x dconv[q][f]. The work is a
 * list of tiles, in the order of the single-threaded loop: for each block
 * of up to 64 filters (V vectors), each kernel row r, the tap tiles of KT
 * taps (the last one shifted back to end at the row's end; with patches, one
 * row of KKC taps; a row shorter than KT: one plain C tile). A tile keeps
 * its outputs in registers over a block of pixels, so every output sums the
 * pixels in their order, tile after tile: how the tiles are shared out
 * between threads does not change a bit. Without AVX-512 (or F % 16 != 0)
 * the whole gradient is one tile. */

typedef struct Tile {
    int f0, V, KT, r, t0; /* KT = 0: the plain C loop over the block's taps */
} Tile;

/* Rows and taps per row of the tap tiles (patches: one row of KKC). */
static void tile_rows(const Geo *g, int *R, int *T) {
    *R = g->patches ? 1 : g->R;
    *T = g->patches ? (int)g->KKC : g->T;
}

static int tiles_in_block(const Geo *g, int f0, int *V, int *KT) {
    int R, T;
    tile_rows(g, &R, &T);
    *V = MIN(4, (g->F - f0) / 16);
#ifdef __AVX512F__
    *KT = DW_KT[*V];
#else
    *KT = T + 1;
#endif
    if (T < *KT) {
        *KT = 0;
        return 1;
    }
    return R * ((T + *KT - 1) / *KT);
}

static int tile_count(const Geo *g) {
    if (!use_simd(g)) return 1;
    int n = 0, V, KT;
    for (int f0 = 0; f0 < g->F; f0 += 64) n += tiles_in_block(g, f0, &V, &KT);
    return n;
}

static Tile tile_at(const Geo *g, int k) {
    Tile t = {0, 0, 0, 0, 0};
    if (!use_simd(g)) return t;
    for (t.f0 = 0;; t.f0 += 64) {
        int n = tiles_in_block(g, t.f0, &t.V, &t.KT);
        if (k < n) break;
        k -= n;
    }
    if (t.KT) {
        int R, T;
        tile_rows(g, &R, &T);
        int per_row = (T + t.KT - 1) / t.KT;
        t.r = k / per_row;
        t.t0 = (k % per_row) * t.KT;
    }
    return t;
}

/* The tile after t in the list (t must not be the last). */
static void tile_next(const Geo *g, Tile *t) {
    if (t->KT) {
        int R, T;
        tile_rows(g, &R, &T);
        t->t0 += t->KT;
        if (t->t0 < T) return;
        t->t0 = 0;
        if (++t->r < R) return;
    }
    t->r = t->t0 = 0;
    t->f0 += 64;
    tiles_in_block(g, t->f0, &t->V, &t->KT);
}

/* Tile t over n pixels pix[0..n) (dconv rows dc). */
static void weight_tile(float *dwp, const Tile *t, const float *const *pix, const float *dc, int n,
                        const Geo *g) {
    size_t F = (size_t)g->F;
    int R, T;
    tile_rows(g, &R, &T);
    size_t rs = g->patches ? 0 : g->rs;
#ifdef __AVX512F__
    if (t->KT) {
        int ts = MIN(t->t0, T - t->KT); /* the last tile shifts back */
        dw_tile_v(t->V, dwp + ((size_t)t->r * g->T + ts) * F + t->f0, F, pix, (size_t)t->r * rs + ts,
                  dc + t->f0, F, n, t->t0 - ts);
        return;
    }
#endif
    for (int q = 0; q < n; q++)
        for (int r = 0; r < R; r++)
            for (int k = 0; k < T; k++) {
                float x = pix[q][(size_t)r * rs + k];
                float *dw = dwp + ((size_t)r * g->T + k) * F + t->f0;
                const float *d = dc + (size_t)q * F + t->f0;
                for (size_t f = 0; f < (use_simd(g) ? 16 * (size_t)t->V : F); f++) dw[f] += x * d[f];
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

typedef struct Bwd {
    const Geo *g;
    Ws ws;
    float *din;
    const float *dout, *out, *in, *end;
    const uint8_t *arg;
    int B;
    /* by tiles */
    int i0, n, s0;      /* pass 1: images [i0, i0 + n) into slots s0 .. s0 + n */
    int p0, pn;         /* pass 2: the previous group's pn images, in slots p0 .. */
    int ntiles, nunits; /* the weight gradient's tiles, cut into nunits ranges */
    int nc; /* by images: nc chunks */
} Bwd;

/* Pass 1, image i: its conv gradient, bias terms, pixel list (and patches)
 * into slot s, and its input gradient. */
static void image_pass1(const Bwd *b, const SlotWs *s, const ThreadWs *t, int i) {
    const Geo *g = b->g;
    expand(s->cb, s->dsum, t->tmp, b->dout, b->out, b->arg, g, i);
    pixel_list(s->pix, b->in, g, i, 1);
#ifdef __AVX512F__
    if (g->patches) build_patches(s->patch, s->pix, (int)g->nqi, g, b->end);
#endif
    if (b->din) input_grad(b->din + (size_t)i * g->HWC, t->dinp, s->cb, b->ws.pack, g);
}

/* Pass 2 of the image in slot s: tiles [k0, k1) of the weight gradient
 * into dwp, over blocks of qb pixels, the tiles in order. */
static void image_tiles(float *dwp, const SlotWs *s, const Geo *g, size_t k0, size_t k1) {
    int nq = (int)g->nqi;
    Tile first = tile_at(g, (int)k0);
    for (int q0 = 0; q0 < nq; q0 += g->qb) {
        int n = MIN(g->qb, nq - q0);
        Tile t = first;
        for (size_t k = k0; k < k1; k++) {
            weight_tile(dwp, &t, s->pix + q0, s->cb + (size_t)q0 * g->F, n, g);
            if (k + 1 < k1) tile_next(g, &t);
        }
    }
}

/* By tiles: one run does pass 2 of a group (its first nunits chunks: a
 * range of tiles each, over the group's images in order) and pass 1 of the
 * next group (one chunk per image): they touch different slots. */
static void bwd_step(void *p, int c, int tid) {
    const Bwd *b = p;
    int units = b->pn ? b->nunits : 0;
    if (c >= units) {
        ThreadWs t = thread_ws(&b->ws, b->g, tid);
        SlotWs s = slot_ws(&b->ws, b->g, b->s0 + c - units);
        image_pass1(b, &s, &t, b->i0 + c - units);
        return;
    }
    size_t k0, k1;
    parallel_split((size_t)b->ntiles, b->nunits, c, &k0, &k1);
    for (int j = 0; j < b->pn; j++) {
        SlotWs s = slot_ws(&b->ws, b->g, b->p0 + j);
        image_tiles(b->ws.dwp, &s, b->g, k0, k1);
    }
}

/* By images: chunk k's partials, bias sums pb and weight gradient pw. */
static void chunk_part(const Bwd *b, int k, double **pb, float **pw) {
    float *p = b->ws.part + (size_t)(k % part_bufs(b->g)) * b->ws.part_floats;
    *pb = (double *)(void *)p;
    *pw = p + ((2 * (size_t)b->g->F + 15) & ~(size_t)15);
}

/* One thread: chunk c's partials into dwp, dbs (chunks run in order). */
static void add_part(const Bwd *b, int c) {
    size_t nw = b->g->KKC * (size_t)b->g->F;
    double *pb;
    float *pw;
    chunk_part(b, c, &pb, &pw);
    for (int f = 0; f < b->g->F; f++) b->ws.dbs[f] += pb[f];
    for (size_t i = 0; i < nw; i++) b->ws.dwp[i] += pw[i];
}

/* By images, chunk c: its images in order, each one's pass 1 and then its
 * tiles, into the chunk's own partials (the conv gradient stays in this
 * thread's cache, as on one thread). One thread adds them to dwp, dbs right
 * away; with more, convblock_backward does once all chunks are done. */
static void bwd_chunk(void *p, int c, int tid) {
    Bwd *b = p;
    const Geo *g = b->g;
    size_t lo, hi, nw = g->KKC * (size_t)g->F;
    parallel_split((size_t)b->B, b->nc, c, &lo, &hi);
    double *pb;
    float *pw;
    chunk_part(b, c, &pb, &pw);
    memset(pb, 0, (size_t)g->F * sizeof *pb);
    memset(pw, 0, nw * sizeof *pw);
    ThreadWs t = thread_ws(&b->ws, g, tid);
    SlotWs s = slot_ws(&b->ws, g, tid);
    for (size_t i = lo; i < hi; i++) {
        image_pass1(b, &s, &t, (int)i);
        for (int f = 0; f < g->F; f++) pb[f] += s.dsum[f];
        image_tiles(pw, &s, g, 0, (size_t)b->ntiles);
    }
    if (g->thr == 1) add_part(b, c);
}

/* With threads: dwp[i] += the chunks' partials in chunk order, for the
 * elements [lo, hi) (the same additions as chunk_done's, element by
 * element). */
static void reduce_parts(void *p, size_t lo, size_t hi) {
    const Bwd *b = p;
    for (int k = 0; k < b->nc; k++) {
        double *pb;
        float *pw;
        chunk_part(b, k, &pb, &pw);
        for (size_t i = lo; i < hi; i++) b->ws.dwp[i] += pw[i];
    }
}

typedef struct Unpack {
    const Geo *g;
    float *dw;
    const float *dwp;
} Unpack;

/* dw (F, C, K, K) += dwp (KKC, F) for filters [lo, hi). */
static void unpack_filters(void *p, size_t lo, size_t hi) {
    const Unpack *u = p;
    int C = u->g->C, KK = u->g->K * u->g->K;
    size_t F = (size_t)u->g->F;
    for (size_t f = lo; f < hi; f++)
        for (int c = 0; c < C; c++)
            for (int k = 0; k < KK; k++) u->dw[(f * C + c) * KK + k] += u->dwp[((size_t)k * C + c) * F + f];
}

/* Two ways, chosen by the shape (Geo.chunks). By images (small weight
 * gradients): the images in at most Geo.chunks chunks, each computing its
 * images one after the other (pass 1, then the weight tiles) into its own
 * partial gradients, added in chunk order. By tiles: the images in groups,
 * pass 1 over a group's images, pass 2 over the tiles of the weight
 * gradient (each tile summing the group's pixels in image order) in the
 * next run, together with pass 1 of the next group; the bias terms in
 * image order (one thread: groups of one image, pass 1 of image i, then
 * pass 2 of image i). */
void convblock_backward(float *din, float *dw, float *db, const float *dout, const float *out, const uint8_t *arg,
                        const float *in, const float *w, int B, int C, int H, int W, int F, int K, int stride,
                        int pool, int out_nchw, float *wsp) {
    Geo g = geo(C, H, W, F, K, stride, pool, out_nchw);
    Bwd b;
    memset(&b, 0, sizeof b);
    b.g = &g, b.din = din, b.dout = dout, b.out = out, b.in = in, b.end = in + (size_t)B * g.HWC, b.arg = arg;
    b.B = B, b.ntiles = tile_count(&g);
    ws_layout(&b.ws, wsp, &g);
    b.nunits = g.thr == 1 ? 1 : MIN(b.ntiles, 4 * g.thr);
    if (din) {
        Pack pk = {&g, b.ws.pack, w};
        parallel_for((size_t)F, filter_grain(&g), pack_filters, &pk);
    }
    memset(b.ws.dwp, 0, g.KKC * (size_t)F * sizeof *b.ws.dwp);
    memset(b.ws.dbs, 0, (size_t)F * sizeof *b.ws.dbs);
    if (g.chunks) {
        b.nc = MIN(B, g.chunks);
        parallel_run(b.nc, bwd_chunk, &b);
        if (g.thr > 1) {
            for (int k = 0; k < b.nc; k++) {
                double *pb;
                float *pw;
                chunk_part(&b, k, &pb, &pw);
                for (int f = 0; f < F; f++) b.ws.dbs[f] += pb[f];
            }
            parallel_for(g.KKC * (size_t)F, PARALLEL_GRAIN, reduce_parts, &b);
        }
    }
    for (b.i0 = 0; !g.chunks && (b.i0 < B || b.pn); b.i0 += b.n) {
        b.n = MIN(g.grp, B - b.i0);
        parallel_run((b.pn ? b.nunits : 0) + b.n, bwd_step, &b);
        for (int j = 0; j < b.n; j++) {
            const float *ds = slot_ws(&b.ws, &g, b.s0 + j).dsum;
            for (int f = 0; f < F; f++) b.ws.dbs[f] += ds[f];
        }
        b.p0 = b.s0, b.pn = b.n;
        /* Two sets of slots with threads; one thread runs the tiles of the
         * previous image before the next one's pass 1: one slot, in cache. */
        b.s0 = b.s0 || g.thr == 1 ? 0 : g.grp;
    }
    for (int f = 0; f < F; f++) db[f] += (float)b.ws.dbs[f];
    Unpack u = {&g, dw, b.ws.dwp};
    parallel_for((size_t)F, filter_grain(&g), unpack_filters, &u);
}
