/* tanh: see tanh.h. */
#include "tanh.h"

#include <math.h>

void tanh_forward(float *out, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = tanhf(in[i]);
}

void tanh_backward(float *din, const float *dout, const float *out, size_t n) {
    for (size_t i = 0; i < n; i++) din[i] = dout[i] * (1.0f - out[i] * out[i]);
}
