/* cmd_synth: `siamese synth KIND ...`, synthetic benchmarks made from
 * Debian's Fashion-MNIST. KIND mot: MOTChallenge sequences (synth_mot.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int cmd_synth(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("usage: siamese synth mot --out DIR ...   (siamese synth mot --help)\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "mot")) return synth_mot(argc - 1, argv + 1);
    fprintf(stderr, "siamese synth: unknown kind '%s' (known: mot)\n", argv[1]);
    return 2;
}
