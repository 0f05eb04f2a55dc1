/* test_parallel: the thread pool of nn/parallel. Every chunk runs exactly
 * once for 1..4 threads (oversubscribed here: that is the point), no two
 * chunks run at once with the same tid, nested runs and runs from a second
 * thread complete, many tiny runs in a row (the generation handshake), a
 * slow thread's range of chunks taken over by the others, and
 * the thread-count rules (environment before config before SLURM before
 * the affinity mask). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../nn/parallel.h"
#include "test.h"

#define MAXC 5000

typedef struct Count {
    atomic_int hits[MAXC];
    atomic_int busy[PARALLEL_MAX_THREADS];
    atomic_int bad_tid, overlap;
    int threads;
} Count;

static void count_chunk(void *p, int c, int tid) {
    Count *k = p;
    if (tid < 0 || tid >= k->threads)
        atomic_fetch_add(&k->bad_tid, 1);
    else if (atomic_fetch_add(&k->busy[tid], 1) != 0)
        atomic_fetch_add(&k->overlap, 1);
    atomic_fetch_add(&k->hits[c], 1);
    volatile double x = 0; /* a little work so that chunks overlap in time */
    for (int i = 0; i < 200 * (c % 7); i++) x += i;
    if (tid >= 0 && tid < k->threads) atomic_fetch_sub(&k->busy[tid], 1);
}

static int run_counts(int n, Count *k) {
    memset(k, 0, sizeof *k);
    k->threads = parallel_threads();
    parallel_run(n, count_chunk, k);
    int ok = k->bad_tid == 0 && k->overlap == 0;
    for (int c = 0; c < n; c++) ok &= k->hits[c] == 1;
    return ok;
}

typedef struct Nest {
    atomic_int inner[64][16];
    atomic_int wrong_tid;
} Nest;

typedef struct Inner {
    Nest *n;
    int outer, tid;
} Inner;

static void inner_chunk(void *p, int c, int tid) {
    Inner *in = p;
    if (tid != in->tid) atomic_fetch_add(&in->n->wrong_tid, 1);
    atomic_fetch_add(&in->n->inner[in->outer][c], 1);
}

static void outer_chunk(void *p, int c, int tid) {
    Inner in = {p, c, tid};
    parallel_run(16, inner_chunk, &in);
}

static void sum_range(void *p, size_t lo, size_t hi) {
    int *v = p;
    for (size_t i = lo; i < hi; i++) v[i] += (int)i + 1;
}

static void *second_caller(void *p) {
    static Count k;
    *(int *)p = run_counts(997, &k);
    return NULL;
}

static void tiny_chunk(void *p, int c, int tid) {
    (void)tid;
    atomic_fetch_add((atomic_long *)p, c + 1);
}

/* Chunks of thread 0 sleep: the other threads take over the rest of its
 * range (each thread starts on its own contiguous range of chunks). */
typedef struct Steal {
    atomic_int hits[64], tid[64];
} Steal;

static void slow_chunk(void *p, int c, int tid) {
    Steal *s = p;
    atomic_fetch_add(&s->hits[c], 1);
    atomic_store(&s->tid[c], tid);
    if (tid == 0) nanosleep(&(struct timespec){0, 3000000}, NULL);
}

static void env_rules(void) {
    char why[64];
    Err e;
    unsetenv("SIAMESE_THREADS");
    unsetenv("SLURM_CPUS_PER_TASK");
    int cpus = parallel_affinity_cpus();
    int t = parallel_choose_threads(0, 1, why, sizeof why, &e);
    CHECK(t == cpus, "affinity default %d, want %d (%s)", t, cpus, why);
    t = parallel_choose_threads(0, 4 * cpus, why, sizeof why, &e);
    CHECK(t == 1, "more ranks than CPUs: %d threads, want 1 (%s)", t, why);
    t = parallel_choose_threads(0, 2, why, sizeof why, &e);
    CHECK(t == (cpus / 2 > 0 ? cpus / 2 : 1), "2 ranks share the mask: %d threads (%s)", t, why);
    setenv("SLURM_CPUS_PER_TASK", "3", 1);
    t = parallel_choose_threads(0, 1, why, sizeof why, &e);
    CHECK(t == 3 && !strcmp(why, "SLURM_CPUS_PER_TASK"), "SLURM_CPUS_PER_TASK: %d (%s)", t, why);
    t = parallel_choose_threads(5, 1, why, sizeof why, &e);
    CHECK(t == 5 && !strcmp(why, "[run] threads"), "config over SLURM: %d (%s)", t, why);
    setenv("SIAMESE_THREADS", "7", 1);
    t = parallel_choose_threads(5, 1, why, sizeof why, &e);
    CHECK(t == 7 && !strcmp(why, "SIAMESE_THREADS"), "SIAMESE_THREADS overrides: %d (%s)", t, why);
    setenv("SIAMESE_THREADS", "0", 1);
    CHECK(parallel_choose_threads(5, 1, why, sizeof why, &e) == -1 && strstr(e.msg, "SIAMESE_THREADS='0'"),
          "SIAMESE_THREADS=0 refused: %s", e.msg);
    setenv("SIAMESE_THREADS", "2x", 1);
    CHECK(parallel_choose_threads(5, 1, why, sizeof why, &e) == -1, "SIAMESE_THREADS=2x refused");
    unsetenv("SIAMESE_THREADS");
    setenv("SLURM_CPUS_PER_TASK", "", 1);
    CHECK(parallel_choose_threads(0, 1, why, sizeof why, &e) == -1 && strstr(e.msg, "SLURM_CPUS_PER_TASK"),
          "empty SLURM_CPUS_PER_TASK refused: %s", e.msg);
    unsetenv("SLURM_CPUS_PER_TASK");
}

int main(void) {
    static Count k;
    CHECK(parallel_threads() == 1, "one thread before parallel_init");
    int sizes[] = {0, 1, 2, 3, 7, 64, 1000, MAXC};
    for (int T = 1; T <= 4; T++) {
        parallel_init(T);
        CHECK(parallel_threads() == T, "parallel_threads %d", T);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            CHECK(run_counts(sizes[s], &k),
                  "T=%d n=%d: every chunk once, tids in range, no overlap (bad %d, "
                  "overlap %d)",
                  T, sizes[s], (int)k.bad_tid, (int)k.overlap);

        static Nest nest;
        memset(&nest, 0, sizeof nest);
        parallel_run(64, outer_chunk, &nest);
        int ok = nest.wrong_tid == 0;
        for (int o = 0; o < 64; o++)
            for (int c = 0; c < 16; c++) ok &= nest.inner[o][c] == 1;
        CHECK(ok, "T=%d nested runs: every inner chunk once, in the outer chunk's thread", T);

        int v[1000] = {0};
        parallel_for(1000, 33, sum_range, v);
        ok = 1;
        for (int i = 0; i < 1000; i++) ok &= v[i] == i + 1;
        CHECK(ok, "T=%d parallel_for covers [0, n) once", T);

        /* a second thread runs while this one does */
        pthread_t th;
        int other = 0;
        pthread_create(&th, NULL, second_caller, &other);
        int mine = 1;
        for (int r = 0; r < 20; r++) mine &= run_counts(499, &k);
        pthread_join(th, NULL);
        CHECK(mine && other, "T=%d runs from two threads at once: both complete (%d %d)", T, mine, other);

        /* thread 0's range is chunks [0, 8): it sleeps 3 ms a chunk, the
         * others finish theirs at once and take most of its range */
        if (T > 1) {
            static Steal st;
            memset(&st, 0, sizeof st);
            parallel_run(8 * T, slow_chunk, &st);
            int once = 1, stolen = 0;
            for (int c = 0; c < 8 * T; c++) once &= st.hits[c] == 1;
            for (int c = 0; c < 8; c++) stolen += st.tid[c] != 0;
            CHECK(once && stolen > 0,
                  "T=%d a slow thread's chunks: each once (%d), %d of its 8 taken by others", T, once,
                  stolen);
        }

        /* many tiny runs: the generation handshake under churn */
        atomic_long sum = 0;
        for (int r = 0; r < 20000; r++) parallel_run(1 + r % 5, tiny_chunk, &sum);
        long want = 0;
        for (int r = 0; r < 20000; r++) want += (long)(1 + r % 5) * (2 + r % 5) / 2;
        CHECK(sum == want, "T=%d 20000 tiny runs: sum %ld, want %ld", T, (long)sum, want);
    }
    size_t lo, hi, prev = 0;
    int ok = 1;
    for (int c = 0; c < 7; c++) {
        parallel_split(100, 7, c, &lo, &hi);
        ok &= lo == prev && hi - lo >= 14 && hi - lo <= 15;
        prev = hi;
    }
    CHECK(ok && prev == 100, "parallel_split: 100 in 7 contiguous parts of 14 or 15");
    parallel_init(1);
    CHECK(parallel_threads() == 1, "back to one thread");
    env_rules();
    parallel_shutdown();
    return test_finish();
}
