/* pairs: see pairs.h. The list losses compute each pair directly
 * (dist_pair, pairs_koch_logit); the miners rank the pool with the same
 * numbers (the sgemm distance matrix for contrastive) and then evaluate the
 * chosen pairs exactly as the list losses do. */
#include "pairs.h"

#include <math.h>
#include <string.h>

#include "../nn/parallel.h"
#include "../nn/util.h"
#include "distance.h"

/* Anchor rows per chunk of the row pass. */
#define ROW_GRAIN 8

/* One anchor row's result: its stats and its hard pairs (the positive's
 * and the negative's pool row, -1 for none, and dl/dd / d or dl/dz). */
typedef struct PairRow {
    LossStats st;
    int32_t pn[2];
    float g[2];
} PairRow;

/* The workspace (MineWs): rows are PairRow; N floats of scratch per thread
 * (the Koch logits). */
size_t pairs_workspace_floats(int N, int Na) { return mine_ws_layout(NULL, NULL, N, Na, sizeof(PairRow), N); }

/* Contrastive term of one pair at distance d: returns the loss, *g = dl/dd. */
static inline float contrastive_term(float d, int y, float margin, float *g) {
    if (y) {
        *g = 2.0f * d;
        return d * d;
    }
    float h = margin - d;
    if (h > 0.0f) {
        *g = -2.0f * h;
        return h * h;
    }
    *g = 0.0f;
    return 0.0f;
}

/* Adds pair (i, j, y)'s contrastive term to st; returns dl/dd / d, the
 * scale of its gradient (dist_pair_update). */
static float contrastive_pair(LossStats *st, const float *E, IndexPair pr, float margin, int D) {
    const float *x = E + (size_t)pr.i * D, *y = E + (size_t)pr.j * D;
    float d = dist_pair(x, y, D), g, l = contrastive_term(d, pr.y, margin, &g);
    if (st) {
        st->loss_sum += l;
        st->count += 1.0;
        st->active += l > 0.0f;
        st->hardness_sum += pr.y ? d : -d;
    }
    return g * dist_inv(d);
}

/* The gradients of a list of pair terms, in list order, on chunks of
 * dimensions (see distance.h): pairs[k0 .. k1) or, when pairs is NULL, the
 * hard pairs of the anchor rows [0, k1) in ws. */
typedef struct PairGrad {
    float *dE, *dw;
    const float *E, *w;
    const IndexPair *pairs;
    const MineWs *ws;
    float margin, b;
    int koch, N, D, k0, k1, a0;
} PairGrad;

/* The Koch head's gradient of pair pr with dl/dz = g, dimensions [k0, k1). */
static void koch_update(float *dE, float *dw, const float *E, IndexPair pr, const float *w, float g, int D,
                        int k0, int k1) {
    const float *x = E + (size_t)pr.i * D, *y = E + (size_t)pr.j * D;
    float *gx = dE + (size_t)pr.i * D, *gy = dE + (size_t)pr.j * D;
    for (int k = k0; k < k1; k++) {
        float u = x[k] - y[k];
        float sg = u > 0.0f ? 1.0f : (u < 0.0f ? -1.0f : 0.0f);
        dw[k] += g * fabsf(u);
        gx[k] += g * w[k] * sg;
        gy[k] -= g * w[k] * sg;
    }
}

static float koch_grad_of(const float *E, IndexPair pr, const float *w, float b, int D);

static void pair_update(const PairGrad *q, IndexPair pr, float g, int k0, int k1) {
    if (q->koch)
        koch_update(q->dE, q->dw, q->E, pr, q->w, g, q->D, k0, k1);
    else
        dist_pair_update(q->dE, q->E, pr.i, pr.j, g, q->D, k0, k1);
}

static void pair_grads(void *p, size_t lo, size_t hi) {
    const PairGrad *q = p;
    int k0 = (int)lo, k1 = (int)hi;
    if (q->pairs) {
        for (int k = q->k0; k < q->k1; k++) {
            IndexPair pr = q->pairs[k];
            float g = q->koch ? koch_grad_of(q->E, pr, q->w, q->b, q->D)
                              : contrastive_pair(NULL, q->E, pr, q->margin, q->D);
            pair_update(q, pr, g, k0, k1);
        }
        return;
    }
    for (int r = 0; r < q->k1; r++) {
        const PairRow *pr = &((const PairRow *)q->ws->rows)[r];
        for (int h = 0; h < 2; h++)
            if (pr->pn[h] >= 0) pair_update(q, (IndexPair){q->a0 + r, pr->pn[h], h == 0}, pr->g[h], k0, k1);
    }
}

LossStats pairs_contrastive(float *dE, const float *E, const IndexPair *pairs, float margin, int N, int D,
                            int k0, int k1) {
    ASSERT(N > 0 && D > 0 && 0 <= k0 && k0 <= k1);
    LossStats st = {0};
    for (int k = k0; k < k1; k++) {
        ASSERT(0 <= pairs[k].i && pairs[k].i < N && 0 <= pairs[k].j && pairs[k].j < N);
        contrastive_pair(&st, E, pairs[k], margin, D);
    }
    st.candidates = k1 - k0;
    PairGrad q = {.dE = dE, .E = E, .pairs = pairs, .margin = margin, .N = N, .D = D, .k0 = k0, .k1 = k1};
    parallel_for((size_t)D, DIST_DIM_GRAIN, pair_grads, &q);
    return st;
}

/* Eight partial sums so that the loop vectorises without -ffast-math; the
 * order is fixed, so mining and loss see the same logit. */
float pairs_koch_logit(const float *x, const float *y, const float *w, float b, int D) {
    float acc[8] = {0};
    int k = 0;
    for (; k + 8 <= D; k += 8)
        for (int l = 0; l < 8; l++) acc[l] += w[k + l] * fabsf(x[k + l] - y[k + l]);
    for (int l = 0; k < D; k++, l++) acc[l] += w[k] * fabsf(x[k] - y[k]);
    return b + (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])));
}

/* BCE with logits of one pair: max(z, 0) - z y + log(1 + exp(-|z|)) into
 * st (may be NULL); returns dl/dz = sigmoid(z) - y. */
static float bce_logit(LossStats *st, float z, int y) {
    float e = expf(-fabsf(z));
    float l = fmaxf(z, 0.0f) - (y ? z : 0.0f) + log1pf(e);
    float sig = z >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    if (st) {
        st->loss_sum += l;
        st->count += 1.0;
        st->active += l > 0.0f;
        st->hardness_sum += y ? -z : z;
    }
    return sig - (y ? 1.0f : 0.0f);
}

LossStats pairs_bce_logits(float *dz, const float *z, const uint8_t *same, int k0, int k1) {
    ASSERT(0 <= k0 && k0 <= k1);
    LossStats st = {0};
    for (int k = k0; k < k1; k++) dz[k] += bce_logit(&st, z[k], same[k] != 0);
    st.candidates = k1 - k0;
    return st;
}

/* Adds the Koch head's BCE term of pair pr to st (may be NULL) and dl/dz to
 * *db (may be NULL); returns dl/dz. */
static float koch_pair(LossStats *st, float *db, const float *E, IndexPair pr, const float *w, float b,
                       int D) {
    const float *x = E + (size_t)pr.i * D, *y = E + (size_t)pr.j * D;
    float g = bce_logit(st, pairs_koch_logit(x, y, w, b, D), pr.y);
    if (db) *db += g;
    return g;
}

static float koch_grad_of(const float *E, IndexPair pr, const float *w, float b, int D) {
    return koch_pair(NULL, NULL, E, pr, w, b, D);
}

LossStats pairs_koch(float *dE, float *dw, float *db, const float *E, const IndexPair *pairs, const float *w,
                     float b, int N, int D, int k0, int k1) {
    ASSERT(N > 0 && D > 0 && 0 <= k0 && k0 <= k1);
    LossStats st = {0};
    for (int k = k0; k < k1; k++) {
        ASSERT(0 <= pairs[k].i && pairs[k].i < N && 0 <= pairs[k].j && pairs[k].j < N);
        koch_pair(&st, db, E, pairs[k], w, b, D);
    }
    st.candidates = k1 - k0;
    PairGrad q = {.dE = dE, .dw = dw, .E = E, .w = w, .pairs = pairs, .b = b, .koch = 1, .N = N, .D = D};
    q.k0 = k0, q.k1 = k1;
    parallel_for((size_t)D, DIST_DIM_GRAIN, pair_grads, &q);
    return st;
}

/* The hard-pair miners: pass 1 over anchor rows (chunks of ROW_GRAIN) picks
 * each anchor's pairs and their stats, then the stats and `chosen` in row
 * order, then the gradients by chunks of dimensions (pair_grads). */
typedef struct Hard {
    MineWs w;
    const float *E, *hw;
    const int32_t *labels;
    float margin, hb;
    int koch, N, D, a0, Na;
} Hard;

static void hard_rows(void *p, int c, int tid) {
    const Hard *h = p;
    int N = h->N, D = h->D;
    float *z = h->w.scratch + (size_t)tid * h->w.per_thread;
    for (int r = c * ROW_GRAIN; r < MIN(h->Na, (c + 1) * ROW_GRAIN); r++) {
        int a = h->a0 + r, pn[2], npos, nneg;
        PairRow *row = &((PairRow *)h->w.rows)[r];
        memset(row, 0, sizeof *row);
        if (h->koch) {
            const float *x = h->E + (size_t)a * D;
            for (int j = 0; j < N; j++) z[j] = pairs_koch_logit(x, h->E + (size_t)j * D, h->hw, h->hb, D);
            /* the lowest / highest logit */
            dist_row_hardest(&pn[0], &pn[1], &npos, &nneg, z, h->labels, a, -1.0f, N);
        } else {
            dist_row_hardest(&pn[0], &pn[1], &npos, &nneg, h->w.d + (size_t)r * N, h->labels, a, 1.0f, N);
        }
        for (int q = 0; q < 2; q++) {
            row->pn[q] = pn[q];
            if (pn[q] < 0) continue;
            IndexPair pr = {a, pn[q], q == 0};
            row->g[q] = h->koch ? koch_pair(&row->st, NULL, h->E, pr, h->hw, h->hb, D)
                                : contrastive_pair(&row->st, h->E, pr, h->margin, D);
        }
    }
}

static LossStats hard_pairs(float *dE, float *dw, float *db, IndexPair *chosen, float *ws, const float *E,
                            const int32_t *labels, const float *w, float b, float margin, int koch, int N,
                            int D, int a0, int a1) {
    ASSERT(N > 0 && D > 0 && 0 <= a0 && a0 <= a1 && a1 <= N);
    LossStats st = {0};
    int Na = a1 - a0;
    if (Na == 0) return st;
    Hard h = {{0}, E, w, labels, margin, b, koch, N, D, a0, 0};
    mine_ws_layout(&h.w, ws, N, Na, sizeof(PairRow), N);
    long nchosen = 0;
    for (int b0 = a0; b0 < a1; b0 += h.w.block) { /* the blocks of anchors, in order */
        h.a0 = b0, h.Na = MIN(h.w.block, a1 - b0);
        if (!koch) dist_matrix(h.w.d, E + (size_t)b0 * D, E, h.Na, N, D, h.w.tmp);
        parallel_run((h.Na + ROW_GRAIN - 1) / ROW_GRAIN, hard_rows, &h);
        for (int r = 0; r < h.Na; r++) {
            const PairRow *row = &((const PairRow *)h.w.rows)[r];
            loss_stats_add(&st, &row->st);
            for (int q = 0; q < 2; q++) {
                if (row->pn[q] < 0) continue;
                if (db) *db += row->g[q];
                if (chosen) chosen[nchosen++] = (IndexPair){b0 + r, row->pn[q], q == 0};
            }
        }
        PairGrad q = {.dE = dE, .dw = dw, .E = E, .w = w, .ws = &h.w, .margin = margin, .b = b, .koch = koch};
        q.N = N, q.D = D, q.k1 = h.Na, q.a0 = b0;
        parallel_for((size_t)D, DIST_DIM_GRAIN, pair_grads, &q);
    }
    st.candidates = (long)Na * (N - 1);
    return st;
}

LossStats pairs_contrastive_hard(float *dE, IndexPair *chosen, float *ws, const float *E,
                                 const int32_t *labels, float margin, int N, int D, int a0, int a1) {
    return hard_pairs(dE, NULL, NULL, chosen, ws, E, labels, NULL, 0.0f, margin, 0, N, D, a0, a1);
}

LossStats pairs_koch_hard(float *dE, float *dw, float *db, IndexPair *chosen, float *ws, const float *E,
                          const int32_t *labels, const float *w, float b, int N, int D, int a0, int a1) {
    return hard_pairs(dE, dw, db, chosen, ws, E, labels, w, b, 0.0f, 1, N, D, a0, a1);
}

typedef struct All {
    MineWs w;
    const int32_t *labels;
    float margin;
    int N, a0, Na;
} All;

static void all_rows(void *p, int c, int tid) {
    (void)tid;
    const All *q = p;
    int N = q->N;
    for (int r = c * ROW_GRAIN; r < MIN(q->Na, (c + 1) * ROW_GRAIN); r++) {
        int a = q->a0 + r;
        const float *drow = q->w.d + (size_t)r * N;
        float *ddrow = q->w.dd + (size_t)r * N;
        double lsum = 0.0, hsum = 0.0;
        long act = 0;
        for (int j = 0; j < N; j++) {
            ddrow[j] = 0.0f;
            if (j == a) continue;
            int y = q->labels[j] == q->labels[a];
            float g, l = contrastive_term(drow[j], y, q->margin, &g);
            lsum += l;
            act += l > 0.0f;
            hsum += y ? drow[j] : -drow[j];
            ddrow[j] = g;
        }
        ((PairRow *)q->w.rows)[r].st = (LossStats){lsum, 0.0, act, 0, hsum};
        q->w.rs[r] = dist_grad_row(ddrow, NULL, ddrow, drow, N); /* G = dL/dd / d in place */
    }
}

LossStats pairs_contrastive_all(float *dE, float *ws, const float *E, const int32_t *labels, float margin,
                                int N, int D, int a0, int a1) {
    ASSERT(N > 0 && D > 0 && 0 <= a0 && a0 <= a1 && a1 <= N);
    LossStats st = {0};
    int Na = a1 - a0;
    if (Na == 0) return st;
    All q = {{0}, labels, margin, N, a0, 0};
    mine_ws_layout(&q.w, ws, N, Na, sizeof(PairRow), N);
    for (int b0 = a0; b0 < a1; b0 += q.w.block) { /* the blocks of anchors, in order */
        q.a0 = b0, q.Na = MIN(q.w.block, a1 - b0);
        const float *A = E + (size_t)b0 * D;
        dist_matrix(q.w.d, A, E, q.Na, N, D, q.w.tmp);
        parallel_run((q.Na + ROW_GRAIN - 1) / ROW_GRAIN, all_rows, &q);
        for (int r = 0; r < q.Na; r++) {
            const LossStats *row = &((const PairRow *)q.w.rows)[r].st;
            st.loss_sum += row->loss_sum;
            st.active += row->active;
            st.hardness_sum += row->hardness_sum;
        }
        (b0 == a0 ? dist_col_sums : dist_col_sums_add)(q.w.cs, q.w.dd, q.Na, N);
        dist_backward_rows(dE + (size_t)b0 * D, dE, q.w.dd, q.w.rs, A, E, q.Na, N, D);
    }
    dist_backward_cols(dE, q.w.cs, E, N, D);
    size_t nn = (size_t)Na * N;
    st.count = (double)nn - Na;
    st.candidates = (long)nn - Na;
    return st;
}

void pairs_list_halves(IndexPair *out, const int32_t *labels, int base, int B) {
    for (int k = 0; k < B; k++) {
        int i = base + k, j = base + B + k;
        out[k] = (IndexPair){i, j, labels[i] == labels[j]};
    }
}
