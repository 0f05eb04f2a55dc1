/* layer: the layer registry. One LayerDef row per LayerType says everything
 * the rest of the program needs about a layer: its section name and config
 * keys (io/config parses and documents them from here), how many inputs it
 * takes, its shape inference with its parameter and buffer views, and its
 * forward and backward over raw pointers. The types are listed once in
 * nn/layer_list.h, which makes both the enum and the table (layer_table.c);
 * the rows are in nn/layers_*.c next to their glue. model.c walks the graph
 * through these rows only; nothing else switches on the layer type. Adding
 * a layer: its kernel file(s), a line in layer_list.h, its row, its test. */
#ifndef SIAMESE_LAYER_H
#define SIAMESE_LAYER_H

#include "model.h"

/* Row flags. */
enum {
    /* The output may overwrite the (single) input: the backward reads only
     * the output and what `state` keeps, never the input. */
    LAYER_INPLACE = 1u << 0,
    /* The backward reads the layer's own output (so nothing may overwrite
     * it in place). */
    LAYER_READS_OUTPUT = 1u << 1,
    /* The output is the input's floats unchanged (flatten): no copy, no
     * backward. */
    LAYER_VIEW = 1u << 2,
    /* The backward ADDS into its input gradients (the model zeroes them
     * first) instead of writing them. */
    LAYER_ACCUMULATES = 1u << 3,
    /* Forward differs between training and inference (batch norm, dropout). */
    LAYER_TRAIN_MODE = 1u << 4,
    /* With one input it pairs each row with its partner in the other half
     * (correlation): the model is a two-image model. */
    LAYER_PAIRS_ONE_INPUT = 1u << 5,
    /* Its fused block (fuse) reads and writes the usual NCHW layout (batch
     * norm + ReLU), unlike conv2d's channels-last blocks. */
    LAYER_FUSES_NCHW = 1u << 6,
};

/* What a row's build function declares about a node (model.c lays the
 * arenas out from it). */
typedef struct LayerDef {
    const char *name;      /* section name */
    const char *doc;       /* one line for docs/config.md */
    const ConfigKey *keys; /* its keys besides name and input */
    int nkeys;
    int min_inputs, max_inputs;
    unsigned flags;
    /* Completes a parsed section (defaults that depend on other keys,
     * required keys): -1 with "[type] NAME ..." in e. May be NULL. */
    int (*finish)(LayerCfg *c, Err *e);
    /* Shape inference from L->in*, L->c/h/w (input 0) and L->cfg: sets
     * L->oc/oh/ow/flat, declares parameters and buffers (model_add_param,
     * model_add_buffer), flops, state and workspace. -1 with the reason
     * (no location: model.c adds "CONFIG:LINE: [type] NAME: ") in e. */
    int (*build)(Model *m, ModelLayer *L, Err *e);
    /* y (rows, out_size) from x[k] (rows, in size of input k). */
    void (*forward)(Model *m, ModelLayer *L, float *y, const float *const *x, int rows);
    /* dx[k] (NULL: not wanted) WRITTEN, or ADDED with LAYER_ACCUMULATES;
     * parameter gradients ACCUMULATE into m->grads. dy (rows, out_size);
     * y and x as in forward. */
    void (*backward)(Model *m, ModelLayer *L, float *const *dx, const float *dy, const float *y,
                     const float *const *x, int rows);
    /* After a training forward: move buffers (running statistics). May be NULL. */
    void (*update)(Model *m, ModelLayer *L);
    /* Fusion: how many of the nodes next[0..nnext) (a chain, each read
     * only by the one after it) this node absorbs into one kernel (0: none).
     * A fused node reads a channels-last input (model.c sees to it). May be
     * NULL. */
    int (*fuse)(const ModelLayer *L, const ModelLayer *const *next, int nnext);
    /* Once fusion is planned: state_row, state_fixed and ws_floats for
     * forwards of at most max_rows rows, where build could not set them.
     * May be NULL. */
    void (*sizes)(Model *m, ModelLayer *L, int max_rows);
} LayerDef;

/* The row of a type; the type named `name` (-1 if none). */
const LayerDef *layer_def(LayerType t);
int layer_type_by_name(const char *name);
/* Keys every layer section has: name, input (section NULL). */
extern const ConfigKey layer_common_keys[];
extern const int layer_common_nkeys;

/* For build functions: declare a parameter view of the node (weight,
 * bias, ...), in order, in PyTorch's layout; returns its arena offset. */
size_t model_add_param(Model *m, ModelLayer *L, const char *what, int ndim, const int *shape, ViewInit init,
                       double fan_in, double l2);
/* A buffer view (running statistics); returns its offset in m->buffers. */
size_t model_add_buffer(Model *m, ModelLayer *L, const char *what, int ndim, const int *shape, ViewInit init);

#endif
