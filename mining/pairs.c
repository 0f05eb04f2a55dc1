/* pairs: see pairs.h. The list losses compute each pair directly
 * (dist_pair, pairs_koch_logit); the miners rank the pool with the same
 * numbers (the sgemm distance matrix for contrastive) and then evaluate the
 * chosen pairs exactly as the list losses do. */
#include "pairs.h"

#include <math.h>
#include <string.h>

#include "../nn/util.h"
#include "distance.h"

size_t pairs_workspace_floats(int N, int Na) { return 3 * (size_t)Na * (size_t)N + (size_t)Na + (size_t)N; }

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

/* Adds pair (i, j, y)'s contrastive term to st and dE. */
static void contrastive_pair(LossStats *st, float *dE, const float *E, IndexPair pr, float margin, int D) {
    const float *x = E + (size_t)pr.i * D, *y = E + (size_t)pr.j * D;
    float d = dist_pair(x, y, D), g, l = contrastive_term(d, pr.y, margin, &g);
    st->loss_sum += l;
    st->count += 1.0;
    st->active += l > 0.0f;
    st->hardness_sum += pr.y ? d : -d;
    float s = g * dist_inv(d);
    if (s == 0.0f) return;
    float *gx = dE + (size_t)pr.i * D, *gy = dE + (size_t)pr.j * D;
    for (int k = 0; k < D; k++) {
        float u = s * (x[k] - y[k]);
        gx[k] += u;
        gy[k] -= u;
    }
}

LossStats pairs_contrastive(float *dE, const float *E, const IndexPair *pairs, float margin, int N, int D,
                            int k0, int k1) {
    ASSERT(N > 0 && D > 0 && 0 <= k0 && k0 <= k1);
    LossStats st = {0};
    for (int k = k0; k < k1; k++) {
        ASSERT(0 <= pairs[k].i && pairs[k].i < N && 0 <= pairs[k].j && pairs[k].j < N);
        contrastive_pair(&st, dE, E, pairs[k], margin, D);
    }
    st.candidates = k1 - k0;
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
 * st; returns dl/dz = sigmoid(z) - y. */
static float bce_logit(LossStats *st, float z, int y) {
    float e = expf(-fabsf(z));
    float l = fmaxf(z, 0.0f) - (y ? z : 0.0f) + log1pf(e);
    float sig = z >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    st->loss_sum += l;
    st->count += 1.0;
    st->active += l > 0.0f;
    st->hardness_sum += y ? -z : z;
    return sig - (y ? 1.0f : 0.0f);
}

LossStats pairs_bce_logits(float *dz, const float *z, const uint8_t *same, int k0, int k1) {
    ASSERT(0 <= k0 && k0 <= k1);
    LossStats st = {0};
    for (int k = k0; k < k1; k++) dz[k] += bce_logit(&st, z[k], same[k] != 0);
    st.candidates = k1 - k0;
    return st;
}

static void koch_pair(LossStats *st, float *dE, float *dw, float *db, const float *E, IndexPair pr,
                      const float *w, float b, int D) {
    const float *x = E + (size_t)pr.i * D, *y = E + (size_t)pr.j * D;
    float g = bce_logit(st, pairs_koch_logit(x, y, w, b, D), pr.y);
    *db += g;
    float *gx = dE + (size_t)pr.i * D, *gy = dE + (size_t)pr.j * D;
    for (int k = 0; k < D; k++) {
        float u = x[k] - y[k];
        float sg = u > 0.0f ? 1.0f : (u < 0.0f ? -1.0f : 0.0f);
        dw[k] += g * fabsf(u);
        gx[k] += g * w[k] * sg;
        gy[k] -= g * w[k] * sg;
    }
}

LossStats pairs_koch(float *dE, float *dw, float *db, const float *E, const IndexPair *pairs, const float *w,
                     float b, int N, int D, int k0, int k1) {
    ASSERT(N > 0 && D > 0 && 0 <= k0 && k0 <= k1);
    LossStats st = {0};
    for (int k = k0; k < k1; k++) {
        ASSERT(0 <= pairs[k].i && pairs[k].i < N && 0 <= pairs[k].j && pairs[k].j < N);
        koch_pair(&st, dE, dw, db, E, pairs[k], w, b, D);
    }
    st.candidates = k1 - k0;
    return st;
}

/* Appends the chosen pairs of anchor a to list (positive first); returns how many. */
static int hard_pairs_of(IndexPair *list, int a, int p, int n) {
    int m = 0;
    if (p >= 0) list[m++] = (IndexPair){a, p, 1};
    if (n >= 0) list[m++] = (IndexPair){a, n, 0};
    return m;
}

LossStats pairs_contrastive_hard(float *dE, IndexPair *chosen, float *ws, const float *E,
                                 const int32_t *labels, float margin, int N, int D, int a0, int a1) {
    ASSERT(N > 0 && D > 0 && 0 <= a0 && a0 <= a1 && a1 <= N);
    LossStats st = {0};
    int Na = a1 - a0;
    if (Na == 0) return st;
    float *d = ws, *tmp = ws + (size_t)Na * N;
    dist_matrix(d, E + (size_t)a0 * D, E, Na, N, D, tmp);
    long nchosen = 0;
    for (int r = 0; r < Na; r++) {
        int p, n, npos, nneg;
        IndexPair two[2];
        dist_row_hardest(&p, &n, &npos, &nneg, d + (size_t)r * N, labels, a0 + r, 1.0f, N);
        int m = hard_pairs_of(two, a0 + r, p, n);
        for (int q = 0; q < m; q++) {
            contrastive_pair(&st, dE, E, two[q], margin, D);
            if (chosen) chosen[nchosen] = two[q];
            nchosen++;
        }
    }
    st.candidates = (long)Na * (N - 1);
    return st;
}

LossStats pairs_koch_hard(float *dE, float *dw, float *db, IndexPair *chosen, float *ws, const float *E,
                          const int32_t *labels, const float *w, float b, int N, int D, int a0, int a1) {
    ASSERT(N > 0 && D > 0 && 0 <= a0 && a0 <= a1 && a1 <= N);
    LossStats st = {0};
    int Na = a1 - a0;
    long nchosen = 0;
    float *z = ws;
    for (int r = 0; r < Na; r++) {
        int a = a0 + r, p, n, npos, nneg;
        const float *x = E + (size_t)a * D;
        for (int j = 0; j < N; j++) z[j] = pairs_koch_logit(x, E + (size_t)j * D, w, b, D);
        IndexPair two[2];
        dist_row_hardest(&p, &n, &npos, &nneg, z, labels, a, -1.0f, N); /* lowest / highest z */
        int m = hard_pairs_of(two, a, p, n);
        for (int q = 0; q < m; q++) {
            koch_pair(&st, dE, dw, db, E, two[q], w, b, D);
            if (chosen) chosen[nchosen] = two[q];
            nchosen++;
        }
    }
    st.candidates = (long)Na * (N - 1);
    return st;
}

LossStats pairs_contrastive_all(float *dE, float *ws, const float *E, const int32_t *labels, float margin,
                                int N, int D, int a0, int a1) {
    ASSERT(N > 0 && D > 0 && 0 <= a0 && a0 <= a1 && a1 <= N);
    LossStats st = {0};
    int Na = a1 - a0;
    if (Na == 0) return st;
    size_t nn = (size_t)Na * N;
    float *d = ws, *dd = ws + nn, *tmp = ws + 2 * nn;
    const float *A = E + (size_t)a0 * D;
    dist_matrix(d, A, E, Na, N, D, tmp);
    for (int r = 0; r < Na; r++) {
        int a = a0 + r;
        const float *drow = d + (size_t)r * N;
        float *ddrow = dd + (size_t)r * N;
        double lsum = 0.0, hsum = 0.0;
        long act = 0;
        for (int j = 0; j < N; j++) {
            ddrow[j] = 0.0f;
            if (j == a) continue;
            int y = labels[j] == labels[a];
            float g, l = contrastive_term(drow[j], y, margin, &g);
            lsum += l;
            act += l > 0.0f;
            hsum += y ? drow[j] : -drow[j];
            ddrow[j] = g;
        }
        st.loss_sum += lsum;
        st.active += act;
        st.hardness_sum += hsum;
    }
    st.count = (double)nn - Na;
    st.candidates = (long)nn - Na;
    dist_matrix_backward(dE + (size_t)a0 * D, dE, dd, d, A, E, Na, N, D, tmp);
    return st;
}

void pairs_list_halves(IndexPair *out, const int32_t *labels, int base, int B) {
    for (int k = 0; k < B; k++) {
        int i = base + k, j = base + B + k;
        out[k] = (IndexPair){i, j, labels[i] == labels[j]};
    }
}
