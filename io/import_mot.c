/* import_mot: `siamese import --format mot`, a dataset of ground-truth crops
 * from MOTChallenge sequences for training a matching network. One class
 * per (sequence, track id), named "SEQUENCE/ID"; samples in sequence, then
 * frame, then file order, named "SEQUENCE/FRAME/ID" (FRAME six digits; the
 * jittered copies after the first add "/jN"). Scored ground truth only
 * (class 1, non-zero flag, as mot-eval scores), at least --min-visibility
 * visible. Grey (BT.601 luma), or with --color the frame's R, G, B planes. */
#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset.h"
#include "image.h"
#include "mot.h"

static const char usage[] =
    "usage: siamese import --format mot --root DIR [--root DIR ...] --out DB\n"
    "                      [--resize HxW] [--min-visibility V] [--jitter F --copies N]\n"
    "                      [--seed N] [--compress] [--color]\n"
    "\n"
    "Builds an LMDB dataset of the ground-truth boxes of MOTChallenge sequences,\n"
    "cropped and resized, grey or colour: one class per (sequence, track id), named\n"
    "SEQUENCE/ID, so the samplers draw PK batches across frames or pairs; each sample\n"
    "is named SEQUENCE/FRAME/ID (FRAME six digits; jittered copies add /jN). Only\n"
    "boxes MOTChallenge scores are taken (class 1 with a non-zero flag).\n"
    "\n"
    "  --root DIR           a sequence (seqinfo.ini, img1/, gt/gt.txt), or a\n"
    "                       directory of them (repeat for more)\n"
    "  --out DB             dataset to create (must not exist)\n"
    "  --resize HxW         crop size (default 32x32), by area averaging\n"
    "  --min-visibility V   skip boxes less visible than V (gt.txt column 9; default 0)\n"
    "  --jitter F           move each box's centre by N(0, F) of its size and scale its\n"
    "                       sides by exp(N(0, F)) before cropping, as a detector would\n"
    "                       (default 0: the exact box)\n"
    "  --copies N           crops per box (default 1; more with --jitter)\n"
    "  --seed N             seed of the jitter (default 1)\n"
    "  --compress           zlib-compress each record\n"
    "  --color              3 channels (R, G, B as decoded; grey frames replicated);\n"
    "                       without it colour becomes grey by BT.601 luma\n"
    "  --help               this text\n";

typedef struct SeqList {
    char **dir;
    int n;
} SeqList;

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_sequence(const char *dir) {
    char p[4400];
    snprintf(p, sizeof p, "%s/gt/gt.txt", dir);
    struct stat st;
    return stat(p, &st) == 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void seq_add(SeqList *l, const char *dir) {
    l->dir = xrealloc(l->dir, sizeof(char *) * (size_t)(l->n + 1));
    l->dir[l->n++] = xstrdup(dir);
}

/* A root is a sequence, or a directory whose sequence sub-directories are
 * taken in name order. */
static int add_root(SeqList *l, const char *root, Err *e) {
    if (!is_dir(root)) return err_set(e, "%s: not a directory", root);
    if (is_sequence(root)) {
        seq_add(l, root);
        return 0;
    }
    DIR *d = opendir(root);
    if (!d) return err_set(e, "%s: cannot open", root);
    int first = l->n;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", root, de->d_name);
        if (is_dir(p) && is_sequence(p)) seq_add(l, p);
    }
    closedir(d);
    if (l->n == first)
        return err_set(e, "%s: neither a sequence with gt/gt.txt nor a directory of them", root);
    qsort(l->dir + first, (size_t)(l->n - first), sizeof(char *), cmp_str);
    return 0;
}

static int keep_box(const MotBox *b, double min_vis) {
    return b->cls == 1 && b->flag != 0 && b->vis >= min_vis;
}

typedef struct ClassKey {
    int32_t id;
    int32_t label;
} ClassKey;

static int cmp_key(const void *a, const void *b) {
    int32_t x = ((const ClassKey *)a)->id, y = ((const ClassKey *)b)->id;
    return (x > y) - (x < y);
}

int cmd_import_mot(int argc, char **argv) {
    const char *out = NULL;
    uint32_t rh = 32, rw = 32;
    double min_vis = 0, jitter = 0;
    int compress = 0, color = 0;
    long copies = 1;
    uint64_t seed = 1;
    SeqList seqs = {0};
    Err e = {""};
    int rc = 2;
    const char **roots = xmalloc(sizeof(char *) * (size_t)argc);
    int nroots = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            rc = 0;
            goto done;
        }
        if (!strcmp(a, "--compress")) {
            compress = 1;
            continue;
        }
        if (!strcmp(a, "--color")) {
            color = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "siamese import: %s needs a value (siamese import --format mot --help)\n", a);
            goto done;
        }
        i++;
        if (!strcmp(a, "--format")) continue; /* mot: how we got here */
        if (!strcmp(a, "--root")) {
            roots[nroots++] = v;
        } else if (!strcmp(a, "--out")) {
            out = v;
        } else if (!strcmp(a, "--resize")) {
            long h, w;
            char extra;
            if (sscanf(v, "%ldx%ld%c", &h, &w, &extra) != 2 || h < 1 || w < 1 || h > 4096 || w > 4096) {
                fprintf(stderr, "siamese import: --resize %s: expected HxW, e.g. 32x32 (each 1..4096)\n", v);
                goto done;
            }
            rh = (uint32_t)h, rw = (uint32_t)w;
        } else if (!strcmp(a, "--min-visibility")) {
            if (parse_double(v, 0, 1, &min_vis)) {
                fprintf(stderr, "siamese import: --min-visibility %s: expected a number in [0, 1]\n", v);
                goto done;
            }
        } else if (!strcmp(a, "--jitter")) {
            if (parse_double(v, 0, 1, &jitter)) {
                fprintf(stderr, "siamese import: --jitter %s: expected a number in [0, 1]\n", v);
                goto done;
            }
        } else if (!strcmp(a, "--copies")) {
            if (parse_long(v, 1, 1000, &copies)) {
                fprintf(stderr, "siamese import: --copies %s: expected a whole number in [1, 1000]\n", v);
                goto done;
            }
        } else if (!strcmp(a, "--seed")) {
            if (parse_u64(v, &seed)) {
                fprintf(stderr, "siamese import: --seed %s: expected a non-negative whole number\n", v);
                goto done;
            }
        } else {
            fprintf(stderr,
                    "siamese import: unexpected argument '%s' for --format mot (siamese import --format mot "
                    "--help)\n",
                    a);
            goto done;
        }
    }
    if (!nroots || !out) {
        fprintf(stderr,
                "siamese import: --format mot needs --root DIR and --out DB (siamese import --format mot "
                "--help)\n");
        goto done;
    }
    rc = 1;
    for (int k = 0; k < nroots; k++)
        if (add_root(&seqs, roots[k], &e)) goto fail;
    double t0 = now_seconds();
    /* pass 1: the classes (sequence, id) and their names */
    MotSeq *sq = xcalloc((size_t)seqs.n, sizeof(MotSeq));
    MotBoxes *gt = xcalloc((size_t)seqs.n, sizeof(MotBoxes));
    ClassKey **keys = xcalloc((size_t)seqs.n, sizeof(ClassKey *));
    int *nkeys = xcalloc((size_t)seqs.n, sizeof(int));
    char **names = NULL;
    uint32_t classes = 0;
    uint64_t samples = 0;
    int ok = 1;
    for (int s = 0; s < seqs.n && ok; s++) {
        ok = !mot_seq_open(&sq[s], seqs.dir[s], &e) && !mot_seq_boxes(&sq[s], MOT_GT, &gt[s], &e);
        if (!ok) break;
        keys[s] = xmalloc(sizeof(ClassKey) * (gt[s].n + 1));
        for (size_t i = 0; i < gt[s].n; i++)
            if (keep_box(&gt[s].box[i], min_vis))
                keys[s][nkeys[s]++] = (ClassKey){gt[s].box[i].id, 0}, samples += (uint64_t)copies;
        qsort(keys[s], (size_t)nkeys[s], sizeof(ClassKey), cmp_key);
        int u = 0;
        for (int i = 0; i < nkeys[s]; i++)
            if (!u || keys[s][i].id != keys[s][u - 1].id) keys[s][u++] = keys[s][i];
        nkeys[s] = u;
        for (int i = 0; i < u; i++) {
            if (classes >= DS_MAX_CLASSES) {
                ok = !err_set(&e, "%s: more than %d (sequence, track id) classes", seqs.dir[s],
                              DS_MAX_CLASSES);
                break;
            }
            keys[s][i].label = (int32_t)classes;
            names = xrealloc(names, sizeof(char *) * (classes + 1));
            char nm[256];
            snprintf(nm, sizeof nm, "%s/%d", sq[s].info.name, keys[s][i].id);
            names[classes++] = xstrdup(nm);
        }
    }
    if (ok && !samples)
        ok = !err_set(&e, "no ground-truth box to crop (class 1, flag 1, visibility >= %g)", min_vis);
    DsWriter *w = NULL;
    if (ok) {
        DsWriterSpec spec = {.channels = color ? 3 : 1,
                             .height = rh,
                             .width = rw,
                             .classes = classes,
                             .compress = compress,
                             .source = "mot",
                             .class_names = (const char *const *)names};
        ok = !ds_writer_create(&w, out, &spec, &e);
    }
    /* pass 2: crops, frame by frame */
    Rng rng;
    rng_seed(&rng, seed, RNG_SYNTH, 100);
    uint8_t *crop = xmalloc((size_t)(color ? 3 : 1) * rh * rw);
    for (int s = 0; s < seqs.n && ok; s++) {
        for (int32_t f = 1; f <= gt[s].frames && ok; f++) {
            size_t i0 = gt[s].first[f], i1 = gt[s].first[f + 1];
            int any = 0;
            for (size_t i = i0; i < i1; i++) any |= keep_box(&gt[s].box[i], min_vis);
            if (!any) continue;
            char path[4200];
            mot_frame_path(&sq[s], f, path, sizeof path);
            Image img;
            if (image_load_color(&img, path, color, &e)) {
                ok = 0;
                break;
            }
            for (size_t i = i0; i < i1 && ok; i++) {
                const MotBox *b = &gt[s].box[i];
                if (!keep_box(b, min_vis)) continue;
                ClassKey key = {b->id, 0}, *k = bsearch(&key, keys[s], (size_t)nkeys[s], sizeof key, cmp_key);
                for (long c = 0; c < copies && ok; c++) {
                    MotBox j = *b;
                    if (jitter > 0) {
                        double cx = b->x + b->w / 2.0 + b->w * jitter * rng_normal(&rng);
                        double cy = b->y + b->h / 2.0 + b->h * jitter * rng_normal(&rng);
                        j.w = (float)(b->w * exp(jitter * rng_normal(&rng)));
                        j.h = (float)(b->h * exp(jitter * rng_normal(&rng)));
                        j.x = (float)(cx - j.w / 2), j.y = (float)(cy - j.h / 2);
                    }
                    mot_crop(crop, &img, &j, (int)rh, (int)rw);
                    char name[300];
                    int nl = snprintf(name, sizeof name, "%s/%06d/%d", sq[s].info.name, (int)f, (int)b->id);
                    if (c > 0) snprintf(name + nl, sizeof name - (size_t)nl, "/j%ld", c);
                    ok = !ds_writer_add_named(w, crop, k->label, NULL, name, &e);
                }
            }
            image_free(&img);
        }
    }
    free(crop);
    if (w) {
        if (ok)
            ok = !ds_writer_finish(w, &e);
        else
            ds_writer_abort(w);
    }
    if (ok)
        printf("siamese import: wrote %s: %" PRIu64
               " samples, %u classes from %d sequences, %dx%ux%u%s (%.1f s)\n",
               out, samples, classes, seqs.n, color ? 3 : 1, rh, rw, compress ? ", compressed" : "",
               now_seconds() - t0);
    for (int s = 0; s < seqs.n; s++) {
        mot_boxes_free(&gt[s]);
        mot_seq_close(&sq[s]);
        free(keys[s]);
    }
    for (uint32_t c = 0; c < classes; c++) free(names[c]);
    free(names);
    free(sq);
    free(gt);
    free(keys);
    free(nkeys);
    if (ok) {
        rc = 0;
        goto done;
    }
fail:
    fprintf(stderr, "siamese import: %s\n", e.msg);
done:
    for (int s = 0; s < seqs.n; s++) free(seqs.dir[s]);
    free(seqs.dir);
    free(roots);
    return rc;
}
