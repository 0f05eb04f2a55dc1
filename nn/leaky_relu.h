/* leaky_relu: x for x > 0, slope * x otherwise (PyTorch's LeakyReLU with
 * negative_slope = slope >= 0), over n floats. The forward may run in place;
 * the backward takes the forward OUTPUT (its sign is the input's, slope >=
 * 0) and may run in place. No parameters, nothing allocated. */
#ifndef SIAMESE_LEAKY_RELU_H
#define SIAMESE_LEAKY_RELU_H

#include <stddef.h>

/* out (n) = in > 0 ? in : slope * in. A NaN input stays NaN. */
void leaky_relu_forward(float *out, const float *in, size_t n, float slope);
/* din (n) WRITTEN = dout * (out > 0 ? 1 : slope). */
void leaky_relu_backward(float *din, const float *dout, const float *out, size_t n, float slope);

#endif
