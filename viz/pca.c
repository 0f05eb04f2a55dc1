/* pca: see pca.h. */
#include "pca.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void pca_eigen_sym(double *vals, double *vecs, double *A, int n) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) vecs[i * n + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0, diag = 0.0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) *(i == j ? &diag : &off) += A[i * n + j] * A[i * n + j];
        if (off <= 1e-30 * diag || off == 0.0) break;
        for (int p = 0; p < n - 1; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = A[p * n + q];
                if (apq == 0.0) continue;
                /* The rotation in the (p, q) plane that zeroes A[p][q]:
                 * tan of its angle t solves t^2 + 2 t theta - 1 = 0. */
                double theta = (A[q * n + q] - A[p * n + p]) / (2.0 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (int k = 0; k < n; k++) { /* columns p and q */
                    double akp = A[k * n + p], akq = A[k * n + q];
                    A[k * n + p] = c * akp - s * akq;
                    A[k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) { /* rows p and q */
                    double apk = A[p * n + k], aqk = A[q * n + k];
                    A[p * n + k] = c * apk - s * aqk;
                    A[q * n + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < n; k++) {
                    double vkp = vecs[k * n + p], vkq = vecs[k * n + q];
                    vecs[k * n + p] = c * vkp - s * vkq;
                    vecs[k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    /* Sort descending (selection sort of columns: n is small). */
    for (int i = 0; i < n; i++) vals[i] = A[i * n + i];
    for (int i = 0; i < n; i++) {
        int m = i;
        for (int j = i + 1; j < n; j++)
            if (vals[j] > vals[m]) m = j;
        if (m == i) continue;
        double tv = vals[i];
        vals[i] = vals[m], vals[m] = tv;
        for (int k = 0; k < n; k++) {
            double t = vecs[k * n + i];
            vecs[k * n + i] = vecs[k * n + m], vecs[k * n + m] = t;
        }
    }
}

/* Orthonormalises the l columns of Q (D, l) by modified Gram-Schmidt, twice;
 * a column that vanishes is replaced by a random one. */
static void orthonormalise(double *Q, int D, int l, Rng *r) {
    for (int j = 0; j < l; j++) {
        for (int attempt = 0; attempt < 4; attempt++) {
            double before = 0.0;
            for (int d = 0; d < D; d++) before += Q[d * l + j] * Q[d * l + j];
            for (int pass = 0; pass < 2; pass++)
                for (int i = 0; i < j; i++) {
                    double dot = 0.0;
                    for (int d = 0; d < D; d++) dot += Q[d * l + i] * Q[d * l + j];
                    for (int d = 0; d < D; d++) Q[d * l + j] -= dot * Q[d * l + i];
                }
            double nrm = 0.0;
            for (int d = 0; d < D; d++) nrm += Q[d * l + j] * Q[d * l + j];
            if (nrm > 1e-20 * before && nrm > 0.0) {
                nrm = 1.0 / sqrt(nrm);
                for (int d = 0; d < D; d++) Q[d * l + j] *= nrm;
                break;
            }
            for (int d = 0; d < D; d++) Q[d * l + j] = rng_normal(r);
        }
    }
}

#define PCA_BLOCK 256

/* Over row blocks of the centred X: T = Xc Q (rows, l); W += Xc^T T (D, l)
 * when W is not NULL; S += T^T T (l, l) when S is not NULL. */
static void centred_products(double *W, double *S, const float *X, const double *mu, int N, int D,
                             const double *Q, int l) {
    double *Xb = xmalloc((size_t)PCA_BLOCK * D * sizeof *Xb), *T = xmalloc((size_t)PCA_BLOCK * l * sizeof *T);
    for (int r0 = 0; r0 < N; r0 += PCA_BLOCK) {
        int B = MIN(PCA_BLOCK, N - r0);
        for (int b = 0; b < B; b++)
            for (int d = 0; d < D; d++) Xb[(size_t)b * D + d] = (double)X[(size_t)(r0 + b) * D + d] - mu[d];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, l, D, 1.0, Xb, D, Q, l, 0.0, T, l);
        if (W) cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, l, B, 1.0, Xb, D, T, l, 1.0, W, l);
        if (S) cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l, l, B, 1.0, T, l, T, l, 1.0, S, l);
    }
    free(Xb);
    free(T);
}

int pca_fit(float *comp, double *var, float *mean, const float *X, int N, int D, int k, int iters,
            uint64_t seed, Err *e) {
    if (N < 2) return err_set(e, "PCA: %d points, need at least 2", N);
    if (k < 1 || k > D) return err_set(e, "PCA: %d components of %d dimensions", k, D);
    for (size_t t = 0; t < (size_t)N * (size_t)D; t++)
        if (!isfinite(X[t])) return err_set(e, "PCA: point %zu is not finite", t / (size_t)D);
    double *mu = xcalloc((size_t)D, sizeof *mu);
    for (int i = 0; i < N; i++)
        for (int d = 0; d < D; d++) mu[d] += X[(size_t)i * D + d];
    for (int d = 0; d < D; d++) mu[d] /= N, mean[d] = (float)mu[d];
    int l = MIN(D, k + 8);
    double *Q = xmalloc((size_t)D * l * sizeof *Q), *W = xmalloc((size_t)D * l * sizeof *W);
    Rng r;
    rng_seed(&r, seed, RNG_REPORT, 2);
    if (l == D) {
        for (int d = 0; d < D; d++)
            for (int j = 0; j < l; j++) Q[d * l + j] = d == j; /* the whole space: exact */
    } else {
        for (size_t t = 0; t < (size_t)D * l; t++) Q[t] = rng_normal(&r);
        orthonormalise(Q, D, l, &r);
        for (int it = 0; it < iters; it++) {
            memset(W, 0, (size_t)D * l * sizeof *W);
            centred_products(W, NULL, X, mu, N, D, Q, l);
            memcpy(Q, W, (size_t)D * l * sizeof *Q);
            orthonormalise(Q, D, l, &r);
        }
    }
    /* Rayleigh-Ritz: the covariance within span(Q), diagonalised. */
    double *S = xcalloc((size_t)l * l, sizeof *S), *vals = xmalloc((size_t)l * sizeof *vals);
    double *V = xmalloc((size_t)l * l * sizeof *V);
    centred_products(NULL, S, X, mu, N, D, Q, l);
    for (int t = 0; t < l * l; t++) S[t] /= (N - 1);
    pca_eigen_sym(vals, V, S, l);
    for (int c = 0; c < k; c++) {
        var[c] = vals[c] > 0 ? vals[c] : 0.0;
        float *v = comp + (size_t)c * D;
        int big = 0;
        for (int d = 0; d < D; d++) {
            double s = 0.0;
            for (int j = 0; j < l; j++) s += Q[d * l + j] * V[j * l + c];
            v[d] = (float)s;
            if (fabsf(v[d]) > fabsf(v[big])) big = d;
        }
        if (v[big] < 0) /* a fixed sign: the largest coordinate is positive */
            for (int d = 0; d < D; d++) v[d] = -v[d];
    }
    free(S);
    free(vals);
    free(V);
    free(Q);
    free(W);
    free(mu);
    return 0;
}

void pca_project(float *Y, const float *X, int N, int D, const float *comp, const float *mean, int k) {
    for (int i = 0; i < N; i++)
        for (int c = 0; c < k; c++) {
            double s = 0.0;
            for (int d = 0; d < D; d++)
                s += ((double)X[(size_t)i * D + d] - mean[d]) * comp[(size_t)c * D + d];
            Y[(size_t)i * k + c] = (float)s;
        }
}
