/* parallel: see parallel.h. One run at a time owns the pool (run_lock).
 * The owner cuts the chunks into one contiguous range per thread (a lane)
 * and publishes the job in one of two descriptors (by generation parity),
 * each lane's 64-bit word (generation << 32 | next chunk), and then the
 * generation in P.word. Every thread claims chunks of its own lane first,
 * then of the others in turn, with a compare-and-swap on the lane's word,
 * which fails once the generation moved on, so a worker that wakes late
 * never runs a chunk of a finished job. A thread thus keeps the same part
 * of the batch from layer to layer (its activations stay in its own
 * cache) while a slow thread's chunks still go to the others. The owner
 * returns when the job's finished count reaches nchunks. Idle workers spin
 * for a short while (the next layer usually starts within microseconds),
 * then sleep on a condition variable. */
#include "parallel.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"

#define SPIN_SECONDS 2e-4 /* a worker's busy wait for the next job before it sleeps */

typedef struct Job {
    _Atomic(ParallelFn) fn;
    _Atomic(void *) ctx;
    atomic_int n;
    atomic_int finished;
} Job;

typedef struct Slot { /* per-thread counters and lane, one cache line each */
    double busy, cpu;
    _Atomic uint64_t lane;   /* generation << 32 | the next chunk of this thread's range */
    _Atomic uint32_t end[2]; /* the range's end, per job descriptor */
    char pad[32];
} Slot;

_Static_assert(sizeof(Slot) == 64, "a slot is one cache line");

static Slot slot0; /* the counters of a pool of one */

static struct {
    int threads;
    pthread_t owner; /* the thread that called parallel_init: profiled */
    pthread_t *workers;
    Slot *slot;
    pthread_mutex_t run_lock; /* held by the owner of the current run */
    pthread_mutex_t mu;       /* sleeping workers */
    pthread_cond_t cv;
    atomic_int sleepers;
    atomic_int shutdown;
    _Atomic uint64_t word; /* generation << 32 (the lanes are in slot) */
    Job job[2];
    uint32_t gen;      /* the owner's: the last generation published */
    long runs;         /* runs handed to the workers */
    long wakes;        /* of them, runs that had to wake sleeping workers */
    uint32_t gen_init; /* gen when the workers started */
    atomic_int profile;
    double region, region_cpu;
} P = {.threads = 1,
       .slot = &slot0,
       .run_lock = PTHREAD_MUTEX_INITIALIZER,
       .mu = PTHREAD_MUTEX_INITIALIZER,
       .cv = PTHREAD_COND_INITIALIZER};

static _Thread_local int my_tid;   /* 0: the owner or a thread outside the pool */
static _Thread_local int my_depth; /* > 0 while running a chunk */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Claims and runs the chunks of generation g left in lane l. */
static void work_lane(uint32_t g, Job *j, int l, int tid) {
    ParallelFn fn = atomic_load_explicit(&j->fn, memory_order_relaxed);
    void *ctx = atomic_load_explicit(&j->ctx, memory_order_relaxed);
    Slot *s = &P.slot[l];
    uint32_t end = atomic_load_explicit(&s->end[g & 1], memory_order_relaxed);
    uint64_t w = atomic_load_explicit(&s->lane, memory_order_acquire);
    while ((uint32_t)(w >> 32) == g && (uint32_t)w < end) {
        if (!atomic_compare_exchange_weak_explicit(&s->lane, &w, w + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue; /* w reloaded */
        int prof = atomic_load_explicit(&P.profile, memory_order_relaxed);
        double t0 = prof ? now_seconds() : 0, c0 = prof >= 2 ? thread_cpu_seconds() : 0;
        my_depth++;
        fn(ctx, (int)(uint32_t)w, tid);
        my_depth--;
        if (prof) P.slot[tid].busy += now_seconds() - t0;
        if (prof >= 2) P.slot[tid].cpu += thread_cpu_seconds() - c0; /* before the chunk counts as done */
        atomic_fetch_add_explicit(&j->finished, 1, memory_order_release);
        w = atomic_load_explicit(&s->lane, memory_order_acquire);
    }
}

/* Runs chunks of generation g until none is left: the thread's own lane,
 * then the others' from the next thread on. */
static void work(uint32_t g, Job *j, int tid) {
    for (int k = 0; k < P.threads; k++) work_lane(g, j, (tid + k) % P.threads, tid);
}

static void *worker_main(void *arg) {
    int tid = (int)(intptr_t)arg;
    my_tid = tid;
    uint32_t seen = P.gen_init;
    for (;;) {
        double t0 = now_seconds();
        uint32_t g = seen;
        for (int k = 0;; k++) {
            g = (uint32_t)(atomic_load_explicit(&P.word, memory_order_acquire) >> 32);
            if (g != seen || atomic_load(&P.shutdown)) break;
            cpu_relax();
            if ((k & 255) == 255 && now_seconds() - t0 > SPIN_SECONDS) {
                pthread_mutex_lock(&P.mu);
                atomic_fetch_add(&P.sleepers, 1);
                while ((uint32_t)(atomic_load(&P.word) >> 32) == seen && !atomic_load(&P.shutdown))
                    pthread_cond_wait(&P.cv, &P.mu);
                atomic_fetch_sub(&P.sleepers, 1);
                pthread_mutex_unlock(&P.mu);
                t0 = now_seconds();
            }
        }
        if (atomic_load(&P.shutdown)) return NULL;
        seen = g;
        work(g, &P.job[g & 1], tid);
    }
}

void parallel_shutdown(void) {
    if (P.threads > 1) {
        pthread_mutex_lock(&P.mu);
        atomic_store(&P.shutdown, 1);
        pthread_cond_broadcast(&P.cv);
        pthread_mutex_unlock(&P.mu);
        for (int i = 1; i < P.threads; i++) pthread_join(P.workers[i], NULL);
        atomic_store(&P.shutdown, 0);
    }
    free(P.workers);
    if (P.slot != &slot0) free(P.slot);
    P.workers = NULL;
    P.slot = &slot0;
    P.threads = 1;
}

void parallel_init(int threads) {
    ASSERT(threads >= 1 && threads <= PARALLEL_MAX_THREADS);
    ASSERT(my_depth == 0);
    blas_set_single_thread();
    P.owner = pthread_self();
    if (threads == P.threads) return;
    parallel_shutdown();
    if (threads == 1) return;
    P.slot = (Slot *)(void *)xaligned_floats((size_t)threads * sizeof *P.slot / sizeof(float));
    P.workers = xcalloc((size_t)threads, sizeof *P.workers);
    P.threads = threads;
    P.gen_init = P.gen;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* handlers run on the caller's threads */
    for (int i = 1; i < threads; i++) {
        int rc = pthread_create(&P.workers[i], NULL, worker_main, (void *)(intptr_t)i);
        if (rc)
            FATAL("cannot start worker thread %d of %d: %s; lower [run] threads or SIAMESE_THREADS", i,
                  threads, strerror(rc));
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int parallel_threads(void) { return P.threads; }

static void run_inline(int nchunks, ParallelFn fn, void *ctx) {
    my_depth++;
    for (int c = 0; c < nchunks; c++) fn(ctx, c, my_tid);
    my_depth--;
}

/* Profiled: runs of the thread that set the pool up, not nested ones (they
 * are inside a timed chunk already). */
static int profiled(void) {
    int level = atomic_load_explicit(&P.profile, memory_order_relaxed);
    return level && my_depth == 0 && pthread_equal(pthread_self(), P.owner) ? level : 0;
}

void parallel_run(int nchunks, ParallelFn fn, void *ctx) {
    if (nchunks <= 0) return;
    int prof = profiled();
    double t0 = prof ? now_seconds() : 0;
    if (my_depth > 0 || P.threads == 1 || nchunks == 1) {
        run_inline(nchunks, fn, ctx);
        if (prof) {
            double dt = now_seconds() - t0;
            P.slot[0].busy += dt;
            P.region += dt;
        }
        return;
    }
    double c0 = prof >= 2 ? thread_cpu_seconds() : 0; /* inline runs: work outside regions, as above */
    pthread_mutex_lock(&P.run_lock);                  /* another thread's run finishes first */
    uint32_t g = P.gen + 1;
    Job *j = &P.job[g & 1];
    atomic_store_explicit(&j->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&j->ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&j->n, nchunks, memory_order_relaxed);
    atomic_store_explicit(&j->finished, 0, memory_order_relaxed);
    for (int t = 0; t < P.threads; t++) { /* lane t: chunks [t n / T, (t + 1) n / T) */
        Slot *s = &P.slot[t];
        uint32_t lo = (uint32_t)((int64_t)t * nchunks / P.threads);
        atomic_store_explicit(&s->end[g & 1], (uint32_t)((int64_t)(t + 1) * nchunks / P.threads),
                              memory_order_relaxed);
        atomic_store_explicit(&s->lane, (uint64_t)g << 32 | lo, memory_order_release);
    }
    atomic_store(&P.word, (uint64_t)g << 32); /* seq_cst: ordered before the sleepers check */
    P.gen = g;
    P.runs++;
    if (atomic_load(&P.sleepers) > 0) {
        P.wakes++;
        pthread_mutex_lock(&P.mu);
        pthread_cond_broadcast(&P.cv);
        pthread_mutex_unlock(&P.mu);
    }
    work(g, j, 0);
    for (int k = 0; atomic_load_explicit(&j->finished, memory_order_acquire) < nchunks; k++) {
        cpu_relax();
        if ((k & 1023) == 1023) sched_yield(); /* a worker may be waiting for a core */
    }
    if (prof) {
        P.region += now_seconds() - t0;
        if (prof >= 2) P.region_cpu += thread_cpu_seconds() - c0;
    }
    pthread_mutex_unlock(&P.run_lock);
}

typedef struct RangeCtx {
    ParallelRangeFn fn;
    void *ctx;
    size_t n, grain;
} RangeCtx;

static void range_chunk(void *p, int c, int tid) {
    (void)tid;
    const RangeCtx *r = p;
    size_t lo = (size_t)c * r->grain;
    r->fn(r->ctx, lo, MIN(r->n, lo + r->grain));
}

void parallel_for(size_t n, size_t grain, ParallelRangeFn fn, void *ctx) {
    ASSERT(grain > 0);
    size_t nc = (n + grain - 1) / grain;
    ASSERT(nc <= (size_t)INT32_MAX);
    if (nc <= 1) {
        if (n) fn(ctx, 0, n);
        return;
    }
    RangeCtx r = {fn, ctx, n, grain};
    parallel_run((int)nc, range_chunk, &r);
}

typedef struct SumCtx {
    ParallelSumFn fn;
    void *ctx;
    size_t n, grain;
    double part[PARALLEL_SUM_CHUNKS];
} SumCtx;

static void sum_chunk(void *p, int c, int tid) {
    (void)tid;
    SumCtx *s = p;
    size_t lo = (size_t)c * s->grain;
    s->part[c] = s->fn(s->ctx, lo, MIN(s->n, lo + s->grain));
}

double parallel_sum(size_t n, ParallelSumFn fn, void *ctx) {
    if (n == 0) return 0.0;
    size_t grain = MAX((size_t)PARALLEL_SUM_GRAIN, (n + PARALLEL_SUM_CHUNKS - 1) / PARALLEL_SUM_CHUNKS);
    SumCtx s;
    s.fn = fn, s.ctx = ctx, s.n = n, s.grain = grain;
    int nc = (int)((n + grain - 1) / grain);
    parallel_run(nc, sum_chunk, &s);
    double t = 0.0;
    for (int c = 0; c < nc; c++) t += s.part[c];
    return t;
}

typedef struct Fill {
    float *p;
    float f;
} Fill;

static void scale_chunk(void *ctx, size_t lo, size_t hi) {
    const Fill *q = ctx;
    for (size_t i = lo; i < hi; i++) q->p[i] *= q->f;
}

static void zero_chunk(void *ctx, size_t lo, size_t hi) {
    const Fill *q = ctx;
    memset(q->p + lo, 0, (hi - lo) * sizeof(float));
}

void parallel_scale(float *p, size_t n, float f) {
    Fill q = {p, f};
    parallel_for(n, PARALLEL_GRAIN, scale_chunk, &q);
}

void parallel_zero(float *p, size_t n) {
    Fill q = {p, 0.0f};
    parallel_for(n, PARALLEL_GRAIN, zero_chunk, &q);
}

void parallel_split(size_t n, int parts, int c, size_t *lo, size_t *hi) {
    size_t q = n / (size_t)parts, r = n % (size_t)parts, k = (size_t)c;
    *lo = k * q + MIN(k, r);
    *hi = *lo + q + (k < r);
}

int parallel_affinity_cpus(void) {
    cpu_set_t s;
    if (sched_getaffinity(0, sizeof s, &s)) return 1;
    int n = CPU_COUNT(&s);
    return n > 0 ? n : 1;
}

static int env_threads(const char *name, long *out, Err *e) {
    const char *v = getenv(name);
    if (!v) return 0;
    if (parse_long(v, 1, PARALLEL_MAX_THREADS, out))
        return err_set(e, "%s='%s': expected a whole number of threads from 1 to %d", name, v,
                       PARALLEL_MAX_THREADS);
    return 1;
}

int parallel_choose_threads(long configured, int sharing, char *why, size_t why_len, Err *e) {
    long v;
    int r = env_threads("SIAMESE_THREADS", &v, e);
    if (r < 0) return -1;
    if (r) {
        snprintf(why, why_len, "SIAMESE_THREADS");
        return (int)v;
    }
    if (configured > 0) {
        snprintf(why, why_len, "[run] threads");
        return (int)MIN(configured, PARALLEL_MAX_THREADS);
    }
    r = env_threads("SLURM_CPUS_PER_TASK", &v, e);
    if (r < 0) return -1;
    if (r) {
        snprintf(why, why_len, "SLURM_CPUS_PER_TASK");
        return (int)v;
    }
    int cpus = parallel_affinity_cpus(), share = MAX(1, sharing);
    snprintf(why, why_len, "%d CPU%s / %d rank%s", cpus, cpus > 1 ? "s" : "", share, share > 1 ? "s" : "");
    return MAX(1, MIN(cpus / share, PARALLEL_MAX_THREADS));
}

long parallel_runs(void) { return P.runs; }

long parallel_wakes(void) { return P.wakes; }

void parallel_profile(int on) { atomic_store(&P.profile, on); }

double parallel_busy_seconds(void) {
    double s = 0;
    for (int i = 0; i < P.threads; i++) s += P.slot[i].busy;
    return s;
}

double parallel_region_seconds(void) { return P.region; }

double parallel_work_offset(void) { return parallel_busy_seconds() - P.region; }

double parallel_work_cpu_offset(void) {
    double s = 0;
    for (int i = 0; i < P.threads; i++) s += P.slot[i].cpu;
    return s - P.region_cpu;
}
