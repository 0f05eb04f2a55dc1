/* exchange: see exchange.h. bf16 and fp16 by rounding the float's bits to
 * nearest, ties to even (IEEE's default), in plain integer code: clang has
 * no _Float16 on every x86-64 target (the fuzz build), and the conversion is
 * a small share of the exchange. */
#include "exchange.h"

#include <math.h>
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

/* fp16: 1 sign, 5 exponent (bias 15), 10 mantissa bits; overflow to
 * infinity, subnormals below 2^-14. */
static uint16_t fp16_of(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;  /* NaN stays a (quiet) NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00u; /* 65520 and above round to infinity */
    if (a < 0x38800000u) {                       /* below 2^-14: m x 2^-24, m <= 1024 */
        float f;
        memcpy(&f, &a, sizeof f);
        return sign | (uint16_t)lrintf(f * 16777216.0f); /* exact scaling, rounded to even */
    }
    a += 0xfffu + ((a >> 13) & 1u); /* to nearest, ties to even; a carry moves the exponent */
    return sign | (uint16_t)((a >> 13) - (112u << 10));
}

static float float_of_fp16(uint16_t h) {
    uint32_t s = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
    float x;
    if (e == 0) {
        x = (float)m * (1.0f / 16777216.0f);
        return s ? -x : x;
    }
    u = e == 31 ? s | 0x7f800000u | (m << 13) : s | ((e + 112u) << 23) | (m << 13);
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
        uint16_t *o = out;
        for (size_t i = 0; i < n; i++) o[i] = fp16_of(x[i]);
    }
}

void exchange_unpack(float *out, const void *in, size_t n, ExchangeFormat f) {
    if (f == EXCHANGE_FP32) {
        memcpy(out, in, n * sizeof *out);
    } else if (f == EXCHANGE_BF16) {
        const uint16_t *h = in;
        for (size_t i = 0; i < n; i++) out[i] = float_of_bf16(h[i]);
    } else {
        const uint16_t *h = in;
        for (size_t i = 0; i < n; i++) out[i] = float_of_fp16(h[i]);
    }
}
