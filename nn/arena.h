/* arena: the named views over a model's parameter arena. Parameters live in
 * one contiguous 64-byte-aligned float block, gradients in a second block
 * with the same offsets, optimizer state in blocks of the same layout. A view
 * names one tensor of it; checkpoints, exports, weight decay and per-layer
 * learning rates all go through the view table. Buffers (batch norm's
 * running statistics) are views of a separate block that is saved but
 * never trained. */
#ifndef SIAMESE_ARENA_H
#define SIAMESE_ARENA_H

#include <stddef.h>

#define ARENA_MAX_DIMS 4

/* How model_init fills a view (the layer that declares it says so). */
typedef enum {
    VIEW_INIT_WEIGHT_CONV,  /* a convolution's weight: he / koch conv / torch by fan_in */
    VIEW_INIT_WEIGHT_DENSE, /* a dense weight: he / koch dense / torch by fan_in */
    VIEW_INIT_BIAS,         /* he 0, koch N(0.5, 1e-2), torch U(+-1/sqrt(fan_in)) */
    VIEW_INIT_ZERO,         /* 0 whatever the scheme (batch norm's beta, running mean) */
    VIEW_INIT_ONE,          /* 1 whatever the scheme (batch norm's gamma, running var) */
} ViewInit;

typedef struct ParamView {
    char name[64]; /* "conv1.weight", "conv1.bias", "head.weight" */
    size_t offset; /* in floats, from the start of the arena */
    size_t count;  /* floats */
    int ndim;
    int shape[ARENA_MAX_DIMS]; /* PyTorch layout: conv (F, C, K, K), linear (O, I) */
    float lr_mult;             /* per-layer learning-rate multiplier (1 by default) */
    float decay_mult;          /* multiplies optim.weight_decay for this tensor */
    float l2;                  /* per-layer L2 regularisation lambda (Koch), in the loss */
    int has_momentum;          /* SGD: momentum is this tensor's final momentum, else the optimizer's */
    float momentum;
    ViewInit init;             /* how model_init fills it */
    float fan_in;              /* inputs per output of the layer's weight (init) */
} ParamView;

#endif
