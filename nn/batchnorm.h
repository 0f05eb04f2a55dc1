/* batchnorm: the kernels of batch normalisation (PyTorch BatchNorm2d, or
 * BatchNorm1d on flat rows with HW = 1) over batch-major (rows, C, HW)
 * tensors, split so that the per-channel sums can be added over ranks in
 * between: forward = sums -> (allreduce) -> statistics -> apply; backward =
 * gradient sums -> (allreduce) -> input gradient. Sums in double. */
#ifndef SIAMESE_BATCHNORM_H
#define SIAMESE_BATCHNORM_H

#include <stdint.h>

/* s[c] += sum of x over rows and pixels of channel c; s[C + c] += sum of x^2. */
void batchnorm_sums(double *s, const float *x, int rows, int C, int HW);
/* y = (x - mean[c]) * invstd[c] * gamma[c] + beta[c]; y may equal x.
 * relu: then y = max(y, 0) (a ReLU fused after the batch norm, with
 * relu_forward's bits). */
void batchnorm_apply(float *y, const float *x, const float *mean, const float *invstd, const float *gamma,
                     const float *beta, int rows, int C, int HW, int relu);
/* xhat = (x - mean) * invstd; g[c] += sum of dy, g[C + c] += sum of dy * xhat.
 * beta: NULL, or a ReLU follows (fused) and dy is the gradient of its output
 * max(y, 0), y = batchnorm_apply's output before the ReLU with these gamma
 * and beta (recomputed from x): dy counts as 0 where y is not > 0
 * (relu_backward's rule; the same bits as a separate ReLU). */
void batchnorm_grad_sums(double *g, const float *dy, const float *x, const float *mean, const float *invstd,
                         const float *gamma, const float *beta, int rows, int C, int HW);
/* dx WRITTEN = gamma * invstd * (dy - g[c] / N - xhat * g[C + c] / N), with g
 * the gradient sums over all N = rows * HW (over every rank) values of a
 * channel; g = 0 gives inference's dx = gamma * invstd * dy. beta as in
 * batchnorm_grad_sums. */
void batchnorm_backward_input(float *dx, const float *dy, const float *x, const float *mean,
                              const float *invstd, const float *gamma, const float *beta, const double *g,
                              double N, int rows, int C, int HW);

/* The block batch norm + ReLU + 2 x 2 stride-2 max pooling (floor mode) on
 * planes of H x W <= BN_POOL_MAX_HW values: y and idx (rows, C, H / 2,
 * W / 2) as batchnorm_apply(relu = 1) then maxpool_forward would give them,
 * without storing the H x W output; dy and y below are the pooled gradient
 * and output, idx the argmax: the same bits as batchnorm_grad_sums and
 * batchnorm_backward_input on the gradient maxpool_backward would give and
 * the ReLU's H x W output. */
#define BN_POOL_MAX_HW 4096
void batchnorm_apply_pool(float *y, int32_t *idx, const float *x, const float *mean, const float *invstd,
                          const float *gamma, const float *beta, int rows, int C, int H, int W);
void batchnorm_grad_sums_pool(double *g, const float *dy, const float *y, const int32_t *idx, const float *x,
                              const float *mean, const float *invstd, int rows, int C, int H, int W);
void batchnorm_backward_input_pool(float *dx, const float *dy, const float *y, const int32_t *idx,
                                   const float *x, const float *mean, const float *invstd, const float *gamma,
                                   const double *g, double N, int rows, int C, int H, int W);
#endif
