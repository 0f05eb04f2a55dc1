/* layers_act: the registry rows of the elementwise activations (and of the
 * softmax over channels) and their glue to the kernels. Each row follows its glue; the output has the
 * input's shape and may overwrite it (the backward reads the output). */
#include <math.h>

#include "activation.h"
#include "layers.h"
#include "leaky_relu.h"
#include "tanh.h"

/* ---- relu ------------------------------------------------------------------- */

static void relu_fwd(Model *m, ModelLayer *L, float *y, const float *const *x, int rows) {
    (void)m;
    relu_forward(y, x[0], L->out_size * (size_t)rows);
}

static void relu_bwd(Model *m, ModelLayer *L, float *const *dx, const float *dy, const float *y,
                     const float *const *x, int rows) {
    (void)m, (void)x;
    if (dx[0]) relu_backward(dx[0], dy, y, L->out_size * (size_t)rows);
}

const LayerDef layer_relu = {.name = "relu",
                             .doc = "max(x, 0)",
                             .min_inputs = 1,
                             .max_inputs = 1,
                             .flags = LAYER_INPLACE | LAYER_READS_OUTPUT,
                             .build = layers_same_shape,
                             .forward = relu_fwd,
                             .backward = relu_bwd};

/* ---- sigmoid ---------------------------------------------------------------- */

static void sigmoid_fwd(Model *m, ModelLayer *L, float *y, const float *const *x, int rows) {
    (void)m;
    sigmoid_forward(y, x[0], L->out_size * (size_t)rows);
}

static void sigmoid_bwd(Model *m, ModelLayer *L, float *const *dx, const float *dy, const float *y,
                        const float *const *x, int rows) {
    (void)m, (void)x;
    if (dx[0]) sigmoid_backward(dx[0], dy, y, L->out_size * (size_t)rows);
}

const LayerDef layer_sigmoid = {.name = "sigmoid",
                                .doc = "1 / (1 + exp(-x))",
                                .min_inputs = 1,
                                .max_inputs = 1,
                                .flags = LAYER_INPLACE | LAYER_READS_OUTPUT,
                                .build = layers_same_shape,
                                .forward = sigmoid_fwd,
                                .backward = sigmoid_bwd};

/* ---- leaky_relu ------------------------------------------------------------- */

static const ConfigKey leaky_relu_keys[] = {
    {"leaky_relu", "slope", K_DBL, L(slope), 0, 1, "0.01", NULL,
     "slope for x <= 0 (PyTorch's negative_slope)"},
};

static void leaky_relu_fwd(Model *m, ModelLayer *L, float *y, const float *const *x, int rows) {
    (void)m;
    leaky_relu_forward(y, x[0], L->out_size * (size_t)rows, (float)L->cfg.slope);
}

static void leaky_relu_bwd(Model *m, ModelLayer *L, float *const *dx, const float *dy, const float *y,
                           const float *const *x, int rows) {
    (void)m, (void)x;
    if (dx[0]) leaky_relu_backward(dx[0], dy, y, L->out_size * (size_t)rows, (float)L->cfg.slope);
}

const LayerDef layer_leaky_relu = {.name = "leaky_relu",
                                   .doc = "x for x > 0, else slope * x",
                                   .keys = leaky_relu_keys,
                                   .nkeys = NKEYS(leaky_relu_keys),
                                   .min_inputs = 1,
                                   .max_inputs = 1,
                                   .flags = LAYER_INPLACE | LAYER_READS_OUTPUT,
                                   .build = layers_same_shape,
                                   .forward = leaky_relu_fwd,
                                   .backward = leaky_relu_bwd};

/* ---- tanh ----------------------------------------------------------------- */

static void tanh_fwd(Model *m, ModelLayer *L, float *y, const float *const *x, int rows) {
    (void)m;
    tanh_forward(y, x[0], L->out_size * (size_t)rows);
}

static void tanh_bwd(Model *m, ModelLayer *L, float *const *dx, const float *dy, const float *y,
                     const float *const *x, int rows) {
    (void)m, (void)x;
    if (dx[0]) tanh_backward(dx[0], dy, y, L->out_size * (size_t)rows);
}

const LayerDef layer_tanh = {.name = "tanh",
                             .doc = "the hyperbolic tangent",
                             .min_inputs = 1,
                             .max_inputs = 1,
                             .flags = LAYER_INPLACE | LAYER_READS_OUTPUT,
                             .build = layers_same_shape,
                             .forward = tanh_fwd,
                             .backward = tanh_bwd};

/* ---- softmax over channels ------------------------------------------------ */

/* Row r, position p: y_c = exp(x_c - max) / sum_k exp(x_k - max) over the
 * C channels (stride: the plane H x W; a flat input is one position of
 * out_size channels); the sum in double. */
static void softmax_fwd(Model *m, ModelLayer *L, float *y, const float *const *x, int rows) {
    (void)m;
    size_t C = L->in_flat ? L->in_size : (size_t)L->c, P = L->in_flat ? 1 : (size_t)L->h * L->w;
    for (int r = 0; r < rows; r++) {
        const float *xr = x[0] + (size_t)r * L->in_size;
        float *yr = y + (size_t)r * L->out_size;
        for (size_t p = 0; p < P; p++) {
            float mx = xr[p];
            for (size_t c = 1; c < C; c++) mx = fmaxf(mx, xr[c * P + p]);
            double s = 0;
            for (size_t c = 0; c < C; c++) s += yr[c * P + p] = expf(xr[c * P + p] - mx);
            float inv = (float)(1.0 / s);
            for (size_t c = 0; c < C; c++) yr[c * P + p] *= inv;
        }
    }
}

/* dx_c = y_c (dy_c - sum_k y_k dy_k). */
static void softmax_bwd(Model *m, ModelLayer *L, float *const *dx, const float *dy, const float *y,
                        const float *const *x, int rows) {
    (void)m, (void)x;
    if (!dx[0]) return;
    size_t C = L->in_flat ? L->in_size : (size_t)L->c, P = L->in_flat ? 1 : (size_t)L->h * L->w;
    for (int r = 0; r < rows; r++) {
        const float *yr = y + (size_t)r * L->out_size, *gr = dy + (size_t)r * L->out_size;
        float *dr = dx[0] + (size_t)r * L->in_size;
        for (size_t p = 0; p < P; p++) {
            double s = 0;
            for (size_t c = 0; c < C; c++) s += (double)yr[c * P + p] * gr[c * P + p];
            for (size_t c = 0; c < C; c++) dr[c * P + p] = yr[c * P + p] * (gr[c * P + p] - (float)s);
        }
    }
}

const LayerDef layer_softmax = {.name = "softmax",
                                .doc = "softmax over the channels at each position (a flat input: over its values)",
                                .min_inputs = 1,
                                .max_inputs = 1,
                                .flags = LAYER_READS_OUTPUT,
                                .build = layers_same_shape,
                                .forward = softmax_fwd,
                                .backward = softmax_bwd};
