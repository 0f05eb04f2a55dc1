/* test_synth_mot: the synthetic MOTChallenge sequences, made from a small
 * fake Fashion-MNIST whose items are flat squares of one grey level each, so
 * a fully visible target's box must hold exactly one of those levels. Checks
 * the layout (seqinfo.ini, PNG frames, gt, det), that boxes match the
 * pixels, 8-14 targets at the start, the detector's miss rate, false
 * positives per frame and box jitter against the defaults, that no target
 * under 50 % visible is detected, determinism by seed, and the errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/image.h"
#include "../io/mot.h"
#include "../io/synth_mot.h"
#include "fixture_files.h"
#include "test.h"

enum { ITEMS = 20, FRAMES = 80 };

static void make_items(void) {
    static uint8_t px[ITEMS][28 * 28], lab[ITEMS];
    for (int i = 0; i < ITEMS; i++) {
        memset(px[i], 60 + 8 * i, sizeof px[i]);
        lab[i] = (uint8_t)(i % 10);
    }
    uint32_t di[3] = {ITEMS, 28, 28}, dl[1] = {ITEMS};
    mkdir(fixture_path("fm"), 0755);
    fixture_write_idx(fixture_path("fm/train-images-idx3-ubyte.gz"), 1, 0x803, di, 3, &px[0][0], sizeof px,
                      0);
    fixture_write_idx(fixture_path("fm/train-labels-idx1-ubyte.gz"), 1, 0x801, dl, 1, lab, ITEMS, 0);
}

static int synth(const char *out, uint64_t seed, SynthMotStats *st, Err *e) {
    SynthMotOptions o;
    synth_mot_defaults(&o);
    o.out = out;
    o.fmnist = fixture_path("fm");
    o.seed = seed;
    o.sequences = 1;
    o.frames = FRAMES;
    return synth_mot_run(&o, st, e);
}

static int is_level(int v) { return v >= 60 && v <= 60 + 8 * (ITEMS - 1) && (v - 60) % 8 == 0; }

static void test_sequence(void) {
    Err e = {""};
    SynthMotStats st;
    CHECK(synth(fixture_path("a"), 7, &st, &e) == 0, "%s", e.msg);
    MotSeq s;
    CHECK(mot_seq_open(&s, fixture_path("a/synth-0007"), &e) == 0 && s.info.frames == FRAMES &&
              s.info.width == 320 && s.info.height == 240 && !strcmp(s.info.im_ext, ".png"),
          "seqinfo: %s", e.msg);
    MotBoxes gt, det;
    CHECK(mot_seq_boxes(&s, MOT_GT, &gt, &e) == 0 && mot_seq_boxes(&s, MOT_DET, &det, &e) == 0, "%s", e.msg);
    int n1 = (int)(gt.first[2] - gt.first[1]);
    CHECK(n1 >= 8 && n1 <= 14, "targets in frame 1: %d", n1);
    CHECK(st.gt_boxes == (long)gt.n && st.det_boxes == (long)det.n, "stats agree with the files");
    /* every fully visible target wholly inside the frame is one flat level */
    long checked = 0, wrong = 0;
    for (int32_t f = 1; f <= FRAMES; f += 7) {
        char p[4200];
        mot_frame_path(&s, f, p, sizeof p);
        Image img;
        if (image_load(&img, p, &e)) {
            CHECK(0, "%s", e.msg);
            break;
        }
        for (size_t i = gt.first[f]; i < gt.first[f + 1]; i++) {
            const MotBox *b = &gt.box[i];
            if (b->vis < 1 || b->x <= 0 || b->y <= 0 || b->x + b->w >= 320 || b->y + b->h >= 240) continue;
            int x0 = (int)b->x, y0 = (int)b->y, v = img.pixels[y0 * 320 + x0], flat = is_level(v);
            for (int y = y0; y < y0 + (int)b->h; y++)
                for (int x = x0; x < x0 + (int)b->w; x++) flat &= img.pixels[y * 320 + x] == v;
            checked++;
            wrong += !flat;
        }
        image_free(&img);
    }
    CHECK(checked > 20 && wrong == 0, "%ld visible boxes, %ld not one flat item", checked, wrong);
    /* detector: misses, false positives, jitter; nothing under 50 % visible */
    long visible = 0, found = 0, hidden_found = 0, fp = 0;
    double jit = 0;
    for (int32_t f = 1; f <= FRAMES; f++) {
        for (size_t j = det.first[f]; j < det.first[f + 1]; j++) {
            double best = 0;
            size_t bi = 0;
            for (size_t i = gt.first[f]; i < gt.first[f + 1]; i++) {
                double iou = mot_iou(&det.box[j], &gt.box[i]);
                if (iou > best) best = iou, bi = i;
            }
            if (best < 0.5) {
                fp++;
                continue;
            }
            const MotBox *g = &gt.box[bi], *d = &det.box[j];
            if (g->vis < 0.5) hidden_found++;
            int inside = g->x > 1 && g->y > 1 && g->x + g->w < 319 && g->y + g->h < 239;
            if (inside) jit += fabs((d->x + d->w / 2) - (g->x + g->w / 2)) / g->w;
            found += inside;
        }
        for (size_t i = gt.first[f]; i < gt.first[f + 1]; i++) {
            const MotBox *g = &gt.box[i];
            visible += g->vis >= 0.5 && g->x > 1 && g->y > 1 && g->x + g->w < 319 && g->y + g->h < 239;
        }
    }
    double miss = 1 - (double)found / (double)visible;
    /* |N(0, 0.05)| has mean 0.05 sqrt(2 / pi) = 0.040 */
    CHECK(miss > 0.05 && miss < 0.16, "missed %.3f of %ld visible targets (default 0.10)", miss, visible);
    CHECK(fp > 0.6 * FRAMES && fp < 1.5 * FRAMES, "%ld false positives in %d frames (default 1 per frame)",
          fp, FRAMES);
    CHECK(jit / found > 0.028 && jit / found < 0.052, "mean centre jitter %.4f of the width (0.040 expected)",
          jit / found);
    CHECK(hidden_found == 0, "%ld detections of targets under 50 %% visible", hidden_found);
    CHECK(st.crossings > 0.2 && st.crossings < 3, "crossings per target per 30 frames %.2f", st.crossings);
    mot_boxes_free(&gt);
    mot_boxes_free(&det);
    mot_seq_close(&s);
}

static void test_seeds_and_errors(void) {
    Err e = {""};
    SynthMotStats st;
    CHECK(synth(fixture_path("b"), 7, &st, &e) == 0, "%s", e.msg);
    CHECK(synth(fixture_path("c"), 8, &st, &e) == 0, "%s", e.msg);
    const char *files[] = {"det/det.txt", "gt/gt.txt", "img1/000040.png", "seqinfo.ini"};
    for (int k = 0; k < 4; k++) {
        char pa[256], pb[256];
        snprintf(pa, sizeof pa, "a/synth-0007/%s", files[k]);
        snprintf(pb, sizeof pb, "b/synth-0007/%s", files[k]);
        size_t na, nb;
        uint8_t *a = fixture_read_file(fixture_path(pa), &na), *b = fixture_read_file(fixture_path(pb), &nb);
        CHECK(na == nb && !memcmp(a, b, na), "same seed, same %s", files[k]);
        free(a);
        free(b);
    }
    size_t na, nc;
    uint8_t *a = fixture_read_file(fixture_path("a/synth-0007/gt/gt.txt"), &na);
    uint8_t *c = fixture_read_file(fixture_path("c/synth-0008/gt/gt.txt"), &nc);
    CHECK(na != nc || memcmp(a, c, na), "another seed, another sequence");
    free(a);
    free(c);
    int rc = synth(fixture_path("a"), 1, &st, &e);
    CHECK(rc == -1 && strstr(e.msg, "already exists"), "existing output: %s", e.msg);
    SynthMotOptions o;
    synth_mot_defaults(&o);
    o.out = fixture_path("d");
    o.fmnist = fixture_path("nowhere");
    rc = synth_mot_run(&o, NULL, &e);
    CHECK(rc == -1 && strstr(e.msg, "nowhere") && strstr(e.msg, "dataset-fashion-mnist"),
          "no Fashion-MNIST: %s", e.msg);
    CHECK(!fixture_exists(fixture_path("d")) && !fixture_leftover_tmp(), "nothing left behind");
    o.fmnist = fixture_path("fm");
    o.test_split = 1;
    rc = synth_mot_run(&o, NULL, &e);
    CHECK(rc == -1 && strstr(e.msg, "t10k-"), "test split reads t10k files: %s", e.msg);
}

int main(void) {
    fixture_dir_create("synth-mot");
    make_items();
    test_sequence();
    test_seeds_and_errors();
    fixture_rm_tree(fixture_dir());
    return test_finish();
}
