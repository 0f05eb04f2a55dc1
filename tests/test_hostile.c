/* test_hostile: inputs a hostile or careless user gives, each of which must
 * end in a one-line error naming the file, key or value, with nothing
 * allocated for sizes the input only claims (issue 15): strict number
 * parsing (no hex, no spaces, no "inf"), CxHxW shapes, PGM files with bytes
 * after their pixels or malformed P2 tokens, PGM and PNG headers claiming
 * more pixels than the file holds, idx headers claiming huge images (named
 * against the idx file), idx files of the wrong length, and gzip files
 * without their CRC and length trailer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../io/config.h"
#include "../io/image.h"
#include "../io/import.h"
#include "../io/mot.h"
#include "../nn/model.h"
#include "fixture_files.h"
#include "test.h"

static void test_numbers(void) {
    long l;
    double d;
    uint64_t u;
    const char *bad_doubles[] = {"0x10", "0X1p3", " 1", "1 ", "+1",    "inf", "-inf", "nan",
                                 "1e",   "1e+",   ".",  "-",  "1.2.3", "1,5", "",     "1e99999"};
    for (size_t i = 0; i < sizeof bad_doubles / sizeof *bad_doubles; i++)
        CHECK(parse_double(bad_doubles[i], -1e300, 1e300, &d) == -1, "parse_double('%s') refused",
              bad_doubles[i]);
    const char *good_doubles[] = {"16", "-2.5", ".5", "5.", "1e-3", "3E+2", "0", "-0"};
    const double want[] = {16, -2.5, 0.5, 5, 1e-3, 300, 0, 0};
    for (size_t i = 0; i < sizeof good_doubles / sizeof *good_doubles; i++)
        CHECK(parse_double(good_doubles[i], -1e9, 1e9, &d) == 0 && d == want[i], "parse_double('%s') = %g",
              good_doubles[i], want[i]);
    const char *bad_longs[] = {"0x10", " 5", "5 ", "+5", "5.0", "1e3", "--1", ""};
    for (size_t i = 0; i < sizeof bad_longs / sizeof *bad_longs; i++)
        CHECK(parse_long(bad_longs[i], -100000, 100000, &l) == -1, "parse_long('%s') refused", bad_longs[i]);
    CHECK(parse_long("-7", -10, 10, &l) == 0 && l == -7, "parse_long(-7)");
    /* strtoull would wrap " -1" and "+1" silently */
    const char *bad_u64[] = {" -1", "-1", "+1", "0x10", " 1", "18446744073709551616"};
    for (size_t i = 0; i < sizeof bad_u64 / sizeof *bad_u64; i++)
        CHECK(parse_u64(bad_u64[i], &u) == -1, "parse_u64('%s') refused", bad_u64[i]);
    int c, h, w;
    const char *bad_shapes[] = {"1x12x12x", "x1x12x12", "1x12x",     "1xx12x12", "1x12x12x3", "1x12",
                                "0x12x12",  "1x12x12 ", "1x0x10x10", "1x+12x12", "1X12X12"};
    for (size_t i = 0; i < sizeof bad_shapes / sizeof *bad_shapes; i++)
        CHECK(model_parse_shape(bad_shapes[i], &c, &h, &w) == -1, "shape '%s' refused", bad_shapes[i]);
    CHECK(model_parse_shape("3x105x7", &c, &h, &w) == 0 && c == 3 && h == 105 && w == 7, "shape 3x105x7");
}

/* image_load of bytes written to name: 0 with the pixels, or -1 with e. */
static int load_bytes(const char *name, const void *d, size_t n, Image *img, Err *e) {
    fixture_write_file(fixture_path(name), d, n);
    return image_load(img, fixture_path(name), e);
}

static void expect_image_error(const char *name, const void *d, size_t n, const char *what) {
    Image img;
    Err e = {""};
    int rc = load_bytes(name, d, n, &img, &e);
    CHECK(rc == -1 && strstr(e.msg, name) && strstr(e.msg, what) && !strchr(e.msg, '\n'),
          "%s: want an error with '%s', got: %s", name, what, rc ? e.msg : "accepted");
    if (rc == 0) image_free(&img);
}

static void test_pgm(void) {
    Image img;
    Err e;
    static const char p5[] = "P5\n2 2\n255\n\x01\x02\x03\x04";
    CHECK(load_bytes("ok.pgm", p5, sizeof p5 - 1, &img, &e) == 0 && img.pixels[3] == 4, "P5 2x2: %s", e.msg);
    image_free(&img);
    static const char p5x[] = "P5\n2 2\n255\n\x01\x02\x03\x04"
                              "EXTRA";
    expect_image_error("tail.pgm", p5x, sizeof p5x - 1, "5 bytes after its 4 pixel bytes");
    static const char p5two[] = "P5\n1 1\n255\n\x07P5\n1 1\n255\n\x08";
    expect_image_error("two.pgm", p5two, sizeof p5two - 1, "after its 1 pixel bytes");
    static const char p2[] = "P2\n# c\n2 2\n255\n1 2\n3 4 # end\n\n";
    CHECK(load_bytes("ok2.pgm", p2, sizeof p2 - 1, &img, &e) == 0 && img.pixels[0] == 1 && img.pixels[3] == 4,
          "P2 with comments and trailing space: %s", e.msg);
    image_free(&img);
    static const char hex[] = "P2\n2 2\n255\n1 2 3 0x4\n";
    expect_image_error("hex.pgm", hex, sizeof hex - 1, "malformed at pixel 3");
    static const char p2tail[] = "P2\n2 2\n255\n1 2 3 4\n5\n";
    expect_image_error("tail2.pgm", p2tail, sizeof p2tail - 1, "other data after its 4 pixels");
    static const char hdr[] = "P5\n2x 2\n255\n\x01\x02\x03\x04";
    expect_image_error("hdr.pgm", hdr, sizeof hdr - 1, "bad PGM header");
    /* 65535 x 4096 claimed by a 20-byte file: refused before 256 MB is made. */
    static const char big5[] = "P5\n65535 4096\n255\n\x01";
    expect_image_error("big5.pgm", big5, sizeof big5 - 1, "cannot hold 4096x65535 pixels");
    static const char big2[] = "P2\n60000 4000\n255\n1 2 3\n";
    expect_image_error("big2.pgm", big2, sizeof big2 - 1, "cannot hold 4000x60000 pixels");
}

/* A baseline JPEG of 478 bytes claiming 65289 x 254 pixels (found by
 * fuzz_image, kept in its corpus with the harness's mode byte first). */
static void test_jpeg_claims(void) {
    FILE *f = fopen("fuzz/corpus/image/regress-jpeg-claims-16M-pixels", "rb");
    uint8_t b[1024];
    size_t n = f ? fread(b, 1, sizeof b, f) : 0;
    if (f) fclose(f);
    CHECK(n > 100, "the fuzz corpus file is there (%zu bytes)", n);
    if (n > 1)
        expect_image_error("claims.jpg", b + 1, n - 1, "254x65289 (HxW) pixels cannot come from 478 bytes");
}

static void put_be32(uint8_t *p, uint32_t v) { fixture_put_be32(p, v); }

/* Appends a PNG chunk (length, type, data, CRC) at b + *n. */
static void png_chunk(uint8_t *b, size_t *n, const char *type, const uint8_t *d, uint32_t len) {
    put_be32(b + *n, len);
    memcpy(b + *n + 4, type, 4);
    if (len) memcpy(b + *n + 8, d, len);
    put_be32(b + *n + 8 + len, (uint32_t)crc32(0, b + *n + 4, 4 + len));
    *n += 12 + len;
}

static void test_png_claims(void) {
    /* A valid PNG header claiming 16384 x 16384 grey with a 12-byte IDAT. */
    uint8_t b[256], ihdr[13] = {0}, idat[12] = {0x78, 0x9c, 0x63, 0, 0, 0, 1, 0, 1};
    size_t n = 8;
    memcpy(b, "\x89PNG\r\n\x1a\n", 8);
    put_be32(ihdr, 16384);
    put_be32(ihdr + 4, 16384);
    ihdr[8] = 8; /* bit depth; colour type 0 grey, no interlace */
    png_chunk(b, &n, "IHDR", ihdr, 13);
    png_chunk(b, &n, "IDAT", idat, sizeof idat);
    png_chunk(b, &n, "IEND", NULL, 0);
    expect_image_error("big.png", b, n, "cannot come from");
}

/* Imports idx files expecting an error that names `file` and says `what`. */
static void expect_idx_error(const char *images, const char *labels, const char *file, const char *what) {
    ImportOptions o = {.format = IMPORT_IDX,
                       .out = fixture_path("out.lmdb"),
                       .images = fixture_path(images),
                       .labels = fixture_path(labels)};
    ImportResult r;
    Err e = {""};
    int rc = import_run(&o, &r, &e);
    CHECK(rc == -1 && strstr(e.msg, file) && strstr(e.msg, what) && !strstr(e.msg, "out.lmdb") &&
              !strchr(e.msg, '\n'),
          "%s + %s: want an error naming %s with '%s', got: %s", images, labels, file, what,
          rc ? e.msg : "ok");
    CHECK(!fixture_exists(o.out) && !fixture_leftover_tmp(), "%s: nothing left behind", images);
}

/* A gzip file of the bytes with its last `cut` bytes (of the 8-byte CRC and
 * length trailer) removed. */
static void write_gz_cut(const char *name, const uint8_t *d, size_t n, size_t cut) {
    uLong cap = compressBound((uLong)n) + 64;
    uint8_t *z = xmalloc(cap);
    z_stream s;
    memset(&s, 0, sizeof s);
    ASSERT(deflateInit2(&s, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    s.next_in = (Bytef *)d;
    s.avail_in = (uInt)n;
    s.next_out = z;
    s.avail_out = (uInt)cap;
    ASSERT(deflate(&s, Z_FINISH) == Z_STREAM_END);
    size_t zn = s.total_out;
    deflateEnd(&s);
    fixture_write_file(fixture_path(name), z, zn - cut);
    free(z);
}

static void test_idx(void) {
    uint8_t px[4 * 2 * 3], lab[4] = {0, 1, 0, 1};
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)i;
    uint32_t di[3] = {4, 2, 3}, dl[1] = {4};
    fixture_write_idx(fixture_path("i.idx"), 0, 0x803, di, 3, px, sizeof px, 0);
    fixture_write_idx(fixture_path("l.idx"), 0, 0x801, dl, 1, lab, 4, 0);
    /* 65535 x 65535 images: within each side's range, too many pixels. */
    uint32_t dbig[3] = {2, 65535, 65535};
    fixture_write_idx(fixture_path("big.idx"), 0, 0x803, dbig, 3, px, 0, 0);
    expect_idx_error("big.idx", "l.idx", "big.idx", "2 images of 65535x65535 (HxW)");
    /* A header claiming 4 billion labels with 4 of them: refused before
     * anything is allocated (plain: exact size; gzip: what it can hold). */
    uint32_t dlots[1] = {4000000000u};
    fixture_write_idx(fixture_path("lots.idx"), 0, 0x801, dlots, 1, lab, 4, 0);
    uint32_t dimany[3] = {4000000000u, 2, 3};
    fixture_write_idx(fixture_path("many.idx"), 0, 0x803, dimany, 3, px, sizeof px, 0);
    fixture_write_idx(fixture_path("many.idx.gz"), 1, 0x803, dimany, 3, px, sizeof px, 0);
    expect_idx_error("many.idx", "lots.idx", "many.idx", "truncated");
    expect_idx_error("many.idx.gz", "lots.idx", "many.idx.gz", "more than this gzip file can hold");
    uint32_t dl5[1] = {5};
    uint8_t lab5[6] = {0, 1, 0, 1, 0, 1};
    fixture_write_idx(fixture_path("l5.idx"), 0, 0x801, dl5, 1, lab5, 6, 0);
    uint32_t di5[3] = {5, 2, 3};
    fixture_write_idx(fixture_path("i5.idx"), 0, 0x803, di5, 3, px, sizeof px, 0);
    expect_idx_error("i5.idx", "l5.idx", "i5.idx", "truncated");
    fixture_write_idx(fixture_path("i5long.idx"), 0, 0x803, di, 3, px, sizeof px, 0);
    expect_idx_error("i.idx", "l5.idx", "i.idx", "4 images but");
    /* gzip without (part of) its trailer: every data byte is there, only the
     * CRC and length are missing. */
    uint8_t raw[8 + 4];
    memcpy(raw, "\0\0\x08\x01\0\0\0\x04", 8);
    memcpy(raw + 8, lab, 4);
    write_gz_cut("l8.idx.gz", raw, sizeof raw, 8);
    write_gz_cut("l4.idx.gz", raw, sizeof raw, 4);
    write_gz_cut("l0.idx.gz", raw, sizeof raw, 0);
    expect_idx_error("i.idx", "l8.idx.gz", "l8.idx.gz", "without its CRC and length trailer");
    expect_idx_error("i.idx", "l4.idx.gz", "l4.idx.gz", "without its CRC and length trailer");
    ImportOptions o = {.format = IMPORT_IDX,
                       .out = fixture_path("good.lmdb"),
                       .images = fixture_path("i.idx"),
                       .labels = fixture_path("l0.idx.gz")};
    ImportResult r;
    Err e;
    CHECK(import_run(&o, &r, &e) == 0 && r.count[0] == 4, "the complete gzip file imports: %s", e.msg);
}

/* Found by fuzz_config and fuzz_mot. */
static void test_text_inputs(void) {
    static Config c;
    Err e = {""};
    CHECK(config_parse_text(&c, "[run]\ndir = a\x1b[2Jb\n[relu]\n", "esc.ini", &e) == -1 &&
              strstr(e.msg, "esc.ini:2") && strstr(e.msg, "control characters"),
          "an escape sequence in a text value: %s", e.msg);
    CHECK(config_parse_text(&c, "[run]\ndir = runs/x\n[relu]\n", "ok.ini", &e) == 0, "%s", e.msg);
    CHECK(config_set(&c, "run.dir=a\nb", &e) == -1 && !strchr(e.msg, '\n') && strstr(e.msg, "run.dir=a?b"),
          "--set with a newline: one line, the newline shown as '?': %s", e.msg);
    CHECK(config_set(&c, "no\tsuch.key=1", &e) == -1 && !strchr(e.msg, '\t'), "a tab in --set: %s", e.msg);
    /* Values the canonical text could not give back (a ';' after '=' is a
     * comment there), and layer names that are not identifiers. */
    CHECK(config_parse_text(&c, "[linear]\nname =;x\nout = 2\n", "semi.ini", &e) == -1 &&
              strstr(e.msg, "semi.ini:2"),
          "a layer name ';x': %s", e.msg);
    CHECK(config_parse_text(&c, "[linear]\nname = a.b\nout = 2\n", "dot.ini", &e) == -1 &&
              strstr(e.msg, "letters, digits"),
          "a layer name with a dot: %s", e.msg);
    CHECK(config_set(&c, "run.dir= x", &e) == -1 && strstr(e.msg, "cannot start with ';' or a space"),
          "--set run.dir=' x': %s", e.msg);
    CHECK(config_set(&c, "run.dir=a ;b", &e) == -1, "--set run.dir='a ;b': %s", e.msg);
    CHECK(config_set(&c, "run.dir=runs/a;b#1", &e) == 0, "';' and '#' inside a value are kept: %s", e.msg);
    MotSeqInfo info = {.frames = 5, .width = 100, .height = 50};
    MotBoxes b;
    static const char res[] = "1,3,10,20,30,40,1e60,-1,-1,-1\n";
    CHECK(mot_parse_boxes(res, sizeof res - 1, "res.txt", MOT_RES, &info, &b, &e) == -1 &&
              strstr(e.msg, "res.txt:1") && strstr(e.msg, "score"),
          "a score beyond float range (it would be written as inf): %s", e.msg);
}

int main(void) {
    fixture_dir_create("hostile");
    test_text_inputs();
    test_numbers();
    test_pgm();
    test_png_claims();
    test_jpeg_claims();
    test_idx();
    fixture_rm_tree(fixture_dir());
    return test_finish();
}
