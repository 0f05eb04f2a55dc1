/* comm: see comm.h. */
#include "comm.h"

#include <limits.h>
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../nn/util.h"

enum { COMM_UNINIT, COMM_ACTIVE, COMM_DONE };

static int g_state = COMM_UNINIT;
static int g_rank = 0, g_world = 1;
static int *g_counts, *g_displs, *g_rdispls; /* (world) scratch for the v-collectives */
static uint64_t *g_hashes;       /* (world) replica checksums */
static size_t g_chunk = (size_t)1 << 28;
static DistStats g_stats;

/* ---- start-up and shut-down ------------------------------------------------ */

void dist_mpi_failed(int rc, const char *call, const char *file, int line) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
    util_fatal(file, line, "%s failed: %s", call, msg);
}

static int mpi_running(void) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
}

/* util_fatal_hook: the message is already printed. With one rank there is no
 * peer to stop, and exit avoids Open MPI's multi-line abort banner. */
static void fatal_hook(int code) {
    if (g_world > 1 && mpi_running()) MPI_Abort(MPI_COMM_WORLD, code);
    g_state = COMM_DONE; /* tells exit_abort this exit is deliberate */
    exit(code);
}

/* on_exit (glibc) rather than atexit: it sees the exit status, which the
 * abort passes on (a status of 0 becomes 1: leaving early is a failure). */
static void exit_abort(int status, void *arg) {
    (void)arg;
    if (g_state != COMM_ACTIVE || g_world <= 1 || !mpi_running()) return;
    fprintf(stderr,
            "siamese: [rank %d] exiting (status %d) without dist_finalize: aborting the job so "
            "the other ranks do not hang\n",
            g_rank, status);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, status ? status : 1);
}

void dist_init(int *argc, char ***argv) {
    ASSERT(g_state == COMM_UNINIT);
    int provided = 0;
    CHECK_MPI(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
    g_state = COMM_ACTIVE;
    util_fatal_hook = fatal_hook;
    CHECK_MPI(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    CHECK_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &g_rank));
    CHECK_MPI(MPI_Comm_size(MPI_COMM_WORLD, &g_world));
    if (g_world > 1) util_rank = g_rank;
    if (provided < MPI_THREAD_FUNNELED)
        FATAL("MPI provides thread level %d, below MPI_THREAD_FUNNELED (%d) — use an MPI "
              "library built with thread support",
              provided, MPI_THREAD_FUNNELED);
    g_counts = xcalloc((size_t)g_world, sizeof *g_counts);
    g_displs = xcalloc((size_t)g_world, sizeof *g_displs);
    g_rdispls = xcalloc((size_t)g_world, sizeof *g_rdispls);
    g_hashes = xcalloc((size_t)g_world, sizeof *g_hashes);
    if (on_exit(exit_abort, NULL) != 0) FATAL("on_exit failed");
}

void dist_finalize(void) {
    ASSERT(g_state == COMM_ACTIVE);
    CHECK_MPI(MPI_Finalize());
    g_state = COMM_DONE;
    free(g_counts);
    free(g_displs);
    free(g_rdispls);
    free(g_hashes);
    g_counts = g_displs = g_rdispls = NULL;
    g_hashes = NULL;
}

int dist_rank(void) { return g_rank; }
int dist_world(void) { return g_world; }

void dist_abort(int code) {
    if (mpi_running() && g_world > 1) MPI_Abort(MPI_COMM_WORLD, code);
    g_state = COMM_DONE;
    exit(code);
}

/* Every collective below returns early when world == 1 (also before
 * dist_init); otherwise MPI must be up. */
static int solo(void) {
    if (g_world == 1) return 1;
    ASSERT(g_state == COMM_ACTIVE);
    return 0;
}

void dist_barrier(void) {
    if (solo()) return;
    CHECK_MPI(MPI_Barrier(MPI_COMM_WORLD));
}

void dist_barrier_idle(void) {
    if (solo()) return;
    MPI_Request req;
    CHECK_MPI(MPI_Ibarrier(MPI_COMM_WORLD, &req));
    int done = 0;
    for (;;) {
        CHECK_MPI(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
        if (done) break;
        struct timespec ts = {0, 2000000}; /* 2 ms */
        nanosleep(&ts, NULL);
    }
}

int dist_ranks_sharing_cpus(void) {
    if (solo()) return 1;
    MPI_Comm node;
    CHECK_MPI(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node));
    int n;
    CHECK_MPI(MPI_Comm_size(node, &n));
    cpu_set_t mine;
    CPU_ZERO(&mine);
    if (sched_getaffinity(0, sizeof mine, &mine)) CPU_SET(0, &mine);
    cpu_set_t *all = xcalloc((size_t)n, sizeof *all);
    CHECK_MPI(MPI_Allgather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE, node));
    int share = 0;
    for (int i = 0; i < n; i++) {
        cpu_set_t both;
        CPU_AND(&both, &mine, &all[i]);
        share += CPU_COUNT(&both) > 0;
    }
    free(all);
    CHECK_MPI(MPI_Comm_free(&node));
    return share > 0 ? share : 1;
}

/* ---- batch slicing ------------------------------------------------------------- */

void dist_split_rows(int *rows_per_rank, int *row_offsets, int total_rows, int world) {
    ASSERT(world > 0 && total_rows >= 0);
    int base = total_rows / world, extra = total_rows % world, off = 0;
    for (int r = 0; r < world; r++) {
        rows_per_rank[r] = base + (r < extra);
        if (row_offsets) row_offsets[r] = off;
        off += rows_per_rank[r];
    }
}

/* ---- rank 0 to everyone -------------------------------------------------------- */

static void bcast_chunked(void *p, size_t n, size_t elem, MPI_Datatype type) {
    double t0 = now_seconds();
    char *c = p;
    size_t max = g_chunk < (size_t)INT_MAX ? g_chunk : (size_t)INT_MAX;
    for (size_t done = 0; done < n;) {
        size_t k = MIN(n - done, max);
        CHECK_MPI(MPI_Bcast(c + done * elem, (int)k, type, 0, MPI_COMM_WORLD));
        done += k;
    }
    g_stats.bcast_s += now_seconds() - t0;
}

void dist_bcast_text(char **text) {
    if (solo()) return;
    uint64_t len = 0;
    if (g_rank == 0) {
        ASSERT(*text != NULL);
        len = strlen(*text);
    }
    bcast_chunked(&len, 1, sizeof len, MPI_UINT64_T);
    if (g_rank != 0) {
        ASSERT(len < SIZE_MAX);
        *text = xmalloc((size_t)len + 1);
        (*text)[len] = '\0';
    }
    bcast_chunked(*text, (size_t)len, 1, MPI_CHAR);
}

void dist_bcast_floats(float *p, size_t n) {
    if (solo()) return;
    bcast_chunked(p, n, sizeof *p, MPI_FLOAT);
}

void dist_bcast_bytes(void *p, size_t n) {
    if (solo()) return;
    bcast_chunked(p, n, 1, MPI_BYTE);
}

/* ---- rows of the global batch ---------------------------------------------------- */

void dist_allgather_rows(void *recv, const void *send, size_t row_bytes, const int *rows_per_rank) {
    size_t total = 0, mine = 0;
    for (int r = 0; r < g_world; r++) {
        ASSERT(rows_per_rank[r] >= 0);
        if (r < g_rank) mine += (size_t)rows_per_rank[r];
        total += (size_t)rows_per_rank[r];
    }
    char *own = (char *)recv + mine * row_bytes;
    size_t own_bytes = (size_t)rows_per_rank[g_rank] * row_bytes;
    if (solo()) {
        if (own != send && own_bytes) memmove(own, send, own_bytes);
        return;
    }
    double t0 = now_seconds();
    const void *sendbuf = own == send ? MPI_IN_PLACE : send;
    if (total * row_bytes <= (size_t)INT_MAX) {
        for (int r = 0, off = 0; r < g_world; r++) {
            g_counts[r] = rows_per_rank[r] * (int)row_bytes;
            g_displs[r] = off;
            off += g_counts[r];
        }
        CHECK_MPI(MPI_Allgatherv(sendbuf, g_counts[g_rank], MPI_BYTE, recv, g_counts, g_displs, MPI_BYTE,
                                 MPI_COMM_WORLD));
    } else { /* beyond int byte counts: count rows of a row-sized type */
        ASSERT(total <= (size_t)INT_MAX && row_bytes <= (size_t)INT_MAX);
        MPI_Datatype row;
        CHECK_MPI(MPI_Type_contiguous((int)row_bytes, MPI_BYTE, &row));
        CHECK_MPI(MPI_Type_commit(&row));
        for (int r = 0, off = 0; r < g_world; r++) {
            g_counts[r] = rows_per_rank[r];
            g_displs[r] = off;
            off += g_counts[r];
        }
        CHECK_MPI(
            MPI_Allgatherv(sendbuf, g_counts[g_rank], row, recv, g_counts, g_displs, row, MPI_COMM_WORLD));
        CHECK_MPI(MPI_Type_free(&row));
    }
    g_stats.allgather_s += now_seconds() - t0;
    g_stats.allgather_bytes += own_bytes;
}

void dist_reduce_scatter_rows(float *recv, const float *send, int row_len, const int *rows_per_rank) {
    ASSERT(row_len >= 0);
    size_t total = 0, mine = 0;
    for (int r = 0; r < g_world; r++) {
        ASSERT(rows_per_rank[r] >= 0);
        if (r < g_rank) mine += (size_t)rows_per_rank[r];
        total += (size_t)rows_per_rank[r];
    }
    size_t own = (size_t)rows_per_rank[g_rank] * (size_t)row_len;
    if (solo()) {
        if (recv != send + mine * row_len && own) memmove(recv, send + mine * row_len, own * sizeof *recv);
        return;
    }
    if (total * (size_t)row_len > (size_t)INT_MAX)
        FATAL("reduce-scatter of %zu rows x %d floats exceeds MPI's int counts — use a "
              "smaller global batch or embedding",
              total, row_len);
    double t0 = now_seconds();
    for (int r = 0; r < g_world; r++) g_counts[r] = rows_per_rank[r] * row_len;
    CHECK_MPI(MPI_Reduce_scatter(send, recv, g_counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    g_stats.reduce_scatter_s += now_seconds() - t0;
    g_stats.reduce_scatter_bytes += total * (size_t)row_len * sizeof(float);
}

/* ---- rows to chosen ranks -------------------------------------------------------------------- */

void dist_alltoall_counts(int *recv_counts, const int *send_counts) {
    if (solo()) {
        recv_counts[g_rank] = send_counts[g_rank];
        return;
    }
    double t0 = now_seconds();
    CHECK_MPI(MPI_Alltoall(send_counts, 1, MPI_INT, recv_counts, 1, MPI_INT, MPI_COMM_WORLD));
    g_stats.scalar_s += now_seconds() - t0;
}

void dist_alltoallv_rows(void *recv, const int *recv_counts, const void *send, const int *send_counts,
                         size_t row_bytes) {
    size_t sfirst = 0, rfirst = 0, sown = 0;
    for (int r = 0; r < g_rank; r++) sfirst += (size_t)send_counts[r], rfirst += (size_t)recv_counts[r];
    if (solo()) {
        ASSERT(send_counts[g_rank] == recv_counts[g_rank]);
        sown = (size_t)send_counts[g_rank] * row_bytes;
        if (sown) memmove((char *)recv + rfirst * row_bytes, (const char *)send + sfirst * row_bytes, sown);
        return;
    }
    ASSERT(row_bytes > 0 && row_bytes <= (size_t)INT_MAX);
    double t0 = now_seconds();
    MPI_Datatype row;
    CHECK_MPI(MPI_Type_contiguous((int)row_bytes, MPI_BYTE, &row));
    CHECK_MPI(MPI_Type_commit(&row));
    size_t soff = 0, roff = 0;
    for (int r = 0; r < g_world; r++) {
        ASSERT(send_counts[r] >= 0 && recv_counts[r] >= 0 && soff <= (size_t)INT_MAX &&
               roff <= (size_t)INT_MAX);
        g_displs[r] = (int)soff;
        g_rdispls[r] = (int)roff;
        soff += (size_t)send_counts[r];
        roff += (size_t)recv_counts[r];
    }
    CHECK_MPI(
        MPI_Alltoallv(send, send_counts, g_displs, row, recv, recv_counts, g_rdispls, row, MPI_COMM_WORLD));
    CHECK_MPI(MPI_Type_free(&row));
    g_stats.allgather_s += now_seconds() - t0;
    g_stats.allgather_bytes += (roff - (size_t)recv_counts[g_rank]) * row_bytes;
}

void dist_allreduce_sum_int64(int64_t *p, size_t n) {
    if (solo() || n == 0) return;
    double t0 = now_seconds();
    for (size_t i = 0; i < n; i += g_chunk) {
        size_t c = MIN(g_chunk, n - i);
        CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, p + i, (int)c, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD));
    }
    g_stats.scalar_s += now_seconds() - t0;
}

/* ---- shards of an array ------------------------------------------------------------------ */

/* g_counts, g_displs = the shards' counts and offsets as MPI's ints. */
static void shard_ints(const size_t *lo, const size_t *count) {
    for (int r = 0; r < g_world; r++) {
        if (lo[r] + count[r] > (size_t)INT_MAX)
            FATAL("a shard ending at float %zu exceeds MPI's int counts", lo[r] + count[r]);
        g_counts[r] = (int)count[r];
        g_displs[r] = (int)lo[r];
    }
}

void dist_allgather_shards(float *buf, const size_t *lo, const size_t *count) {
    if (solo()) return;
    double t0 = now_seconds();
    shard_ints(lo, count);
    CHECK_MPI(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, g_counts, g_displs, MPI_FLOAT,
                             MPI_COMM_WORLD));
    g_stats.allgather_s += now_seconds() - t0;
    g_stats.allgather_bytes += count[g_rank] * sizeof(float);
}

void dist_gather_shards(float *full, const float *part, const size_t *lo, const size_t *count) {
    if (solo()) {
        if (count[g_rank]) memmove(full + lo[g_rank], part, count[g_rank] * sizeof *full);
        return;
    }
    shard_ints(lo, count);
    CHECK_MPI(MPI_Gatherv(part, g_counts[g_rank], MPI_FLOAT, full, g_counts, g_displs, MPI_FLOAT, 0,
                          MPI_COMM_WORLD));
}

void dist_scatter_shards(float *part, const float *full, const size_t *lo, const size_t *count) {
    if (solo()) {
        if (count[g_rank]) memmove(part, full + lo[g_rank], count[g_rank] * sizeof *part);
        return;
    }
    shard_ints(lo, count);
    CHECK_MPI(MPI_Scatterv(full, g_counts, g_displs, MPI_FLOAT, part, g_counts[g_rank], MPI_FLOAT, 0,
                           MPI_COMM_WORLD));
}

/* ---- scalars ------------------------------------------------------------------------ */

void dist_allreduce_sum_doubles(double *p, int n) {
    ASSERT(n >= 0);
    if (solo() || n == 0) return;
    double t0 = now_seconds();
    CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, p, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
    g_stats.scalar_s += now_seconds() - t0;
}

int dist_any(int flag) {
    int v = flag != 0;
    if (solo()) return v;
    double t0 = now_seconds();
    CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD));
    g_stats.scalar_s += now_seconds() - t0;
    return v != 0;
}

double dist_max_double(double x) {
    if (solo()) return x;
    double t0 = now_seconds();
    CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
    g_stats.scalar_s += now_seconds() - t0;
    return x;
}

int dist_local_ranks(void) {
    if (solo()) return 1;
    MPI_Comm node;
    int n = 1;
    CHECK_MPI(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
    CHECK_MPI(MPI_Comm_size(node, &n));
    CHECK_MPI(MPI_Comm_free(&node));
    return n;
}

void dist_allgather_double(double *all, double x) {
    if (solo()) {
        all[0] = x;
        return;
    }
    double t0 = now_seconds();
    CHECK_MPI(MPI_Allgather(&x, 1, MPI_DOUBLE, all, 1, MPI_DOUBLE, MPI_COMM_WORLD));
    g_stats.scalar_s += now_seconds() - t0;
}

void dist_gather_doubles(double *recv, const double *send, int n) {
    if (solo()) {
        memcpy(recv, send, (size_t)n * sizeof *send);
        return;
    }
    double t0 = now_seconds();
    CHECK_MPI(MPI_Gather(send, n, MPI_DOUBLE, recv, n, MPI_DOUBLE, 0, MPI_COMM_WORLD));
    g_stats.scalar_s += now_seconds() - t0;
}

/* ---- bucketed gradient reduction ------------------------------------------------------ */

/* Rabenseifner's reduce-scatter (recursive halving) and allgather
 * (recursive doubling) of our own, on point-to-point messages, one bucket at
 * a time (comm.h says why not MPI_Iallreduce). Non-power-of-two worlds fold
 * first: with p' the largest power of two <= p and x = p - p', even rank 2i
 * < 2x sends its bucket to 2i + 1 and idles; the p' remaining ranks are the
 * virtual ranks v (real rank 2v + 1 for v < x, else v + x). The halving
 * leaves virtual rank v the sum of block v, a p'-th of the bucket.
 *
 * Allreduce: the doubling gathers the blocks, and each folded pair's odd
 * rank returns the bucket to its even one. Reduce-scatter to the
 * optimizer's shards: the blocks are the same, and one last round of
 * messages, all at once, moves each block's pieces to the ranks whose
 * shards they fall in. So both do the same additions on the same ranks:
 * the same bits. And every rank gets the same bits: an element is added
 * once, on one rank, and copied. (The tree of additions depends only on p;
 * tests/mpi_comm.c writes it out and compares.) */

typedef struct Round {
    int peer;        /* real rank */
    size_t soff, sn; /* floats of grads sent */
    size_t roff, rn; /* floats received: into scratch and added (sum), or into grads */
    int sum;
    int join; /* posted with the round before it: its messages are in flight at once */
} Round;

struct GradSync {
    float *grads, *scratch; /* scratch: the arena's size, a bucket's sums land at its own offsets */
    size_t n, bucket, nbuckets;
    size_t *ready;          /* (nbuckets) floats reported final this step */
    Round *rounds;          /* this rank's schedule: bucket i's rounds are [first[i], first[i + 1]) */
    size_t *first, *at;     /* (nbuckets + 1), (nbuckets) the group of rounds in flight */
    size_t nrounds, cap;
    MPI_Request *requests;  /* bucket i's are [req[i], req[i + 1]): 2 per round of its largest group */
    size_t *req;            /* (nbuckets + 1) */
    int *indices;           /* MPI_Testsome's, one per request */
    size_t next;            /* buckets [0, next) have started, in order */
    size_t done;            /* buckets [0, done) are complete */
    int active;             /* between begin and finish */
    int scatter;            /* 1: each rank receives only its shard of the sum */
    MPI_Comm comm;
};

/* Bucket i covers grads[start, end) with end = n - i*bucket. */
static size_t bucket_end(const GradSync *g, size_t i) { return g->n - i * g->bucket; }
static size_t bucket_start(const GradSync *g, size_t i) {
    size_t end = bucket_end(g, i);
    return end > g->bucket ? end - g->bucket : 0;
}

static void add_round(GradSync *g, int peer, size_t soff, size_t sn, size_t roff, size_t rn, int sum, int join) {
    if (g->nrounds == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 64;
        g->rounds = xrealloc(g->rounds, g->cap * sizeof *g->rounds);
    }
    g->rounds[g->nrounds++] = (Round){peer, soff, sn, roff, rn, sum, join};
}

/* Bucket i's rounds on this rank. lo, count: the ranks' shards (scatter). */
static void plan_bucket(GradSync *g, size_t i, const size_t *lo, const size_t *count) {
    int p = g_world, me = g_rank, pp = 1;
    while (pp * 2 <= p) pp *= 2;
    int x = p - pp;
    size_t s = bucket_start(g, i), e = bucket_end(g, i), L = e - s;
#define REAL(u) ((u) < x ? 2 * (u) + 1 : (u) + x)
#define VB(u) (s + L * (size_t)(u) / (size_t)pp) /* virtual rank u's block: [VB(u), VB(u + 1)) */
    int v = me < 2 * x ? me / 2 : me - x, folded = me < 2 * x && me % 2 == 0;
    if (folded)
        add_round(g, me + 1, s, L, 0, 0, 0, 0);
    else {
        if (me < 2 * x) add_round(g, me - 1, 0, 0, s, L, 1, 0);
        int blo = 0, bhi = pp;
        for (int h = pp / 2; h >= 1; h /= 2) {
            int mid = blo + h, keep_lo = v < mid;
            int klo = keep_lo ? blo : mid, khi = keep_lo ? mid : bhi, glo = keep_lo ? mid : blo, ghi = keep_lo ? bhi : mid;
            add_round(g, REAL(v ^ h), VB(glo), VB(ghi) - VB(glo), VB(klo), VB(khi) - VB(klo), 1, 0);
            blo = klo, bhi = khi;
        }
    }
    if (g->scatter) { /* each block's pieces to the shards' ranks, all at once */
        size_t a = MAX(lo[me], s), b = MIN(lo[me] + count[me], e), n0 = g->nrounds;
        for (int u = 0; u < pp; u++) { /* what this rank's shard needs from each block's holder */
            size_t f = MAX(a, VB(u)), t = MIN(b, VB(u + 1));
            if (f < t && (folded || u != v)) add_round(g, REAL(u), 0, 0, f, t - f, 0, g->nrounds > n0);
        }
        for (int r = 0; r < p && !folded; r++) { /* what each rank's shard needs from this rank's block */
            size_t f = MAX(MAX(lo[r], s), VB(v)), t = MIN(MIN(lo[r] + count[r], e), VB(v + 1));
            if (f < t && r != me) add_round(g, r, f, t - f, 0, 0, 0, g->nrounds > n0);
        }
    } else if (folded) {
        add_round(g, me + 1, 0, 0, s, L, 0, 0);
    } else {
        for (int h = 1; h < pp; h *= 2) {
            int mine = v & ~(h - 1), theirs = mine ^ h;
            add_round(g, REAL(v ^ h), VB(mine), VB(mine + h) - VB(mine), VB(theirs), VB(theirs + h) - VB(theirs), 0,
                      0);
        }
        if (v < x) add_round(g, 2 * v, s, L, 0, 0, 0, 0);
    }
#undef REAL
#undef VB
}

/* The end of the group of rounds starting at k (bucket i). */
static size_t group_end(const GradSync *g, size_t i, size_t k) {
    size_t end = k + 1;
    while (end < g->first[i + 1] && g->rounds[end].join) end++;
    return end;
}

static GradSync *gradsync_new(float *grads, size_t n, size_t bucket_floats, const size_t *lo, const size_t *count) {
    ASSERT(bucket_floats >= 1 && bucket_floats <= (size_t)INT_MAX);
    ASSERT(grads != NULL || n == 0);
    GradSync *g = xcalloc(1, sizeof *g);
    g->grads = grads;
    g->n = n;
    g->bucket = bucket_floats;
    g->nbuckets = (n + bucket_floats - 1) / bucket_floats;
    g->scatter = lo != NULL;
    g->ready = xcalloc(g->nbuckets, sizeof *g->ready);
    g->comm = MPI_COMM_NULL;
    if (solo()) return g;
    void *ub;
    int flag = 0;
    CHECK_MPI(MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &ub, &flag));
    size_t tag_ub = flag ? (size_t)*(int *)ub : 32767; /* a bucket's messages carry its index as tag */
    if (g->nbuckets > tag_ub + 1)
        FATAL("%zu gradient buckets exceed the MPI library's %zu message tags: raise [dist] bucket_kfloats "
              "(now %zu)",
              g->nbuckets, tag_ub + 1, bucket_floats / 1000);
    if (g->scatter) {
        for (int r = 0; r < g_world; r++) ASSERT(lo[r] == (r ? lo[r - 1] + count[r - 1] : 0));
        ASSERT(lo[g_world - 1] + count[g_world - 1] == n);
    }
    CHECK_MPI(MPI_Comm_dup(MPI_COMM_WORLD, &g->comm));
    g->scratch = xaligned_floats(n);
    g->first = xcalloc(g->nbuckets + 1, sizeof *g->first);
    g->req = xcalloc(g->nbuckets + 1, sizeof *g->req);
    g->at = xcalloc(g->nbuckets, sizeof *g->at);
    for (size_t i = 0; i < g->nbuckets; i++) {
        g->first[i] = g->nrounds;
        plan_bucket(g, i, lo, count);
        g->first[i + 1] = g->nrounds;
        size_t widest = 0;
        for (size_t k = g->first[i]; k < g->first[i + 1]; k = group_end(g, i, k))
            widest = MAX(widest, group_end(g, i, k) - k);
        g->req[i + 1] = g->req[i] + 2 * widest;
    }
    g->requests = xcalloc(g->req[g->nbuckets] + 1, sizeof *g->requests);
    g->indices = xcalloc(g->req[g->nbuckets] + 1, sizeof *g->indices);
    for (size_t k = 0; k <= g->req[g->nbuckets]; k++) g->requests[k] = MPI_REQUEST_NULL;
    return g;
}

GradSync *gradsync_create(float *grads, size_t n, size_t bucket_floats) {
    return gradsync_new(grads, n, bucket_floats, NULL, NULL);
}

GradSync *gradsync_create_shards(float *grads, size_t n, size_t bucket_floats, const size_t *lo,
                                 const size_t *count) {
    ASSERT(lo != NULL && count != NULL);
    return gradsync_new(grads, n, bucket_floats, lo, count);
}

void gradsync_begin(GradSync *g) {
    ASSERT(!g->active);
    memset(g->ready, 0, g->nbuckets * sizeof *g->ready);
    g->next = g->done = 0;
    g->active = 1;
}

/* Posts bucket i's group of rounds starting at g->at[i] (none past its last). */
static void post_group(GradSync *g, size_t i) {
    size_t k0 = g->at[i];
    if (k0 == g->first[i + 1]) return;
    MPI_Request *rq = g->requests + g->req[i];
    int tag = (int)i;
    for (size_t k = k0, k1 = group_end(g, i, k0); k < k1; k++, rq += 2) {
        const Round *r = &g->rounds[k];
        if (r->rn) /* counts fit in int: a round moves at most one bucket */
            CHECK_MPI(MPI_Irecv((r->sum ? g->scratch : g->grads) + r->roff, (int)r->rn, MPI_FLOAT, r->peer, tag,
                                g->comm, &rq[0]));
        if (r->sn)
            CHECK_MPI(MPI_Isend(g->grads + r->soff, (int)r->sn, MPI_FLOAT, r->peer, tag, g->comm, &rq[1]));
    }
}

static void start_bucket(GradSync *g, size_t i) {
    if (g->comm == MPI_COMM_NULL) return; /* world == 1 */
    g->at[i] = g->first[i];
    post_group(g, i);
}

/* Advances bucket i through every group whose messages have all arrived
 * (MPI frees a completed request to MPI_REQUEST_NULL): adds what came,
 * posts the next group. Returns 1 once the bucket is complete. */
static int advance_bucket(GradSync *g, size_t i) {
    while (g->at[i] < g->first[i + 1]) {
        size_t k0 = g->at[i], k1 = group_end(g, i, k0);
        const MPI_Request *rq = g->requests + g->req[i];
        for (size_t q = 0; q < 2 * (k1 - k0); q++)
            if (rq[q] != MPI_REQUEST_NULL) return 0;
        for (size_t k = k0; k < k1; k++) {
            const Round *r = &g->rounds[k];
            if (!r->sum) continue;
            float *dst = g->grads + r->roff;
            const float *src = g->scratch + r->roff;
            for (size_t j = 0; j < r->rn; j++) dst[j] += src[j];
        }
        g->at[i] = k1;
        post_group(g, i);
    }
    return 1;
}

/* One MPI_Testsome over every request in flight (it also drives MPI's
 * progress), then the buckets advanced; returns 1 when every started
 * bucket is complete. */
static int advance(GradSync *g) {
    if (g->done == g->next) return 1;
    size_t k0 = g->req[g->done], k1 = g->req[g->next];
    int outcount;
    ASSERT(k1 - k0 <= (size_t)INT_MAX);
    CHECK_MPI(MPI_Testsome((int)(k1 - k0), g->requests + k0, &outcount, g->indices, MPI_STATUSES_IGNORE));
    for (size_t i = g->done; i < g->next; i++)
        if (advance_bucket(g, i) && i == g->done) g->done++;
    return g->done == g->next;
}

void gradsync_ready(GradSync *g, size_t offset, size_t count) {
    ASSERT(g->active);
    ASSERT(offset <= g->n && count <= g->n - offset);
    if (count == 0) return;
    size_t end = offset + count;
    /* Buckets touched: from the one holding end-1 (lowest index) to the one
     * holding offset. */
    size_t lo = (g->n - end) / g->bucket, hi = (g->n - 1 - offset) / g->bucket;
    for (size_t i = lo; i <= hi; i++) {
        size_t s = MAX(bucket_start(g, i), offset), e = MIN(bucket_end(g, i), end);
        g->ready[i] += e - s;
        ASSERT(g->ready[i] <= bucket_end(g, i) - bucket_start(g, i)); /* overlapping reports */
    }
    while (g->next < g->nbuckets && g->ready[g->next] == bucket_end(g, g->next) - bucket_start(g, g->next))
        start_bucket(g, g->next++);
    gradsync_progress(g);
}

void gradsync_progress(GradSync *g) {
    if (g->comm == MPI_COMM_NULL || g->done >= g->next) return;
    advance(g);
}

void gradsync_barrier(GradSync *g) {
    if (g->comm == MPI_COMM_NULL) return;
    MPI_Request req;
    CHECK_MPI(MPI_Ibarrier(MPI_COMM_WORLD, &req));
    for (int flag = 0;;) {
        CHECK_MPI(MPI_Test(&req, &flag, MPI_STATUS_IGNORE));
        if (flag) break;
        gradsync_progress(g);
    }
}

double gradsync_finish(GradSync *g) {
    ASSERT(g->active);
    double t0 = now_seconds();
    while (g->next < g->nbuckets) start_bucket(g, g->next++);
    if (g->comm != MPI_COMM_NULL)
        while (!advance(g)) { /* wait for any message in flight, then add and post */
            size_t k0 = g->req[g->done], k1 = g->req[g->next];
            int outcount;
            CHECK_MPI(MPI_Waitsome((int)(k1 - k0), g->requests + k0, &outcount, g->indices, MPI_STATUSES_IGNORE));
        }
    g->done = g->nbuckets;
    g->active = 0;
    double dt = now_seconds() - t0;
    if (g->comm != MPI_COMM_NULL) {
        g_stats.gradsync_s += dt;
        g_stats.gradsync_bytes += g->n * sizeof(float);
        g_stats.gradsync_steps++;
    }
    return dt;
}

void gradsync_free(GradSync *g) {
    if (!g) return;
    if (g->active) gradsync_finish(g);
    if (g->comm != MPI_COMM_NULL) CHECK_MPI(MPI_Comm_free(&g->comm));
    free(g->ready);
    free(g->rounds);
    free(g->first);
    free(g->at);
    free(g->req);
    free(g->requests);
    free(g->indices);
    free(g->scratch);
    free(g);
}

size_t gradsync_num_buckets(const GradSync *g) { return g->nbuckets; }
size_t gradsync_num_started(const GradSync *g) { return g->next; }

/* ---- replica checksum ------------------------------------------------------------- */

void dist_check_replicas(const float *w, size_t n, uint64_t step) {
    if (solo()) return;
    uint64_t h = hash64(w, n * sizeof *w, HASH64_INIT);
    CHECK_MPI(MPI_Allgather(&h, 1, MPI_UINT64_T, g_hashes, 1, MPI_UINT64_T, MPI_COMM_WORLD));
    int ndiff = 0;
    for (int r = 1; r < g_world; r++) ndiff += g_hashes[r] != g_hashes[0];
    if (ndiff == 0) return;
    /* Every rank sees the same hashes, hence the same verdict. Rank 0 speaks
     * and aborts the job; the others wait in a barrier rank 0 never enters,
     * so they cannot tear the job down before rank 0's message is out. */
    if (g_rank != 0) {
        MPI_Barrier(MPI_COMM_WORLD);
        dist_abort(1); /* not reached: rank 0's abort ends this process */
    }
    char list[512];
    size_t len = 0;
    int shown = 0;
    list[0] = '\0';
    for (int r = 1; r < g_world; r++) {
        if (g_hashes[r] == g_hashes[0]) continue;
        if (len + 32 >= sizeof list) {
            snprintf(list + len, sizeof list - len, ", ... (%d in all)", ndiff);
            break;
        }
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%d", shown ? ", " : "", r);
        shown++;
    }
    FATAL("replicas diverged at step %llu: rank%s %s differ%s from rank 0 — report a bug; "
          "re-run with --debug",
          (unsigned long long)step, ndiff > 1 ? "s" : "", list, ndiff > 1 ? "" : "s");
}

/* ---- timing ---------------------------------------------------------------------------- */

void dist_stats_get(DistStats *out) { *out = g_stats; }
void dist_stats_reset(void) { memset(&g_stats, 0, sizeof g_stats); }

void dist_test_set_chunk(size_t max_elems) {
    ASSERT(max_elems >= 1);
    g_chunk = max_elems;
}

/* Tests only: while on, this rank behaves as a world of one (rank 0, every
 * collective a no-op), so an MPI test can compute the 1-rank reference of
 * a p-rank run inside the same job. */
void dist_test_solo(int on) {
    static int saved_rank, saved_world, active;
    if (on && !active) {
        saved_rank = g_rank, saved_world = g_world, active = 1;
        g_rank = 0, g_world = 1;
    } else if (!on && active) {
        g_rank = saved_rank, g_world = saved_world, active = 0;
    }
}
