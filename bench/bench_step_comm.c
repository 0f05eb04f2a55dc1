/* bench_step_comm: the per-step costs outside forward/backward that the
 * scaling model (bench/scaling_model.py) needs, as "key value" lines:
 *  - global batch-all mining (triplet_loss, hinge, D = 64, K = 32) of 256
 *    local anchors against pools of N = 256 .. 8192 rows, every rank at once
 *    as in training (cost per anchor per pool row);
 *  - with more than one rank, the trainer's step collectives at the
 *    fmnist-small recipe's sizes: embedding + label allgather, dE
 *    reduce-scatter, loss-stats allreduce, and the blocking gradient sync of
 *    the fmnist-small and Koch arenas (comm only, no backward to hide it).
 * Mining is timed in thread CPU time (pure computation: less disturbed than
 * wall time on a loaded machine, though a VM's host noise still shows),
 * collectives in wall time; each line gives the minimum and the median over
 * repetitions, then the max over ranks.
 * Run: mpirun -np 2 build/bench/bench_step_comm [--koch 0|1] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../dist/comm.h"
#include "../mining/triplet.h"
#include "../nn/blas.h"
#include "../nn/util.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts t[n]; *lo = the minimum, returns the median; both max over ranks. */
static double median_max(double *t, int n, double *lo) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    if (lo) *lo = dist_max_double(t[0]);
    return dist_max_double(n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]));
}

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum { NA = 256, DIM = 64, KPC = 32, REPS = 15 };

/* Random unit rows, labels in blocks of KPC (a PK batch). */
static void make_pool(float *E, int32_t *labels, int N, Rng *r) {
    for (int i = 0; i < N; i++) {
        double s = 0;
        float *e = E + (size_t)i * DIM;
        for (int d = 0; d < DIM; d++) e[d] = (float)rng_normal(r), s += (double)e[d] * e[d];
        for (int d = 0; d < DIM; d++) e[d] = (float)(e[d] / sqrt(s));
        labels[i] = i / KPC;
    }
}

static void bench_mining(int rank, double *t) {
    enum { NMAX = 8192 };
    float *E = xaligned_floats((size_t)NMAX * DIM), *dE = xaligned_floats((size_t)NMAX * DIM);
    int32_t *labels = xcalloc(NMAX, sizeof *labels);
    float *ws = xaligned_floats(triplet_workspace_floats(NMAX, NA));
    Rng r;
    rng_seed(&r, 7, RNG_TEST, (uint64_t)rank);
    make_pool(E, labels, NMAX, &r);
    for (int N = NA; N <= NMAX; N *= 2) {
        /* This rank's anchors: the middle of the pool, as rank r of p. */
        int a0 = (N - NA) / 2, reps = N >= 4096 ? 7 : REPS;
        for (int i = 0; i < reps + 1; i++) {
            memset(dE, 0, (size_t)N * DIM * sizeof *dE);
            double t0 = cpu_seconds();
            LossStats s = triplet_loss(dE, NULL, ws, E, labels, MINE_BATCH_ALL, 0.2f, 0, N, DIM, a0, a0 + NA);
            if (i) t[i - 1] = cpu_seconds() - t0;
            if (!(s.count >= 0)) FATAL("mining N=%d: bad count", N);
        }
        double lo, m = median_max(t, reps, &lo);
        if (rank == 0)
            printf("mining_batch_all N=%d Na=%d K=%d D=%d cpu_min %.6e cpu_median %.6e per_anchor_row_ns %.3f\n", N,
                   NA, KPC, DIM, lo, m, lo / ((double)NA * N) * 1e9);
    }
    free(ws);
    free(labels);
    free(dE);
    free(E);
}

/* Times one blocking gradient sync of n floats in buckets of `bucket`. */
static double bench_gradsync(float *g, size_t n, size_t bucket, int reps, double *t, double *lo) {
    GradSync *gs = gradsync_create(g, n, bucket);
    for (int i = 0; i < reps + 1; i++) {
        memset(g, 0, n * sizeof *g);
        dist_barrier();
        double t0 = now_seconds();
        gradsync_begin(gs);
        gradsync_ready(gs, 0, n);
        gradsync_finish(gs);
        if (i) t[i - 1] = now_seconds() - t0;
    }
    gradsync_free(gs);
    return median_max(t, reps, lo);
}

int main(int argc, char **argv) {
    blas_select_core(argv); /* the OpenBLAS kernels siamese runs with */
    dist_init(&argc, &argv);
    int rank = dist_rank(), world = dist_world(), koch = 1;
    for (int a = 1; a < argc; a++) {
        long v;
        if (strcmp(argv[a], "--koch") == 0 && a + 1 < argc) {
            if (parse_long(argv[++a], 0, 1, &v) != 0) FATAL("--koch: '%s' is not 0 or 1", argv[a]);
            koch = (int)v;
        } else {
            FATAL("usage: bench_step_comm [--koch 0|1] (unknown '%s')", argv[a]);
        }
    }
    double *t = xmalloc(1000 * sizeof *t);
    if (rank == 0) printf("bench_step_comm: %d ranks\n", world);
    bench_mining(rank, t);
    if (world > 1) {
        /* fmnist-small weak scaling: 256 images per rank, N = 256 p rows. */
        int *rows = xcalloc((size_t)world, sizeof *rows);
        for (int r = 0; r < world; r++) rows[r] = NA;
        int N = NA * world;
        float *pool = xaligned_floats((size_t)N * DIM), *local = xaligned_floats((size_t)NA * DIM);
        int32_t *lab = xcalloc((size_t)N, sizeof *lab), *mylab = xcalloc(NA, sizeof *mylab);
        double lo, m;
        for (int i = 0; i < 200; i++) {
            double t0 = now_seconds();
            dist_allgather_rows(pool, local, DIM * sizeof(float), rows);
            dist_allgather_rows(lab, mylab, sizeof(int32_t), rows);
            t[i] = now_seconds() - t0;
        }
        m = median_max(t, 200, &lo);
        if (rank == 0)
            printf("allgather_embeddings_labels rows_per_rank=%d D=%d bytes_total=%d min %.6e median %.6e\n", NA, DIM,
                   N * DIM * 4 + N * 4, lo, m);
        for (int i = 0; i < 200; i++) {
            double t0 = now_seconds();
            dist_reduce_scatter_rows(local, pool, DIM, rows);
            t[i] = now_seconds() - t0;
        }
        m = median_max(t, 200, &lo);
        if (rank == 0)
            printf("reduce_scatter_dE rows=%d D=%d bytes=%d min %.6e median %.6e\n", N, DIM, N * DIM * 4, lo, m);
        double v[LOSS_STATS_DOUBLES] = {0};
        for (int i = 0; i < 1000; i++) {
            double t0 = now_seconds();
            dist_allreduce_sum_doubles(v, LOSS_STATS_DOUBLES);
            t[i] = now_seconds() - t0;
        }
        m = median_max(t, 1000, &lo);
        if (rank == 0) printf("allreduce_loss_stats doubles=%d min %.6e median %.6e\n", LOSS_STATS_DOUBLES, lo, m);
        free(pool);
        free(local);
        free(lab);
        free(mylab);
        free(rows);

        /* Arenas: fmnist-small and Koch (encoder + head), default bucket
         * (64 kfloats) and one large bucket. */
        struct {
            const char *name;
            size_t n, bucket;
            int reps;
        } runs[] = {{"fmnist", 330944, 64000, 50},
                    {"fmnist", 330944, 330944, 50},
                    {"koch", 38951745, 64000, 5},
                    {"koch", 38951745, 4000000, 5}};
        float *g = xaligned_floats(koch ? 38951745 : 330944);
        for (int k = 0; k < (koch ? 4 : 2); k++) {
            m = bench_gradsync(g, runs[k].n, runs[k].bucket, runs[k].reps, t, &lo);
            if (rank == 0)
                printf("gradsync_%s floats=%zu bucket=%zu min %.6e median %.6e\n", runs[k].name, runs[k].n,
                       runs[k].bucket, lo, m);
        }
        free(g);
    }
    free(t);
    dist_finalize();
    return 0;
}
