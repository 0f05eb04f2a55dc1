/* pca: principal components of N points in D dimensions, for 2-D maps of
 * embeddings and for reducing wide embeddings before t-SNE. Subspace
 * iteration from a seeded random start over row blocks of the centred
 * data (never a D x D matrix, never a centred copy of X), then the exact
 * eigen-decomposition (cyclic Jacobi) of the small projected covariance.
 * Exact when k + 8 >= D. Serial; no MPI. */
#ifndef SIAMESE_PCA_H
#define SIAMESE_PCA_H

#include <stdint.h>

#include "../nn/util.h"

/* Eigen-decomposition of the symmetric n x n matrix A (row-major; destroyed)
 * by cyclic Jacobi rotations: vals (n) descending, vecs (n, n) with
 * eigenvector k in column k (row-major), orthonormal. */
void pca_eigen_sym(double *vals, double *vecs, double *A, int n);

/* The top k principal axes of X (N, D): comp (k, D) orthonormal rows,
 * var (k) the variance along each (sample variance, N - 1), descending,
 * mean (D). iters power steps (4 is plenty for a map; more for accuracy
 * when the spectrum is flat). 0, or -1 with e when N < 2, k outside
 * [1, D] or X is not finite. */
int pca_fit(float *comp, double *var, float *mean, const float *X, int N, int D, int k, int iters,
            uint64_t seed, Err *e);

/* Y (N, k) = (X - mean) comp^T. */
void pca_project(float *Y, const float *X, int N, int D, const float *comp, const float *mean, int k);

#endif
