/* cmd_synth: `siamese synth KIND ...`, synthetic benchmarks made from
 * Debian's Fashion-MNIST. KIND mot: MOTChallenge sequences (synth_mot.c);
 * coseg: the object co-segmentation task (synth_coseg.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "synth_coseg.h"
#include "synth_mot.h"

static const char mot_usage[] =
    "usage: siamese synth mot --out DIR [--seed N] [--sequences N] [--frames N]\n"
    "                         [--split train|test] [--fmnist DIR]\n"
    "\n"
    "Writes N MOTChallenge sequences DIR/synth-SSSS (SSSS = seed, seed + 1, ...):\n"
    "seqinfo.ini, grey 320x240 PNG frames in img1/, gt/gt.txt (MOT16 layout with\n"
    "visibility) and det/det.txt from a simulated detector. 8-14 Fashion-MNIST items\n"
    "of 28-56 px (at least two of one class) move with constant velocity and random\n"
    "turns over a cluttered background, occlude each other by drawing order and\n"
    "leave and enter through the borders; the detector misses 10 % of the visible\n"
    "ones, adds one false positive per frame on average and jitters boxes by 5 %.\n"
    "DIR must not exist; it is built as DIR.tmp-PID and renamed when complete.\n"
    "\n"
    "  --out DIR        directory to create\n"
    "  --seed N         seed of the first sequence (default 1)\n"
    "  --sequences N    sequences to write (default 4)\n"
    "  --frames N       frames per sequence (default 300)\n"
    "  --split S        train: objects from the Fashion-MNIST training set (default);\n"
    "                   test: from its test set\n"
    "  --fmnist DIR     where the idx files are (default /usr/share/datasets/fashion-mnist)\n"
    "  --help           this text\n";

static int synth_mot(int argc, char **argv) {
    SynthMotOptions o;
    synth_mot_defaults(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(mot_usage, stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "siamese synth mot: %s needs a value (siamese synth mot --help)\n", a);
            return 2;
        }
        long n;
        i++;
        if (!strcmp(a, "--out")) {
            o.out = v;
        } else if (!strcmp(a, "--fmnist")) {
            o.fmnist = v;
        } else if (!strcmp(a, "--split")) {
            if (strcmp(v, "train") && strcmp(v, "test")) {
                fprintf(stderr, "siamese synth mot: --split %s: expected train or test\n", v);
                return 2;
            }
            o.test_split = !strcmp(v, "test");
        } else if (!strcmp(a, "--seed")) {
            if (parse_long(v, 0, 1000000000, &n)) {
                fprintf(stderr, "siamese synth mot: --seed %s: expected a whole number in [0, 1e9]\n", v);
                return 2;
            }
            o.seed = (uint64_t)n;
        } else if (!strcmp(a, "--sequences") || !strcmp(a, "--frames")) {
            long max = !strcmp(a, "--frames") ? 100000 : 10000;
            if (parse_long(v, 1, max, &n)) {
                fprintf(stderr, "siamese synth mot: %s %s: expected a whole number in [1, %ld]\n", a, v, max);
                return 2;
            }
            *(!strcmp(a, "--frames") ? &o.frames : &o.sequences) = (int)n;
        } else {
            fprintf(stderr, "siamese synth mot: unexpected argument '%s' (siamese synth mot --help)\n", a);
            return 2;
        }
    }
    if (!o.out) {
        fprintf(stderr, "siamese synth mot: --out DIR is required (siamese synth mot --help)\n");
        return 2;
    }
    SynthMotStats *st = xcalloc((size_t)o.sequences, sizeof *st);
    Err e = {""};
    if (synth_mot_run(&o, st, &e)) {
        fprintf(stderr, "siamese synth mot: %s\n", e.msg);
        free(st);
        return 1;
    }
    for (int k = 0; k < o.sequences; k++)
        printf("synth-%04llu: %d frames, %d tracks, %ld gt boxes (%ld under %.0f %% visible), %ld detections "
               "(%ld false, %ld missed), %.2f crossings per target per 30 frames\n",
               (unsigned long long)(o.seed + (uint64_t)k), o.frames, st[k].tracks, st[k].gt_boxes,
               st[k].occluded, 100 * o.min_visible, st[k].det_boxes, st[k].false_pos, st[k].missed,
               st[k].crossings);
    printf("wrote %s\n", o.out);
    free(st);
    return 0;
}

static const char coseg_usage[] =
    "usage: siamese synth coseg --out DB --test-out DB [--seed N] [--side 64] [--pairs N]\n"
    "                           [--test-pairs N] [--objects N] [--class-masks] [--fmnist DIR]\n"
    "\n"
    "Writes the Fashion-MNIST object co-segmentation task (docs/coseg.md): pairs of\n"
    "side x side grey images, each holding 2-4 Fashion-MNIST items of different classes\n"
    "(18-40 px at side 64, boxes overlapping by at most 30 %, later items in front) on\n"
    "a dimmed texture of enlarged item crops. 3 of 4 pairs share exactly one class, the\n"
    "others none. Each image is labelled with the shared class (or, without one, one of\n"
    "its own) and masked with that object's visible pixels; pair i is images 2i, 2i+1\n"
    "(named pair-I-a, pair-I-b), stored in the pairs sub-database. Training images come\n"
    "from the training set without classes 8 (bag) and 9 (ankle-boot), test images from\n"
    "the test set with all ten. Both datasets are written, or neither.\n"
    "\n"
    "  --out DB          training dataset to create\n"
    "  --test-out DB     test dataset to create\n"
    "  --seed N          seed (default 1)\n"
    "  --side N          image side in pixels, 32..512 (default 64)\n"
    "  --pairs N         training pairs (default 10000)\n"
    "  --test-pairs N    test pairs (default pairs / 5, at least 1)\n"
    "  --objects N       items per image, 1..4 (default: 2-4, the task; 1: single objects,\n"
    "                    e.g. to pretrain an encoder on the training classes)\n"
    "  --class-masks     masks label every visible object pixel with its class + 1 (0\n"
    "                    background; dataset meta masks = 2), for [loss] mask = class;\n"
    "                    the images, labels and pairs are those made without it\n"
    "  --fmnist DIR      where the idx files are (default /usr/share/datasets/fashion-mnist)\n"
    "  --help            this text\n";

static int synth_coseg(int argc, char **argv) {
    SynthCosegOptions o = {
        .fmnist = "/usr/share/datasets/fashion-mnist", .seed = 1, .side = 64, .pairs = 10000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(coseg_usage, stdout);
            return 0;
        }
        if (!strcmp(a, "--class-masks")) {
            o.class_masks = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "siamese synth coseg: %s needs a value (siamese synth coseg --help)\n", a);
            return 2;
        }
        long n;
        i++;
        if (!strcmp(a, "--out")) {
            o.out = v;
        } else if (!strcmp(a, "--test-out")) {
            o.test_out = v;
        } else if (!strcmp(a, "--fmnist")) {
            o.fmnist = v;
        } else if (!strcmp(a, "--seed")) {
            if (parse_long(v, 0, 1000000000, &n)) {
                fprintf(stderr, "siamese synth coseg: --seed %s: expected a whole number in [0, 1e9]\n", v);
                return 2;
            }
            o.seed = (uint64_t)n;
        } else if (!strcmp(a, "--side")) {
            if (parse_long(v, 32, 512, &n)) {
                fprintf(stderr, "siamese synth coseg: --side %s: expected a whole number in [32, 512]\n", v);
                return 2;
            }
            o.side = (uint32_t)n;
        } else if (!strcmp(a, "--objects")) {
            if (parse_long(v, 1, SYNTH_MAX_OBJECTS, &n)) {
                fprintf(stderr, "siamese synth coseg: --objects %s: expected a whole number in [1, %d]\n", v,
                        SYNTH_MAX_OBJECTS);
                return 2;
            }
            o.objects = (int)n;
        } else if (!strcmp(a, "--pairs") || !strcmp(a, "--test-pairs")) {
            if (parse_long(v, 1, 100000000, &n)) {
                fprintf(stderr, "siamese synth coseg: %s %s: expected a whole number in [1, 1e8]\n", a, v);
                return 2;
            }
            *(!strcmp(a, "--pairs") ? &o.pairs : &o.test_pairs) = (uint64_t)n;
        } else {
            fprintf(stderr, "siamese synth coseg: unexpected argument '%s' (siamese synth coseg --help)\n",
                    a);
            return 2;
        }
    }
    if (!o.out || !o.test_out) {
        fprintf(
            stderr,
            "siamese synth coseg: --out DB and --test-out DB are required (siamese synth coseg --help)\n");
        return 2;
    }
    if (!o.test_pairs) o.test_pairs = MAX(1, o.pairs / 5);
    double t0 = now_seconds();
    Err e = {""};
    if (synth_coseg_run(&o, &e)) {
        fprintf(stderr, "siamese synth coseg: %s\n", e.msg);
        return 1;
    }
    printf("wrote %s (%llu pairs) and %s (%llu pairs): 1x%ux%u with %s, seed %llu (%.1f s)\n", o.out,
           (unsigned long long)o.pairs, o.test_out, (unsigned long long)o.test_pairs, o.side, o.side,
           o.class_masks ? "class masks" : "masks",
           (unsigned long long)o.seed, now_seconds() - t0);
    return 0;
}

int cmd_synth(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("usage: siamese synth mot --out DIR ...               (siamese synth mot --help)\n"
               "       siamese synth coseg --out DB --test-out DB ...  (siamese synth coseg --help)\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "mot")) return synth_mot(argc - 1, argv + 1);
    if (!strcmp(argv[1], "coseg")) return synth_coseg(argc - 1, argv + 1);
    fprintf(stderr, "siamese synth: unknown kind '%s' (known: mot, coseg)\n", argv[1]);
    return 2;
}
