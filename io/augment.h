/* augment: random distortions of training images, drawn per image from
 * rng_seed_item(seed, RNG_AUGMENT, step, position in the global batch), so
 * they do not depend on the rank count or on which thread applies them.
 * Koch et al.'s affine distortions (rotation, shear, scale, translation,
 * each applied with its own probability), a horizontal mirror and a random
 * crop of the padded image, composed into one affine map about the image
 * centre and resampled bilinearly (masks: nearest). Pure functions. */
#ifndef SIAMESE_AUGMENT_H
#define SIAMESE_AUGMENT_H

#include <stdint.h>

/* The [augment] config section. A component is off when its range is 0
 * (scale: scale_min = scale_max = 1) or its probability is 0. */
typedef struct AugmentSpec {
    double rotate, rotate_p;              /* angle uniform in [-rotate, rotate] degrees */
    double shear, shear_p;                /* rho_x, rho_y uniform in [-shear, shear] */
    double scale_min, scale_max, scale_p; /* s_x, s_y uniform in [scale_min, scale_max] */
    double translate, translate_p;        /* t_x, t_y uniform in [-translate, translate] pixels */
    double hflip;                         /* probability of a left-right mirror */
    long crop_pad; /* pad by this many pixels, crop a random H x W window: integer shift */
    long fill;     /* pixel value (0..255) wherever the source image is not */
} AugmentSpec;

/* Koch et al.'s distortions: rotation 10 degrees, shear 0.3, scale
 * 0.8-1.2, translation 2 pixels, each with probability 0.5; no mirror, no
 * crop, fill 0. */
AugmentSpec augment_spec_koch(void);

/* 1 if any component can change an image. */
int augment_enabled(const AugmentSpec *a);

/* One image's transform: source position = m (destination - centre - t)
 * + centre, in pixels, x right and y down; identity when nothing fired. */
typedef struct AugmentMap {
    double m[4]; /* row-major 2x2 */
    double t[2]; /* (x, y) */
    int identity;
} AugmentMap;

/* The map of image `item` (its position in the global batch) of global step
 * `step`. Draws, in this order, whatever fires: u, angle; u, rho_x, rho_y;
 * u, s_x, s_y; u, t_x, t_y; u (mirror); the crop shift (x, y). The forward
 * map is destination - c = Mirror Rot Shear Scale (source - c) + t with
 * Shear = [[1, rho_x], [rho_y, 1]], t = translation + crop shift. */
void augment_draw(AugmentMap *out, const AugmentSpec *a, uint64_t seed, uint64_t step, uint64_t item);

/* The map of view `view` (>= 1) of sample `id` in test-time augmentation
 * (siamese eval --tta): augment_draw's draws from the RNG_TTA stream keyed
 * by (seed, view, id), apart from every training step's. */
void augment_draw_view(AugmentMap *out, const AugmentSpec *a, uint64_t seed, uint64_t view, uint64_t id);

/* Resamples one image: dst[c][y][x] = bilinear interpolation of lut[src]
 * at the source position of (x, y) (pixel centres at integers; a tap
 * outside the image reads lut[fill]). The identity map copies lut[src]
 * bit for bit. lut maps a byte to its normalised float. */
void augment_image(float *dst,         /* (C, H, W) */
                   const uint8_t *src, /* (C, H, W) */
                   const float *lut,   /* (256) */
                   const AugmentMap *map, int fill, int C, int H, int W);

/* The same map for a mask: nearest source pixel, 0 outside. */
void augment_mask(uint8_t *dst,       /* (H, W) */
                  const uint8_t *src, /* (H, W) */
                  const AugmentMap *map, int H, int W);

#endif
