/* mot_eval: see mot_eval.h. Each sequence goes through four passes over its
 * frames: preprocessing (which boxes are scored), CLEAR, the identity counts
 * with their global matching, and HOTA (global alignment, then matching per
 * frame). Track ids become dense indices 0..G-1 and 0..H-1 first. */
#include "mot_eval.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "assign.h"

static int is_distractor(int32_t cls) { return cls == 2 || cls == 7 || cls == 8 || cls == 12; }

/* One frame's scored boxes: indices into gt/res, dense ids, the IoU matrix
 * (ng, nr) row-major. */
typedef struct FrameView {
    int ng, nr;
    int *g, *r; /* dense ids */
    const MotBox **gb, **rb;
    double *iou;
} FrameView;

typedef struct SeqData {
    const MotBoxes *gt, *res;
    int G, H;             /* distinct scored ids */
    int *gdense, *rdense; /* per box: dense id, -1 when not scored */
    int max_g, max_r;     /* most scored boxes in one frame */
} SeqData;

/* Largest summed IoU over pairs with IoU >= thr (others are worth 0 and are
 * dropped afterwards), as TrackEval matches. row_to_col gets -1 for rows
 * left without a pair of IoU >= thr. */
static void match_iou(int *row_to_col, const double *iou, int n, int m, double thr, double *work) {
    for (int k = 0; k < n * m; k++) work[k] = iou[k] >= thr ? -iou[k] : 0;
    assign_solve(row_to_col, work, n, m, NULL);
    for (int i = 0; i < n; i++)
        if (row_to_col[i] >= 0 && iou[i * m + row_to_col[i]] < thr) row_to_col[i] = -1;
}

/* Which boxes are scored: result boxes matched to a distractor-class ground
 * truth are dropped; ground truth must be class 1 with a non-zero flag. */
static void preprocess(const MotBoxes *gt, const MotBoxes *res, char *gkeep, char *rkeep) {
    int maxg = 0, maxr = 0;
    for (int32_t f = 1; f <= gt->frames; f++) {
        maxg = MAX(maxg, (int)(gt->first[f + 1] - gt->first[f]));
        maxr = MAX(maxr, (int)(res->first[f + 1] - res->first[f]));
    }
    double *iou = xmalloc(sizeof(double) * ((size_t)maxg * maxr + 1));
    double *work = xmalloc(sizeof(double) * ((size_t)maxg * maxr + 1));
    int *m = xmalloc(sizeof(int) * ((size_t)maxg + 1));
    for (size_t i = 0; i < gt->n; i++) gkeep[i] = gt->box[i].cls == 1 && gt->box[i].flag != 0;
    for (size_t j = 0; j < res->n; j++) rkeep[j] = 1;
    for (int32_t f = 1; f <= gt->frames; f++) {
        size_t g0 = gt->first[f], r0 = res->first[f];
        int ng = (int)(gt->first[f + 1] - g0), nr = (int)(res->first[f + 1] - r0), any = 0;
        for (int i = 0; i < ng; i++) any |= is_distractor(gt->box[g0 + i].cls);
        if (!any || !nr) continue;
        for (int i = 0; i < ng; i++)
            for (int j = 0; j < nr; j++) iou[i * nr + j] = mot_iou(&gt->box[g0 + i], &res->box[r0 + j]);
        match_iou(m, iou, ng, nr, 0.5, work);
        for (int i = 0; i < ng; i++)
            if (m[i] >= 0 && is_distractor(gt->box[g0 + i].cls)) rkeep[r0 + m[i]] = 0;
    }
    free(iou);
    free(work);
    free(m);
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Dense ids 0..count-1 in increasing id order for the kept boxes. */
static int densify(const MotBoxes *b, const char *keep, int *dense) {
    int32_t *ids = xmalloc(sizeof(int32_t) * (b->n + 1));
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++)
        if (keep[i]) ids[k++] = b->box[i].id;
    qsort(ids, k, sizeof *ids, cmp_i32);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (!u || ids[i] != ids[u - 1]) ids[u++] = ids[i];
    for (size_t i = 0; i < b->n; i++) {
        dense[i] = -1;
        if (!keep[i]) continue;
        int32_t *p = bsearch(&b->box[i].id, ids, u, sizeof *ids, cmp_i32);
        dense[i] = (int)(p - ids);
    }
    free(ids);
    return (int)u;
}

static void view_alloc(FrameView *v, const SeqData *d) {
    v->g = xmalloc(sizeof(int) * ((size_t)d->max_g + 1));
    v->r = xmalloc(sizeof(int) * ((size_t)d->max_r + 1));
    v->gb = xmalloc(sizeof(MotBox *) * ((size_t)d->max_g + 1));
    v->rb = xmalloc(sizeof(MotBox *) * ((size_t)d->max_r + 1));
    v->iou = xmalloc(sizeof(double) * ((size_t)d->max_g * d->max_r + 1));
}

static void view_free(FrameView *v) {
    free(v->g);
    free(v->r);
    free(v->gb);
    free(v->rb);
    free(v->iou);
}

/* Frame f's scored boxes and their IoU matrix. */
static void view_frame(FrameView *v, const SeqData *d, int32_t f) {
    v->ng = v->nr = 0;
    for (size_t i = d->gt->first[f]; i < d->gt->first[f + 1]; i++)
        if (d->gdense[i] >= 0) v->g[v->ng] = d->gdense[i], v->gb[v->ng++] = &d->gt->box[i];
    for (size_t j = d->res->first[f]; j < d->res->first[f + 1]; j++)
        if (d->rdense[j] >= 0) v->r[v->nr] = d->rdense[j], v->rb[v->nr++] = &d->res->box[j];
    for (int i = 0; i < v->ng; i++)
        for (int j = 0; j < v->nr; j++) v->iou[i * v->nr + j] = mot_iou(v->gb[i], v->rb[j]);
}

/* ---- CLEAR MOT ---------------------------------------------------------------- */

static void clear_pass(MotCounts *c, const SeqData *d) {
    int G = d->G;
    int *prev_frame = xmalloc(sizeof(int) * ((size_t)G + 1)); /* result matched in the previous frame, -1 */
    int *last = xmalloc(sizeof(int) * ((size_t)G + 1));       /* result matched last time, -1 */
    long *present = xcalloc((size_t)G + 1, sizeof(long)), *tracked = xcalloc((size_t)G + 1, sizeof(long));
    long *segments = xcalloc((size_t)G + 1, sizeof(long));
    int *now = xmalloc(sizeof(int) * ((size_t)G + 1));
    for (int g = 0; g < G; g++) prev_frame[g] = last[g] = -1;
    FrameView v;
    view_alloc(&v, d);
    double *sub = xmalloc(sizeof(double) * ((size_t)d->max_g * d->max_r + 1));
    double *work = xmalloc(sizeof(double) * ((size_t)d->max_g * d->max_r + 1));
    int *m = xmalloc(sizeof(int) * ((size_t)d->max_g + 1)),
        *rows = xmalloc(sizeof(int) * ((size_t)d->max_g + 1));
    int *cols = xmalloc(sizeof(int) * ((size_t)d->max_r + 1)),
        *col_taken = xmalloc(sizeof(int) * ((size_t)d->max_r + 1));
    for (int32_t f = 1; f <= d->gt->frames; f++) {
        view_frame(&v, d, f);
        for (int j = 0; j < v.nr; j++) col_taken[j] = 0;
        /* pairs of the previous frame that are still valid are kept */
        for (int i = 0; i < v.ng; i++) {
            m[i] = -1;
            int want = prev_frame[v.g[i]];
            for (int j = 0; want >= 0 && j < v.nr; j++)
                if (v.r[j] == want && v.iou[i * v.nr + j] >= 0.5) m[i] = j, col_taken[j] = 1;
        }
        /* the others by the Hungarian method on what is left */
        int nrow = 0, ncol = 0;
        for (int i = 0; i < v.ng; i++)
            if (m[i] < 0) rows[nrow++] = i;
        for (int j = 0; j < v.nr; j++)
            if (!col_taken[j]) cols[ncol++] = j;
        if (nrow && ncol) {
            int *mm = xmalloc(sizeof(int) * (size_t)nrow);
            for (int a = 0; a < nrow; a++)
                for (int b = 0; b < ncol; b++) sub[a * ncol + b] = v.iou[rows[a] * v.nr + cols[b]];
            match_iou(mm, sub, nrow, ncol, 0.5, work);
            for (int a = 0; a < nrow; a++)
                if (mm[a] >= 0) m[rows[a]] = cols[mm[a]];
            free(mm);
        }
        int matches = 0;
        for (int i = 0; i < v.ng; i++) {
            int g = v.g[i];
            present[g]++;
            now[i] = -1;
            if (m[i] < 0) continue;
            int h = v.r[m[i]];
            matches++;
            c->iou_sum += v.iou[i * v.nr + m[i]];
            if (last[g] >= 0 && last[g] != h) c->idsw++;
            if (prev_frame[g] < 0) segments[g]++;
            last[g] = h;
            tracked[g]++;
            now[i] = h;
        }
        for (int g = 0; g < G; g++) prev_frame[g] = -1;
        for (int i = 0; i < v.ng; i++) prev_frame[v.g[i]] = now[i];
        c->tp += matches;
        c->fn += v.ng - matches;
        c->fp += v.nr - matches;
        c->gt_dets += v.ng;
        c->res_dets += v.nr;
    }
    for (int g = 0; g < G; g++) {
        if (!present[g]) continue;
        double ratio = (double)tracked[g] / (double)present[g];
        if (ratio > 0.8)
            c->mt++;
        else if (ratio >= 0.2)
            c->pt++;
        else
            c->ml++;
        if (segments[g] > 1) c->frag += segments[g] - 1;
    }
    view_free(&v);
    free(prev_frame);
    free(last);
    free(present);
    free(tracked);
    free(segments);
    free(now);
    free(sub);
    free(work);
    free(m);
    free(rows);
    free(cols);
    free(col_taken);
}

/* ---- identity -------------------------------------------------------------------- */

static void identity_pass(MotCounts *c, const SeqData *d) {
    int G = d->G, H = d->H;
    long gt_n = 0, res_n = 0;
    for (size_t i = 0; i < d->gt->n; i++) gt_n += d->gdense[i] >= 0;
    for (size_t j = 0; j < d->res->n; j++) res_n += d->rdense[j] >= 0;
    long idtp = 0;
    if (G && H) {
        double *shared = xcalloc((size_t)G * H, sizeof(double)); /* frames with IoU >= 0.5 */
        FrameView v;
        view_alloc(&v, d);
        for (int32_t f = 1; f <= d->gt->frames; f++) {
            view_frame(&v, d, f);
            for (int i = 0; i < v.ng; i++)
                for (int j = 0; j < v.nr; j++)
                    if (v.iou[i * v.nr + j] >= 0.5) shared[(size_t)v.g[i] * H + v.r[j]] += 1;
        }
        view_free(&v);
        for (size_t k = 0; k < (size_t)G * H; k++) shared[k] = -shared[k];
        int *m = xmalloc(sizeof(int) * (size_t)G);
        double total;
        assign_solve(m, shared, G, H, &total);
        idtp = (long)llround(-total);
        free(m);
        free(shared);
    }
    c->idtp += idtp;
    c->idfn += gt_n - idtp;
    c->idfp += res_n - idtp;
}

/* ---- HOTA ----------------------------------------------------------------------------- */

static double alpha_of(int a) { return (a + 1) * 5 / 100.0; }

static void hota_pass(MotCounts *c, const SeqData *d) {
    int G = d->G, H = d->H;
    double *gcount = xcalloc((size_t)G + 1, sizeof(double)), *rcount = xcalloc((size_t)H + 1, sizeof(double));
    double *align = xcalloc((size_t)G * H + 1, sizeof(double));
    FrameView v;
    view_alloc(&v, d);
    /* global alignment: similarity-weighted co-occurrence of ids */
    for (int32_t f = 1; f <= d->gt->frames; f++) {
        view_frame(&v, d, f);
        for (int i = 0; i < v.ng; i++) gcount[v.g[i]] += 1;
        for (int j = 0; j < v.nr; j++) rcount[v.r[j]] += 1;
        for (int i = 0; i < v.ng; i++) {
            double rs = 0;
            for (int j = 0; j < v.nr; j++) rs += v.iou[i * v.nr + j];
            for (int j = 0; j < v.nr; j++) {
                double cs = 0, s = v.iou[i * v.nr + j];
                for (int k = 0; k < v.ng; k++) cs += v.iou[k * v.nr + j];
                double den = rs + cs - s;
                if (den > 1e-12) align[(size_t)v.g[i] * H + v.r[j]] += s / den;
            }
        }
    }
    for (int g = 0; g < G; g++)
        for (int h = 0; h < H; h++) {
            double *p = &align[(size_t)g * H + h];
            *p = *p / (gcount[g] + rcount[h] - *p);
        }
    /* per frame matching for the largest alignment x similarity, then each
     * threshold keeps the pairs with similarity >= alpha */
    double *mc = xcalloc((size_t)MOT_HOTA_ALPHAS * G * H + 1, sizeof(double));
    double *score = xmalloc(sizeof(double) * ((size_t)d->max_g * d->max_r + 1));
    int *m = xmalloc(sizeof(int) * ((size_t)d->max_g + 1));
    double tp[MOT_HOTA_ALPHAS] = {0};
    for (int32_t f = 1; f <= d->gt->frames; f++) {
        view_frame(&v, d, f);
        for (int a = 0; a < MOT_HOTA_ALPHAS; a++) c->h_fn[a] += v.ng, c->h_fp[a] += v.nr;
        if (!v.ng || !v.nr) continue;
        for (int i = 0; i < v.ng; i++)
            for (int j = 0; j < v.nr; j++)
                score[i * v.nr + j] = -align[(size_t)v.g[i] * H + v.r[j]] * v.iou[i * v.nr + j];
        assign_solve(m, score, v.ng, v.nr, NULL);
        for (int i = 0; i < v.ng; i++) {
            if (m[i] < 0) continue;
            double s = v.iou[i * v.nr + m[i]];
            for (int a = 0; a < MOT_HOTA_ALPHAS; a++) {
                if (s < alpha_of(a) - 1e-12) break; /* alphas increase */
                tp[a] += 1;
                c->h_fn[a] -= 1;
                c->h_fp[a] -= 1;
                c->h_loc[a] += s;
                mc[((size_t)a * G + v.g[i]) * H + v.r[m[i]]] += 1;
            }
        }
    }
    for (int a = 0; a < MOT_HOTA_ALPHAS; a++) {
        c->h_tp[a] += tp[a];
        const double *x = mc + (size_t)a * G * H;
        for (int g = 0; g < G; g++)
            for (int h = 0; h < H; h++) {
                double n = x[(size_t)g * H + h];
                if (n > 0) c->h_ass[a] += n * n / (gcount[g] + rcount[h] - n);
            }
    }
    view_free(&v);
    free(gcount);
    free(rcount);
    free(align);
    free(mc);
    free(score);
    free(m);
}

/* ---- entry points ----------------------------------------------------------------- */

void mot_eval_sequence(MotCounts *c, const MotBoxes *gt, const MotBoxes *res) {
    ASSERT(gt->frames == res->frames);
    SeqData d = {.gt = gt, .res = res};
    char *gkeep = xmalloc(gt->n + 1), *rkeep = xmalloc(res->n + 1);
    preprocess(gt, res, gkeep, rkeep);
    d.gdense = xmalloc(sizeof(int) * (gt->n + 1));
    d.rdense = xmalloc(sizeof(int) * (res->n + 1));
    d.G = densify(gt, gkeep, d.gdense);
    d.H = densify(res, rkeep, d.rdense);
    for (int32_t f = 1; f <= gt->frames; f++) {
        int ng = 0, nr = 0;
        for (size_t i = gt->first[f]; i < gt->first[f + 1]; i++) ng += gkeep[i];
        for (size_t j = res->first[f]; j < res->first[f + 1]; j++) nr += rkeep[j];
        d.max_g = MAX(d.max_g, ng);
        d.max_r = MAX(d.max_r, nr);
    }
    c->gt_ids += d.G;
    c->res_ids += d.H;
    clear_pass(c, &d);
    identity_pass(c, &d);
    hota_pass(c, &d);
    free(gkeep);
    free(rkeep);
    free(d.gdense);
    free(d.rdense);
}

void mot_counts_add(MotCounts *s, const MotCounts *c) {
    s->gt_dets += c->gt_dets, s->res_dets += c->res_dets, s->tp += c->tp, s->fp += c->fp, s->fn += c->fn;
    s->idsw += c->idsw, s->frag += c->frag, s->mt += c->mt, s->pt += c->pt, s->ml += c->ml;
    s->gt_ids += c->gt_ids, s->res_ids += c->res_ids, s->iou_sum += c->iou_sum;
    s->idtp += c->idtp, s->idfp += c->idfp, s->idfn += c->idfn;
    for (int a = 0; a < MOT_HOTA_ALPHAS; a++) {
        s->h_tp[a] += c->h_tp[a], s->h_fn[a] += c->h_fn[a], s->h_fp[a] += c->h_fp[a];
        s->h_loc[a] += c->h_loc[a], s->h_ass[a] += c->h_ass[a];
    }
}

static double ratio(double a, double b) { return b > 0 ? a / b : 0; }

void mot_scores(MotScores *s, const MotCounts *c) {
    memset(s, 0, sizeof *s);
    /* as TrackEval: (TP - FP - IDSW) / max(1, GT), = 1 - (FN + FP + IDSW) / GT when GT > 0 */
    s->mota = (double)(c->tp - c->fp - c->idsw) / (double)MAX(1, c->gt_dets);
    s->motp = ratio(c->iou_sum, (double)c->tp);
    s->idf1 = ratio(2.0 * c->idtp, (double)(c->gt_dets + c->res_dets));
    s->idp = ratio((double)c->idtp, (double)(c->idtp + c->idfp));
    s->idr = ratio((double)c->idtp, (double)(c->idtp + c->idfn));
    for (int a = 0; a < MOT_HOTA_ALPHAS; a++) {
        double det = ratio(c->h_tp[a], c->h_tp[a] + c->h_fn[a] + c->h_fp[a]);
        double ass = ratio(c->h_ass[a], c->h_tp[a]);
        s->deta += det / MOT_HOTA_ALPHAS;
        s->assa += ass / MOT_HOTA_ALPHAS;
        s->hota += sqrt(det * ass) / MOT_HOTA_ALPHAS;
        s->loca += (c->h_tp[a] > 0 ? c->h_loc[a] / c->h_tp[a] : 0) / MOT_HOTA_ALPHAS;
    }
}

/* ---- files ---------------------------------------------------------------------- */

int mot_eval_files(MotCounts *c, MotSeq *s, MotBoxes *res, const char *seqdir, const char *gt_file,
                   const char *res_file, Err *e) {
    memset(res, 0, sizeof *res);
    if (mot_seq_open(s, seqdir, e)) return -1;
    MotBoxes gt = {0};
    if ((gt_file ? mot_read_boxes(gt_file, MOT_GT, &s->info, &gt, e) : mot_seq_boxes(s, MOT_GT, &gt, e)) ||
        mot_read_boxes(res_file, MOT_RES, &s->info, res, e)) {
        mot_boxes_free(&gt);
        mot_boxes_free(res);
        mot_seq_close(s);
        return -1;
    }
    mot_eval_sequence(c, &gt, res);
    mot_boxes_free(&gt);
    return 0;
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int mot_list_sequences(const char *root, char ***names, int *n, Err *e) {
    DIR *d = opendir(root);
    if (!d) return err_set(e, "%s: cannot open the ground-truth root", root);
    *names = NULL;
    *n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char p[4096];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", root, de->d_name);
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        *names = xrealloc(*names, sizeof(char *) * (size_t)(*n + 1));
        (*names)[(*n)++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (*n == 0) return err_set(e, "%s: no sequence directories under the ground-truth root", root);
    qsort(*names, (size_t)*n, sizeof(char *), cmp_name);
    return 0;
}
