/* pairgen: seeded, balanced pairs and triplets drawn from a label array, for
 * `siamese pairs` (written with ds_write_pairs / ds_write_triplets). Pure
 * functions of (labels, n, seed); no I/O.
 *
 * Pairs: record i is a same-class pair when i is even, a different-class pair
 * when odd (ceil(n/2) same, floor(n/2) different, balanced in every prefix).
 * A same pair draws its first id uniformly among the samples of classes with
 * at least 2 samples and its second uniformly among the other samples of that
 * class; a different pair draws its first id uniformly among all samples and
 * its second uniformly among the samples of the other classes. Triplets: the
 * anchor as a same pair's first id, the positive as its second, the negative
 * as a different pair's second. Classes with fewer than 2 samples never give
 * an anchor (no positive exists) but do serve as negatives and as the first
 * id of different pairs. Randomness: rng_seed(seed, RNG_PAIRS, 0) for pairs,
 * id 1 for triplets. */
#ifndef SIAMESE_PAIRGEN_H
#define SIAMESE_PAIRGEN_H

#include <stdint.h>

#include "../nn/util.h"

/* labels: (count) values in 0..classes-1. Fails (-1, e says why) when no
 * class has 2 samples or fewer than 2 classes have samples. */
int pairgen_pairs(uint32_t *a, uint32_t *b, uint8_t *same /* each (n) */, uint64_t n, const int32_t *labels,
                  uint64_t count, uint32_t classes, uint64_t seed, Err *e);
int pairgen_triplets(uint32_t *t /* (n, 3): anchor, positive, negative */, uint64_t n, const int32_t *labels,
                     uint64_t count, uint32_t classes, uint64_t seed, Err *e);

#endif
