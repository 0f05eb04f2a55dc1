/* gen_scale: writes a synthetic idx pair (images 0x00000803, labels
 * 0x00000c01: one big-endian int32 per label) of N 28x28 images in C
 * classes, for the scale figures of docs/scale.md (bench/scale.sh imports
 * it with siamese import --format idx). Sample i has class i % C, so every
 * class has N / C or N / C + 1 samples; its pixels are a few rectangles
 * drawn from Rng(seed, RNG_SYNTH, i), so deflate has something to do.
 *   usage: gen_scale N CLASSES IMAGES_OUT LABELS_OUT [SEED] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/util.h"

#define SIDE 28

static void be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static void draw(uint8_t *px, uint64_t seed, uint64_t i) {
    Rng r;
    rng_seed(&r, seed, RNG_SYNTH, i);
    memset(px, 0, SIDE * SIDE);
    int n = 1 + (int)rng_below(&r, 3);
    for (int k = 0; k < n; k++) {
        int y0 = (int)rng_below(&r, SIDE - 4), x0 = (int)rng_below(&r, SIDE - 4);
        int h = 2 + (int)rng_below(&r, (uint64_t)(SIDE - y0 - 2)),
            w = 2 + (int)rng_below(&r, (uint64_t)(SIDE - x0 - 2));
        uint8_t v = (uint8_t)(64 + rng_below(&r, 192));
        for (int y = y0; y < y0 + h && y < SIDE; y++)
            memset(px + y * SIDE + x0, v, (size_t)(x0 + w <= SIDE ? w : SIDE - x0));
    }
}

static FILE *open_out(const char *path) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "gen_scale: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    return f;
}

int main(int argc, char **argv) {
    if (argc < 5 || argc > 6) {
        fprintf(stderr, "usage: gen_scale N CLASSES IMAGES_OUT LABELS_OUT [SEED]\n");
        return 2;
    }
    char *end;
    unsigned long long n = strtoull(argv[1], &end, 10), classes = strtoull(argv[2], &end, 10);
    uint64_t seed = argc == 6 ? strtoull(argv[5], &end, 10) : 1;
    if (n < 1 || n > 0xffffffffu || classes < 1 || classes > n) {
        fprintf(stderr, "gen_scale: N must be 1..2^32-1 and CLASSES 1..N\n");
        return 2;
    }
    FILE *fi = open_out(argv[3]), *fl = open_out(argv[4]);
    uint8_t h[16], px[SIDE * SIDE], lab[4];
    be32(h, 0x00000803u), be32(h + 4, (uint32_t)n), be32(h + 8, SIDE), be32(h + 12, SIDE);
    fwrite(h, 1, 16, fi);
    be32(h, 0x00000c01u), be32(h + 4, (uint32_t)n);
    fwrite(h, 1, 8, fl);
    for (uint64_t i = 0; i < n; i++) {
        draw(px, seed, i);
        be32(lab, (uint32_t)(i % classes));
        if (fwrite(px, 1, sizeof px, fi) != sizeof px || fwrite(lab, 1, 4, fl) != 4) {
            fprintf(stderr, "gen_scale: write failed: %s\n", strerror(errno));
            return 1;
        }
    }
    if (fclose(fi) || fclose(fl)) {
        fprintf(stderr, "gen_scale: close failed: %s\n", strerror(errno));
        return 1;
    }
    printf("gen_scale: %llu images 28x28, %llu classes: %s, %s\n", n, classes, argv[3], argv[4]);
    return 0;
}
