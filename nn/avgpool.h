/* avgpool: global average pooling (PyTorch adaptive_avg_pool2d(x, 1)) over
 * batch-major (rows, C, HW) tensors: one value per channel. */
#ifndef SIAMESE_AVGPOOL_H
#define SIAMESE_AVGPOOL_H

/* out (rows, C) = the mean of each channel's HW values. */
void avgpool_forward(float *out, const float *in, int rows, int C, int HW);
/* din (rows, C, HW) WRITTEN = dout / HW spread over the channel. */
void avgpool_backward(float *din, const float *dout, int rows, int C, int HW);

#endif
