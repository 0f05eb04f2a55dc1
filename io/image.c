/* image: see image.h. Files are read whole into memory (images are small),
 * then decoded from the buffer; libpng and libjpeg errors come back through
 * longjmp into one cleanup path and never print anything themselves. */
#include "image.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h> /* after stdio.h: it uses FILE and size_t */

#include "atomic_file.h"

#define IMAGE_MAX_FILE ((size_t)1 << 30)

void image_free(Image *img) {
    free(img->pixels);
    img->pixels = NULL;
    img->height = img->width = img->channels = 0;
}

/* Moves np decoded pixels of ch channels (1 or 3) into img as grey (luma) or
 * RGB (grey replicated); takes ownership of px. */
static void image_set(Image *img, uint8_t *px, uint64_t h, uint64_t w, unsigned ch, int color) {
    size_t np = (size_t)(h * w);
    if (!color && ch == 3) {
        const uint8_t *s = px;
        for (size_t i = 0; i < np; i++, s += 3) /* BT.601 luma, rounded half up */
            px[i] = (uint8_t)((299u * s[0] + 587u * s[1] + 114u * s[2] + 500u) / 1000u);
        px = xrealloc(px, np);
    } else if (color && ch == 1) {
        px = xrealloc(px, np * 3);
        for (size_t i = np; i-- > 0;) px[3 * i] = px[3 * i + 1] = px[3 * i + 2] = px[i];
    }
    img->height = (uint32_t)h;
    img->width = (uint32_t)w;
    img->channels = color ? 3 : 1;
    img->pixels = px;
}

static int check_dims(const char *path, uint64_t w, uint64_t h, Err *e) {
    if (w == 0 || h == 0 || w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE || w * h > IMAGE_MAX_PIXELS)
        return err_set(e, "%s: image size %llux%llu (HxW) out of range (1..%d per side, %u pixels)", path,
                       (unsigned long long)h, (unsigned long long)w, IMAGE_MAX_SIDE, IMAGE_MAX_PIXELS);
    return 0;
}

/* ---- PGM ----------------------------------------------------------------- */

static int is_space(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Index of the first byte at or after p that is neither whitespace nor in a
 * '#' comment (n if none). */
static size_t pgm_skip(const uint8_t *d, size_t n, size_t p) {
    for (;;) {
        while (p < n && is_space(d[p])) p++;
        if (p < n && d[p] == '#') {
            while (p < n && d[p] != '\n' && d[p] != '\r') p++;
            continue;
        }
        return p;
    }
}

/* Skips whitespace and '#' comments, then reads one decimal number, which
 * must end at whitespace, a comment or the end of the file: "0x4" or "12a"
 * is not a number. */
static int pgm_number(const uint8_t *d, size_t n, size_t *pos, uint64_t *val) {
    size_t p = pgm_skip(d, n, *pos);
    if (p >= n || d[p] < '0' || d[p] > '9') return -1;
    uint64_t v = 0;
    while (p < n && d[p] >= '0' && d[p] <= '9') {
        v = v * 10 + (uint64_t)(d[p] - '0');
        if (v > 0xffffffffu) return -1;
        p++;
    }
    if (p < n && !is_space(d[p]) && d[p] != '#') return -1;
    *val = v;
    *pos = p;
    return 0;
}

static uint8_t scale_to_8(uint64_t v, uint64_t maxval) { return (uint8_t)((v * 255 + maxval / 2) / maxval); }

/* PGM (P5, P2: grey) and PPM (P6, P3: RGB), any maxval. */
static int load_pgm(Image *img, const char *path, const uint8_t *d, size_t n, int color, Err *e) {
    int ascii = d[1] == '2' || d[1] == '3', spp = d[1] == '6' || d[1] == '3' ? 3 : 1;
    const char *kind = spp == 3 ? "PPM" : "PGM";
    size_t pos = 2;
    uint64_t w, h, maxval;
    if (pgm_number(d, n, &pos, &w) || pgm_number(d, n, &pos, &h) || pgm_number(d, n, &pos, &maxval))
        return err_set(e, "%s: bad %s header (expected width, height, maxval)", path, kind);
    if (maxval == 0 || maxval > 65535)
        return err_set(e, "%s: %s maxval %llu out of range 1..65535", path, kind, (unsigned long long)maxval);
    if (check_dims(path, w, h, e)) return -1;
    size_t np = (size_t)(w * h) * (size_t)spp; /* samples */
    /* The samples must be there before room is made for them: P5/P6 need np
     * (2np for 16 bits) bytes, P2/P3 at least a digit and a separator each. */
    size_t have = n - pos, bps = maxval > 255 ? 2 : 1;
    if (ascii ? have / 2 + 1 < np : have < 1 + np * bps)
        return err_set(e, "%s: %s truncated: %zu bytes after the header cannot hold %llux%llu pixels", path,
                       kind, have, (unsigned long long)h, (unsigned long long)w);
    uint8_t *px = xmalloc(np);
    if (ascii) {
        for (size_t i = 0; i < np; i++) {
            uint64_t v;
            if (pgm_number(d, n, &pos, &v)) {
                free(px);
                return err_set(e, "%s: ascii %s truncated or malformed at pixel %zu of %zu", path, kind, i,
                               np);
            }
            if (v > maxval) {
                free(px);
                return err_set(e, "%s: ascii %s pixel %zu is %llu, above maxval %llu", path, kind, i,
                               (unsigned long long)v, (unsigned long long)maxval);
            }
            px[i] = scale_to_8(v, maxval);
        }
        size_t rest = pgm_skip(d, n, pos);
        if (rest < n) {
            free(px);
            return err_set(
                e,
                "%s: ascii %s has %zu bytes of other data after its %zu pixels (a second image, or a "
                "wrong size in the header?)",
                path, kind, n - rest, np);
        }
    } else {
        if (pos >= n || !is_space(d[pos])) {
            free(px);
            return err_set(e, "%s: bad %s header (no whitespace before the pixels)", path, kind);
        }
        pos++;
        if (n - pos < np * bps) {
            free(px);
            return err_set(e, "%s: %s truncated: %zu pixel bytes, expected %zu (%llux%llu)", path, kind,
                           n - pos, np * bps, (unsigned long long)h, (unsigned long long)w);
        }
        if (n - pos > np * bps) {
            free(px);
            return err_set(e,
                           "%s: %s has %zu bytes after its %zu pixel bytes (%llux%llu; a second image, or a "
                           "wrong size in the header?)",
                           path, kind, n - pos - np * bps, np * bps, (unsigned long long)h,
                           (unsigned long long)w);
        }
        const uint8_t *s = d + pos;
        for (size_t i = 0; i < np; i++) {
            uint64_t v = bps == 2 ? ((uint64_t)s[2 * i] << 8 | s[2 * i + 1]) : s[i];
            if (v > maxval) {
                free(px);
                return err_set(e, "%s: %s pixel %zu is %llu, above maxval %llu", path, kind, i,
                               (unsigned long long)v, (unsigned long long)maxval);
            }
            px[i] = maxval == 255 ? (uint8_t)v : scale_to_8(v, maxval);
        }
    }
    image_set(img, px, h, w, (unsigned)spp, color);
    return 0;
}

/* ---- PNG ----------------------------------------------------------------- */

typedef struct PngSource {
    const uint8_t *d;
    size_t n, pos;
    char msg[256];
} PngSource;

static void png_on_error(png_structp png, png_const_charp msg) {
    PngSource *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void png_on_read(png_structp png, png_bytep out, size_t len) {
    PngSource *s = png_get_io_ptr(png);
    if (s->n - s->pos < len) png_error(png, "file truncated");
    memcpy(out, s->d + s->pos, len);
    s->pos += len;
}

/* color: 0 grey, 1 RGB, IMAGE_MASK: a 0/1 mask, 1 where the stored value
 * (palette index, grey level, any colour sample; alpha ignored) is not 0. */
#define IMAGE_MASK 2
static int load_png(Image *img, const char *path, const uint8_t *d, size_t n, int color, Err *e) {
    PngSource src = {.d = d, .n = n, .pos = 0, .msg = ""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    if (!png) return err_set(e, "%s: libpng could not start", path);
    png_infop info = png_create_info_struct(png);
    uint8_t *volatile buf = NULL;
    png_bytep *volatile rows = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        free(buf);
        free(rows);
        return err_set(e, "%s: bad PNG: %s", path, src.msg[0] ? src.msg : "out of memory");
    }
    png_set_read_fn(png, &src, png_on_read);
    png_read_info(png, info);
    uint64_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (w == 0 || h == 0 || w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE || w * h > IMAGE_MAX_PIXELS) {
        snprintf(src.msg, sizeof src.msg, "image size %llux%llu (HxW) out of range", (unsigned long long)h,
                 (unsigned long long)w);
        png_longjmp(png, 1);
    }
    /* Its compressed rows must fit the file: deflate expands at most about
     * 1032:1, so a header claiming more pixels than that is refused before
     * anything is allocated for them. */
    uint64_t bits = (uint64_t)png_get_bit_depth(png, info) * png_get_channels(png, info);
    if (w * h * bits / 8 > (uint64_t)n * 1100) {
        snprintf(src.msg, sizeof src.msg,
                 "image size %llux%llu (HxW) cannot come from %zu bytes (truncated?)", (unsigned long long)h,
                 (unsigned long long)w, n);
        png_longjmp(png, 1);
    }
    /* Palette -> RGB, grey < 8 bits -> 8 bits (scaled to 0..255), tRNS ->
     * alpha; 16 -> 8 bits rounded; alpha dropped. Left: grey or RGB, 8-bit.
     * A mask keeps the stored values: palette indices and grey levels below
     * 8 bits unpacked to bytes unscaled, 16-bit samples as they are. */
    if (color == IMAGE_MASK) {
        png_set_packing(png);
    } else {
        png_set_expand(png);
        png_set_scale_16(png);
    }
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    unsigned ch = png_get_channels(png, info), bytes = png_get_bit_depth(png, info) == 16 ? 2 : 1;
    size_t rowbytes = png_get_rowbytes(png, info);
    if ((ch != 1 && ch != 3) || (png_get_bit_depth(png, info) != 8 && bytes != 2 * (color == IMAGE_MASK)) ||
        rowbytes != w * ch * bytes) {
        snprintf(src.msg, sizeof src.msg, "unexpected layout after conversion (%u channels)", ch);
        png_longjmp(png, 1);
    }
    buf = xmalloc(rowbytes * h);
    rows = xmalloc(sizeof(png_bytep) * h);
    for (size_t y = 0; y < h; y++) rows[y] = buf + y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    if (color == IMAGE_MASK) {
        size_t np = (size_t)(w * h), per = (size_t)ch * bytes;
        for (size_t i = 0; i < np; i++) {
            uint8_t nz = 0;
            for (size_t k = 0; k < per; k++) nz |= buf[i * per + k];
            buf[i] = nz != 0;
        }
        image_set(img, buf, h, w, 1, 0);
        return 0;
    }
    image_set(img, buf, h, w, ch, color);
    return 0;
}

/* ---- JPEG ---------------------------------------------------------------- */

typedef struct JpegErr {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
} JpegErr;

static void jpeg_on_error(j_common_ptr cinfo) { longjmp(((JpegErr *)cinfo->err)->jump, 1); }
/* Silent; counts warnings (level -1) as libjpeg's own handler does. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    if (level < 0) cinfo->err->num_warnings++;
}

static int load_jpeg(Image *img, const char *path, const uint8_t *d, size_t n, int color, Err *e) {
    struct jpeg_decompress_struct cinfo;
    JpegErr jerr;
    uint8_t *volatile px = NULL;
    cinfo.err = jpeg_std_error(&jerr.mgr);
    jerr.mgr.error_exit = jpeg_on_error;
    jerr.mgr.emit_message = jpeg_on_message;
    if (setjmp(jerr.jump)) {
        char msg[JMSG_LENGTH_MAX];
        (*cinfo.err->format_message)((j_common_ptr)&cinfo, msg);
        jpeg_destroy_decompress(&cinfo);
        free(px);
        return err_set(e, "%s: bad JPEG: %s", path, msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, d, (unsigned long)n);
    jpeg_read_header(&cinfo, TRUE);
    uint64_t w = cinfo.image_width, h = cinfo.image_height;
    if (cinfo.jpeg_color_space != JCS_GRAYSCALE && cinfo.jpeg_color_space != JCS_YCbCr &&
        cinfo.jpeg_color_space != JCS_RGB) {
        jpeg_destroy_decompress(&cinfo);
        return err_set(e, "%s: JPEG colour space %d is not grey or RGB (CMYK is not supported)", path,
                       (int)cinfo.jpeg_color_space);
    }
    if (check_dims(path, w, h, e)) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    /* A sequential Huffman-coded JPEG spends at least 2 bits (a DC and an
     * end-of-block code) on every 8x8 block of its full-resolution
     * component, a progressive one at least 1 bit (the DC code of its
     * first scan; AC scans code runs of empty blocks in a few bits): a
     * header claiming more blocks than the file can hold is refused before
     * anything is allocated (a 285-byte progressive file claiming
     * 2058x62476 pixels took seconds and 770 MB). Arithmetic coding can
     * code flat blocks in a fraction of a bit: only the pixel limit bounds
     * it. */
    uint64_t min_bytes = cinfo.progressive_mode ? w * h / 512 : w * h / 256;
    if (!cinfo.arith_code && min_bytes > (uint64_t)n + 1024) {
        jpeg_destroy_decompress(&cinfo);
        return err_set(e, "%s: bad JPEG: %llux%llu (HxW) pixels cannot come from %zu bytes (truncated?)",
                       path, (unsigned long long)h, (unsigned long long)w, n);
    }
    unsigned ch = cinfo.jpeg_color_space == JCS_GRAYSCALE ? 1 : 3;
    cinfo.out_color_space = ch == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    ASSERT(cinfo.output_components == (int)ch && cinfo.output_width == w && cinfo.output_height == h);
    px = xmalloc((size_t)(w * h * ch));
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = px + (size_t)cinfo.output_scanline * w * ch;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    long warnings = jerr.mgr.num_warnings; /* libjpeg only warns on truncated or corrupt data */
    jpeg_destroy_decompress(&cinfo);
    if (warnings) {
        free(px);
        return err_set(e, "%s: bad JPEG: truncated or corrupt data (%ld warnings)", path, warnings);
    }
    image_set(img, px, h, w, ch, color);
    return 0;
}

int image_decode(Image *img, const char *path, const uint8_t *d, size_t n, int color, Err *e) {
    img->pixels = NULL;
    img->height = img->width = img->channels = 0;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && !memcmp(d, png_sig, 8)) return load_png(img, path, d, n, color, e);
    if (n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff) return load_jpeg(img, path, d, n, color, e);
    if (n >= 3 && d[0] == 'P' && (d[1] == '5' || d[1] == '2' || d[1] == '6' || d[1] == '3') && is_space(d[2]))
        return load_pgm(img, path, d, n, color, e);
    return err_set(
        e, "%s: not a PGM/PPM (P5/P2/P6/P3), PNG or JPEG image (%zu bytes) — remove it from the folder", path,
        n);
}

int image_load_color(Image *img, const char *path, int color, Err *e) {
    img->pixels = NULL;
    img->height = img->width = img->channels = 0;
    uint8_t *d = NULL;
    size_t n = 0;
    if (file_read_whole(path, IMAGE_MAX_FILE, "an image", &d, &n, e)) return -1;
    int rc = image_decode(img, path, d, n, color, e);
    free(d);
    return rc;
}

int image_load(Image *img, const char *path, Err *e) { return image_load_color(img, path, 0, e); }

int image_load_mask(Image *img, const char *path, Err *e) {
    img->pixels = NULL;
    img->height = img->width = img->channels = 0;
    uint8_t *d = NULL;
    size_t n = 0;
    if (file_read_whole(path, IMAGE_MAX_FILE, "a mask", &d, &n, e)) return -1;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    int rc;
    if (n >= 8 && !memcmp(d, png_sig, 8)) {
        rc = load_png(img, path, d, n, IMAGE_MASK, e);
    } else if (n >= 3 && d[0] == 'P' && strchr("5263", d[1]) && d[1] && is_space(d[2])) {
        rc = load_pgm(img, path, d, n, 1, e); /* RGB: a colour sample that is not 0 counts */
        if (rc == 0) {
            size_t np = (size_t)img->height * img->width;
            for (size_t i = 0; i < np; i++)
                img->pixels[i] = (img->pixels[3 * i] | img->pixels[3 * i + 1] | img->pixels[3 * i + 2]) != 0;
            img->pixels = xrealloc(img->pixels, np ? np : 1);
            img->channels = 1;
        }
    } else {
        rc = err_set(e, "%s: a mask must be a PNG or PGM/PPM file (lossless; %zu bytes here)", path, n);
    }
    free(d);
    return rc;
}

void image_planes(uint8_t *dst, const Image *img) {
    size_t np = (size_t)img->height * img->width;
    uint32_t C = img->channels;
    for (uint32_t c = 0; c < C; c++)
        for (size_t i = 0; i < np; i++) dst[c * np + i] = img->pixels[i * C + c];
}

/* ---- resize -------------------------------------------------------------- */

/* For each destination index: the first source index it covers and the
 * integer weights (overlap lengths in units of 1/dn of a source pixel; they
 * sum to sn). first has dn + 1 entries, the last being the weight count. */
static void axis_weights(uint32_t dn, uint32_t sn, uint32_t *first, uint32_t *start, uint32_t *weights) {
    uint32_t k = 0;
    for (uint32_t y = 0; y < dn; y++) {
        uint64_t lo = (uint64_t)y * sn, hi = (uint64_t)(y + 1) * sn;
        uint32_t i0 = (uint32_t)(lo / dn), i1 = (uint32_t)((hi - 1) / dn);
        first[y] = i0;
        start[y] = k;
        for (uint32_t i = i0; i <= i1; i++) {
            uint64_t a = MAX(lo, (uint64_t)i * dn), b = MIN(hi, (uint64_t)(i + 1) * dn);
            weights[k++] = (uint32_t)(b - a);
        }
    }
    start[dn] = k;
}

void image_resize(uint8_t *dst, uint32_t dh, uint32_t dw, const uint8_t *src, uint32_t sh, uint32_t sw) {
    ASSERT(dh > 0 && dw > 0 && sh > 0 && sw > 0);
    if (dh == sh && dw == sw) {
        memcpy(dst, src, (size_t)dh * dw);
        return;
    }
    uint32_t *fy = xmalloc(sizeof(uint32_t) * (dh + 1)), *sy = xmalloc(sizeof(uint32_t) * (dh + 1));
    uint32_t *wy = xmalloc(sizeof(uint32_t) * ((size_t)dh + sh));
    uint32_t *fx = xmalloc(sizeof(uint32_t) * (dw + 1)), *sx = xmalloc(sizeof(uint32_t) * (dw + 1));
    uint32_t *wx = xmalloc(sizeof(uint32_t) * ((size_t)dw + sw));
    axis_weights(dh, sh, fy, sy, wy);
    axis_weights(dw, sw, fx, sx, wx);
    /* Horizontal pass: tmp (sh, dw) holds sums up to 255 * sw (fits uint32). */
    uint32_t *tmp = xmalloc(sizeof(uint32_t) * (size_t)sh * dw);
    for (uint32_t i = 0; i < sh; i++) {
        const uint8_t *row = src + (size_t)i * sw;
        for (uint32_t x = 0; x < dw; x++) {
            uint32_t acc = 0, j = fx[x];
            for (uint32_t k = sx[x]; k < sx[x + 1]; k++, j++) acc += wx[k] * row[j];
            tmp[(size_t)i * dw + x] = acc;
        }
    }
    /* Vertical pass: sums up to 255 * sw * sh, divided by sw * sh. */
    uint64_t den = (uint64_t)sh * sw;
    for (uint32_t y = 0; y < dh; y++) {
        for (uint32_t x = 0; x < dw; x++) {
            uint64_t acc = 0;
            uint32_t i = fy[y];
            for (uint32_t k = sy[y]; k < sy[y + 1]; k++, i++)
                acc += (uint64_t)wy[k] * tmp[(size_t)i * dw + x];
            dst[(size_t)y * dw + x] = (uint8_t)((acc + den / 2) / den);
        }
    }
    free(tmp);
    free(fy);
    free(sy);
    free(wy);
    free(fx);
    free(sx);
    free(wx);
}

int image_write_pgm(const char *path, const uint8_t *pixels, uint32_t h, uint32_t w, Err *e) {
    FILE *f = fopen(path, "wb");
    if (!f) return err_set(e, "%s: cannot create: %s", path, strerror(errno));
    int bad = fprintf(f, "P5\n%u %u\n255\n", w, h) < 0;
    if (!bad) bad = fwrite(pixels, 1, (size_t)h * w, f) != (size_t)h * w;
    if (fclose(f) != 0) bad = 1;
    if (bad) {
        remove(path);
        return err_set(e, "%s: write failed: %s", path, strerror(errno));
    }
    return 0;
}

int image_write_ppm(const char *path, const uint8_t *pixels, uint32_t h, uint32_t w, Err *e) {
    char head[64];
    int k = snprintf(head, sizeof head, "P6\n%u %u\n255\n", w, h);
    size_t n = (size_t)h * w * 3;
    uint8_t *buf = xmalloc((size_t)k + n);
    memcpy(buf, head, (size_t)k);
    memcpy(buf + k, pixels, n);
    int rc = atomic_file_write_all(path, buf, (size_t)k + n, e);
    free(buf);
    return rc;
}

/* ---- PNG writing ----------------------------------------------------------- */

typedef struct PngSink {
    uint8_t *d;
    size_t n, cap;
} PngSink;

static void png_on_write(png_structp png, png_bytep p, size_t len) {
    PngSink *s = png_get_io_ptr(png);
    if (s->cap - s->n < len) {
        s->cap = MAX(2 * s->cap, s->n + len);
        s->d = xrealloc(s->d, s->cap);
    }
    memcpy(s->d + s->n, p, len);
    s->n += len;
}

static void png_on_flush(png_structp png) { (void)png; }

int image_encode_png(uint8_t **out, size_t *n, const uint8_t *pixels, uint32_t h, uint32_t w,
                     uint32_t channels, Err *e) {
    ASSERT(h > 0 && w > 0 && (channels == 1 || channels == 3));
    PngSource err = {.msg = ""};
    PngSink sink = {0};
    *out = NULL;
    *n = 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, png_on_error, png_on_warning);
    if (!png) return err_set(e, "libpng could not start");
    png_infop info = png_create_info_struct(png);
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, info ? &info : NULL);
        free(sink.d);
        return err_set(e, "PNG encoding failed: %s", err.msg[0] ? err.msg : "out of memory");
    }
    png_set_write_fn(png, &sink, png_on_write, png_on_flush);
    png_set_IHDR(png, info, w, h, 8, channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (uint32_t y = 0; y < h; y++) png_write_row(png, pixels + (size_t)y * w * channels);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    *out = sink.d;
    *n = sink.n;
    return 0;
}

int image_write_png(const char *path, const uint8_t *pixels, uint32_t h, uint32_t w, uint32_t channels,
                    Err *e) {
    uint8_t *d;
    size_t n;
    Err pe;
    if (image_encode_png(&d, &n, pixels, h, w, channels, &pe)) return err_set(e, "%s: %s", path, pe.msg);
    int rc = atomic_file_write_all(path, d, n, e);
    free(d);
    return rc;
}

/* ---- mask overlays --------------------------------------------------------- */

void image_overlay_mask(uint8_t *rgb, const uint8_t *image, int channels, const uint8_t *mask, uint32_t h,
                        uint32_t w, const uint8_t colour[3], float alpha) {
    ASSERT(channels == 1 || channels == 3);
    size_t plane = (size_t)h * w;
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            uint8_t *o = rgb + 3 * i;
            for (int c = 0; c < 3; c++) o[c] = image[(channels == 3 ? (size_t)c * plane : 0) + i];
            if (!mask[i]) continue;
            int edge = y == 0 || x == 0 || y + 1 == h || x + 1 == w || !mask[i - w] || !mask[i + w] ||
                       !mask[i - 1] || !mask[i + 1];
            for (int c = 0; c < 3; c++)
                o[c] = edge ? colour[c] : (uint8_t)lrintf((1.0f - alpha) * o[c] + alpha * colour[c]);
        }
}

void image_overlay_masks(uint8_t *rgb, const uint8_t *image, int channels, const uint8_t *pred,
                         const uint8_t *truth, uint32_t h, uint32_t w, uint32_t s,
                         const uint8_t pred_colour[3], const uint8_t truth_colour[3], float alpha) {
    ASSERT((channels == 1 || channels == 3) && s >= 1);
    size_t plane = (size_t)h * w, W = (size_t)w * s;
    uint32_t t = (s + 1) / 2; /* outline thickness */
    for (uint32_t Y = 0; Y < h * s; Y++)
        for (uint32_t X = 0; X < w * s; X++) {
            uint32_t y = Y / s, x = X / s, dy = Y % s, dx = X % s;
            size_t i = (size_t)y * w + x;
            uint8_t *o = rgb + 3 * ((size_t)Y * W + X);
            for (int c = 0; c < 3; c++) o[c] = image[(channels == 3 ? (size_t)c * plane : 0) + i];
            if (pred[i])
                for (int c = 0; c < 3; c++)
                    o[c] = (uint8_t)lrintf((1.0f - alpha) * o[c] + alpha * pred_colour[c]);
            if (!truth[i]) continue;
            int edge =
                (dy < t && (y == 0 || !truth[i - w])) || (dy >= s - t && (y + 1 == h || !truth[i + w])) ||
                (dx < t && (x == 0 || !truth[i - 1])) || (dx >= s - t && (x + 1 == w || !truth[i + 1]));
            if (edge) memcpy(o, truth_colour, 3);
        }
}
