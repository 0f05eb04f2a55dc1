/* layers_norm: the registry rows of batchnorm (statistics over every row
 * of the step and, with sync = 1, over every rank through the model's
 * allreduce hook) and dropout (masks keyed by the step and the row's
 * global position), and their glue to nn/batchnorm and nn/dropout. */
#include <math.h>
#include <string.h>

#include "batchnorm.h"
#include "dropout.h"
#include "layers.h"

/* ---- batchnorm ----------------------------------------------------------- */

static const ConfigKey batchnorm_keys[] = {
    {"batchnorm", "momentum", K_DBL, L(momentum), 0, 1, "0.1", NULL,
     "weight of the step's statistics in the running statistics (PyTorch's momentum)"},
    {"batchnorm", "eps", K_DBL, L(eps), 1e-12, 1, "1e-05", NULL, "added to the variance"},
    {"batchnorm", "sync", K_INT, L(sync), 0, 1, "1", NULL,
     "1: statistics over the global batch (one allreduce each way per step, p ranks = 1 rank); 0: each "
     "rank's own "
     "rows (checkpoints keep rank 0's running statistics)"},
    {"batchnorm", "lr_mult", K_DBL, L(lr_mult), 0, 1000, "1", NULL, "learning-rate multiplier"},
    {"batchnorm", "decay_mult", K_DBL, L(decay_mult), 0, 1000, "1", NULL, "weight-decay multiplier"},
};

/* The layer's state: what the last forward used (mode, count N, the
 * per-channel mean, 1/sqrt(var + eps) and unbiased variance), and room for
 * the sums. */
typedef struct BnState {
    double train, N;
    double *sums;                /* (2C + 1): sums, sums of squares, count */
    float *mean, *invstd, *varu; /* (C) each */
} BnState;

static BnState bn_state(const ModelLayer *L) {
    int C = L->c;
    double *d = (double *)L->state;
    float *f = (float *)(d + 2 + 2 * C + 1);
    return (BnState){0, 0, d + 2, f, f + C, f + 2 * C};
}

/* The fused pooling's argmax (fuse = 2), after the fixed state. */
static int32_t *bn_argmax(const ModelLayer *L) { return (int32_t *)(L->state + L->state_fixed); }

static int batchnorm_build(Model *m, ModelLayer *L, Err *e) {
    layers_same_shape(m, L, e);
    int C = L->c, cs[1] = {C};
    model_add_param(m, L, "weight", 1, cs, VIEW_INIT_ONE, 1, 0);
    model_add_param(m, L, "bias", 1, cs, VIEW_INIT_ZERO, 1, 0);
    model_add_buffer(m, L, "running_mean", 1, cs, VIEW_INIT_ZERO);
    model_add_buffer(m, L, "running_var", 1, cs, VIEW_INIT_ONE);
    model_add_buffer(m, L, "num_batches_tracked", 0, NULL, VIEW_INIT_ZERO);
    L->state_fixed = (2 + 2 * (size_t)C + 1) * sizeof(double) + 3 * (size_t)C * sizeof(float);
    return 0;
}

static void batchnorm_fwd(Model *m, ModelLayer *L, float *y, const float *const *x, int rows) {
    int C = L->c, HW = L->h * L->w;
    BnState s = bn_state(L);
    double *hdr = (double *)L->state;
    const float *gamma = m->params + L->p_off, *beta = gamma + C;
    const float *rm = m->buffers + m->bufviews[L->bv0].offset,
                *rv = m->buffers + m->bufviews[L->bv0 + 1].offset;
    hdr[0] = m->st.train;
    if (m->st.train) {
        memset(s.sums, 0, (2 * (size_t)C + 1) * sizeof(double));
        batchnorm_sums(s.sums, x[0], rows, C, HW);
        s.sums[2 * C] = (double)rows * HW;
        if (L->cfg.sync && m->allreduce) m->allreduce(m->allreduce_ctx, s.sums, 2 * C + 1);
        double N = s.sums[2 * C];
        hdr[1] = N;
        for (int c = 0; c < C; c++) {
            double mean = s.sums[c] / N, var = fmax(s.sums[C + c] / N - mean * mean, 0.0);
            s.mean[c] = (float)mean;
            s.invstd[c] = (float)(1.0 / sqrt(var + L->cfg.eps));
            s.varu[c] = (float)(N > 1 ? var * N / (N - 1) : var);
        }
    } else {
        for (int c = 0; c < C; c++) {
            s.mean[c] = rm[c];
            s.invstd[c] = (float)(1.0 / sqrt((double)rv[c] + L->cfg.eps));
        }
    }
    if (L->fuse == 2)
        batchnorm_apply_pool(y, bn_argmax(L), x[0], s.mean, s.invstd, gamma, beta, rows, C, L->h, L->w);
    else
        batchnorm_apply(y, x[0], s.mean, s.invstd, gamma, beta, rows, C, HW, L->fuse > 0);
}

static void batchnorm_bwd(Model *m, ModelLayer *L, float *const *dx, const float *dy, const float *y,
                          const float *const *x, int rows) {
    int C = L->c, HW = L->h * L->w;
    BnState s = bn_state(L);
    const float *gamma = m->params + L->p_off,
                *beta = L->fuse > 0 ? gamma + C : NULL; /* beta: a fused ReLU */
    const double *hdr = (const double *)L->state;
    double *g = s.sums; /* free again after forward */
    memset(g, 0, 2 * (size_t)C * sizeof(double));
    if (L->fuse == 2)
        batchnorm_grad_sums_pool(g, dy, y, bn_argmax(L), x[0], s.mean, s.invstd, rows, C, L->h, L->w);
    else
        batchnorm_grad_sums(g, dy, x[0], s.mean, s.invstd, gamma, beta, rows, C, HW);
    float *dgamma = m->grads + L->p_off, *dbeta = dgamma + C;
    for (int c = 0; c < C; c++) {
        dbeta[c] += (float)g[c];
        dgamma[c] += (float)g[C + c];
    }
    if (!dx[0]) return;
    if (hdr[0] && L->cfg.sync && m->allreduce) m->allreduce(m->allreduce_ctx, g, 2 * C);
    if (!hdr[0]) memset(g, 0, 2 * (size_t)C * sizeof(double)); /* inference: statistics are constants */
    if (L->fuse == 2)
        batchnorm_backward_input_pool(dx[0], dy, y, bn_argmax(L), x[0], s.mean, s.invstd, gamma, g,
                                      hdr[0] ? hdr[1] : 1, rows, C, L->h, L->w);
    else
        batchnorm_backward_input(dx[0], dy, x[0], s.mean, s.invstd, gamma, beta, g, hdr[0] ? hdr[1] : 1, rows,
                                 C, HW);
}

/* batchnorm -> relu, where nothing else reads the batch norm's output, runs
 * as one node: the ReLU applied as the normalised values are written, and
 * in the backward its mask recomputed from the batch norm's input (without
 * the pooling; no separate passes, no read of the block output; the same
 * bits). A 2 x 2 stride-2 maxpool after the ReLU (planes of at
 * most BN_POOL_MAX_HW values) joins the block: the pooled values and their
 * argmax are all it writes (nn/batchnorm.h). */
static int batchnorm_fuse(const ModelLayer *L, const ModelLayer *const *next, int nnext) {
    if (nnext < 1 || next[0]->type != LAYER_RELU) return 0;
    int pool = nnext >= 2 && next[1]->type == LAYER_MAXPOOL && next[1]->cfg.size == 2 &&
               next[1]->cfg.stride == 2 && (long)L->h * L->w <= BN_POOL_MAX_HW;
    return pool ? 2 : 1;
}

static void batchnorm_sizes(Model *m, ModelLayer *L, int max_rows) {
    (void)max_rows;
    if (L->fuse == 2) L->state_row = m->layers[(L - m->layers) + 2].out_size * sizeof(int32_t);
}

static void batchnorm_update(Model *m, ModelLayer *L) {
    const double *hdr = (const double *)L->state;
    if (!hdr[0]) return;
    BnState s = bn_state(L);
    float *rm = m->buffers + m->bufviews[L->bv0].offset, *rv = m->buffers + m->bufviews[L->bv0 + 1].offset;
    float *nbt = m->buffers + m->bufviews[L->bv0 + 2].offset;
    float mom = (float)L->cfg.momentum;
    for (int c = 0; c < L->c; c++) {
        rm[c] = (1 - mom) * rm[c] + mom * s.mean[c];
        rv[c] = (1 - mom) * rv[c] + mom * s.varu[c];
    }
    nbt[0] += 1;
}

const LayerDef layer_batchnorm = {
    .name = "batchnorm",
    .doc = "batch normalisation per channel (PyTorch BatchNorm2d; BatchNorm1d on "
           "flat rows) over every row of the step, both towers and, with sync = 1, "
           "every rank",
    .keys = batchnorm_keys,
    .nkeys = NKEYS(batchnorm_keys),
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = LAYER_TRAIN_MODE | LAYER_FUSES_NCHW,
    .build = batchnorm_build,
    .forward = batchnorm_fwd,
    .backward = batchnorm_bwd,
    .update = batchnorm_update,
    .fuse = batchnorm_fuse,
    .sizes = batchnorm_sizes};

/* ---- dropout --------------------------------------------------------------- */

static const ConfigKey dropout_keys[] = {
    {"dropout", "p", K_DBL, L(p), 0, 0.99, "0.5", NULL, "probability of zeroing an element in training"},
};

/* state: one byte (whether the last forward dropped), then a mask byte per
 * element. */
static int dropout_build(Model *m, ModelLayer *L, Err *e) {
    layers_same_shape(m, L, e);
    L->state_fixed = 64;
    L->state_row = L->in_size;
    return 0;
}

static void dropout_fwd(Model *m, ModelLayer *L, float *y, const float *const *x, int rows) {
    int node = (int)(L - m->layers), train = m->st.train && L->cfg.p > 0;
    L->state[0] = (uint8_t)train;
    if (!train) {
        if (y != x[0]) memcpy(y, x[0], L->out_size * (size_t)rows * sizeof(float));
        return;
    }
    uint8_t *mask = L->state + 64;
    for (int r = 0; r < rows; r++) {
        uint64_t key = dropout_key(m->st.seed, m->st.step, (uint64_t)node, model_row_position(m, node, r));
        size_t o = (size_t)r * L->out_size;
        dropout_forward(y + o, mask + o, x[0] + o, L->out_size, key, (float)L->cfg.p);
    }
}

static void dropout_bwd(Model *m, ModelLayer *L, float *const *dx, const float *dy, const float *y,
                        const float *const *x, int rows) {
    (void)m, (void)y, (void)x;
    if (!dx[0]) return;
    size_t n = L->out_size * (size_t)rows;
    if (L->state[0])
        dropout_backward(dx[0], dy, L->state + 64, n, (float)L->cfg.p);
    else
        memcpy(dx[0], dy, n * sizeof(float));
}

const LayerDef layer_dropout = {
    .name = "dropout",
    .doc = "in training, zero each element with probability p and scale the rest by "
           "1/(1-p); masks keyed by seed, step, node and global row (any rank count, "
           "exact resume)",
    .keys = dropout_keys,
    .nkeys = NKEYS(dropout_keys),
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = LAYER_INPLACE | LAYER_TRAIN_MODE,
    .build = dropout_build,
    .forward = dropout_fwd,
    .backward = dropout_bwd};
