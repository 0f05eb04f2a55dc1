/* activation: ReLU and sigmoid, elementwise over chunks of PARALLEL_GRAIN
 * floats on the pool. */
#include "activation.h"

#include <math.h>

#include "parallel.h"

typedef struct Act {
    float *out;
    const float *in, *dout, *y;
} Act;

/* The pointers are copied to locals so that the loops vectorise (with the
 * run-time overlap checks of the plain functions). */
static void relu_fwd(void *p, size_t lo, size_t hi) {
    const Act *a = p;
    float *out = a->out;
    const float *in = a->in;
    for (size_t i = lo; i < hi; i++) out[i] = in[i] < 0.0f ? 0.0f : in[i];
}

static void relu_bwd(void *p, size_t lo, size_t hi) {
    const Act *a = p;
    float *din = a->out;
    const float *y = a->y, *dout = a->dout;
    for (size_t i = lo; i < hi; i++) din[i] = y[i] > 0.0f ? dout[i] : 0.0f;
}

static void sigmoid_fwd(void *p, size_t lo, size_t hi) {
    const Act *a = p;
    for (size_t i = lo; i < hi; i++) {
        float x = a->in[i];
        if (x >= 0.0f) {
            a->out[i] = 1.0f / (1.0f + expf(-x));
        } else { /* exp(x) cannot overflow here */
            float e = expf(x);
            a->out[i] = e / (1.0f + e);
        }
    }
}

static void sigmoid_bwd(void *p, size_t lo, size_t hi) {
    const Act *a = p;
    float *din = a->out;
    const float *y = a->y, *dout = a->dout;
    for (size_t i = lo; i < hi; i++) din[i] = dout[i] * y[i] * (1.0f - y[i]);
}

void relu_forward(float *out, const float *in, size_t n) {
    Act a = {out, in, NULL, NULL};
    parallel_for(n, PARALLEL_GRAIN, relu_fwd, &a);
}

void relu_backward(float *din, const float *dout, const float *out, size_t n) {
    Act a = {din, NULL, dout, out};
    parallel_for(n, PARALLEL_GRAIN, relu_bwd, &a);
}

void sigmoid_forward(float *out, const float *in, size_t n) {
    Act a = {out, in, NULL, NULL};
    parallel_for(n, PARALLEL_GRAIN, sigmoid_fwd, &a);
}

void sigmoid_backward(float *din, const float *dout, const float *out, size_t n) {
    Act a = {din, NULL, dout, out};
    parallel_for(n, PARALLEL_GRAIN, sigmoid_bwd, &a);
}
