/* coseg_errors: where a co-segmentation model's Jaccard is lost
 * (docs/coseg.md, "Where the Jaccard is lost"). It reads the predicted masks
 * `siamese segment --data TEST_DB --pairs N` wrote into DIR, the test set
 * TEST_DB (object masks: in a pair with a common object, its visible
 * pixels; the pair table says which pairs have one) and the same
 * images with class masks (CLASS_DB: `siamese synth coseg --class-masks`
 * with the same seed, side and pairs: every object's pixels labelled with
 * its class + 1; an image holds objects of different classes, so a class is
 * an object). For each image of a pair with a common object it splits the
 * marked pixels into those on the common object, on the image's other
 * objects and on the background, and says whether the model picked the
 * right object: more of its pixels marked than of any other single object.
 * Printed for seen and unseen classes and per class: the Jaccard (as
 * `siamese eval` computes it), the share of images whose object was picked,
 * the Jaccard of those and of the rest, and the Jaccard with the other
 * objects' marked pixels taken away (what a model that never marks a wrong
 * object would score with the same outlines).
 *   coseg_errors TEST_DB CLASS_DB DIR [--pairs N] [--unseen IDS]
 *                [--features PREFIX --feature-shape CxHxW]
 *   coseg_errors TEST_DB CLASS_DB DIR --write right|other|empty|classes [--pairs N]
 * --pairs: the first N pairs (default: pairs 0, 1, ... while DIR has both
 * masks of each);
 * --unseen: comma-separated class ids not seen in training (default 8,9,
 * synth coseg's). --write makes predictions with known answers instead (for
 * the tests): `right` marks the true mask (nothing in a pair without a
 * common object), `other` the largest other object of the image, `empty`
 * nothing; `classes` writes DIR/classes.npy and DIR/pairs.npy instead.
 * --features: PREFIX.emb.npy from `siamese embed` of a model whose embedding
 * is its encoder's feature map (C x H x W, cells of whole pixel blocks): each
 * object's features after a ReLU, pooled over its true pixels (a cell
 * weighted by the object's pixels in it), and the object of one image whose
 * best cosine with an object of the partner is highest is the one picked:
 * how well the features alone pick, with a perfect segmentation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../io/dataset.h"
#include "../io/image.h"
#include "../io/npy.h"
#include "../nn/util.h"

#define MAXC 256 /* class ids in class masks are bytes */

typedef struct {
    double images, jaccard, picked, jac_picked, jac_missed, clean, empty;
    double on_common, on_other, on_bg; /* marked pixels, summed */
} Sums;

static void sums_add(Sums *s, double jac, int picked, double clean, int empty, size_t common, size_t other,
                     size_t bg) {
    s->images++;
    s->jaccard += jac;
    s->picked += picked;
    if (picked)
        s->jac_picked += jac;
    else
        s->jac_missed += jac;
    s->clean += clean;
    s->empty += empty;
    s->on_common += (double)common;
    s->on_other += (double)other;
    s->on_bg += (double)bg;
}

static double ratio(double a, double b) { return b > 0 ? a / b : NAN; }

static void sums_print(const char *what, const Sums *s) {
    double marked = s->on_common + s->on_other + s->on_bg;
    printf("%s: %.0f images, Jaccard %.4f, object picked %.4f (Jaccard %.4f picked, %.4f not), "
           "Jaccard without other objects' pixels %.4f\n",
           what, s->images, ratio(s->jaccard, s->images), ratio(s->picked, s->images),
           ratio(s->jac_picked, s->picked), ratio(s->jac_missed, s->images - s->picked),
           ratio(s->clean, s->images));
    printf("%s: marked pixels %.4f on the common object, %.4f on other objects, %.4f on background; "
           "empty predictions %.4f\n",
           what, ratio(s->on_common, marked), ratio(s->on_other, marked), ratio(s->on_bg, marked),
           ratio(s->empty, s->images));
}

static void die(const char *msg) {
    fprintf(stderr, "coseg_errors: %s\n", msg);
    exit(1);
}

/* Whether DIR holds both masks of pair i (without --pairs, the pairs are
 * read while it does: a pair is counted whole or not at all). */
static int pair_present(const char *dir, uint64_t i) {
    char path[4096];
    for (int side = 0; side < 2; side++) {
        snprintf(path, sizeof path, "%s/pair-%llu-%c.mask.png", dir, (unsigned long long)i, side ? 'b' : 'a');
        if (access(path, F_OK)) return 0;
    }
    return 1;
}

/* The mask DIR/pair-I-SIDE.mask.png into pred (h x w, 0/1); exits with the
 * file named when it is missing or not such a mask. */
static void load_pred(uint8_t *pred, const char *dir, uint64_t i, char side, uint32_t h, uint32_t w) {
    char path[4096], msg[4400];
    snprintf(path, sizeof path, "%s/pair-%llu-%c.mask.png", dir, (unsigned long long)i, side);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(msg, sizeof msg, "%s: cannot open: run `siamese segment CHECKPOINT --data TEST_DB --out %s --pairs N`",
                 path, dir);
        die(msg);
    }
    fclose(f);
    Image img;
    Err e;
    if (image_load(&img, path, &e)) die(e.msg);
    if (img.height != h || img.width != w || img.channels != 1) {
        snprintf(msg, sizeof msg, "%s: %ux%u with %u channels, expected a %ux%u grey mask as siamese segment writes",
                 path, img.width, img.height, img.channels, w, h);
        die(msg);
    }
    for (size_t p = 0; p < (size_t)h * w; p++) pred[p] = img.pixels[p] >= 128;
    image_free(&img);
}

/* --write classes: DIR/classes.npy (samples, H*W: the class masks) and
 * DIR/pairs.npy (pairs, 3: a, b, common object 0/1), for a reference
 * computation outside (the tests' numpy). */
static void write_classes(DsReader *cr, const DsMeta *m, const uint32_t *pa, const uint32_t *pb,
                          const uint8_t *same, uint64_t n, const char *dir) {
    size_t hw = (size_t)m->height * m->width;
    /* the whole table in memory: its size checked before anything is
     * allocated (COSEG_ERRORS_MAX_VALUES lowers the bound for the tests) */
    uint64_t most = 1ull << 28; /* 1 GiB of floats */
    const char *env = getenv("COSEG_ERRORS_MAX_VALUES");
    if (env && *env) most = strtoull(env, NULL, 10);
    if (n > most / 3 || m->count > (most - 3 * n) / MAX(hw, 1)) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "--write classes: %llu samples of %zu pixels and %llu pairs are more than %llu values: use a "
                 "smaller test set",
                 (unsigned long long)m->count, hw, (unsigned long long)n, (unsigned long long)most);
        die(msg);
    }
    float *c = xmalloc(m->count * hw * sizeof *c + 1), *pr = xmalloc(n * 3 * sizeof *pr + 1);
    uint8_t *px = xmalloc(hw * m->channels), *cls = xmalloc(hw);
    Err e;
    for (uint64_t i = 0; i < m->count; i++) {
        int32_t lab;
        if (ds_read(cr, i, px, &lab, cls, &e)) die(e.msg);
        for (size_t p = 0; p < hw; p++) c[i * hw + p] = cls[p];
    }
    for (uint64_t i = 0; i < n; i++) {
        pr[3 * i] = (float)pa[i];
        pr[3 * i + 1] = (float)pb[i];
        pr[3 * i + 2] = same[i];
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/classes.npy", dir);
    if (npy_write_f32(path, c, (int64_t)m->count, (int64_t)hw, &e)) die(e.msg);
    snprintf(path, sizeof path, "%s/pairs.npy", dir);
    if (npy_write_f32(path, pr, (int64_t)n, 3, &e)) die(e.msg);
    free(c), free(pr), free(px), free(cls);
}

/* Pools the features f (fc, fh, fw) after a ReLU over each object of the
 * class mask cls (h, w): a cell's weight is the object's pixel count in it.
 * vec (MAXC, fc): unit vectors; has[c] says whether class value c is there. */
static void pool_objects(float *vec, uint8_t *has, const float *f, int fc, int fh, int fw, const uint8_t *cls,
                         uint32_t h, uint32_t w) {
    int bh = (int)h / fh, bw = (int)w / fw;
    static double cnt[MAXC];
    memset(has, 0, MAXC);
    memset(vec, 0, (size_t)MAXC * fc * sizeof *vec);
    for (int cy = 0; cy < fh; cy++)
        for (int cx = 0; cx < fw; cx++) {
            memset(cnt, 0, sizeof cnt);
            for (int y = cy * bh; y < (cy + 1) * bh; y++)
                for (int x = cx * bw; x < (cx + 1) * bw; x++) cnt[cls[(size_t)y * w + x]]++;
            for (int c = 1; c < MAXC; c++) {
                if (!cnt[c]) continue;
                has[c] = 1;
                for (int ch = 0; ch < fc; ch++) {
                    float v = f[((size_t)ch * fh + cy) * fw + cx];
                    vec[(size_t)c * fc + ch] += (float)cnt[c] * (v > 0 ? v : 0);
                }
            }
        }
    for (int c = 1; c < MAXC; c++) {
        if (!has[c]) continue;
        double nn = 0;
        for (int ch = 0; ch < fc; ch++) nn += (double)vec[(size_t)c * fc + ch] * vec[(size_t)c * fc + ch];
        for (int ch = 0; ch < fc; ch++) vec[(size_t)c * fc + ch] = nn > 0 ? (float)(vec[(size_t)c * fc + ch] / sqrt(nn)) : 0;
    }
}

/* Whether matching X's objects to Y's picks class k: k's best cosine with
 * any of Y's objects beats every other object's of X (ties do not). */
static int picks(const float *vx, const uint8_t *hx, const float *vy, const uint8_t *hy, int fc, int k) {
    double best_k = -2, best_other = -2;
    for (int c = 1; c < MAXC; c++) {
        if (!hx[c]) continue;
        double sc = -2;
        for (int d = 1; d < MAXC; d++) {
            if (!hy[d]) continue;
            double dot = 0;
            for (int ch = 0; ch < fc; ch++) dot += (double)vx[(size_t)c * fc + ch] * vy[(size_t)d * fc + ch];
            if (dot > sc) sc = dot;
        }
        if (c == k)
            best_k = sc;
        else if (sc > best_other)
            best_other = sc;
    }
    return best_k > best_other;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: coseg_errors TEST_DB CLASS_DB DIR [--pairs N] [--unseen IDS] "
                        "[--features PREFIX --feature-shape CxHxW] [--write right|other|empty|classes]\n");
        return 2;
    }
    long npairs = -1;
    const char *write = NULL, *unseen_ids = "8,9", *features = NULL, *fshape = NULL;
    for (int i = 4; i < argc; i += 2) {
        if (i + 1 >= argc) {
            fprintf(stderr, "coseg_errors: %s needs a value\n", argv[i]);
            return 2;
        }
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--pairs")) {
            if (parse_long(v, 1, 100000000, &npairs)) {
                fprintf(stderr, "coseg_errors: --pairs %s: expected a whole number in [1, 1e8]\n", v);
                return 2;
            }
        } else if (!strcmp(k, "--unseen")) {
            unseen_ids = v;
        } else if (!strcmp(k, "--features")) {
            features = v;
        } else if (!strcmp(k, "--feature-shape")) {
            fshape = v;
        } else if (!strcmp(k, "--write") &&
                   (!strcmp(v, "right") || !strcmp(v, "other") || !strcmp(v, "empty") || !strcmp(v, "classes"))) {
            write = v;
        } else {
            fprintf(stderr, "coseg_errors: bad option %s %s\n", k, v);
            return 2;
        }
    }
    uint8_t unseen[MAXC] = {0};
    for (const char *s = unseen_ids; *s;) {
        char *end;
        long c = strtol(s, &end, 10);
        if (end == s || c < 0 || c >= MAXC - 1 || (*end && *end != ',')) {
            fprintf(stderr, "coseg_errors: --unseen %s: expected comma-separated class ids, e.g. 8,9\n", unseen_ids);
            return 2;
        }
        unseen[c] = 1;
        s = *end ? end + 1 : end;
    }
    Err e;
    Dataset *ds, *cs;
    DsReader *r, *cr;
    char msg[4400];
    if (ds_open(&ds, argv[1], &e) || ds_reader_open(ds, &r, &e) || ds_open(&cs, argv[2], &e) ||
        ds_reader_open(cs, &cr, &e))
        die(e.msg);
    const DsMeta *m = ds_meta(ds), *cm = ds_meta(cs);
    if (m->has_masks != DS_MASKS_OBJECT || !m->npairs) {
        snprintf(msg, sizeof msg, "%s: not a co-segmentation test set (object masks and pairs): make it with "
                 "`siamese synth coseg`", argv[1]);
        die(msg);
    }
    if (cm->has_masks != DS_MASKS_CLASS || cm->count != m->count || cm->npairs != m->npairs ||
        cm->channels != m->channels || cm->height != m->height || cm->width != m->width) {
        snprintf(msg, sizeof msg, "%s: not the images of %s with class masks: make it with `siamese synth coseg "
                 "--class-masks` and the same --seed, --side and --pairs", argv[2], argv[1]);
        die(msg);
    }
    uint64_t n = m->npairs;
    uint32_t *pa = malloc(n * sizeof *pa), *pb = malloc(n * sizeof *pb);
    uint8_t *same = malloc(n);
    if (ds_load_pairs(ds, pa, pb, same, &e)) die(e.msg);
    if (npairs > 0 && (uint64_t)npairs > n) {
        snprintf(msg, sizeof msg, "--pairs %ld: %s has %llu pairs", npairs, argv[1], (unsigned long long)n);
        die(msg);
    }
    if (write && !strcmp(write, "classes")) {
        write_classes(cr, cm, pa, pb, same, n, argv[3]);
        printf("wrote %s/classes.npy and %s/pairs.npy\n", argv[3], argv[3]);
        return 0;
    }
    NpyArray fa = {0};
    int fc = 0, fh = 0, fw = 0;
    if (!features != !fshape) die("--features PREFIX and --feature-shape CxHxW go together");
    if (features) {
        char tail, path[4096];
        if (sscanf(fshape, "%dx%dx%d%c", &fc, &fh, &fw, &tail) != 3 || fc < 1 || fh < 1 || fw < 1 ||
            m->height % (uint32_t)fh || m->width % (uint32_t)fw) {
            snprintf(msg, sizeof msg, "--feature-shape %s: expected CxHxW with H and W dividing the images' %ux%u",
                     fshape, m->height, m->width);
            die(msg);
        }
        snprintf(path, sizeof path, "%s.emb.npy", features);
        if (npy_read(&fa, path, &e)) die(e.msg);
        if (fa.dtype != 'f' || fa.ndim != 2 || (uint64_t)fa.shape[0] != m->count ||
            fa.shape[1] != (int64_t)fc * fh * fw) {
            snprintf(msg, sizeof msg, "%s: expected %llu x %d float32 (siamese embed of a model whose embedding is the "
                     "%s feature map)", path, (unsigned long long)m->count, fc * fh * fw, fshape);
            die(msg);
        }
    }
    const uint32_t h = m->height, w = m->width;
    const size_t hw = (size_t)h * w, img = hw * m->channels;
    uint8_t *px = malloc(img), *cpx = malloc(img), *mask = malloc(hw), *cls = malloc(hw), *pred = malloc(hw);
    Sums kind[2] = {{0}}, per[MAXC] = {{0}};
    double none_images = 0, none_empty = 0;
    uint64_t done = 0;
    for (uint64_t i = 0; i < n && (npairs < 0 || i < (uint64_t)npairs); i++) {
        if (!write && npairs < 0 && !pair_present(argv[3], i)) break;
        for (int side = 0; side < 2; side++) {
            uint32_t id = side ? pb[i] : pa[i];
            int32_t lab, clab;
            if (ds_read(r, id, px, &lab, mask, &e) || ds_read(cr, id, cpx, &clab, cls, &e)) die(e.msg);
            if (memcmp(px, cpx, img)) {
                snprintf(msg, sizeof msg, "%s and %s differ in sample %u: make both with the same synth seed", argv[1],
                         argv[2], id);
                die(msg);
            }
            /* the common class: the class of the true mask's pixels, all one */
            int k = -1;
            size_t count[MAXC] = {0};
            for (size_t p = 0; p < hw; p++) {
                count[cls[p]]++;
                if (!mask[p]) continue;
                if (!cls[p] || (k >= 0 && cls[p] != k)) {
                    snprintf(msg, sizeof msg, "%s: sample %u: the object mask is not one object of the class "
                             "mask (pixel %zu): not the same synth set", argv[2], id, p);
                    die(msg);
                }
                k = cls[p];
            }
            if (write) {
                int target = 0; /* class value to mark, 0 none */
                if (!strcmp(write, "right")) target = same[i] && k > 0 ? k : 0;
                if (!strcmp(write, "other"))
                    for (int c = 1; c < MAXC; c++)
                        if (c != k && count[c] && (!target || count[c] > count[target])) target = c;
                for (size_t p = 0; p < hw; p++) pred[p] = target && cls[p] == target ? 255 : 0;
                char path[4096];
                snprintf(path, sizeof path, "%s/pair-%llu-%c.mask.png", argv[3], (unsigned long long)i,
                         side ? 'b' : 'a');
                if (image_write_png(path, pred, h, w, 1, &e)) die(e.msg);
                continue;
            }
            load_pred(pred, argv[3], i, side ? 'b' : 'a', h, w);
            size_t marked = 0;
            for (size_t p = 0; p < hw; p++) marked += pred[p];
            int empty = (double)marked < 0.01 * (double)hw;
            if (!same[i] || k < 0) { /* no common object (or it is hidden) */
                none_images++;
                none_empty += empty;
                continue;
            }
            size_t inter = 0, uni = 0, other = 0, bg = 0, clean_uni = 0, on[MAXC] = {0};
            for (size_t p = 0; p < hw; p++) {
                int t = mask[p] != 0, o = cls[p] && !t;
                inter += pred[p] & t;
                uni += pred[p] | t;
                other += pred[p] & o;
                bg += pred[p] & !cls[p];
                clean_uni += (pred[p] & !o) | t;
                on[cls[p]] += pred[p];
            }
            int picked = inter > 0;
            for (int c = 1; c < MAXC; c++)
                if (c != k && on[c] >= inter) picked = 0;
            double jac = uni ? (double)inter / (double)uni : 1.0, clean = (double)inter / (double)clean_uni;
            sums_add(&kind[unseen[k - 1]], jac, picked, clean, empty, inter, other, bg);
            sums_add(&per[k - 1], jac, picked, clean, empty, inter, other, bg);
        }
        done = i + 1;
    }
    if (write) {
        printf("wrote %llu pairs of %s masks into %s\n", (unsigned long long)done, write, argv[3]);
        return 0;
    }
    if (!done) {
        snprintf(msg, sizeof msg, "%s: no pair-0-a.mask.png and pair-0-b.mask.png: run `siamese segment CHECKPOINT "
                 "--data TEST_DB --out %s --pairs N`", argv[3], argv[3]);
        die(msg);
    }
    double fpick[2] = {0, 0}, fimg[2] = {0, 0};
    if (features) { /* the true object regions, the model's features */
        float *va = malloc((size_t)MAXC * fc * sizeof *va), *vb = malloc((size_t)MAXC * fc * sizeof *vb);
        uint8_t ha[MAXC], hb[MAXC], *ca = malloc(hw), *cb = malloc(hw);
        const float *f = fa.data;
        for (uint64_t i = 0; i < done; i++) {
            int32_t lab;
            if (!same[i]) continue;
            if (ds_read(r, pa[i], px, &lab, mask, &e) || ds_read(cr, pa[i], cpx, &lab, ca, &e) ||
                ds_read(cr, pb[i], cpx, &lab, cb, &e))
                die(e.msg);
            int k = 0;
            for (size_t p = 0; p < hw && !k; p++) k = mask[p] ? ca[p] : 0;
            if (!k) continue;
            size_t stride = (size_t)fc * fh * fw;
            pool_objects(va, ha, f + pa[i] * stride, fc, fh, fw, ca, h, w);
            pool_objects(vb, hb, f + pb[i] * stride, fc, fh, fw, cb, h, w);
            fpick[unseen[k - 1]] += picks(va, ha, vb, hb, fc, k) + picks(vb, hb, va, ha, fc, k);
            fimg[unseen[k - 1]] += 2;
        }
        free(va), free(vb), free(ca), free(cb);
        npy_free(&fa);
    }
    printf("%llu pairs: %.0f images with a common object (%.0f seen, %.0f unseen), %.0f without\n",
           (unsigned long long)done, kind[0].images + kind[1].images, kind[0].images, kind[1].images, none_images);
    sums_print("seen", &kind[0]);
    sums_print("unseen", &kind[1]);
    printf("none: empty predictions %.4f\n", ratio(none_empty, none_images));
    if (features)
        printf("with the true object regions and %s's features: object picked %.4f seen, %.4f unseen\n", features,
               ratio(fpick[0], fimg[0]), ratio(fpick[1], fimg[1]));
    printf("class  images  Jaccard  picked  (the class of the common object)\n");
    for (int c = 0; c < MAXC; c++)
        if (per[c].images > 0)
            printf("%5d  %6.0f  %7.4f  %6.4f\n", c, per[c].images, per[c].jaccard / per[c].images,
                   per[c].picked / per[c].images);
    return 0;
}
