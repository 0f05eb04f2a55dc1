/* linear: fully connected layer y = x W^T + b with PyTorch's layout
 * (W is (Nout, Nin), as nn.Linear), over a batch of rows, through blas_sgemm
 * (on the pool; the same bits for any thread count).
 * The input is any (B, Nin) row-major block, e.g. a flattened NCHW tensor. */
#ifndef SIAMESE_LINEAR_H
#define SIAMESE_LINEAR_H

/* out (B, Nout) = in (B, Nin) x w^T + b;  w (Nout, Nin), b (Nout) or NULL. */
void linear_forward(float *out, const float *in, const float *w, const float *b, int B, int Nin, int Nout);

/* din (B, Nin) WRITTEN = dout x w, skipped if din is NULL; dw (Nout, Nin) and
 * db (Nout) ACCUMULATE (+=) dout^T x in and the column sums of dout; db may be
 * NULL. dout (B, Nout), in (B, Nin) the forward input. */
void linear_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                     int B, int Nin, int Nout);

#endif
