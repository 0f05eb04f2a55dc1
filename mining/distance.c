/* distance: see distance.h. */
#include "distance.h"

#include <cblas.h>
#include <math.h>

#include "../nn/util.h"

static float sq_norm(const float *x, int D) {
    float s = 0.0f;
    for (int k = 0; k < D; k++) s += x[k] * x[k];
    return s;
}

/* Sum in eight interleaved partial sums (vectorises without -ffast-math). */
static float sum_lanes(const float *x, int n) {
    float acc[8] = {0};
    int k = 0;
    for (; k + 8 <= n; k += 8)
        for (int l = 0; l < 8; l++) acc[l] += x[k + l];
    for (int l = 0; k < n; k++, l++) acc[l] += x[k];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

size_t dist_matrix_workspace_floats(int Na, int Np) { return (size_t)Na + (size_t)Np; }

void dist_matrix(float *d, const float *A, const float *P, int Na, int Np, int D, float *ws) {
    ASSERT(Na >= 0 && Np >= 0 && D > 0);
    if (Na == 0 || Np == 0) return;
    float *na = ws, *np = ws + Na;
    for (int i = 0; i < Na; i++) na[i] = sq_norm(A + (size_t)i * D, D);
    for (int j = 0; j < Np; j++) np[j] = sq_norm(P + (size_t)j * D, D);
    /* d = -2 A P^T, then add the norms and take the clamped root in place. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Na, Np, D, -2.0f, A, D, P, D, 0.0f, d, Np);
    for (int i = 0; i < Na; i++) {
        float *row = d + (size_t)i * Np;
        for (int j = 0; j < Np; j++) {
            float q = na[i] + np[j] + row[j];
            row[j] = sqrtf(q > DIST_EPS2 ? q : DIST_EPS2);
        }
    }
}

/* G = dd / d (0 on the clamp), cs += G, branch-free so that it vectorises;
 * the row sum in eight lanes (sum_lanes). G may be dd. */
float dist_grad_row(float *G, float *cs, const float *dd, const float *d, int n) {
    for (int j = 0; j < n; j++) {
        float g = dd[j] * dist_inv(d[j]);
        G[j] = g;
        cs[j] += g;
    }
    return sum_lanes(G, n);
}

size_t dist_backward_workspace_floats(int Na, int Np) {
    return (size_t)Na * (size_t)Np + (size_t)Na + (size_t)Np;
}

/* With G_ij = dd_ij / d_ij (0 on the clamp):
 *   dA_i += sum_j G_ij (a_i - p_j) = rowsum_i a_i - (G P)_i
 *   dP_j += sum_i G_ij (p_j - a_i) = colsum_j p_j - (G^T A)_j        */
void dist_matrix_backward_g(float *dA, float *dP, const float *G, const float *rs, const float *cs,
                            const float *A, const float *P, int Na, int Np, int D) {
    ASSERT(Na >= 0 && Np >= 0 && D > 0);
    if (Na == 0 || Np == 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Na, D, Np, -1.0f, G, Np, P, D, 1.0f, dA, D);
    for (int i = 0; i < Na; i++) {
        if (rs[i] == 0.0f) continue;
        float *o = dA + (size_t)i * D;
        const float *a = A + (size_t)i * D;
        for (int k = 0; k < D; k++) o[k] += rs[i] * a[k];
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Np, D, Na, -1.0f, G, Np, A, D, 1.0f, dP, D);
    for (int j = 0; j < Np; j++) {
        if (cs[j] == 0.0f) continue;
        float *o = dP + (size_t)j * D;
        const float *p = P + (size_t)j * D;
        for (int k = 0; k < D; k++) o[k] += cs[j] * p[k];
    }
}

void dist_matrix_backward(float *dA, float *dP, const float *dd, const float *d, const float *A,
                          const float *P, int Na, int Np, int D, float *ws) {
    ASSERT(Na >= 0 && Np >= 0 && D > 0);
    if (Na == 0 || Np == 0) return;
    float *G = ws, *rs = ws + (size_t)Na * Np, *cs = rs + Na;
    for (int j = 0; j < Np; j++) cs[j] = 0.0f;
    for (int i = 0; i < Na; i++)
        rs[i] = dist_grad_row(G + (size_t)i * Np, cs, dd + (size_t)i * Np, d + (size_t)i * Np, Np);
    dist_matrix_backward_g(dA, dP, G, rs, cs, A, P, Na, Np, D);
}

float dist_pair(const float *x, const float *y, int D) {
    float nx = 0.0f, ny = 0.0f, dot = 0.0f;
    for (int k = 0; k < D; k++) {
        nx += x[k] * x[k];
        ny += y[k] * y[k];
        dot += x[k] * y[k];
    }
    float q = nx + ny - 2.0f * dot;
    return sqrtf(q > DIST_EPS2 ? q : DIST_EPS2);
}

/* Sixteen interleaved lanes of (best value, index) for the positives and for
 * the negatives, so that the scan vectorises; within a lane the strict
 * comparison keeps the lowest index, across lanes ties go to the lowest
 * index explicitly. */
#define ROW_LANES 16

static int lanes_pick(const float *v, const int *id, int want_max) {
    int b = 0;
    for (int l = 1; l < ROW_LANES; l++) {
        if (id[l] < 0) continue;
        int better = want_max ? v[l] > v[b] : v[l] < v[b];
        if (id[b] < 0 || better || (v[l] == v[b] && id[l] < id[b])) b = l;
    }
    return id[b];
}

void dist_row_hardest(int *p, int *n, int *npos, int *nneg, const float *row, const int32_t *labels, int a,
                      float sign, int N) {
    float pv[ROW_LANES], nv[ROW_LANES];
    int pid[ROW_LANES], nid[ROW_LANES], pc[ROW_LANES], nc[ROW_LANES];
    int32_t la = labels[a];
    for (int l = 0; l < ROW_LANES; l++) {
        pv[l] = -INFINITY;
        nv[l] = INFINITY;
        pid[l] = nid[l] = -1;
        pc[l] = nc[l] = 0;
    }
    int k = 0;
    for (; k + ROW_LANES <= N; k += ROW_LANES)
        for (int l = 0; l < ROW_LANES; l++) {
            int j = k + l, same = labels[j] == la, pos = same & (j != a), neg = !same;
            float s = sign * row[j];
            int gt = pos & (s > pv[l]), lt = neg & (s < nv[l]); /* scores are finite */
            pv[l] = gt ? s : pv[l];
            pid[l] = gt ? j : pid[l];
            nv[l] = lt ? s : nv[l];
            nid[l] = lt ? j : nid[l];
            pc[l] += pos;
            nc[l] += neg;
        }
    for (int l = 0; k < N; k++, l++) {
        int j = k, same = labels[j] == la, pos = same && j != a, neg = !same;
        float s = sign * row[j];
        if (pos && (pid[l] < 0 || s > pv[l])) {
            pv[l] = s;
            pid[l] = j;
        }
        if (neg && (nid[l] < 0 || s < nv[l])) {
            nv[l] = s;
            nid[l] = j;
        }
        pc[l] += pos;
        nc[l] += neg;
    }
    *p = lanes_pick(pv, pid, 1);
    *n = lanes_pick(nv, nid, 0);
    *npos = *nneg = 0;
    for (int l = 0; l < ROW_LANES; l++) {
        *npos += pc[l];
        *nneg += nc[l];
    }
}
