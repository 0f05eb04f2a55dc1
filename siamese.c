/* siamese: the one command-line entry. Dispatches to the subcommands; each
 * lives beside the code it drives (io/cmd_data.c: import, pairs, inspect;
 * dist/cmd_train.c: train; dist/cmd_eval.c: eval, embed, export;
 * io/cmd_synth.c: synth; track/: track, mot-eval, mot-draw;
 * dist/cmd_segment.c: segment; dist/cmd_report.c: report). */
#include <stdio.h>
#include <string.h>

#include "dist/comm.h"
#include "nn/blas.h"
#include "nn/parallel.h"
#include "nn/util.h"

int cmd_import(int argc, char **argv);
int cmd_pairs(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_segment(int argc, char **argv);
int cmd_mot_eval(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_track(int argc, char **argv);
int cmd_mot_draw(int argc, char **argv);
int cmd_track_fit(int argc, char **argv);
int cmd_report(int argc, char **argv);
static int cmd_version(int argc, char **argv);

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *what;
} commands[] = {
    {"import", cmd_import, "build an LMDB dataset from MNIST idx files, image folders or Omniglot"},
    {"pairs", cmd_pairs, "materialise seeded pairs or triplets into a dataset"},
    {"inspect", cmd_inspect, "show a dataset's meta and classes, or verify a checkpoint"},
    {"train", cmd_train, "train a siamese network from a config (1 process or under mpirun/srun)"},
    {"eval", cmd_eval, "Recall@K, MAP@R, verification, ROC AUC, EER, N-way K-shot of a checkpoint"},
    {"embed", cmd_embed, "write a dataset's embeddings and labels as .npy"},
    {"export", cmd_export, "write a checkpoint's weights as safetensors"},
    {"segment", cmd_segment, "write a co-segmentation model's predicted masks and overlays as PNG"},
    {"synth", cmd_synth,
     "write synthetic benchmarks from Fashion-MNIST (mot: tracking sequences; coseg: co-segmentation pairs)"},
    {"track", cmd_track, "link a MOTChallenge sequence's detections into tracks"},
    {"track-fit", cmd_track_fit, "fit the tracker's link model on sequences with ground truth"},
    {"mot-draw", cmd_mot_draw, "draw a frame of a MOTChallenge sequence with boxes and ids (PNG)"},
    {"mot-eval", cmd_mot_eval, "MOTA, MOTP, IDF1, HOTA, ID switches ... of tracking results (MOTChallenge)"},
    {"report", cmd_report, "an HTML report of one run or several: curves, ROC, retrieval, embedding map"},
    {"version", cmd_version, "print the version, which BLAS kernels run and the threads per rank"},
};
#define NCOMMANDS (int)(sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
    fprintf(f, "usage: siamese COMMAND [options]   (siamese COMMAND --help for each)\n\ncommands:\n");
    for (int i = 0; i < NCOMMANDS; i++) fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].what);
}

/* The threads line is what `siamese train` would use with [run] threads = 0
 * (under mpirun or srun: per rank, counting the ranks sharing its CPUs). */
static int cmd_version(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: siamese version\n\nPrints the version, which BLAS kernels run and the threads per rank\n"
               "siamese train would start with [run] threads = 0.\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "siamese version: unexpected argument '%s'; it takes none\n", argv[1]);
        return 2;
    }
    dist_init(&argc, &argv);
    char why[64];
    Err e;
    int threads = parallel_choose_threads(0, dist_ranks_sharing_cpus(), why, sizeof why, &e);
    if (threads < 0) {
        fprintf(stderr, "siamese version: %s\n", e.msg);
    } else if (dist_rank() == 0) {
        printf("%s\nBLAS: %s\n", SIAMESE_VERSION, blas_describe());
        printf("threads: %d per rank (%s); OpenBLAS runs single-threaded inside them\n", threads, why);
    }
    dist_finalize();
    return threads < 0 ? 2 : 0;
}

int main(int argc, char **argv) {
    blas_select_core(argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (int i = 0; i < NCOMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "siamese: unknown command '%s'; run 'siamese --help' for the list\n", argv[1]);
    return 2;
}
