/* triplet: see triplet.h. The miners work on the distance matrix of a block
 * of anchors against the pool (one sgemm per block, mine_block_rows).
 * Batch-all touches every entry, so it accumulates dL/dd into a second
 * matrix, turns each row into G = dL/dd / d while it is in cache and
 * finishes each block with the distance backward (dist_backward_rows; the
 * column sums over all the blocks, dist_backward_cols, at the end);
 * batch-hard and semi-hard add each chosen term's two pairs straight into
 * dE, block after block. The inner loops are written in interleaved lanes
 * (or lanes.h vectors, or AVX-512 where present) so that they vectorise
 * without -ffast-math. */
#include "triplet.h"

#include <float.h>
#include <math.h>
#include <string.h>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include "../nn/parallel.h"
#include "../nn/util.h"
#include "distance.h"
#include "lanes.h"

/* Anchor rows per chunk of the row pass. */
#define ROW_GRAIN 8

/* The workspace (MineWs): dd holds the sparse miners' chosen positives and
 * tmp their negatives (int32, row r at r N); rows are LossStats; 3 N floats
 * of scratch per thread. */
#define ROW_SCRATCH(N) (3 * (size_t)(N))

size_t triplet_workspace_floats(int N, int Na) {
    return mine_ws_layout(NULL, NULL, N, Na, sizeof(LossStats), ROW_SCRATCH(N));
}

size_t triplet_chosen_capacity(MiningStrategy miner, int N, int Na) {
    switch (miner) {
    case MINE_BATCH_HARD:
        return (size_t)Na;
    case MINE_SEMI_HARD:
        return (size_t)Na * (size_t)(N > 0 ? N - 1 : 0);
    default:
        return 0;
    }
}

/* One term from x = d_ap - d_an: returns the loss, *g = dloss/dx. */
static inline float triplet_term(float x, float margin, int soft, float *g) {
    if (soft) {
        float e = expf(-fabsf(x));
        *g = x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
        return fmaxf(x, 0.0f) + log1pf(e);
    }
    float l = x + margin;
    *g = l > 0.0f ? 1.0f : 0.0f;
    return l > 0.0f ? l : 0.0f;
}

/* Soft-margin batch-all: the fast path for one (anchor, positive) while every
 * d_ap - d_an <= SOFT_FAST_MAX. t_k = exp(d_ap - d_an_k) = ep * en[k] with
 * en[k] = exp(dmin - d_an_k) <= 1 and ep = exp(d_ap - dmin), so no exp per
 * triplet; sigmoid = t / (1 + t); the softplus terms log(1 + t) are summed as
 * logs of per-lane products of at most 16 factors (each <= 1 + e^5: no
 * overflow), so no log per triplet either. Returns the loss sum, *wp = the
 * sum of the sigmoids; cntn[k] += each sigmoid. */
#define SOFT_FAST_MAX 5.0f
#define SOFT_LANES 16

static void soft_chunk(float *restrict cntn, float *restrict w, float *restrict prod,
                       const float *restrict en, float ep, int c0, int c1) {
    for (int k = c0; k < c1; k += SOFT_LANES)
        for (int l = 0; l < SOFT_LANES; l++) {
            float t = ep * en[k + l], sg = t / (1.0f + t);
            cntn[k + l] += sg;
            w[l] += sg;
            prod[l] *= 1.0f + t;
        }
}

static double soft_positive_fast(float *wp, float *cntn, const float *en, float ep, int nneg) {
    float prod[SOFT_LANES], w[SOFT_LANES];
    for (int l = 0; l < SOFT_LANES; l++) {
        prod[l] = 1.0f;
        w[l] = 0.0f;
    }
    double loss = 0.0;
    int full = nneg - nneg % SOFT_LANES;
    for (int c0 = 0; c0 < full; c0 += SOFT_LANES * SOFT_LANES) {
        soft_chunk(cntn, w, prod, en, ep, c0, MIN(full, c0 + SOFT_LANES * SOFT_LANES));
        for (int l = 0; l < SOFT_LANES; l++) {
            loss += logf(prod[l]);
            prod[l] = 1.0f;
        }
    }
    for (int k = full; k < nneg; k++) {
        float t = ep * en[k], sg = t / (1.0f + t);
        cntn[k] += sg;
        w[0] += sg;
        loss += log1pf(t);
    }
    float sum = 0.0f;
    for (int l = 0; l < SOFT_LANES; l++) sum += w[l];
    *wp = sum;
    return loss;
}

/* The hinge's test for one triplet, exactly as the loss defines it. */
static inline int hinge_active(float dap, float dan, float margin) { return (dap - dan) + margin > 0.0f; }

/* Non-NaN floats in order as integers (-0 and +0 both 0), and back. */
static int64_t float_key(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u & 0x80000000u ? -(int64_t)(u & 0x7fffffffu) : (int64_t)u;
}

static float key_float(int64_t k) {
    uint32_t u = k < 0 ? 0x80000000u | (uint32_t)(-k) : (uint32_t)k;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* hinge_active(dap, n, margin) does not increase with n (each rounding is
 * monotone) and fails at n = +inf, so it holds exactly for n < T, T the
 * smallest float where it fails. T is near dap + margin: a few steps of one
 * ulp find it; when they do not (margin close to -dap: cancellation), a
 * bisection over the ordered floats does. A NaN d_ap or margin passes
 * nothing: T = -inf. */
float triplet_hinge_threshold(float dap, float margin) {
    if (isnan(dap) || isnan(margin)) return -INFINITY;
    float x = dap + margin;
    if (!isnan(x))
        for (int k = 0; k < 8; k++) { /* one ulp at a time: the key +- 1 */
            if (hinge_active(dap, x, margin)) {
                x = key_float(float_key(x) + 1); /* x < +inf: the test fails at +inf */
                continue;
            }
            if (x == -INFINITY) return x;
            float below = key_float(float_key(x) - 1);
            if (hinge_active(dap, below, margin)) return x;
            x = below;
        }
    int64_t lo = float_key(-INFINITY), hi = float_key(INFINITY); /* fails at hi */
    if (!hinge_active(dap, -INFINITY, margin)) return -INFINITY;
    while (hi - lo > 1) { /* holds at lo, fails at hi */
        int64_t mid = lo + (hi - lo) / 2;
        if (hinge_active(dap, key_float(mid), margin))
            lo = mid;
        else
            hi = mid;
    }
    return key_float(hi);
}

void triplet_hinge_thresholds(float *t, const float *dap, int n, float margin) {
    int i = 0;
#ifdef __AVX512F__
    const __m512 m = _mm512_set1_ps(margin), zero = _mm512_setzero_ps(), big = _mm512_set1_ps(FLT_MAX);
    const __m512i one = _mm512_set1_epi32(1);
    for (; i < n; i += 16) {
        __mmask16 in = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 d = _mm512_maskz_loadu_ps(in, dap + i), x = _mm512_add_ps(d, m);
        /* positive finite x (so x < +inf and its neighbours are the bits
         * +- 1; NaN or infinite dap or margin give NaN or infinite x, left
         * to the scalar function); zero < x <= FLT_MAX: false on NaN */
        __mmask16 todo =
            _mm512_mask_cmp_ps_mask(in, zero, x, _CMP_LT_OQ) & _mm512_cmp_ps_mask(x, big, _CMP_LE_OQ);
        __mmask16 done = 0;
        for (int k = 0; k < 8 && todo; k++) { /* as the scalar function's first loop */
            /* hinge_active(d, x, m): (d - x) + m > 0 */
            __mmask16 act =
                _mm512_mask_cmp_ps_mask(todo, _mm512_add_ps(_mm512_sub_ps(d, x), m), zero, _CMP_GT_OQ);
            __m512 below = _mm512_castsi512_ps(_mm512_sub_epi32(_mm512_castps_si512(x), one));
            __mmask16 bact = _mm512_mask_cmp_ps_mask(todo & ~act, _mm512_add_ps(_mm512_sub_ps(d, below), m),
                                                     zero, _CMP_GT_OQ);
            done |= bact; /* fails at x, holds just below: T = x */
            todo &= ~bact;
            __m512 up = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(x), one));
            x = _mm512_mask_mov_ps(x, todo, _mm512_mask_mov_ps(below, act, up));
            /* a step down from the smallest positive float gives +0, whose
             * neighbour below is not bits - 1: the scalar function's */
            todo &= _mm512_cmp_ps_mask(zero, x, _CMP_LT_OQ);
        }
        float xs[16];
        _mm512_storeu_ps(xs, x);
        for (int l = 0; l < 16 && i + l < n; l++)
            t[i + l] = (done >> l) & 1 ? xs[l] : triplet_hinge_threshold(dap[i + l], margin);
    }
#endif
    for (; i < n; i++) t[i] = triplet_hinge_threshold(dap[i], margin);
}

/* Hinge batch-all for one anchor row (drow = d(a, .), ddrow = dL/dd(a, .),
 * every entry written): with c_p = #{n : (d_ap - d_an) + margin > 0} and
 * c_n = #{p : same}, ddrow[p] = c_p, ddrow[n] = -c_n, 0 elsewhere; the loss is
 * sum_p c_p (d_ap + m) - sum_n c_n d_an, in double. Positives go
 * HINGE_BLOCK at a time over the whole row, each as its threshold
 * (triplet_hinge_threshold), the negative test folded into the mask (the
 * negatives are not compacted), and ddrow is loaded and stored once per
 * block; missing lanes of the last block use T = -inf (never active). Every
 * weight is an integer count, so the result does not depend on the blocking,
 * nor on the path: with AVX-512 and at most HINGE_RANK_MAX positives the
 * counts come from ranking the negatives among the sorted thresholds
 * instead (hinge_ranked_avx512: O(N log K) per row, not O(N K)). posd, pidx
 * (the positives' distances, then their thresholds, and their rows,
 * compacted) and rb are N entries of scratch each. */
#define HINGE_BLOCK 8

#ifdef __AVX512F__
/* hinge_row's pass over one block of positives, 16 rows at a time with
 * AVX-512 masks: per positive and chunk one compare, one masked count and
 * one masked subtract (the portable loop needs a mask-to-vector move and two
 * adds). c[q] += the counts; returns the rows done (a multiple of 16). */
static int hinge_chunks_avx512(float *ddrow, int *c, const float *t, const float *drow, const int32_t *labels,
                               int32_t la, int N) {
    __m512 T[HINGE_BLOCK];
    __m512i C[HINGE_BLOCK];
    for (int q = 0; q < HINGE_BLOCK; q++) {
        T[q] = _mm512_set1_ps(t[q]);
        C[q] = _mm512_setzero_si512();
    }
    const __m512i vla = _mm512_set1_epi32(la), ione = _mm512_set1_epi32(1);
    const __m512 one = _mm512_set1_ps(1.0f);
    int k = 0;
    for (; k + 16 <= N; k += 16) {
        __m512 n = _mm512_loadu_ps(drow + k), acc = _mm512_loadu_ps(ddrow + k);
        __mmask16 neg = _mm512_cmpneq_epi32_mask(_mm512_loadu_si512(labels + k), vla);
        for (int q = 0; q < HINGE_BLOCK; q++) {
            __mmask16 m = _mm512_mask_cmp_ps_mask(neg, n, T[q], _CMP_LT_OQ); /* NaN: false, as n < t */
            C[q] = _mm512_mask_add_epi32(C[q], m, C[q], ione);
            acc = _mm512_mask_sub_ps(acc, m, acc, one);
        }
        _mm512_storeu_ps(ddrow + k, acc);
    }
    for (int q = 0; q < HINGE_BLOCK; q++) c[q] += _mm512_reduce_add_epi32(C[q]);
    return k;
}

#define HINGE_RANK_MAX 63 /* positives the ranked path takes: a 64-entry sorted table */

/* hinge_row's ranked path (AVX-512, npos <= HINGE_RANK_MAX): with the
 * thresholds sorted, ts[0] <= ... <= ts[S-1] (padded with +inf to a power of
 * two S > npos), "n < ts[i]" holds for a suffix of i, so each negative needs
 * only r_n = #{i : !(n < ts[i])}, found by a branch-free binary search of
 * log2(S) levels (one permute from a <= 32-entry table per level) for 16
 * rows at once: c_n = npos - min(r_n, npos). A positive whose threshold
 * sits at sorted index j (any index of its run of equal values) is active
 * with n exactly when r_n <= j, so c_p = #{n : r_n <= j}: a histogram of
 * the r_n below npos and its prefix sums. The counts equal the blocked
 * pass's. thr holds the positives' thresholds; c receives c_p in that
 * order, lane[8] the negatives' loss terms (double) c_n d_an summed in
 * hinge_row's eight interleaved lanes, so that ddrow and the loss are bit
 * for bit those of the blocked pass. rb is N ints of scratch. */
static void hinge_ranked_avx512(int *c, double *lane, float *ddrow, int32_t *rb, const float *thr,
                                const float *drow, const int32_t *labels, int32_t la, int npos, int N) {
    float t[64] __attribute__((aligned(64))), ts[64] __attribute__((aligned(64)));
    int first[64];
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int i = 0; i < 64; i++) {
        t[i] = i < npos ? thr[i] : INFINITY;
        ts[i] = NAN; /* a hole: no threshold is NaN */
    }
    /* Each threshold's first sorted index, #{j : t_j < t_i} (the +inf
     * padding is never below); a run of e equal values fills its first slot
     * only, and the holes after it take the run's value. */
    int nv = (npos + 15) / 16;
    for (int i = 0; i < npos; i++) {
        __m512 ti = _mm512_set1_ps(t[i]);
        int r = 0;
        for (int j = 0; j < nv; j++)
            r += __builtin_popcount(_mm512_cmp_ps_mask(_mm512_load_ps(t + 16 * j), ti, _CMP_LT_OQ));
        first[i] = r;
        ts[r] = t[i];
    }
    for (int j = 1; j < npos; j++)
        if (isnan(ts[j])) ts[j] = ts[j - 1];
    int S = 2, L = 1;
    while (S <= npos) S *= 2, L++;
    for (int j = npos; j < S; j++) ts[j] = INFINITY;
    /* Level l (step s = S >> (l + 1)) compares with ts[r + s - 1], r a
     * multiple of 2s: entry r / 2s of tab[l], which holds ts[j * 2s + s - 1]. */
    __m512 tlo[6], thi[6];
    const __m512 inf = _mm512_set1_ps(INFINITY);
    for (int l = 0; l < L; l++) { /* 1 << l entries, the rest +inf (never indexed) */
        int s = S >> (l + 1);
        __m512i at =
            _mm512_add_epi32(_mm512_mullo_epi32(iota, _mm512_set1_epi32(2 * s)), _mm512_set1_epi32(s - 1));
        __mmask16 lo = l >= 4 ? (__mmask16)0xffff : (__mmask16)((1u << (1 << l)) - 1);
        tlo[l] = _mm512_mask_i32gather_ps(inf, lo, at, ts, 4);
        thi[l] = l == 5 ? _mm512_i32gather_ps(_mm512_add_epi32(at, _mm512_set1_epi32(32 * s)), ts, 4) : inf;
    }
    const __m512i vla = _mm512_set1_epi32(la), vnp = _mm512_set1_epi32(npos);
    __m512d acc = _mm512_setzero_pd();
    int nact = 0;
    for (int k = 0; k < N; k += 16) {
        __mmask16 in = N - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (N - k)) - 1);
        __m512 n = _mm512_maskz_loadu_ps(in, drow + k);
        __mmask16 neg = _mm512_mask_cmpneq_epi32_mask(in, _mm512_maskz_loadu_epi32(in, labels + k), vla);
        __m512i r = _mm512_setzero_si512();
        for (int l = 0; l < L; l++) {
            int sh = L - l; /* log2(2s) */
            __m512 v = _mm512_permutex2var_ps(tlo[l], _mm512_srli_epi32(r, (unsigned)sh), thi[l]);
            __mmask16 ge = _mm512_cmp_ps_mask(n, v, _CMP_NLT_UQ); /* !(n < v); NaN n: always */
            r = _mm512_mask_add_epi32(r, ge, r, _mm512_set1_epi32(1 << (sh - 1)));
        }
        __mmask16 act = _mm512_mask_cmplt_epi32_mask(neg, r, vnp);
        __m512 dd =
            _mm512_sub_ps(_mm512_setzero_ps(), _mm512_cvtepi32_ps(_mm512_maskz_sub_epi32(act, vnp, r)));
        _mm512_mask_storeu_ps(ddrow + k, in, dd);
        _mm512_mask_compressstoreu_epi32(rb + nact, act, r);
        nact += __builtin_popcount(act);
        /* hinge_row's lanes: rows k..k+7, then k+8..k+15; others add +0 */
        __m512d lo = _mm512_mul_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(dd)),
                                   _mm512_cvtps_pd(_mm512_castps512_ps256(n)));
        __m512d hi = _mm512_mul_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(dd, 1)),
                                   _mm512_cvtps_pd(_mm512_extractf32x8_ps(n, 1)));
        acc = _mm512_add_pd(acc, _mm512_maskz_mov_pd((__mmask8)neg, lo));
        acc = _mm512_add_pd(acc, _mm512_maskz_mov_pd((__mmask8)(neg >> 8), hi));
    }
    _mm512_storeu_pd(lane, acc);
    int h[4][64];
    memset(h, 0, sizeof h);
    int k = 0;
    for (; k + 4 <= nact; k += 4)
        for (int u = 0; u < 4; u++) h[u][rb[k + u]]++;
    for (; k < nact; k++) h[0][rb[k]]++;
    int H[64], run = 0;
    for (int j = 0; j < npos; j++) {
        run += h[0][j] + h[1][j] + h[2][j] + h[3][j];
        H[j] = run;
    }
    for (int i = 0; i < npos; i++) c[i] = H[first[i]];
}
#endif

/* Positive p of the row, active with c negatives: ddrow[p] += c and its
 * c (d_ap + m) loss terms. Both paths call it for the positives in order. */
static inline void hinge_positive(float *ddrow, long *active, double *loss, int c, int p, const float *drow,
                                  float margin) {
    ddrow[p] += (float)c;
    *active += c;
    *loss += (double)c * ((double)drow[p] + (double)margin);
}

static void hinge_done(LossStats *st, double loss, long active, float margin) {
    st->count += (double)active;
    st->loss_sum += loss;
    st->active += active;
    st->hardness_sum += loss - (double)margin * (double)active;
}

static void hinge_row(LossStats *st, float *restrict ddrow, float *restrict posd, int32_t *restrict pidx,
                      int32_t *restrict rb, const float *restrict drow, const int32_t *restrict labels, int a,
                      float margin, int N) {
    (void)rb; /* the ranked path's scratch (AVX-512 only) */
    int32_t la = labels[a];
    int npos = 0, j = 0;
#ifdef __AVX512F__
    { /* the positives' distances and rows, compressed 16 rows at a time */
        const __m512i vla = _mm512_set1_epi32(la), va = _mm512_set1_epi32(a);
        const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        for (; j + 16 <= N; j += 16) { /* npos <= j: the full stores stay inside N */
            __m512i vj = _mm512_add_epi32(iota, _mm512_set1_epi32(j));
            __mmask16 m = _mm512_cmpeq_epi32_mask(_mm512_loadu_si512(labels + j), vla) &
                          _mm512_cmpneq_epi32_mask(vj, va);
            _mm512_storeu_ps(posd + npos, _mm512_maskz_compress_ps(m, _mm512_loadu_ps(drow + j)));
            _mm512_storeu_si512(pidx + npos, _mm512_maskz_compress_epi32(m, vj));
            npos += __builtin_popcount(m);
        }
    }
#endif
    for (; j < N; j++) {
        posd[npos] = drow[j];
        pidx[npos] = j;
        npos += j != a && labels[j] == la;
    }
    int nneg = N - 1 - npos; /* every row but the anchor and its positives */
    st->candidates += (long)npos * nneg;
    if (npos == 0 || nneg == 0) { /* no triplet: a zero row */
        memset(ddrow, 0, (size_t)N * sizeof *ddrow);
        return;
    }
    double loss = 0.0;
    long active = 0;
    triplet_hinge_thresholds(posd, posd, npos, margin); /* in place: posd[q] is T of positive q now */
#ifdef __AVX512F__
    if (npos <= HINGE_RANK_MAX) { /* writes every entry of ddrow */
        int c[HINGE_RANK_MAX];
        double lane[8];
        hinge_ranked_avx512(c, lane, ddrow, rb, posd, drow, labels, la, npos, N);
        for (int q = 0; q < npos; q++) hinge_positive(ddrow, &active, &loss, c[q], pidx[q], drow, margin);
        for (int l = 0; l < 8; l++) loss += lane[l];
        hinge_done(st, loss, active, margin);
        return;
    }
#endif
    memset(ddrow, 0, (size_t)N * sizeof *ddrow);
    for (int p0 = 0; p0 < npos; p0 += HINGE_BLOCK) {
        float t[HINGE_BLOCK];
        int c[HINGE_BLOCK];
        for (int q = 0; q < HINGE_BLOCK; q++) {
            t[q] = p0 + q < npos ? posd[p0 + q] : -INFINITY;
            c[q] = 0;
        }
        int k = 0;
#ifdef __AVX512F__
        k = hinge_chunks_avx512(ddrow, c, t, drow, labels, la, N);
#endif
        for (; k < N; k++) { /* the rows past the last 16-row chunk, or all */
            float n = drow[k];
            int neg = labels[k] != la, sum = 0;
            for (int q = 0; q < HINGE_BLOCK; q++) {
                int act = neg & (n < t[q]);
                c[q] += act;
                sum += act;
            }
            ddrow[k] -= (float)sum;
        }
        for (int q = 0; q < HINGE_BLOCK && p0 + q < npos; q++)
            hinge_positive(ddrow, &active, &loss, c[q], pidx[p0 + q], drow, margin);
    }
    /* - sum_n c_n d_an: ddrow[n] = -c_n; eight interleaved lanes so that it
     * vectorises (positives and the anchor add zeros). */
    double lane[8] = {0};
    int k = 0;
    for (; k + 8 <= N; k += 8)
        for (int l = 0; l < 8; l++)
            lane[l] += labels[k + l] != la ? (double)ddrow[k + l] * (double)drow[k + l] : 0.0;
    for (int l = 0; k < N; k++, l++)
        lane[l] += labels[k] != la ? (double)ddrow[k] * (double)drow[k] : 0.0;
    for (int l = 0; l < 8; l++) loss += lane[l];
    hinge_done(st, loss, active, margin);
}

/* Soft-margin batch-all for one anchor row: drow = d(a, .), ddrow +=
 * dL/dd(a, .). negd, cntn and en are N floats of scratch each. Negatives are
 * compacted into negd in pool order, so the k-th entry maps back to the k-th
 * negative. */
static void soft_all_row(LossStats *st, float *ddrow, float *negd, float *cntn, float *en, const float *drow,
                         const int32_t *labels, int a, float margin, int N) {
    int32_t la = labels[a];
    int nneg = 0, npos = 0;
    double negsum = 0.0;
    float dmin = INFINITY, dapmax = -INFINITY;
    for (int j = 0; j < N; j++) {
        if (labels[j] != la) {
            negd[nneg] = drow[j];
            cntn[nneg] = 0.0f;
            negsum += drow[j];
            dmin = drow[j] < dmin ? drow[j] : dmin;
            nneg++;
        } else if (j != a) {
            dapmax = drow[j] > dapmax ? drow[j] : dapmax;
            npos++;
        }
    }
    st->candidates += (long)npos * nneg;
    if (npos == 0 || nneg == 0) return;
    int fast = dapmax - dmin <= SOFT_FAST_MAX;
    if (fast)
        for (int k = 0; k < nneg; k++) en[k] = expf(dmin - negd[k]);
    double loss = 0.0, hard = 0.0;
    long active = 0;
    for (int p = 0; p < N; p++) {
        if (p == a || labels[p] != la) continue;
        float dap = drow[p], wp = 0.0f;
        if (fast) {
            loss += soft_positive_fast(&wp, cntn, en, expf(dap - dmin), nneg);
        } else {
            float lp = 0.0f;
            for (int k = 0; k < nneg; k++) {
                float g, l = triplet_term(dap - negd[k], margin, 1, &g);
                lp += l;
                wp += g;
                cntn[k] += g;
            }
            loss += lp;
        }
        ddrow[p] += wp;
        active += nneg;
        hard += (double)nneg * dap - negsum;
    }
    int k = 0; /* scatter the per-negative weights back */
    for (int j = 0; j < N; j++) {
        if (labels[j] == la) continue;
        ddrow[j] -= cntn[k];
        k++;
    }
    st->count += (double)npos * nneg;
    st->loss_sum += loss;
    st->active += active;
    st->hardness_sum += hard;
}

/* Adds the term of (a, p, n) to the stats; drow = d(a, .). Its gradient
 * (two pairs of rows, no dense backward) is written later, by
 * sparse_grads. */
static void term_stats(LossStats *st, const float *drow, int p, int n, float margin, int soft) {
    float x = drow[p] - drow[n], g, l = triplet_term(x, margin, soft, &g);
    st->loss_sum += l;
    st->count += 1.0;
    st->active += soft || l > 0.0f;
    st->hardness_sum += x;
}

/* pl[0], nl[0] = the term of anchor a, if it has one (st->count says). */
static void batch_hard_row(LossStats *st, int32_t *pl, int32_t *nl, const float *drow, const int32_t *labels,
                           int a, float margin, int soft, int N) {
    int p, n, npos, nneg;
    dist_row_hardest(&p, &n, &npos, &nneg, drow, labels, a, 1.0f, N);
    st->candidates += (long)npos * nneg;
    if (p >= 0 && n >= 0) {
        term_stats(st, drow, p, n, margin, soft);
        pl[0] = p, nl[0] = n;
    }
}

/* The pool index j of the smallest drow[j] > x among rows with another label
 * than la, lowest index among equal distances; -1 if there is none. Sixteen
 * (minimum, index) lanes; within a lane the strict < keeps the lowest index,
 * across lanes ties are broken by index explicitly. NaN distances never
 * qualify (NaN > x is false). */
static int argmin_above(const float *drow, const int32_t *labels, int32_t la, float x, int N) {
    LaneF m, xv, inf;
    LaneI id, lav, iota;
    for (int l = 0; l < 16; l++) {
        m[l] = inf[l] = INFINITY;
        xv[l] = x;
        id[l] = -1;
        lav[l] = la;
        iota[l] = l;
    }
    int k = 0;
    for (; k + 16 <= N; k += 16) {
        LaneF d;
        LaneI lb;
        memcpy(&d, drow + k, sizeof d);
        memcpy(&lb, labels + k, sizeof lb);
        LaneI ok = (lb != lav) & (d > xv);
        LaneF v = LANE_SELECT_F(ok, d, inf);
        LaneI lt = v < m;
        m = LANE_SELECT_F(lt, v, m);
        id = LANE_SELECT_I(lt, iota + k, id);
    }
    float mv[16];
    int32_t iv[16];
    memcpy(mv, &m, sizeof mv);
    memcpy(iv, &id, sizeof iv);
    for (int l = 0; k < N; k++, l++) {
        float v = labels[k] != la && drow[k] > x ? drow[k] : INFINITY;
        if (v < mv[l]) {
            mv[l] = v;
            iv[l] = k;
        }
    }
    int best = 0;
    for (int l = 1; l < 16; l++)
        if (mv[l] < mv[best] || (mv[l] == mv[best] && iv[l] >= 0 && (iv[best] < 0 || iv[l] < iv[best]))) best = l;
    return mv[best] < INFINITY ? iv[best] : -1;
}

/* pl[k], nl[k] = the k-th term of anchor a (positives in order). */
static void semi_hard_row(LossStats *st, int32_t *pl, int32_t *nl, const float *drow, const int32_t *labels,
                          int a, float margin, int soft, int N) {
    int32_t la = labels[a];
    int unused, far, npos, nneg; /* far: the farthest negative, the fallback */
    dist_row_hardest(&unused, &far, &npos, &nneg, drow, labels, a, -1.0f, N);
    st->candidates += (long)npos * nneg;
    if (nneg == 0) return;
    int k = 0;
    for (int p = 0; p < N; p++) {
        if (p == a || labels[p] != la) continue;
        int n = argmin_above(drow, labels, la, drow[p], N); /* closest farther negative */
        pl[k] = p, nl[k] = n >= 0 ? n : far;
        term_stats(st, drow, p, nl[k], margin, soft);
        k++;
    }
}

/* ---- the pool: rows, then the stats in row order, then the gradient ----
 * Pass 1 mines anchor rows in chunks of ROW_GRAIN, each row writing only its
 * own rows of the workspace and its own LossStats; the stats are then added
 * in row order (as one loop over the rows would). The gradient: batch-all
 * through the distance backward (GEMM blocks and column sums fixed by the
 * shape); the sparse miners by chunks of DIST_DIM_GRAIN dimensions of dE,
 * each walking the chosen terms in row order. None of it depends on the
 * number of threads. */

/* One block of anchor rows [a0, a0 + Na) at a time (mine_block_rows). */
typedef struct Mine {
    MineWs w;
    float *dE;
    const float *E;
    const int32_t *labels;
    MiningStrategy miner;
    float margin;
    int soft, N, D, a0, Na;
} Mine;

static void mine_rows(void *p, int c, int tid) {
    const Mine *m = p;
    int N = m->N, a0 = m->a0;
    float *scr = m->w.scratch + (size_t)tid * m->w.per_thread;
    for (int r = c * ROW_GRAIN; r < MIN(m->Na, (c + 1) * ROW_GRAIN); r++) {
        LossStats *st = &((LossStats *)m->w.rows)[r];
        memset(st, 0, sizeof *st);
        float *ddrow = m->w.dd + (size_t)r * N;
        const float *drow = m->w.d + (size_t)r * N;
        if (m->miner == MINE_BATCH_ALL) { /* each row's dL/dd turned into G while it is in cache */
            if (m->soft) {
                memset(ddrow, 0, (size_t)N * sizeof *ddrow);
                soft_all_row(st, ddrow, scr, scr + N, scr + 2 * N, drow, m->labels, a0 + r, m->margin, N);
            } else {
                hinge_row(st, ddrow, scr, (int32_t *)(scr + N), (int32_t *)(scr + 2 * N), drow, m->labels,
                          a0 + r, m->margin, N);
            }
            m->w.rs[r] = dist_grad_row(ddrow, NULL, ddrow, drow, N);
        } else {
            int32_t *pl = (int32_t *)ddrow, *nl = (int32_t *)(m->w.tmp + (size_t)r * N);
            if (m->miner == MINE_BATCH_HARD)
                batch_hard_row(st, pl, nl, drow, m->labels, a0 + r, m->margin, m->soft, N);
            else
                semi_hard_row(st, pl, nl, drow, m->labels, a0 + r, m->margin, m->soft, N);
        }
    }
}

/* Dimensions [k0, k1) of the sparse miners' gradient, terms in row order. */
static void sparse_grads(void *p, size_t k0, size_t k1) {
    const Mine *m = p;
    int N = m->N, D = m->D;
    for (int r = 0; r < m->Na; r++) {
        const float *drow = m->w.d + (size_t)r * N;
        const int32_t *pl = (const int32_t *)(m->w.dd + (size_t)r * N),
                      *nl = (const int32_t *)(m->w.tmp + (size_t)r * N);
        int a = m->a0 + r, cnt = (int)((LossStats *)m->w.rows)[r].count;
        for (int k = 0; k < cnt; k++) {
            int pp = pl[k], n = nl[k];
            float g;
            triplet_term(drow[pp] - drow[n], m->margin, m->soft, &g);
            dist_pair_update(m->dE, m->E, a, pp, g * dist_inv(drow[pp]), D, (int)k0, (int)k1);
            dist_pair_update(m->dE, m->E, a, n, -g * dist_inv(drow[n]), D, (int)k0, (int)k1);
        }
    }
}

LossStats triplet_loss(float *dE, IndexTriplet *chosen, float *ws, const float *E, const int32_t *labels,
                       MiningStrategy miner, float margin, int soft, int N, int D, int a0, int a1) {
    ASSERT(N > 0 && D > 0 && 0 <= a0 && a0 <= a1 && a1 <= N);
    ASSERT(miner == MINE_BATCH_ALL || miner == MINE_BATCH_HARD || miner == MINE_SEMI_HARD);
    ASSERT(!(miner == MINE_BATCH_ALL && chosen));
    LossStats st = {0};
    if (a1 == a0) return st;
    Mine m = {{0}, dE, E, labels, miner, margin, soft, N, D, a0, 0};
    mine_ws_layout(&m.w, ws, N, a1 - a0, sizeof(LossStats), ROW_SCRATCH(N));
    long nch = 0;
    for (int b0 = a0; b0 < a1; b0 += m.w.block) { /* the blocks of anchors, in order */
        m.a0 = b0, m.Na = MIN(m.w.block, a1 - b0);
        const float *A = E + (size_t)b0 * D;
        dist_matrix(m.w.d, A, E, m.Na, N, D, m.w.tmp);
        parallel_run((m.Na + ROW_GRAIN - 1) / ROW_GRAIN, mine_rows, &m);
        for (int r = 0; r < m.Na; r++) {
            const LossStats *row = &((const LossStats *)m.w.rows)[r];
            loss_stats_add(&st, row);
            const int32_t *pl = (const int32_t *)(m.w.dd + (size_t)r * N),
                          *nl = (const int32_t *)(m.w.tmp + (size_t)r * N);
            for (int k = 0; chosen && k < (int)row->count; k++)
                chosen[nch++] = (IndexTriplet){b0 + r, pl[k], nl[k]};
        }
        if (miner == MINE_BATCH_ALL) { /* G = dd by now, rs filled by the rows */
            (b0 == a0 ? dist_col_sums : dist_col_sums_add)(m.w.cs, m.w.dd, m.Na, N);
            dist_backward_rows(dE + (size_t)b0 * D, dE, m.w.dd, m.w.rs, A, E, m.Na, N, D);
        } else {
            parallel_for((size_t)D, DIST_DIM_GRAIN, sparse_grads, &m);
        }
    }
    if (miner == MINE_BATCH_ALL) dist_backward_cols(dE, m.w.cs, E, N, D);
    return st;
}

typedef struct ListGrad {
    float *dE;
    const float *E;
    const IndexTriplet *t;
    float margin;
    int soft, D, t0, t1;
} ListGrad;

/* Dimensions [k0, k1) of the list loss's gradient, triplets in order. */
static void list_grads(void *p, size_t k0, size_t k1) {
    const ListGrad *q = p;
    int D = q->D;
    for (int k = q->t0; k < q->t1; k++) {
        int a = q->t[k].a, pp = q->t[k].p, n = q->t[k].n;
        const float *ea = q->E + (size_t)a * D;
        float dap = dist_pair(ea, q->E + (size_t)pp * D, D), dan = dist_pair(ea, q->E + (size_t)n * D, D), g;
        triplet_term(dap - dan, q->margin, q->soft, &g);
        dist_pair_update(q->dE, q->E, a, pp, g * dist_inv(dap), D, (int)k0, (int)k1);
        dist_pair_update(q->dE, q->E, a, n, -g * dist_inv(dan), D, (int)k0, (int)k1);
    }
}

LossStats triplet_list_loss(float *dE, const float *E, const IndexTriplet *t, float margin, int soft, int N,
                            int D, int t0, int t1) {
    ASSERT(N > 0 && D > 0 && 0 <= t0 && t0 <= t1);
    LossStats st = {0};
    for (int k = t0; k < t1; k++) {
        int a = t[k].a, p = t[k].p, n = t[k].n;
        ASSERT(0 <= a && a < N && 0 <= p && p < N && 0 <= n && n < N);
        const float *ea = E + (size_t)a * D;
        float dap = dist_pair(ea, E + (size_t)p * D, D), dan = dist_pair(ea, E + (size_t)n * D, D);
        float x = dap - dan, g, l = triplet_term(x, margin, soft, &g);
        st.loss_sum += l;
        st.count += 1.0;
        st.active += soft || l > 0.0f;
        st.hardness_sum += x;
    }
    st.candidates = t1 - t0;
    ListGrad q = {dE, E, t, margin, soft, D, t0, t1};
    parallel_for((size_t)D, DIST_DIM_GRAIN, list_grads, &q);
    return st;
}

void triplet_list_thirds(IndexTriplet *out, int base, int B) {
    for (int k = 0; k < B; k++) out[k] = (IndexTriplet){base + k, base + B + k, base + 2 * B + k};
}
