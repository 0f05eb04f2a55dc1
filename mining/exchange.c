/* exchange: see exchange.h. bf16 by rounding the float's bits; fp16 by the
 * compiler's _Float16 conversion (IEEE round to nearest even; F16C
 * instructions with -march=native). */
#include "exchange.h"

#include <string.h>

#include "../nn/util.h"

size_t exchange_bytes(ExchangeFormat f) { return f == EXCHANGE_FP32 ? 4 : 2; }

double exchange_unit_roundoff(ExchangeFormat f) {
    return f == EXCHANGE_BF16 ? 1.0 / 256 : f == EXCHANGE_FP16 ? 1.0 / 2048 : 0.0;
}

static uint16_t bf16_of(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN stays a (quiet) NaN */
    u += 0x7fffu + ((u >> 16) & 1u);                                          /* to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

static float float_of_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

void exchange_pack(void *out, const float *x, size_t n, ExchangeFormat f) {
    if (f == EXCHANGE_FP32) {
        memcpy(out, x, n * sizeof *x);
    } else if (f == EXCHANGE_BF16) {
        uint16_t *o = out;
        for (size_t i = 0; i < n; i++) o[i] = bf16_of(x[i]);
    } else {
        _Float16 *o = out;
        for (size_t i = 0; i < n; i++) o[i] = (_Float16)x[i];
    }
}

void exchange_unpack(float *out, const void *in, size_t n, ExchangeFormat f) {
    if (f == EXCHANGE_FP32) {
        memcpy(out, in, n * sizeof *out);
    } else if (f == EXCHANGE_BF16) {
        const uint16_t *h = in;
        for (size_t i = 0; i < n; i++) out[i] = float_of_bf16(h[i]);
    } else {
        const _Float16 *h = in;
        for (size_t i = 0; i < n; i++) out[i] = (float)h[i];
    }
}
