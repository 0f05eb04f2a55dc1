/* seeds: writes the seed corpora of the fuzz harnesses, fuzz/corpus/NAME/,
 * small valid inputs of every kind each decoder reads (the fuzzer mutates
 * them; valid seeds reach the deep code at once). Run from the repository
 * root: `make fuzz-seeds`. The files are committed; rerun after a format
 * changes. Harness input layouts are described in each fuzz/fuzz_*.c. */
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h> /* after stdio.h: it uses FILE */

#include "../nn/util.h"

static void put(const char *dir, const char *name, const void *d, size_t n) {
    char path[512];
    mkdir("fuzz/corpus", 0755);
    snprintf(path, sizeof path, "fuzz/corpus/%s", dir);
    if (mkdir(path, 0755) && errno != EEXIST) FATAL("%s: %s", path, strerror(errno));
    snprintf(path, sizeof path, "fuzz/corpus/%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(d, 1, n, f) != n || fclose(f)) FATAL("%s: cannot write", path);
}

/* A seed of `dir` made of one prefix byte and then the bytes. */
static void put_prefixed(const char *dir, const char *name, uint8_t prefix, const void *d, size_t n) {
    uint8_t *b = xmalloc(n + 1);
    b[0] = prefix;
    memcpy(b + 1, d, n);
    put(dir, name, b, n + 1);
    free(b);
}

/* ---- images ---------------------------------------------------------------- */

typedef struct Mem {
    uint8_t *d;
    size_t n;
} Mem;

static void png_mem_write(png_structp png, png_bytep p, size_t n) {
    Mem *m = png_get_io_ptr(png);
    m->d = xrealloc(m->d, m->n + n);
    memcpy(m->d + m->n, p, n);
    m->n += n;
}
static void png_mem_flush(png_structp png) { (void)png; }

/* A w x h PNG of colour type ct and bit depth bits (pixels a gradient). */
static Mem make_png(int w, int h, int ct, int bits, int interlace) {
    Mem m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) FATAL("libpng failed");
    png_set_write_fn(png, &m, png_mem_write, png_mem_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, bits, ct,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (ct == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {255, 255, 255}};
        png_set_PLTE(png, info, pal, 4);
    }
    png_write_info(png, info);
    int ch = ct == PNG_COLOR_TYPE_RGB          ? 3
             : ct == PNG_COLOR_TYPE_RGB_ALPHA  ? 4
             : ct == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                                               : 1;
    size_t rowbytes = ((size_t)w * ch * bits + 7) / 8;
    uint8_t *row = xcalloc(rowbytes, 1);
    int passes = png_set_interlace_handling(png);
    for (int pass = 0; pass < passes; pass++)
        for (int y = 0; y < h; y++) {
            /* (a palette image is 2-bit: every byte holds valid indices) */
            for (size_t i = 0; i < rowbytes; i++) row[i] = (uint8_t)(i * 37 + (size_t)y * 11);
            png_write_row(png, row);
        }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(row);
    return m;
}

static Mem make_jpeg(int w, int h, int grey, int progressive) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    unsigned char *buf = NULL;
    unsigned long n = 0;
    jpeg_mem_dest(&c, &buf, &n);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = grey ? 1 : 3;
    c.in_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 75, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    uint8_t *row = xmalloc((size_t)w * 3);
    for (int y = 0; y < h; y++) {
        for (int i = 0; i < w * (grey ? 1 : 3); i++) row[i] = (uint8_t)(i * 19 + y * 23);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    Mem m = {xmalloc(n), n};
    memcpy(m.d, buf, n);
    free(buf);
    return m;
}

static void image_seeds(void) {
    static const char p5[] = "P5\n3 2\n255\n\x01\x02\x03\x04\x05\x06";
    static const char p5_16[] = "P5\n2 1\n# sixteen bits\n65535\n\x01\x02\xff\xfe";
    static const char p2[] = "P2\n# ascii\n3 2\n15\n0 1 2\n3 4 15\n";
    put_prefixed("image", "p5.pgm", 0, p5, sizeof p5 - 1);
    put_prefixed("image", "p5-16.pgm", 1, p5_16, sizeof p5_16 - 1);
    put_prefixed("image", "p2.pgm", 0, p2, sizeof p2 - 1);
    struct {
        const char *name;
        int ct, bits, interlace;
    } pngs[] = {{"grey8.png", PNG_COLOR_TYPE_GRAY, 8, 0},     {"grey1.png", PNG_COLOR_TYPE_GRAY, 1, 0},
                {"grey16.png", PNG_COLOR_TYPE_GRAY, 16, 1},   {"rgb.png", PNG_COLOR_TYPE_RGB, 8, 0},
                {"rgba.png", PNG_COLOR_TYPE_RGB_ALPHA, 8, 1}, {"ga.png", PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0},
                {"pal.png", PNG_COLOR_TYPE_PALETTE, 2, 0}};
    for (size_t i = 0; i < sizeof pngs / sizeof *pngs; i++) {
        Mem m = make_png(5, 4, pngs[i].ct, pngs[i].bits, pngs[i].interlace);
        put_prefixed("image", pngs[i].name, (uint8_t)(i & 1), m.d, m.n);
        free(m.d);
    }
    Mem j = make_jpeg(9, 7, 1, 0), k = make_jpeg(12, 10, 0, 1);
    put_prefixed("image", "grey.jpg", 0, j.d, j.n);
    put_prefixed("image", "progressive.jpg", 1, k.d, k.n);
    free(j.d);
    free(k.d);
}

/* ---- MOTChallenge text ------------------------------------------------------- */

static void mot_seed(const char *name, uint8_t kind, uint8_t frames, const char *text) {
    uint8_t *b = xmalloc(strlen(text) + 2);
    b[0] = kind;
    b[1] = frames;
    memcpy(b + 2, text, strlen(text));
    put("mot", name, b, strlen(text) + 2);
    free(b);
}

static void mot_seeds(void) {
    mot_seed("seqinfo.ini", 0, 0,
             "[Sequence]\nname=MOT16-02\nimDir=img1\nframeRate=30\nseqLength=600\nimWidth=1920\n"
             "imHeight=1080\nimExt=.jpg\n");
    mot_seed("det.txt", 1, 2,
             "1,-1,1359.1,413.27,120.26,362.77,2.3092,-1,-1,-1\n2,-1,571.03,402.13,104.56,"
             "315.68,1.5028,-1,-1,-1\n");
    mot_seed("gt16.txt", 2, 2,
             "1,1,912,484,97,109,0,7,1\n1,2,1338,418,167,379,1,1,0.86\n2,1,914,484,97,109,0,7,"
             "1\n");
    mot_seed("gt15.txt", 2, 2, "1,1,1.5,2.5,30,60,1,-1,-1,-1\n2,1,3,4,30,60,1,-1,-1,-1\n");
    mot_seed("res.txt", 3, 2, "1,3,10,20,30,40,0.9,-1,-1,-1\n2,3,11,21,30,40,0.8,-1,-1,-1\n");
}

/* ---- configs ----------------------------------------------------------------- */

static void config_seed(const char *name, const char *file, const char *const *sets, int nsets) {
    FILE *f = fopen(file, "rb");
    if (!f) FATAL("%s: cannot open", file);
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    for (int i = 0; i < nsets; i++) {
        size_t k = strlen(sets[i]) + 1;
        ASSERT(n + k < sizeof buf);
        buf[n] = 0;
        memcpy(buf + n + 1, sets[i], k - 1);
        n += k;
    }
    put("config", name, buf, n);
}

static void config_seeds(void) {
    const char *tiny[] = {"optim.lr=0.01", "conv1.filters=8", "data.shape=1x12x12"};
    const char *koch[] = {"head.lr_mult=2", "train.steps=100"};
    config_seed("tiny.ini", "configs/tiny.ini", tiny, 3);
    config_seed("fmnist-triplet.ini", "configs/fmnist-triplet.ini", NULL, 0);
    config_seed("fmnist-pair.ini", "configs/fmnist-pair.ini", NULL, 0);
    config_seed("fmnist-contrastive.ini", "configs/fmnist-contrastive.ini", NULL, 0);
    config_seed("koch-omniglot.ini", "configs/koch-omniglot.ini", koch, 2);
}

int main(void) {
    image_seeds();
    mot_seeds();
    config_seeds();
    printf("wrote fuzz/corpus/\n");
    return 0;
}
