/* optim: the optimizer step over the parameter arena (SGD with momentum or
 * Nesterov, Adam, AdamW, all with PyTorch's exact update rules), learning-rate
 * schedules (constant, step, exponential, cosine, linear warm-up) and
 * gradient clipping by global L2 norm. Parameters, gradients and state share
 * the arena layout; the view table says which floats are updated and with
 * which lr/decay multipliers. Nothing here allocates; no config parsing. */
#ifndef SIAMESE_OPTIM_H
#define SIAMESE_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"

typedef enum { OPTIM_SGD = 0, OPTIM_ADAM = 1, OPTIM_ADAMW = 2 } OptimType;

typedef enum {
    OPTIM_SCHED_CONSTANT = 0, /* lr */
    OPTIM_SCHED_STEP = 1,     /* lr * gamma^floor(epoch / step_size) */
    OPTIM_SCHED_EXP = 2,      /* lr * gamma^epoch (Koch: gamma 0.99) */
    OPTIM_SCHED_COSINE = 3,   /* min_lr + (lr-min_lr)(1+cos(pi*step/total))/2 */
} OptimSchedule;

typedef struct OptimSpec {
    OptimType type;
    double lr;                /* base learning rate */
    double momentum;          /* SGD; 0 = plain SGD, no state (unless momentum_start is not) */
    double momentum_start;    /* SGD: momentum of epoch 0 when momentum_epochs > 0 */
    uint64_t momentum_epochs; /* SGD: epochs over which each view's momentum rises linearly from
                                 momentum_start to its final value (0: the final value at once) */
    int nesterov;             /* SGD with momentum > 0 */
    double weight_decay;      /* times each view's decay_mult */
    double beta1, beta2, eps; /* Adam/AdamW */
    OptimSchedule schedule;
    double gamma;          /* STEP and EXP */
    uint64_t step_size;    /* STEP: epochs between decays, >= 1 */
    double min_lr;         /* COSINE floor */
    uint64_t warmup_steps; /* 0 = none; else factor (step+1)/warmup_steps */
    double clip_norm;      /* optim_clip's max_norm for the trainer; 0 = off */
    int shard;             /* trainer: 1 = each rank updates one shard (optim_shard) */
} OptimSpec;

/* PyTorch's defaults: SGD, lr 0.01, no momentum, no decay; betas 0.9/0.999,
 * eps 1e-8; constant schedule, gamma 0.1, step_size 1, no warm-up. */
void optim_spec_default(OptimSpec *o);

/* Floats of optimizer state for an arena of n floats: 0 (SGD without
 * momentum: momentum and, with a ramp, momentum_start 0), n (momentum
 * buffer) or 2n (Adam: m in [0, n), v in [n, 2n)).
 * The state must be zeroed before the first step (it is also what a
 * checkpoint saves). */
size_t optim_state_floats(const OptimSpec *o, size_t n);

/* Learning rate for global step `step` (0-based) in epoch `epoch` (0-based);
 * total_steps is the run's length (COSINE only; steps past it stay at
 * min_lr). The warm-up factor multiplies any schedule. */
double optim_lr(const OptimSpec *o, uint64_t step, uint64_t epoch, uint64_t total_steps);

/* Scales grads (n) in place so their global L2 norm is at most max_norm
 * (factor exactly max_norm / norm); returns the norm before clipping.
 * max_norm <= 0 only measures. A non-finite norm is returned and nothing is
 * scaled: the caller decides (skip the step or stop). */
double optim_clip(float *grads, size_t n, double max_norm);
/* The same norm (over all n floats, the same sum), scaling only [lo, hi). */
double optim_clip_range(float *grads, size_t n, double max_norm, size_t lo, size_t hi);
/* The pieces of the two above, for a norm summed elsewhere (the trainer's,
 * over ranks): the sum of squares of g[0, n) in double (fixed chunks: the
 * same bits for any thread count), and the clip of grads[lo, hi) to
 * max_norm given the whole norm (nothing when max_norm <= 0 or the norm is
 * not finite). */
double optim_sum_squares(const float *g, size_t n);
void optim_clip_scale(float *grads, double norm, double max_norm, size_t lo, size_t hi);

/* The shard [*lo, *hi) of an arena of n floats that rank `rank` of `world`
 * updates when the optimizer is sharded: whole groups of 16 floats (the
 * last one may be shorter), contiguous in rank order, counts differing by
 * at most one group (empty shards when world > groups). Pure. */
void optim_shard(size_t n, int world, int rank, size_t *lo, size_t *hi);

/* SGD momentum of a view whose final momentum is `final` in epoch `epoch`
 * (0-based): momentum_start + (final - momentum_start) * min(1, epoch /
 * momentum_epochs), so it rises linearly each epoch (Koch et al.), or
 * `final` without a ramp. */
double optim_momentum(const OptimSpec *o, double final, uint64_t epoch);

/* One update of params with grads (neither arena is resized; grads is not
 * modified) at learning rate lr (from optim_lr) in epoch `epoch`. t is the
 * 1-based count of steps taken including this one: t == 1 initialises the
 * momentum buffer to the gradient (PyTorch) and drives Adam's bias
 * correction. Only floats inside a view are touched; each view's lr_mult
 * scales lr, decay_mult scales weight_decay, and a view's own final
 * momentum (has_momentum) replaces o->momentum. state has
 * optim_state_floats(o, n) floats; a view asking for momentum without it
 * is fatal (config_validate refuses such configs). */
void optim_step(const OptimSpec *o, float *params, const float *grads, float *state, size_t n,
                const ParamView *views, int nviews, double lr, uint64_t epoch, uint64_t t);
/* optim_step on the floats [lo, hi) of the arena only (a shard), with the
 * state of that range alone: optim_state_floats(o, hi - lo) floats laid out
 * as the whole arena's (Adam: m of the range, then v). Every float gets the
 * bits optim_step gives it (the update is elementwise). */
void optim_step_range(const OptimSpec *o, float *params, const float *grads, float *state, size_t n,
                      const ParamView *views, int nviews, double lr, uint64_t epoch, uint64_t t, size_t lo,
                      size_t hi);

#endif
