/* Tests of nn/util: checked parsing and the generator's determinism and
 * distribution. */
#include <stdlib.h>
#include <string.h>

#include "../nn/util.h"
#include "test.h"

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(void) {
    long l;
    double d;
    uint64_t u;
    CHECK(parse_long("42", 0, 100, &l) == 0 && l == 42, "parse 42");
    CHECK(parse_long("42x", 0, 100, &l) == -1, "junk rejected");
    CHECK(parse_long("", 0, 100, &l) == -1, "empty rejected");
    CHECK(parse_long("101", 0, 100, &l) == -1, "range");
    CHECK(parse_long("99999999999999999999999", 0, 100, &l) == -1, "overflow");
    CHECK(parse_double("0.25", 0, 1, &d) == 0 && d == 0.25, "double");
    CHECK(parse_double("nan", -1e9, 1e9, &d) == -1, "nan rejected");
    CHECK(parse_double("1e-3 ", 0, 1, &d) == -1, "trailing space rejected");
    CHECK(parse_u64("18446744073709551615", &u) == 0 && u == UINT64_MAX, "u64 max");
    CHECK(parse_u64("-1", &u) == -1, "negative u64 rejected");

    Rng a, b, c;
    rng_seed(&a, 7, RNG_TEST, 3);
    rng_seed(&b, 7, RNG_TEST, 3);
    rng_seed(&c, 7, RNG_TEST, 4);
    int same = 1, diff = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = rng_u64(&a), y = rng_u64(&b), z = rng_u64(&c);
        same &= x == y;
        diff += x != z;
    }
    CHECK(same, "same seed, same stream");
    CHECK(diff == 100, "other id, other stream (%d/100 differ)", diff);

    /* Mean and variance of the normal draw, and rng_below's range. */
    double s = 0, s2 = 0;
    int counts[7] = {0};
    for (int i = 0; i < 200000; i++) {
        double x = rng_normal(&a);
        s += x;
        s2 += x * x;
        counts[rng_below(&a, 7)]++;
    }
    s /= 200000;
    s2 = s2 / 200000 - s * s;
    CHECK(fabs(s) < 0.01, "normal mean %g", s);
    CHECK(fabs(s2 - 1) < 0.02, "normal variance %g", s2);
    int ok = 1;
    for (int i = 0; i < 7; i++) ok &= counts[i] > 200000 / 7 * 0.95 && counts[i] < 200000 / 7 * 1.05;
    CHECK(ok, "rng_below roughly uniform");

    uint32_t v[50], seen[50] = {0};
    for (uint32_t i = 0; i < 50; i++) v[i] = i;
    rng_shuffle_u32(&a, v, 50);
    for (int i = 0; i < 50; i++) seen[v[i]]++;
    ok = 1;
    for (int i = 0; i < 50; i++) ok &= seen[i] == 1;
    CHECK(ok, "shuffle is a permutation");
    /* rng_pick_u32: a permutation whose first 3 entries are each value about
     * equally often (3/8 of the draws). */
    int first3[8] = {0};
    for (int t = 0; t < 40000; t++) {
        uint32_t w[8] = {0, 1, 2, 3, 4, 5, 6, 7}, sw[8] = {0};
        rng_pick_u32(&a, w, 8, 3);
        for (int i = 0; i < 8; i++) sw[w[i]]++;
        for (int i = 0; i < 8; i++) ok &= sw[i] == 1;
        for (int i = 0; i < 3; i++) first3[w[i]]++;
    }
    for (int i = 0; i < 8; i++) ok &= abs(first3[i] - 15000) < 600;
    CHECK(ok, "rng_pick_u32 permutes and picks uniformly");
    /* rng_seed_item: a pure function of (seed, purpose, step, item); first
     * draws over a grid of neighbouring keys (both orders of each (step,
     * item)) are all distinct, and distinct from plain rng_seed ids. */
    Rng d1, d2;
    rng_seed_item(&d1, 9, RNG_AUGMENT, 12, 34);
    rng_seed_item(&d2, 9, RNG_AUGMENT, 12, 34);
    CHECK(rng_u64(&d1) == rng_u64(&d2), "rng_seed_item: same key, same stream");
    enum { G = 64 };
    static uint64_t first[4 * G * G];
    int nf = 0;
    for (uint64_t st = 0; st < G; st++)
        for (uint64_t it = 0; it < G; it++) {
            rng_seed_item(&d1, 9, RNG_AUGMENT, st, it);
            first[nf++] = rng_u64(&d1);
            rng_seed_item(&d1, 9, RNG_DROPOUT, st, it);
            first[nf++] = rng_u64(&d1);
            rng_seed_item(&d1, 10, RNG_AUGMENT, st, it);
            first[nf++] = rng_u64(&d1);
            rng_seed(&d1, 9, RNG_AUGMENT, st * G + it); /* a plain rng_seed id */
            first[nf++] = rng_u64(&d1);
        }
    qsort(first, (size_t)nf, sizeof first[0], cmp_u64);
    int dup = 0;
    for (int i = 1; i < nf; i++) dup += first[i] == first[i - 1];
    CHECK(dup == 0, "rng_seed_item: %d first draws, %d repeated over steps, items, purposes, seeds", nf, dup);
    CHECK(hash64("abc", 3, HASH64_INIT) != hash64("abd", 3, HASH64_INIT), "hash differs");
    /* sum_floats (lanes added pairwise) against one running sum in double */
    {
        Rng sr;
        rng_seed(&sr, 3, RNG_TEST, 0);
        static float v[4099];
        for (int i = 0; i < 4099; i++) v[i] = 2.0f + rng_uniform(&sr);
        const size_t ns[] = {0, 1, 15, 16, 17, 1000, 4099};
        for (int k = 0; k < 7; k++) {
            double ref = 0;
            for (size_t i = 0; i < ns[k]; i++) ref += v[i];
            double got = sum_floats(v, ns[k]);
            CHECK(fabs(got - ref) <= 1e-13 * fmax(ref, 1.0), "sum_floats n %zu: %.17g vs %.17g", ns[k], got,
                  ref);
        }
        double l[SUM_LANES];
        for (int j = 0; j < SUM_LANES; j++) l[j] = (double)(1 << j);
        CHECK(sum_lanes_total(l) == (double)((1 << SUM_LANES) - 1), "sum_lanes_total adds every lane once");
    }
    return test_finish();
}
