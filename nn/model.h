/* model: the shared-weight encoder built from a config's layer sections,
 * with the optional Koch head's parameters. Shapes are inferred layer to
 * layer; every buffer (parameters, gradients, activations, workspace) is
 * allocated by model_build, so forward/backward never allocate. The two or
 * three siamese towers are one encoder run over the concatenated batch.
 * The layer list is walked through a small ops table (model.c). No MPI. */
#ifndef SIAMESE_MODEL_H
#define SIAMESE_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"
#include "layer_spec.h"
#include "util.h"

typedef struct ModelLayer {
    int type;                 /* LayerType */
    char name[32];
    int line;                 /* config line, for messages */
    int c, h, w;              /* input shape per sample */
    int oc, oh, ow;           /* output shape per sample */
    size_t in_size, out_size; /* floats per sample */
    long filters, size, stride, pad, out;
    size_t w_off, b_off, nw, nb; /* in the parameter arena (floats) */
    float *y;                 /* output activations (max_batch, out_size); may alias the input */
    int32_t *idx;             /* maxpool argmax (max_batch, out_size) */
    float *norms;             /* l2norm (max_batch) */
    /* Fusion (conv2d -> relu [-> maxpool 2x2/2] run as one nn/convblock):
     * on the conv2d layer, fuse = layers absorbed after it (1 or 2), y the
     * block output and arg its pool argmax; fuse = -1 on an absorbed layer
     * (its y aliases the block output; forward and backward skip it).
     * nhwc: this layer's output is stored channels-last (a fused block
     * feeding another fused block). */
    int fuse, nhwc;
    uint8_t *arg;
    double l2;                /* L2 regularisation lambda of the weights */
} ModelLayer;

typedef void (*GradReadyFn)(void *ctx, size_t offset, size_t count);

typedef struct Model {
    int nlayers;
    ModelLayer *layers;
    int in_c, in_h, in_w;
    int emb_dim;
    int max_batch;
    float *params, *grads;    /* the two arenas, same layout */
    size_t nparams;
    ParamView *views;
    int nviews;
    int has_head;             /* Koch head: head.weight (1, D), head.bias (1) */
    size_t head_w_off, head_b_off;
    double head_l2;
    float *ws;                /* convolution workspace */
    float *gbuf[2];           /* gradient ping-pong buffers, each sized for */
    size_t gbuf_floats[2];    /* the largest input gradient it receives */
    uint64_t flops_fwd_per_image; /* multiply-adds x 2 of the forward pass */
    /* Optional per-layer timers (benchmarks): when non-NULL, (2 * nlayers)
     * doubles owned by the caller; model_forward adds layer i's wall seconds
     * to prof[2i], model_backward to prof[2i+1]. A layer fused into the one
     * before it (relu, maxpool after conv2d) shows as 0. */
    double *prof;
} Model;

/* Builds the encoder for inputs of shape (c, h, w) and batches of at most
 * max_batch images (cfg_name names the config in messages). -1 with
 * "CONFIG:LINE: ..." in e when a layer does not fit its input. Free with
 * model_free. Fuses conv2d -> relu [-> maxpool size 2 stride 2] without
 * padding into one block (same numbers, much less memory) when its input
 * has one channel or is the output of such a block and nn/convblock has
 * SIMD kernels for it (convblock_fast). */
int model_build(Model *m, const LayerCfg *layers, int nlayers, int koch_head, double head_lr_mult,
                double head_l2, const char *cfg_name, int c, int h, int w, int max_batch, Err *e);
/* model_build's shape inference alone: layers, views, nparams, emb_dim and
 * the topology, with no arenas or buffers (params NULL; only model_topology,
 * model_describe and model_free apply). What a checkpoint's config implies,
 * checked against the checkpoint before anything large is allocated. */
int model_plan(Model *m, const LayerCfg *layers, int nlayers, int koch_head, const char *cfg_name, int c,
               int h, int w, Err *e);
void model_free(Model *m);

/* Initialises the parameters with an INIT_* scheme, seeded per view. */
void model_init(Model *m, int scheme, uint64_t seed);

/* Forward over x (B, c, h, w); returns the embeddings (B, emb_dim), owned by
 * the model and valid until the next forward. B <= max_batch. */
const float *model_forward(Model *m, const float *x, int B);

/* Backward from dE (B, emb_dim) after model_forward on the same x.
 * ACCUMULATES into m->grads (zero them once per step). Calls ready(ctx,
 * offset, count) as soon as a layer's parameter gradients are final (from
 * the last layer to the first); ready may be NULL. dE is not modified. */
void model_backward(Model *m, const float *x, const float *dE, int B, GradReadyFn ready, void *ctx);

/* Adds the L2 regularisation terms sum_l lambda_l ||W_l||^2 (Koch et al.):
 * returns the term and adds its gradient 2 lambda_l W_l into m->grads. */
double model_l2_penalty(Model *m);

/* Writes the layer table (name, type, output shape, parameters). */
void model_describe(const Model *m, FILE *out);
/* One-line-per-tensor topology text (name and shape of every view, the
 * input shape): checkpoints compare it on load. Caller frees. */
char *model_topology(const Model *m);

/* What a topology text says: the input shape, the tensor count and their
 * total float count (what the parameter arena of that model holds). */
typedef struct ModelTopology {
    int in_c, in_h, in_w;
    int tensors;
    uint64_t floats;
} ModelTopology;
/* Parses n bytes of model_topology's text (from a checkpoint: any bytes) as
 * "input CxHxW" and one "name d1xd2..." line per tensor (1..ARENA_MAX_DIMS
 * dimensions, each 1..2^31-1, at most MODEL_TOPOLOGY_MAX_FLOATS floats in
 * all). 0, or -1 with the fault in e (without a file name). */
#define MODEL_TOPOLOGY_MAX_FLOATS ((uint64_t)1 << 40)
int model_topology_parse(const char *text, size_t n, ModelTopology *out, Err *e);

/* Parses "CxHxW"; -1 if malformed. */
int model_parse_shape(const char *s, int *c, int *h, int *w);

#endif
