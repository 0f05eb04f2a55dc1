/* synth_mot: see synth_mot.h. One sequence at a time: a background, the
 * targets' sprites (a Fashion-MNIST item cropped to its ink and scaled so
 * its longer side is 28..56 px), then frame by frame: move, render in depth
 * order with a per-pixel owner map (visibility = visible ink / all ink),
 * ground truth, detections. Streams of Rng(seed, RNG_SYNTH, .): 0 scene and
 * motion, 1 detector, 2 background. */
#include "synth_mot.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "import.h"
#include "mot.h"

enum { INK = 25 }; /* a source pixel above this is part of the object */

void synth_mot_defaults(SynthMotOptions *o) {
    memset(o, 0, sizeof *o);
    o->fmnist = "/usr/share/datasets/fashion-mnist";
    o->seed = 1;
    o->sequences = 4;
    o->frames = 300;
    o->width = 320;
    o->height = 240;
    o->min_targets = 8;
    o->max_targets = 14;
    o->min_size = 28;
    o->max_size = 56;
    o->speed = 4.2;
    o->turn_every = 25;
    o->miss = 0.10;
    o->fp_rate = 1.0;
    o->jitter = 0.05;
    o->min_visible = 0.5;
}

typedef struct Target {
    int id, cls, h, w;
    double cx, cy, vx, vy, z;
    int leaving, alive;
    uint8_t *px; /* (h, w) sprite; ink where px > INK */
    long ink;    /* ink pixels of the sprite */
} Target;

typedef struct Scene {
    const SynthMotOptions *o;
    const IdxSet *items;
    Rng rs, rd;
    Target *t;
    int nt, cap, next_id;
    int *pending; /* frames at which a replacement enters */
    int npending;
    uint8_t *bg, *frame;
    int *owner; /* per pixel: index of the top target, -1 */
    long *visible;
    /* clutter items on the background, for look-alike false positives */
    int nclutter;
    int clutter_box[64][4];
} Scene;

static double uniform(Rng *r, double a, double b) { return a + (b - a) * rng_uniform_d(r); }

/* Item i scaled to side x side (a target's box is the whole item image, as
 * a pedestrian's box holds some background). */
static uint8_t *make_sprite(const IdxSet *s, uint32_t i, int side, int *h, int *w) {
    *h = *w = side;
    uint8_t *out = xmalloc((size_t)side * side);
    image_resize(out, (uint32_t)side, (uint32_t)side, s->pixels + (size_t)i * s->h * s->w, s->h, s->w);
    return out;
}

static uint32_t random_item(Scene *sc, int cls) {
    const IdxSet *s = sc->items;
    for (;;) {
        uint32_t i = (uint32_t)rng_below(&sc->rs, s->n);
        if (cls < 0 || s->labels[i] == cls) return i;
    }
}

static Target *new_target(Scene *sc, int cls) {
    if (sc->nt == sc->cap) {
        sc->cap = MAX(32, 2 * sc->cap);
        sc->t = xrealloc(sc->t, sizeof(Target) * (size_t)sc->cap);
    }
    Target *t = &sc->t[sc->nt++];
    memset(t, 0, sizeof *t);
    const SynthMotOptions *o = sc->o;
    uint32_t item = random_item(sc, cls);
    int side = o->min_size + (int)rng_below(&sc->rs, (uint64_t)(o->max_size - o->min_size + 1));
    t->px = make_sprite(sc->items, item, side, &t->h, &t->w);
    t->cls = sc->items->labels[item];
    for (int k = 0; k < t->h * t->w; k++) t->ink += t->px[k] > INK;
    t->id = ++sc->next_id;
    t->alive = 1;
    t->z = rng_uniform_d(&sc->rs);
    double speed = o->speed * uniform(&sc->rs, 0.5, 1.5), ang = uniform(&sc->rs, 0, 2 * M_PI);
    t->vx = speed * cos(ang);
    t->vy = speed * sin(ang);
    t->cx = uniform(&sc->rs, t->w / 2.0, o->width - t->w / 2.0);
    t->cy = uniform(&sc->rs, t->h / 2.0, o->height - t->h / 2.0);
    return t;
}

/* A replacement enters from a random border, heading inwards. */
static void enter_from_border(Scene *sc) {
    const SynthMotOptions *o = sc->o;
    Target *t = new_target(sc, -1);
    double speed = hypot(t->vx, t->vy), ang = uniform(&sc->rs, -M_PI / 4, M_PI / 4);
    int side = (int)rng_below(&sc->rs, 4);
    double nx = side == 0 ? 1 : side == 1 ? -1 : 0, ny = side == 2 ? 1 : side == 3 ? -1 : 0;
    t->vx = speed * (nx * cos(ang) - ny * sin(ang));
    t->vy = speed * (nx * sin(ang) + ny * cos(ang));
    if (side == 0) t->cx = -t->w / 2.0 + 1;
    if (side == 1) t->cx = o->width + t->w / 2.0 - 1;
    if (side == 2) t->cy = -t->h / 2.0 + 1;
    if (side == 3) t->cy = o->height + t->h / 2.0 - 1;
}

static void target_box(const Target *t, int *x0, int *y0) {
    *x0 = (int)lround(t->cx - t->w / 2.0);
    *y0 = (int)lround(t->cy - t->h / 2.0);
}

/* Whether any pixel of the target's box (as drawn) is in the frame. */
static int box_in_frame(const Target *t, const SynthMotOptions *o) {
    int x0, y0;
    target_box(t, &x0, &y0);
    return x0 + t->w > 0 && y0 + t->h > 0 && x0 < o->width && y0 < o->height;
}

/* One step of motion: random turns, reflection at the borders or (now and
 * then) leaving through them. */
static void move(Scene *sc, int frame) {
    const SynthMotOptions *o = sc->o;
    for (int i = 0; i < sc->nt; i++) {
        Target *t = &sc->t[i];
        if (!t->alive) continue;
        if (rng_uniform_d(&sc->rs) < 1.0 / o->turn_every) { /* a turn */
            double a = uniform(&sc->rs, -M_PI / 2, M_PI / 2), c = cos(a), s = sin(a);
            double vx = t->vx * c - t->vy * s, vy = t->vx * s + t->vy * c;
            t->vx = vx, t->vy = vy;
        }
        t->cx += t->vx;
        t->cy += t->vy;
        if (t->leaving) {
            if (!box_in_frame(t, o)) {
                t->alive = 0;
                sc->pending = xrealloc(sc->pending, sizeof(int) * (size_t)(sc->npending + 1));
                sc->pending[sc->npending++] = frame + (int)rng_below(&sc->rs, 20);
            }
            continue;
        }
        int out_x = (t->cx < t->w / 2.0 && t->vx < 0) || (t->cx > o->width - t->w / 2.0 && t->vx > 0);
        int out_y = (t->cy < t->h / 2.0 && t->vy < 0) || (t->cy > o->height - t->h / 2.0 && t->vy > 0);
        if (!out_x && !out_y) continue;
        if (rng_uniform_d(&sc->rs) < 0.3)
            t->leaving = 1;
        else {
            if (out_x) t->vx = -t->vx;
            if (out_y) t->vy = -t->vy;
        }
    }
    for (int k = 0; k < sc->npending; k++)
        if (sc->pending[k] <= frame) {
            enter_from_border(sc);
            sc->pending[k--] = sc->pending[--sc->npending];
        }
}

static int cmp_depth(const void *a, const void *b) {
    const Target *x = *(Target *const *)a, *y = *(Target *const *)b;
    return (x->z > y->z) - (x->z < y->z);
}

/* Draws the background and the targets back to front; visible[i] counts
 * target i's ink pixels that nothing covers. */
static void render(Scene *sc) {
    const SynthMotOptions *o = sc->o;
    int W = o->width, H = o->height;
    memcpy(sc->frame, sc->bg, (size_t)W * H);
    for (int p = 0; p < W * H; p++) sc->owner[p] = -1;
    Target **order = xmalloc(sizeof(Target *) * (size_t)(sc->nt + 1));
    int n = 0;
    for (int i = 0; i < sc->nt; i++)
        if (sc->t[i].alive) order[n++] = &sc->t[i];
    qsort(order, (size_t)n, sizeof *order, cmp_depth);
    for (int k = 0; k < n; k++) {
        const Target *t = order[k];
        int x0, y0;
        target_box(t, &x0, &y0);
        for (int y = 0; y < t->h; y++) {
            int fy = y0 + y;
            if (fy < 0 || fy >= H) continue;
            for (int x = 0; x < t->w; x++) {
                int fx = x0 + x;
                uint8_t v = t->px[y * t->w + x];
                if (fx < 0 || fx >= W || v <= INK) continue;
                sc->frame[fy * W + fx] = v;
                sc->owner[fy * W + fx] = (int)(t - sc->t);
            }
        }
    }
    for (int i = 0; i < sc->nt; i++) sc->visible[i] = 0;
    for (int p = 0; p < W * H; p++)
        if (sc->owner[p] >= 0) sc->visible[sc->owner[p]]++;
    free(order);
}

/* Background: a gradient between two grey levels and faded, enlarged
 * Fashion-MNIST items (30-50 % intensity) as clutter. */
static void make_background(Scene *sc, Rng *r) {
    const SynthMotOptions *o = sc->o;
    int W = o->width, H = o->height;
    double a = uniform(r, 30, 80), b = uniform(r, 30, 80);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) sc->bg[y * W + x] = (uint8_t)lround(a + (b - a) * (x + y) / (W + H));
    int n = (int)((long)W * H / 2500); /* about 30 at 320 x 240 */
    sc->nclutter = MIN(n, 64);
    for (int k = 0; k < n; k++) {
        uint32_t item = (uint32_t)rng_below(r, sc->items->n);
        int side = 56 + (int)rng_below(r, 57), h, w;
        uint8_t *px = make_sprite(sc->items, item, side, &h, &w);
        int x0 = (int)rng_below(r, (uint64_t)W) - w / 2, y0 = (int)rng_below(r, (uint64_t)H) - h / 2;
        double alpha = uniform(r, 0.3, 0.5);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int fx = x0 + x, fy = y0 + y;
                if (fx < 0 || fy < 0 || fx >= W || fy >= H) continue;
                double v = sc->bg[fy * W + fx] + alpha * px[y * w + x];
                sc->bg[fy * W + fx] = (uint8_t)MIN(255, lround(v));
            }
        if (k < 64)
            sc->clutter_box[k][0] = x0, sc->clutter_box[k][1] = y0, sc->clutter_box[k][2] = w,
            sc->clutter_box[k][3] = h;
        free(px);
    }
}

/* ---- writing ------------------------------------------------------------------- */

static int write_file(const char *path, const void *d, size_t n, Err *e) {
    FILE *f = fopen(path, "wb");
    if (!f) return err_set(e, "%s: cannot create: %s", path, strerror(errno));
    int bad = fwrite(d, 1, n, f) != n;
    if (fclose(f) != 0) bad = 1;
    if (bad) return err_set(e, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

static int make_dir(const char *path, Err *e) {
    if (mkdir(path, 0755) != 0) return err_set(e, "%s: cannot create directory: %s", path, strerror(errno));
    return 0;
}

static void add_box(MotBox **b, size_t *n, size_t *cap, MotBox x) {
    if (*n == *cap) {
        *cap = MAX(1024, 2 * *cap);
        *b = xrealloc(*b, sizeof(MotBox) * *cap);
    }
    (*b)[(*n)++] = x;
}

/* A detection centred at (cx, cy), clipped to the W x H frame; left out
 * (0 returned) when less than 2 px remain on a side. */
static int add_detection(MotBox **b, size_t *n, size_t *cap, int f, double cx, double cy, double w, double h,
                         double score, int W, int H) {
    double x0 = MAX(0.0, cx - w / 2), y0 = MAX(0.0, cy - h / 2);
    double x1 = MIN((double)W, cx + w / 2), y1 = MIN((double)H, cy + h / 2);
    if (x1 - x0 < 2 || y1 - y0 < 2) return 0;
    add_box(b, n, cap,
            (MotBox){.frame = f,
                     .id = -1,
                     .x = (float)x0,
                     .y = (float)y0,
                     .w = (float)(x1 - x0),
                     .h = (float)(y1 - y0),
                     .score = (float)score,
                     .vis = 1,
                     .cls = 1,
                     .flag = 1});
    return 1;
}

/* Crossings: pairs (by id) whose centres are closer than half their mean
 * size on both axes now and were not in the previous frame. prev holds the previous frame's pairs (a < b). */
static long count_new_overlaps(const Scene *sc, long **prev, int *nprev) {
    long *cur = NULL, fresh = 0;
    int ncur = 0;
    for (int i = 0; i < sc->nt; i++)
        for (int j = i + 1; j < sc->nt; j++) {
            const Target *a = &sc->t[i], *b = &sc->t[j];
            if (!a->alive || !b->alive) continue;
            /* crossing: centres closer than half the mean size on both axes */
            if (fabs(a->cx - b->cx) >= (a->w + b->w) / 4.0 || fabs(a->cy - b->cy) >= (a->h + b->h) / 4.0)
                continue;
            long key = (long)MIN(a->id, b->id) * 1000000L + MAX(a->id, b->id);
            int seen = 0;
            for (int k = 0; k < *nprev && !seen; k++) seen = (*prev)[k] == key;
            fresh += !seen;
            cur = xrealloc(cur, sizeof(long) * (size_t)(ncur + 1));
            cur[ncur++] = key;
        }
    free(*prev);
    *prev = cur;
    *nprev = ncur;
    return fresh;
}

static int write_sequence(const SynthMotOptions *o, const IdxSet *items, uint64_t seed, const char *dir,
                          SynthMotStats *st, Err *e) {
    Scene sc = {.o = o, .items = items};
    int W = o->width, H = o->height, rc = -1;
    rng_seed(&sc.rs, seed, RNG_SYNTH, 0);
    rng_seed(&sc.rd, seed, RNG_SYNTH, 1);
    Rng rb;
    rng_seed(&rb, seed, RNG_SYNTH, 2);
    sc.bg = xmalloc((size_t)W * H);
    sc.frame = xmalloc((size_t)W * H);
    sc.owner = xmalloc(sizeof(int) * (size_t)W * H);
    make_background(&sc, &rb);
    int n0 = o->min_targets + (int)rng_below(&sc.rs, (uint64_t)(o->max_targets - o->min_targets + 1));
    int cls0 = new_target(&sc, -1)->cls;
    new_target(&sc, cls0); /* the second has the first one's class: two look-alikes at least */
    for (int k = 2; k < n0; k++) new_target(&sc, -1);
    memset(st, 0, sizeof *st);
    MotBox *gt = NULL, *det = NULL;
    size_t ngt = 0, ndet = 0, cgt = 0, cdet = 0;
    long *prev_pairs = NULL, overlaps = 0, target_frames = 0;
    int nprev = 0;
    char path[4096 + 64];
    snprintf(path, sizeof path, "%s/img1", dir);
    if (make_dir(dir, e) || make_dir(path, e)) goto out;
    for (int f = 1; f <= o->frames; f++) {
        if (f > 1) move(&sc, f);
        sc.visible = xrealloc(sc.visible, sizeof(long) * (size_t)(sc.nt + 1));
        render(&sc);
        snprintf(path, sizeof path, "%s/img1/%06d.png", dir, f);
        uint8_t *png;
        size_t pn;
        if (image_encode_png(&png, &pn, sc.frame, (uint32_t)H, (uint32_t)W, 1, e)) goto out;
        int wr = write_file(path, png, pn, e);
        free(png);
        if (wr) goto out;
        overlaps += count_new_overlaps(&sc, &prev_pairs, &nprev);
        for (int i = 0; i < sc.nt; i++) {
            Target *t = &sc.t[i];
            if (!t->alive || !box_in_frame(t, o)) continue;
            int x0, y0;
            target_box(t, &x0, &y0);
            double vis = (double)sc.visible[i] / (double)MAX(1, t->ink);
            target_frames++;
            add_box(&gt, &ngt, &cgt,
                    (MotBox){.frame = f,
                             .id = t->id,
                             .x = (float)x0,
                             .y = (float)y0,
                             .w = (float)t->w,
                             .h = (float)t->h,
                             .score = 1,
                             .vis = (float)vis,
                             .cls = 1,
                             .flag = 1});
            if (vis < o->min_visible) {
                st->occluded++;
                continue;
            }
            if (rng_uniform_d(&sc.rd) < o->miss) {
                st->missed++;
                continue;
            }
            double j = o->jitter, cx = x0 + t->w / 2.0 + t->w * j * rng_normal(&sc.rd);
            double cy = y0 + t->h / 2.0 + t->h * j * rng_normal(&sc.rd);
            double w = t->w * exp(j * rng_normal(&sc.rd)), h = t->h * exp(j * rng_normal(&sc.rd));
            double score = 0.55 + 0.35 * vis + 0.1 * rng_normal(&sc.rd);
            score = MIN(1.0, MAX(0.05, score));
            add_detection(&det, &ndet, &cdet, f, cx, cy, w, h, score, W, H);
        }
        /* false positives: Poisson(fp_rate) boxes, half on background clutter */
        double l = exp(-o->fp_rate), p = rng_uniform_d(&sc.rd);
        int nfp = 0;
        while (p > l) nfp++, p *= rng_uniform_d(&sc.rd);
        for (int k = 0; k < nfp; k++) {
            double side = uniform(&sc.rd, o->min_size, o->max_size), asp = uniform(&sc.rd, 0.6, 1.6);
            double w = side * MIN(1.0, asp), h = side * MIN(1.0, 1 / asp), cx, cy;
            if (sc.nclutter && rng_below(&sc.rd, 2)) {
                const int *cb = sc.clutter_box[rng_below(&sc.rd, (uint64_t)sc.nclutter)];
                cx = cb[0] + cb[2] * uniform(&sc.rd, 0.3, 0.7);
                cy = cb[1] + cb[3] * uniform(&sc.rd, 0.3, 0.7);
            } else {
                cx = uniform(&sc.rd, 0, W), cy = uniform(&sc.rd, 0, H);
            }
            st->false_pos +=
                add_detection(&det, &ndet, &cdet, f, cx, cy, w, h, uniform(&sc.rd, 0.2, 0.8), W, H);
        }
    }
    MotBoxes b;
    snprintf(path, sizeof path, "%s/gt", dir);
    if (make_dir(path, e)) goto out;
    snprintf(path, sizeof path, "%s/det", dir);
    if (make_dir(path, e)) goto out;
    for (int kind = 0; kind < 2; kind++) {
        mot_boxes_build(&b, kind ? det : gt, kind ? ndet : ngt, o->frames);
        char *text;
        size_t n;
        mot_format_boxes(&b, kind ? MOT_DET : MOT_GT, &text, &n);
        snprintf(path, sizeof path, "%s/%s", dir, kind ? "det/det.txt" : "gt/gt.txt");
        int wr = write_file(path, text, n, e);
        free(text);
        mot_boxes_free(&b);
        if (wr) goto out;
    }
    char ini[512];
    const char *name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    int n = snprintf(ini, sizeof ini,
                     "[Sequence]\nname=%s\nimDir=img1\nframeRate=30\nseqLength=%d\nimWidth=%d\nimHeight=%d\n"
                     "imExt=.png\n",
                     name, o->frames, W, H);
    snprintf(path, sizeof path, "%s/seqinfo.ini", dir);
    if (write_file(path, ini, (size_t)n, e)) goto out;
    st->tracks = sc.next_id;
    st->gt_boxes = (long)ngt;
    st->det_boxes = (long)ndet;
    st->crossings = target_frames ? 2.0 * overlaps * 30.0 / (double)target_frames : 0;
    rc = 0;
out:
    for (int i = 0; i < sc.nt; i++) free(sc.t[i].px);
    free(sc.t);
    free(sc.pending);
    free(sc.bg);
    free(sc.frame);
    free(sc.owner);
    free(sc.visible);
    free(gt);
    free(det);
    free(prev_pairs);
    return rc;
}

/* ---- the command's work ----------------------------------------------------------- */

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f) {
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static int check_options(const SynthMotOptions *o, Err *e) {
    if (o->sequences < 1 || o->sequences > 10000)
        return err_set(e, "--sequences %d: expected 1..10000", o->sequences);
    if (o->frames < 1 || o->frames > 100000) return err_set(e, "--frames %d: expected 1..100000", o->frames);
    if (o->width < 2 * o->max_size || o->height < 2 * o->max_size || o->width > 4096 || o->height > 4096)
        return err_set(e,
                       "frame size %dx%d: expected at least twice the largest target (%d) and at most 4096",
                       o->height, o->width, o->max_size);
    if (o->min_targets < 2 || o->max_targets < o->min_targets || o->max_targets > 1000)
        return err_set(e, "targets %d..%d: expected 2 <= min <= max <= 1000", o->min_targets, o->max_targets);
    if (o->min_size < 8 || o->max_size < o->min_size)
        return err_set(e, "target sizes %d..%d: expected 8 <= min <= max", o->min_size, o->max_size);
    struct stat st;
    if (lstat(o->out, &st) == 0) return err_set(e, "%s: already exists; give a new directory", o->out);
    return 0;
}

int synth_mot_run(const SynthMotOptions *o, SynthMotStats *stats, Err *e) {
    if (check_options(o, e)) return -1;
    if (strlen(o->out) > 3000) return err_set(e, "--out: path longer than 3000 characters");
    char images[4096], labels[4096];
    const char *pre = o->test_split ? "t10k" : "train";
    snprintf(images, sizeof images, "%s/%s-images-idx3-ubyte.gz", o->fmnist, pre);
    snprintf(labels, sizeof labels, "%s/%s-labels-idx1-ubyte.gz", o->fmnist, pre);
    IdxSet items;
    if (import_idx_load(&items, images, labels, e)) {
        size_t l = strlen(e->msg);
        snprintf(e->msg + l, sizeof e->msg - l,
                 " (Fashion-MNIST: install dataset-fashion-mnist or give --fmnist DIR)");
        return -1;
    }
    size_t tl = strlen(o->out) + 32;
    char *tmp = xmalloc(tl);
    snprintf(tmp, tl, "%s.tmp-%ld", o->out, (long)getpid());
    int rc = make_dir(tmp, e);
    for (int k = 0; k < o->sequences && !rc; k++) {
        char dir[4096];
        SynthMotStats st;
        snprintf(dir, sizeof dir, "%s/synth-%04llu", tmp, (unsigned long long)(o->seed + (uint64_t)k));
        rc = write_sequence(o, &items, o->seed + (uint64_t)k, dir, &st, e);
        if (!rc && stats) stats[k] = st;
    }
    if (!rc && rename(tmp, o->out) != 0)
        rc = err_set(e, "%s: cannot rename %s into place: %s", o->out, tmp, strerror(errno));
    if (rc) nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(tmp);
    import_idx_free(&items);
    return rc;
}
