/* test: the project's tiny test harness. CHECK records one assertion, prints
 * the failing ones with file:line, and test_finish prints the closing line
 * "N passed, N failed" and returns the exit status. MPI tests sum the counts
 * over ranks first (tests/test_mpi.h); header-only, no MPI here. */
#ifndef SIAMESE_TEST_H
#define SIAMESE_TEST_H

#include <math.h>
#include <stdio.h>

static long test_passed_, test_failed_;
static int test_quiet_rank_ = 0; /* set non-zero on MPI ranks > 0 */

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) {                                                             \
            test_passed_++;                                                     \
        } else {                                                                \
            test_failed_++;                                                     \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

/* |a - b| <= tol * max(1, |a|, |b|): relative for large values, absolute
 * near zero. */
static inline int test_close(double a, double b, double tol) {
    double s = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    if (s < 1.0) s = 1.0;
    return fabs(a - b) <= tol * s && !isnan(a) && !isnan(b);
}

#define CHECK_CLOSE(a, b, tol, what)                                            \
    CHECK(test_close((a), (b), (tol)), "%s: %.9g vs %.9g (tol %g)", (what),    \
          (double)(a), (double)(b), (double)(tol))

/* Prints the closing line and returns the exit status for main. */
static inline int test_finish(void) {
    if (!test_quiet_rank_) {
        printf("%ld passed, %ld failed\n", test_passed_, test_failed_);
        fflush(stdout);
    }
    return test_failed_ ? 1 : 0;
}

#endif
