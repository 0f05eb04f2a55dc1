/* parallel: the rank's fixed pool of worker threads (pthreads), created once
 * by parallel_init and reused by every kernel; parallel_run never allocates.
 * Work is cut into chunks whose boundaries NEVER depend on the thread count
 * (each kernel's chunking is documented with the kernel), every chunk is
 * computed by the same code whichever thread runs it, and chunk results are
 * combined in chunk order, so results are bit-identical for any number of
 * threads. Each thread starts on its own contiguous share of the chunks
 * (the same images from layer to layer, in its own cache) and then takes
 * the others' (a slow core takes fewer).
 * OpenBLAS is kept single-threaded: BLAS calls run inside chunks. No MPI. */
#ifndef SIAMESE_PARALLEL_H
#define SIAMESE_PARALLEL_H

#include <stddef.h>

#include "util.h"

#define PARALLEL_MAX_THREADS 1024

/* One chunk of a parallel_run: chunk in [0, nchunks); tid in [0,
 * parallel_threads()) names the thread running it (for per-thread scratch:
 * no two chunks run at the same time with the same tid). */
typedef void (*ParallelFn)(void *ctx, int chunk, int tid);

/* Gives the pool `threads` threads in all (the calling thread counts as
 * thread 0; threads - 1 workers, which block every signal). Also sets
 * OpenBLAS to one thread. Call from the thread that will run the step, with
 * no parallel_run active; workspaces sized with parallel_threads() must be
 * rebuilt after a change. threads in [1, PARALLEL_MAX_THREADS]. */
void parallel_init(int threads);
/* Joins the workers (the pool has 1 thread afterwards). */
void parallel_shutdown(void);
/* Threads of the pool (1 before parallel_init). */
int parallel_threads(void);

/* Calls fn(ctx, c, tid) once for every c in [0, nchunks) and returns when
 * all are done; the calling thread runs chunks too (as tid 0). Any thread
 * may call it (e.g. a data-loading thread): a run started while another
 * thread's run is active waits for it to end. A call from inside a chunk
 * runs its chunks in order in that thread, with that chunk's tid. */
void parallel_run(int nchunks, ParallelFn fn, void *ctx);

/* The common case: fn(ctx, lo, hi) over [0, n) in chunks of `grain`
 * elements: chunk c is [c grain, min(n, (c + 1) grain)). */
typedef void (*ParallelRangeFn)(void *ctx, size_t lo, size_t hi);
void parallel_for(size_t n, size_t grain, ParallelRangeFn fn, void *ctx);

/* A sum over [0, n) in double: fn(ctx, lo, hi) returns the sum of a chunk;
 * the chunks (PARALLEL_SUM_GRAIN elements, more when n needs over
 * PARALLEL_SUM_CHUNKS of them: they depend on n only) run on the pool and
 * their sums are added in chunk order. */
typedef double (*ParallelSumFn)(void *ctx, size_t lo, size_t hi);
double parallel_sum(size_t n, ParallelSumFn fn, void *ctx);
#define PARALLEL_SUM_GRAIN 65536
#define PARALLEL_SUM_CHUNKS 1024

/* p[i] *= f, and p[i] = 0, for i < n, in chunks of PARALLEL_GRAIN. */
void parallel_scale(float *p, size_t n, float f);
void parallel_zero(float *p, size_t n);

/* Elements per chunk of the elementwise loops (activations, optimizer,
 * scaling): 16384 floats. */
#define PARALLEL_GRAIN 16384

/* Chunk c of n items cut into `parts` contiguous ranges differing by at
 * most one item: [*lo, *hi). */
void parallel_split(size_t n, int parts, int c, size_t *lo, size_t *hi);

/* The thread count to use: SIAMESE_THREADS if set; else `configured` if > 0
 * ([run] threads); else SLURM_CPUS_PER_TASK if set; else the CPUs in the
 * process's affinity mask divided by `sharing` (the ranks of this job on
 * this node whose masks overlap it, the caller's count), at least 1. why
 * receives where the number came from ("SIAMESE_THREADS", "[run] threads",
 * "SLURM_CPUS_PER_TASK", "2 CPUs / 1 rank"). -1 with e on a malformed
 * environment variable. */
int parallel_choose_threads(long configured, int sharing, char *why, size_t why_len, Err *e);
/* CPUs in the calling thread's affinity mask (at least 1). */
int parallel_affinity_cpus(void);

/* Profiling (benchmarks, the trainer's per-layer breakdown): while on (1),
 * the pool adds up the seconds every thread spends running chunks
 * (parallel_busy_seconds) and the wall seconds the calling thread spends
 * inside parallel_run (parallel_region_seconds), so that work outside
 * regions = wall - region and thread use = (busy + outside) / (T wall).
 * On = 2 adds the CPU clocks of parallel_work_cpu_offset: two system
 * calls per chunk (about 1.6 us each in this virtual machine), for
 * benchmarks, not for the trainer. */
void parallel_profile(int on);
/* Runs handed to the workers so far (not the ones run inline). */
long parallel_runs(void);
/* Of those, the runs that found workers asleep (idle for over 0.2 ms) and
 * had to wake them (a wake-up costs tens of microseconds). */
long parallel_wakes(void);
double parallel_busy_seconds(void);
double parallel_region_seconds(void);
/* busy - region: the threads' work over an interval [t0, t1] is
 * (t1 - t0) + offset(t1) - offset(t0) (the calling thread counted as
 * working outside regions). */
double parallel_work_offset(void);
/* The same in CPU seconds, with parallel_profile(2) (each thread's CPU
 * clock over its chunks: time another program took from a thread is not
 * counted, waiting at the end of a run is not work): the threads' work CPU
 * seconds over an interval of the calling thread are its
 * thread_cpu_seconds() change + the change of this offset. */
double parallel_work_cpu_offset(void);

#endif
