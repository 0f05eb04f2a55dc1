/* Tests of viz/pca: the Jacobi eigen-decomposition on a hand case and on
 * random symmetric matrices (A v = lambda v, orthonormal, sorted), and
 * pca_fit against a naive reference (the covariance in double, decomposed)
 * on data with known axes, on both paths (exact and subspace iteration). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../viz/pca.h"
#include "test.h"

static void test_eigen(void) {
    double A[4] = {2, 1, 1, 2}, vals[2], V[4];
    pca_eigen_sym(vals, V, A, 2);
    CHECK(fabs(vals[0] - 3) < 1e-14 && fabs(vals[1] - 1) < 1e-14, "[[2,1],[1,2]]: eigenvalues %g %g", vals[0],
          vals[1]);
    CHECK(fabs(fabs(V[0]) - M_SQRT1_2) < 1e-14 && fabs(V[0] - V[2]) < 1e-14, "first eigenvector (1,1)/sqrt2");
    Rng r;
    rng_seed(&r, 3, RNG_TEST, 0);
    for (int n = 1; n <= 14; n += 13) {
        double *M = malloc((size_t)n * n * sizeof *M), *W = malloc((size_t)n * n * sizeof *W);
        double *Vn = malloc((size_t)n * n * sizeof *Vn), *ev = malloc((size_t)n * sizeof *ev);
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++) M[i * n + j] = M[j * n + i] = rng_normal(&r);
        memcpy(W, M, (size_t)n * n * sizeof *W);
        pca_eigen_sym(ev, Vn, W, n);
        double res = 0, orth = 0;
        int sorted = 1;
        for (int k = 0; k < n; k++) {
            if (k) sorted &= ev[k] <= ev[k - 1];
            for (int i = 0; i < n; i++) {
                double av = 0;
                for (int j = 0; j < n; j++) av += M[i * n + j] * Vn[j * n + k];
                res = fmax(res, fabs(av - ev[k] * Vn[i * n + k]));
            }
            for (int l = 0; l < n; l++) {
                double d = 0;
                for (int i = 0; i < n; i++) d += Vn[i * n + k] * Vn[i * n + l];
                orth = fmax(orth, fabs(d - (k == l)));
            }
        }
        CHECK(res < 1e-12 && orth < 1e-12 && sorted, "n = %d: |Av - lv| %g, orthonormality %g, sorted %d", n,
              res, orth, sorted);
        free(M), free(W), free(Vn), free(ev);
    }
}

/* X = Z diag(s) R^T + offset: known principal axes (columns of R). */
static void test_fit(int D, int N) {
    Rng r;
    rng_seed(&r, (uint64_t)D, RNG_TEST, 1);
    double *R = malloc((size_t)D * D * sizeof *R), *S = malloc((size_t)D * D * sizeof *S);
    double *ev = malloc((size_t)D * sizeof *ev);
    for (int i = 0; i < D; i++)
        for (int j = 0; j <= i; j++) S[i * D + j] = S[j * D + i] = rng_normal(&r);
    pca_eigen_sym(ev, R, S, D); /* a random orthogonal R */
    float *X = malloc((size_t)N * D * sizeof *X);
    for (int i = 0; i < N; i++) {
        double z[64];
        for (int k = 0; k < D; k++) z[k] = rng_normal(&r) * (k == 0 ? 6.0 : k == 1 ? 3.0 : 1.0 / (1 + k));
        for (int d = 0; d < D; d++) {
            double v = 5.0 + d; /* an offset the mean must remove */
            for (int k = 0; k < D; k++) v += R[d * D + k] * z[k];
            X[(size_t)i * D + d] = (float)v;
        }
    }
    /* naive reference: covariance in double, Jacobi */
    double *mu = calloc((size_t)D, sizeof *mu), *C = calloc((size_t)D * D, sizeof *C);
    for (int i = 0; i < N; i++)
        for (int d = 0; d < D; d++) mu[d] += X[(size_t)i * D + d] / N;
    for (int i = 0; i < N; i++)
        for (int a = 0; a < D; a++)
            for (int b = 0; b < D; b++)
                C[a * D + b] += (X[(size_t)i * D + a] - mu[a]) * (X[(size_t)i * D + b] - mu[b]) / (N - 1);
    pca_eigen_sym(ev, S, C, D);
    float comp[2 * 64], mean[64];
    double var[2];
    Err e;
    CHECK(pca_fit(comp, var, mean, X, N, D, 2, 8, 1, &e) == 0, "pca_fit D=%d: %s", D, e.msg);
    for (int k = 0; k < 2; k++) {
        double dot = 0, nrm = 0;
        for (int d = 0; d < D; d++)
            dot += comp[k * D + d] * S[d * D + k], nrm += comp[k * D + d] * comp[k * D + d];
        CHECK(fabs(fabs(dot) - 1) < 1e-5 && fabs(nrm - 1) < 1e-5,
              "D=%d: component %d = reference axis (|dot| %.9f)", D, k, fabs(dot));
        CHECK(fabs(var[k] - ev[k]) < 1e-5 * ev[k], "D=%d: variance %d %.9g vs reference %.9g", D, k, var[k],
              ev[k]);
    }
    double mworst = 0;
    for (int d = 0; d < D; d++) mworst = fmax(mworst, fabs(mean[d] - mu[d]));
    CHECK(mworst < 1e-5, "D=%d: mean (%g off)", D, mworst);
    float *Y = malloc(2 * (size_t)N * sizeof *Y);
    pca_project(Y, X, N, D, comp, mean, 2);
    double pw = 0;
    for (int d = 0; d < D; d++) pw += ((double)X[3 * D + d] - mean[d]) * comp[D + d];
    CHECK(fabs(Y[7] - pw) < 1e-4, "projection of a point on PC2: %g vs %g", Y[7], pw);
    double sv = 0;
    for (int i = 0; i < N; i++) sv += (double)Y[2 * i] * Y[2 * i] / (N - 1);
    CHECK(fabs(sv - var[0]) < 1e-4 * var[0], "variance of the projections on PC1 %g = %g", sv, var[0]);
    CHECK(pca_fit(comp, var, mean, X, N, D, D + 1, 8, 1, &e) == -1, "k > D rejected: %s", e.msg);
    free(R), free(S), free(ev), free(X), free(mu), free(C), free(Y);
}

int main(void) {
    test_eigen();
    test_fit(6, 400);  /* k + 8 >= D: exact path */
    test_fit(40, 600); /* subspace iteration */
    return test_finish();
}
