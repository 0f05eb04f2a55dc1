/* image: decodes one grey-scale image from a PGM (P5 binary or P2 ascii, any
 * maxval) or PNG file (libpng: 1/2/4/8/16-bit grey, grey+alpha, RGB, RGBA,
 * palette) into 8-bit pixels, resizes by exact area averaging, and writes
 * 8-bit binary PGM. The format is found from the file's magic bytes, not its
 * name. Colour becomes grey by BT.601 luma, alpha is dropped (not composited),
 * 16-bit samples are rounded to 8 bits. Pixels are never inverted here. */
#ifndef SIAMESE_IMAGE_H
#define SIAMESE_IMAGE_H

#include <stdint.h>

#include "../nn/util.h"

#define IMAGE_MAX_SIDE 65535 /* the dataset record stores sides as uint16 */

typedef struct Image {
    uint32_t height, width;
    uint8_t *pixels; /* (height, width), row-major; owned, free with image_free */
} Image;

/* Decodes PATH into img (pixels allocated). Returns 0, or -1 with e naming the
 * file and the fault ("not a PGM or PNG image", "truncated", ...). On failure
 * img holds no memory. */
int image_load(Image *img, const char *path, Err *e);
void image_free(Image *img);

/* Area-average (box filter) resampling: destination pixel (y, x) is the mean
 * of the source over the rectangle it covers, with fractional source pixels
 * weighted by the covered fraction, computed exactly in integers and rounded
 * half up. Works for any sizes (up-sampling replicates, blending the source
 * pixels a destination pixel straddles). Deterministic on every machine. */
void image_resize(uint8_t *dst /* (dh, dw) */, uint32_t dh, uint32_t dw, const uint8_t *src /* (sh, sw) */,
                  uint32_t sh, uint32_t sw);

/* Writes an 8-bit binary PGM (P5, maxval 255). 0 or -1 with e. */
int image_write_pgm(const char *path, const uint8_t *pixels /* (h, w) */, uint32_t h, uint32_t w, Err *e);

#endif
