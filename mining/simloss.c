/* simloss: see simloss.h. Both losses take, block of anchors after block
 * (mine_block_rows), the similarity matrix of the block against the pool
 * with one sgemm, turn each row into
 * dL/ds in place (sums and exponentials in double), and finish with two
 * sgemms: dE[a0, a1) += G E and dE += G^T E[a0, a1), both scaled by the
 * factor that maps s to the logits (1/t for InfoNCE, 1 for MS). */
#include "simloss.h"

#include <cblas.h>
#include <math.h>

#include "../nn/util.h"
#include "distance.h"

size_t simloss_workspace_floats(int N, int Na) { return (size_t)mine_block_rows(N, Na) * (size_t)N; }

/* S = A E^T for anchors [a0, a1). */
static void similarities(float *S, const float *E, int N, int D, int a0, int a1) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, a1 - a0, N, D, 1.0f, E + (size_t)a0 * D, D, E, D,
                0.0f, S, N);
}

/* dE[a0, a1) += f G E and dE += f G^T E[a0, a1). */
static void backward(float *dE, const float *G, const float *E, float f, int N, int D, int a0, int a1) {
    int Na = a1 - a0;
    const float *A = E + (size_t)a0 * D;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Na, D, N, f, G, N, E, D, 1.0f, dE + (size_t)a0 * D,
                D);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, D, Na, f, G, N, A, D, 1.0f, dE, D);
}

/* log(1 + exp(x)) and its derivative, stable for any x. */
static double softplus(double x, double *sig) {
    double e = exp(-fabs(x));
    *sig = x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
    return fmax(x, 0.0) + log1p(e);
}

/* InfoNCE of anchors [a0, a1), one block: S = their similarity rows. */
static void infonce_block(LossStats *stp, float *dE, float *S, const float *E, const int32_t *labels,
                          double inv_t, float temperature, int symmetric, int N, int D, int a0, int a1) {
    LossStats st = *stp;
    similarities(S, E, N, D, a0, a1);
    for (int a = a0; a < a1; a++) {
        float *row = S + (size_t)(a - a0) * N;
        int32_t la = labels[a];
        double m = -INFINITY;
        for (int j = 0; j < N; j++)
            if (labels[j] != la) m = fmax(m, row[j] * inv_t);
        double zn = 0;
        for (int j = 0; j < N; j++)
            if (labels[j] != la) zn += exp(row[j] * inv_t - m);
        double lse = m + log(zn); /* -inf without negatives: every term is 0 */
        double w = 0;
        for (int p = 0; p < N; p++) {
            if (labels[p] != la || p == a) continue;
            if (!symmetric && p < a) {
                row[p] = 0;
                continue;
            }
            double z = row[p] * inv_t, sig = 0, l = isinf(lse) ? 0 : softplus(lse - z, &sig);
            st.loss_sum += l;
            st.count += 1;
            st.candidates++;
            st.active += m >= z;
            if (!isinf(m)) st.hardness_sum += (m - z) * temperature;
            w += sig;
            row[p] = (float)-sig;
        }
        for (int j = 0; j < N; j++)
            if (labels[j] != la) row[j] = (float)(w * exp(row[j] * inv_t - lse));
        row[a] = 0;
    }
    backward(dE, S, E, (float)inv_t, N, D, a0, a1);
    *stp = st;
}

LossStats simloss_infonce(float *dE, float *ws, const float *E, const int32_t *labels, float temperature,
                          int symmetric, int N, int D, int a0, int a1) {
    ASSERT(N > 0 && D > 0 && 0 <= a0 && a0 <= a1 && a1 <= N && temperature > 0);
    LossStats st = {0};
    if (a1 == a0) return st;
    float *S = ws;
    double inv_t = 1.0 / temperature;
    int nb = mine_block_rows(N, a1 - a0);
    for (int b0 = a0; b0 < a1; b0 += nb) /* the blocks of anchors, in order */
        infonce_block(&st, dE, S, E, labels, inv_t, temperature, symmetric, N, D, b0, MIN(a1, b0 + nb));
    return st;
}

/* One half of an anchor's MS loss, 1/k log(1 + sum_j exp(v_j)) over its
 * kept pairs, held as m = max(0, max v) and z = sum exp(v - m) so that
 * nothing overflows: log(1 + sum exp v) = m + log(exp(-m) + z). */
typedef struct MsPart {
    double m, z;
} MsPart;

/* Multi-similarity of anchors [a0, a1), one block: S = their similarity rows. */
static void ms_block(LossStats *stp, float *dE, float *S, const float *E, const int32_t *labels, float alpha,
                     float beta, float base, float eps, int mine, int N, int D, int a0, int a1) {
    LossStats st = *stp;
    similarities(S, E, N, D, a0, a1);
    for (int a = a0; a < a1; a++) {
        float *row = S + (size_t)(a - a0) * N;
        int32_t la = labels[a];
        float minp = INFINITY, maxn = -INFINITY;
        for (int j = 0; j < N; j++) {
            if (j == a) continue;
            if (labels[j] == la)
                minp = fminf(minp, row[j]);
            else
                maxn = fmaxf(maxn, row[j]);
        }
        /* Kept pairs: v_j = -alpha (s - base) (positives), beta (s - base)
         * (negatives); first pass for the maxima, second for the sums. */
        MsPart pp = {0, 0}, pn = {0, 0};
        int kp = 0, kn = 0;
        for (int pass = 0; pass < 2; pass++)
            for (int j = 0; j < N; j++) {
                if (j == a) continue;
                int pos = labels[j] == la;
                int kept = !mine || (pos ? row[j] - eps < maxn : row[j] + eps > minp);
                if (!kept) continue;
                double v = pos ? -(double)alpha * (row[j] - base) : (double)beta * (row[j] - base);
                MsPart *q = pos ? &pp : &pn;
                if (pass == 0) {
                    q->m = fmax(q->m, v);
                    kp += pos, kn += !pos;
                } else {
                    q->z += exp(v - q->m);
                }
            }
        double lp = kp ? (pp.m + log(exp(-pp.m) + pp.z)) / alpha : 0;
        double ln = kn ? (pn.m + log(exp(-pn.m) + pn.z)) / beta : 0;
        double dp = exp(-pp.m) + pp.z, dn = exp(-pn.m) + pn.z;
        for (int j = 0; j < N; j++) {
            float g = 0;
            if (j != a) {
                int pos = labels[j] == la;
                int kept = !mine || (pos ? row[j] - eps < maxn : row[j] + eps > minp);
                if (kept && pos) g = (float)(-exp(-(double)alpha * (row[j] - base) - pp.m) / dp);
                if (kept && !pos) g = (float)(exp((double)beta * (row[j] - base) - pn.m) / dn);
            }
            row[j] = g;
        }
        st.loss_sum += lp + ln;
        st.count += 1;
        st.active += kp + kn > 0;
        st.candidates += N - 1;
        if (minp < INFINITY && maxn > -INFINITY) st.hardness_sum += (double)maxn - minp;
    }
    backward(dE, S, E, 1.0f, N, D, a0, a1);
    *stp = st;
}

LossStats simloss_multi_similarity(float *dE, float *ws, const float *E, const int32_t *labels, float alpha,
                                   float beta, float base, float eps, int mine, int N, int D, int a0,
                                   int a1) {
    ASSERT(N > 0 && D > 0 && 0 <= a0 && a0 <= a1 && a1 <= N && alpha > 0 && beta > 0);
    LossStats st = {0};
    if (a1 == a0) return st;
    int nb = mine_block_rows(N, a1 - a0);
    for (int b0 = a0; b0 < a1; b0 += nb) /* the blocks of anchors, in order */
        ms_block(&st, dE, ws, E, labels, alpha, beta, base, eps, mine, N, D, b0, MIN(a1, b0 + nb));
    return st;
}
