/* layer_spec: what a config says about a model: one LayerCfg per layer
 * section, the model's own keys (ModelSpec), the typed layer enum, and the
 * descriptor of a config key (ConfigKey) with which the layer registry
 * (nn/layer.h) declares each layer's keys. Plain data shared by io/config
 * (which fills it) and nn/model (which builds from it), so nn does not
 * depend on io. */
#ifndef SIAMESE_LAYER_SPEC_H
#define SIAMESE_LAYER_SPEC_H

#include <stddef.h>

#include "layer_list.h"

/* One value per registry row, from nn/layer_list.h. The order is internal:
 * configs and checkpoints name layers by their section name. */
typedef enum {
#define X(U, l) LAYER_##U,
    LAYER_LIST(X)
#undef X
        LAYER_NTYPES
} LayerType;

#define LAYER_NAME_MAX 32   /* bytes of a layer name, with the NUL */
#define LAYER_INPUT_MAX 160 /* bytes of an `input` value, with the NUL */
#define LAYER_MAX_INPUTS 4  /* inputs of one layer */

/* A layer section as parsed. Fields a layer type does not use stay 0. */
typedef struct LayerCfg {
    LayerType type;
    char name[LAYER_NAME_MAX];       /* "conv1"; default: type + index */
    char input[LAYER_INPUT_MAX];     /* "conv3@a, conv3@b"; empty: the previous layer */
    int line;                        /* line of the section header, for errors */
    long filters, size, stride, pad; /* conv2d, deconv2d; maxpool uses size/stride */
    long out;                        /* linear */
    long factor;                     /* upsample */
    int mode;                        /* upsample: UpsampleMode */
    long displacement, dilation;     /* correlation */
    int normalize;                   /* correlation: 0 none, 1 cosine */
    long max;                        /* correlation: 1 = the max channel */
    double momentum, eps;            /* batchnorm */
    long sync;                       /* batchnorm: 1 = statistics over every rank */
    double p;                        /* dropout */
    double slope;                    /* leaky_relu */
    double lr_mult, decay_mult, l2;
    double sgd_momentum; /* SGD: this layer's final momentum (Koch's mu_j); < 0: [optim] momentum */
} LayerCfg;

#define MODEL_MAX_LAYERS 64

/* The model part of a config: the layer sections in order, the [model]
 * keys, the node the loss reads and the Koch head of [head]. */
typedef struct ModelSpec {
    LayerCfg layers[MODEL_MAX_LAYERS];
    int nlayers;
    char embedding[LAYER_NAME_MAX];   /* [model] embedding; empty: the last layer */
    char loss_input[LAYER_INPUT_MAX]; /* [loss] input; empty: the embedding */
    int koch_head;                    /* [head] type = koch */
    double head_lr_mult, head_l2, head_momentum;
    int no_fusion; /* not a config key: tests run every layer alone */
} ModelSpec;

/* he: N(0, 2/fan_in), bias 0; koch: conv N(0, 1e-2), dense N(0, 0.2), biases
 * N(0.5, 1e-2) (Koch et al. 2015); torch: PyTorch's default U(+-1/sqrt(fan_in))
 * for weights and biases. */
enum { INIT_HE, INIT_KOCH, INIT_TORCH };

/* ---- config keys ------------------------------------------------------- */

/* K_INT: a long (or uint64_t) field; K_INT32: an int field; K_ENUM: an int
 * or enum field holding the index of the value in `values`. */
typedef enum { K_INT, K_DBL, K_STR, K_ENUM, K_INT32 } KeyType;

/* One config key: io/config parses, checks, prints and documents it from
 * this row. off is the field's offset in the struct the section fills
 * (LayerCfg for layer keys); a K_STR key's max is the field's size in bytes
 * (0: CFG_PATH of io/config.h). */
typedef struct ConfigKey {
    const char *section; /* singleton section, or a layer type name */
    const char *key;
    KeyType type;
    size_t off;
    double min, max;
    const char *def;    /* default value as text; NULL = required */
    const char *values; /* K_ENUM: "a|b|c" in enum order */
    const char *doc;
} ConfigKey;

#endif
