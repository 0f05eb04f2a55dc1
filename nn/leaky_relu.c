/* leaky_relu: see leaky_relu.h. */
#include "leaky_relu.h"

void leaky_relu_forward(float *out, const float *in, size_t n, float slope) {
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : slope * in[i];
}

void leaky_relu_backward(float *din, const float *dout, const float *out, size_t n, float slope) {
    for (size_t i = 0; i < n; i++) din[i] = out[i] > 0.0f ? dout[i] : slope * dout[i];
}
