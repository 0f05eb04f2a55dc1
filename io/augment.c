/* augment: see augment.h. Coordinates in double (a few per row), pixels in
 * float; every image is a pure function of (spec, seed, step, item, source
 * bytes), so any rank or thread computes the same bits. */
#include "augment.h"

#include <math.h>
#include <string.h>

#include "../nn/util.h"

AugmentSpec augment_spec_koch(void) {
    return (AugmentSpec){.rotate = 10,
                         .rotate_p = 0.5,
                         .shear = 0.3,
                         .shear_p = 0.5,
                         .scale_min = 0.8,
                         .scale_max = 1.2,
                         .scale_p = 0.5,
                         .translate = 2,
                         .translate_p = 0.5};
}

int augment_enabled(const AugmentSpec *a) {
    return (a->rotate > 0 && a->rotate_p > 0) || (a->shear > 0 && a->shear_p > 0) ||
           ((a->scale_min != 1 || a->scale_max != 1) && a->scale_p > 0) ||
           (a->translate > 0 && a->translate_p > 0) || a->hflip > 0 || a->crop_pad > 0;
}

/* Uniform in [lo, hi). */
static double uniform(Rng *r, double lo, double hi) { return lo + (hi - lo) * rng_uniform_d(r); }

static int fires(Rng *r, double range_on, double p) { return range_on && p > 0 && rng_uniform_d(r) < p; }

static void draw_from(AugmentMap *out, const AugmentSpec *a, Rng *rp);

void augment_draw(AugmentMap *out, const AugmentSpec *a, uint64_t seed, uint64_t step, uint64_t item) {
    Rng r;
    rng_seed_item(&r, seed, RNG_AUGMENT, step, item);
    draw_from(out, a, &r);
}

void augment_draw_view(AugmentMap *out, const AugmentSpec *a, uint64_t seed, uint64_t view, uint64_t id) {
    Rng r;
    rng_seed_item(&r, seed, RNG_TTA, view, id);
    draw_from(out, a, &r);
}

static void draw_from(AugmentMap *out, const AugmentSpec *a, Rng *rp) {
    Rng r = *rp;
    double ang = 0, rx = 0, ry = 0, sx = 1, sy = 1, tx = 0, ty = 0;
    int fired = 0, flip = 0;
    if (fires(&r, a->rotate > 0, a->rotate_p)) {
        ang = uniform(&r, -a->rotate, a->rotate) * (M_PI / 180.0);
        fired = 1;
    }
    if (fires(&r, a->shear > 0, a->shear_p)) {
        rx = uniform(&r, -a->shear, a->shear);
        ry = uniform(&r, -a->shear, a->shear);
        fired = 1;
    }
    if (fires(&r, a->scale_min != 1 || a->scale_max != 1, a->scale_p)) {
        sx = uniform(&r, a->scale_min, a->scale_max);
        sy = uniform(&r, a->scale_min, a->scale_max);
        fired = 1;
    }
    if (fires(&r, a->translate > 0, a->translate_p)) {
        tx = uniform(&r, -a->translate, a->translate);
        ty = uniform(&r, -a->translate, a->translate);
        fired = 1;
    }
    if (a->hflip > 0 && rng_uniform_d(&r) < a->hflip) flip = fired = 1;
    if (a->crop_pad > 0) {
        uint64_t n = 2 * (uint64_t)a->crop_pad + 1;
        double dx = (double)rng_below(&r, n) - (double)a->crop_pad;
        double dy = (double)rng_below(&r, n) - (double)a->crop_pad;
        tx += dx, ty += dy;
        fired |= dx != 0 || dy != 0;
    }
    /* Forward A = Mirror Rot Shear Scale; out->m = A^-1. */
    double c = cos(ang), s = sin(ang);
    double rs[4] = {c + -s * ry, c * rx + -s, s + c * ry, s * rx + c}; /* Rot Shear */
    double f[4] = {rs[0] * sx, rs[1] * sy, rs[2] * sx, rs[3] * sy};    /* ... Scale */
    if (flip) f[0] = -f[0], f[1] = -f[1];
    double det = f[0] * f[3] - f[1] * f[2];
    ASSERT(det != 0); /* |shear| < 1 and scale > 0 (config bounds) */
    out->m[0] = f[3] / det, out->m[1] = -f[1] / det;
    out->m[2] = -f[2] / det, out->m[3] = f[0] / det;
    out->t[0] = tx, out->t[1] = ty;
    out->identity = !fired;
}

void augment_image(float *dst, const uint8_t *src, const float *lut, const AugmentMap *map, int fill, int C,
                   int H, int W) {
    size_t hw = (size_t)H * W;
    if (map->identity) {
        for (size_t j = 0; j < (size_t)C * hw; j++) dst[j] = lut[src[j]];
        return;
    }
    const double *m = map->m;
    double cx = 0.5 * (W - 1), cy = 0.5 * (H - 1);
    float out = lut[fill & 255];
    for (int y = 0; y < H; y++) {
        double dy = y - cy - map->t[1];
        double bx = m[1] * dy + cx, by = m[3] * dy + cy;
        for (int x = 0; x < W; x++) {
            double dx = x - cx - map->t[0];
            double px = m[0] * dx + bx, py = m[2] * dx + by;
            double fx0 = floor(px), fy0 = floor(py);
            float fx = (float)(px - fx0), fy = (float)(py - fy0);
            size_t o = (size_t)y * W + (size_t)x;
            if (!(fx0 >= -1 && fx0 < W && fy0 >= -1 && fy0 < H)) { /* every tap outside (or NaN) */
                for (int c = 0; c < C; c++) dst[c * hw + o] = out;
                continue;
            }
            int x0 = (int)fx0, y0 = (int)fy0;
            int in_x0 = x0 >= 0, in_x1 = x0 + 1 < W, in_y0 = y0 >= 0, in_y1 = y0 + 1 < H;
            for (int c = 0; c < C; c++) {
                const uint8_t *p = src + c * hw;
                float v00 = in_y0 && in_x0 ? lut[p[(size_t)y0 * W + x0]] : out;
                float v01 = in_y0 && in_x1 ? lut[p[(size_t)y0 * W + x0 + 1]] : out;
                float v10 = in_y1 && in_x0 ? lut[p[(size_t)(y0 + 1) * W + x0]] : out;
                float v11 = in_y1 && in_x1 ? lut[p[(size_t)(y0 + 1) * W + x0 + 1]] : out;
                float top = v00 * (1.0f - fx) + v01 * fx, bot = v10 * (1.0f - fx) + v11 * fx;
                dst[c * hw + o] = top * (1.0f - fy) + bot * fy;
            }
        }
    }
}

void augment_mask(uint8_t *dst, const uint8_t *src, const AugmentMap *map, int H, int W) {
    if (map->identity) {
        memcpy(dst, src, (size_t)H * W);
        return;
    }
    const double *m = map->m;
    double cx = 0.5 * (W - 1), cy = 0.5 * (H - 1);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double dx = x - cx - map->t[0], dy = y - cy - map->t[1];
            double px = floor(m[0] * dx + (m[1] * dy + cx) + 0.5),
                   py = floor(m[2] * dx + (m[3] * dy + cy) + 0.5);
            int in = px >= 0 && px < W && py >= 0 && py < H;
            dst[(size_t)y * W + x] = in ? src[(size_t)py * W + (size_t)px] : 0;
        }
}
