/* distance: see distance.h. Rows of the matrices go to the pool in chunks
 * of DIST_ROW_GRAIN, columns of the column sums in chunks of DIST_COL_GRAIN,
 * the GEMMs through nn/blas's fixed blocks: the same bits for any number of
 * threads. */
#include "distance.h"

#include <math.h>

#include "../nn/blas.h"
#include "../nn/parallel.h"
#include "../nn/util.h"

#define DIST_ROW_GRAIN 16
#define DIST_COL_GRAIN 256

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

typedef struct Dm {
    float *d, *na, *np, *dA, *dP, *G, *cs, *rsw;
    const float *A, *P, *dd, *dist, *rs, *ccs, *Gc;
    int Na, Np, D, add;
} Dm;

static void norm_rows(void *p, size_t lo, size_t hi) {
    const Dm *m = p;
    for (size_t i = lo; i < hi; i++) {
        if (i < (size_t)m->Na)
            m->na[i] = sq_norm(m->A + i * m->D, m->D);
        else
            m->np[i - m->Na] = sq_norm(m->P + (i - m->Na) * m->D, m->D);
    }
}

static void root_rows(void *p, size_t lo, size_t hi) {
    const Dm *m = p;
    for (size_t i = lo; i < hi; i++) {
        float *row = m->d + i * m->Np;
        for (int j = 0; j < m->Np; j++) {
            float q = m->na[i] + m->np[j] + row[j];
            row[j] = sqrtf(q > DIST_EPS2 ? q : DIST_EPS2);
        }
    }
}

void dist_matrix(float *d, const float *A, const float *P, int Na, int Np, int D, float *ws) {
    ASSERT(Na >= 0 && Np >= 0 && D > 0);
    if (Na == 0 || Np == 0) return;
    Dm m = {.d = d, .na = ws, .np = ws + Na, .A = A, .P = P, .Na = Na, .Np = Np, .D = D};
    parallel_for((size_t)Na + Np, 4 * DIST_ROW_GRAIN, norm_rows, &m);
    /* d = -2 A P^T, then add the norms and take the clamped root in place. */
    blas_sgemm(0, 1, Na, Np, D, -2.0f, A, D, P, D, 0.0f, d, Np);
    parallel_for((size_t)Na, DIST_ROW_GRAIN, root_rows, &m);
}

/* G = dd / d (0 on the clamp), cs += G, branch-free so that it vectorises;
 * the row sum in eight lanes (sum_lanes). G may be dd. */
float dist_grad_row(float *G, float *cs, const float *dd, const float *d, int n) {
    if (cs)
        for (int j = 0; j < n; j++) {
            float g = dd[j] * dist_inv(d[j]);
            G[j] = g;
            cs[j] += g;
        }
    else
        for (int j = 0; j < n; j++) G[j] = dd[j] * dist_inv(d[j]);
    return sum_lanes(G, n);
}

/* cs[j] = sum over rows in order, as dist_grad_row's cs += G row by row
 * (onto the cs already there if m->add). */
static void col_sums(void *p, size_t lo, size_t hi) {
    const Dm *m = p;
    if (!m->add)
        for (size_t j = lo; j < hi; j++) m->cs[j] = 0.0f;
    for (int i = 0; i < m->Na; i++) {
        const float *g = m->Gc + (size_t)i * m->Np;
        for (size_t j = lo; j < hi; j++) m->cs[j] += g[j];
    }
}

void dist_col_sums(float *cs, const float *G, int Na, int Np) {
    Dm m = {.cs = cs, .Gc = G, .Na = Na, .Np = Np};
    parallel_for((size_t)Np, DIST_COL_GRAIN, col_sums, &m);
}

void dist_col_sums_add(float *cs, const float *G, int Na, int Np) {
    Dm m = {.cs = cs, .Gc = G, .Na = Na, .Np = Np, .add = 1};
    parallel_for((size_t)Np, DIST_COL_GRAIN, col_sums, &m);
}

size_t dist_backward_workspace_floats(int Na, int Np) {
    return (size_t)Na * (size_t)Np + (size_t)Na + (size_t)Np;
}

/* out row i += s[i] x row i of X, where s[i] != 0 */
static void scale_add_rows(void *p, size_t lo, size_t hi) {
    const Dm *m = p;
    float *out = m->dA ? m->dA : m->dP;
    const float *X = m->dA ? m->A : m->P, *sc = m->dA ? m->rs : m->ccs;
    for (size_t i = lo; i < hi; i++) {
        if (sc[i] == 0.0f) continue;
        float *o = out + i * m->D;
        const float *x = X + i * m->D;
        for (int k = 0; k < m->D; k++) o[k] += sc[i] * x[k];
    }
}

/* With G_ij = dd_ij / d_ij (0 on the clamp):
 *   dA_i += sum_j G_ij (a_i - p_j) = rowsum_i a_i - (G P)_i
 *   dP_j += sum_i G_ij (p_j - a_i) = colsum_j p_j - (G^T A)_j        */
void dist_backward_rows(float *dA, float *dP, const float *G, const float *rs, const float *A, const float *P,
                        int Na, int Np, int D) {
    ASSERT(Na >= 0 && Np >= 0 && D > 0);
    if (Na == 0 || Np == 0) return;
    blas_sgemm(0, 0, Na, D, Np, -1.0f, G, Np, P, D, 1.0f, dA, D);
    Dm ma = {.dA = dA, .A = A, .rs = rs, .D = D};
    parallel_for((size_t)Na, 4 * DIST_ROW_GRAIN, scale_add_rows, &ma);
    blas_sgemm(1, 0, Np, D, Na, -1.0f, G, Np, A, D, 1.0f, dP, D);
}

void dist_backward_cols(float *dP, const float *cs, const float *P, int Np, int D) {
    ASSERT(Np >= 0 && D > 0);
    Dm mp = {.dP = dP, .P = P, .ccs = cs, .D = D};
    parallel_for((size_t)Np, 4 * DIST_ROW_GRAIN, scale_add_rows, &mp);
}

void dist_matrix_backward_g(float *dA, float *dP, const float *G, const float *rs, const float *cs,
                            const float *A, const float *P, int Na, int Np, int D) {
    ASSERT(Na >= 0 && Np >= 0 && D > 0);
    if (Na == 0 || Np == 0) return;
    dist_backward_rows(dA, dP, G, rs, A, P, Na, Np, D);
    dist_backward_cols(dP, cs, P, Np, D);
}

static void grad_rows(void *p, size_t lo, size_t hi) {
    const Dm *m = p;
    for (size_t i = lo; i < hi; i++)
        m->rsw[i] = dist_grad_row(m->G + i * m->Np, NULL, m->dd + i * m->Np, m->dist + i * m->Np, m->Np);
}

void dist_matrix_backward(float *dA, float *dP, const float *dd, const float *d, const float *A,
                          const float *P, int Na, int Np, int D, float *ws) {
    ASSERT(Na >= 0 && Np >= 0 && D > 0);
    if (Na == 0 || Np == 0) return;
    float *G = ws, *rs = ws + (size_t)Na * Np, *cs = rs + Na;
    Dm m = {.rsw = rs, .G = G, .dd = dd, .dist = d, .Np = Np};
    parallel_for((size_t)Na, DIST_ROW_GRAIN, grad_rows, &m);
    dist_col_sums(cs, G, Na, Np);
    dist_matrix_backward_g(dA, dP, G, rs, cs, A, P, Na, Np, D);
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static size_t block_floats = MINE_BLOCK_FLOATS;

size_t mine_set_block_floats(size_t floats) {
    ASSERT(floats > 0);
    size_t old = block_floats;
    block_floats = floats;
    return old;
}

int mine_block_rows(int N, int Na) {
    ASSERT(N >= 0 && Na >= 0);
    size_t rows = N > 0 ? block_floats / (3 * (size_t)N) / 16 * 16 : (size_t)Na;
    rows = rows < 16 ? 16 : rows;
    return rows < (size_t)Na ? (int)rows : Na;
}

size_t mine_ws_layout(MineWs *w, float *ws, int N, int Na, size_t row_bytes, size_t scratch_floats) {
    int nb = mine_block_rows(N, Na);
    size_t nn = (size_t)nb * (size_t)N, off = round16(3 * nn + (size_t)nb + (size_t)N);
    size_t rows = round16(((size_t)nb * row_bytes + sizeof(float) - 1) / sizeof(float));
    size_t per = round16(scratch_floats);
    if (w) {
        w->d = ws, w->dd = ws + nn, w->tmp = ws + 2 * nn;
        w->rs = w->tmp + nn, w->cs = w->rs + nb;
        w->rows = ws + off;
        w->scratch = ws + off + rows;
        w->per_thread = per;
        w->block = nb;
    }
    return off + rows + (size_t)parallel_threads() * per;
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
