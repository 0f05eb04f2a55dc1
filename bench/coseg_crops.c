/* coseg_crops: every object of a co-segmentation set with class masks as a
 * fixed-size crop, for an object classifier outside (docs/coseg.md, "A
 * ceiling"). It reads CLASS_DB (`siamese synth coseg --class-masks`: every
 * object's visible pixels labelled with its class + 1; an image holds
 * objects of different classes, so a class value is an object) and writes,
 * for each object of each sample in order (class values ascending):
 *   PREFIX.crops.npy    uint8 (objects, 2, S, S): channel 0 the image as
 *                       rendered (background and occluders included),
 *                       channel 1 the object's visible pixels (255), both
 *                       resampled bilinearly from the square around the
 *                       object's visible pixels (the longer side of their
 *                       bounding box, plus MARGIN of it on every side, same
 *                       centre); outside the image 0
 *   PREFIX.objects.npy  float32 (objects, 6): sample, class (value - 1),
 *                       visible pixels, square's left x, top y and side
 *                       (in image pixels; x and y may be negative)
 *   PREFIX.pairs.npy    float32 (pairs, 3): sample a, sample b, 1 when the
 *                       pair has a common object
 *   coseg_crops CLASS_DB PREFIX [--size S] [--margin F] [--samples N]
 * --size: S, 8-128 (default 32); --margin: 0-1 (default 0.15); --samples:
 * the first N samples only (default all; pairs.npy is then the pairs of
 * those samples). Files are written whole or not at all (temporary
 * files renamed at the end). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../io/dataset.h"
#include "../io/npy.h"
#include "../nn/util.h"

#define MAXC 256 /* class values are bytes */

static char tmp_path[4200];

static void die(const char *msg) {
    if (tmp_path[0]) unlink(tmp_path);
    fprintf(stderr, "coseg_crops: %s\n", msg);
    exit(1);
}

/* The npy header of a uint8 (n, 2, s, s) array, padded so that the data
 * start at byte 128 whatever n is (so it can be rewritten in place). */
static void u8_header(char hdr[128], uint64_t n, int s) {
    memset(hdr, ' ', 128);
    memcpy(hdr, "\x93NUMPY\x01\x00", 8);
    hdr[8] = 118, hdr[9] = 0; /* header length: 128 - 10 */
    char d[118];
    int len = snprintf(d, sizeof d, "{'descr': '|u1', 'fortran_order': False, 'shape': (%llu, 2, %d, %d), }",
                       (unsigned long long)n, s, s);
    memcpy(hdr + 10, d, (size_t)len);
    hdr[127] = '\n';
}

/* Bilinear sample of plane p (h x w, bytes) at (y, x), 0 outside. */
static double sample(const uint8_t *p, int h, int w, double y, double x) {
    int y0 = (int)floor(y), x0 = (int)floor(x);
    double fy = y - y0, fx = x - x0, v = 0;
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) {
            int yy = y0 + dy, xx = x0 + dx;
            double wgt = (dy ? fy : 1 - fy) * (dx ? fx : 1 - fx);
            if (wgt == 0 || yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
            v += wgt * p[(size_t)yy * w + xx];
        }
    return v;
}

int main(int argc, char **argv) {
    if (argc < 3 || argv[1][0] == '-') {
        fprintf(stderr, "usage: coseg_crops CLASS_DB PREFIX [--size S] [--margin F] [--samples N]\n");
        return 2;
    }
    long size = 32, nsamples = -1;
    double margin = 0.15;
    for (int i = 3; i < argc; i += 2) {
        if (i + 1 >= argc) {
            fprintf(stderr, "coseg_crops: %s needs a value\n", argv[i]);
            return 2;
        }
        const char *k = argv[i], *v = argv[i + 1];
        char *end;
        if (!strcmp(k, "--size")) {
            if (parse_long(v, 8, 128, &size)) {
                fprintf(stderr, "coseg_crops: --size %s: expected a whole number in [8, 128]\n", v);
                return 2;
            }
        } else if (!strcmp(k, "--samples")) {
            if (parse_long(v, 1, 1000000000, &nsamples)) {
                fprintf(stderr, "coseg_crops: --samples %s: expected a whole number in [1, 1e9]\n", v);
                return 2;
            }
        } else if (!strcmp(k, "--margin")) {
            margin = strtod(v, &end);
            if (end == v || *end || !(margin >= 0 && margin <= 1)) {
                fprintf(stderr, "coseg_crops: --margin %s: expected a number in [0, 1]\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "coseg_crops: bad option %s %s\n", k, v);
            return 2;
        }
    }
    Err e;
    Dataset *cs;
    DsReader *cr;
    char msg[4600];
    if (ds_open(&cs, argv[1], &e) || ds_reader_open(cs, &cr, &e)) die(e.msg);
    const DsMeta *m = ds_meta(cs);
    if (m->has_masks != DS_MASKS_CLASS || m->channels != 1) {
        snprintf(msg, sizeof msg,
                 "%s: not a grey dataset with class masks: make it with `siamese synth coseg "
                 "--class-masks`",
                 argv[1]);
        die(msg);
    }
    uint64_t count = m->count;
    if (nsamples > 0 && (uint64_t)nsamples < count) count = (uint64_t)nsamples;
    const int h = (int)m->height, w = (int)m->width, s = (int)size;
    const size_t hw = (size_t)h * w, crop = 2 * (size_t)s * s;
    /* The tables store sample numbers as float32, exact up to 2^24; objects.npy
     * is held in memory and grows (at most MAXC - 1 objects a sample, so at
     * most 2^24 x (MAXC - 1) rows), the crops go straight to the file */
    if (count > ((uint64_t)1 << 24)) {
        snprintf(msg, sizeof msg,
                 "%s: %llu samples: the tables number samples exactly up to 16777216 only: use --samples",
                 argv[1], (unsigned long long)count);
        die(msg);
    }
    size_t cap = 4096, nobj = 0;
    float *obj = xmalloc(cap * 6 * sizeof *obj);
    uint8_t *px = xmalloc(hw), *cls = xmalloc(hw), *out = xmalloc(crop), *plane = xmalloc(hw);
    char path[4200];
    snprintf(path, sizeof path, "%s.crops.npy", argv[2]);
    snprintf(tmp_path, sizeof tmp_path, "%s.crops.npy.tmp", argv[2]);
    FILE *f = fopen(tmp_path, "wb");
    if (!f) {
        tmp_path[0] = 0;
        snprintf(msg, sizeof msg, "%s: cannot write: check the directory", path);
        die(msg);
    }
    char hdr[128];
    u8_header(hdr, 0, s);
    if (fwrite(hdr, 1, 128, f) != 128) die("cannot write the crops: disk full?");
    for (uint64_t id = 0; id < count; id++) {
        int32_t lab;
        if (ds_read(cr, id, px, &lab, cls, &e)) die(e.msg);
        int y0[MAXC], y1[MAXC], x0[MAXC], x1[MAXC];
        size_t pix[MAXC] = {0};
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int c = cls[(size_t)y * w + x];
                if (!c) continue;
                if (!pix[c]) y0[c] = y1[c] = y, x0[c] = x1[c] = x;
                pix[c]++;
                y0[c] = MIN(y0[c], y), y1[c] = MAX(y1[c], y), x0[c] = MIN(x0[c], x), x1[c] = MAX(x1[c], x);
            }
        for (int c = 1; c < MAXC; c++) {
            if (!pix[c]) continue;
            int side0 = MAX(y1[c] - y0[c], x1[c] - x0[c]) + 1;
            double side = side0 * (1 + 2 * margin);
            double cy = (y0[c] + y1[c] + 1) / 2.0, cx = (x0[c] + x1[c] + 1) / 2.0;
            double top = cy - side / 2, left = cx - side / 2, step = side / s;
            for (size_t p = 0; p < hw; p++) plane[p] = cls[p] == c ? 255 : 0;
            for (int oy = 0; oy < s; oy++)
                for (int ox = 0; ox < s; ox++) {
                    /* pixel centres: output (oy + 0.5) * step from the top, input y + 0.5 */
                    double sy = top + (oy + 0.5) * step - 0.5, sx = left + (ox + 0.5) * step - 0.5;
                    out[(size_t)oy * s + ox] = (uint8_t)lround(sample(px, h, w, sy, sx));
                    out[(size_t)s * s + (size_t)oy * s + ox] = (uint8_t)lround(sample(plane, h, w, sy, sx));
                }
            if (fwrite(out, 1, crop, f) != crop) die("cannot write the crops: disk full?");
            if (nobj == cap) {
                cap *= 2;
                obj = xrealloc(obj, cap * 6 * sizeof *obj);
            }
            float *o = obj + nobj * 6;
            o[0] = (float)id, o[1] = (float)(c - 1), o[2] = (float)pix[c];
            o[3] = (float)left, o[4] = (float)top, o[5] = (float)side;
            nobj++;
        }
    }
    u8_header(hdr, nobj, s);
    if (fseek(f, 0, SEEK_SET) || fwrite(hdr, 1, 128, f) != 128 || fclose(f))
        die("cannot write the crops: disk full?");
    /* the pairs of the samples written */
    uint64_t n = m->npairs, np = 0;
    uint32_t *pa = xmalloc(n * sizeof *pa + 1), *pb = xmalloc(n * sizeof *pb + 1);
    uint8_t *same = xmalloc(n + 1);
    if (n && ds_load_pairs(cs, pa, pb, same, &e)) die(e.msg);
    float *pr = xmalloc(n * 3 * sizeof *pr + 1);
    for (uint64_t i = 0; i < n; i++) {
        if (pa[i] >= count || pb[i] >= count) continue;
        pr[3 * np] = (float)pa[i], pr[3 * np + 1] = (float)pb[i], pr[3 * np + 2] = same[i];
        np++;
    }
    char opath[4200];
    snprintf(opath, sizeof opath, "%s.objects.npy", argv[2]);
    if (npy_write_f32(opath, obj, (int64_t)nobj, 6, &e)) die(e.msg);
    snprintf(opath, sizeof opath, "%s.pairs.npy", argv[2]);
    if (npy_write_f32(opath, pr, (int64_t)np, 3, &e)) {
        snprintf(opath, sizeof opath, "%s.objects.npy", argv[2]);
        unlink(opath);
        die(e.msg);
    }
    if (rename(tmp_path, path)) {
        unlink(opath);
        snprintf(opath, sizeof opath, "%s.objects.npy", argv[2]);
        unlink(opath);
        snprintf(msg, sizeof msg, "%s: cannot write: check the directory", path);
        die(msg);
    }
    printf("%llu samples: %zu objects as %dx%d crops in %s; %llu pairs\n", (unsigned long long)count, nobj, s,
           s, path, (unsigned long long)np);
    free(obj), free(px), free(cls), free(out), free(plane), free(pa), free(pb), free(same), free(pr);
    ds_reader_close(cr);
    ds_close(cs);
    return 0;
}
