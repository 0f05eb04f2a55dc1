/* layers_join: the registry rows of the layers that join nodes (concat,
 * add, difference, absdiff, correlation) and their glue to nn/join and
 * nn/correlation. Their inputs share height, width and rows (model.c checks
 * that); add, difference and absdiff also need equal channels. */
#include <string.h>

#include "correlation.h"
#include "join.h"
#include "layers.h"

/* Every input has input 0's channels (add, difference, absdiff). */
static int same_inputs_build(Model *m, ModelLayer *L, Err *e) {
    for (int k = 1; k < L->nin; k++)
        if (L->inc[k] != L->c)
            return err_set(e,
                           "input %d has %d channels but input 1 has %d: the inputs must have the same shape",
                           k + 1, L->inc[k], L->c);
    return layers_same_shape(m, L, e);
}

/* ---- concat ----------------------------------------------------------------- */

static int concat_build(Model *m, ModelLayer *L, Err *e) {
    (void)m, (void)e;
    L->oc = 0;
    for (int k = 0; k < L->nin; k++) L->oc += L->inc[k];
    L->oh = L->h, L->ow = L->w, L->flat = L->in_flat;
    return 0;
}

static void input_sizes(const ModelLayer *L, size_t *size) {
    for (int k = 0; k < L->nin; k++) size[k] = (size_t)L->inc[k] * L->h * L->w;
}

static void concat_fwd(Model *m, ModelLayer *L, float *y, const float *const *x, int rows) {
    (void)m;
    size_t size[LAYER_MAX_INPUTS];
    input_sizes(L, size);
    concat_forward(y, x, size, L->nin, rows);
}

static void concat_bwd(Model *m, ModelLayer *L, float *const *dx, const float *dy, const float *y,
                       const float *const *x, int rows) {
    (void)m, (void)y, (void)x;
    size_t size[LAYER_MAX_INPUTS];
    input_sizes(L, size);
    concat_backward(dx, dy, size, L->nin, rows);
}

const LayerDef layer_concat = {
    .name = "concat",
    .doc = "2 to 4 inputs of the same height, width and rows: their channels one after "
           "the other (torch.cat(dim=1))",
    .min_inputs = 2,
    .max_inputs = 4,
    .build = concat_build,
    .forward = concat_fwd,
    .backward = concat_bwd};

/* ---- add, difference, absdiff --------------------------------------------- */

static void add_fwd(Model *m, ModelLayer *L, float *y, const float *const *x, int rows) {
    (void)m;
    add_forward(y, x, L->nin, L->out_size * (size_t)rows);
}

static void add_bwd(Model *m, ModelLayer *L, float *const *dx, const float *dy, const float *y,
                    const float *const *x, int rows) {
    (void)m, (void)y, (void)x;
    for (int k = 0; k < L->nin; k++)
        if (dx[k]) memcpy(dx[k], dy, L->out_size * (size_t)rows * sizeof(float));
}

const LayerDef layer_add = {.name = "add",
                            .doc = "2 to 4 inputs of the same shape: their sum",
                            .min_inputs = 2,
                            .max_inputs = 4,
                            .build = same_inputs_build,
                            .forward = add_fwd,
                            .backward = add_bwd};

static void difference_fwd(Model *m, ModelLayer *L, float *y, const float *const *x, int rows) {
    (void)m;
    difference_forward(y, x[0], x[1], L->out_size * (size_t)rows);
}

static void difference_bwd(Model *m, ModelLayer *L, float *const *dx, const float *dy, const float *y,
                           const float *const *x, int rows) {
    (void)m, (void)y, (void)x;
    difference_backward(dx[0], dx[1], dy, L->out_size * (size_t)rows);
}

const LayerDef layer_difference = {.name = "difference",
                                   .doc = "2 inputs of the same shape: the first minus the second",
                                   .min_inputs = 2,
                                   .max_inputs = 2,
                                   .build = same_inputs_build,
                                   .forward = difference_fwd,
                                   .backward = difference_bwd};

static void absdiff_fwd(Model *m, ModelLayer *L, float *y, const float *const *x, int rows) {
    (void)m;
    absdiff_forward(y, x[0], x[1], L->out_size * (size_t)rows);
}

static void absdiff_bwd(Model *m, ModelLayer *L, float *const *dx, const float *dy, const float *y,
                        const float *const *x, int rows) {
    (void)m, (void)y;
    absdiff_backward(dx[0], dx[1], dy, x[0], x[1], L->out_size * (size_t)rows);
}

const LayerDef layer_absdiff = {
    .name = "absdiff",
    .doc = "2 inputs of the same shape: the absolute difference (Koch's distance layer)",
    .min_inputs = 2,
    .max_inputs = 2,
    .build = same_inputs_build,
    .forward = absdiff_fwd,
    .backward = absdiff_bwd};

/* ---- correlation -------------------------------------------------------------- */

static const ConfigKey correlation_keys[] = {
    {"correlation", "displacement", K_INT, L(displacement), 0, 32, "4", NULL,
     "largest displacement d in each direction: (2d+1)^2 output channels"},
    {"correlation", "dilation", K_INT, L(dilation), 1, 16, "1", NULL,
     "pixels between neighbouring displacements"},
    {"correlation", "normalize", K_ENUM, L(normalize), 0, 0, "none", "none|cosine",
     "none: dot product / channels (Li et al.); cosine: each position's channel vector l2-normalised "
     "first, the cosine in [-1, 1]"},
    {"correlation", "max", K_INT, L(max), 0, 1, "0", NULL,
     "1: one more channel, each position's largest value over the displacements inside the map"},
};

static int correlation_flags(const ModelLayer *L) {
    return (L->cfg.normalize ? CORR_COSINE : 0) | (L->cfg.max ? CORR_MAX : 0);
}

static float correlation_scale(const ModelLayer *L) { return L->cfg.normalize ? 1.0f : 1.0f / (float)L->c; }

static int correlation_build(Model *m, ModelLayer *L, Err *e) {
    if (L->in_flat) return err_set(e, "its input is flat: it correlates feature maps (C x H x W)");
    if (L->nin == 2 && L->inc[1] != L->c)
        return err_set(e, "input 2 has %d channels but input 1 has %d: the maps must have the same shape",
                       L->inc[1], L->c);
    if (L->nin == 1 && L->halved)
        return err_set(
            e, "with one input it pairs each image with its partner: that input must be a per-image node, "
               "not a pair-level one (or use input = X@a, X@b)");
    (void)m;
    int D = 2 * (int)L->cfg.displacement + 1;
    L->oc = correlation_channels(D, correlation_flags(L)), L->oh = L->h, L->ow = L->w;
    L->flops = 2ULL * (uint64_t)L->c * (uint64_t)D * D * (uint64_t)L->h * (uint64_t)L->w;
    L->ws_floats =
        correlation_workspace_floats(L->c, L->h, L->w, D, (int)L->cfg.dilation, correlation_flags(L));
    return 0;
}

static void correlation_fwd(Model *m, ModelLayer *L, float *y, const float *const *x, int rows) {
    int D = 2 * (int)L->cfg.displacement + 1, dil = (int)L->cfg.dilation, fl = correlation_flags(L);
    float scale = correlation_scale(L);
    if (L->nin == 2) {
        correlation_forward(y, x[0], x[1], rows, L->c, L->h, L->w, D, dil, scale, fl, m->ws);
        return;
    }
    /* Both directions: rows [0, B) are the a images, [B, 2B) their partners. */
    int B = rows / 2;
    const float *xa = x[0], *xb = x[0] + (size_t)B * L->in_size;
    correlation_forward(y, xa, xb, B, L->c, L->h, L->w, D, dil, scale, fl, m->ws);
    correlation_forward(y + (size_t)B * L->out_size, xb, xa, B, L->c, L->h, L->w, D, dil, scale, fl, m->ws);
}

static void correlation_bwd(Model *m, ModelLayer *L, float *const *dx, const float *dy, const float *y,
                            const float *const *x, int rows) {
    int D = 2 * (int)L->cfg.displacement + 1, dil = (int)L->cfg.dilation, fl = correlation_flags(L);
    float scale = correlation_scale(L);
    if (L->nin == 2) {
        correlation_backward(dx[0], dx[1], dy, y, x[0], x[1], rows, L->c, L->h, L->w, D, dil, scale, fl,
                             m->ws);
        return;
    }
    if (!dx[0]) return;
    int B = rows / 2;
    size_t yb = (size_t)B * L->out_size;
    const float *xa = x[0], *xb = x[0] + (size_t)B * L->in_size;
    float *da = dx[0], *db = dx[0] + (size_t)B * L->in_size;
    correlation_backward(da, db, dy, y, xa, xb, B, L->c, L->h, L->w, D, dil, scale, fl, m->ws);
    correlation_backward(db, da, dy + yb, y + yb, xb, xa, B, L->c, L->h, L->w, D, dil, scale, fl, m->ws);
}

const LayerDef layer_correlation = {
    .name = "correlation",
    .doc = "mutual correlation (Li et al. 2018): per pixel and displacement up to d, the dot product of two "
           "maps' channel vectors / channels (or their cosine), optionally the max over displacements; one "
           "per-image input: both directions, image a against its partner b and b against a",
    .keys = correlation_keys,
    .nkeys = NKEYS(correlation_keys),
    .min_inputs = 1,
    .max_inputs = 2,
    .flags = LAYER_ACCUMULATES | LAYER_PAIRS_ONE_INPUT,
    .build = correlation_build,
    .forward = correlation_fwd,
    .backward = correlation_bwd};
