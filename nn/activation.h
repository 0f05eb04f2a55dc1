/* activation: elementwise ReLU and logistic sigmoid over n floats. The
 * forward may run in place (out == in); the backward takes the forward
 * OUTPUT (not the input), so the input need not be kept, and may run in place
 * (din == dout). No parameters, nothing allocated. */
#ifndef SIAMESE_ACTIVATION_H
#define SIAMESE_ACTIVATION_H

#include <stddef.h>

/* out (n) = max(in, 0). A NaN input stays NaN (as PyTorch). */
void relu_forward(float *out, const float *in, size_t n);
/* din (n) WRITTEN = dout * (out > 0). */
void relu_backward(float *din, const float *dout, const float *out, size_t n);

/* out (n) = 1 / (1 + exp(-in)), computed without overflow for large |in|. */
void sigmoid_forward(float *out, const float *in, size_t n);
/* din (n) WRITTEN = dout * out * (1 - out). */
void sigmoid_backward(float *din, const float *dout, const float *out, size_t n);

#endif
