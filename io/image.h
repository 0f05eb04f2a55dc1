/* image: decodes one image from a PGM or PPM (P5/P6 binary or P2/P3 ascii,
 * any maxval), PNG (libpng: 1/2/4/8/16-bit grey, grey+alpha, RGB, RGBA,
 * palette) or JPEG file (libjpeg-turbo: grey or YCbCr) into 8-bit grey or
 * interleaved RGB pixels, or a 0/1 mask; resizes by exact area averaging, and
 * writes 8-bit PGM, PPM and PNG. The format is found from the file's magic
 * bytes, not its name. In grey mode colour becomes grey by BT.601 luma; in
 * colour mode grey is replicated to R = G = B. Alpha is dropped (not
 * composited), 16-bit samples are rounded to 8 bits. Pixels are never
 * inverted here. image_overlay_mask draws a mask over an image (the pictures
 * of `siamese segment`). A PGM/PPM file holds exactly one image: bytes after
 * its pixels (P2/P3: other than whitespace and comments) are refused, and
 * every number must end at whitespace or a comment ("0x4" is not a pixel). */
#ifndef SIAMESE_IMAGE_H
#define SIAMESE_IMAGE_H

#include <stdint.h>

#include "../nn/util.h"

#define IMAGE_MAX_SIDE 65535        /* the dataset record stores sides as uint16 */
#define IMAGE_MAX_PIXELS (1u << 28) /* of one decoded image */

typedef struct Image {
    uint32_t height, width;
    uint32_t channels; /* 1 (grey) or 3 (RGB, interleaved) */
    uint8_t *pixels;   /* (height, width, channels), row-major; owned, free with image_free */
} Image;

/* Decodes PATH into img as grey (channels 1; pixels allocated). Returns 0, or
 * -1 with e naming the file and the fault ("not a PGM, PNG or JPEG image",
 * "truncated", ...). On failure img holds no memory. */
int image_load(Image *img, const char *path, Err *e);
/* The same with color = 1: RGB (channels 3) whatever the file holds. */
int image_load_color(Image *img, const char *path, int color, Err *e);
/* Decodes a mask (PNG of any kind, or PGM/PPM) into img (channels 1): 1
 * where the stored value is not 0 (for palette PNGs the palette index, for
 * grey the grey level, for colour any colour sample; alpha is ignored), 0
 * elsewhere. JPEG is refused (lossy). -1 with e naming the file. */
int image_load_mask(Image *img, const char *path, Err *e);
/* Decodes n bytes of an image file held in memory; path only names it in
 * errors. What image_load_color does after reading the file. */
int image_decode(Image *img, const char *path, const uint8_t *d, size_t n, int color, Err *e);
void image_free(Image *img);

/* Area-average (box filter) resampling: destination pixel (y, x) is the mean
 * of the source over the rectangle it covers, with fractional source pixels
 * weighted by the covered fraction, computed exactly in integers and rounded
 * half up. Works for any sizes (up-sampling replicates, blending the source
 * pixels a destination pixel straddles). Deterministic on every machine. */
void image_resize(uint8_t *dst /* (dh, dw) */, uint32_t dh, uint32_t dw, const uint8_t *src /* (sh, sw) */,
                  uint32_t sh, uint32_t sw);

/* The pixels of img as planes: dst (channels, height, width). */
void image_planes(uint8_t *dst, const Image *img);

/* Writes an 8-bit binary PGM (P5, maxval 255). 0 or -1 with e. */
int image_write_pgm(const char *path, const uint8_t *pixels /* (h, w) */, uint32_t h, uint32_t w, Err *e);

/* Writes an 8-bit binary PPM (P6) through atomic_file. 0 or -1 with e. */
int image_write_ppm(const char *path, const uint8_t *pixels /* (h, w, 3) */, uint32_t h, uint32_t w, Err *e);

/* Encodes an 8-bit grey (channels 1) or RGB (channels 3) PNG into *out
 * (malloc'd, *n bytes). 0 or -1 with e. */
int image_encode_png(uint8_t **out, size_t *n, const uint8_t *pixels /* (h, w, channels) */, uint32_t h,
                     uint32_t w, uint32_t channels, Err *e);

/* The same PNG written through atomic_file: readers see the old file or the
 * whole new one. 0 or -1 with e. */
int image_write_png(const char *path, const uint8_t *pixels /* (h, w, channels) */, uint32_t h, uint32_t w,
                    uint32_t channels, Err *e);

/* The overlay of a mask on an image: rgb (h, w, 3 interleaved) gets the image
 * (planar (channels, h, w) as datasets store it, channels 1 = grey or 3 =
 * RGB) with every mask pixel (non-zero) blended towards colour by alpha
 * (0..1) and the mask's outline (mask pixels with a 4-neighbour outside the
 * mask or on the image edge) painted in colour. Pure; the caller owns every
 * buffer. */
void image_overlay_mask(uint8_t *rgb, const uint8_t *image, int channels, const uint8_t *mask, uint32_t h,
                        uint32_t w, const uint8_t colour[3], float alpha);

/* A predicted and a true mask over one image, enlarged: rgb (h s, w s, 3
 * interleaved) gets image pixel (y / s, x / s) (planar, channels 1 or 3),
 * blended towards pred_colour by alpha where pred is non-zero (a fill), and
 * painted truth_colour on the true mask's outline: the output pixels of a
 * truth pixel within (s + 1) / 2 of its side facing a pixel outside the
 * truth (or the image edge). Pure; s >= 1. */
void image_overlay_masks(uint8_t *rgb, const uint8_t *image, int channels, const uint8_t *pred,
                         const uint8_t *truth, uint32_t h, uint32_t w, uint32_t s,
                         const uint8_t pred_colour[3], const uint8_t truth_colour[3], float alpha);

#endif
