/* model: a small graph of registered layers (nn/layer.h) built from a
 * config's layer sections, with the optional Koch head's parameters. Each
 * section is a node whose inputs are earlier nodes (default: the previous
 * one) or the model input; shapes are inferred node by node. Every buffer
 * (parameters, gradients, activations, workspace) is allocated by
 * model_build, so forward/backward never allocate. The siamese towers are
 * one pass over the concatenated batch: in a two-image model (one that
 * names X@a or X@b) the input rows are [images a; images b], per-image
 * nodes keep that order and X@a / X@b are their halves (docs/graph.md).
 * No MPI: batch norm's sums over ranks go through the allreduce hook. */
#ifndef SIAMESE_MODEL_H
#define SIAMESE_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"
#include "layer_spec.h"
#include "util.h"

struct LayerDef;

/* An input of a node: node index (MODEL_INPUT: the model input) and which
 * rows: all, or the a / b half of a per-image node of a two-image model. */
enum { REF_WHOLE, REF_A, REF_B };
#define MODEL_INPUT (-1)
typedef struct NodeRef {
    int node, half;
} NodeRef;

typedef struct ModelLayer {
    LayerType type;
    const struct LayerDef *def; /* its registry row */
    char name[LAYER_NAME_MAX];
    int line;     /* config line, for messages */
    LayerCfg cfg; /* the section's values */
    int nin;
    NodeRef in[LAYER_MAX_INPUTS];
    int inc[LAYER_MAX_INPUTS]; /* channels of each input (same h, w) */
    int c, h, w;               /* shape of input 0 per row */
    int in_flat;               /* input 0 has no spatial meaning */
    int oc, oh, ow;            /* output shape per row */
    int flat;                  /* output has no spatial meaning (after flatten, linear, ...) */
    size_t in_size, out_size;  /* floats per row */
    int halved;                /* rows = input rows / 2: a pair-level node */
    /* Parameters: views [v0, v0 + nv) at arena [p_off, p_off + np); for
     * layers with a weight and a bias, w_off/nw and b_off/nb name them. */
    int v0, nv;
    size_t p_off, np, w_off, b_off, nw, nb;
    int bv0, nbv;                  /* buffer views, in the buffer arena */
    uint64_t flops;                /* forward multiply-adds x 2 per row */
    size_t state_row, state_fixed; /* bytes kept for backward: per row, per layer */
    size_t ws_floats;              /* workspace at max rows */
    double l2;                     /* L2 regularisation lambda of the weights */
    /* Storage. y: own output buffer (max rows x out_size), or NULL when
     * the output aliases node `alias`'s (MODEL_INPUT: the input): views
     * (flatten), layers run in place, layers absorbed in a fused block. */
    float *y;
    int alias;
    uint8_t *state; /* state_row * max rows + state_fixed bytes, 64-aligned */
    /* Fusion (conv2d -> relu [-> maxpool 2x2/2] run as one nn/convblock;
     * batchnorm -> relu as one batch norm pass each way): on the first
     * node, fuse = nodes absorbed after it (1 or 2) and y
     * the block output; fuse = -1 on an absorbed node (forward and backward
     * skip it). nhwc: the node's output is stored channels-last (a block
     * feeding another block). */
    int fuse, nhwc;
    /* Graph bookkeeping (model_build). */
    int nuse;                                 /* edges reading this node's output */
    int is_output;                            /* read by the embedding, a loss or the head */
    int wants_grad;                           /* some ancestor (or itself) has parameters */
    int grad_own;                             /* its output gradient is summed: own zeroed buffer */
    int pass;                                 /* backward hands its output gradient to its input as is */
    float *dy;                                /* that buffer, or a pooled one (see model.c) */
    unsigned char edge_acc[LAYER_MAX_INPUTS]; /* backward adds into the input's gradient */
} ModelLayer;

typedef void (*GradReadyFn)(void *ctx, size_t offset, size_t count);
/* Sums n doubles over every rank in place (the trainer's MPI allreduce). */
typedef void (*ModelAllreduceFn)(void *ctx, double *v, int n);

/* What forward needs to know about the step (dropout keys, batch norm).
 * The local input rows are `blocks` blocks of `items` rows (PK: 1 block;
 * pairs: a then b; triplets: 3); local item i of block t is global row
 * t * global_items + item0 + i. */
typedef struct ModelStep {
    int train;     /* 1: batch statistics, dropout; 0: inference */
    uint64_t step; /* global step */
    uint64_t seed; /* the run's seed (dropout keys) */
    int blocks, items, item0, global_items;
} ModelStep;

/* The gradient of the loss with respect to one node's output (rows x
 * the node's floats per row), for model_backward_seeds. */
typedef struct ModelSeed {
    int node;
    const float *g;
} ModelSeed;

typedef struct Model {
    int nlayers;
    ModelLayer *layers;
    int in_c, in_h, in_w;
    int emb;               /* embedding node (eval, embed, the Koch head); -1: none */
    int emb_dim;           /* its floats per row (0: none) */
    int loss;              /* the node the loss reads */
    int pair;              /* names X@a / X@b: input rows are [a; b] */
    int max_batch;         /* input rows at most */
    float *params, *grads; /* the two arenas, same layout */
    size_t nparams;
    ParamView *views;
    int nviews;
    float *buffers; /* running statistics: saved, never trained */
    size_t nbuffers;
    ParamView *bufviews;
    int nbufviews;
    int has_head; /* Koch head: head.weight (1, D), head.bias (1) */
    size_t head_w_off, head_b_off;
    double head_l2;
    float *ws; /* workspace shared by the layers */
    size_t ws_floats;
    float **gpool; /* pooled output gradients (model.c) */
    size_t *gpool_floats;
    int ngpool;
    int *gbuf_of;              /* (nlayers) pooled buffer of each node's gradient, -1 none */
    unsigned char *written;    /* (nlayers) backward: halves of each gradient written */
    unsigned char *embed_only; /* (nlayers) the embedding node and what it reads */
    float *scratch;            /* input gradients before they are added: one slot per input */
    size_t scratch_floats, scratch_slot;
    const float **out;          /* (nlayers) outputs of the last forward */
    const float **dyp;          /* (nlayers) output gradients during backward */
    int rows;                   /* input rows of the last forward */
    const float *x;             /* its input */
    ModelStep st;               /* set with model_set_step; default: inference */
    ModelAllreduceFn allreduce; /* NULL: one process */
    void *allreduce_ctx;
    uint64_t flops_fwd_per_image; /* multiply-adds x 2 of the forward pass */
    /* Optional per-layer timers (benchmarks, the trainer's breakdown): when
     * non-NULL, (4 * nlayers) doubles owned by the caller; model_forward adds
     * layer i's wall seconds to prof[2i] and the threads' work seconds
     * (nn/parallel.h, meaningful while parallel_profile is on) to
     * prof[2 nlayers + 2i], model_backward to prof[2i+1] and prof[2 nlayers
     * + 2i+1]. A layer fused into the one before it (relu, maxpool after
     * conv2d) shows as 0. */
    double *prof;
    /* Optional with prof: (2 * nlayers) doubles, the threads' work in CPU
     * seconds (nn/parallel.h: parallel_work_cpu_offset), forward in
     * prof_cpu[2i], backward in prof_cpu[2i+1]. */
    double *prof_cpu;
} Model;

/* Builds the graph for inputs of shape (c, h, w) and forwards of at most
 * max_batch input rows (cfg_name names the config in messages). -1 with
 * "CONFIG:LINE: ..." in e when a layer does not fit its input or names a
 * node that does not exist. Free with model_free. Fuses conv2d -> relu [->
 * maxpool size 2 stride 2] without padding into one block (same numbers,
 * much less memory) when its input has one channel or is the output of such
 * a block and nn/convblock has SIMD kernels for it (convblock_fast). */
int model_build(Model *m, const ModelSpec *spec, const char *cfg_name, int c, int h, int w, int max_batch,
                Err *e);
void model_free(Model *m);

/* Initialises the parameters with an INIT_* scheme, seeded per view, and
 * the buffers (running statistics) to their starting values. */
void model_init(Model *m, int scheme, uint64_t seed);

/* Copies into m the parameters and buffers of every layer with parameters
 * or buffers whose name is also a layer of src (fine-tuning from another
 * model: [init] from). The number of layers copied, or -1 with the reason
 * in e: a layer of that name of another type or other shapes (naming it),
 * or no such layer at all. */
int model_copy_layers(Model *m, const Model *src, Err *e);

/* Sets the step forward runs in (train or inference, keys of dropout). */
void model_set_step(Model *m, const ModelStep *st);

/* Forward over x (rows, c, h, w), every node; returns the output of the
 * node the loss reads (its rows x its floats per row; by default the
 * embedding, rows x emb_dim), owned by the model and valid until the next
 * forward. rows <= max_batch (even in a two-image model). */
const float *model_forward(Model *m, const float *x, int rows);
/* Inference on single images (eval, embed): only the embedding node and
 * what it reads; any rows (also odd ones in a two-image model). The model
 * must have an embedding (emb >= 0). */
const float *model_embed(Model *m, const float *x, int rows);

/* The position in the global batch of row r of node i in the current
 * step (dropout keys): per-image rows t * global_items + item0 + j for
 * local row t * items + j; pair-level rows item0 + r; r itself when no
 * step was set. */
uint64_t model_row_position(const Model *m, int i, int r);

/* Nodes by name (-1 if none); a node's output after forward, its floats per
 * row and its rows for `rows` input rows. */
int model_node(const Model *m, const char *name);
const float *model_output(const Model *m, int node);
size_t model_node_size(const Model *m, int node);
int model_node_rows(const Model *m, int node, int rows);

/* Backward after model_forward on the same x, from the loss gradients of
 * the seeded nodes (each rows-of-the-node x its size; read only). Every
 * node the seeds reach gets its gradient; parameters ACCUMULATE into
 * m->grads (zero them once per step). Calls ready(ctx, offset, count) as
 * soon as a node's parameter gradients are final (from the last node to
 * the first); ready may be NULL. */
void model_backward_seeds(Model *m, const ModelSeed *seeds, int nseeds, GradReadyFn ready, void *ctx);
/* The same with one seed, dE on the node the loss reads (its rows x its
 * floats per row). */
void model_backward(Model *m, const float *x, const float *dE, int rows, GradReadyFn ready, void *ctx);

/* After a training step's forward: running statistics move (batch norm). */
void model_update_buffers(Model *m);

/* Adds the L2 regularisation terms sum_l lambda_l ||W_l||^2 (Koch et al.):
 * returns the term and adds its gradient 2 lambda_l W_l into m->grads. */
double model_l2_penalty(Model *m);

/* Writes the node table (name, type, inputs, output shape, parameters). */
void model_describe(const Model *m, FILE *out);
/* The nodes as text, one line each ("node NAME TYPE input=... output=CxHxW
 * rows=image|pair"), then the embedding and the loss's node: the
 * checkpoint's graph section. Caller frees. */
char *model_graph_text(const Model *m);
/* One-line-per-tensor topology text (name and shape of every parameter
 * view, then of every buffer, the input shape): checkpoints compare it on
 * load. Caller frees. */
char *model_topology(const Model *m);

/* What a topology text says: the input shape, the tensor count and their
 * total float count (what the parameter arena of that model holds). */
typedef struct ModelTopology {
    int in_c, in_h, in_w;
    int tensors;
    uint64_t floats;        /* of the parameter tensors */
    uint64_t buffer_floats; /* of the tensors tagged "buffer" (running statistics) */
} ModelTopology;
/* Parses n bytes of model_topology's text (from a checkpoint: any bytes) as
 * "input CxHxW" and one "name d1xd2..." line per tensor (1..ARENA_MAX_DIMS
 * dimensions, each 1..2^31-1, at most MODEL_TOPOLOGY_MAX_FLOATS floats in
 * all), a buffer's line ending in " buffer". 0, or -1 with the fault in e
 * (without a file name). */
#define MODEL_TOPOLOGY_MAX_FLOATS ((uint64_t)1 << 40)
int model_topology_parse(const char *text, size_t n, ModelTopology *out, Err *e);

/* Planning without allocating: model_plan does all of model_build but
 * allocate (model_alloc does that; model_build is the two). After
 * model_plan the memory figures below are known, and model_free is the
 * only other call allowed before model_alloc. */
int model_plan(Model *m, const ModelSpec *spec, const char *cfg_name, int c, int h, int w, int max_batch,
               Err *e);
void model_alloc(Model *m);

/* Memory of node i for forwards of max_batch input rows, in bytes: its
 * parameters (with their gradients), buffers, output (0 when aliased),
 * what it keeps for backward, and the workspace it asks for (the model
 * allocates the largest of these once). */
typedef struct ModelMemory {
    size_t params, buffers, activations, state, workspace;
} ModelMemory;
void model_layer_memory(const Model *m, int i, ModelMemory *mm);
/* Bytes shared by all nodes: the workspace, the output-gradient buffers
 * and the scratch for summed gradients. */
size_t model_shared_memory(const Model *m);

/* Parses "CxHxW"; -1 if malformed. */
int model_parse_shape(const char *s, int *c, int *h, int *w);

#endif
