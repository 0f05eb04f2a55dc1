/* distance: Euclidean distance matrices between embedding rows, computed the
 * way the reference models define them (on the pool of nn/parallel: the
 * same bits for any thread count),
 *     d_ij = sqrt(max(|a_i|^2 + |p_j|^2 - 2 a_i.p_j, 1e-12)),
 * with one cblas_sgemm for the dot products, and their backward pass. The
 * derivative of d_ij is taken as 0 wherever d_ij <= DIST_MIN (the clamp is
 * active, e.g. for duplicate rows). No mining and no loss here. */
#ifndef SIAMESE_DISTANCE_H
#define SIAMESE_DISTANCE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define DIST_EPS2 1e-12f         /* clamp on the squared distance */
#define DIST_MIN 9.99999997e-07f /* == sqrtf(DIST_EPS2): the smallest distance */

/* Floats of workspace dist_matrix needs: Na + Np (the squared norms). */
size_t dist_matrix_workspace_floats(int Na, int Np);

/* d (written) = the (Na, Np) distance matrix between the rows of A and P.
 * A and P may be the same pointer. */
void dist_matrix(float *d,       /* (Na, Np) */
                 const float *A, /* (Na, D) */
                 const float *P, /* (Np, D) */
                 int Na, int Np, int D, float *ws);

/* Floats of workspace dist_matrix_backward needs: Na*Np + Na + Np. */
size_t dist_backward_workspace_floats(int Na, int Np);

/* Given dL/dd (dd) and the forward's d, ACCUMULATES (+=) dL/dA into dA and
 * dL/dP into dP. dA and dP may overlap each other (e.g. both inside one
 * pool gradient) but not A, P, dd or d. */
void dist_matrix_backward(float *dA,       /* (Na, D) += */
                          float *dP,       /* (Np, D) += */
                          const float *dd, /* (Na, Np) */
                          const float *d,  /* (Na, Np) from dist_matrix */
                          const float *A,  /* (Na, D) */
                          const float *P,  /* (Np, D) */
                          int Na, int Np, int D, float *ws);

/* The GEMM half of dist_matrix_backward, for callers that formed
 * G = dd / d (0 on the clamp) themselves: rs = G's row sums, cs = its column
 * sums. ACCUMULATES like dist_matrix_backward, with the same results when G,
 * rs and cs are computed as it does (dist_grad_row, row by row). */
void dist_matrix_backward_g(float *dA,       /* (Na, D) += */
                            float *dP,       /* (Np, D) += */
                            const float *G,  /* (Na, Np) */
                            const float *rs, /* (Na) */
                            const float *cs, /* (Np) */
                            const float *A,  /* (Na, D) */
                            const float *P,  /* (Np, D) */
                            int Na, int Np, int D);

/* One row of G for dist_matrix_backward_g: G[j] = dd[j] / d[j] (0 on the
 * clamp; G may be dd itself), cs[j] += G[j] (cs may be NULL); returns the
 * row sum. */
float dist_grad_row(float *G, float *cs, const float *dd, const float *d, int n);

/* cs (Np) = the column sums of G (Na, Np), adding the rows in order: the
 * same floats as dist_grad_row's cs row after row (on the pool, by columns). */
void dist_col_sums(float *cs, const float *G, int Na, int Np);
/* cs (Np) += the rows of G (Na, Np) in order: column sums of a matrix taken
 * block of rows after block, the same floats as one dist_col_sums. */
void dist_col_sums_add(float *cs, const float *G, int Na, int Np);

/* dist_matrix_backward_g in two halves, for a matrix taken block of anchor
 * rows after block: dist_backward_rows ACCUMULATES dA += rowsum_i a_i -
 * (G P)_i and dP -= G^T A (no column sums), dist_backward_cols dP += cs_j p_j
 * once cs holds the column sums of all the blocks. One block then the
 * columns is dist_matrix_backward_g exactly. */
void dist_backward_rows(float *dA,       /* (Na, D) += */
                        float *dP,       /* (Np, D) += */
                        const float *G,  /* (Na, Np) */
                        const float *rs, /* (Na) */
                        const float *A,  /* (Na, D) */
                        const float *P,  /* (Np, D) */
                        int Na, int Np, int D);
void dist_backward_cols(float *dP,       /* (Np, D) += */
                        const float *cs, /* (Np) */
                        const float *P,  /* (Np, D) */
                        int Np, int D);

/* The hardest positive and negative of anchor a over one row of scores
 * s_j = sign * row[j] (a distance row with sign = 1; sign = -1 flips both):
 * *p = argmax s_j over j != a with labels[j] == labels[a], *n = argmin s_j
 * over labels[j] != labels[a], the lowest index among equal scores, -1 for
 * an empty set; *npos, *nneg = the sizes of the two sets. */
void dist_row_hardest(int *p, int *n, int *npos, int *nneg, const float *row, /* (N) */
                      const int32_t *labels,                                  /* (N) */
                      int a, float sign, int N);

/* One pair without BLAS, same formula (float sums): for the list losses. */
float dist_pair(const float *x, const float *y, int D);

/* Blocked mining: every miner (triplet.c, pairs.c, simloss.c) takes its
 * anchors in blocks of mine_block_rows(N, Na) rows, each block against the
 * whole pool, so that its workspace is (block rows x N), never (Na x N).
 * The block is the largest multiple of 16 rows (at least 16, at most Na)
 * whose three (rows, N) matrices fit in the budget of floats,
 * MINE_BLOCK_FLOATS by default (64 MiB): 80 rows at N = 65,536. It depends
 * on (N, Na) and the budget only, never on the thread count. */
#define MINE_BLOCK_FLOATS ((size_t)1 << 24)
int mine_block_rows(int N, int Na);
/* Sets the budget (floats, > 0) and returns the previous one: for tests and
 * benches, before any workspace is sized (a workspace sized under one
 * budget must not be used under a smaller one). */
size_t mine_set_block_floats(size_t floats);

/* The miners' workspace (triplet.c, pairs.c) for blocks of Nb =
 * mine_block_rows(N, Na) anchor rows: d, dd, tmp are (Nb, N) each
 * (distances; dL/dd or per-row choices; the distance functions' scratch),
 * tmp followed by rs (Nb) and cs (N); then Nb row records of row_bytes;
 * then, per thread of the pool, scratch_floats. */
typedef struct MineWs {
    float *d, *dd, *tmp, *rs, *cs;
    void *rows;
    float *scratch;
    size_t per_thread;
    int block; /* Nb */
} MineWs;

/* Lays the workspace out from ws (if w is not NULL); returns its floats
 * (sized for parallel_threads(): size it after nn/parallel's init). */
size_t mine_ws_layout(MineWs *w, float *ws, int N, int Na, size_t row_bytes, size_t scratch_floats);

/* Dimensions per chunk when a loss writes the gradients of its chosen
 * pairs on the pool (every chunk walks the terms in order: each element of
 * dE receives them as one loop over the terms would). */
#define DIST_DIM_GRAIN 32

/* Dimensions [k0, k1) of dE[i] += s (E[i] - E[j]), dE[j] -= s (E[i] - E[j]);
 * nothing if s == 0. */
static inline void dist_pair_update(float *dE, const float *E, int i, int j, float s, int D, int k0, int k1) {
    if (s == 0.0f) return;
    const float *x = E + (size_t)i * D, *y = E + (size_t)j * D;
    float *gx = dE + (size_t)i * D, *gy = dE + (size_t)j * D;
    for (int k = k0; k < k1; k++) {
        float u = s * (x[k] - y[k]);
        gx[k] += u;
        gy[k] -= u;
    }
}

/* 1/d where the derivative of d exists, 0 on the clamp: d(d_ij)/d(a_i) is
 * (a_i - p_j) * dist_inv(d_ij). */
static inline float dist_inv(float d) {
    return 1.0f / (d > DIST_MIN ? d : INFINITY); /* branch-free: loops vectorise */
}

#endif
