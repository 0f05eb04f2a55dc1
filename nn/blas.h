/* blas: which OpenBLAS kernels run. Debian's OpenBLAS 0.3.21 picks its
 * kernels from the CPU model at load time and falls back to the generic
 * SSE3 "Prescott" kernels on CPUs newer than it knows, about 7x slower for
 * this network's GEMMs. blas_select_core re-executes the program once with
 * OPENBLAS_CORETYPE set to the best core the CPU supports, unless the user
 * (or the environment) already set OPENBLAS_CORETYPE. */
#ifndef SIAMESE_BLAS_H
#define SIAMESE_BLAS_H

/* Call first thing in main, before any thread or MPI exists. Returns only
 * if no re-exec was needed or possible. */
void blas_select_core(char **argv);

/* OpenBLAS runs every call in the calling thread: the pool of
 * nn/parallel splits the work itself (never T x T threads). */
void blas_set_single_thread(void);

/* C (M, N) = alpha op(A) op(B) + beta C, row-major, as cblas_sgemm with
 * transa/transb 0 (no transpose) or 1, run on the pool as several
 * single-threaded cblas_sgemm calls on blocks of C's rows or columns. The
 * blocks depend only on (M, N, K), never on the thread count, so the
 * result is the same for any number of threads: the dimension whose other
 * operand is the smaller one is cut (each block packs that operand again),
 * into blocks of a multiple of 16 at least about 200 wide, so the packing
 * adds at most a few percent of the multiply. */
void blas_sgemm(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);
/* The blocks blas_sgemm uses: *cols = 1 if it cuts C's columns, else rows;
 * returns the block width (the last block may be narrower). */
int blas_sgemm_blocks(int M, int N, int K, int *cols);

/* "OpenBLAS 0.3.21 ... core SkylakeX (chosen by siamese)" for logs. */
const char *blas_describe(void);

#endif
