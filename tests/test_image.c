/* test_image: colour decoding and the writers of io/image.c. PNG written by
 * image_write_png reads back bit-exact as RGB and as luma grey; JPEG files
 * made here with libjpeg (RGB and grey, quality 100) decode close to their
 * source and bit-equal to libjpeg's own decoder output; grey files replicate
 * to RGB; truncated and damaged JPEG or PNG give one-line errors naming the
 * file; image_decode works on a buffer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h> /* after stdio.h: it uses FILE and size_t */

#include "../io/image.h"
#include "fixture_files.h"
#include "test.h"

enum { H = 37, W = 53 };

static void make_rgb(uint8_t *px) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = px + 3 * (y * W + x);
            p[0] = (uint8_t)(x * 255 / (W - 1));
            p[1] = (uint8_t)(y * 255 / (H - 1));
            p[2] = (uint8_t)((x + y) * 2);
        }
}

/* Writes a baseline (or progressive) JPEG (quality 100, no chroma
 * subsampling) with libjpeg. */
static void write_jpeg(const char *path, const uint8_t *px, int ch, int progressive) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    FILE *f = fopen(path, "wb");
    ASSERT(f);
    jpeg_stdio_dest(&c, f);
    c.image_width = W, c.image_height = H, c.input_components = ch;
    c.in_color_space = ch == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 100, TRUE);
    if (ch == 3)
        for (int i = 0; i < 3; i++) c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < (unsigned)H) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)c.next_scanline * W * ch);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

static uint8_t luma(const uint8_t *p) {
    return (uint8_t)((299u * p[0] + 587u * p[1] + 114u * p[2] + 500u) / 1000u);
}

static int max_diff(const uint8_t *a, const uint8_t *b, size_t n) {
    int m = 0;
    for (size_t i = 0; i < n; i++) m = MAX(m, abs((int)a[i] - (int)b[i]));
    return m;
}

static void test_png_roundtrip(void) {
    static uint8_t rgb[H * W * 3], grey[H * W];
    make_rgb(rgb);
    for (int i = 0; i < H * W; i++) grey[i] = luma(rgb + 3 * i);
    Err e = {""};
    CHECK(image_write_png(fixture_path("c.png"), rgb, H, W, 3, &e) == 0, "%s", e.msg);
    Image img;
    CHECK(image_load_color(&img, fixture_path("c.png"), 1, &e) == 0, "%s", e.msg);
    CHECK(img.height == H && img.width == W && img.channels == 3 && !memcmp(img.pixels, rgb, sizeof rgb),
          "RGB PNG round trip %ux%ux%u", img.height, img.width, img.channels);
    image_free(&img);
    CHECK(image_load(&img, fixture_path("c.png"), &e) == 0 && img.channels == 1 &&
              !memcmp(img.pixels, grey, sizeof grey),
          "RGB PNG read as grey is BT.601 luma");
    image_free(&img);
    CHECK(image_write_png(fixture_path("g.png"), grey, H, W, 1, &e) == 0, "%s", e.msg);
    CHECK(image_load_color(&img, fixture_path("g.png"), 1, &e) == 0 && img.channels == 3, "%s", e.msg);
    int rep = 1;
    for (int i = 0; i < H * W; i++)
        rep &= img.pixels[3 * i] == grey[i] && img.pixels[3 * i + 1] == grey[i] &&
               img.pixels[3 * i + 2] == grey[i];
    CHECK(rep, "grey PNG read as colour replicates R = G = B");
    image_free(&img);
    CHECK(image_write_pgm(fixture_path("g.pgm"), grey, H, W, &e) == 0, "%s", e.msg);
    CHECK(image_load_color(&img, fixture_path("g.pgm"), 1, &e) == 0 && img.channels == 3 &&
              img.pixels[3 * 100 + 1] == grey[100],
          "PGM read as colour");
    image_free(&img);
    /* damaged PNG: cut in the middle of the pixel data */
    size_t n;
    uint8_t *d = fixture_read_file(fixture_path("c.png"), &n);
    fixture_write_file(fixture_path("cut.png"), d, n / 2);
    CHECK(image_load(&img, fixture_path("cut.png"), &e) == -1 && strstr(e.msg, "cut.png") &&
              !strchr(e.msg, '\n') && !img.pixels,
          "truncated PNG: %s", e.msg);
    free(d);
}

static void test_jpeg(void) {
    static uint8_t rgb[H * W * 3], grey[H * W];
    make_rgb(rgb);
    for (int i = 0; i < H * W; i++) grey[i] = luma(rgb + 3 * i);
    write_jpeg(fixture_path("c.jpg"), rgb, 3, 0);
    write_jpeg(fixture_path("g.jpg"), grey, 1, 0);
    Err e = {""};
    Image img;
    CHECK(image_load_color(&img, fixture_path("c.jpg"), 1, &e) == 0 && img.channels == 3 && img.height == H &&
              img.width == W,
          "RGB JPEG: %s", e.msg);
    int d = img.pixels ? max_diff(img.pixels, rgb, sizeof rgb) : 999;
    CHECK(d <= 6, "RGB JPEG at quality 100 within 6 of the source (max diff %d)", d);
    /* the same bytes through libjpeg's stdio path: our decoder adds nothing */
    struct jpeg_decompress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_decompress(&c);
    FILE *f = fopen(fixture_path("c.jpg"), "rb");
    jpeg_stdio_src(&c, f);
    jpeg_read_header(&c, TRUE);
    c.out_color_space = JCS_RGB;
    jpeg_start_decompress(&c);
    static uint8_t ref[H * W * 3];
    while (c.output_scanline < c.output_height) {
        JSAMPROW row = ref + (size_t)c.output_scanline * W * 3;
        jpeg_read_scanlines(&c, &row, 1);
    }
    jpeg_finish_decompress(&c);
    jpeg_destroy_decompress(&c);
    fclose(f);
    CHECK(img.pixels && !memcmp(img.pixels, ref, sizeof ref), "RGB JPEG equals libjpeg's decode");
    Image g;
    CHECK(image_load(&g, fixture_path("c.jpg"), &e) == 0 && g.channels == 1, "%s", e.msg);
    int lumaok = 1;
    for (int i = 0; g.pixels && i < H * W; i++) lumaok &= g.pixels[i] == luma(ref + 3 * i);
    CHECK(lumaok, "RGB JPEG read as grey is the luma of its RGB decode");
    image_free(&g);
    image_free(&img);
    CHECK(image_load_color(&img, fixture_path("g.jpg"), 1, &e) == 0 && img.channels == 3, "grey JPEG: %s",
          e.msg);
    int rep = 1;
    for (int i = 0; img.pixels && i < H * W; i++)
        rep &= img.pixels[3 * i] == img.pixels[3 * i + 1] && img.pixels[3 * i] == img.pixels[3 * i + 2] &&
               abs((int)img.pixels[3 * i] - (int)grey[i]) <= 3;
    CHECK(rep, "grey JPEG: replicated and within 3 of the source");
    image_free(&img);
    /* truncated and damaged JPEG: errors, no half image */
    size_t n;
    uint8_t *buf = fixture_read_file(fixture_path("c.jpg"), &n);
    fixture_write_file(fixture_path("cut.jpg"), buf, n * 2 / 3);
    CHECK(image_load(&img, fixture_path("cut.jpg"), &e) == -1 && strstr(e.msg, "cut.jpg") &&
              strstr(e.msg, "JPEG") && !strchr(e.msg, '\n') && !img.pixels,
          "truncated JPEG: %s", e.msg);
    CHECK(image_decode(&img, "head.jpg", buf, 40, 1, &e) == -1 && strstr(e.msg, "head.jpg"),
          "JPEG header only (from a buffer): %s", e.msg);
    CHECK(image_decode(&img, "junk.bin", (const uint8_t *)"GIF89a....", 10, 0, &e) == -1 &&
              strstr(e.msg, "junk.bin") && strstr(e.msg, "JPEG"),
          "unknown format: %s", e.msg);
    free(buf);
    /* Progressive: decodes; a header claiming more 8x8 blocks than the
     * file has bits for (its DC scan spends >= 1 bit a block) is refused
     * before decoding (fuzz_image: 285 bytes claiming 2058x62476 pixels). */
    write_jpeg(fixture_path("p.jpg"), rgb, 3, 1);
    CHECK(image_load_color(&img, fixture_path("p.jpg"), 1, &e) == 0 && img.channels == 3 && img.width == W,
          "progressive JPEG: %s", e.msg);
    d = img.pixels ? max_diff(img.pixels, rgb, sizeof rgb) : 999;
    CHECK(d <= 6, "progressive JPEG within 6 of the source (max diff %d)", d);
    image_free(&img);
    buf = fixture_read_file(fixture_path("p.jpg"), &n);
    size_t sof = 0;
    for (size_t i = 2; i + 9 < n && !sof; i++)
        if (buf[i] == 0xff && buf[i + 1] == 0xc2) sof = i;
    CHECK(sof > 0, "progressive JPEG has an SOF2 marker");
    if (sof) {
        buf[sof + 5] = 2058 >> 8, buf[sof + 6] = 2058 & 255; /* height */
        buf[sof + 7] = 62476 >> 8, buf[sof + 8] = 62476 & 255; /* width */
        CHECK(image_decode(&img, "bomb.jpg", buf, n, 1, &e) == -1 && strstr(e.msg, "bomb.jpg") &&
                  strstr(e.msg, "2058x62476 (HxW) pixels cannot come from") && !img.pixels,
              "progressive JPEG bomb refused from its header: %s", e.msg);
    }
    free(buf);
}

int main(void) {
    fixture_dir_create("image");
    test_png_roundtrip();
    test_jpeg();
    fixture_rm_tree(fixture_dir());
    return test_finish();
}
