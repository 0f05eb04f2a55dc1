/* layers_act: the registry rows of the elementwise activations and their
 * glue to the kernels. Each row follows its glue; the output has the
 * input's shape and may overwrite it (the backward reads the output). */
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
