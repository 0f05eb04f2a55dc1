/* join: the kernels of layers that combine several inputs row by row:
 * channel concatenation, elementwise sum, difference and absolute
 * difference. Each input is rows of floats (a flattened NCHW row, or
 * features); no parameters, nothing allocated. Backward WRITES the input
 * gradients (NULL: not wanted). */
#ifndef SIAMESE_JOIN_H
#define SIAMESE_JOIN_H

#include <stddef.h>

/* out (rows, sum size[k]): row r is row r of in[0], then of in[1], ...
 * (NCHW rows: their channels one after the other, as torch.cat(dim=1)). */
void concat_forward(float *out, const float *const *in, const size_t *size, int n, int rows);
/* din[k] (rows, size[k]) = its columns of dout. */
void concat_backward(float *const *din, const float *dout, const size_t *size, int n, int rows);

/* out (count) = in[0] + ... + in[n - 1]. The backward of a sum copies dout
 * to every input. */
void add_forward(float *out, const float *const *in, int n, size_t count);

/* out (count) = a - b; backward da = dout, db = -dout. */
void difference_forward(float *out, const float *a, const float *b, size_t count);
void difference_backward(float *da, float *db, const float *dout, size_t count);

/* out (count) = |a - b|; backward da = dout * sign(a - b), db = -da, with
 * sign(0) = 0 (as PyTorch's abs). */
void absdiff_forward(float *out, const float *a, const float *b, size_t count);
void absdiff_backward(float *da, float *db, const float *dout, const float *a, const float *b, size_t count);

#endif
