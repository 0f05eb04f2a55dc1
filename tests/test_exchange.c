/* Tests of mining/exchange: bf16 and fp16 packing against a reference
 * worked out in double (the two neighbours in the format, the nearer one,
 * ties to the even one), hand-picked ties and overflow, NaN and infinities,
 * the unit roundoff bound on random normal values, fp32 as a copy. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "../mining/exchange.h"
#include "../nn/util.h"
#include "test.h"

/* The value of x rounded to a binary format with `prec` bits of precision
 * and exponents down to emin (subnormals below) and up to emax (inf above
 * the midpoint past the largest finite), ties to even: in double, exactly. */
static double ref_round(double x, int prec, int emin, int emax) {
    if (x == 0 || !isfinite(x)) return x;
    int e;
    frexp(fabs(x), &e); /* |x| in [2^(e-1), 2^e) */
    int ex = e - 1 < emin ? emin : e - 1;
    double ulp = ldexp(1.0, ex - (prec - 1)), q = x / ulp, f = floor(q), r = q - f;
    double m = r > 0.5 || (r == 0.5 && fmod(f, 2.0) != 0) ? f + 1 : f;
    double y = m * ulp, max = ldexp(2.0 - ldexp(1.0, 1 - prec), emax);
    return fabs(y) > max ? copysign(INFINITY, x) : y;
}

static float round_trip(float x, ExchangeFormat f) {
    uint16_t h[1];
    float y;
    exchange_pack(h, &x, 1, f);
    exchange_unpack(&y, h, 1, f);
    return y;
}

int main(void) {
    Rng r;
    rng_seed(&r, 18, RNG_TEST, 16);
    CHECK(exchange_bytes(EXCHANGE_FP32) == 4 && exchange_bytes(EXCHANGE_BF16) == 2 &&
              exchange_bytes(EXCHANGE_FP16) == 2,
          "bytes per value");
    const int prec[3] = {24, 8, 11}, emin[3] = {-126, -126, -14}, emax[3] = {127, 127, 15};
    for (int f = 1; f <= 2; f++) {
        long bad = 0, over = 0;
        double worst = 0;
        for (int i = 0; i < 200000; i++) {
            uint32_t u = (uint32_t)rng_u64(&r);
            float x;
            memcpy(&x, &u, sizeof x);
            if (i % 2) x = (float)(rng_normal(&r) * ldexp(1.0, (int)rng_below(&r, 40) - 20));
            if (isnan(x)) continue;
            double want = ref_round(x, prec[f], emin[f], emax[f]);
            float got = round_trip(x, (ExchangeFormat)f);
            bad += !(got == want || (isinf(got) && isinf(want) && (got > 0) == (want > 0)));
            if (isfinite(got) && fabs(x) >= ldexp(1.0, emin[f]))
                worst = fmax(worst, fabs(got - x) / fabs(x)),
                over += fabs(got - x) > exchange_unit_roundoff((ExchangeFormat)f) * fabs(x);
        }
        CHECK(bad == 0, "format %d: %ld values differ from the reference rounding", f, bad);
        CHECK(over == 0 && worst > 0.5 * exchange_unit_roundoff((ExchangeFormat)f),
              "format %d: worst relative error %.3g against u = %.3g", f, worst,
              exchange_unit_roundoff((ExchangeFormat)f));
    }
    /* Ties by hand: halfway between two neighbours goes to the even one. */
    CHECK(round_trip(1.0f + 0x1p-8f, EXCHANGE_BF16) == 1.0f, "bf16: 1 + 2^-8 -> 1");
    CHECK(round_trip(1.0f + 0x1p-7f + 0x1p-8f, EXCHANGE_BF16) == 1.0f + 0x1p-6f,
          "bf16: 1 + 3 2^-8 -> 1 + 2^-6");
    CHECK(round_trip(1.0f + 0x1p-11f, EXCHANGE_FP16) == 1.0f, "fp16: 1 + 2^-11 -> 1");
    CHECK(round_trip(1.0f + 0x1p-10f + 0x1p-11f, EXCHANGE_FP16) == 1.0f + 0x1p-9f,
          "fp16: 1 + 3 2^-11 -> 1 + 2^-9");
    CHECK(round_trip(65519.0f, EXCHANGE_FP16) == 65504.0f && isinf(round_trip(65520.0f, EXCHANGE_FP16)),
          "fp16: 65519 -> 65504, 65520 -> inf");
    CHECK(isinf(round_trip(FLT_MAX, EXCHANGE_BF16)), "bf16: FLT_MAX rounds up to inf");
    for (int f = 0; f <= 2; f++) {
        CHECK(isnan(round_trip(NAN, (ExchangeFormat)f)) && isinf(round_trip(-INFINITY, (ExchangeFormat)f)) &&
                  round_trip(-INFINITY, (ExchangeFormat)f) < 0 &&
                  signbit(round_trip(-0.0f, (ExchangeFormat)f)),
              "format %d: NaN, -inf and -0 kept", f);
    }
    float a[5] = {1.5f, -2.25f, 3.14159274f, 1e-30f, 7e30f}, b[5];
    uint32_t packed[5];
    exchange_pack(packed, a, 5, EXCHANGE_FP32);
    exchange_unpack(b, packed, 5, EXCHANGE_FP32);
    CHECK(memcmp(a, b, sizeof a) == 0 && exchange_unit_roundoff(EXCHANGE_FP32) == 0, "fp32: a copy");
    return test_finish();
}
