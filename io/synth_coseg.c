/* synth_coseg: see synth_coseg.h. One image: a background (a crop of a random item
 * enlarged to the whole image and dimmed to 30-50 %), then 2-4 items of
 * distinct classes, each scaled to a square of 18-40 px (at side 64; the
 * range scales with the side) at a uniform position whose box overlaps every
 * earlier box by at most 30 % of the smaller one; an item covers the pixels
 * where its scaled value is above SYNTH_MASK_THRESHOLD, later items over
 * earlier ones. A layout is drawn again (items, sizes, positions) when a box
 * finds no place in 100 tries or when less than half of the labelled
 * object's pixels stay visible. */
#include "synth_coseg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "image.h"
#include "import.h"

#define PLACE_TRIES 100
#define LAYOUT_TRIES 10000 /* real items need a few; only items too dark to see exhaust it */

/* Fashion-MNIST's classes ('/' would make a class group, dataset.h). */
static const char *const fmnist_names[SYNTH_CLASSES] = {
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"};

int synth_coseg_common(uint64_t index) { return index % 4 != 3; }

/* m distinct classes of src not in *used (a bit set), uniformly; added to *used. */
static void draw_classes(Rng *r, const SynthSource *src, unsigned *used, int m, int *out) {
    int avail[SYNTH_CLASSES], na = 0;
    for (int c = 0; c < src->n_classes; c++)
        if (!(*used >> c & 1) && src->n[c] > 0) avail[na++] = c;
    ASSERT(na >= m);
    for (int j = 0; j < m; j++) {
        int k = j + (int)rng_below(r, (uint64_t)(na - j)), t = avail[j];
        avail[j] = avail[k];
        avail[k] = t;
        out[j] = avail[j];
        *used |= 1u << out[j];
    }
}

static uint32_t draw_item(Rng *r, const SynthSource *src, int cls) {
    return src->ids[cls][rng_below(r, src->n[cls])];
}

static int boxes_fit(const SynthObject *a, const SynthObject *b) {
    uint32_t y0 = MAX(a->y, b->y), x0 = MAX(a->x, b->x);
    uint32_t y1 = MIN(a->y + a->size, b->y + b->size), x1 = MIN(a->x + a->size, b->x + b->size);
    uint64_t inter = y1 > y0 && x1 > x0 ? (uint64_t)(y1 - y0) * (x1 - x0) : 0;
    uint64_t small = (uint64_t)MIN(a->size, b->size) * MIN(a->size, b->size);
    return 10 * inter <= 3 * small;
}

/* Background of one image into img (side x side). */
static void draw_background(Rng *r, const SynthSource *src, uint32_t side, uint8_t *img, SynthImage *info) {
    int cls;
    unsigned used = 0;
    draw_classes(r, src, &used, 1, &cls);
    info->bg_item = draw_item(r, src, cls);
    uint32_t h = src->h, margin = h / 7;
    info->bg_crop = h / 4 + (uint32_t)rng_below(r, h / 4 + 1);
    uint32_t span = h - 2 * margin - info->bg_crop + 1;
    info->bg_y = margin + (uint32_t)rng_below(r, span);
    info->bg_x = margin + (uint32_t)rng_below(r, span);
    info->bg_alpha = 0.3f + 0.2f * rng_uniform(r);
    uint8_t *crop = xmalloc((size_t)info->bg_crop * info->bg_crop);
    const uint8_t *item = src->pixels + (size_t)info->bg_item * h * h;
    for (uint32_t y = 0; y < info->bg_crop; y++)
        memcpy(crop + (size_t)y * info->bg_crop, item + (size_t)(info->bg_y + y) * h + info->bg_x,
               info->bg_crop);
    image_resize(img, side, side, crop, info->bg_crop, info->bg_crop);
    for (size_t i = 0; i < (size_t)side * side; i++) img[i] = (uint8_t)(info->bg_alpha * img[i] + 0.5f);
    free(crop);
}

/* Places and paints the objects of classes cls[0..n) (in painting order)
 * over the background in img; the object of class label_cls is the labelled
 * one. Returns 0, or -1 (nothing usable: draw again) when a box finds no
 * place or the labelled object is less than half visible. */
static int draw_layout(Rng *r, const SynthSource *src, uint32_t side, const int *cls, int n, int label_cls,
                       const uint8_t *bg, uint8_t *img, uint8_t *mask, SynthImage *info, uint8_t *scaled,
                       int8_t *owner, int class_masks) {
    uint32_t smin = MAX(4, (18 * side + 32) / 64), smax = MAX(smin, (40 * side + 32) / 64);
    info->n_objects = n;
    for (int i = 0; i < n; i++) {
        SynthObject *o = &info->obj[i];
        o->cls = cls[i];
        o->item = draw_item(r, src, cls[i]);
        if (cls[i] == label_cls) info->labelled = i;
        int placed = 0;
        for (int t = 0; t < PLACE_TRIES && !placed; t++) {
            o->size = smin + (uint32_t)rng_below(r, smax - smin + 1);
            o->y = (uint32_t)rng_below(r, side - o->size + 1);
            o->x = (uint32_t)rng_below(r, side - o->size + 1);
            placed = 1;
            for (int j = 0; j < i && placed; j++) placed = boxes_fit(o, &info->obj[j]);
        }
        if (!placed) return -1;
    }
    size_t np = (size_t)side * side, silhouette = 0, visible = 0;
    memcpy(img, bg, np);
    memset(owner, -1, np);
    for (int i = 0; i < n; i++) {
        const SynthObject *o = &info->obj[i];
        image_resize(scaled, o->size, o->size, src->pixels + (size_t)o->item * src->h * src->w, src->h,
                     src->w);
        for (uint32_t y = 0; y < o->size; y++)
            for (uint32_t x = 0; x < o->size; x++) {
                uint8_t v = scaled[y * o->size + x];
                if (v <= SYNTH_MASK_THRESHOLD) continue;
                size_t p = (size_t)(o->y + y) * side + o->x + x;
                img[p] = v;
                owner[p] = (int8_t)i;
                silhouette += i == info->labelled;
            }
    }
    for (size_t p = 0; p < np; p++) {
        mask[p] = owner[p] == info->labelled ? 255 : 0;
        visible += mask[p] != 0;
        if (class_masks) mask[p] = owner[p] >= 0 ? (uint8_t)(info->obj[owner[p]].cls + 1) : 0;
    }
    return silhouette > 0 && 2 * visible >= silhouette ? 0 : -1;
}

static int draw_image(Rng *r, const SynthSource *src, uint32_t side, int *cls, int n, int label_cls,
                      uint8_t *img, uint8_t *mask, SynthImage *info, int class_masks) {
    size_t np = (size_t)side * side;
    uint8_t *bg = xmalloc(np), *scaled = xmalloc(np);
    int8_t *owner = xmalloc(np);
    for (int i = n - 1; i > 0; i--) { /* painting order */
        int k = (int)rng_below(r, (uint64_t)i + 1), t = cls[i];
        cls[i] = cls[k];
        cls[k] = t;
    }
    memset(info, 0, sizeof *info);
    draw_background(r, src, side, bg, info);
    int rc = -1;
    for (int t = 0; t < LAYOUT_TRIES && rc; t++)
        rc = draw_layout(r, src, side, cls, n, label_cls, bg, img, mask, info, scaled, owner, class_masks);
    free(bg);
    free(scaled);
    free(owner);
    return rc;
}

int synth_coseg_pair(const SynthSource *src, uint32_t side, uint64_t seed, int split, uint64_t index,
                     int objects, int common, uint8_t *img[2], uint8_t *mask[2], int32_t label[2],
                     SynthImage info[2]) {
    return synth_coseg_pair_masks(src, side, seed, split, index, objects, common, 0, img, mask, label, info);
}

int synth_coseg_pair_masks(const SynthSource *src, uint32_t side, uint64_t seed, int split, uint64_t index,
                           int objects, int common, int class_masks, uint8_t *img[2], uint8_t *mask[2],
                           int32_t label[2], SynthImage info[2]) {
    Rng r;
    rng_seed(&r, seed, RNG_SYNTH, (uint64_t)split << 40 | index);
    int n[2], cls[2][SYNTH_MAX_OBJECTS];
    for (int k = 0; k < 2; k++) n[k] = objects ? objects : 2 + (int)rng_below(&r, SYNTH_MAX_OBJECTS - 1);
    unsigned used = 0;
    if (common) {
        draw_classes(&r, src, &used, 1, &cls[0][0]);
        cls[1][0] = cls[0][0];
        draw_classes(&r, src, &used, n[0] - 1, &cls[0][1]);
        draw_classes(&r, src, &used, n[1] - 1, &cls[1][1]);
        label[0] = label[1] = cls[0][0];
    } else {
        draw_classes(&r, src, &used, n[0], cls[0]);
        draw_classes(&r, src, &used, n[1], cls[1]);
        for (int k = 0; k < 2; k++) label[k] = cls[k][rng_below(&r, (uint64_t)n[k])];
    }
    SynthImage scratch[2];
    if (!info) info = scratch;
    for (int k = 0; k < 2; k++)
        if (draw_image(&r, src, side, cls[k], n[k], label[k], img[k], mask[k], &info[k], class_masks))
            return -1;
    return 0;
}

/* ---- the command's work -------------------------------------------------- */

/* Groups the items of set by class (classes < n_classes). */
static int make_source(SynthSource *s, const IdxSet *set, int n_classes, uint32_t **store, const char *what,
                       Err *e) {
    memset(s, 0, sizeof *s);
    if (set->h != set->w || set->h < 8)
        return err_set(e,
                       "%s: items of %ux%u; synth coseg needs square items of at least 8x8 (Fashion-MNIST "
                       "is 28x28)",
                       what, set->h, set->w);
    s->pixels = set->pixels;
    s->h = set->h;
    s->w = set->w;
    s->n_classes = n_classes;
    *store = xmalloc(sizeof(uint32_t) * (set->n ? set->n : 1));
    uint32_t fill = 0;
    for (int c = 0; c < n_classes; c++) {
        s->ids[c] = *store + fill;
        for (uint64_t i = 0; i < set->n; i++)
            if (set->labels[i] == c) (*store)[fill++] = (uint32_t)i;
        s->n[c] = (uint32_t)(*store + fill - s->ids[c]);
        if (!s->n[c])
            return err_set(e, "%s: no item of class %d (%s); synth coseg needs Fashion-MNIST's 10 classes",
                           what, c, fmnist_names[c]);
    }
    for (uint64_t i = 0; i < set->n; i++)
        if (set->labels[i] >= SYNTH_CLASSES)
            return err_set(e, "%s: item %" PRIu64 " has label %u; Fashion-MNIST's labels are 0..9", what, i,
                           set->labels[i]);
    return 0;
}

static int write_split(DsWriter *w, const SynthSource *src, const SynthCosegOptions *o, int split,
                       uint64_t pairs, Err *e) {
    size_t np = (size_t)o->side * o->side;
    uint8_t *buf = xmalloc(4 * np);
    uint8_t *img[2] = {buf, buf + np}, *mask[2] = {buf + 2 * np, buf + 3 * np};
    uint32_t *a = xmalloc(sizeof(uint32_t) * pairs), *b = xmalloc(sizeof(uint32_t) * pairs);
    int rc = 0;
    for (uint64_t i = 0; i < pairs && !rc; i++) {
        int32_t label[2];
        if (synth_coseg_pair_masks(src, o->side, o->seed, split, i, o->objects, synth_coseg_common(i),
                                   o->class_masks, img, mask, label, NULL)) {
            rc = err_set(e,
                         "%s: pair %" PRIu64 ": no layout in %d tries keeps half of the object visible (are "
                         "the items too dark? objects cover pixels above %d)",
                         o->fmnist, i, LAYOUT_TRIES, SYNTH_MASK_THRESHOLD);
            break;
        }
        a[i] = (uint32_t)(2 * i);
        b[i] = (uint32_t)(2 * i + 1);
        char name[2][48];
        for (int k = 0; k < 2; k++) snprintf(name[k], sizeof name[k], "pair-%" PRIu64 "-%c", i, "ab"[k]);
        rc = ds_writer_add_named(w, img[0], label[0], mask[0], name[0], e) ||
             ds_writer_add_named(w, img[1], label[1], mask[1], name[1], e);
    }
    if (!rc) rc = ds_writer_set_pairs(w, a, b, pairs, e);
    free(a);
    free(b);
    free(buf);
    return rc ? -1 : 0;
}

int synth_coseg_run(const SynthCosegOptions *o, Err *e) {
    IdxSet set[2] = {{0}, {0}};
    SynthSource src[2];
    uint32_t *store[2] = {NULL, NULL};
    DsWriter *w[2] = {NULL, NULL};
    static const char *const files[2][2] = {{"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"},
                                            {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}};
    int rc = -1;
    for (int k = 0; k < 2; k++) {
        char im[1024], lb[1024];
        snprintf(im, sizeof im, "%s/%s", o->fmnist, files[k][0]);
        snprintf(lb, sizeof lb, "%s/%s", o->fmnist, files[k][1]);
        if (import_idx_load(&set[k], im, lb, e) ||
            make_source(&src[k], &set[k], k ? SYNTH_CLASSES : SYNTH_TRAIN_CLASSES, &store[k], im, e))
            goto done;
    }
    const char *outs[2] = {o->out, o->test_out};
    uint64_t pairs[2] = {o->pairs, o->test_pairs};
    for (int k = 0; k < 2; k++) {
        char what[256];
        snprintf(what, sizeof what,
                 "siamese synth coseg: Fashion-MNIST %s set, seed %" PRIu64 ", side %u, %" PRIu64 " pairs%s",
                 k ? "test" : "training", o->seed, o->side, pairs[k], o->class_masks ? ", class masks" : "");
        DsWriterSpec spec = {.channels = 1,
                             .height = o->side,
                             .width = o->side,
                             .classes = SYNTH_CLASSES,
                             .compress = 1,
                             .has_masks = o->class_masks ? DS_MASKS_CLASS : DS_MASKS_OBJECT,
                             .source = what,
                             .class_names = fmnist_names};
        if (ds_writer_create(&w[k], outs[k], &spec, e)) goto done;
    }
    for (int k = 0; k < 2; k++)
        if (write_split(w[k], &src[k], o, k, pairs[k], e)) goto done;
    rc = ds_writer_finish_all(w, 2, e);
    w[0] = w[1] = NULL;
done:
    for (int k = 0; k < 2; k++) {
        if (w[k]) ds_writer_abort(w[k]);
        import_idx_free(&set[k]);
        free(store[k]);
    }
    return rc;
}
