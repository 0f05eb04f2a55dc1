/* test_mpi: the harness of tests/test.h for MPI tests. test_mpi_finish sums
 * the counts of every rank; rank 0 prints the closing line. */
#ifndef SIAMESE_TEST_MPI_H
#define SIAMESE_TEST_MPI_H

#include <mpi.h>

#include "test.h"

static inline int test_mpi_finish(void) {
    long local[2] = {test_passed_, test_failed_}, sum[2];
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Allreduce(local, sum, 2, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) {
        printf("%ld passed, %ld failed\n", sum[0], sum[1]);
        fflush(stdout);
    }
    return sum[1] ? 1 : 0;
}

#endif
