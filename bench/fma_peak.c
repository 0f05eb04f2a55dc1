/* fma_peak: the single-thread FP32 FMA throughput of this core, measured:
 * 16 independent chains of vector FMAs (AVX-512: 16 lanes, else AVX2/FMA:
 * 8 lanes, else scalar) in a register-resident loop, so the figure is the
 * core's peak and not memory's. Prints the best of R repetitions of about
 * 0.1 s each, by wall clock and by process CPU time (the CPU-time figure is
 * robust against other processes sharing the core):
 *   fma_peak GFLOPS_WALL GFLOPS_CPU ISA
 * Usage: fma_peak [repetitions] (default 10). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__AVX512F__) || defined(__FMA__)
#include <immintrin.h>
#endif

#include "../nn/util.h"

#define FMA_CHAINS 16

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs n iterations of FMA_CHAINS FMAs; returns FLOPs and a checksum. */
static double fma_loop(long n, float *sink, const char **isa) {
#if defined(__AVX512F__)
    __m512 acc[FMA_CHAINS];
    __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < FMA_CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long k = 0; k < n; k++) {
        for (int i = 0; i < FMA_CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
        __asm__ volatile("" : "+v"(a)); /* keep the loop from being folded */
    }
    __m512 s = acc[0];
    for (int i = 1; i < FMA_CHAINS; i++) s = _mm512_add_ps(s, acc[i]);
    *sink += _mm512_reduce_add_ps(s);
    *isa = "avx512";
    return 2.0 * 16 * FMA_CHAINS * (double)n;
#elif defined(__FMA__)
    __m256 acc[FMA_CHAINS];
    __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < FMA_CHAINS; i++) acc[i] = _mm256_set1_ps((float)i);
    for (long k = 0; k < n; k++) {
        for (int i = 0; i < FMA_CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
        __asm__ volatile("" : "+x"(a));
    }
    float t[8];
    __m256 s = acc[0];
    for (int i = 1; i < FMA_CHAINS; i++) s = _mm256_add_ps(s, acc[i]);
    _mm256_storeu_ps(t, s);
    for (int i = 0; i < 8; i++) *sink += t[i];
    *isa = "avx2-fma";
    return 2.0 * 8 * FMA_CHAINS * (double)n;
#else
    float acc[FMA_CHAINS];
    volatile float av = 0.999999f;
    float a = av, b = 1e-7f;
    for (int i = 0; i < FMA_CHAINS; i++) acc[i] = (float)i;
    for (long k = 0; k < n; k++)
        for (int i = 0; i < FMA_CHAINS; i++) acc[i] = acc[i] * a + b;
    for (int i = 0; i < FMA_CHAINS; i++) *sink += acc[i];
    *isa = "scalar";
    return 2.0 * FMA_CHAINS * (double)n;
#endif
}

int main(int argc, char **argv) {
    long reps = 10;
    if (argc > 1 && parse_long(argv[1], 1, 1000, &reps)) FATAL("usage: fma_peak [repetitions 1..1000]");
    float sink = 0;
    const char *isa = "";
    long n = 1 << 16;
    /* calibrate to about 0.1 s per repetition */
    for (;;) {
        double t0 = now_seconds();
        fma_loop(n, &sink, &isa);
        double dt = now_seconds() - t0;
        if (dt > 0.02 || n > (1L << 40)) {
            n = (long)((double)n * 0.1 / (dt > 1e-6 ? dt : 1e-6)) + 1;
            break;
        }
        n *= 4;
    }
    double best_w = 0, best_c = 0;
    for (long r = 0; r < reps; r++) {
        double w0 = now_seconds(), c0 = cpu_seconds();
        double fl = fma_loop(n, &sink, &isa);
        double w = now_seconds() - w0, c = cpu_seconds() - c0;
        if (fl / w > best_w) best_w = fl / w;
        if (c > 0 && fl / c > best_c) best_c = fl / c;
    }
    printf("fma_peak %.2f %.2f %s\n", best_w / 1e9, best_c / 1e9, isa);
    if (sink == 12345.0f) printf("(checksum %g)\n", (double)sink);
    return 0;
}
