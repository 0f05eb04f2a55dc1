/* cmd_segment: `siamese segment CHECKPOINT (--data DB [--pairs N] | --image A
 * --image B) --out DIR [--tta 2]`: the masks a co-segmentation model predicts, as
 * pictures a person can look at. For each image: NAME.mask.png (0 / 255)
 * and NAME.overlay.png (the image with the mask tinted and outlined in
 * red); with --data also overview.png, one row per pair: a and b with the
 * predicted masks (red), then with the true ones (green), at twice the size.
 * Single process, no MPI. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../io/image.h"
#include "eval_coseg.h"
#include "evaluate.h"

static const char segment_usage[] =
    "usage: siamese segment CHECKPOINT --data DB --out DIR [--pairs N] [--tta 2]\n"
    "       siamese segment CHECKPOINT --image A --image B --out DIR [--tta 2]\n\n"
    "Runs a co-segmentation model ([loss] type = mask) on the first N pairs records of DB\n"
    "(default 8) or on the two image files A and B (PGM, PNG or JPEG, resized to the model's\n"
    "input), and writes into DIR each predicted mask (NAME.mask.png: 255 = object) and an\n"
    "overlay (NAME.overlay.png: the image with the mask tinted and outlined in red). NAME is\n"
    "pair-I-a / pair-I-b for pairs record I, a / b for --image. With --data also overview.png:\n"
    "one row per pair, a and b with the predicted masks (red) and the true ones (green; not\n"
    "for a dataset of class masks, which mark every object). --tta 2: every pair also runs\n"
    "mirrored left-right and each pixel's two logits (the second mirrored back) are averaged\n"
    "before the threshold, as siamese eval --tta 2 scores them.\n";

static const uint8_t RED[3] = {255, 40, 40}, GREEN[3] = {40, 220, 40};
#define ALPHA 0.45f
#define SCALE 2 /* overview.png: pixels per model pixel */
#define GAP 4   /* overview.png: white pixels between pictures */

/* The output directory, created once the input is known to be good (so a
 * bad input leaves nothing behind). */
static int make_out_dir(const char *dir, Err *e) {
    struct stat st;
    if (mkdir(dir, 0755) != 0 && !(errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)))
        return err_set(e, "%s: cannot create the output directory: %s", dir, strerror(errno));
    return 0;
}

/* DIR/NAME.mask.png and DIR/NAME.overlay.png of one image (planar C x H x W). */
static int write_pictures(const char *dir, const char *name, const uint8_t *image, int c, const uint8_t *mask,
                          uint32_t h, uint32_t w, Err *e) {
    char path[4096];
    uint8_t *rgb = xmalloc((size_t)h * w * 3);
    snprintf(path, sizeof path, "%s/%s.mask.png", dir, name);
    int rc = image_write_png(path, mask, h, w, 1, e);
    image_overlay_mask(rgb, image, c, mask, h, w, RED, ALPHA);
    snprintf(path, sizeof path, "%s/%s.overlay.png", dir, name);
    if (!rc) rc = image_write_png(path, rgb, h, w, 3, e);
    free(rgb);
    return rc;
}

/* Pastes the overlay of (image, mask) at SCALE into the overview sheet
 * (sheet_w pixels wide, RGB) with its top-left corner at (y0, x0). */
static void paste(uint8_t *sheet, uint32_t sheet_w, uint32_t y0, uint32_t x0, const uint8_t *image, int c,
                  const uint8_t *mask, uint32_t h, uint32_t w, const uint8_t colour[3]) {
    uint8_t *rgb = xmalloc((size_t)h * w * 3);
    image_overlay_mask(rgb, image, c, mask, h, w, colour, ALPHA);
    for (uint32_t y = 0; y < h * SCALE; y++)
        for (uint32_t x = 0; x < w * SCALE; x++)
            memcpy(sheet + (((size_t)(y0 + y) * sheet_w) + x0 + x) * 3,
                   rgb + ((size_t)(y / SCALE) * w + x / SCALE) * 3, 3);
    free(rgb);
}

static int segment_data(Model *m, const Norm *norm, const char *data, long npairs, int views, const char *dir,
                        Err *e) {
    Dataset *ds;
    if (ds_open(&ds, data, e)) return -1;
    const DsMeta *meta = ds_meta(ds);
    if (meta->npairs == 0) {
        err_set(e, "%s has no pairs records: use siamese synth coseg, siamese pairs, or --image A --image B",
                data);
        ds_close(ds);
        return -1;
    }
    uint64_t n = MIN((uint64_t)npairs, meta->npairs);
    uint32_t *a = xmalloc(meta->npairs * sizeof *a), *b = xmalloc(meta->npairs * sizeof *b);
    uint8_t *same = xmalloc(meta->npairs);
    CosegRunner r = {0};
    int rc = ds_load_pairs(ds, a, b, same, e) || coseg_runner_open(&r, m, ds, norm, views, e) ||
                     make_out_dir(dir, e)
                 ? -1
                 : 0;
    uint32_t h = (uint32_t)m->in_h, w = (uint32_t)m->in_w, c = (uint32_t)m->in_c;
    size_t npix = (size_t)h * w, img = c * npix;
    uint32_t cols = r.has_masks ? 4 : 2, tw = w * SCALE, th = h * SCALE;
    uint32_t sheet_w = cols * tw + (cols + 1) * GAP, sheet_h = (uint32_t)n * th + ((uint32_t)n + 1) * GAP;
    uint8_t *sheet = xmalloc((size_t)sheet_w * sheet_h * 3), *empty = xcalloc(npix, 1);
    memset(sheet, 255, (size_t)sheet_w * sheet_h * 3);
    for (uint64_t p0 = 0; p0 < n && rc == 0; p0 += (uint64_t)r.cap) {
        int k = (int)MIN((uint64_t)r.cap, n - p0);
        if (coseg_runner_run(&r, a + p0, b + p0, k, e)) {
            rc = -1;
            break;
        }
        for (int row = 0; row < 2 * k && rc == 0; row++) {
            uint64_t p = p0 + (uint64_t)(row % k);
            int half = row >= k;
            char name[64];
            snprintf(name, sizeof name, "pair-%llu-%c", (unsigned long long)p, half ? 'b' : 'a');
            const uint8_t *px = r.pix + (size_t)row * img, *pred = r.pred + (size_t)row * npix;
            rc = write_pictures(dir, name, px, (int)c, pred, h, w, e);
            uint32_t y0 = GAP + (uint32_t)p * (th + GAP);
            paste(sheet, sheet_w, y0, GAP + (uint32_t)half * (tw + GAP), px, (int)c, pred, h, w, RED);
            if (r.has_masks)
                paste(sheet, sheet_w, y0, GAP + (uint32_t)(2 + half) * (tw + GAP), px, (int)c,
                      same[p] ? r.truth + (size_t)row * npix : empty, h, w, GREEN);
        }
    }
    if (rc == 0) {
        char path[4096];
        snprintf(path, sizeof path, "%s/overview.png", dir);
        rc = image_write_png(path, sheet, sheet_h, sheet_w, 3, e);
        if (rc == 0)
            printf("wrote %llu pairs into %s: pair-I-a/b.mask.png, pair-I-a/b.overlay.png, overview.png\n",
                   (unsigned long long)n, dir);
    }
    free(sheet), free(empty), free(a), free(b), free(same);
    coseg_runner_close(&r);
    ds_close(ds);
    return rc;
}

/* One image file as the model's planar input pixels (resized, grey or RGB). */
static int load_image(uint8_t *out, const Model *m, const char *path, Err *e) {
    Image im;
    if (image_load_color(&im, path, m->in_c == 3, e)) return -1;
    uint32_t h = (uint32_t)m->in_h, w = (uint32_t)m->in_w, c = im.channels;
    size_t n = (size_t)im.height * im.width;
    uint8_t *plane = xmalloc(n);
    for (uint32_t ch = 0; ch < c; ch++) {
        for (size_t i = 0; i < n; i++) plane[i] = im.pixels[i * c + ch];
        image_resize(out + (size_t)ch * h * w, h, w, plane, im.height, im.width);
    }
    free(plane);
    image_free(&im);
    return 0;
}

static int segment_images(Model *m, const Norm *norm, const char *const img[2], int views, const char *dir,
                          Err *e) {
    ASSERT(norm->channels == m->in_c);
    size_t npix = (size_t)m->in_h * m->in_w, in = (size_t)m->in_c * npix;
    uint8_t *px = xmalloc(2 * in), *pred = xmalloc(2 * npix);
    float *x = xaligned_floats(2 * in), *logit = xmalloc(2 * npix * sizeof *logit);
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++) rc = load_image(px + (size_t)i * in, m, img[i], e);
    if (rc == 0) rc = make_out_dir(dir, e);
    if (rc == 0) {
        for (int i = 0; i < 2; i++) norm_apply(x + (size_t)i * in, px + (size_t)i * in, norm, npix);
        coseg_logits(m, x, 2, views, logit);
        coseg_threshold(pred, logit, 2 * npix);
        for (int i = 0; i < 2 && rc == 0; i++)
            rc = write_pictures(dir, i ? "b" : "a", px + (size_t)i * in, m->in_c, pred + (size_t)i * npix,
                                (uint32_t)m->in_h, (uint32_t)m->in_w, e);
        if (rc == 0) printf("wrote a.mask.png, a.overlay.png, b.mask.png, b.overlay.png into %s\n", dir);
    }
    free(px), free(pred), free(x), free(logit);
    return rc;
}

int cmd_segment(int argc, char **argv) {
    const char *ckpt = NULL, *data = NULL, *out = NULL, *img[2] = {NULL, NULL};
    int nimg = 0;
    long pairs = 8, tta = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(segment_usage, stdout);
            return 0;
        }
        if (!v && a[0] == '-') {
            fprintf(stderr, "siamese segment: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--data"))
            data = v, i++;
        else if (!strcmp(a, "--out"))
            out = v, i++;
        else if (!strcmp(a, "--image")) {
            if (nimg == 2) {
                fprintf(stderr, "siamese segment: --image given more than twice: a pair is two images\n");
                return 2;
            }
            img[nimg++] = v, i++;
        } else if (!strcmp(a, "--pairs")) {
            if (parse_long(v, 1, 100000, &pairs)) {
                fprintf(stderr, "siamese segment: --pairs %s: expected a whole number in [1, 100000]\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--tta")) {
            if (parse_long(v, 1, 1000, &tta) || tta > COSEG_MAX_VIEWS) {
                fprintf(stderr, "siamese segment: --tta %s: " COSEG_TTA_ONLY "\n", v);
                return 2;
            }
            i++;
        } else if (a[0] != '-' && !ckpt)
            ckpt = a;
        else {
            fprintf(stderr, "siamese segment: unexpected argument '%s'; see siamese segment --help\n", a);
            return 2;
        }
    }
    if (!ckpt || !out || (!data) == (nimg == 0) || (nimg != 0 && nimg != 2)) {
        fprintf(stderr,
                "siamese segment: need CHECKPOINT, --out DIR and either --data DB or --image A --image B; "
                "see siamese segment --help\n");
        return 2;
    }
    EvalModel l;
    Err e = {{0}};
    if (eval_model_load(&l, ckpt, 32, &e)) {
        fprintf(stderr, "siamese segment: %s\n", e.msg);
        return 1;
    }
    int rc = coseg_model_check(&l.model, ckpt, &e);
    if (rc == 0)
        rc = data ? segment_data(&l.model, &l.norm, data, pairs, (int)tta, out, &e)
                  : segment_images(&l.model, &l.norm, img, (int)tta, out, &e);
    if (rc) fprintf(stderr, "siamese segment: %s\n", e.msg);
    eval_model_free(&l);
    return rc ? 1 : 0;
}
