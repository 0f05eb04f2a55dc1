/* mpi_comm: dist/comm against closed forms, at any rank count (run.sh uses
 * 1..4 and 7). Values are small integers times rank-dependent factors, so
 * every sum is exact in float and results are compared for equality; the
 * gradient buckets' sums, whose bits depend on the order of additions, are
 * compared with the addition tree comm.h promises, bit for bit, for the
 * allreduce and for the reduce-scatter to the optimizer's shards. */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../dist/comm.h"
#include "../nn/optim.h"
#include "../nn/util.h"
#include "test_mpi.h"

static int rank, world;

static void test_init_state(void) {
    int r, w;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    MPI_Comm_size(MPI_COMM_WORLD, &w);
    CHECK(dist_rank() == r && dist_world() == w, "dist %d/%d vs MPI %d/%d", dist_rank(), dist_world(), r, w);
    CHECK(util_rank == (w > 1 ? r : -1), "util_rank %d", util_rank);
    CHECK_MPI(MPI_Barrier(MPI_COMM_WORLD)); /* the macro compiles and passes */
    dist_barrier();
}

static void test_split(void) {
    int rows[7], offs[7];
    for (int w = 1; w <= 7; w++) {
        for (int total = 0; total <= 20; total++) {
            dist_split_rows(rows, offs, total, w);
            int sum = 0, mn = rows[0], mx = rows[0], ok = 1;
            for (int r = 0; r < w; r++) {
                ok &= offs[r] == sum;
                sum += rows[r];
                mn = MIN(mn, rows[r]);
                mx = MAX(mx, rows[r]);
                ok &= r == 0 || rows[r] <= rows[r - 1]; /* extra rows go first */
            }
            CHECK(ok && sum == total && mx - mn <= 1, "split %d over %d", total, w);
        }
    }
}

/* Global row i of the float table: (i*100 + j + 0.5) for column j. */
static void test_allgather(int total, int cols) {
    int rows[8], offs[8];
    dist_split_rows(rows, offs, total, world);
    float *send = xmalloc((size_t)(rows[rank] * cols + 1) * sizeof *send);
    float *recv = xmalloc((size_t)(total * cols + 1) * sizeof *recv);
    int32_t *lsend = xmalloc((size_t)(rows[rank] + 1) * sizeof *lsend);
    int32_t *lrecv = xmalloc((size_t)(total + 1) * sizeof *lrecv);
    for (int i = 0; i < rows[rank]; i++) {
        int gi = offs[rank] + i;
        for (int j = 0; j < cols; j++) send[i * cols + j] = (float)(gi * 100 + j) + 0.5f;
        lsend[i] = -7 * gi + 3;
    }
    memset(recv, 0xff, (size_t)total * cols * sizeof *recv);
    dist_allgather_rows(recv, send, (size_t)cols * sizeof(float), rows);
    int bad = 0;
    for (int i = 0; i < total; i++)
        for (int j = 0; j < cols; j++) bad += recv[i * cols + j] != (float)(i * 100 + j) + 0.5f;
    CHECK(bad == 0, "allgather floats %d rows x %d: %d wrong", total, cols, bad);

    dist_allgather_rows(lrecv, lsend, sizeof(int32_t), rows);
    bad = 0;
    for (int i = 0; i < total; i++) bad += lrecv[i] != -7 * i + 3;
    CHECK(bad == 0, "allgather int32 %d rows: %d wrong", total, bad);

    /* In place: this rank's rows already sit in its slice of recv. */
    memset(recv, 0, (size_t)total * cols * sizeof *recv);
    if (rows[rank]) memcpy(recv + offs[rank] * cols, send, (size_t)rows[rank] * cols * sizeof *recv);
    dist_allgather_rows(recv, recv + offs[rank] * cols, (size_t)cols * sizeof(float), rows);
    bad = 0;
    for (int i = 0; i < total; i++)
        for (int j = 0; j < cols; j++) bad += recv[i * cols + j] != (float)(i * 100 + j) + 0.5f;
    CHECK(bad == 0, "allgather in place %d rows: %d wrong", total, bad);
    free(send);
    free(recv);
    free(lsend);
    free(lrecv);
}

/* Rank q fills every row i, column j with (q+1)*(7i + j - 20); rank r's rows
 * must hold W(W+1)/2 * (7i + j - 20). */
static void test_reduce_scatter(int total, int cols) {
    int rows[8], offs[8];
    dist_split_rows(rows, offs, total, world);
    float *send = xmalloc((size_t)(total * cols + 1) * sizeof *send);
    float *recv = xmalloc((size_t)(rows[rank] * cols + 1) * sizeof *recv);
    for (int i = 0; i < total; i++)
        for (int j = 0; j < cols; j++) send[i * cols + j] = (float)((rank + 1) * (7 * i + j - 20));
    dist_reduce_scatter_rows(recv, send, cols, rows);
    float f = (float)(world * (world + 1) / 2);
    int bad = 0;
    for (int i = 0; i < rows[rank]; i++)
        for (int j = 0; j < cols; j++)
            bad += recv[i * cols + j] != f * (float)(7 * (offs[rank] + i) + j - 20);
    CHECK(bad == 0, "reduce-scatter %d rows x %d: %d wrong", total, cols, bad);
    free(send);
    free(recv);
}

/* Rank r's gradient element i at a step: magnitudes from 2^-11 to 2^11, so
 * the order of the additions shows in the bits. */
static float grad_value(int r, size_t i, int step) {
    uint64_t h = hash64(&i, sizeof i, (uint64_t)(r * 7919 + step * 104729 + 1));
    return ldexpf((float)((int)(h % 2001) - 1000) / 7.0f, (int)((h >> 20) % 23) - 11);
}

/* The sum over ranks of element i as comm.h promises it, written out
 * directly: with p' the largest power of two <= p and x = p - p', virtual
 * rank u's leaf is g(2u) + g(2u+1) for u < x and g(u + x) otherwise; then,
 * for h = p'/2, p'/4, ..., 1, partial u += partial u + h (u < h). */
static float tree_sum(size_t i, int step) {
    int pp = 1;
    while (pp * 2 <= world) pp *= 2;
    int x = world - pp;
    float a[8];
    for (int u = 0; u < pp; u++)
        a[u] = u < x ? grad_value(2 * u, i, step) + grad_value(2 * u + 1, i, step) : grad_value(u + x, i, step);
    for (int h = pp / 2; h >= 1; h /= 2)
        for (int u = 0; u < h; u++) a[u] += a[u + h];
    return a[0];
}

/* mode 0: report in reverse order in random chunks (same chunks on every
 * rank); 1: rank-dependent chunks, shuffled order; 2: never report.
 * shards: reduce-scatter to the optimizer's shards of the arena
 * (gradsync_create_shards), checked on this rank's shard only. */
static void test_gradsync(size_t n, size_t bucket, int mode, int shards) {
    float *grads = xaligned_floats(n);
    size_t lo[8], cnt[8];
    for (int r = 0; r < world; r++) {
        size_t hi;
        optim_shard(n, world, r, &lo[r], &hi);
        cnt[r] = hi - lo[r];
    }
    GradSync *g = shards ? gradsync_create_shards(grads, n, bucket, lo, cnt) : gradsync_create(grads, n, bucket);
    size_t nb = gradsync_num_buckets(g);
    CHECK(nb == (n + bucket - 1) / bucket, "buckets %zu", nb);
    size_t cuts[64]; /* chunk boundaries, descending */
    for (int step = 0; step < 3; step++) {
        for (size_t i = 0; i < n; i++) grads[i] = grad_value(rank, i, step);
        gradsync_begin(g);
        CHECK(gradsync_num_started(g) == 0, "started before ready");
        if (mode != 2) {
            Rng rng;
            rng_seed(&rng, 11, RNG_TEST, (uint64_t)(step * 10 + mode) * 100 + (mode == 1 ? rank : 0));
            size_t nc = 0, end = n;
            cuts[nc++] = n;
            while (end > 0 && nc < 63) {
                size_t len = 1 + rng_below(&rng, 2 * bucket);
                if (nc == 2) len = bucket + bucket / 2 + 1; /* spans a bucket boundary */
                end = len < end ? end - len : 0;
                cuts[nc++] = end;
            }
            if (end > 0) cuts[nc++] = 0;
            size_t nchunks = nc - 1;
            uint32_t order[64];
            for (uint32_t c = 0; c < nchunks; c++) order[c] = c;
            if (mode == 1) rng_shuffle_u32(&rng, order, nchunks);
            for (size_t c = 0; c < nchunks; c++) {
                size_t k = order[c];
                gradsync_ready(g, cuts[k + 1], cuts[k] - cuts[k + 1]);
                if (mode == 0) { /* in order: started = buckets fully below cuts[k+1] */
                    size_t expect = (n - cuts[k + 1]) / bucket;
                    if (cuts[k + 1] == 0) expect = nb;
                    CHECK(gradsync_num_started(g) == expect,
                          "after ready [%zu, %zu): %zu "
                          "started, expected %zu",
                          cuts[k + 1], cuts[k], gradsync_num_started(g), expect);
                }
            }
            CHECK(gradsync_num_started(g) == nb, "all reported but %zu of %zu started",
                  gradsync_num_started(g), nb);
        }
        double wait = gradsync_finish(g);
        CHECK(wait >= 0, "wait %g", wait);
        size_t from = shards ? lo[rank] : 0, to = shards ? lo[rank] + cnt[rank] : n, bad = 0, first = to;
        for (size_t i = from; i < to; i++) {
            float want = world == 1 ? grad_value(0, i, step) : tree_sum(i, step);
            if (memcmp(&grads[i], &want, sizeof want) != 0 && bad++ == 0) first = i;
        }
        CHECK(bad == 0, "gradsync n=%zu bucket=%zu mode %d%s step %d: %zu of [%zu, %zu) not the tree's bits (first %zu)",
              n, bucket, mode, shards ? " shards" : "", step, bad, from, to, first);
        if (!shards) { /* bit-identical on all ranks */
            uint64_t h = hash64(grads, n * sizeof *grads, HASH64_INIT), h0 = h;
            MPI_Bcast(&h0, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
            CHECK(h == h0, "gradsync result differs from rank 0's");
        }
    }
    gradsync_free(g);
    free(grads);
}

static void test_bcast(void) {
    char *text = NULL;
    const char *ref = "[run]\ndir = runs/x\n[sampler]\np = 8\nk = 32\n\xc3\xa9";
    if (rank == 0) text = xstrdup(ref);
    dist_bcast_text(&text);
    CHECK(text && strcmp(text, ref) == 0, "bcast text: %s", text ? text : "(null)");
    free(text);
    text = rank == 0 ? xstrdup("") : NULL;
    dist_bcast_text(&text);
    CHECK(text && text[0] == '\0', "bcast empty text");
    free(text);

    enum { N = 1001 };
    float *p = xmalloc(N * sizeof *p);
    unsigned char b[300];
    for (int i = 0; i < N; i++) p[i] = rank == 0 ? (float)i * 0.25f - 3.0f : -1.0f;
    for (int i = 0; i < 300; i++) b[i] = rank == 0 ? (unsigned char)(i * 31) : 0;
    dist_test_set_chunk(7); /* many chunks, the last one partial */
    dist_bcast_floats(p, N);
    dist_bcast_bytes(b, 300);
    dist_test_set_chunk((size_t)1 << 28);
    int bad = 0;
    for (int i = 0; i < N; i++) bad += p[i] != (float)i * 0.25f - 3.0f;
    for (int i = 0; i < 300; i++) bad += b[i] != (unsigned char)(i * 31);
    CHECK(bad == 0, "bcast floats/bytes in chunks: %d wrong", bad);
    dist_bcast_floats(p, 0);
    free(p);
}

static void test_scalars(void) {
    for (int r = 0; r < world; r++) CHECK(dist_any(rank == r) == 1, "dist_any raised by rank %d", r);
    CHECK(dist_any(0) == 0, "dist_any all zero");
    CHECK(dist_any(rank == world - 1 ? 42 : 0) == 1, "dist_any non-1 flag");
    CHECK(dist_max_double(rank * 1.5 - 10) == (world - 1) * 1.5 - 10, "max");
    double v[3] = {1.0, (double)rank, 0.125 * rank};
    dist_allreduce_sum_doubles(v, 3);
    double s = world * (world - 1) / 2.0;
    CHECK(v[0] == world && v[1] == s && v[2] == 0.125 * s, "sum doubles %g %g %g", v[0], v[1], v[2]);
}

/* Rank r sends (r + s) % 3 rows to rank s, row j of them holding
 * (r, s, j, 7): every rank receives the rows addressed to it in rank order;
 * the counts it learns are the senders'. The int64 sum beyond 2^53 is exact. */
static void test_alltoall(void) {
    int scnt[8], rcnt[8], want[8], stot = 0, rtot = 0;
    for (int s = 0; s < world; s++) scnt[s] = (rank + s) % 3, stot += scnt[s];
    dist_alltoall_counts(rcnt, scnt);
    int ok = 1;
    for (int s = 0; s < world; s++) want[s] = (s + rank) % 3, ok &= rcnt[s] == want[s], rtot += want[s];
    CHECK(ok, "alltoall counts: each rank hears what the others send it");
    int32_t *send = xcalloc((size_t)stot * 4 + 1, sizeof *send),
            *recv = xcalloc((size_t)rtot * 4 + 1, sizeof *recv);
    for (int s = 0, o = 0; s < world; s++)
        for (int j = 0; j < scnt[s]; j++, o++) {
            int32_t row[4] = {rank, s, j, 7};
            memcpy(send + 4 * o, row, sizeof row);
        }
    dist_alltoallv_rows(recv, want, send, scnt, 4 * sizeof(int32_t));
    ok = 1;
    for (int r = 0, o = 0; r < world; r++)
        for (int j = 0; j < want[r]; j++, o++)
            ok &= recv[4 * o] == r && recv[4 * o + 1] == rank && recv[4 * o + 2] == j && recv[4 * o + 3] == 7;
    CHECK(ok, "alltoallv rows: the rows addressed to this rank, senders in rank order");
    free(send), free(recv);
    int64_t v[2] = {((int64_t)1 << 60) + rank, -3 * (int64_t)rank};
    dist_allreduce_sum_int64(v, 2);
    int64_t s = (int64_t)world * (world - 1) / 2;
    CHECK(v[0] == ((int64_t)world << 60) + s && v[1] == -3 * s, "int64 sum exact: %lld %lld", (long long)v[0],
          (long long)v[1]);
}

static void test_replicas(void) {
    enum { N = 5000 };
    float *w = xmalloc(N * sizeof *w);
    for (int i = 0; i < N; i++) w[i] = (float)i / 7.0f;
    dist_check_replicas(w, N, 100); /* returns: equal everywhere */
    CHECK(1, "check_replicas returned");
    free(w);
}

static void test_stats(void) {
    DistStats s;
    dist_stats_get(&s);
    if (world > 1) {
        CHECK(s.gradsync_steps > 0 && s.gradsync_bytes > 0 && s.allgather_bytes > 0,
              "stats counted: %llu steps", (unsigned long long)s.gradsync_steps);
    } else {
        CHECK(s.gradsync_steps == 0, "no traffic counted with one rank");
    }
    dist_stats_reset();
    dist_stats_get(&s);
    CHECK(s.gradsync_steps == 0 && s.bcast_s == 0, "stats reset");
}

int main(int argc, char **argv) {
    dist_init(&argc, &argv);
    rank = dist_rank();
    world = dist_world();
    test_quiet_rank_ = rank > 0;
    ASSERT(world <= 8);

    test_init_state();
    test_split();
    int totals[] = {10, 3, 1, 0, 17};
    for (int t = 0; t < 5; t++) {
        test_allgather(totals[t], 3);
        test_reduce_scatter(totals[t], 5);
    }
    test_allgather(10, 1);
    test_reduce_scatter(10, 1);
    for (int shards = 0; shards < 2; shards++) {
        test_gradsync(10000, 1000, 0, shards);
        test_gradsync(10000, 1000, 1, shards);
        test_gradsync(10000, 1000, 2, shards);
        test_gradsync(10007, 768, 0, shards);
        test_gradsync(10007, 768, 1, shards);
        test_gradsync(10007, 768, 2, shards);
        test_gradsync(500, 1000, 0, shards); /* one bucket larger than the arena */
        test_gradsync(1, 1, 1, shards);
        test_gradsync(40, 7, 1, shards); /* shards of 16 floats and empty ones, blocks cut mid-bucket */
    }
    test_bcast();
    test_scalars();
    test_alltoall();
    test_replicas();
    test_stats();

    int rc = test_mpi_finish();
    dist_finalize();
    return rc;
}
