/* tanh: the hyperbolic tangent over n floats. The forward may run in place
 * (out == in); the backward takes the forward OUTPUT, may run in place
 * (din == dout). No parameters, nothing allocated. */
#ifndef SIAMESE_TANH_H
#define SIAMESE_TANH_H

#include <stddef.h>

/* out (n) = tanh(in). */
void tanh_forward(float *out, const float *in, size_t n);
/* din (n) WRITTEN = dout * (1 - out^2). */
void tanh_backward(float *din, const float *dout, const float *out, size_t n);

#endif
