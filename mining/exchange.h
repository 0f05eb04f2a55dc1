/* exchange: the number format in which ranks exchange their embeddings for
 * global mining ([mining] exchange): fp32 as computed, or 16-bit floats
 * (bf16: 8 bits of mantissa, fp16: 11) that halve the allgather. Packing
 * rounds to nearest, ties to even (NaN stays NaN, fp16 overflows to inf);
 * unpacking is exact. Pure functions; the rounding effect on the losses is
 * in docs/mining-scale.md. */
#ifndef SIAMESE_EXCHANGE_H
#define SIAMESE_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>

#include "mining.h"

/* Bytes per exchanged float: 4 (fp32) or 2. */
size_t exchange_bytes(ExchangeFormat f);

/* The unit roundoff u, the largest relative error of packing a value in the
 * normal range: 2^-8 (bf16: 8 bits of precision), 2^-11 (fp16: 11 bits), 0
 * (fp32). fp16 values below 2^-14 are subnormal: absolute error <= 2^-25. */
double exchange_unit_roundoff(ExchangeFormat f);

/* out (n values of exchange_bytes(f) bytes) = x rounded to the format. */
void exchange_pack(void *out, const float *x, size_t n, ExchangeFormat f);
/* out (n floats) = the packed values, exactly. out may not overlap in. */
void exchange_unpack(float *out, const void *in, size_t n, ExchangeFormat f);

#endif
