/* layers_act: the registry rows of the elementwise activations and their
 * glue to the kernels. Each row follows its glue; the output has the
 * input's shape and may overwrite it (the backward reads the output). */
#include "activation.h"
#include "layers.h"

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
