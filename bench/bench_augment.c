/* bench_augment: microseconds per image of the [augment] work the prefetch
 * thread does (augment_draw + augment_image), Koch's distortions, for 1x28x28,
 * 1x105x105 and 3x32x32 images, against the plain decode (the byte -> float
 * table copy the identity map takes). One thread; median of the repetitions.
 * Usage: bench_augment [reps] */
#include <stdio.h>
#include <stdlib.h>

#include "../io/augment.h"
#include "../nn/util.h"

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, c = *(const double *)y;
    return (a > c) - (a < c);
}

int main(int argc, char **argv) {
    long reps = 21;
    if (argc > 1 && parse_long(argv[1], 1, 100000, &reps) != 0)
        FATAL("reps: want 1..100000, got '%s'", argv[1]);
    const AugmentSpec koch = augment_spec_koch();
    const int shapes[3][3] = {{1, 28, 28}, {1, 105, 105}, {3, 32, 32}};
    enum { IMAGES = 256 };
    float lut[256];
    for (int v = 0; v < 256; v++) lut[v] = ((float)v / 255.0f - 0.1f) / 0.3f;
    printf("%-10s %14s %14s %12s\n", "shape", "koch us/img", "plain us/img", "ratio");
    for (int s = 0; s < 3; s++) {
        int C = shapes[s][0], H = shapes[s][1], W = shapes[s][2];
        size_t img = (size_t)C * H * W;
        uint8_t *src = xmalloc(img * IMAGES);
        float *dst = xaligned_floats(img);
        Rng r;
        rng_seed(&r, 1, RNG_TEST, 5);
        for (size_t i = 0; i < img * IMAGES; i++) src[i] = (uint8_t)rng_below(&r, 256);
        double *t[2] = {xmalloc(sizeof(double) * (size_t)reps), xmalloc(sizeof(double) * (size_t)reps)};
        volatile float sink = 0;
        for (long q = 0; q < reps; q++)
            for (int plain = 0; plain < 2; plain++) {
                double t0 = now_seconds();
                for (int i = 0; i < IMAGES; i++) {
                    AugmentMap m;
                    augment_draw(&m, &koch, 1, (uint64_t)q, (uint64_t)i);
                    if (plain) m.identity = 1;
                    augment_image(dst, src + (size_t)i * img, lut, &m, 0, C, H, W);
                    sink += dst[img / 2];
                }
                t[plain][q] = (now_seconds() - t0) / IMAGES;
            }
        qsort(t[0], (size_t)reps, sizeof(double), cmp_double);
        qsort(t[1], (size_t)reps, sizeof(double), cmp_double);
        char name[32];
        snprintf(name, sizeof name, "%dx%dx%d", C, H, W);
        printf("%-10s %14.2f %14.2f %12.1f\n", name, 1e6 * t[0][reps / 2], 1e6 * t[1][reps / 2],
               t[0][reps / 2] / t[1][reps / 2]);
        free(src), free(dst), free(t[0]), free(t[1]);
    }
    return 0;
}
