/* ckpt_check: what a training checkpoint (dist/train_ckpt.c writes them)
 * must hold to be read, checked before anything of a size it claims is
 * allocated: the bounds of its sections (given to ckpt_read), its state
 * values, its parameters, and its config against its topology. Used by
 * train --resume, eval, embed, export and inspect, and by the fuzz harness
 * fuzz_ckpt. No MPI. */
#ifndef SIAMESE_CKPT_CHECK_H
#define SIAMESE_CKPT_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "../io/checkpoint.h"
#include "../io/config.h"
#include "../io/norm.h"
#include "../nn/model.h"

/* The bounds every reader of a training checkpoint gives ckpt_read: params
 * and optim by the topology section before them (exactly the floats of its
 * tensors; optim at most two per parameter), buffers exactly the floats of
 * its buffer lines, metrics and eval by the state's step,
 * state to 4 KiB, config, topology and any other section to 1 MiB. */
extern const CkptBounds train_ckpt_bounds;
/* The state section, parsed and range-checked: every key present, integers
 * within what a run can reach, mean in [0, 1] and std in [1e-6, 10] (one
 * number, or one per input channel comma-separated, as many of each), and
 * step, epoch, step_in_epoch, opt_t, total_steps, steps_per_epoch agreeing.
 * norm.channels is how many numbers the state holds (norm_fit adapts them).
 * With validation during training, best=, best_step= and best_metric= come
 * together: a finite value, a step <= step, a metric name. */
typedef struct TrainState {
    uint64_t step, epoch, step_in_epoch, opt_t, world, seed, total_steps, steps_per_epoch;
    Norm norm;
    int has_best;
    double best;
    uint64_t best_step;
    char best_metric[32];
} TrainState;
int train_state_parse(const char *text, size_t n, TrainState *s, Err *e);
/* 0 if the nparams floats at p are finite, else -1 naming how many are not
 * and the tensor (of m's views) of the first. */
int train_check_params(const float *p, const Model *m, Err *e);

/* A training checkpoint read for evaluation: its config, topology and
 * state, and its parameters (pointing into the Ckpt; nparams floats, all
 * finite). */
typedef struct TrainCkpt {
    Config cfg;
    ModelTopology topo;
    TrainState state;
    const float *params;
    size_t nparams;
    const float *buffers; /* running statistics (nbuffers floats; NULL if none) */
    size_t nbuffers;
} TrainCkpt;
/* Parses and checks ck's config, topology and state; infers the config's
 * model without allocating it (model_plan) and requires its topology to be
 * the topology section's and the params section to be its size, finite.
 * 0, or -1 with e naming path. */
int train_ckpt_check(const Ckpt *ck, const char *path, TrainCkpt *t, Err *e);

#endif
