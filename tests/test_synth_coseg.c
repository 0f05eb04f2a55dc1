/* Tests of `siamese synth coseg` (io/synth.c) on a small made-up Fashion-
 * MNIST: every pair's classes (exactly one shared class in 3 of 4 pairs,
 * none otherwise; never classes 8 and 9 in training images), object sizes
 * and box overlaps, and each image and mask re-derived from what was drawn
 * (painting order, the 25/255 threshold, the dimmed background); the
 * datasets written by the command (labels, pairs, masks, both or neither)
 * and its one-line errors; class masks (--class-masks): the same images,
 * every visible object pixel labelled with its class + 1. */
#include <stdlib.h>
#include <string.h>

#include "../io/dataset.h"
#include "../io/image.h"
#include "../io/synth_coseg.h"
#include "fixture_files.h"
#include "test.h"

#define ITEMS_PER_CLASS 6
#define NITEMS (SYNTH_CLASSES * ITEMS_PER_CLASS)

static uint8_t items[2][NITEMS][28][28]; /* [split] made-up items */
static uint8_t item_labels[NITEMS];

/* Item j of class c: a rectangle of a class-dependent grey with a few dark
 * holes (below the threshold) inside, on black. */
static void make_items(void) {
    Rng r;
    rng_seed(&r, 5, RNG_TEST, 0);
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < NITEMS; i++) {
            int c = i % SYNTH_CLASSES;
            item_labels[i] = (uint8_t)c;
            int y0 = 2 + (int)rng_below(&r, 6), x0 = 2 + (int)rng_below(&r, 6);
            int y1 = 20 + (int)rng_below(&r, 7), x1 = 20 + (int)rng_below(&r, 7);
            for (int y = 0; y < 28; y++)
                for (int x = 0; x < 28; x++) {
                    int in = y >= y0 && y < y1 && x >= x0 && x < x1;
                    items[s][i][y][x] = in ? (uint8_t)(rng_below(&r, 10) ? 60 + 18 * c : 10) : 0;
                }
        }
}

static SynthSource source(int split, uint32_t *store) {
    SynthSource s = {.pixels = &items[split][0][0][0], .h = 28, .w = 28};
    s.n_classes = split ? SYNTH_CLASSES : SYNTH_TRAIN_CLASSES;
    uint32_t fill = 0;
    for (int c = 0; c < s.n_classes; c++) {
        s.ids[c] = store + fill;
        for (uint32_t i = 0; i < NITEMS; i++)
            if (item_labels[i] == c) store[fill++] = i;
        s.n[c] = (uint32_t)(store + fill - s.ids[c]);
    }
    return s;
}

static int overlap_ok(const SynthObject *a, const SynthObject *b) {
    int y0 = (int)MAX(a->y, b->y), x0 = (int)MAX(a->x, b->x);
    int y1 = (int)MIN(a->y + a->size, b->y + b->size), x1 = (int)MIN(a->x + a->size, b->x + b->size);
    double inter = y1 > y0 && x1 > x0 ? (double)(y1 - y0) * (x1 - x0) : 0;
    double small = (double)MIN(a->size, b->size) * MIN(a->size, b->size);
    return inter <= 0.3 * small + 1e-9;
}

/* Paints info again and compares image and mask (and the class mask cmask,
 * if not NULL: class + 1 of the object painted last at each pixel, else 0);
 * returns mismatches. */
static int rederive(const SynthSource *src, uint32_t side, const SynthImage *in, const uint8_t *img,
                    const uint8_t *mask, const uint8_t *cmask, size_t *visible, size_t *silhouette) {
    size_t np = (size_t)side * side;
    uint8_t *want = xmalloc(np), *crop = xmalloc(in->bg_crop * in->bg_crop), *sc = xmalloc(np);
    int *owner = xmalloc(sizeof(int) * np), bad = 0;
    const uint8_t *bg = src->pixels + (size_t)in->bg_item * 784;
    for (uint32_t y = 0; y < in->bg_crop; y++)
        for (uint32_t x = 0; x < in->bg_crop; x++)
            crop[y * in->bg_crop + x] = bg[(in->bg_y + y) * 28 + in->bg_x + x];
    image_resize(want, side, side, crop, in->bg_crop, in->bg_crop);
    for (size_t p = 0; p < np; p++) {
        want[p] = (uint8_t)(in->bg_alpha * want[p] + 0.5f);
        owner[p] = -1;
    }
    *silhouette = *visible = 0;
    for (int i = 0; i < in->n_objects; i++) {
        const SynthObject *o = &in->obj[i];
        image_resize(sc, o->size, o->size, src->pixels + (size_t)o->item * 784, 28, 28);
        for (uint32_t y = 0; y < o->size; y++)
            for (uint32_t x = 0; x < o->size; x++)
                if (sc[y * o->size + x] > 25) {
                    size_t p = (o->y + y) * side + o->x + x;
                    want[p] = sc[y * o->size + x];
                    owner[p] = i;
                    *silhouette += i == in->labelled;
                }
    }
    for (size_t p = 0; p < np; p++) {
        bad += want[p] != img[p];
        bad += (mask[p] == 255) != (owner[p] == in->labelled) || (mask[p] != 0 && mask[p] != 255);
        if (cmask) bad += cmask[p] != (owner[p] >= 0 ? in->obj[owner[p]].cls + 1 : 0);
        *visible += mask[p] != 0;
    }
    free(want);
    free(crop);
    free(sc);
    free(owner);
    return bad;
}

/* objects: synth_coseg_pair's (0: 2-4 per image). */
static void test_pairs(int split, uint32_t side, int objects) {
    uint32_t store[NITEMS];
    SynthSource src = source(split, store);
    size_t np = (size_t)side * side;
    uint8_t *buf = xmalloc(4 * np), *again = xmalloc(4 * np);
    uint8_t *img[2] = {buf, buf + np}, *mask[2] = {buf + 2 * np, buf + 3 * np};
    uint8_t *img2[2] = {again, again + np}, *mask2[2] = {again + 2 * np, again + 3 * np};
    int bad_classes = 0, bad_boxes = 0, bad_pixels = 0, bad_visible = 0, bad_items = 0, ncommon = 0,
        npairs = 200, bad_class_masks = 0;
    size_t class_pixels = 0; /* class-mask pixels of objects other than the labelled one */
    uint32_t smin = (18 * side + 32) / 64, smax = (40 * side + 32) / 64, seen_min = 999, seen_max = 0;
    int seen_classes[SYNTH_CLASSES] = {0}, nobj_seen[5] = {0};
    for (int i = 0; i < npairs; i++) {
        int common = synth_coseg_common((uint64_t)i);
        ncommon += common;
        int32_t label[2];
        SynthImage info[2];
        CHECK(synth_coseg_pair(&src, side, 3, split, (uint64_t)i, objects, common, img, mask, label, info) ==
                  0,
              "pair %d generated", i);
        unsigned set[2] = {0, 0};
        for (int k = 0; k < 2; k++) {
            const SynthImage *in = &info[k];
            bad_classes += objects ? in->n_objects != objects : in->n_objects < 2 || in->n_objects > 4;
            nobj_seen[in->n_objects]++;
            bad_items += item_labels[in->bg_item] >= src.n_classes;
            bad_boxes += in->bg_alpha < 0.3f || in->bg_alpha > 0.5f;
            for (int o = 0; o < in->n_objects; o++) {
                const SynthObject *ob = &in->obj[o];
                bad_classes += (set[k] >> ob->cls & 1) != 0 || ob->cls >= src.n_classes;
                set[k] |= 1u << ob->cls;
                seen_classes[ob->cls]++;
                bad_items += item_labels[ob->item] != ob->cls;
                bad_boxes +=
                    ob->size < smin || ob->size > smax || ob->y + ob->size > side || ob->x + ob->size > side;
                seen_min = MIN(seen_min, ob->size);
                seen_max = MAX(seen_max, ob->size);
                for (int q = 0; q < o; q++) bad_boxes += !overlap_ok(ob, &in->obj[q]);
            }
            bad_classes += in->obj[in->labelled].cls != label[k];
            size_t vis, sil;
            bad_pixels += rederive(&src, side, in, img[k], mask[k], NULL, &vis, &sil);
            bad_visible += vis == 0 || 2 * vis < sil;
        }
        unsigned shared = set[0] & set[1];
        if (common)
            bad_classes += shared != 1u << label[0] || label[0] != label[1];
        else
            bad_classes += shared != 0 || label[0] == label[1];
        /* deterministic: the same pair again */
        synth_coseg_pair(&src, side, 3, split, (uint64_t)i, objects, common, img2, mask2, label, NULL);
        bad_pixels += memcmp(buf, again, 4 * np) != 0;
        /* class masks: the same draws and images, every object by class + 1 */
        int32_t label2[2];
        SynthImage info2[2];
        synth_coseg_pair_masks(&src, side, 3, split, (uint64_t)i, objects, common, 1, img2, mask2, label2, info2);
        bad_class_masks += memcmp(buf, again, 2 * np) != 0 || label2[0] != label[0] || label2[1] != label[1] ||
                           memcmp(&info2[0], &info[0], sizeof info2[0]) != 0;
        for (int k = 0; k < 2; k++) {
            size_t vis, sil;
            bad_class_masks += rederive(&src, side, &info[k], img2[k], mask[k], mask2[k], &vis, &sil);
            for (size_t p = 0; p < np; p++) class_pixels += mask2[k][p] != 0 && mask2[k][p] != label[k] + 1;
        }
    }
    char what[64];
    snprintf(what, sizeof what, "split %d side %u objects %d", split, side, objects);
    CHECK(ncommon == npairs / 4 * 3, "%s: %d of %d pairs common, want 3 of 4", what, ncommon, npairs);
    CHECK(bad_classes == 0, "%s: %d faults in the classes of objects and labels", what, bad_classes);
    CHECK(bad_items == 0, "%s: %d items of the wrong class or split", what, bad_items);
    CHECK(bad_boxes == 0, "%s: %d boxes out of size range, outside or overlapping > 30 %%", what, bad_boxes);
    CHECK(bad_pixels == 0, "%s: %d pixel / mask mismatches against the re-derived images", what, bad_pixels);
    CHECK(bad_visible == 0, "%s: %d labelled objects less than half visible", what, bad_visible);
    CHECK(bad_class_masks == 0, "%s: %d faults in the class masks (images, labels, draws or classes)", what,
          bad_class_masks);
    CHECK((class_pixels > 0) == (objects != 1), "%s: %zu class-mask pixels of the other objects", what,
          class_pixels);
    CHECK(seen_min == smin && seen_max == smax, "%s: sizes %u..%u drawn, range %u..%u", what, seen_min,
          seen_max, smin, smax);
    if (objects)
        CHECK(nobj_seen[objects] == 2 * npairs, "%s: every image holds %d objects", what, objects);
    else
        CHECK(nobj_seen[2] && nobj_seen[3] && nobj_seen[4], "%s: 2, 3 and 4 objects all occur", what);
    for (int c = 0; c < SYNTH_CLASSES; c++)
        CHECK((seen_classes[c] > 0) == (c < src.n_classes), "%s: class %d drawn %d times", what, c,
              seen_classes[c]);
    /* another seed gives another pair */
    int32_t label[2];
    synth_coseg_pair(&src, side, 4, split, 0, 0, 1, img2, mask2, label, NULL);
    synth_coseg_pair(&src, side, 3, split, 0, 0, 1, img, mask, label, NULL);
    CHECK(memcmp(buf, again, 4 * np) != 0, "%s: seeds 3 and 4 give different pairs", what);
    free(buf);
    free(again);
}

/* ---- the command ------------------------------------------------------------ */

static void write_source(const char *dir, int drop_class) {
    static const char *const names[2][2] = {{"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"},
                                            {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}};
    mkdir(dir, 0755);
    for (int s = 0; s < 2; s++) {
        uint8_t lab[NITEMS];
        for (int i = 0; i < NITEMS; i++) lab[i] = item_labels[i] == drop_class ? 0 : item_labels[i];
        uint32_t di[3] = {NITEMS, 28, 28}, dl[1] = {NITEMS};
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, names[s][0]);
        fixture_write_idx(p, 1, 0x803, di, 3, &items[s][0][0][0], sizeof items[s], 0);
        snprintf(p, sizeof p, "%s/%s", dir, names[s][1]);
        fixture_write_idx(p, 1, 0x801, dl, 1, lab, NITEMS, 0);
    }
}

static void test_command(void) {
    const char *src_dir = fixture_path("fmnist");
    write_source(src_dir, -1);
    SynthCosegOptions o = {.fmnist = src_dir,
                           .out = fixture_path("train.lmdb"),
                           .test_out = fixture_path("test.lmdb"),
                           .seed = 7,
                           .side = 48,
                           .pairs = 12,
                           .test_pairs = 8};
    Err e;
    CHECK(synth_coseg_run(&o, &e) == 0, "synth coseg runs: %s", e.msg);
    uint32_t store[2][NITEMS];
    const char *paths[2] = {o.out, o.test_out};
    for (int s = 0; s < 2; s++) {
        Dataset *ds;
        DsReader *r;
        if (ds_open(&ds, paths[s], &e) || ds_reader_open(ds, &r, &e)) {
            CHECK(0, "open %s: %s", paths[s], e.msg);
            continue;
        }
        const DsMeta *m = ds_meta(ds);
        uint64_t want = s ? 8 : 12;
        CHECK(
            m->count == 2 * want && m->npairs == want && m->has_masks && m->height == 48 && m->classes == 10,
            "%s: %llu samples, %llu pairs, masks %d, side %u, %u classes", paths[s],
            (unsigned long long)m->count, (unsigned long long)m->npairs, m->has_masks, m->height, m->classes);
        CHECK(!strcmp(ds_class_name(ds, 9), "ankle-boot"), "class 9 is named '%s'", ds_class_name(ds, 9));
        CHECK(ds_load_names(ds, &e) == 0 && m->has_names && !strcmp(ds_sample_name(ds, 5), "pair-2-b") &&
                  ds_find_sample(ds, "pair-3-a", 8) == 6,
              "samples are named pair-I-a / pair-I-b: %s", e.msg);
        SynthSource src = source(s, store[s]);
        int bad = 0;
        for (uint64_t i = 0; i < m->npairs && i < want; i++) {
            uint32_t a, b;
            int same;
            uint8_t px[2][48 * 48], mk[2][48 * 48], ref[4][48 * 48];
            int32_t lab[2], rl[2];
            if (ds_read_pair(r, i, &a, &b, &same, &e) || ds_read(r, a, px[0], &lab[0], mk[0], &e) ||
                ds_read(r, b, px[1], &lab[1], mk[1], &e)) {
                bad++;
                continue;
            }
            uint8_t *ri[2] = {ref[0], ref[1]}, *rm[2] = {ref[2], ref[3]};
            synth_coseg_pair(&src, 48, 7, s, i, 0, synth_coseg_common(i), ri, rm, rl, NULL);
            bad += a != 2 * i || b != 2 * i + 1 || same != synth_coseg_common(i) || lab[0] != rl[0] ||
                   lab[1] != rl[1] || memcmp(px[0], ref[0], sizeof px[0]) ||
                   memcmp(px[1], ref[1], sizeof px[1]) || memcmp(mk[0], ref[2], sizeof mk[0]) ||
                   memcmp(mk[1], ref[3], sizeof mk[1]);
        }
        CHECK(bad == 0, "%s: %d pairs differ from synth_coseg_pair", paths[s], bad);
        uint32_t n8, n9;
        ds_class_ids(ds, 8, &n8);
        ds_class_ids(ds, 9, &n9);
        if (!s) CHECK(n8 == 0 && n9 == 0, "training set has %u bags and %u ankle boots", n8, n9);
        ds_reader_close(r);
        ds_close(ds);
    }

    /* --class-masks: meta masks = 2, masks as synth_coseg_pair_masks makes them */
    o.out = fixture_path("train-class.lmdb");
    o.test_out = fixture_path("test-class.lmdb");
    o.class_masks = 1;
    CHECK(synth_coseg_run(&o, &e) == 0, "synth coseg --class-masks runs: %s", e.msg);
    for (int s = 0; s < 2; s++) {
        Dataset *ds;
        DsReader *r;
        const char *p = s ? o.test_out : o.out;
        if (ds_open(&ds, p, &e) || ds_reader_open(ds, &r, &e)) {
            CHECK(0, "open %s: %s", p, e.msg);
            continue;
        }
        CHECK(ds_meta(ds)->has_masks == DS_MASKS_CLASS, "%s: meta masks %d, want 2", p, ds_meta(ds)->has_masks);
        SynthSource src = source(s, store[s]);
        int bad = 0;
        for (uint64_t i = 0; i < 4; i++) {
            uint8_t px[48 * 48], mk[48 * 48], ref[4][48 * 48];
            int32_t lab, rl[2];
            uint8_t *ri[2] = {ref[0], ref[1]}, *rm[2] = {ref[2], ref[3]};
            synth_coseg_pair_masks(&src, 48, 7, s, i, 0, synth_coseg_common(i), 1, ri, rm, rl, NULL);
            bad += ds_read(r, 2 * i, px, &lab, mk, &e) || lab != rl[0] || memcmp(px, ref[0], sizeof px) ||
                   memcmp(mk, ref[2], sizeof mk);
        }
        CHECK(bad == 0, "%s: %d images or class masks differ from synth_coseg_pair_masks", p, bad);
        ds_reader_close(r);
        ds_close(ds);
    }
    o.class_masks = 0;
    o.test_out = fixture_path("test.lmdb");

    /* an existing --test-out: neither dataset is written */
    o.out = fixture_path("train2.lmdb");
    CHECK(synth_coseg_run(&o, &e) == -1 && strstr(e.msg, "test.lmdb already exists"), "existing test-out: %s",
          e.msg);
    CHECK(!fixture_exists(o.out) && !fixture_leftover_tmp(), "nothing written when --test-out exists");
    /* a source without class 3 */
    const char *bad_dir = fixture_path("fmnist-no3");
    write_source(bad_dir, 3);
    o.fmnist = bad_dir;
    o.test_out = fixture_path("test2.lmdb");
    CHECK(synth_coseg_run(&o, &e) == -1 && strstr(e.msg, "train-images-idx3-ubyte.gz: no item of class 3"),
          "missing class: %s", e.msg);
    CHECK(!fixture_exists(o.out) && !fixture_exists(o.test_out), "nothing written without class 3");
    /* no source at all */
    o.fmnist = fixture_path("nowhere");
    CHECK(synth_coseg_run(&o, &e) == -1 && strstr(e.msg, "nowhere/train-labels-idx1-ubyte.gz: cannot open"),
          "missing source: %s", e.msg);
}

int main(void) {
    fixture_dir_create("synth");
    make_items();
    test_pairs(0, 64, 0);
    test_pairs(1, 64, 0);
    test_pairs(0, 40, 0);
    test_pairs(0, 64, 1); /* --objects 1: single objects (pretraining) */
    test_pairs(1, 48, 2);
    test_command();
    fixture_rm_tree(fixture_dir());
    return test_finish();
}
