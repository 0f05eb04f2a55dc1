/* comm: the project's only contact with MPI. Start-up and shut-down (mpirun,
 * srun --mpi=pmix, or a plain process as an Open MPI singleton), fatal errors
 * that stop every rank, broadcasts from rank 0, the embedding allgather and
 * gradient reduce-scatter with uneven per-rank row counts, scalar reductions,
 * the bucketed gradient allreduce overlapped with backward, and the replica
 * checksum. It knows nothing of models, losses or files. */
#ifndef SIAMESE_DIST_COMM_H
#define SIAMESE_DIST_COMM_H

#include <stddef.h>
#include <stdint.h>

/* ---- start-up and shut-down ------------------------------------------------ */

/* MPI_Init_thread(MPI_THREAD_FUNNELED): only the main thread calls MPI (the
 * prefetch thread never does). Afterwards:
 *  - util_rank = rank when the world has more than one rank (else stays -1);
 *  - util_fatal_hook ends the whole job with MPI_Abort (world > 1) so one
 *    rank's FATAL stops every rank with that rank's message, never a hang
 *    (also when FATAL is called from the prefetch thread); with one rank it
 *    exits with the code (no Open MPI abort banner);
 *  - MPI_COMM_WORLD returns error codes, which CHECK_MPI turns into FATAL;
 *  - an exit handler aborts the job (with the exit status, 0 becoming 1) if a
 *    rank of a world > 1 calls exit() or returns from main without
 *    dist_finalize, so the others do not wait forever in their next
 *    collective. A rank killed by a signal is handled
 *    by the launcher (mpirun kills the job; under srun use --kill-on-bad-exit).
 * argc/argv may be NULL. Call once, from the main thread. */
void dist_init(int *argc, char ***argv);
/* Collective. After it, no dist_ function may be called except dist_rank,
 * dist_world and the pure dist_split_rows. */
void dist_finalize(void);
int dist_rank(void);  /* 0 before dist_init */
int dist_world(void); /* 1 before dist_init */
/* Ends every rank with this exit code (MPI_Abort; exit when world == 1 or
 * MPI is not running). Prints nothing: print the reason first. */
void dist_abort(int code) __attribute__((noreturn));
/* Blocks until every rank arrives (world == 1: returns at once). */
void dist_barrier(void);
/* The same for a long wait (ranks waiting while rank 0 evaluates and writes
 * the report): polls every 2 ms and sleeps between polls instead of
 * spinning, leaving the cores to the rank that works. */
void dist_barrier_idle(void);

/* For code that includes <mpi.h> (dist/ only): on a return code other than
 * MPI_SUCCESS, FATAL with the call text and MPI_Error_string. */
#define CHECK_MPI(call)                                                                                      \
    do {                                                                                                     \
        int dist_rc_ = (call);                                                                               \
        if (dist_rc_ != MPI_SUCCESS) dist_mpi_failed(dist_rc_, #call, __FILE__, __LINE__);                   \
    } while (0)
void dist_mpi_failed(int rc, const char *call, const char *file, int line) __attribute__((noreturn));

/* The ranks of this job on this node (this one included) whose CPU
 * affinity masks overlap this rank's: the ranks its threads share the CPUs
 * with (nn/parallel.h parallel_choose_threads divides by it). 1 with one
 * rank. Collective. */
int dist_ranks_sharing_cpus(void);

/* ---- batch slicing ----------------------------------------------------------- */

/* The global batch of total_rows is cut into contiguous slices in rank order,
 * differing by at most one row: rank r gets total/world rows plus one if
 * r < total % world. Fills rows_per_rank[world] and, if not NULL,
 * row_offsets[world] (first global row of each rank). Pure: no MPI. */
void dist_split_rows(int *rows_per_rank, int *row_offsets, int total_rows, int world);

/* ---- rank 0 to everyone --------------------------------------------------------- */

/* Rank 0 passes a NUL-terminated string in *text (it keeps ownership); on the
 * other ranks *text is overwritten (a previous value is NOT freed) with a
 * malloc'd copy the caller frees. Collective. */
void dist_bcast_text(char **text);
/* In place from rank 0; any n (cut into chunks below INT_MAX elements). */
void dist_bcast_floats(float *p, size_t n);
void dist_bcast_bytes(void *p, size_t n);

/* ---- rows of the global batch ---------------------------------------------------- */

/* Every rank contributes its rows_per_rank[rank] rows of row_bytes bytes each
 * (send) and receives every rank's rows in rank order, i.e. the global batch
 * in global order (recv: (sum rows_per_rank) rows). Works for float
 * embeddings, int32 labels, uint32 ids. rows_per_rank must be identical on
 * every rank; 0 rows on a rank is allowed. send may point at this rank's own
 * slice of recv (in place). Collective. */
void dist_allgather_rows(void *recv, const void *send, size_t row_bytes, const int *rows_per_rank);

/* The transpose of dist_allgather_rows for gradients: every rank holds a full
 * send (total_rows, row_len) of partial dLoss/dE; rank r receives
 * recv (rows_per_rank[r], row_len) = the SUM over ranks of the rows that
 * belong to r (its own embeddings' exact gradient, including the terms where
 * they served as another rank's positive or negative). recv must not overlap
 * send. Collective. */
void dist_reduce_scatter_rows(float *recv, const float *send, int row_len, const int *rows_per_rank);

/* ---- rows to chosen ranks (the hard-class pool, mining/classes.h) ---------------- */

/* recv_counts[s] = the send_counts[rank] of rank s: each rank tells every
 * other how much it will send it (MPI_Alltoall of one int). Collective. */
void dist_alltoall_counts(int *recv_counts, const int *send_counts);
/* Rank r sends send_counts[s] rows of row_bytes bytes from send (rows for
 * rank 0 first, then rank 1, ...) to every rank s, and receives
 * recv_counts[s] rows from each s into recv in rank order (MPI_Alltoallv).
 * The counts must agree pairwise (dist_alltoall_counts). Collective. */
void dist_alltoallv_rows(void *recv, const int *recv_counts, const void *send, const int *send_counts,
                         size_t row_bytes);
/* In place, SUM over ranks of 64-bit integers: exact, so the same bits for
 * any number of ranks and any reduction order. Collective. */
void dist_allreduce_sum_int64(int64_t *p, size_t n);

/* ---- shards of an array (the sharded optimizer) -------------------------------------- */

/* Rank r owns buf[lo[r], lo[r] + count[r]) of an array of floats (lo and
 * count identical on every rank, the ranges disjoint, each sum below
 * INT_MAX). dist_allgather_shards: in place, every rank ends with every
 * rank's range. dist_gather_shards: rank 0's full (the array) receives every
 * rank's `part` (count[rank] floats) at its range; full is used on rank 0
 * only. dist_scatter_shards: the inverse, from rank 0's full into each
 * rank's part. Collective; one rank copies. */
void dist_allgather_shards(float *buf, const size_t *lo, const size_t *count);
void dist_gather_shards(float *full, const float *part, const size_t *lo, const size_t *count);
void dist_scatter_shards(float *part, const float *full, const size_t *lo, const size_t *count);

/* ---- scalars ------------------------------------------------------------------------ */

void dist_allreduce_sum_doubles(double *p, int n); /* in place, SUM over ranks */
int dist_any(int flag);                            /* logical OR over ranks: 0 or 1, same on all */
double dist_max_double(double x);                  /* MAX over ranks, same on all */
int dist_local_ranks(void);                        /* ranks on this node (shared memory) */
void dist_allgather_double(double *all, double x); /* all[r] = rank r's x, on every rank */
/* Rank r's n doubles land in recv[r * n .. r * n + n) on rank 0 (recv:
 * world * n, used on rank 0 only; may be NULL elsewhere). Collective. */
void dist_gather_doubles(double *recv, const double *send, int n);

/* ---- bucketed gradient reduction ------------------------------------------------------ */

/* Sums the gradient arena over ranks while backward still runs. The arena is
 * laid out in layer order and backward runs from the last layer to the
 * first, so its END is final first: buckets are cut from the end. Bucket 0
 * is grads[n - b, n), bucket 1 is grads[n - 2b, n - b), ..., the last one is
 * the (possibly shorter) remainder at the start of the arena.
 *
 * Per step: gradsync_begin before backward; gradsync_ready(offset, count)
 * whenever grads[offset, offset + count) is final (ranges of one step must
 * not overlap; any order, any size, may span buckets); gradsync_finish before
 * the optimizer. A bucket starts as soon as it is fully reported AND every
 * bucket before it has started. Each ready call also advances the buckets
 * in flight (MPI_Testall). gradsync_finish starts what is left and waits.
 *
 * The reduction is our own Rabenseifner (reduce-scatter by recursive
 * halving into p' balanced blocks, p' the largest power of two <= p, after
 * folding pairs of ranks when p is not one; then allgather by recursive
 * doubling) on point-to-point messages, not MPI_Iallreduce, so that the
 * sharded optimizer's reduce-scatter does the very additions of the
 * allreduce: the same halving, then one round that moves each block's
 * pieces to the ranks whose shards they fall in. MPI_Reduce_scatter cannot
 * promise that (Open MPI's adds in another order than its allreduce from 3
 * ranks on), and its libnbc non-blocking form reduces everything on rank 0.
 *
 * gradsync_create: every rank ends with the whole SUM (not the mean: the
 * loss is already normalised over the global batch, so the sum of the
 * per-rank gradients is the exact gradient), bit-identical on every rank
 * (dist_check_replicas guards the assumption). gradsync_create_shards:
 * reduce-scatter only; rank r's grads[lo[r], lo[r] + count[r]) holds the
 * sum, with the same bits as gradsync_create's, and the rest of its arena
 * is left undefined (the sharded optimizer; lo and count as
 * dist_allgather_shards', covering [0, n) in rank order).
 *
 * Both are collective (they duplicate MPI_COMM_WORLD, so the bucket
 * messages never mix with other traffic); bucket_floats in [1, INT_MAX], at
 * most MPI_TAG_UB + 1 buckets (a bucket's messages carry its index as tag;
 * MPI promises 32767, Open MPI gives 2^31 - 1); all memory is allocated
 * here (a scratch copy of the arena for received halves,
 * GRADSYNC_SCRATCH_FLOATS), none per step. With world == 1 no MPI is called and grads are
 * left as they are. */
typedef struct GradSync GradSync;
#define GRADSYNC_SCRATCH_FLOATS(n, world) ((world) > 1 ? (n) : 0)

GradSync *gradsync_create(float *grads, size_t n, size_t bucket_floats);
GradSync *gradsync_create_shards(float *grads, size_t n, size_t bucket_floats, const size_t *lo,
                                 const size_t *count);
void gradsync_begin(GradSync *g);
void gradsync_ready(GradSync *g, size_t offset, size_t count);
/* Advances the buckets in flight: rounds whose messages have arrived are
 * added and the next ones posted (MPI_Testall; no-op when none is in flight).
 * Open MPI moves non-blocking messages only inside MPI calls and only the
 * main thread may call MPI, so a long backward (a conv layer) should call
 * this every millisecond or so; gradsync_ready does it too. About 1 us plus
 * the additions (a bucket's block per round). */
void gradsync_progress(GradSync *g);
/* A barrier over MPI_COMM_WORLD that keeps advancing the buckets while it
 * waits (a plain barrier would leave them where they are: their messages
 * move only inside gradsync's calls). Collective. */
void gradsync_barrier(GradSync *g);
/* Returns the seconds spent inside it (starting the rest and waiting). */
double gradsync_finish(GradSync *g);
/* Collective (frees the duplicated communicator). NULL is ignored. */
void gradsync_free(GradSync *g);
size_t gradsync_num_buckets(const GradSync *g);
/* Buckets started since gradsync_begin (counted also when world == 1). */
size_t gradsync_num_started(const GradSync *g);

/* ---- replica checksum ------------------------------------------------------------- */

/* Hashes w (hash64 of the bytes) and compares across ranks. If any rank
 * differs from rank 0, every rank learns it: rank 0 prints "replicas
 * diverged at step S: ranks 2, 3 differ from rank 0 ..." and aborts the job;
 * the others wait for that abort. Returns only if all replicas are equal.
 * Collective; world == 1 returns at once. */
void dist_check_replicas(const float *w, size_t n, uint64_t step);

/* ---- timing ---------------------------------------------------------------------------- */

/* Seconds and bytes spent in this rank's communication since start-up or the
 * last dist_stats_reset (bytes = this rank's payload: what it sends for
 * allgather, the full send buffer for reduce-scatter, the arena per step for
 * gradsync). */
typedef struct DistStats {
    double bcast_s, allgather_s, reduce_scatter_s, scalar_s, gradsync_s;
    uint64_t allgather_bytes, reduce_scatter_bytes, gradsync_bytes;
    uint64_t gradsync_steps;
} DistStats;

void dist_stats_get(DistStats *out);
void dist_stats_reset(void);

/* Tests only: the largest element count one MPI call of dist_bcast_* may
 * carry (default 1 << 28), so chunking can be tested on small arrays. */
void dist_test_set_chunk(size_t max_elems);
/* Tests only: on = this rank acts as a world of one until called with 0. */
void dist_test_solo(int on);

#endif
