/* util: see util.h. */
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int util_rank = -1;

static void default_fatal(int code) { exit(code); }
void (*util_fatal_hook)(int code) = default_fatal;

int err_set(Err *e, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* One message = one write(2): stderr is unbuffered, and under mpirun each
 * write is forwarded separately, so a line printed in pieces can come out
 * split around the launcher's own abort banner. */
static void emit_line(const char *kind, const char *file, int line, const char *fmt,
                      va_list ap) {
    char buf[4096];
    size_t n = 0;
    int k = util_rank >= 0 ? snprintf(buf, sizeof buf, "siamese: [rank %d] ", util_rank)
                           : snprintf(buf, sizeof buf, "siamese: ");
    if (k > 0) n = (size_t)k;
    if (kind && n < sizeof buf) {
        k = snprintf(buf + n, sizeof buf - n, "%s", kind);
        if (k > 0) n += (size_t)k;
    }
    if (file && n < sizeof buf) {
        k = snprintf(buf + n, sizeof buf - n, "%s:%d: ", file, line);
        if (k > 0) n += (size_t)k;
    }
    if (n < sizeof buf) {
        k = vsnprintf(buf + n, sizeof buf - n, fmt, ap);
        if (k > 0) n += (size_t)k;
    }
    if (n > sizeof buf - 2) n = sizeof buf - 2; /* truncated: keep the newline */
    buf[n++] = '\n';
    fflush(stdout);
    fflush(stderr);
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        p += w;
        n -= (size_t)w;
    }
}

void util_fatal(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    emit_line(NULL, file, line, fmt, ap);
    va_end(ap);
    util_fatal_hook(1);
    abort(); /* the hook must not return */
}

void util_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    emit_line("warning: ", NULL, 0, fmt, ap);
    va_end(ap);
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) FATAL("out of memory allocating %zu bytes", n);
    return p;
}

void *xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) FATAL("out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) FATAL("out of memory reallocating %zu bytes", n);
    return q;
}

float *xaligned_floats(size_t count) {
    size_t bytes = (count * sizeof(float) + 63) & ~(size_t)63;
    if (bytes == 0) bytes = 64;
    float *p = aligned_alloc(64, bytes);
    if (!p) FATAL("out of memory allocating %zu floats", count);
    memset(p, 0, bytes);
    return p;
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    return p;
}

char *xstrndup(const char *s, size_t n) {
    size_t len = strnlen(s, n);
    char *p = xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = 0;
    return p;
}

/* The text forms every parse_ accepts: an optional '-' (parse_long,
 * parse_double), decimal digits, and for parse_double an optional fraction
 * and exponent ("1", "-2.5", ".5", "1e-3", "3E+2"). No leading or trailing
 * space, no '+', no hexadecimal ("0x10"), no "inf"/"nan": what strtol and
 * strtod would also take is refused so that a value means what it reads. */
static int decimal_form(const char *s, int sign_ok, int real) {
    const char *p = s;
    if (*p == '-' && sign_ok) p++;
    size_t whole = strspn(p, "0123456789");
    p += whole;
    if (!real) return whole > 0 && !*p;
    size_t frac = 0;
    if (*p == '.') {
        frac = strspn(p + 1, "0123456789");
        p += 1 + frac;
    }
    if (whole + frac == 0) return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+') p++;
        size_t ex = strspn(p, "0123456789");
        if (ex == 0) return 0;
        p += ex;
    }
    return !*p;
}

int parse_long(const char *s, long min, long max, long *out) {
    if (!s || !decimal_form(s, 1, 0)) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int parse_u64(const char *s, uint64_t *out) {
    if (!s || !decimal_form(s, 0, 0)) return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

int parse_double(const char *s, double min, double max, double *out) {
    if (!s || !decimal_form(s, 1, 1)) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < min || v > max) return -1;
    *out = v;
    return 0;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rng_seed(Rng *r, uint64_t seed, uint64_t purpose, uint64_t id) {
    uint64_t x = seed;
    uint64_t a = splitmix64(&x);
    x ^= purpose * 0xd1b54a32d192ed03ULL;
    uint64_t b = splitmix64(&x);
    x ^= id * 0x8cb92ba72f3d8dd7ULL + a;
    uint64_t c = splitmix64(&x) ^ b;
    x = c;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1;
}

void rng_seed_item(Rng *r, uint64_t seed, uint64_t purpose, uint64_t step, uint64_t item) {
    /* (step, item) -> one id through a bijective mix of step (splitmix64's
     * finaliser), so distinct pairs within 2^64 steps do not collide in
     * practice and neither coordinate is simply added to the other. */
    uint64_t z = step + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    rng_seed(r, seed, purpose, (z ^ (z >> 31)) ^ item);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_u64(Rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t rng_below(Rng *r, uint64_t n) {
    ASSERT(n > 0);
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do v = rng_u64(r);
    while (v >= limit);
    return v % n;
}

float rng_uniform(Rng *r) { return (float)(rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

double rng_uniform_d(Rng *r) { return (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

double rng_normal(Rng *r) {
    double u1 = 1.0 - rng_uniform_d(r); /* (0, 1] */
    double u2 = rng_uniform_d(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void rng_shuffle_u32(Rng *r, uint32_t *a, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(r, i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

void rng_pick_u32(Rng *r, uint32_t *a, size_t n, size_t k) {
    for (size_t t = 0; t < k; t++) {
        size_t u = t + (size_t)rng_below(r, n - t);
        uint32_t x = a[t];
        a[t] = a[u];
        a[u] = x;
    }
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double thread_cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

uint64_t hash64(const void *p, size_t n, uint64_t h) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* ---- sums of floats --------------------------------------------------------- */

double sum_floats(const float *p, size_t n) {
    if (n < SUM_LANES) {
        double s = 0;
        for (size_t i = 0; i < n; i++) s += p[i];
        return s;
    }
    double l[SUM_LANES] = {0};
    size_t i = 0;
    for (; i + SUM_LANES <= n; i += SUM_LANES)
        for (int j = 0; j < SUM_LANES; j++) l[j] += p[i + j];
    for (int j = 0; i < n; i++, j++) l[j] += p[i];
    return sum_lanes_total(l);
}
