/* cmd_mot_eval: `siamese mot-eval`, the tracking metrics of mot_eval.c for
 * one sequence (--gt, --res) or a root of sequences against a root of
 * result files (--gt-root, --res-root: RES_ROOT/NAME.txt for every sequence
 * NAME), printed as a table and optionally written as JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../io/atomic_file.h"
#include "mot_eval.h"

static const char usage[] =
    "usage: siamese mot-eval --gt SEQ|GT_FILE --res FILE [--json FILE]\n"
    "       siamese mot-eval --gt-root DIR --res-root DIR [--json FILE]\n"
    "\n"
    "Scores tracking results in the MOTChallenge format against ground truth:\n"
    "CLEAR MOT (MOTA, MOTP, ID switches, fragmentations, MT/PT/ML, FP, FN), the\n"
    "identity metrics (IDF1, IDP, IDR) and HOTA (DetA, AssA, LocA), as MOTChallenge\n"
    "scores MOT15/16/17 (docs/tracking.md).\n"
    "\n"
    "  --gt SEQ|GT_FILE  a sequence directory (its gt/gt.txt), or a gt.txt inside one\n"
    "                    (SEQ/gt/gt.txt: SEQ gives seqinfo.ini)\n"
    "  --res FILE        the result file for that sequence\n"
    "  --gt-root DIR     every sub-directory is a sequence with gt/gt.txt\n"
    "  --res-root DIR    holds NAME.txt for every sequence NAME\n"
    "  --json FILE       also write the table as JSON\n"
    "  --help            this text\n";

typedef struct SeqResult {
    char name[128];
    MotCounts c;
} SeqResult;

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Scores one sequence directory against a result file. */
static int eval_one(SeqResult *r, const char *seqdir, const char *gt_file, const char *res_file, Err *e) {
    MotSeq s;
    MotBoxes res;
    memset(&r->c, 0, sizeof r->c);
    if (mot_eval_files(&r->c, &s, &res, seqdir, gt_file, res_file, e)) return -1;
    snprintf(r->name, sizeof r->name, "%s", s.info.name);
    mot_boxes_free(&res);
    mot_seq_close(&s);
    return 0;
}

static void print_row(FILE *f, const char *name, const MotCounts *c) {
    MotScores s;
    mot_scores(&s, c);
    fprintf(f,
            "%-16s %6.1f %6.1f %6.1f %6.1f %6.1f %6.1f %6.1f %6.1f %5ld %5ld %4ld %4ld %4ld %6ld %6ld %7ld\n",
            name, 100 * s.mota, 100 * s.motp, 100 * s.idf1, 100 * s.idp, 100 * s.idr, 100 * s.hota,
            100 * s.deta, 100 * s.assa, c->idsw, c->frag, c->mt, c->pt, c->ml, c->fp, c->fn, c->gt_dets);
}

static void json_row(FILE *f, const char *name, const MotCounts *c, int last) {
    MotScores s;
    mot_scores(&s, c);
    fprintf(f,
            "    \"%s\": {\"MOTA\": %.6f, \"MOTP\": %.6f, \"IDF1\": %.6f, \"IDP\": %.6f, \"IDR\": %.6f, "
            "\"HOTA\": %.6f, \"DetA\": %.6f, \"AssA\": %.6f, \"LocA\": %.6f, \"IDSW\": %ld, \"Frag\": %ld, "
            "\"MT\": %ld, \"PT\": %ld, \"ML\": %ld, \"FP\": %ld, \"FN\": %ld, \"TP\": %ld, \"GT\": %ld, "
            "\"GT_IDs\": %ld, \"IDs\": %ld}%s\n",
            name, s.mota, s.motp, s.idf1, s.idp, s.idr, s.hota, s.deta, s.assa, s.loca, c->idsw, c->frag,
            c->mt, c->pt, c->ml, c->fp, c->fn, c->tp, c->gt_dets, c->gt_ids, c->res_ids, last ? "" : ",");
}

static int write_json(const char *path, const SeqResult *r, int n, const MotCounts *all, Err *e) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return err_set(e, "%s: out of memory", path);
    fprintf(f, "{\n  \"sequences\": {\n");
    for (int i = 0; i < n; i++) json_row(f, r[i].name, &r[i].c, i == n - 1);
    fprintf(f, "  },\n  \"combined\": {\n");
    json_row(f, "all", all, 1);
    fprintf(f, "  }\n}\n");
    fclose(f);
    int rc = atomic_file_write_all(path, buf, len, e);
    free(buf);
    return rc;
}

int cmd_mot_eval(int argc, char **argv) {
    const char *gt = NULL, *res = NULL, *gt_root = NULL, *res_root = NULL, *json = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return 0;
        }
        const char **dst = !strcmp(a, "--gt")         ? &gt
                           : !strcmp(a, "--res")      ? &res
                           : !strcmp(a, "--gt-root")  ? &gt_root
                           : !strcmp(a, "--res-root") ? &res_root
                           : !strcmp(a, "--json")     ? &json
                                                      : NULL;
        if (!dst) {
            fprintf(stderr, "siamese mot-eval: unexpected argument '%s' (siamese mot-eval --help)\n", a);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "siamese mot-eval: %s needs a value (siamese mot-eval --help)\n", a);
            return 2;
        }
        *dst = v;
        i++;
    }
    int single = gt || res, multi = gt_root || res_root;
    if (single == multi || (single && !(gt && res)) || (multi && !(gt_root && res_root))) {
        fprintf(stderr,
                "siamese mot-eval: give --gt and --res, or --gt-root and --res-root (siamese mot-eval "
                "--help)\n");
        return 2;
    }
    Err e = {""};
    SeqResult *r = NULL;
    int n = 0, rc = 0;
    if (single) {
        r = xcalloc(1, sizeof *r);
        n = 1;
        if (is_dir(gt)) {
            rc = eval_one(r, gt, NULL, res, &e);
        } else { /* SEQ/gt/gt.txt */
            char *dir = xstrdup(gt), *s1 = strrchr(dir, '/');
            if (s1) *s1 = 0;
            char *s2 = s1 ? strrchr(dir, '/') : NULL;
            if (s2) *s2 = 0;
            if (!s2)
                rc =
                    err_set(&e, "%s: give a sequence directory or SEQ/gt/gt.txt (seqinfo.ini is in SEQ)", gt);
            if (!rc) rc = eval_one(r, s2 == dir ? "/" : dir, gt, res, &e);
            free(dir);
        }
    } else {
        char **names = NULL;
        if (mot_list_sequences(gt_root, &names, &n, &e)) {
            fprintf(stderr, "siamese mot-eval: %s\n", e.msg);
            return 1;
        }
        r = xcalloc((size_t)n, sizeof *r);
        for (int i = 0; i < n && !rc; i++) {
            char seq[4096], rf[4096];
            snprintf(seq, sizeof seq, "%s/%s", gt_root, names[i]);
            snprintf(rf, sizeof rf, "%s/%s.txt", res_root, names[i]);
            rc = eval_one(&r[i], seq, NULL, rf, &e);
        }
        for (int i = 0; i < n; i++) free(names[i]);
        free(names);
    }
    if (rc) {
        fprintf(stderr, "siamese mot-eval: %s\n", e.msg);
        free(r);
        return 1;
    }
    MotCounts all = {0};
    for (int i = 0; i < n; i++) mot_counts_add(&all, &r[i].c);
    printf("%-16s %6s %6s %6s %6s %6s %6s %6s %6s %5s %5s %4s %4s %4s %6s %6s %7s\n", "sequence", "MOTA",
           "MOTP", "IDF1", "IDP", "IDR", "HOTA", "DetA", "AssA", "IDsw", "Frag", "MT", "PT", "ML", "FP", "FN",
           "GT");
    for (int i = 0; i < n; i++) print_row(stdout, r[i].name, &r[i].c);
    if (n > 1) print_row(stdout, "COMBINED", &all);
    if (json && write_json(json, r, n, &all, &e)) {
        fprintf(stderr, "siamese mot-eval: %s\n", e.msg);
        rc = 1;
    }
    free(r);
    return rc ? 1 : 0;
}
