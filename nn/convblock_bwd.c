/* convblock_bwd: the backward of the fused conv blocks (nn/convblock.h),
 * by chunks of images when the weight gradient is small (each chunk its own
 * partial gradients, added in chunk order) or by tiles of the weight
 * gradient over groups of images; the input gradient's tiles add straight
 * into din. The geometry, workspace and kernels are nn/convblock_impl.h's. */
#include "convblock.h"

#include <stdatomic.h>
#include <string.h>

#include "convblock_impl.h"
#include "parallel.h"
#include "util.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

/* Filters [lo, hi) of wt (F, KKC) for the input gradient: wt[f][kh][kw][c]. */
static void pack_filters(void *p, size_t lo, size_t hi) {
    const Pack *k = p;
    int C = k->g->C, K = k->g->K;
    size_t KKC = k->g->KKC;
    for (size_t f = lo; f < hi; f++)
        for (int c = 0; c < C; c++)
            for (int kk = 0; kk < K * K; kk++)
                k->dst[f * KKC + (size_t)kk * C + c] = k->w[(f * C + c) * K * K + kk];
}

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
                __m512i ai =
                    _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(a + o * F + f)));
                for (int s = 0; s < 4; s++)
                    _mm512_storeu_ps(
                        c + s * F, _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(ai, _mm512_set1_epi32(s)), x));
                sum = _mm512_mask_add_ps(
                    sum, _mm512_cmpneq_epi32_mask(ai, _mm512_set1_epi32(CONVBLOCK_ARG_NONE)), sum, x);
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
            for (int r = 0; r < R; r++)
                memcpy(patch + q * ld + (size_t)r * T, pix[q] + r * rs, (size_t)T * 4);
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
    if (!convblock_simd(g)) return 1;
    int n = 0, V, KT;
    for (int f0 = 0; f0 < g->F; f0 += 64) n += tiles_in_block(g, f0, &V, &KT);
    return n;
}

static Tile tile_at(const Geo *g, int k) {
    Tile t = {0, 0, 0, 0, 0};
    if (!convblock_simd(g)) return t;
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
                for (size_t f = 0; f < (convblock_simd(g) ? 16 * (size_t)t->V : F); f++) dw[f] += x * d[f];
            }
}

/* din of image i (HWC, zeroed here) from cb and wt (F, KKC). */
static void input_grad(float *dini, const float **dinp, const float *cb, const float *wt, const Geo *g) {
    size_t F = (size_t)g->F;
    int nq = (int)g->nqi;
    memset(dini, 0, g->HWC * sizeof *dini);
    convblock_pixel_list(dinp, dini, g, 0, 1);
#ifdef __AVX512F__
    if (convblock_simd(g)) {
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
    /* by images: nc chunks in nseg segments; next[s]: segment s's first
     * chunk not in its sum yet */
    int nc, nseg;
    atomic_int next[CHUNK_SEGS];
} Bwd;

/* Pass 1, image i: its conv gradient, bias terms, pixel list (and patches)
 * into slot s, and its input gradient. */
static void image_pass1(const Bwd *b, const SlotWs *s, const ThreadWs *t, int i) {
    const Geo *g = b->g;
    expand(s->cb, s->dsum, t->tmp, b->dout, b->out, b->arg, g, i);
    convblock_pixel_list(s->pix, b->in, g, i, 1);
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
        ThreadWs t = convblock_thread_ws(&b->ws, b->g, tid);
        SlotWs s = convblock_slot_ws(&b->ws, b->g, b->s0 + c - units);
        image_pass1(b, &s, &t, b->i0 + c - units);
        return;
    }
    size_t k0, k1;
    parallel_split((size_t)b->ntiles, b->nunits, c, &k0, &k1);
    for (int j = 0; j < b->pn; j++) {
        SlotWs s = convblock_slot_ws(&b->ws, b->g, b->p0 + j);
        image_tiles(b->ws.dwp, &s, b->g, k0, k1);
    }
}

/* ---- the backward by chunks of images -----------------------------------
 * The chunks' partial gradients are added up in CHUNK_SEGS segments of
 * consecutive chunks (fixed by the chunk count): a segment's sum is its
 * first chunk's partials, then each next chunk's added in order; dwp, dbs
 * = segment 0's sum, then segments 1, 2, ... added in order. The same
 * additions for any thread count, and each thread's own range of chunks
 * (nn/parallel) covers whole segments at 1, 2 and 4 threads, so that its
 * chunks are added as they end, their partials still in its cache. */

/* Buffer k: bias sums pb (F doubles), then the weight gradient pw. */
static void part_buf(const Bwd *b, int k, double **pb, float **pw) {
    float *p = b->ws.part + (size_t)k * b->ws.part_floats;
    *pb = (double *)(void *)p;
    *pw = p + ((2 * (size_t)b->g->F + 15) & ~(size_t)15);
}

/* Segment s's sum: dbs, dwp for segment 0, else buffer s - 1. */
static void seg_sum(const Bwd *b, int s, double **pb, float **pw) {
    if (s == 0)
        *pb = b->ws.dbs, *pw = b->ws.dwp;
    else
        part_buf(b, s - 1, pb, pw);
}

/* Chunk c's buffer when it is added later (threads only). */
static int kept_buf(const Bwd *b, int c) { return CHUNK_SEGS - 1 + b->g->thr + c; }

/* Part k of n items cut into `parts`: [k n / parts, (k + 1) n / parts),
 * as nn/parallel cuts a run's chunks into the threads' shares, so that
 * the shares of 1, 2 and 4 threads are whole segments, and the images of a
 * share are as many as the batch allows (40 chunks of 256 images: 6 and 7
 * in turn, 128 in each half). */
static size_t part_start(size_t n, int parts, int k) { return n * (size_t)k / (size_t)parts; }

/* Segment s: chunks [*lo, *hi). */
static void seg_range(const Bwd *b, int s, int *lo, int *hi) {
    *lo = (int)part_start((size_t)b->nc, b->nseg, s), *hi = (int)part_start((size_t)b->nc, b->nseg, s + 1);
}

/* sb, sw (a segment's sum) += pb, pw over the elements [lo, hi) of the
 * weight gradient, and the bias sums if bias. */
static void add_into(double *sb, float *sw, const double *pb, const float *pw, int F, size_t lo, size_t hi,
                     int bias) {
    if (bias)
        for (int f = 0; f < F; f++) sb[f] += pb[f];
    for (size_t i = lo; i < hi; i++) sw[i] += pw[i];
}

/* Chunk c: its images in order, each one's pass 1 and then its tiles, into
 * partial gradients (the conv gradient stays in this thread's cache, as on
 * one thread). A segment's first chunk writes its sum; a chunk that is next
 * in its segment (next[s]: the first chunk not in the sum yet, moved on
 * only by the thread running it) when it starts works in its thread's
 * buffer, and one that is next when it ends is added; the others keep
 * their own buffer for convblock_backward to add after the run. */
static void bwd_chunk(void *p, int c, int tid) {
    Bwd *b = p;
    const Geo *g = b->g;
    size_t nw = g->KKC * (size_t)g->F;
    size_t lo = part_start((size_t)b->B, b->nc, c), hi = part_start((size_t)b->B, b->nc, c + 1);
    int s = 0, s0, s1;
    for (seg_range(b, s, &s0, &s1); c >= s1; seg_range(b, s, &s0, &s1)) s++;
    int first = atomic_load_explicit(&b->next[s], memory_order_acquire) == c;
    double *pb, *sb;
    float *pw, *sw;
    seg_sum(b, s, &sb, &sw);
    if (c == s0)
        pb = sb, pw = sw;
    else
        part_buf(b, first ? CHUNK_SEGS - 1 + tid : kept_buf(b, c), &pb, &pw);
    memset(pb, 0, (size_t)g->F * sizeof *pb);
    memset(pw, 0, nw * sizeof *pw);
    ThreadWs t = convblock_thread_ws(&b->ws, g, tid);
    SlotWs sl = convblock_slot_ws(&b->ws, g, tid);
    for (size_t i = lo; i < hi; i++) {
        image_pass1(b, &sl, &t, (int)i);
        for (int f = 0; f < g->F; f++) pb[f] += sl.dsum[f];
        image_tiles(pw, &sl, g, 0, (size_t)b->ntiles);
    }
    if (first || atomic_load_explicit(&b->next[s], memory_order_acquire) == c) {
        if (c != s0) add_into(sb, sw, pb, pw, g->F, 0, nw, 1);
        atomic_store_explicit(&b->next[s], c + 1, memory_order_release);
    }
}

/* After the run, for the elements [lo, hi): each segment's kept chunks
 * (from next[s] on) added to its sum in order, then segments 1, 2, ... to
 * dwp in order. */
static void add_rest(void *p, size_t lo, size_t hi) {
    const Bwd *b = p;
    for (int s = 0; s < b->nseg; s++) {
        int s0, s1;
        seg_range(b, s, &s0, &s1);
        double *sb, *pb;
        float *sw, *pw;
        seg_sum(b, s, &sb, &sw);
        for (int k = atomic_load_explicit(&b->next[s], memory_order_relaxed); k < s1; k++) {
            part_buf(b, kept_buf(b, k), &pb, &pw);
            add_into(sb, sw, pb, pw, b->g->F, lo, hi, 0);
        }
        if (s > 0) add_into(NULL, b->ws.dwp, NULL, sw, 0, lo, hi, 0);
    }
}

/* The backward by chunks of images. */
static void backward_by_images(Bwd *b) {
    const Geo *g = b->g;
    b->nc = MIN(b->B, g->chunks);
    b->nseg = MIN(CHUNK_SEGS, b->nc);
    for (int s = 0; s < b->nseg; s++) {
        int s0, s1;
        seg_range(b, s, &s0, &s1);
        atomic_init(&b->next[s], s0);
    }
    parallel_run(b->nc, bwd_chunk, b);
    for (int s = 0; s < b->nseg; s++) { /* the bias sums, as add_rest does the weights */
        int s0, s1;
        seg_range(b, s, &s0, &s1);
        double *sb, *pb;
        float *sw, *pw;
        seg_sum(b, s, &sb, &sw);
        for (int k = atomic_load(&b->next[s]); k < s1; k++) {
            part_buf(b, kept_buf(b, k), &pb, &pw);
            add_into(sb, sw, pb, pw, g->F, 0, 0, 1);
        }
        if (s > 0) add_into(b->ws.dbs, NULL, sb, NULL, g->F, 0, 0, 1);
    }
    parallel_for(g->KKC * (size_t)g->F, PARALLEL_GRAIN, add_rest, b);
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
void convblock_backward(float *din, float *dw, float *db, const float *dout, const float *out,
                        const uint8_t *arg, const float *in, const float *w, int B, int C, int H, int W,
                        int F, int K, int stride, int pool, int out_nchw, float *wsp) {
    Geo g = convblock_geo(C, H, W, F, K, stride, pool, out_nchw);
    Bwd b;
    memset(&b, 0, sizeof b);
    b.g = &g, b.din = din, b.dout = dout, b.out = out, b.in = in, b.end = in + (size_t)B * g.HWC, b.arg = arg;
    b.B = B, b.ntiles = tile_count(&g);
    convblock_ws_layout(&b.ws, wsp, &g);
    b.nunits = g.thr == 1 ? 1 : MIN(b.ntiles, 4 * g.thr);
    if (din) {
        Pack pk = {&g, b.ws.pack, w};
        parallel_for((size_t)F, convblock_filter_grain(&g), pack_filters, &pk);
    }
    memset(b.ws.dwp, 0, g.KKC * (size_t)F * sizeof *b.ws.dwp);
    memset(b.ws.dbs, 0, (size_t)F * sizeof *b.ws.dbs);
    if (g.chunks) backward_by_images(&b);
    for (b.i0 = 0; !g.chunks && (b.i0 < B || b.pn); b.i0 += b.n) {
        b.n = MIN(g.grp, B - b.i0);
        parallel_run((b.pn ? b.nunits : 0) + b.n, bwd_step, &b);
        for (int j = 0; j < b.n; j++) {
            const float *ds = convblock_slot_ws(&b.ws, &g, b.s0 + j).dsum;
            for (int f = 0; f < F; f++) b.ws.dbs[f] += ds[f];
        }
        b.p0 = b.s0, b.pn = b.n;
        /* Two sets of slots with threads; one thread runs the tiles of the
         * previous image before the next one's pass 1: one slot, in cache. */
        b.s0 = b.s0 || g.thr == 1 ? 0 : g.grp;
    }
    for (int f = 0; f < F; f++) db[f] += (float)b.ws.dbs[f];
    Unpack u = {&g, dw, b.ws.dwp};
    parallel_for((size_t)F, convblock_filter_grain(&g), unpack_filters, &u);
}
