/* l2norm: row-wise L2 normalisation out = x / max(||x||, 1e-12), as
 * PyTorch's F.normalize(x, dim=1). The forward stores each row's norm; the
 * backward needs only out, the norms and dout (the input need not be kept),
 * and matches autograd also for rows clamped at the epsilon (zero rows). */
#ifndef SIAMESE_L2NORM_H
#define SIAMESE_L2NORM_H

#define L2NORM_EPS 1e-12f

/* out (B, D), norms (B) = ||in row|| (unclamped), in (B, D). out may equal in. */
void l2norm_forward(float *out, float *norms, const float *in, int B, int D);

/* din (B, D) WRITTEN. For a row with n = norms[r] >= eps:
 * din = (dout - out * <out, dout>) / n; for n < eps (clamped): din = dout / eps.
 * din may equal dout. */
void l2norm_backward(float *din, const float *dout, const float *out, const float *norms, int B, int D);

#endif
