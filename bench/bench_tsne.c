/* bench_tsne: t-SNE (viz/tsne.c) of N points in D dimensions drawn around
 * 10 cluster centres, as test embeddings look: CPU seconds of the whole run
 * (affinities + 1000 Barnes-Hut steps) and the KL divergence it reaches.
 *   build/bench/bench_tsne [N [D [theta]]]   (defaults 10000 16 0.5) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../viz/tsne.h"

int main(int argc, char **argv) {
    int N = argc > 1 ? atoi(argv[1]) : 10000, D = argc > 2 ? atoi(argv[2]) : 16;
    TsneSpec s;
    tsne_spec_default(&s);
    if (argc > 3) s.theta = atof(argv[3]);
    float *X = malloc((size_t)N * D * sizeof *X), *Y = malloc(2 * (size_t)N * sizeof *Y);
    Rng r;
    rng_seed(&r, 1, RNG_TEST, 0);
    for (int i = 0; i < N; i++)
        for (int d = 0; d < D; d++)
            X[(size_t)i * D + d] = (float)(0.3 * rng_normal(&r) + (d == i % 10 ? 1.0 : 0.0));
    double kl[64];
    Err e;
    clock_t c0 = clock();
    double w0 = now_seconds();
    if (tsne_run(Y, kl, X, N, D, &s, &e)) {
        fprintf(stderr, "bench_tsne: %s\n", e.msg);
        return 1;
    }
    int nk = (s.iters + 49) / 50 + 1;
    printf("t-SNE of %d points in %d dimensions, %d steps, theta %g: %.2f s CPU (%.2f s wall); KL %.4f\n", N,
           D, s.iters, s.theta, (double)(clock() - c0) / CLOCKS_PER_SEC, now_seconds() - w0, kl[nk - 1]);
    free(X);
    free(Y);
    return 0;
}
