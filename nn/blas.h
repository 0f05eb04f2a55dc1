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

/* "OpenBLAS 0.3.21 ... core SkylakeX (chosen by siamese)" for logs. */
const char *blas_describe(void);

#endif
