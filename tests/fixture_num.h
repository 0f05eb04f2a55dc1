/* fixture_num: numeric helpers shared by the kernel and mining tests: random
 * tensors, dot products, relative errors, central finite differences, tied
 * embedding batches and pieces of the brute-force mining references.
 * Header-only; every draw comes from the Rng passed in (the test's stream). */
#ifndef SIAMESE_TESTS_FIXTURE_NUM_H
#define SIAMESE_TESTS_FIXTURE_NUM_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../nn/util.h"

/* ---- tensors and errors ------------------------------------------------- */

/* n floats uniform in [lo, hi), 64-byte aligned (free()); one draw each. */
static inline float *fixture_rand_floats(Rng *r, size_t n, float lo, float hi) {
    float *p = xaligned_floats(n);
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * rng_uniform(r);
    return p;
}

/* sum a[i] * b[i], accumulated in double. */
static inline double fixture_dot(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static inline double fixture_rel_err_(const float *a, const float *b, size_t n, int nan_equal) {
    double e = 0.0, s = 1e-30;
    for (size_t i = 0; i < n; i++) {
        if (nan_equal && isnan(a[i]) && isnan(b[i])) continue;
        double d = fabs((double)a[i] - b[i]);
        if (d > e || isnan(d)) e = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > s) s = fabs(b[i]);
    }
    return e / s;
}

/* Largest |a - b| relative to the largest |b| (or 1e-30): one number per
 * tensor; any NaN difference makes it infinite. */
static inline double fixture_max_rel_err(const float *a, const float *b, size_t n) {
    return fixture_rel_err_(a, b, n, 0);
}

/* The same, except that entries NaN in both a and b count as equal (skipped). */
static inline double fixture_max_rel_err_nan_eq(const float *a, const float *b, size_t n) {
    return fixture_rel_err_(a, b, n, 1);
}

/* ---- finite differences ------------------------------------------------- */

typedef double (*FixtureLossFn)(void *ctx);

/* Central differences of loss(ctx) with respect to x[0..n) against the
 * analytic gradient g, on at most `checks` entries spread evenly over the
 * tensor: the first one drawn from r (one rng_below), or entry 0 if r is
 * NULL. The step is the float actually taken on each side. Returns the
 * largest error relative to the largest |g| (infinite on NaN). Leaves the
 * outputs of the unperturbed x behind in ctx (one last loss call). */
static inline double fixture_fd_error(FixtureLossFn loss, void *ctx, float *x, const float *g, size_t n, float h,
                                      size_t checks, Rng *r) {
    double e = 0.0, s = 1e-30;
    for (size_t i = 0; i < n; i++)
        if (fabs(g[i]) > s) s = fabs(g[i]);
    size_t stride = n > checks ? n / checks : 1;
    for (size_t i = r ? rng_below(r, stride) : 0; i < n; i += stride) {
        float x0 = x[i];
        x[i] = x0 + h;
        double hp = (double)x[i] - x0;
        double lp = loss(ctx);
        x[i] = x0 - h;
        double hm = x0 - (double)x[i];
        double lm = loss(ctx);
        x[i] = x0;
        double num = (lp - lm) / (hp + hm);
        double d = fabs(num - g[i]);
        if (d > e || isnan(d)) e = isnan(d) ? INFINITY : d;
    }
    loss(ctx);
    return e / s;
}

/* ---- embeddings and the mining references --------------------------------- */

/* E (N, D): quantised rows (multiples of 1/4 in [-0.5, 0.5]: every float
 * sum is exact, so BLAS and naive loops agree bit for bit and ties are real
 * ties), N / 5 rows copied over others (duplicates), labels in [0, classes)
 * plus one singleton class (classes + 7) on the last row. */
static inline void fixture_gen_ties(float *E, int32_t *labels, int N, int D, int classes, Rng *r) {
    for (int i = 0; i < N * D; i++) E[i] = 0.25f * (float)((int)rng_below(r, 5) - 2);
    for (int i = 0; i < N; i++) labels[i] = (int32_t)rng_below(r, (uint64_t)classes);
    for (int t = 0; t < N / 5; t++) {
        int i = (int)rng_below(r, (uint64_t)N), j = (int)rng_below(r, (uint64_t)N);
        memcpy(E + (size_t)i * D, E + (size_t)j * D, (size_t)D * sizeof *E);
    }
    labels[N - 1] = classes + 7;
}

static inline void fixture_to_double(double *o, const float *x, int n) {
    for (int i = 0; i < n; i++) o[i] = x[i];
}

/* max |g - ref| / max(1, max |ref|) */
static inline double fixture_grad_err(const float *g, const double *ref, int n) {
    double mx = 1, e = 0;
    for (int i = 0; i < n; i++) mx = fmax(mx, fabs(ref[i]));
    for (int i = 0; i < n; i++) e = fmax(e, fabs(g[i] - ref[i]));
    return e / mx;
}

/* The spec distance of two rows of D entries, in double:
 * sqrt(max(|a|^2 + |b|^2 - 2 a.b, eps2)). */
static inline double fixture_dist(const double *a, const double *b, int D, double eps2) {
    double na = 0, nb = 0, ab = 0;
    for (int k = 0; k < D; k++) {
        na += a[k] * a[k];
        nb += b[k] * b[k];
        ab += a[k] * b[k];
    }
    return sqrt(fmax(na + nb - 2 * ab, eps2));
}

/* Index j in set[0..n) of the largest (want_max) or smallest v[j], the
 * lowest index among equal values, written out explicitly; -1 if n == 0. */
static inline int fixture_pick(const double *v, const int *set, int n, int want_max) {
    int best = -1;
    for (int q = 0; q < n; q++) {
        int j = set[q];
        if (best < 0) {
            best = j;
            continue;
        }
        int better = want_max ? v[j] > v[best] : v[j] < v[best];
        if (better || (v[j] == v[best] && j < best)) best = j;
    }
    return best;
}

/* cut[0..p]: 0 = cut[0] <= cut[1] <= ... <= cut[p] = N, the p - 1 interior
 * cuts drawn uniformly from [0, N] (p "ranks" splitting a range). */
static inline void fixture_random_cuts(int *cut, int p, int N, Rng *r) {
    cut[0] = 0;
    cut[p] = N;
    for (int q = 1; q < p; q++) cut[q] = (int)rng_below(r, (uint64_t)N + 1);
    for (int q = 1; q < p; q++) /* sort the interior cuts */
        for (int s = q + 1; s < p; s++)
            if (cut[s] < cut[q]) {
                int x = cut[q];
                cut[q] = cut[s];
                cut[s] = x;
            }
}

#endif
