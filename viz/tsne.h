/* tsne: t-distributed stochastic neighbour embedding (van der Maaten and
 * Hinton 2008) of N points into 2-D, with the Barnes-Hut approximation of
 * van der Maaten 2014: sparse input affinities over the 3 x perplexity
 * nearest neighbours, repulsive forces summed over a quadtree, so a step
 * costs O(N log N) and 10^4 points take seconds, not hours. Seeded and
 * deterministic (fixed summation order): the per-point loops run on the
 * thread pool (nn/parallel.h) and give the same map bit for bit for any
 * thread count. No MPI. */
#ifndef SIAMESE_TSNE_H
#define SIAMESE_TSNE_H

#include <stdint.h>

#include "../nn/util.h"

typedef struct TsneSpec {
    double perplexity;   /* effective neighbours (30); clipped to (N - 1) / 3 */
    int iters;           /* gradient steps (1000) */
    int exag_iters;      /* of which the first use early exaggeration (250) */
    double exaggeration; /* factor on P during those steps (12) */
    double theta;        /* Barnes-Hut accuracy (0.5); 0 = exact sums */
    double lr;           /* learning rate; 0 = max(N / exaggeration, 50) */
    uint64_t seed;       /* the start, N(0, 1e-4^2) per coordinate */
} TsneSpec;

void tsne_spec_default(TsneSpec *s);

/* Symmetric joint probabilities P (CSR: row i holds col[row[i] .. row[i+1])
 * with val), summing to 1, zero diagonal. */
typedef struct TsneP {
    int n;
    int *row;    /* (n + 1) */
    int *col;    /* (nnz) */
    double *val; /* (nnz) */
} TsneP;

/* P from X (N, D): for each i the k = min(N - 1, floor(3 perplexity))
 * nearest others (Euclidean), p_{j|i} proportional to exp(-beta_i d_ij^2)
 * with beta_i found by bisection so that the entropy of p_{.|i} is
 * log(perplexity); then p_ij = (p_{j|i} + p_{i|j}) / 2N. 0, or -1 with e
 * when N < 4 or X holds a NaN or infinity. Free with tsne_p_free. */
int tsne_affinities(TsneP *P, const float *X, int N, int D, double perplexity, Err *e);
void tsne_p_free(TsneP *P);

/* The gradient of KL(P || Q) at Y (N, 2) with P multiplied by exag, into
 * grad (N, 2): 4 sum_j (exag p_ij - q_ij) w_ij (y_i - y_j), w = 1/(1+d^2),
 * q = w / Z; the repulsive part by Barnes-Hut with theta (0: exact).
 * Returns KL(P || Q) with Q's normaliser Z from the same sums (exact when
 * theta = 0). */
double tsne_gradient(double *grad, const TsneP *P, const double *Y, int N, double theta, double exag);

/* KL(P || Q) at Y by the O(N^2) definition (tests, small N). */
double tsne_kl_exact(const TsneP *P, const double *Y, int N);

/* The whole method: affinities, then spec->iters steps of gradient descent
 * with momentum (0.5, then 0.8 after the exaggeration) and per-coordinate
 * gains; the map is re-centred every step. Writes Y (N, 2). kl (may be
 * NULL) gets KL(P || Q) at steps 0, 50, 100, ... and after the last step:
 * ceil(iters / 50) + 1 values (of the true P, also while exaggerating).
 * 0 or -1 with e. */
int tsne_run(float *Y /* (N, 2) */, double *kl, const float *X /* (N, D) */, int N, int D,
             const TsneSpec *spec, Err *e);

#endif
