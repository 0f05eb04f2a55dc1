/* util: the leaf every module builds on. Fatal errors with a hook (dist/
 * installs MPI_Abort), an error buffer for recoverable failures, allocation
 * that never returns NULL, checked number parsing, a seeded counter-based
 * random generator, and a monotonic clock. No MPI, no LMDB, no BLAS here. */
#ifndef SIAMESE_UTIL_H
#define SIAMESE_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* ---- errors ------------------------------------------------------------ */

/* Recoverable failure in library code: functions return 0 on success, -1 on
 * failure with a one-line message in the Err (no trailing newline). */
typedef struct Err {
    char msg[1024];
} Err;

/* Sets e->msg (if e is not NULL) and returns -1, so `return err_set(...)`. */
int err_set(Err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Rank printed in messages ("[rank 3] "), -1 when not running under MPI with
 * more than one rank. Set by dist_init. */
extern int util_rank;

/* Called by util_fatal after printing; dist/ sets it to MPI_Abort. The default
 * exits with status 1. Must not return. */
extern void (*util_fatal_hook)(int code);

/* Prints "siamese: [rank R] file:line: message" to stderr and ends the job
 * through util_fatal_hook. file NULL leaves the location out: for bad input
 * met where the job can only end (a record read in training). */
void util_fatal(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

#define FATAL(...) util_fatal(__FILE__, __LINE__, __VA_ARGS__)

/* Always-on invariant check (not for user input: those get an Err). */
#define ASSERT(cond)                                                           \
    do {                                                                       \
        if (!(cond)) util_fatal(__FILE__, __LINE__, "assertion failed: %s", #cond); \
    } while (0)

/* Warning on stderr with the rank prefix; never stops anything. */
void util_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- memory ------------------------------------------------------------ */

/* Never return NULL: on failure they call FATAL naming the size. Free with
 * free(). xaligned_alloc rounds the size up to the 64-byte alignment. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
float *xaligned_floats(size_t count); /* 64-byte aligned, zeroed */
char *xstrdup(const char *s);
/* The first n bytes of s (fewer if it ends sooner), terminated; aborts like xmalloc. */
char *xstrndup(const char *s, size_t n);

/* ---- parsing ----------------------------------------------------------- */

/* Whole-string parses of plain decimal text with range checks; 0 on
 * success, -1 (value untouched) on junk, overflow or out of range. Refused,
 * though strtol/strtod take them: leading or trailing space, '+', hex
 * ("0x10"), "inf", "nan"; parse_u64 also refuses any sign. */
int parse_long(const char *s, long min, long max, long *out);
int parse_u64(const char *s, uint64_t *out);
int parse_double(const char *s, double min, double max, double *out);

/* ---- random numbers ----------------------------------------------------- */

/* Every random draw in the project comes from an Rng seeded explicitly from
 * (seed, purpose, id): no rand(), no hidden state. The generator is
 * xoshiro256** seeded through splitmix64. */
typedef struct Rng {
    uint64_t s[4];
} Rng;

/* Purposes: keep these stable, they are part of reproducibility. */
enum {
    RNG_INIT = 1,     /* weight initialisation, id = parameter view index */
    RNG_SAMPLER = 2,  /* batch composition, id = global step or epoch */
    RNG_SPLIT = 3,    /* train/test split at import */
    RNG_PAIRS = 4,    /* siamese pairs materialisation */
    RNG_EVAL = 5,     /* evaluation pairs and N-way trials */
    RNG_TEST = 6,     /* tests */
    RNG_DROPOUT = 7,  /* reserved */
    RNG_SYNTH = 8,    /* synthetic data: synth mot, id = stream within a sequence;
                         synth coseg, id = split << 40 | pair */
    RNG_AUGMENT = 9,  /* training-image distortions (rng_seed_item) */
    RNG_REPORT = 10,  /* report: map sample, queries, t-SNE and PCA starts; id = use */
    RNG_REPLACE = 11, /* the sample in place of a bad record, id = hash of (step, position) */
    RNG_TTA = 12,     /* test-time augmentation views (rng_seed_item: view, sample id) */
};

void rng_seed(Rng *r, uint64_t seed, uint64_t purpose, uint64_t id);
/* The generator of one image of one step: keyed by (seed, purpose, global
 * step, the image's position in the global batch of that step) and nothing
 * else, so p ranks draw what one rank draws for the same image, any thread
 * may draw it, and a resumed run draws what the uninterrupted one did.
 * Augmentation uses it. */
void rng_seed_item(Rng *r, uint64_t seed, uint64_t purpose, uint64_t step, uint64_t item);
uint64_t rng_u64(Rng *r);
/* Uniform in [0, n) without modulo bias; n > 0. */
uint64_t rng_below(Rng *r, uint64_t n);
/* Uniform in [0, 1) with 24 (float) or 53 (double) random bits. */
float rng_uniform(Rng *r);
double rng_uniform_d(Rng *r);
/* Standard normal (Box-Muller, no cached second value: stateless per call). */
double rng_normal(Rng *r);
/* In-place Fisher-Yates shuffle of n uint32 values. */
void rng_shuffle_u32(Rng *r, uint32_t *a, size_t n);
/* Moves k <= n distinct uniformly drawn members of a[0..n) to a[0..k) (the
 * first k steps of a forward Fisher-Yates shuffle). */
void rng_pick_u32(Rng *r, uint32_t *a, size_t n, size_t k);

/* ---- sums of floats --------------------------------------------------------- */

/* Sums in double over SUM_LANES running sums (sum j takes the values
 * i = j mod SUM_LANES), added pairwise at the end: independent chains the
 * compiler vectorises, where one running sum waits for every add. The order
 * depends on n alone (the same bits for any thread or rank count). */
#define SUM_LANES 16
/* The pairwise sum of v[0..SUM_LANES) (v is clobbered). Inline: the lanes
 * then stay in registers in the caller's loop. */
static inline double sum_lanes_total(double *v) {
    for (int w = SUM_LANES / 2; w >= 1; w /= 2)
        for (int j = 0; j < w; j++) v[j] += v[j + w];
    return v[0];
}
/* The sum of p[0..n): lanes from SUM_LANES values on, one running sum below. */
double sum_floats(const float *p, size_t n);

/* ---- time and hashing --------------------------------------------------- */

double now_seconds(void);        /* CLOCK_MONOTONIC */
double thread_cpu_seconds(void); /* CLOCK_THREAD_CPUTIME_ID: the calling thread's CPU time */
/* 64-bit FNV-1a over bytes, for replica checksums and cheap fingerprints. */
uint64_t hash64(const void *p, size_t n, uint64_t h);
#define HASH64_INIT 0xcbf29ce484222325ULL

/* The software version, printed by `siamese version` and recorded in runs. */
#define SIAMESE_VERSION "siamese-mpi 0.1"

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
