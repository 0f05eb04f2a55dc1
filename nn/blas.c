/* blas: see blas.h. */
#include "blas.h"

#include "parallel.h"
#include "util.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define REEXEC_GUARD "SIAMESE_BLAS_REEXEC"

/* Cores OpenBLAS falls back to when it does not know the CPU. */
static int is_fallback(const char *core) {
    static const char *const weak[] = {"prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "katmai"};
    for (size_t i = 0; i < sizeof weak / sizeof weak[0]; i++)
        if (!strcasecmp(core, weak[i])) return 1;
    return 0;
}

void blas_select_core(char **argv) {
    if (getenv("OPENBLAS_CORETYPE") || getenv(REEXEC_GUARD)) return;
    const char *core = openblas_get_corename();
    if (!core || !is_fallback(core)) return;
    const char *want = NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        want = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        want = "Haswell";
    if (!want) return;
    setenv("OPENBLAS_CORETYPE", want, 1);
    setenv(REEXEC_GUARD, "1", 1);
    /* The resolved path, not /proc/self/exe: the process keeps its name
     * ("siamese") for ps, pgrep and schedulers. */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        execv(self, argv);
    }
    /* exec failed: carry on with the slow kernels. */
    unsetenv("OPENBLAS_CORETYPE");
}

void blas_set_single_thread(void) { openblas_set_num_threads(1); }

/* Packing a float costs about what 32 flops of the multiply do: at most
 * 8 % of the multiply goes to packing again, i.e. blocks >= 200 wide. */
#define GEMM_REPACK_DIV 200
#define GEMM_MAX_BLOCKS 64

int blas_sgemm_blocks(int M, int N, int K, int *cols) {
    (void)K;
    /* Cutting C's columns packs A (M x K) again per block; cutting rows, B. */
    *cols = (size_t)M <= (size_t)N;
    int ext = *cols ? N : M;
    int nb = MIN(GEMM_MAX_BLOCKS, 1 + ext / GEMM_REPACK_DIV);
    int w = (ext + nb - 1) / nb;
    w = (w + 15) / 16 * 16;
    return MIN(w, ext);
}

typedef struct Gemm {
    int ta, tb, M, N, K, lda, ldb, ldc, cols, w;
    float alpha, beta;
    const float *A, *B;
    float *C;
} Gemm;

static void gemm_block(void *p, int c, int tid) {
    (void)tid;
    const Gemm *g = p;
    int lo = c * g->w, M = g->M, N = g->N;
    const float *A = g->A, *B = g->B;
    float *C = g->C;
    if (g->cols) { /* columns [lo, lo + N) of op(B) and C */
        N = MIN(g->w, g->N - lo);
        B += g->tb ? (size_t)lo * g->ldb : (size_t)lo;
        C += lo;
    } else { /* rows [lo, lo + M) of op(A) and C */
        M = MIN(g->w, g->M - lo);
        A += g->ta ? (size_t)lo : (size_t)lo * g->lda;
        C += (size_t)lo * g->ldc;
    }
    cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans, M, N,
                g->K, g->alpha, A, g->lda, B, g->ldb, g->beta, C, g->ldc);
}

void blas_sgemm(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    Gemm g = {transa, transb, M, N, K, lda, ldb, ldc, 0, 0, alpha, beta, A, B, C};
    g.w = blas_sgemm_blocks(M, N, K, &g.cols);
    int ext = g.cols ? N : M;
    parallel_run((ext + g.w - 1) / g.w, gemm_block, &g);
}

const char *blas_describe(void) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s, core %s%s", openblas_get_config(), openblas_get_corename(),
             getenv(REEXEC_GUARD) ? " (chosen by siamese: OpenBLAS does not know this CPU)" : "");
    return buf;
}
