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
#include <unistd.h>

#include <zlib.h>

#include <jpeglib.h> /* after stdio.h: it uses FILE */

#include "../io/checkpoint.h"
#include "../io/config.h"
#include "../nn/model.h"
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

/* ---- idx files ----------------------------------------------------------------- */

/* deflate of n bytes with windowBits wbits (31: gzip, -15: raw, 15: zlib). */
static Mem deflate_mem(const void *d, size_t n, int wbits) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    ASSERT(deflateInit2(&zs, 6, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    Mem m = {xmalloc(deflateBound(&zs, (uLong)n) + 32), 0};
    zs.next_in = (Bytef *)d;
    zs.avail_in = (uInt)n;
    zs.next_out = m.d;
    zs.avail_out = (uInt)(deflateBound(&zs, (uLong)n) + 32);
    ASSERT(deflate(&zs, Z_FINISH) == Z_STREAM_END);
    m.n = zs.total_out;
    deflateEnd(&zs);
    return m;
}

/* wide: int32 labels (magic 0x00000c01) instead of bytes. */
static void idx_seed(const char *name, int gz_labels, int gz_images, int wide) {
    uint8_t lab[8 + 5 * 4] = {0, 0, 8, 1, 0, 0, 0, 5, 0, 1, 2, 1, 0};
    size_t nlab = 8 + 5;
    if (wide) {
        const uint8_t w[8 + 5 * 4] = {0, 0, 12, 1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0,
                                      0, 1, 0,  0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0};
        memcpy(lab, w, sizeof w);
        nlab = sizeof w;
    }
    uint8_t img[16 + 5 * 3 * 4] = {0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 3, 0, 0, 0, 4};
    for (int i = 16; i < (int)sizeof img; i++) img[i] = (uint8_t)(i * 7);
    Mem l = gz_labels ? deflate_mem(lab, nlab, 31) : (Mem){lab, nlab};
    Mem g = gz_images ? deflate_mem(img, sizeof img, 31) : (Mem){img, sizeof img};
    uint8_t *b = xmalloc(2 + l.n + g.n);
    b[0] = (uint8_t)l.n, b[1] = (uint8_t)(l.n >> 8);
    memcpy(b + 2, l.d, l.n);
    memcpy(b + 2 + l.n, g.d, g.n);
    put("idx", name, b, 2 + l.n + g.n);
    if (gz_labels) free(l.d);
    if (gz_images) free(g.d);
    free(b);
}

/* ---- dataset records --------------------------------------------------------------- */

/* A samples record of a C x H x W dataset (the layout of io/dataset.c),
 * after the harness's 4 bytes choosing that dataset. */
static void record_seed(const char *name, int c, int h, int w, int classes, int label, int compressed,
                        int masks) {
    size_t npix = (size_t)c * h * w, raw = npix + (masks ? (size_t)h * w : 0);
    uint8_t *payload = xmalloc(raw);
    for (size_t i = 0; i < raw; i++) payload[i] = i < npix ? (uint8_t)(i % 5 ? 0 : i * 13) : (uint8_t)(i & 1);
    Mem z = compressed ? deflate_mem(payload, raw, -15) : (Mem){payload, raw};
    uint8_t *b = xcalloc(4 + 24 + z.n, 1), *r = b + 4;
    b[0] = (uint8_t)((c - 1) | compressed << 2 | masks << 3);
    b[1] = (uint8_t)(h - 1), b[2] = (uint8_t)(w - 1), b[3] = (uint8_t)((classes - 1) | label << 4);
    r[0] = 1;
    r[1] = (uint8_t)((compressed ? 1 : 0) | (masks ? 2 : 0));
    r[2] = (uint8_t)c, r[4] = (uint8_t)h, r[6] = (uint8_t)w;
    r[8] = (uint8_t)label;
    for (int i = 0; i < 4; i++) {
        r[12 + i] = (uint8_t)(raw >> (8 * i));
        r[16 + i] = (uint8_t)(z.n >> (8 * i));
        r[20 + i] = (uint8_t)(crc32(0, payload, (uInt)raw) >> (8 * i));
    }
    memcpy(r + 24, z.d, z.n);
    put("record", name, b, 4 + 24 + z.n);
    if (compressed) free(z.d);
    free(payload);
    free(b);
}

/* ---- training checkpoints ------------------------------------------------------------ */

/* The sections trainer_save writes (dist/train_ckpt.c), for a tiny model. */
static void ckpt_seed(const char *name, const char *optim) {
    char text[1024];
    snprintf(text, sizeof text,
             "[run]\nseed = 3\n[data]\ntrain = d.lmdb\n[sampler]\np = 2\nk = 2\n[conv2d]\nname = "
             "conv1\nfilters = 2\n"
             "size = 3\n[relu]\n[maxpool]\nsize = 2\n[flatten]\n[linear]\nname = fc1\nout = 3\n[l2norm]\n"
             "[optim]\ntype = %s\n",
             optim);
    static Config c;
    Model m;
    Err e;
    if (config_parse_text(&c, text, "seed.ini", &e)) FATAL("%s", e.msg);
    if (model_plan(&m, &c.model, "seed.ini", 1, 6, 6, 1, &e)) FATAL("%s", e.msg);
    char *canon = config_to_text(&c), *topo = model_topology(&m);
    float *p = xcalloc(2 * m.nparams, sizeof(float));
    for (size_t i = 0; i < 2 * m.nparams; i++) p[i] = 0.01f * (float)(i % 17) - 0.05f;
    static const char state[] = "format=1\nstep=3\nepoch=1\nstep_in_epoch=1\nopt_t=3\nworld=2\nseed=3\n"
                                "mean=0.25\nstd=0.5\ntotal_steps=8\nsteps_per_epoch=2\n";
    static const char metrics[] =
        "step,epoch,loss,data_loss,active_fraction,hardness,lr,grad_norm\n"
        "0,0,0.2,0.2,1,0.5,0.05,1\n1,0,0.19,0.19,1,0.5,0.05,1\n2,1,0.18,0.18,1,0.5,0.05,1\n";
    CkptWriter *w = ckpt_writer_new();
    ckpt_add(w, "config", canon, strlen(canon));
    ckpt_add(w, "topology", topo, strlen(topo));
    ckpt_add_f32(w, "params", p, m.nparams);
    if (strcmp(optim, "sgd")) ckpt_add_f32(w, "optim", p, 2 * m.nparams);
    ckpt_add(w, "state", state, sizeof state - 1);
    ckpt_add(w, "metrics", metrics, sizeof metrics - 1);
    /* The file itself after the harness's mode byte 0 ... */
    char path[256];
    snprintf(path, sizeof path, "/tmp/seed-%d.smpi", (int)getpid());
    if (ckpt_write(w, path, &e)) FATAL("%s", e.msg);
    ckpt_writer_free(w);
    FILE *f = fopen(path, "rb");
    uint8_t file[65536];
    size_t fn = fread(file, 1, sizeof file, f);
    fclose(f);
    unlink(path);
    char seed[128];
    snprintf(seed, sizeof seed, "%s.smpi", name);
    put_prefixed("ckpt", seed, 0, file, fn);
    /* ... and its sections (mode 1): NAME NUL, 4-byte length, bytes. */
    const char *names[] = {"config", "topology", "params", "optim", "state", "metrics"};
    const void *data[] = {canon, topo, p, p, state, metrics};
    size_t len[] = {strlen(canon), strlen(topo),     4 * m.nparams,
                    8 * m.nparams, sizeof state - 1, sizeof metrics - 1};
    uint8_t *b = xmalloc(1 + 16 * 6 + strlen(canon) + strlen(topo) + 12 * m.nparams + 1024), *q = b;
    *q++ = 1;
    for (int i = 0; i < 6; i++) {
        if (i == 3 && !strcmp(optim, "sgd")) continue;
        memcpy(q, names[i], strlen(names[i]) + 1), q += strlen(names[i]) + 1;
        for (int j = 0; j < 4; j++) *q++ = (uint8_t)(len[i] >> (8 * j));
        memcpy(q, data[i], len[i]), q += len[i];
    }
    snprintf(seed, sizeof seed, "%s.sections", name);
    put("ckpt", seed, b, (size_t)(q - b));
    free(b);
    free(p);
    free(canon);
    free(topo);
    model_free(&m);
}

int main(void) {
    image_seeds();
    mot_seeds();
    config_seeds();
    idx_seed("plain.idx", 0, 0, 0);
    idx_seed("gz.idx", 1, 1, 0);
    idx_seed("mixed.idx", 0, 1, 0);
    idx_seed("int32.idx", 0, 1, 1);
    record_seed("grey.rec", 1, 4, 3, 3, 2, 0, 0);
    record_seed("deflated.rec", 1, 28, 28, 10, 7, 1, 0);
    record_seed("rgb-mask.rec", 3, 5, 4, 2, 1, 1, 1);
    ckpt_seed("sgd", "sgd");
    ckpt_seed("adam", "adam");
    printf("wrote fuzz/corpus/\n");
    return 0;
}
