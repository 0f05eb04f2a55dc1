/* dropout: the hash is splitmix64's finaliser, chained over the key parts;
 * the top 24 bits of hash(key + e) give a uniform float in [0, 1). */
#include "dropout.h"

static uint64_t mix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t dropout_key(uint64_t seed, uint64_t step, uint64_t node, uint64_t position) {
    return mix(mix(mix(mix(seed) ^ step) ^ node) ^ position);
}

void dropout_forward(float *y, uint8_t *mask, const float *x, size_t n, uint64_t key, float p) {
    float scale = 1.0f / (1.0f - p);
    for (size_t e = 0; e < n; e++) {
        float u = (float)(mix(key + e) >> 40) * (1.0f / 16777216.0f);
        mask[e] = u >= p;
        y[e] = mask[e] ? x[e] * scale : 0.0f;
    }
}

void dropout_backward(float *dx, const float *dy, const uint8_t *mask, size_t n, float p) {
    float scale = 1.0f / (1.0f - p);
    for (size_t e = 0; e < n; e++) dx[e] = mask[e] ? dy[e] * scale : 0.0f;
}
