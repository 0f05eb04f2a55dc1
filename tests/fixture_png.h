/* fixture_png: writes PNG files of any kind libpng makes (bit depths 1-16,
 * grey, grey+alpha, RGB, RGBA, palette, interlaced) for the image and
 * importer tests. Header-only; failures are FATAL/ASSERT. */
#ifndef SIAMESE_TESTS_FIXTURE_PNG_H
#define SIAMESE_TESTS_FIXTURE_PNG_H

#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fixture_files.h"

typedef struct FixturePngBuf {
    uint8_t *d;
    size_t n;
} FixturePngBuf;

static inline void fixture_png_write_(png_structp png, png_bytep p, size_t n) {
    FixturePngBuf *m = png_get_io_ptr(png);
    m->d = xrealloc(m->d, m->n + n);
    memcpy(m->d + m->n, p, n);
    m->n += n;
}

static inline void fixture_png_flush_(png_structp png) { (void)png; }

/* Writes a w x h PNG from packed rows (rowbytes each, at most 64 rows);
 * libpng encodes into memory, then the file is written in one go. */
static inline void fixture_write_png(const char *path, int w, int h, int depth, int ctype, int interlace,
                                     const uint8_t *rows, size_t rowbytes, const png_color *pal, int npal) {
    FixturePngBuf m = {NULL, 0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) FATAL("libpng write failed for %s", path);
    png_set_write_fn(png, &m, fixture_png_write_, fixture_png_flush_);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, ctype, interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    png_write_info(png, info);
    png_bytep rp[64];
    ASSERT(h <= 64);
    for (int y = 0; y < h; y++) rp[y] = (png_bytep)(rows + (size_t)y * rowbytes);
    png_set_interlace_handling(png);
    png_write_image(png, rp);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fixture_write_file(path, m.d, m.n);
    free(m.d);
}

#endif
