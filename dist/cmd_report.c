/* cmd_report: `siamese report RUN_DIR... [--data DB] [--out FILE.html]
 * [--points N] [--no-tsne] [--gt-root DIR --res-root DIR...]`. Single
 * process, no MPI; the machine's threads, as eval (the same report for any
 * thread count). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: siamese report RUN_DIR... [--data DB] [--out FILE.html] [--points N] [--no-tsne]\n"
            "                      [--gt-root DIR --res-root DIR...]\n\n"
            "One self-contained HTML file (open it in any browser, offline) showing a run or several\n"
            "overlaid: training and validation curves, time per step by phase and per rank, the\n"
            "evaluation of the run's model.smpi (or newest checkpoint) on the test set (ROC with the EER,\n"
            "distance histograms with the threshold, Recall@K, N-way accuracy), retrieval examples, an\n"
            "embedding map (PCA and t-SNE), tracking scores and frames with track ids, the config and\n"
            "the command lines. What a run lacks is said.\n\n"
            "  --data DB        test dataset (default: each run's [data] test)\n"
            "  --out FILE.html  output (default RUN_DIR/report.html; required with several runs)\n"
            "  --points N       most points on the embedding map, a seeded sample beyond (default 10000)\n"
            "  --no-tsne        the PCA map only\n"
            "  --gt-root DIR    tracking: every sub-directory is a sequence with gt/gt.txt (as mot-eval)\n"
            "  --res-root DIR   tracking: the run's results, NAME.txt for sequence NAME; once per run,\n"
            "                   in the order of the runs (needs --gt-root)\n");
}

int cmd_report(int argc, char **argv) {
    const char **runs = xcalloc((size_t)argc, sizeof *runs), **res = xcalloc((size_t)argc, sizeof *res);
    ReportOptions o = {.tsne = 1};
    long points = 10000;
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            rc = 0;
            goto out;
        }
        if (!strcmp(a, "--no-tsne")) {
            o.tsne = 0;
            continue;
        }
        if (a[0] == '-' && !v) {
            fprintf(stderr, "siamese report: %s needs a value\n", a);
            goto out;
        }
        if (!strcmp(a, "--data")) {
            o.data = v, i++;
        } else if (!strcmp(a, "--out")) {
            o.out = v, i++;
        } else if (!strcmp(a, "--gt-root")) {
            o.gt_root = v, i++;
        } else if (!strcmp(a, "--res-root")) {
            res[o.nres++] = v, i++;
        } else if (!strcmp(a, "--points")) {
            if (parse_long(v, 4, 10000000, &points)) {
                fprintf(stderr, "siamese report: --points %s: expected a whole number in [4, 10000000]\n", v);
                goto out;
            }
            i++;
        } else if (a[0] == '-') {
            fprintf(stderr, "siamese report: unexpected argument '%s'; see siamese report --help\n", a);
            goto out;
        } else {
            runs[o.nruns++] = a;
        }
    }
    if (o.nruns == 0) {
        fprintf(stderr, "siamese report: need at least one RUN_DIR; see siamese report --help\n");
        goto out;
    }
    if (o.nres && o.nres != o.nruns) {
        fprintf(stderr,
                "siamese report: --res-root given %d times for %d runs: give one per run, in their order\n",
                o.nres, o.nruns);
        goto out;
    }
    if (o.nres && !o.gt_root) {
        fprintf(stderr,
                "siamese report: --res-root needs --gt-root DIR (the sequences with their ground truth)\n");
        goto out;
    }
    o.runs = runs;
    o.res_roots = res;
    o.map_points = (int)points;
    Err e = {{0}};
    rc = eval_start_threads(&e) || report_write(&o, &e) ? 1 : 0;
    if (rc) fprintf(stderr, "siamese report: %s\n", e.msg);
out:
    free(runs);
    free(res);
    return rc;
}
