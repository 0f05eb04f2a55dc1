/* Tests of viz/tsne: the affinities' invariants and perplexity, the
 * gradient against finite differences of the O(N^2) KL divergence, the
 * Barnes-Hut gradient against the exact one, and whole runs: separated
 * clusters stay separated, the KL divergence falls, a seed repeats, and
 * the map of 3 threads is the map of 1, bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/parallel.h"
#include "../viz/tsne.h"
#include "test.h"

/* n points in clusters of D dims, centres 20 apart on the axes, unit noise. */
static float *clusters(int32_t *lab, int n, int k, int D, uint64_t seed) {
    float *X = malloc((size_t)n * D * sizeof *X);
    Rng r;
    rng_seed(&r, seed, RNG_TEST, 0);
    for (int i = 0; i < n; i++) {
        lab[i] = i % k;
        for (int d = 0; d < D; d++)
            X[(size_t)i * D + d] = (float)(rng_normal(&r) + (d == lab[i] ? 20.0 : 0.0));
    }
    return X;
}

static void test_affinities(void) {
    int N = 300, D = 5;
    int32_t lab[300];
    float *X = clusters(lab, N, 3, D, 1);
    TsneP P;
    Err e;
    CHECK(tsne_affinities(&P, X, N, D, 10, &e) == 0, "affinities: %s", e.msg);
    double sum = 0;
    int asym = 0, diag = 0, neg = 0;
    for (int i = 0; i < N; i++)
        for (int t = P.row[i]; t < P.row[i + 1]; t++) {
            int j = P.col[t];
            sum += P.val[t];
            diag += j == i;
            neg += !(P.val[t] > 0);
            double back = -1;
            for (int u = P.row[j]; u < P.row[j + 1]; u++)
                if (P.col[u] == i) back = P.val[u];
            asym += back != P.val[t];
        }
    CHECK_CLOSE(sum, 1.0, 1e-12, "P sums to 1");
    CHECK(asym == 0 && diag == 0 && neg == 0, "P symmetric (%d), no diagonal (%d), positive (%d)", asym, diag,
          neg);
    /* Row i holds its 30 nearest neighbours at least, all of its own cluster. */
    int short_rows = 0, cross = 0;
    for (int i = 0; i < N; i++) {
        short_rows += P.row[i + 1] - P.row[i] < 30;
        for (int t = P.row[i]; t < P.row[i + 1]; t++) cross += lab[P.col[t]] != lab[i];
    }
    CHECK(short_rows == 0 && cross == 0, "rows of >= 3 x perplexity entries (%d short), within clusters (%d)",
          short_rows, cross);
    /* Perplexity on a line x_i = i with perplexity 2: an interior point's
     * two nearest (squared distance 1) tie and the next are 4 and 9 away,
     * so entropy log 2 puts p_{j|i} = 1/2 on each of the two; then
     * P(i, i +- 1) = (1/2 + 1/2) / 2N = 1/80 and the rest is about 0. */
    tsne_p_free(&P);
    float line[40];
    for (int i = 0; i < 40; i++) line[i] = (float)i;
    CHECK(tsne_affinities(&P, line, 40, 1, 2, &e) == 0, "line affinities");
    double near = 0, far = 0;
    int i = 20;
    for (int t = P.row[i]; t < P.row[i + 1]; t++) *(abs(P.col[t] - i) == 1 ? &near : &far) += P.val[t];
    CHECK(fabs(near - 2.0 / 80) < 2e-3 && far < 2e-3, "perplexity 2 on a line: near %g (want ~0.025), far %g",
          near, far);
    tsne_p_free(&P);
    X[7] = NAN;
    CHECK(tsne_affinities(&P, X, N, D, 10, &e) == -1, "NaN rejected: %s", e.msg);
    CHECK(tsne_affinities(&P, X, 3, D, 10, &e) == -1, "3 points rejected: %s", e.msg);
    free(X);
}

static void test_gradient(void) {
    int N = 40, D = 4;
    int32_t lab[40];
    float *X = clusters(lab, N, 4, D, 2);
    TsneP P;
    Err e;
    CHECK(tsne_affinities(&P, X, N, D, 5, &e) == 0, "affinities");
    double Y[80], g[80];
    Rng r;
    rng_seed(&r, 5, RNG_TEST, 1);
    for (int k = 0; k < 2 * N; k++) Y[k] = 3.0 * rng_normal(&r);
    double kl = tsne_gradient(g, &P, Y, N, 0.0, 1.0);
    CHECK_CLOSE(kl, tsne_kl_exact(&P, Y, N), 1e-12, "KL with theta 0 is the exact KL");
    double worst = 0;
    for (int k = 0; k < 2 * N; k++) {
        double h = 1e-5, keep = Y[k];
        Y[k] = keep + h;
        double kp = tsne_kl_exact(&P, Y, N);
        Y[k] = keep - h;
        double km = tsne_kl_exact(&P, Y, N);
        Y[k] = keep;
        double fd = (kp - km) / (2 * h);
        worst = fmax(worst, fabs(fd - g[k]) / fmax(1e-4, fabs(fd) + fabs(g[k])));
    }
    CHECK(worst < 1e-5, "exact gradient vs central differences of KL: worst relative error %g", worst);
    tsne_p_free(&P);
    free(X);

    /* Barnes-Hut against exact on a larger map. */
    N = 800;
    int32_t *l2 = malloc((size_t)N * sizeof *l2);
    X = clusters(l2, N, 5, D, 3);
    CHECK(tsne_affinities(&P, X, N, D, 30, &e) == 0, "affinities");
    double *Yb = malloc(2 * (size_t)N * sizeof *Yb), *ge = malloc(2 * (size_t)N * sizeof *ge);
    double *gb = malloc(2 * (size_t)N * sizeof *gb);
    for (int k = 0; k < 2 * N; k++) Yb[k] = 10.0 * rng_normal(&r);
    Yb[2] = Yb[0], Yb[3] = Yb[1]; /* two coincident points */
    double ke = tsne_gradient(ge, &P, Yb, N, 0.0, 12.0), kb = tsne_gradient(gb, &P, Yb, N, 0.5, 12.0);
    double num = 0, den = 0;
    for (int k = 0; k < 2 * N; k++) num += (gb[k] - ge[k]) * (gb[k] - ge[k]), den += ge[k] * ge[k];
    CHECK(sqrt(num / den) < 0.02, "Barnes-Hut (theta 0.5) gradient within 2%% of exact: %g", sqrt(num / den));
    CHECK(fabs(kb - ke) < 0.01 * fabs(ke), "Barnes-Hut KL %g vs exact %g", kb, ke);
    tsne_p_free(&P);
    free(X), free(l2), free(Yb), free(ge), free(gb);
}

static void test_run(void) {
    int N = 1000, D = 10, K = 5;
    int32_t *lab = malloc((size_t)N * sizeof *lab);
    float *X = clusters(lab, N, K, D, 4);
    float *Y = malloc(2 * (size_t)N * sizeof *Y), *Y2 = malloc(2 * (size_t)N * sizeof *Y2);
    TsneSpec s;
    tsne_spec_default(&s);
    s.seed = 7;
    s.iters = 600;
    double kl[64];
    Err e;
    double t0 = now_seconds();
    CHECK(tsne_run(Y, kl, X, N, D, &s, &e) == 0, "t-SNE run: %s", e.msg);
    printf("t-SNE of %d points, %d steps: %.2f s; KL %.3f -> %.3f (after exaggeration) -> %.3f\n", N, s.iters,
           now_seconds() - t0, kl[0], kl[5], kl[12]);
    int nk = (s.iters + 49) / 50 + 1;
    CHECK(nk == 13 && kl[nk - 1] < kl[5] && kl[5] < kl[0] && kl[nk - 1] < 0.5 * kl[0],
          "KL falls: %g -> %g -> %g", kl[0], kl[5], kl[nk - 1]);
    int rising = 0;
    for (int k = 6; k < nk; k++) rising += kl[k] > kl[k - 1] + 1e-3;
    CHECK(rising == 0, "KL does not rise after the exaggeration (%d rises)", rising);
    /* Separation: every point's nearest 10 map neighbours share its cluster,
     * and clusters are far apart compared with their spread. */
    int impure = 0;
    double cx[5] = {0}, cy[5] = {0}, spread = 0, gap = INFINITY;
    for (int i = 0; i < N; i++) {
        cx[lab[i]] += Y[2 * i] / (N / K), cy[lab[i]] += Y[2 * i + 1] / (N / K);
        double best[10];
        int bl[10];
        for (int t = 0; t < 10; t++) best[t] = INFINITY, bl[t] = -1;
        for (int j = 0; j < N; j++) {
            if (j == i) continue;
            double d = hypot(Y[2 * i] - Y[2 * j], Y[2 * i + 1] - Y[2 * j + 1]);
            int t = 9;
            if (d >= best[t]) continue;
            while (t > 0 && best[t - 1] > d) best[t] = best[t - 1], bl[t] = bl[t - 1], t--;
            best[t] = d, bl[t] = lab[j];
        }
        for (int t = 0; t < 10; t++) impure += bl[t] != lab[i];
    }
    for (int i = 0; i < N; i++)
        spread = fmax(spread, hypot(Y[2 * i] - cx[lab[i]], Y[2 * i + 1] - cy[lab[i]]));
    for (int a = 0; a < K; a++)
        for (int c = 0; c < a; c++) gap = fmin(gap, hypot(cx[a] - cx[c], cy[a] - cy[c]));
    CHECK(impure == 0, "10 nearest map neighbours from the same cluster (%d not)", impure);
    CHECK(gap > 2.0 * spread, "clusters separated: closest centres %g apart, largest radius %g", gap, spread);
    /* Same seed, same map; another seed, another map. */
    CHECK(tsne_run(Y2, NULL, X, N, D, &s, &e) == 0 && !memcmp(Y, Y2, 2 * (size_t)N * sizeof *Y),
          "a seed repeats bit for bit");
    parallel_init(3);
    CHECK(tsne_run(Y2, NULL, X, N, D, &s, &e) == 0 && !memcmp(Y, Y2, 2 * (size_t)N * sizeof *Y),
          "3 threads give the map of 1 thread bit for bit");
    parallel_init(1);
    s.seed = 8;
    CHECK(tsne_run(Y2, NULL, X, N, D, &s, &e) == 0 && memcmp(Y, Y2, 2 * (size_t)N * sizeof *Y),
          "seed matters");
    free(X), free(Y), free(Y2), free(lab);
}

int main(void) {
    parallel_init(1); /* OpenBLAS on one thread, as siamese report runs it */
    test_affinities();
    test_gradient();
    test_run();
    return test_finish();
}
