/* layers: what the registry rows share (nn/layer_table.c gathers the
 * rows; each family of layers defines its rows in a layers_*.c file next
 * to its glue code). Internal to nn/. */
#ifndef SIAMESE_LAYERS_H
#define SIAMESE_LAYERS_H

#include <stddef.h>

#include "layer.h"

#define L(f) offsetof(LayerCfg, f)
#define NKEYS(k) (int)(sizeof k / sizeof k[0])

/* Keys of layers with weights. */
#define LR_KEYS(type)                                                                                        \
    {type, "lr_mult", K_DBL, L(lr_mult), 0, 1000, "1", NULL, "learning-rate multiplier"},                    \
        {type, "decay_mult", K_DBL, L(decay_mult), 0, 1000, "1", NULL, "weight-decay multiplier"}, {         \
        type, "l2", K_DBL, L(l2), 0, 1000, "0", NULL,                                                        \
            "L2 regularisation lambda of the weights (Koch), in the loss"                                    \
    }                                                                                                        \
    , {                                                                                                      \
        type, "momentum", K_DBL, L(sgd_momentum), -1, 1, "-1", NULL,                                         \
            "SGD: this layer's final momentum (Koch's per-layer mu); -1 = [optim] momentum"                  \
    }

#define X(U, l) extern const LayerDef layer_##l;
LAYER_LIST(X)
#undef X

/* Declares a weight (PyTorch layout wshape, ndim 2 or 4) and a bias of
 * nbias, initialised by fan_in; sets L->w_off/nw/b_off/nb. */
void layers_weight_bias(Model *m, ModelLayer *L, int ndim, const int *wshape, int nbias, double fan_in);
/* build of a layer whose output has its input's shape. */
int layers_same_shape(Model *m, ModelLayer *L, Err *e);

#endif
