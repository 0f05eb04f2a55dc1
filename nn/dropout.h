/* dropout: inverted dropout whose mask needs no stored generator state:
 * element e of a row is dropped iff a hash of (key, e) falls below p, the
 * key a hash of (seed, step, node, the row's position in the global batch).
 * Any number of ranks, and a resumed run, draw the same masks. */
#ifndef SIAMESE_DROPOUT_H
#define SIAMESE_DROPOUT_H

#include <stddef.h>
#include <stdint.h>

uint64_t dropout_key(uint64_t seed, uint64_t step, uint64_t node, uint64_t position);
/* One row of n: mask[e] = kept, y = kept ? x / (1 - p) : 0 (y may equal x). */
void dropout_forward(float *y, uint8_t *mask, const float *x, size_t n, uint64_t key, float p);
/* dx WRITTEN = mask ? dy / (1 - p) : 0 (dx may equal dy); whole tensors. */
void dropout_backward(float *dx, const float *dy, const uint8_t *mask, size_t n, float p);

#endif
