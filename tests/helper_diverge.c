/* helper_diverge: a tiny MPI program that fails on purpose, for
 * tests/e2e_dist_abort.sh (which builds it with mpicc from dist/comm.c and
 * nn/util.c; not a test by itself, so it is not named mpi_*).
 *   diverge STEP R...  ranks R perturb one weight; dist_check_replicas at STEP
 *   fatal              rank 1 calls FATAL, the others wait in a barrier
 *   thread             a second thread of rank 1 calls FATAL (as the prefetch
 *                      thread might), the main threads wait in a barrier
 *   exit               rank 1 calls exit(3) without dist_finalize
 *   crash              rank 1 dies of SIGSEGV
 *   solo               prints the world size, runs one gradsync and a replica
 *                      check, finalizes, exits 0
 * Reaching a line it must not reach prints "NOT REACHED". */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../dist/comm.h"
#include "../nn/util.h"

static void *fatal_thread(void *arg) {
    (void)arg;
    FATAL("prefetch: record 7 is corrupt (failed on purpose in a thread)");
}

int main(int argc, char **argv) {
    dist_init(&argc, &argv);
    int rank = dist_rank(), world = dist_world();
    if (argc < 2) FATAL("usage: helper_diverge diverge|fatal|thread|exit|crash|solo ...");
    const char *mode = argv[1];
    enum { N = 4096 };
    float *w = xaligned_floats(N);
    for (int i = 0; i < N; i++) w[i] = (float)i * 0.001f;

    if (strcmp(mode, "diverge") == 0) {
        uint64_t step;
        if (argc < 3 || parse_u64(argv[2], &step) != 0) FATAL("diverge needs a step");
        dist_check_replicas(w, N, step - 100); /* equal: passes */
        for (int a = 3; a < argc; a++) {
            long r;
            if (parse_long(argv[a], 0, 1 << 20, &r) != 0) FATAL("bad rank '%s'", argv[a]);
            if (r == rank) w[17] = nextafterf(w[17], 1.0f);
        }
        dist_check_replicas(w, N, step);
        printf("NOT REACHED (rank %d)\n", rank);
    } else if (strcmp(mode, "fatal") == 0) {
        if (rank == 1) FATAL("record 42: failed on purpose on rank one");
        dist_barrier();
        printf("NOT REACHED (rank %d)\n", rank);
    } else if (strcmp(mode, "thread") == 0) {
        pthread_t t;
        if (rank == 1 && pthread_create(&t, NULL, fatal_thread, NULL) != 0) FATAL("pthread_create failed");
        dist_barrier();
        printf("NOT REACHED (rank %d)\n", rank);
    } else if (strcmp(mode, "exit") == 0) {
        if (rank == 1) exit(3);
        dist_barrier();
        printf("NOT REACHED (rank %d)\n", rank);
    } else if (strcmp(mode, "crash") == 0) {
        if (rank == 1) raise(SIGSEGV);
        dist_barrier();
        printf("NOT REACHED (rank %d)\n", rank);
    } else if (strcmp(mode, "solo") == 0) {
        GradSync *g = gradsync_create(w, N, 1000);
        gradsync_begin(g);
        gradsync_ready(g, 0, N);
        gradsync_finish(g);
        gradsync_free(g);
        dist_check_replicas(w, N, 1);
        printf("world=%d rank=%d ok\n", world, rank);
    } else {
        FATAL("unknown mode '%s'", mode);
    }
    free(w);
    dist_finalize();
    return 0;
}
