/* watchdog: ends a training job whose ranks stop making progress (a rank
 * stopped by SIGSTOP, stuck in I/O, or in a collective the others never
 * reach) with exit status 76 instead of a hang that holds the allocation.
 * The main thread publishes where it is (a phase and a step: two relaxed
 * atomic stores); a thread per rank compares that with the limit (a step:
 * max(timeout, 10 x the median step so far); start-up, checkpoint writes,
 * the evaluation and the end: the timeout itself). When the limit passes it
 * asks every rank where it is over UDP (a side channel: the main thread
 * may be blocked inside MPI, which only it may call), prints one line
 * naming the late ranks and their phases, and aborts the job with 76.
 * A stopped rank cannot answer: it is named as such, and the launcher
 * kills it with the job. With one rank no socket is opened. */
#ifndef SIAMESE_WATCHDOG_H
#define SIAMESE_WATCHDOG_H

#include <stdint.h>

#include "../nn/util.h"

/* Exit status of a job a rank of which stopped making progress. */
#define WATCHDOG_EXIT 76

/* In the order a step goes through them; a phase's position (step, phase)
 * tells which ranks are behind. */
typedef enum {
    WD_STARTUP,    /* from watchdog_start to the first step */
    WD_DATA,       /* waiting for the step's batch (reading, decoding) */
    WD_FORWARD,    /* the encoder's forward */
    WD_EXCHANGE,   /* waiting for the others, embedding exchange, mining */
    WD_BACKWARD,   /* backward with the gradient buckets */
    WD_ALLREDUCE,  /* waiting for the others, the rest of the allreduce */
    WD_OPTIMIZER,  /* update, replica checks, the stop vote */
    WD_CHECKPOINT, /* writing (rank 0) or waiting for a checkpoint */
    WD_EVAL,       /* the evaluation at the end (rank 0) */
    WD_END,        /* final save, waiting for the others at the end */
    WD_NPHASES
} WatchPhase;

/* Collective (after dist_init): starts the thread. timeout_s > 0 is the
 * limit of every phase but a step's (which gets at least that); 0 starts
 * nothing (watchdog_phase and watchdog_step are then no-ops). -1 with e if
 * the side channel cannot be opened (every rank returns the same). */
int watchdog_start(double timeout_s, Err *e);
/* Main thread: entering phase p of the current step (or a non-step phase). */
void watchdog_phase(WatchPhase p);
/* Main thread: step `step` begins (phase WD_DATA); the time since the last
 * watchdog_step call counts as one step for the median. */
void watchdog_step(uint64_t step);
/* Main thread: a rest between phases that ends the current step's timing
 * (the step the median sees ends here). */
void watchdog_step_done(void);
/* Stops and joins the thread (not collective). NULL-safe when not started. */
void watchdog_stop(void);
/* The limit of the current step now, in seconds (tests). */
double watchdog_step_limit(void);
const char *watchdog_phase_name(WatchPhase p);

#endif
