/* bench_allreduce: the numbers behind the scaling model. Allreduce latency
 * (8 bytes) and bandwidth (4 KiB .. 16 MiB) with plain MPI_Allreduce, then
 * dist/comm's bucketed gradsync on the fmnist-small arena (330,944 floats):
 * communication alone, and overlapped with a simulated backward that spins
 * for a chosen time split over the layers in proportion to their work.
 * Then, side by side (interleaved repetitions), the gradient reduction
 * alone three ways: gradsync's own Rabenseifner allreduce, its
 * reduce-scatter to the optimizer's shards ([optim] shard = 1), and what
 * the trainer used before: one in-place MPI_Iallreduce per bucket, Open
 * MPI's libnbc with its Rabenseifner algorithm (set here as the trainer
 * used to).
 * Run: mpirun -np 2 build/bench/bench_allreduce [--backward-ms 50]
 * Times are medians over repetitions, the max over ranks. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../dist/comm.h"
#include "../nn/optim.h"
#include "../nn/util.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of t[n], then the max over ranks. */
static double median_max(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return dist_max_double(n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]));
}

/* Busy for `seconds` (simulated compute); with g, pokes gradsync_progress
 * every poke_s seconds. */
static void spin(double seconds, GradSync *g, double poke_s) {
    double now = now_seconds(), end = now + seconds, poke = now + poke_s;
    while ((now = now_seconds()) < end) {
        if (g && now >= poke) {
            gradsync_progress(g);
            poke = now + poke_s;
        }
    }
}

/* fmnist-small arena in layer order: (params, forward MACs per image). */
static const struct {
    const char *name;
    size_t params;
    double macs;
} LAYERS[] = {
    {"conv1", 832, 0.46e6},
    {"conv2", 51264, 3.28e6},
    {"fc1", 262400, 0.26e6},
    {"fc2", 16448, 0.016e6},
};
enum { NLAYERS = 4 };

/* The former path: every bucket (cut from the end) an in-place
 * MPI_Iallreduce, started in order, then waited for. */
static void libnbc_buckets(float *grads, size_t n, size_t bucket, MPI_Request *req) {
    size_t nb = 0;
    for (size_t end = n; end > 0; nb++) {
        size_t start = end > bucket ? end - bucket : 0;
        MPI_Iallreduce(MPI_IN_PLACE, grads + start, (int)(end - start), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                       &req[nb]);
        end = start;
    }
    MPI_Waitall((int)nb, req, MPI_STATUSES_IGNORE);
}

/* Seconds for one reduction of the arena by g, every layer reported at
 * once from the end. */
static double time_gradsync(GradSync *g, float *grads, size_t n) {
    double t0 = now_seconds();
    gradsync_begin(g);
    size_t end = n;
    for (int l = NLAYERS - 1; l >= 0; l--) {
        end -= LAYERS[l].params;
        gradsync_ready(g, end, LAYERS[l].params);
    }
    gradsync_finish(g);
    double dt = now_seconds() - t0;
    memset(grads, 0, n * sizeof *grads);
    return dt;
}

int main(int argc, char **argv) {
    setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", 0); /* Rabenseifner, for the former path */
    dist_init(&argc, &argv);
    int rank = dist_rank(), world = dist_world();
    double backward_ms = 50;
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--backward-ms") == 0 && a + 1 < argc) {
            if (parse_double(argv[++a], 0, 1e5, &backward_ms) != 0)
                FATAL("--backward-ms: '%s' is not a number in [0, 1e5]", argv[a]);
        } else {
            FATAL("usage: bench_allreduce [--backward-ms MS] (unknown '%s')", argv[a]);
        }
    }
    enum { REPS_MAX = 4000 };
    double *t = xmalloc(REPS_MAX * sizeof *t);
    if (rank == 0) printf("bench_allreduce: %d ranks (Open MPI, in place, SUM)\n\n", world);

    /* Latency: one double. */
    double x = 1;
    for (int i = 0; i < 200; i++) MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    for (int i = 0; i < REPS_MAX; i++) {
        double t0 = now_seconds();
        MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        t[i] = now_seconds() - t0;
    }
    double lat = median_max(t, REPS_MAX);
    if (rank == 0) printf("latency, 8 bytes: %.2f us (median of %d)\n\n", lat * 1e6, REPS_MAX);

    /* Bandwidth. busbw = 2 (p-1)/p * bytes / time: the per-link traffic of a
     * ring allreduce, comparable across rank counts. */
    size_t maxf = (size_t)16 << 18; /* 16 MiB of floats */
    float *buf = xaligned_floats(maxf);
    if (rank == 0)
        printf("%10s %12s %12s %12s %6s\n", "bytes", "time_us", "algbw_GB/s", "busbw_GB/s", "reps");
    for (size_t bytes = 4096; bytes <= ((size_t)16 << 20); bytes *= 4) {
        int n = (int)(bytes / sizeof(float));
        int reps = (int)MIN((size_t)REPS_MAX, MAX((size_t)10, ((size_t)256 << 20) / bytes));
        for (int i = 0; i < 3; i++) MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        for (int i = 0; i < reps; i++) {
            memset(buf, 0, bytes); /* keep the values finite */
            double t0 = now_seconds();
            MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            t[i] = now_seconds() - t0;
        }
        double s = median_max(t, reps);
        if (rank == 0)
            printf("%10zu %12.1f %12.3f %12.3f %6d\n", bytes, s * 1e6, bytes / s / 1e9,
                   2.0 * (world - 1) / world * bytes / s / 1e9, reps);
    }

    /* Gradsync on the fmnist-small arena. */
    size_t n = 0;
    double macs = 0;
    for (int l = 0; l < NLAYERS; l++) n += LAYERS[l].params, macs += LAYERS[l].macs;
    float *grads = xaligned_floats(n);
    size_t buckets[] = {(size_t)64 << 10, (size_t)256 << 10, (size_t)1 << 20};
    enum { REPS_COMM = 100, REPS_OVERLAP = 10 };

    for (int i = 0; i < REPS_COMM; i++) {
        double t0 = now_seconds();
        MPI_Allreduce(MPI_IN_PLACE, grads, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        t[i] = now_seconds() - t0;
    }
    double blocking = median_max(t, REPS_COMM);
    if (rank == 0) {
        printf("\ngradsync, arena %zu floats (%.2f MiB); one blocking MPI_Allreduce: %.3f ms\n", n,
               n * 4.0 / (1 << 20), blocking * 1e3);
        printf("simulated backward: %.1f ms, split by layer work (fc2, fc1, conv2, conv1)\n", backward_ms);
        printf("exposed = time in gradsync_finish; poked = gradsync_progress every 1 ms\n");
        printf("%10s %8s %12s %12s %14s %14s\n", "bucket", "buckets", "comm_only_ms", "bwd+sync_ms",
               "exposed_ms", "exposed_poked");
    }
    for (int b = 0; b < 3; b++) {
        GradSync *g = gradsync_create(grads, n, buckets[b]);
        /* Communication only: every layer reported at once, from the end. */
        for (int i = 0; i < REPS_COMM; i++) t[i] = time_gradsync(g, grads, n);
        double comm = median_max(t, REPS_COMM);
        /* Overlapped: each layer's backward spins, then reports; without and
         * with a progress poke every millisecond. */
        double *w = xmalloc(REPS_OVERLAP * sizeof *w), exposed[2], step = 0;
        for (int poke = 0; poke < 2; poke++) {
            for (int i = 0; i < REPS_OVERLAP; i++) {
                dist_barrier();
                double t0 = now_seconds();
                gradsync_begin(g);
                size_t end = n;
                for (int l = NLAYERS - 1; l >= 0; l--) {
                    spin(backward_ms * 1e-3 * LAYERS[l].macs / macs, poke ? g : NULL, 1e-3);
                    end -= LAYERS[l].params;
                    gradsync_ready(g, end, LAYERS[l].params);
                }
                w[i] = gradsync_finish(g);
                t[i] = now_seconds() - t0;
                memset(grads, 0, n * sizeof *grads);
            }
            exposed[poke] = median_max(w, REPS_OVERLAP);
            if (poke == 0) step = median_max(t, REPS_OVERLAP);
        }
        if (rank == 0)
            printf("%10zu %8zu %12.3f %12.3f %14.3f %14.3f\n", buckets[b], gradsync_num_buckets(g),
                   comm * 1e3, step * 1e3, exposed[0] * 1e3, exposed[1] * 1e3);
        free(w);
        gradsync_free(g);
    }

    /* Side by side: the three reductions, interleaved repetitions. */
    enum { REPS_SIDE = 300 };
    size_t *lo = xcalloc((size_t)world, sizeof *lo), *cnt = xcalloc((size_t)world, sizeof *cnt);
    for (int r = 0; r < world; r++) {
        size_t hi;
        optim_shard(n, world, r, &lo[r], &hi);
        cnt[r] = hi - lo[r];
    }
    MPI_Request *req = xcalloc(n / 1000 + 2, sizeof *req);
    double *ts = xmalloc(3 * REPS_SIDE * sizeof *ts);
    if (rank == 0)
        printf("\nreduction alone, side by side (%d interleaved repetitions, medians in ms; ratio = own "
               "allreduce / libnbc)\n%10s %8s %14s %16s %14s %7s\n",
               REPS_SIDE, "bucket", "buckets", "own_allreduce", "own_reduce_scat", "libnbc_rabens", "ratio");
    size_t side[] = {(size_t)16 << 10, (size_t)64 << 10, (size_t)256 << 10};
    for (int b = 0; b < 3; b++) {
        GradSync *ga = gradsync_create(grads, n, side[b]), *gs = gradsync_create_shards(grads, n, side[b], lo, cnt);
        for (int i = 0; i < 10; i++) time_gradsync(ga, grads, n), time_gradsync(gs, grads, n);
        for (int i = 0; i < REPS_SIDE; i++) {
            dist_barrier();
            ts[i] = time_gradsync(ga, grads, n);
            dist_barrier();
            ts[REPS_SIDE + i] = time_gradsync(gs, grads, n);
            dist_barrier();
            double t0 = now_seconds();
            libnbc_buckets(grads, n, side[b], req);
            ts[2 * REPS_SIDE + i] = now_seconds() - t0;
            memset(grads, 0, n * sizeof *grads);
        }
        double a = median_max(ts, REPS_SIDE), rs = median_max(ts + REPS_SIDE, REPS_SIDE),
               nbc = median_max(ts + 2 * REPS_SIDE, REPS_SIDE);
        if (rank == 0)
            printf("%10zu %8zu %14.3f %16.3f %14.3f %7.2f\n", side[b], gradsync_num_buckets(ga), a * 1e3, rs * 1e3,
                   nbc * 1e3, a / nbc);
        gradsync_free(ga);
        gradsync_free(gs);
    }
    free(ts);
    free(req);
    free(lo);
    free(cnt);
    free(grads);
    free(buf);
    free(t);
    dist_finalize();
    return 0;
}
