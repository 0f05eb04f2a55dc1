/* layers_basic: the registry rows of conv2d (with its fusion into
 * nn/convblock), maxpool, linear, flatten and l2norm, and their glue to the
 * kernels. */
#include <string.h>

#include "conv2d.h"
#include "convblock.h"
#include "l2norm.h"
#include "layers.h"
#include "linear.h"
#include "pool.h"

/* ---- conv2d ------------------------------------------------------------- */

static const ConfigKey conv2d_keys[] = {
    {"conv2d", "filters", K_INT, L(filters), 1, 65536, NULL, NULL, "output channels"},
    {"conv2d", "size", K_INT, L(size), 1, 64, "3", NULL, "kernel size (square)"},
    {"conv2d", "stride", K_INT, L(stride), 1, 64, "1", NULL, "stride"},
    {"conv2d", "pad", K_INT, L(pad), 0, 64, "0", NULL, "zero padding"},
    LR_KEYS("conv2d"),
};

static int conv2d_build(Model *m, ModelLayer *L, Err *e) {
    const LayerCfg *c = &L->cfg;
    int K = (int)c->size, S = (int)c->stride, P = (int)c->pad, F = (int)c->filters;
    if (L->in_flat)
        return err_set(e, "its input is flat (%d features); put convolutions before flatten/linear",
                       L->c * L->h * L->w);
    if (L->h + 2 * P < K || L->w + 2 * P < K)
        return err_set(
            e,
            "kernel %d does not fit its %dx%dx%d input (pad %d); lower size, add pad, or drop a pooling "
            "layer before it",
            K, L->c, L->h, L->w, P);
    L->oc = F, L->oh = conv2d_out_size(L->h, K, S, P), L->ow = conv2d_out_size(L->w, K, S, P);
    int ws[4] = {F, L->c, K, K};
    layers_weight_bias(m, L, 4, ws, F, (double)L->c * K * K);
    L->flops = 2ULL * L->nw * (uint64_t)L->oh * (uint64_t)L->ow;
    return 0;
}

/* conv2d -> relu [-> maxpool 2x2/2] without padding, where convblock's SIMD
 * kernels run (elsewhere conv2d is faster): the nodes absorbed. */
static int conv2d_fuse(const ModelLayer *L, const ModelLayer *const *next, int nnext) {
    if (L->cfg.pad != 0 || !convblock_fast((int)L->cfg.filters) || nnext < 1 || next[0]->type != LAYER_RELU)
        return 0;
    int pool =
        nnext >= 2 && next[1]->type == LAYER_MAXPOOL && next[1]->cfg.size == 2 && next[1]->cfg.stride == 2;
    return pool ? 2 : 1;
}

static void conv2d_sizes(Model *m, ModelLayer *L, int max_rows) {
    const LayerCfg *c = &L->cfg;
    int K = (int)c->size, S = (int)c->stride, F = (int)c->filters;
    if (L->fuse > 0) {
        L->ws_floats = convblock_workspace_floats(L->c, L->h, L->w, F, K, S, L->fuse == 2);
        if (L->fuse == 2) L->state_row = m->layers[(L - m->layers) + 2].out_size; /* the pool argmax */
    } else {
        L->ws_floats = conv2d_workspace_floats(max_rows, L->c, L->h, L->w, F, K, S, (int)c->pad);
    }
}

static void conv2d_fwd(Model *m, ModelLayer *L, float *y, const float *const *x, int rows) {
    const LayerCfg *c = &L->cfg;
    const float *w = m->params + L->w_off, *b = m->params + L->b_off;
    if (L->fuse > 0)
        convblock_forward(y, L->state, x[0], w, b, rows, L->c, L->h, L->w, (int)c->filters, (int)c->size,
                          (int)c->stride, L->fuse == 2, !L->nhwc, m->ws);
    else
        conv2d_forward(y, x[0], w, b, rows, L->c, L->h, L->w, (int)c->filters, (int)c->size, (int)c->stride,
                       (int)c->pad, m->ws);
}

/* Input channels whose gradient someone reads: all but the channels of
 * the last inputs of a concatenation (the input) that need none (the model
 * input, or nodes without parameters behind them: co-segmentation's skip3
 * = up3r beside the image). */
static int conv2d_grad_channels(const Model *m, const ModelLayer *L) {
    int p = L->in[0].node, n = L->c;
    if (p < 0 || m->layers[p].type != LAYER_CONCAT) return n;
    const ModelLayer *P = &m->layers[p];
    for (int k = P->nin - 1; k >= 0; k--) {
        int q = P->in[k].node;
        if (q >= 0 && m->layers[q].wants_grad) break;
        n -= P->inc[k];
    }
    return n;
}

static void conv2d_bwd(Model *m, ModelLayer *L, float *const *dx, const float *dy, const float *y,
                       const float *const *x, int rows) {
    const LayerCfg *c = &L->cfg;
    const float *w = m->params + L->w_off;
    float *dw = m->grads + L->w_off, *db = m->grads + L->b_off;
    if (L->fuse > 0)
        convblock_backward(dx[0], dw, db, dy, y, L->state, x[0], w, rows, L->c, L->h, L->w, (int)c->filters,
                           (int)c->size, (int)c->stride, L->fuse == 2, !L->nhwc, m->ws);
    else
        conv2d_backward_part(dx[0], dx[0] ? conv2d_grad_channels(m, L) : L->c, dw, db, dy, x[0], w, rows, L->c,
                             L->h, L->w, (int)c->filters, (int)c->size, (int)c->stride, (int)c->pad, m->ws);
}

/* ---- maxpool ------------------------------------------------------------ */

static const ConfigKey maxpool_keys[] = {
    {"maxpool", "size", K_INT, L(size), 1, 64, "2", NULL, "window"},
    {"maxpool", "stride", K_INT, L(stride), 0, 64, "0", NULL, "stride; 0 = size"},
};

static int maxpool_finish(LayerCfg *c, Err *e) {
    (void)e;
    if (c->stride == 0) c->stride = c->size;
    return 0;
}

static int maxpool_build(Model *m, ModelLayer *L, Err *e) {
    (void)m;
    int K = (int)L->cfg.size, S = (int)L->cfg.stride;
    if (L->in_flat || L->h < K || L->w < K)
        return err_set(e, "window %d does not fit its %dx%dx%d input", K, L->c, L->h, L->w);
    L->oc = L->c, L->oh = maxpool_out_size(L->h, K, S), L->ow = maxpool_out_size(L->w, K, S);
    L->state_row = (size_t)L->oc * L->oh * L->ow * sizeof(int32_t);
    return 0;
}

static void maxpool_fwd(Model *m, ModelLayer *L, float *y, const float *const *x, int rows) {
    (void)m;
    maxpool_forward(y, (int32_t *)L->state, x[0], rows, L->c, L->h, L->w, (int)L->cfg.size,
                    (int)L->cfg.stride);
}

static void maxpool_bwd(Model *m, ModelLayer *L, float *const *dx, const float *dy, const float *y,
                        const float *const *x, int rows) {
    (void)m, (void)y, (void)x;
    if (dx[0])
        maxpool_backward(dx[0], dy, (const int32_t *)L->state, rows, L->c, L->h, L->w, (int)L->cfg.size,
                         (int)L->cfg.stride);
}

/* ---- linear, flatten, l2norm --------------------------------------------- */

static const ConfigKey linear_keys[] = {
    {"linear", "out", K_INT, L(out), 1, 1 << 24, NULL, NULL, "output features"},
    LR_KEYS("linear"),
};

static int linear_build(Model *m, ModelLayer *L, Err *e) {
    (void)e;
    int in = (int)L->in_size;
    L->oc = (int)L->cfg.out, L->oh = 1, L->ow = 1, L->flat = 1;
    int ws[2] = {L->oc, in};
    layers_weight_bias(m, L, 2, ws, L->oc, in);
    L->flops = 2ULL * L->nw;
    return 0;
}

static void linear_fwd(Model *m, ModelLayer *L, float *y, const float *const *x, int rows) {
    linear_forward(y, x[0], m->params + L->w_off, m->params + L->b_off, rows, (int)L->in_size, L->oc);
}

static void linear_bwd(Model *m, ModelLayer *L, float *const *dx, const float *dy, const float *y,
                       const float *const *x, int rows) {
    (void)y;
    linear_backward(dx[0], m->grads + L->w_off, m->grads + L->b_off, dy, x[0], m->params + L->w_off, rows,
                    (int)L->in_size, L->oc);
}

static int flat_build(Model *m, ModelLayer *L, Err *e) {
    (void)m, (void)e;
    L->oc = (int)L->in_size, L->oh = 1, L->ow = 1, L->flat = 1;
    return 0;
}

/* A flatten whose input gradient cannot share its buffer copies it. */
static void flatten_bwd(Model *m, ModelLayer *L, float *const *dx, const float *dy, const float *y,
                        const float *const *x, int rows) {
    (void)m, (void)y, (void)x;
    if (dx[0]) memcpy(dx[0], dy, L->out_size * (size_t)rows * sizeof(float));
}

static void flatten_fwd(Model *m, ModelLayer *L, float *y, const float *const *x, int rows) {
    (void)m;
    if (y != x[0]) memcpy(y, x[0], L->out_size * (size_t)rows * sizeof(float));
}

static int l2norm_build(Model *m, ModelLayer *L, Err *e) {
    flat_build(m, L, e);
    L->state_row = sizeof(float);
    return 0;
}

static void l2norm_fwd(Model *m, ModelLayer *L, float *y, const float *const *x, int rows) {
    (void)m;
    l2norm_forward(y, (float *)L->state, x[0], rows, (int)L->out_size);
}

static void l2norm_bwd(Model *m, ModelLayer *L, float *const *dx, const float *dy, const float *y,
                       const float *const *x, int rows) {
    (void)m, (void)x;
    if (dx[0]) l2norm_backward(dx[0], dy, y, (const float *)L->state, rows, (int)L->out_size);
}

/* ---- rows ---------------------------------------------------------------- */

const LayerDef layer_conv2d = {.name = "conv2d",
                               .doc = "2-D convolution (PyTorch Conv2d), square kernel",
                               .keys = conv2d_keys,
                               .nkeys = NKEYS(conv2d_keys),
                               .min_inputs = 1,
                               .max_inputs = 1,
                               .build = conv2d_build,
                               .forward = conv2d_fwd,
                               .backward = conv2d_bwd,
                               .fuse = conv2d_fuse,
                               .sizes = conv2d_sizes};
const LayerDef layer_maxpool = {.name = "maxpool",
                                .doc = "max pooling, floor mode",
                                .keys = maxpool_keys,
                                .nkeys = NKEYS(maxpool_keys),
                                .min_inputs = 1,
                                .max_inputs = 1,
                                .finish = maxpool_finish,
                                .build = maxpool_build,
                                .forward = maxpool_fwd,
                                .backward = maxpool_bwd};
const LayerDef layer_linear = {.name = "linear",
                               .doc = "fully connected (PyTorch Linear) over the flattened input",
                               .keys = linear_keys,
                               .nkeys = NKEYS(linear_keys),
                               .min_inputs = 1,
                               .max_inputs = 1,
                               .build = linear_build,
                               .forward = linear_fwd,
                               .backward = linear_bwd};
const LayerDef layer_flatten = {.name = "flatten",
                                .doc = "one row of C*H*W features (NCHW order)",
                                .min_inputs = 1,
                                .max_inputs = 1,
                                .flags = LAYER_VIEW,
                                .build = flat_build,
                                .forward = flatten_fwd,
                                .backward = flatten_bwd};
const LayerDef layer_l2norm = {.name = "l2norm",
                               .doc = "x / max(L2 norm of x, 1e-12), per row",
                               .min_inputs = 1,
                               .max_inputs = 1,
                               .flags = LAYER_READS_OUTPUT,
                               .build = l2norm_build,
                               .forward = l2norm_fwd,
                               .backward = l2norm_bwd};
