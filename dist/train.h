/* train: the distributed training step and loop. One Trainer per rank;
 * with one rank (no launcher) it is the plain single-process trainer, the
 * same code with every collective a no-op. Ties nn (encoder), mining
 * (losses and miners), io (sampler, prefetch, checkpoints) and dist/comm. */
#ifndef SIAMESE_TRAIN_H
#define SIAMESE_TRAIN_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "../io/checkpoint.h"
#include "../io/config.h"
#include "../io/dataset.h"
#include "../io/prefetch.h"
#include "../io/sampler.h"
#include "../mining/pairs.h"
#include "../mining/simloss.h"
#include "../mining/triplet.h"
#include "../nn/model.h"
#include "../nn/optim.h"
#include "ckpt_check.h"
#include "comm.h"

/* Exit status of a run that stopped on a signal after writing a checkpoint:
 * "checkpointed, resume me" (EX_TEMPFAIL of sysexits.h). */
#define TRAIN_EXIT_RESUME 75

/* Set by the signal handlers of cmd_train (SIGTERM, SIGUSR1, SIGINT). */
extern volatile sig_atomic_t train_stop_requested;

/* Called before every step (after = 0) and after it (after = 1) with the
 * rank and the steps done; NULL in the siamese users run. The test build
 * (tests/fixture_hooks.c) sets it to kill, signal, stop or hang a rank at a
 * chosen step. */
extern void (*train_step_hook)(int rank, uint64_t done, int after);

/* A growing text (metrics.csv, eval.csv so far). */
typedef struct TextBuf {
    char *s;
    size_t len, cap;
} TextBuf;
void textbuf_append(TextBuf *b, const char *text, size_t n);

/* Per-step wall time on this rank, seconds. */
typedef struct StepTimes {
    double data, forward, imbalance, mining, backward, allreduce, optimizer, total;
} StepTimes;

typedef struct ClassesExchange ClassesExchange; /* train_classes.c */

typedef struct Trainer {
    Config cfg;
    char *cfg_text;          /* canonical text (rank 0's, broadcast) */
    int rank, world, debug;
    int threads;             /* of this rank's pool (nn/parallel) */
    char threads_why[64];    /* where the number came from */
    double *prof;            /* (4 nlayers) per-layer times (nn/model.h), summed over the timed steps */
    Dataset *ds;
    Sampler sampler;
    Prefetch *pf;
    Norm norm; /* input normalisation, per channel */
    Model model;
    OptimSpec opt;
    /* The optimizer state: nstate floats in all (what a checkpoint holds);
     * this rank holds the state of the arena's floats [opt_lo, opt_hi):
     * all of them, or its shard with [optim] shard (shard_lo, shard_n: every
     * rank's range, nn/optim.h optim_shard). */
    float *opt_state;
    size_t nstate, opt_lo, opt_hi;
    size_t *shard_lo, *shard_n;
    double *norm_part; /* (world) the gradient norm's per-block sums (trainer_step) */
    GradSync *gs;
    int D;                   /* embedding dimension */
    int global_items, per_item;
    int *rows, *offsets;     /* (world) PK: images per rank / first row */
    float *pool_E, *pool_dE; /* (global_items, D) PK global pool */
    int32_t *pool_labels;
    uint8_t *pool_x;         /* (global_items, D) 16-bit rows of [mining] exchange, or NULL */
    ClassesExchange *cls;    /* [mining] pool = classes (below P - 1 classes), or NULL */
    float *dE;               /* (local images, D) */
    float *ws;               /* miner workspace */
    IndexPair *pairs;        /* offline pairs of this rank */
    IndexTriplet *triplets;  /* offline triplets of this rank */
    uint8_t *has_target;     /* (local images) mask loss: the image's pair has a common object */
    uint64_t step, total_steps, steps_per_epoch, opt_t;
    /* The metrics so far (CSV text, deterministic columns only): part of
     * every checkpoint so a resumed run's metrics file equals the
     * uninterrupted one's. Rank 0 only. */
    TextBuf metrics;
    FILE *timing;            /* timing.csv (rank 0) */
    FILE *metrics_file;      /* metrics.csv, appended every step (rank 0) */
    StepTimes sum;           /* this rank's totals over the timed steps of this start */
    uint64_t timed_steps;
    size_t buckets_in_backward; /* gradient buckets started while backward ran (last step) */
    double last_loss, last_data_loss, last_active, last_hardness, last_gnorm, last_lr, last_count;
    double t_start;
    /* Validation during training (train_val.c): rank 0's dataset, eval.csv
     * so far (in every checkpoint, like metrics), the best value of the
     * chosen metric (NaN before the first pass) and its step. */
    Dataset *val;
    TextBuf evalcsv;
    FILE *eval_file;
    double best;
    uint64_t best_step;
    double val_seconds;
    int val_passes;
} Trainer;

typedef struct TrainOptions {
    const char *config_path;
    char **sets;
    int nsets;
    const char *resume;      /* NULL, "auto" or a path */
    int debug;
    const char *command; /* the command line, for command.log (may be NULL) */
} TrainOptions;

/* The whole run: config, data, model, resume, loop, final checkpoint and
 * evaluation. Returns the process exit status (0, TRAIN_EXIT_RESUME, or
 * 1/2 on errors reported on stderr). Collective. */
int train_main(const TrainOptions *o);

/* Pieces used by train_main and the tests. */
int trainer_setup(Trainer *t, const char *cfg_text, int debug, Err *e);
void trainer_free(Trainer *t);
/* How this run turns records into input: its normalisation and [augment]. */
BatchDecode trainer_decode(const Trainer *t);
/* One global step: forward, exchange, mining, backward, allreduce, update. */
void trainer_step(Trainer *t, const Batch *b, StepTimes *st);
/* The gradient part of a step: m->grads receives the exact gradient of the
 * global mean loss plus the L2 terms (identical on every rank); returns that
 * loss. Fills st except optimizer and total. No update, no metrics row. */
double trainer_grads(Trainer *t, const Batch *b, StepTimes *st);
/* The global mean loss of a batch at the current weights (no update):
 * forward, exchange and loss only. count > 0 divides the loss sum by that
 * normaliser instead of this batch's own (the --debug gradient check holds
 * it fixed: the number of active terms is a step function of the weights,
 * and the gradient, like autograd's, treats it as a constant). */
double trainer_loss_only(Trainer *t, const Batch *b, double count);

/* The configured PK loss of anchors [a0, a1) against a pool E (N rows):
 * the contract of mining/triplet.h, the head's gradient into the arena. */
LossStats trainer_pool_loss(Trainer *t, float *dE, float *ws, const float *E, const int32_t *labels, int N,
                            int a0, int a1);

/* [mining] pool = classes (train_classes.c). classes_active: the config
 * mines hard classes (pool = classes with fewer than P - 1 classes; from
 * P - 1 on every pool is the whole batch and the exact path runs).
 * classes_exchange_floats: the floats it allocates per rank (memory check).
 * classes_exchange_loss: the exchange and the loss of this rank's anchors;
 * *dEout (*rows, D) receives the unnormalised gradient of the rows it
 * received. classes_exchange_return: after that gradient is normalised,
 * sends it to the rows' owners; dE (local images, D) = the sum, in rank
 * order, of what every rank sent for this rank's rows. Collective. */
int classes_active(const Config *c);
ClassesExchange *classes_exchange_create(const Trainer *t, int max_items);
double classes_exchange_floats(const Config *c, int D, int max_items, int world);
void classes_exchange_free(ClassesExchange *x);
LossStats classes_exchange_loss(Trainer *t, const LocalBatch *lb, const float *E, float **dEout, int *rows);
void classes_exchange_return(Trainer *t, float *dE, const LocalBatch *lb);

/* Validation (train_val.c). trainer_val_open checks [eval] data against
 * the model (rank 0 opens it); trainer_val_header starts eval.csv;
 * trainer_validate scores the current weights, appends the row and writes
 * best.smpi when the chosen metric improves. Collective. */
int trainer_val_open(Trainer *t, Err *e);
void trainer_val_header(Trainer *t);
void trainer_validate(Trainer *t);

/* Checkpoints (train_ckpt.c). */

int trainer_save(Trainer *t, const char *path, Err *e); /* rank 0 writes; collective */
/* The whole optimizer state (nstate floats) into full on rank 0 (full is
 * not used elsewhere and may be NULL there), from every rank's part when
 * sharded. Collective. */
void trainer_gather_optim(Trainer *t, float *full);
int trainer_resume(Trainer *t, const char *what, Err *e); /* "auto" or a path; collective */
/* Refuses keys that may not change on resume; lists those that may. */
int train_resume_compatible(const Config *saved, const Config *now, char *changed, size_t n, Err *e);

#endif
