/* tracker: see tracker.h. Both modes end in the same place: a track is a
 * list of detection indices in time order, and emit() turns the tracks into
 * numbered boxes (dropping short ones, interpolating skipped frames). */
#include "tracker.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/atomic_file.h"
#include "assign.h"
#include "flow.h"

/* ---- the link model ---------------------------------------------------------- */

void link_model_default(LinkModel *m) {
    /* siamese track-fit --appearance none on synthetic training sequences 1-4
     * (siamese synth mot --out DIR --seed 1), rounded: docs/tracking.md */
    *m = (LinkModel){.appearance = 0,
                     .b = 2.258,
                     .w = {0, 1.863, 0.627, -0.729, -7.484, -8.140, -0.037, -6.330},
                     .det_w = 15.41,
                     .det_b = -9.172};
}

void track_features(double *phi, const MotBox *a, double vx, double vy, const MotBox *b, int gap, double s) {
    MotBox p = *a;
    p.x += (float)(vx * gap);
    p.y += (float)(vy * gap);
    double acx = p.x + p.w / 2.0, acy = p.y + p.h / 2.0, bcx = b->x + b->w / 2.0, bcy = b->y + b->h / 2.0;
    double mh = (a->h + b->h) / 2.0, d = hypot(bcx - acx, bcy - acy) / mh;
    phi[0] = s;
    phi[1] = mot_iou(&p, b);
    phi[2] = d;
    phi[3] = d * d;
    phi[4] = fabs(log((double)b->h / a->h));
    phi[5] = fabs(log((double)b->w / a->w));
    phi[6] = gap - 1;
    phi[7] = d / gap;
}

double link_logit(const LinkModel *m, const double *phi) {
    double z = m->b;
    for (int k = m->appearance ? 0 : 1; k < TRACK_NFEAT; k++) z += m->w[k] * phi[k];
    return z;
}

double det_logit(const LinkModel *m, double score) { return m->det_b + m->det_w * score; }

static const char *key_names[] = {"w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7"};

int link_model_read(LinkModel *m, const char *path, Err *e) {
    uint8_t *buf;
    size_t n;
    if (file_read_whole(path, 1 << 20, "a combiner file", &buf, &n, e)) return -1;
    memset(m, 0, sizeof *m);
    int rc = 0, line = 0, seen = 0;
    for (char *p = (char *)buf, *nl; p && *p && !rc; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl) *nl = 0;
        line++;
        char *hash = strchr(p, '#');
        if (hash) *hash = 0;
        char key[32], val[64], extra[2];
        int k = sscanf(p, " %31[A-Za-z0-9_] = %63s %1s", key, val, extra);
        if (k <= 0) continue; /* blank or comment */
        double v;
        if (k != 2 || parse_double(val, -1e6, 1e6, &v)) {
            rc = err_set(e, "%s:%d: expected 'key = number'", path, line);
            break;
        }
        double *dst = !strcmp(key, "b")       ? &m->b
                      : !strcmp(key, "det_w") ? &m->det_w
                      : !strcmp(key, "det_b") ? &m->det_b
                                              : NULL;
        for (int i = 0; i < TRACK_NFEAT && !dst; i++)
            if (!strcmp(key, key_names[i])) dst = &m->w[i];
        if (!strcmp(key, "appearance")) {
            if (v != 0 && v != 1) rc = err_set(e, "%s:%d: appearance must be 0 or 1", path, line);
            m->appearance = (int)v;
        } else if (!dst) {
            rc = err_set(e, "%s:%d: unknown key '%s' (appearance, b, w0..w7, det_w, det_b)", path, line, key);
        } else {
            *dst = v;
        }
        seen++;
    }
    free(buf);
    if (!rc && !seen) rc = err_set(e, "%s: no 'key = number' lines: not a combiner file", path);
    return rc;
}

int link_model_write(const LinkModel *m, const char *path, const char *comment, Err *e) {
    char buf[2048];
    int n = snprintf(buf, sizeof buf, "# siamese link model (combiner)%s%s\nappearance = %d\nb = %.9g\n",
                     comment ? ": " : "", comment ? comment : "", m->appearance, m->b);
    for (int i = 0; i < TRACK_NFEAT; i++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "%s = %.9g\n", key_names[i], m->w[i]);
    n += snprintf(buf + n, sizeof buf - (size_t)n, "det_w = %.9g\ndet_b = %.9g\n", m->det_w, m->det_b);
    return atomic_file_write_all(path, buf, (size_t)n, e);
}

void track_options_default(TrackOptions *o, int batch, int appearance) {
    /* chosen on synthetic sequences: training seeds 1-4 without appearance,
     * validation seeds 5-8 with it (docs/tracking.md) */
    *o = (TrackOptions){.batch = batch,
                        .min_score = 0,
                        .gate = appearance && !batch ? 0.5 : 0.1,
                        .max_gap = 15,
                        .max_speed = 0.5,
                        .entry_cost = appearance ? 5 : 3,
                        .skip_cost = 0.5,
                        .max_age = appearance ? 30 : 10,
                        .min_hits = 3,
                        .birth_score = 0.6,
                        .min_len = 3,
                        .gallery = 5,
                        .gallery_mean = batch,
                        .merge_gate = 0.5,
                        .uncross_iou = 0.5,
                        .behind_cover = 0.2,
                        .interpolate = 15};
}

int track_option_parse(TrackOptions *o, const char *name, const char *value, Err *e) {
    const struct {
        const char *name;
        double min, max;
        int integer;
        void *dst;
    } opt[] = {
        {"--min-score", -1e9, 1e9, 0, &o->min_score},     {"--gate", 1e-9, 1, 0, &o->gate},
        {"--max-gap", 1, 10000, 1, &o->max_gap},          {"--max-speed", 0, 1e6, 0, &o->max_speed},
        {"--entry-cost", 0, 1e6, 0, &o->entry_cost},      {"--skip-cost", 0, 1e6, 0, &o->skip_cost},
        {"--max-age", 1, 100000, 1, &o->max_age},         {"--min-hits", 1, 100000, 1, &o->min_hits},
        {"--birth-score", -1e9, 1e9, 0, &o->birth_score}, {"--min-len", 1, 100000, 1, &o->min_len},
        {"--gallery", 1, 1000, 1, &o->gallery},           {"--interpolate", 0, 100000, 1, &o->interpolate},
        {"--extrapolate", 0, 100000, 1, &o->extrapolate}, {"--relink", 0, 100, 1, &o->relink},
        {"--merge-gap", 0, 10000, 1, &o->merge_gap},      {"--merge-gate", 1e-9, 1, 0, &o->merge_gate},
        {"--relink-motion", 0, 1, 1, &o->relink_motion},  {"--uncross", 0, 1000, 1, &o->uncross},
        {"--uncross-iou", 0, 1, 0, &o->uncross_iou},      {"--uncross-margin", 0, 1e6, 0, &o->uncross_margin},
        {"--mend", 0, 10000, 1, &o->mend},                {"--mend-score", -1e6, 1e6, 0, &o->mend_score},
        {"--behind", 0, 10000, 1, &o->behind},            {"--behind-cover", 0, 1, 0, &o->behind_cover},
        {"--behind-margin", 0, 1e6, 0, &o->behind_margin},
    };
    if (!strcmp(name, "--gallery-score")) {
        if (!value || (strcmp(value, "best") && strcmp(value, "mean")))
            return err_set(e, "--gallery-score %s: expected best or mean", value ? value : "(missing)");
        o->gallery_mean = !strcmp(value, "mean");
        return 1;
    }
    for (size_t k = 0; k < sizeof opt / sizeof opt[0]; k++) {
        if (strcmp(name, opt[k].name)) continue;
        double d;
        long l;
        if (!value) return err_set(e, "%s needs a value", name);
        if (opt[k].integer ? parse_long(value, (long)opt[k].min, (long)opt[k].max, &l)
                           : parse_double(value, opt[k].min, opt[k].max, &d))
            return err_set(e, "%s %s: expected a%s number in [%g, %g]", name, value,
                           opt[k].integer ? " whole" : "", opt[k].min, opt[k].max);
        if (opt[k].integer)
            *(int *)opt[k].dst = (int)l;
        else
            *(double *)opt[k].dst = d;
        return 1;
    }
    return 0;
}

/* ---- tracks and output ------------------------------------------------------------ */

typedef struct Tracks {
    int n, cap;
    int **det; /* detection indices of each track, in time order */
    int *len, *lcap;
    char *reported; /* the track goes into the output (online: once confirmed) */
    char *bridge;   /* per detection (NULL: none): the gap after it on its track is filled whatever
                       its length (a join behind an occluder) */
} Tracks;

static int tracks_new(Tracks *t, int reported) {
    if (t->n == t->cap) {
        t->cap = MAX(16, 2 * t->cap);
        t->det = xrealloc(t->det, sizeof(int *) * (size_t)t->cap);
        t->len = xrealloc(t->len, sizeof(int) * (size_t)t->cap);
        t->lcap = xrealloc(t->lcap, sizeof(int) * (size_t)t->cap);
        t->reported = xrealloc(t->reported, (size_t)t->cap);
    }
    t->det[t->n] = NULL;
    t->len[t->n] = t->lcap[t->n] = 0;
    t->reported[t->n] = (char)reported;
    return t->n++;
}

static void tracks_push(Tracks *t, int k, int d) {
    if (t->len[k] == t->lcap[k]) {
        t->lcap[k] = MAX(8, 2 * t->lcap[k]);
        t->det[k] = xrealloc(t->det[k], sizeof(int) * (size_t)t->lcap[k]);
    }
    t->det[k][t->len[k]++] = d;
}

static void tracks_free(Tracks *t) {
    for (int k = 0; k < t->n; k++) free(t->det[k]);
    free(t->det);
    free(t->len);
    free(t->lcap);
    free(t->reported);
    free(t->bridge);
    memset(t, 0, sizeof *t);
}

typedef struct OrderCtx {
    const Tracks *t;
    const MotBoxes *det;
} OrderCtx;

/* Tracks by their first detection (frame, then position in the file). */
static int cmp_first(const void *a, const void *b, void *ctx) {
    const OrderCtx *c = ctx;
    int x = c->t->det[*(const int *)a][0], y = c->t->det[*(const int *)b][0];
    int32_t fx = c->det->box[x].frame, fy = c->det->box[y].frame;
    if (fx != fy) return fx < fy ? -1 : 1;
    return (x > y) - (x < y);
}

/* Extends track v (len >= 2 detections) past its first (end 0) or last (end
 * 1) detection by up to o->extrapolate frames: the end box moved at the
 * centre velocity between it and the detection up to 5 further in, clipped
 * to the frame, until the sequence or the box leaves it. Appends to box[nb..]
 * (at most o->extrapolate boxes, id `id`, score 0); returns the new count. */
static size_t extend(MotBox *box, size_t nb, const MotBoxes *det, const int *v, int len, int end, int32_t id,
                     const TrackOptions *o) {
    const MotBox *a = &det->box[v[end ? len - 1 : 0]],
                 *c = &det->box[v[end ? len - 1 - MIN(5, len - 1) : MIN(5, len - 1)]];
    double df = a->frame - c->frame, vx = (a->x + a->w / 2.0 - c->x - c->w / 2.0) / df,
           vy = (a->y + a->h / 2.0 - c->y - c->h / 2.0) / df;
    for (int g = 1; g <= o->extrapolate; g++) {
        int32_t f = end ? a->frame + g : a->frame - g;
        if (f < 1 || f > det->frames) break;
        double t = end ? g : -g, x0 = a->x + vx * t, y0 = a->y + vy * t, x1 = x0 + a->w, y1 = y0 + a->h;
        if (o->width > 0) x0 = MAX(x0, 0), x1 = MIN(x1, o->width);
        if (o->height > 0) y0 = MAX(y0, 0), y1 = MIN(y1, o->height);
        if (x1 - x0 < 1 || y1 - y0 < 1) break;
        box[nb++] = (MotBox){.frame = f,
                             .id = id,
                             .x = (float)x0,
                             .y = (float)y0,
                             .w = (float)(x1 - x0),
                             .h = (float)(y1 - y0),
                             .score = 0,
                             .vis = 1,
                             .cls = 1,
                             .flag = 1};
    }
    return nb;
}

/* Numbers the reported tracks of at least min_len detections from 1 in order
 * of their first frame and writes their boxes, filling skipped frames
 * linearly and extending the ends (those boxes score 0). */
static void emit(MotBoxes *out, const MotBoxes *det, const Tracks *t, const TrackOptions *o) {
    int *order = xmalloc(sizeof(int) * (size_t)(t->n + 1)), nk = 0;
    size_t total = 0;
    for (int k = 0; k < t->n; k++) {
        if (!t->reported[k] || t->len[k] < MAX(1, o->min_len)) continue;
        order[nk++] = k;
        total += (size_t)(det->box[t->det[k][t->len[k] - 1]].frame - det->box[t->det[k][0]].frame + 1) +
                 2 * (size_t)o->extrapolate;
    }
    OrderCtx ctx = {t, det};
    qsort_r(order, (size_t)nk, sizeof(int), cmp_first, &ctx);
    MotBox *box = xmalloc(sizeof(MotBox) * (total + 1));
    size_t nb = 0;
    for (int r = 0; r < nk; r++) {
        const int *v = t->det[order[r]], len = t->len[order[r]];
        if (len >= 2) nb = extend(box, nb, det, v, len, 0, r + 1, o);
        if (len >= 2) nb = extend(box, nb, det, v, len, 1, r + 1, o);
        for (int i = 0; i < len; i++) {
            const MotBox *a = &det->box[v[i]];
            box[nb] = *a;
            box[nb++].id = r + 1;
            if (i + 1 == len) continue;
            const MotBox *b = &det->box[v[i + 1]];
            int gap = b->frame - a->frame;
            if (gap > o->interpolate + 1 && !(t->bridge && t->bridge[v[i]])) continue;
            for (int g = 1; g < gap; g++) {
                float s = (float)g / (float)gap;
                box[nb++] = (MotBox){.frame = a->frame + g,
                                     .id = r + 1,
                                     .x = a->x + s * (b->x - a->x),
                                     .y = a->y + s * (b->y - a->y),
                                     .w = a->w + s * (b->w - a->w),
                                     .h = a->h + s * (b->h - a->h),
                                     .score = 0,
                                     .vis = 1,
                                     .cls = 1,
                                     .flag = 1};
            }
        }
    }
    free(order);
    mot_boxes_build(out, box, nb, det->frames);
    free(box);
}

void track_emit_labels(MotBoxes *out, const MotBoxes *det, const int *label, const TrackOptions *o) {
    int n = 0;
    for (size_t i = 0; i < det->n; i++) n = MAX(n, label[i] + 1);
    Tracks t = {0};
    for (int k = 0; k < n; k++) tracks_new(&t, 1);
    for (size_t i = 0; i < det->n; i++)
        if (label[i] >= 0) tracks_push(&t, label[i], (int)i);
    emit(out, det, &t, o);
    tracks_free(&t);
}

/* ---- batch: min-cost flow ------------------------------------------------------------- */

void track_candidates(const MotBoxes *det, const TrackOptions *o, int **pa, int **pb, int *np) {
    int cap = 1024, n = 0;
    int *a = xmalloc(sizeof(int) * (size_t)cap), *b = xmalloc(sizeof(int) * (size_t)cap);
    for (size_t i = 0; i < det->n; i++) {
        const MotBox *x = &det->box[i];
        if (x->score < o->min_score) continue;
        int32_t last = MIN(det->frames, x->frame + o->max_gap);
        for (size_t j = det->first[x->frame + 1]; j < det->first[last + 1]; j++) {
            const MotBox *y = &det->box[j];
            if (y->score < o->min_score) continue;
            double phi[TRACK_NFEAT];
            track_features(phi, x, 0, 0, y, y->frame - x->frame, 0);
            if (phi[7] > o->max_speed) continue;
            if (n == cap) {
                cap *= 2;
                a = xrealloc(a, sizeof(int) * (size_t)cap);
                b = xrealloc(b, sizeof(int) * (size_t)cap);
            }
            a[n] = (int)i, b[n++] = (int)j;
        }
    }
    *pa = a, *pb = b, *np = n;
}

/* Link costs from the appearance scores s of the candidates (ca, cb; nc) and
 * the min-cost flow over the detections in play (idx, n; node[] maps a
 * detection to its place among them): next[i] (-1 none) is the place after
 * place i in its track, used[i] whether i is in one. */
static void batch_flow(int *next, char *used, const MotBoxes *det, const LinkModel *m, const TrackOptions *o,
                       const int *idx, const int *node, int n, const int *ca, const int *cb, int nc,
                       const double *s, const double *vx, const double *vy) {
    FlowLink *links = xmalloc(sizeof(FlowLink) * ((size_t)nc + 1));
    int nl = 0;
    for (int k = 0; k < nc; k++) {
        const MotBox *a = &det->box[ca[k]], *b = &det->box[cb[k]];
        double phi[TRACK_NFEAT];
        track_features(phi, a, vx[k], vy[k], b, b->frame - a->frame, s[k]);
        double p = 1 / (1 + exp(-link_logit(m, phi)));
        if (p < o->gate) continue;
        double cost = -log(p) + o->skip_cost * (b->frame - a->frame - 1);
        links[nl++] = (FlowLink){node[ca[k]], node[cb[k]], cost};
    }
    double *dc = xmalloc(sizeof(double) * ((size_t)n + 1)), *en = xmalloc(sizeof(double) * ((size_t)n + 1));
    for (int i = 0; i < n; i++) dc[i] = -det_logit(m, det->box[idx[i]].score), en[i] = o->entry_cost;
    flow_tracks(next, used, n, dc, en, en, links, nl);
    free(dc);
    free(en);
    free(links);
}

enum { GALLERY_BLOCK = 4096 }; /* candidate links scored per call of the appearance model */

/* Track-level appearance scores of the candidate links (ca, cb; nc): s[k]
 * is the mean (mean = 1) or the largest score over the pairs of a's gallery
 * (ca[k] and up to G - 1 detections before it, following before[]) and b's
 * (cb[k] and up to G - 1 after it, following after[]); before[i] and
 * after[i] are detection indices, -1 none. 0 or -1 with e. */
static int gallery_scores(double *s, const int *ca, const int *cb, int nc, const int *before,
                          const int *after, int G, int mean, const Appearance *app, Err *e) {
    size_t cap = (size_t)GALLERY_BLOCK * G * G;
    int *pa = xmalloc(sizeof(int) * cap), *pb = xmalloc(sizeof(int) * cap), *ga = xmalloc(sizeof(int) * G),
        *gb = xmalloc(sizeof(int) * G), *cnt = xmalloc(sizeof(int) * GALLERY_BLOCK);
    double *ps = xmalloc(sizeof(double) * cap);
    int rc = 0;
    for (int k0 = 0; k0 < nc && !rc; k0 += GALLERY_BLOCK) {
        int nk = MIN(GALLERY_BLOCK, nc - k0), np = 0;
        for (int k = 0; k < nk; k++) {
            int na = 0, nb = 0;
            for (int i = ca[k0 + k]; i >= 0 && na < G; i = before[i]) ga[na++] = i;
            for (int j = cb[k0 + k]; j >= 0 && nb < G; j = after[j]) gb[nb++] = j;
            for (int x = 0; x < na; x++)
                for (int y = 0; y < nb; y++) pa[np] = ga[x], pb[np++] = gb[y];
            cnt[k] = na * nb;
        }
        rc = app->score(app->ctx, pa, pb, np, ps, e);
        np = 0;
        for (int k = 0; k < nk && !rc; k++) {
            double acc = ps[np];
            for (int q = 1; q < cnt[k]; q++) acc = mean ? acc + ps[np + q] : MAX(acc, ps[np + q]);
            s[k0 + k] = mean ? acc / cnt[k] : acc;
            np += cnt[k];
        }
    }
    free(pa);
    free(pb);
    free(ga);
    free(gb);
    free(cnt);
    free(ps);
    return rc;
}

/* The centre velocity of detection a on its track: from the detection up to
 * 5 before it (following before[]) to a; 0 when a has none. */
static void track_velocity(double *vx, double *vy, const MotBoxes *det, const int *before, int a) {
    int c = a;
    for (int g = 0; g < 5 && before[c] >= 0; g++) c = before[c];
    *vx = *vy = 0;
    if (c == a) return;
    const MotBox *p = &det->box[a], *q = &det->box[c];
    double df = p->frame - q->frame;
    *vx = (p->x + p->w / 2.0 - q->x - q->w / 2.0) / df;
    *vy = (p->y + p->h / 2.0 - q->y - q->h / 2.0) / df;
}

/* Joins track ends to later track starts more than o->max_gap and at most
 * o->merge_gap frames later (the tracks of next[] over the places idx[], n of
 * them; before[] and after[] the detections' neighbours on them): each pair
 * within max_speed is scored by its galleries and the link model m, pairs of
 * probability >= merge_gate may join, and the Hungarian method picks the
 * joins of least summed -log p, each end and start staying unjoined at cost
 * -log merge_gate. Updates next[]. 0 or -1 with e. */
static int merge_tracks(int *next, const char *used, const char *has_pred, const MotBoxes *det,
                        const LinkModel *m, const Appearance *app, const TrackOptions *o, const int *idx,
                        int n, const int *before, const int *after, Err *e) {
    int *tail = xmalloc(sizeof(int) * ((size_t)n + 1)), *head = xmalloc(sizeof(int) * ((size_t)n + 1)),
        nt = 0, nh = 0;
    for (int i = 0; i < n; i++) {
        if (!used[i]) continue;
        if (next[i] < 0) tail[nt++] = i;
        if (!has_pred[i]) head[nh++] = i;
    }
    int cap = 64, np = 0, rc = 0;
    int *pt = xmalloc(sizeof(int) * (size_t)cap), *ph = xmalloc(sizeof(int) * (size_t)cap);
    int *ca = xmalloc(sizeof(int) * (size_t)cap), *cb = xmalloc(sizeof(int) * (size_t)cap);
    for (int x = 0; x < nt; x++)
        for (int y = 0; y < nh; y++) {
            const MotBox *a = &det->box[idx[tail[x]]], *b = &det->box[idx[head[y]]];
            int gap = b->frame - a->frame;
            if (gap <= o->max_gap || gap > o->merge_gap) continue;
            double phi[TRACK_NFEAT];
            track_features(phi, a, 0, 0, b, gap, 0);
            if (phi[7] > o->max_speed) continue;
            if (np == cap) {
                cap *= 2;
                pt = xrealloc(pt, sizeof(int) * (size_t)cap), ph = xrealloc(ph, sizeof(int) * (size_t)cap);
                ca = xrealloc(ca, sizeof(int) * (size_t)cap), cb = xrealloc(cb, sizeof(int) * (size_t)cap);
            }
            pt[np] = x, ph[np] = y, ca[np] = idx[tail[x]], cb[np++] = idx[head[y]];
        }
    double *s = xmalloc(sizeof(double) * ((size_t)np + 1));
    if (np) rc = gallery_scores(s, ca, cb, np, before, after, MAX(1, o->gallery), o->gallery_mean, app, e);
    if (np && !rc) {
        /* tails x (heads + one "stay" column per tail) */
        int cols = nh + nt;
        double *cost = xmalloc(sizeof(double) * (size_t)nt * (size_t)cols);
        for (size_t k = 0; k < (size_t)nt * (size_t)cols; k++) cost[k] = ASSIGN_FORBIDDEN;
        for (int x = 0; x < nt; x++) cost[(size_t)x * cols + nh + x] = -log(o->merge_gate);
        for (int k = 0; k < np; k++) {
            const MotBox *a = &det->box[ca[k]], *b = &det->box[cb[k]];
            double phi[TRACK_NFEAT], vx = 0, vy = 0;
            if (o->relink_motion) track_velocity(&vx, &vy, det, before, ca[k]);
            track_features(phi, a, vx, vy, b, b->frame - a->frame, s[k]);
            double p = 1 / (1 + exp(-link_logit(m, phi)));
            if (p >= o->merge_gate) cost[(size_t)pt[k] * cols + ph[k]] = -log(p);
        }
        int *match = xmalloc(sizeof(int) * ((size_t)nt + 1));
        assign_solve(match, cost, nt, cols, NULL);
        for (int x = 0; x < nt; x++)
            if (match[x] >= 0 && match[x] < nh) next[tail[x]] = head[match[x]];
        free(match);
        free(cost);
    }
    free(s);
    free(pt);
    free(ph);
    free(ca);
    free(cb);
    free(tail);
    free(head);
    return rc;
}

/* The batch tracker: into t, or (t NULL) only the appearance scores of the
 * candidate links its last flow would use into scores (nscores entries). */
static int batch_run(Tracks *t, double *scores, double *svx, double *svy, int nscores, const MotBoxes *det,
                     const LinkModel *m, const Appearance *app, const TrackOptions *o, Err *e) {
    /* the detections in play, in time order (det is sorted by frame); node[i]
     * is detection i's place among them */
    int *idx = xmalloc(sizeof(int) * (det->n + 1)), *node = xmalloc(sizeof(int) * (det->n + 1)), n = 0;
    for (size_t i = 0; i < det->n; i++) {
        node[i] = -1;
        if (det->box[i].score >= o->min_score) node[i] = n, idx[n++] = (int)i;
    }
    int *ca, *cb, nc;
    track_candidates(det, o, &ca, &cb, &nc);
    double *s = xcalloc((size_t)nc + 1, sizeof(double)), *vx = xcalloc((size_t)nc + 1, sizeof(double)),
           *vy = xcalloc((size_t)nc + 1, sizeof(double));
    int rc = app && nc ? app->score(app->ctx, ca, cb, nc, s, e) : 0;
    int *next = xmalloc(sizeof(int) * ((size_t)n + 1));
    char *used = xmalloc((size_t)n + 1), *has_pred = xcalloc((size_t)n + 1, 1);
    int *before = xmalloc(sizeof(int) * (det->n + 1)), *after = xmalloc(sizeof(int) * (det->n + 1));
    for (int pass = 0; !rc; pass++) {
        if (!t && (pass == o->relink || !app)) break;
        batch_flow(next, used, det, pass && o->relink_model ? o->relink_model : m, o, idx, node, n, ca, cb,
                   nc, s, vx, vy);
        if (pass == o->relink || !app) break;
        /* each detection's neighbours on the tracks just found */
        for (size_t i = 0; i < det->n; i++) before[i] = after[i] = -1;
        for (int i = 0; i < n; i++)
            if (next[i] >= 0) after[idx[i]] = idx[next[i]], before[idx[next[i]]] = idx[i];
        if (!rc)
            rc = gallery_scores(s, ca, cb, nc, before, after, MAX(1, o->gallery), o->gallery_mean, app, e);
        for (int k = 0; k < nc && o->relink_motion; k++) track_velocity(&vx[k], &vy[k], det, before, ca[k]);
    }
    if (!rc && !t) {
        ASSERT(nscores == nc);
        memcpy(scores, s, sizeof(double) * (size_t)nc);
        memcpy(svx, vx, sizeof(double) * (size_t)nc);
        memcpy(svy, vy, sizeof(double) * (size_t)nc);
    } else if (!rc) {
        for (int i = 0; i < n; i++)
            if (next[i] >= 0) has_pred[next[i]] = 1;
        if (app && o->merge_gap > o->max_gap) {
            for (size_t i = 0; i < det->n; i++) before[i] = after[i] = -1;
            for (int i = 0; i < n; i++)
                if (next[i] >= 0) after[idx[i]] = idx[next[i]], before[idx[next[i]]] = idx[i];
            rc = merge_tracks(next, used, has_pred, det, o->relink_model ? o->relink_model : m, app, o, idx,
                              n, before, after, e);
            memset(has_pred, 0, (size_t)n + 1);
            for (int i = 0; i < n && !rc; i++)
                if (next[i] >= 0) has_pred[next[i]] = 1;
        }
        for (int i = 0; i < n; i++) {
            if (!used[i] || has_pred[i]) continue;
            int k = tracks_new(t, 1);
            for (int j = i; j >= 0; j = next[j]) tracks_push(t, k, idx[j]);
        }
    }
    free(next);
    free(used);
    free(has_pred);
    free(before);
    free(after);
    free(idx);
    free(node);
    free(ca);
    free(cb);
    free(s);
    free(vx);
    free(vy);
    return rc;
}

/* ---- batch: uncrossing ---------------------------------------------------------------- */

/* Track k's box in frame f: its detection there, else the linear
 * interpolation of its detections around f; 0 when f is outside the track. */
static int track_box_at(MotBox *out, const Tracks *t, int k, const MotBoxes *det, int32_t f) {
    const int *v = t->det[k];
    int n = t->len[k], lo = 0, hi = n - 1;
    if (!n || f < det->box[v[0]].frame || f > det->box[v[n - 1]].frame) return 0;
    while (lo < hi) { /* the last detection at or before f */
        int mid = (lo + hi + 1) / 2;
        if (det->box[v[mid]].frame <= f)
            lo = mid;
        else
            hi = mid - 1;
    }
    const MotBox *a = &det->box[v[lo]];
    *out = *a;
    if (a->frame == f) return 1;
    const MotBox *b = &det->box[v[lo + 1]];
    float s = (float)(f - a->frame) / (float)(b->frame - a->frame);
    out->frame = f;
    out->x = a->x + s * (b->x - a->x), out->y = a->y + s * (b->y - a->y);
    out->w = a->w + s * (b->w - a->w), out->h = a->h + s * (b->h - a->h);
    return 1;
}

/* Where tracks i and j overlap (IoU above o->uncross_iou) over frames f0..f1,
 * and each has a detection before f0 and after f1. */
typedef struct Crossing {
    int32_t f0, f1;
    int i, j;
} Crossing;

static int cmp_crossing(const void *pa, const void *pb) {
    const Crossing *a = pa, *b = pb;
    if (a->f1 != b->f1) return a->f1 < b->f1 ? -1 : 1;
    if (a->i != b->i) return a->i < b->i ? -1 : 1;
    return (a->j > b->j) - (a->j < b->j);
}

/* The crossings of the tracks of t in time order (by last frame, then tracks);
 * *n of them, malloc'd. */
static Crossing *find_crossings(const Tracks *t, const MotBoxes *det, const TrackOptions *o, int *n) {
    int cap = 16;
    Crossing *c = xmalloc(sizeof(Crossing) * (size_t)cap);
    *n = 0;
    for (int i = 0; i < t->n; i++)
        for (int j = i + 1; j < t->n; j++) {
            if (t->len[i] < 2 || t->len[j] < 2) continue;
            int32_t s = MAX(det->box[t->det[i][0]].frame, det->box[t->det[j][0]].frame),
                    f = MIN(det->box[t->det[i][t->len[i] - 1]].frame,
                            det->box[t->det[j][t->len[j] - 1]].frame);
            int32_t f0 = -1;
            for (int32_t g = s; g <= f + 1; g++) {
                MotBox a, b;
                int over = g <= f && track_box_at(&a, t, i, det, g) && track_box_at(&b, t, j, det, g) &&
                           mot_iou(&a, &b) > o->uncross_iou;
                if (over && f0 < 0) f0 = g;
                if (over || f0 < 0) continue;
                /* frames f0 .. g - 1: a crossing if both tracks have detections before and after */
                if (f0 > s && g - 1 < f) {
                    if (*n == cap) cap *= 2, c = xrealloc(c, sizeof(Crossing) * (size_t)cap);
                    c[(*n)++] = (Crossing){f0, g - 1, i, j};
                }
                f0 = -1;
            }
        }
    qsort(c, (size_t)*n, sizeof(Crossing), cmp_crossing);
    return c;
}

/* Up to G detections of track k before frame f0 (before = 1, nearest first)
 * or after f1 into g; returns how many. */
static int side_gallery(int *g, const Tracks *t, int k, const MotBoxes *det, int32_t f0, int32_t f1,
                        int before, int G) {
    int n = 0;
    if (before) {
        for (int p = t->len[k] - 1; p >= 0 && n < G; p--)
            if (det->box[t->det[k][p]].frame < f0) g[n++] = t->det[k][p];
    } else {
        for (int p = 0; p < t->len[k] && n < G; p++)
            if (det->box[t->det[k][p]].frame > f1) g[n++] = t->det[k][p];
    }
    return n;
}

/* Exchanges the detections of tracks i and j after frame f. */
static void swap_tails(Tracks *t, int i, int j, const MotBoxes *det, int32_t f) {
    int pi = 0, pj = 0;
    while (pi < t->len[i] && det->box[t->det[i][pi]].frame <= f) pi++;
    while (pj < t->len[j] && det->box[t->det[j][pj]].frame <= f) pj++;
    int ni = pi + t->len[j] - pj, nj = pj + t->len[i] - pi;
    int *vi = xmalloc(sizeof(int) * (size_t)(ni + 1)), *vj = xmalloc(sizeof(int) * (size_t)(nj + 1));
    memcpy(vi, t->det[i], sizeof(int) * (size_t)pi);
    memcpy(vi + pi, t->det[j] + pj, sizeof(int) * (size_t)(t->len[j] - pj));
    memcpy(vj, t->det[j], sizeof(int) * (size_t)pj);
    memcpy(vj + pj, t->det[i] + pi, sizeof(int) * (size_t)(t->len[i] - pi));
    free(t->det[i]);
    free(t->det[j]);
    t->det[i] = vi, t->len[i] = t->lcap[i] = ni;
    t->det[j] = vj, t->len[j] = t->lcap[j] = nj;
}

/* Uncrossing (o->uncross galleries): at each crossing of two tracks, in time
 * order, the mean appearance score of i's detections before it with i's
 * after plus j's before with j's after (as tracked), against i's before with
 * j's after plus j's before with i's after (crossed); when the crossed sum is
 * higher the tails are exchanged and the crossings after it found again.
 * Returns the exchanges made (>= 0), or -1 with e. */
static int uncross_tracks(Tracks *t, const MotBoxes *det, const Appearance *app, const TrackOptions *o,
                          Err *e) {
    int G = o->uncross, nc, swaps = 0;
    Crossing *c = find_crossings(t, det, o, &nc);
    int *g[4], *pa = xmalloc(sizeof(int) * (size_t)(4 * G * G)),
               *pb = xmalloc(sizeof(int) * (size_t)(4 * G * G));
    double *ps = xmalloc(sizeof(double) * (size_t)(4 * G * G));
    for (int q = 0; q < 4; q++) g[q] = xmalloc(sizeof(int) * (size_t)G);
    for (int k = 0; k < nc; k++) {
        Crossing x = c[k];
        /* galleries: i before, i after, j before, j after */
        int n[4] = {side_gallery(g[0], t, x.i, det, x.f0, x.f1, 1, G),
                    side_gallery(g[1], t, x.i, det, x.f0, x.f1, 0, G),
                    side_gallery(g[2], t, x.j, det, x.f0, x.f1, 1, G),
                    side_gallery(g[3], t, x.j, det, x.f0, x.f1, 0, G)};
        /* the four pairings: (0,1) (2,3) tracked, (0,3) (2,1) crossed */
        static const int pair[4][2] = {{0, 1}, {2, 3}, {0, 3}, {2, 1}};
        int np = 0, start[5];
        for (int p = 0; p < 4; p++) {
            start[p] = np;
            for (int u = 0; u < n[pair[p][0]]; u++)
                for (int v = 0; v < n[pair[p][1]]; v++)
                    pa[np] = g[pair[p][0]][u], pb[np++] = g[pair[p][1]][v];
        }
        start[4] = np;
        if (app->score(app->ctx, pa, pb, np, ps, e)) {
            swaps = -1;
            break;
        }
        double mean[4];
        for (int p = 0; p < 4; p++) {
            double acc = 0;
            for (int q = start[p]; q < start[p + 1]; q++) acc += ps[q];
            mean[p] = acc / MAX(1, start[p + 1] - start[p]);
        }
        if (mean[2] + mean[3] <= mean[0] + mean[1] + o->uncross_margin) continue;
        swap_tails(t, x.i, x.j, det, x.f1);
        swaps++;
        /* the crossings after this one, on the exchanged tracks */
        free(c);
        c = find_crossings(t, det, o, &nc);
        int r = 0;
        while (r < nc && cmp_crossing(&c[r], &x) <= 0) r++;
        k = r - 1;
    }
    for (int q = 0; q < 4; q++) free(g[q]);
    free(pa);
    free(pb);
    free(ps);
    free(c);
    return swaps;
}

/* ---- batch: mending broken tracks ------------------------------------------------------ */

/* The mean appearance score *s of up to G detections at the end of track i
 * (its last) against up to G at the start of track j (its first). 0 or -1
 * with e. */
static int end_start_score(double *s, const Tracks *t, int i, int j, const Appearance *app, int G, Err *e) {
    int na = MIN(G, t->len[i]), nb = MIN(G, t->len[j]), q = 0;
    int *ga = xmalloc(sizeof(int) * (size_t)(na * nb + 1)),
        *gb = xmalloc(sizeof(int) * (size_t)(na * nb + 1));
    double *ps = xmalloc(sizeof(double) * (size_t)(na * nb + 1)), acc = 0;
    for (int x = 0; x < na; x++)
        for (int y = 0; y < nb; y++) ga[q] = t->det[i][t->len[i] - 1 - x], gb[q++] = t->det[j][y];
    int rc = app->score(app->ctx, ga, gb, q, ps, e);
    for (int x = 0; x < q && !rc; x++) acc += ps[x];
    *s = acc / MAX(1, q);
    free(ga);
    free(gb);
    free(ps);
    return rc;
}

/* Appends track to[i] (-1: none) to track i for every i, in track order,
 * each track joined at most once either way (a chain i -> j -> k in one
 * call: j's detections to i, k stays); with bridge, the gap after i's old
 * last detection is marked to be filled. Returns the joins made. */
static int join_tracks(Tracks *t, const int *to, char *bridge) {
    char *gone = xcalloc((size_t)t->n + 1, 1);
    int joins = 0;
    for (int i = 0; i < t->n; i++) {
        int j = to[i];
        if (j < 0 || gone[j] || gone[i]) continue;
        if (bridge) bridge[t->det[i][t->len[i] - 1]] = 1;
        for (int x = 0; x < t->len[j]; x++) tracks_push(t, i, t->det[j][x]);
        t->len[j] = 0;
        gone[j] = 1;
        joins++;
    }
    free(gone);
    return joins;
}

/* One round of mending (o->mend): each track end and each start of another
 * track 1..o->mend frames after it, no further apart than max_speed box
 * heights per frame, are scored by the mean appearance score of up to
 * o->gallery detections of the ending track (its last) and of the starting
 * one (its first). A pair joins when its score is at least o->mend_score and
 * higher than that of every other pair of the same end or the same start
 * (chains of joins may form in one round). Returns the joins made (>= 0), or -1 with e. */
static int mend_round(Tracks *t, const MotBoxes *det, const Appearance *app, const TrackOptions *o, Err *e) {
    int G = MAX(1, o->gallery), cap = 64, np = 0, joins = 0;
    int *pi = xmalloc(sizeof(int) * (size_t)cap), *pj = xmalloc(sizeof(int) * (size_t)cap);
    for (int i = 0; i < t->n; i++)
        for (int j = 0; j < t->n; j++) {
            if (i == j || !t->len[i] || !t->len[j]) continue;
            const MotBox *a = &det->box[t->det[i][t->len[i] - 1]], *b = &det->box[t->det[j][0]];
            int gap = b->frame - a->frame;
            if (gap < 1 || gap > o->mend) continue;
            double phi[TRACK_NFEAT];
            track_features(phi, a, 0, 0, b, gap, 0);
            if (phi[7] > o->max_speed) continue;
            if (np == cap) {
                cap *= 2;
                pi = xrealloc(pi, sizeof(int) * (size_t)cap), pj = xrealloc(pj, sizeof(int) * (size_t)cap);
            }
            pi[np] = i, pj[np++] = j;
        }
    double *s = xmalloc(sizeof(double) * ((size_t)np + 1));
    for (int k = 0; k < np && joins >= 0; k++)
        if (end_start_score(&s[k], t, pi[k], pj[k], app, G, e)) joins = -1;
    /* the pairs that win both their end and their start */
    int *to = xmalloc(sizeof(int) * ((size_t)t->n + 1));
    for (int i = 0; i < t->n; i++) to[i] = -1;
    for (int k = 0; k < np && joins >= 0; k++) {
        if (s[k] < o->mend_score) continue;
        int best = 1;
        for (int l = 0; l < np && best; l++)
            if (l != k && (pi[l] == pi[k] || pj[l] == pj[k]) && s[l] >= s[k]) best = 0;
        if (best) to[pi[k]] = pj[k];
    }
    if (joins >= 0) joins = join_tracks(t, to, NULL);
    free(to);
    free(s);
    free(pi);
    free(pj);
    return joins;
}

/* ---- batch: tracks hidden behind another ------------------------------------------------ */

enum { BEHIND_BOXES = 3, BEHIND_BORDER = 2 };

/* Whether box b lies within BEHIND_BORDER pixels of the frame's border (never
 * when the frame's size is not known). */
static int at_border(const MotBox *b, const TrackOptions *o) {
    if (o->width <= 0 || o->height <= 0) return 0;
    return b->x < BEHIND_BORDER || b->y < BEHIND_BORDER || b->x + b->w > o->width - BEHIND_BORDER ||
           b->y + b->h > o->height - BEHIND_BORDER;
}

/* Whether one of the last (end 1) or first (end 0) BEHIND_BOXES detections of
 * track k is covered by more than o->behind_cover of its area by track b's box
 * in its frame. */
static int hidden_by(const Tracks *t, int k, int end, int b, const MotBoxes *det, const TrackOptions *o) {
    for (int q = 0; q < MIN(BEHIND_BOXES, t->len[k]); q++) {
        const MotBox *x = &det->box[t->det[k][end ? t->len[k] - 1 - q : q]];
        MotBox y;
        if (!track_box_at(&y, t, b, det, x->frame)) continue;
        double w = MIN((double)x->x + x->w, (double)y.x + y.w) - MAX(x->x, y.x),
               h = MIN((double)x->y + x->h, (double)y.y + y.h) - MAX(x->y, y.y); /* exact for floats */
        if (w > 0 && h > 0 && w * h > o->behind_cover * x->w * x->h) return 1;
    }
    return 0;
}

/* One round of joins behind occluders (o->behind): track i ends, track j
 * starts 1..o->behind frames later, both hidden by the same third track,
 * neither end box at the frame's border; no speed limit (the occluder bounds
 * where the target can be) and no velocity (it may turn). A pair joins when it is
 * the only one of its end and of its start, or (with app) when its mean
 * gallery score beats every other pair of the same end or start by more than
 * o->behind_margin; the frames between are marked to be filled (t->bridge).
 * Returns the joins made (>= 0), or -1 with e. */
static int behind_round(Tracks *t, const MotBoxes *det, const Appearance *app, const TrackOptions *o,
                        Err *e) {
    int cap = 64, np = 0, joins = 0;
    int *pi = xmalloc(sizeof(int) * (size_t)cap), *pj = xmalloc(sizeof(int) * (size_t)cap);
    for (int i = 0; i < t->n; i++) {
        if (!t->len[i]) continue;
        const MotBox *a = &det->box[t->det[i][t->len[i] - 1]];
        if (at_border(a, o)) continue;
        for (int j = 0; j < t->n; j++) {
            if (j == i || !t->len[j]) continue;
            const MotBox *c = &det->box[t->det[j][0]];
            int gap = c->frame - a->frame;
            if (gap < 1 || gap > o->behind || at_border(c, o)) continue;
            int hidden = 0; /* (so b lives from i's end to j's start) */
            for (int b = 0; b < t->n && !hidden; b++)
                hidden = b != i && b != j && t->len[b] && hidden_by(t, i, 1, b, det, o) &&
                         hidden_by(t, j, 0, b, det, o);
            if (!hidden) continue;
            if (np == cap) {
                cap *= 2;
                pi = xrealloc(pi, sizeof(int) * (size_t)cap), pj = xrealloc(pj, sizeof(int) * (size_t)cap);
            }
            pi[np] = i, pj[np++] = j;
        }
    }
    /* rivals: other pairs of the same end or start; scored only where there are some */
    int *rivals = xcalloc((size_t)np + 1, sizeof(int));
    double *s = xcalloc((size_t)np + 1, sizeof(double));
    for (int k = 0; k < np; k++)
        for (int l = 0; l < np; l++) rivals[k] += l != k && (pi[l] == pi[k] || pj[l] == pj[k]);
    for (int k = 0; k < np && joins >= 0; k++)
        if (app && rivals[k] && end_start_score(&s[k], t, pi[k], pj[k], app, MAX(1, o->gallery), e))
            joins = -1;
    int *to = xmalloc(sizeof(int) * ((size_t)t->n + 1));
    for (int i = 0; i < t->n; i++) to[i] = -1;
    for (int k = 0; k < np && joins >= 0; k++) {
        int best = !rivals[k] || app;
        for (int l = 0; l < np && best && rivals[k]; l++)
            if (l != k && (pi[l] == pi[k] || pj[l] == pj[k]) && s[k] <= s[l] + o->behind_margin) best = 0;
        if (best) to[pi[k]] = pj[k];
    }
    if (!t->bridge) t->bridge = xcalloc(det->n + 1, 1);
    if (joins >= 0) joins = join_tracks(t, to, t->bridge);
    free(to);
    free(s);
    free(rivals);
    free(pi);
    free(pj);
    return joins;
}

static int track_batch(Tracks *t, const MotBoxes *det, const LinkModel *m, const Appearance *app,
                       const TrackOptions *o, Err *e) {
    int rc = batch_run(t, NULL, NULL, NULL, 0, det, m, app, o, e);
    if (!rc && app && o->uncross > 0 && uncross_tracks(t, det, app, o, e) < 0) rc = -1;
    for (int r = 1; !rc && o->behind > 0 && r > 0;)
        if ((r = behind_round(t, det, app, o, e)) < 0) rc = -1;
    for (int r = 1; !rc && app && o->mend > 0 && r > 0;)
        if ((r = mend_round(t, det, app, o, e)) < 0) rc = -1;
    return rc;
}

int track_link_scores(double *s, double *vx, double *vy, int nc, const MotBoxes *det, const LinkModel *m,
                      const Appearance *app, const TrackOptions *o, Err *e) {
    return batch_run(NULL, s, vx, vy, nc, det, m, app, o, e);
}

/* ---- online: frame by frame ----------------------------------------------------------- */

typedef struct Live {
    int track;     /* index in Tracks */
    int last;      /* last matched detection */
    double vx, vy; /* centre velocity, pixels per frame */
    int hits, confirmed;
} Live;

static int track_online(Tracks *t, const MotBoxes *det, const LinkModel *m, const Appearance *app,
                        const TrackOptions *o, Err *e) {
    Live *live = NULL;
    int nlive = 0, rc = 0;
    for (int32_t f = 1; f <= det->frames && !rc; f++) {
        int nd = 0;
        int *dets = xmalloc(sizeof(int) * (det->first[f + 1] - det->first[f] + 1));
        for (size_t i = det->first[f]; i < det->first[f + 1]; i++)
            if (det->box[i].score >= o->min_score) dets[nd++] = (int)i;
        /* drop tracks too old, and unconfirmed ones that missed a frame */
        int w = 0;
        for (int k = 0; k < nlive; k++) {
            int age = f - det->box[live[k].last].frame;
            if (age > o->max_age || (!live[k].confirmed && age > 1)) continue;
            live[w++] = live[k];
        }
        nlive = w;
        /* cost matrix: tracks x (detections + one "no match" column per track) */
        int cols = nd + nlive;
        double *cost = xmalloc(sizeof(double) * ((size_t)nlive * cols + 1));
        double *s = xcalloc((size_t)nlive * nd + 1, sizeof(double));
        if (app && nlive && nd) {
            /* a track's appearance score: the best over its last `gallery` detections */
            int G = MAX(1, o->gallery), np = 0;
            int *a = xmalloc(sizeof(int) * (size_t)(nlive * nd * G)),
                *b = xmalloc(sizeof(int) * (size_t)(nlive * nd * G));
            double *ps = xmalloc(sizeof(double) * (size_t)(nlive * nd * G));
            for (int k = 0; k < nlive; k++) {
                const int *hist = t->det[live[k].track], len = t->len[live[k].track];
                for (int j = 0; j < nd; j++)
                    for (int g = MAX(0, len - G); g < len; g++) a[np] = hist[g], b[np++] = dets[j];
            }
            rc = app->score(app->ctx, a, b, np, ps, e);
            np = 0;
            for (int k = 0; k < nlive; k++) {
                int len = t->len[live[k].track], n = MIN(len, G);
                for (int j = 0; j < nd; j++, np += n) {
                    double acc = ps[np];
                    for (int g = 1; g < n; g++)
                        acc = o->gallery_mean ? acc + ps[np + g] : MAX(acc, ps[np + g]);
                    s[k * nd + j] = o->gallery_mean ? acc / n : acc;
                }
            }
            free(a);
            free(b);
            free(ps);
        }
        for (int k = 0; k < nlive; k++) {
            const MotBox *a = &det->box[live[k].last];
            int gap = f - a->frame;
            for (int j = 0; j < cols; j++) cost[k * cols + j] = ASSIGN_FORBIDDEN;
            cost[k * cols + nd + k] = -log(o->gate);
            for (int j = 0; j < nd; j++) {
                double phi[TRACK_NFEAT];
                track_features(phi, a, live[k].vx, live[k].vy, &det->box[dets[j]], gap, s[k * nd + j]);
                if (phi[7] > o->max_speed) continue;
                double p = 1 / (1 + exp(-link_logit(m, phi)));
                if (p >= o->gate) cost[k * cols + j] = -log(p);
            }
        }
        int *match = xmalloc(sizeof(int) * ((size_t)nlive + 1));
        char *taken = xcalloc((size_t)nd + 1, 1);
        if (nlive) assign_solve(match, cost, nlive, cols, NULL);
        for (int k = 0; k < nlive; k++) {
            int j = match[k];
            if (j < 0 || j >= nd) continue;
            Live *L = &live[k];
            const MotBox *a = &det->box[L->last], *b = &det->box[dets[j]];
            int gap = f - a->frame;
            double vx = (b->x + b->w / 2.0 - a->x - a->w / 2.0) / gap,
                   vy = (b->y + b->h / 2.0 - a->y - a->h / 2.0) / gap;
            L->vx = L->hits > 1 ? 0.5 * L->vx + 0.5 * vx : vx;
            L->vy = L->hits > 1 ? 0.5 * L->vy + 0.5 * vy : vy;
            L->last = dets[j];
            L->hits++;
            if (L->hits >= o->min_hits) L->confirmed = 1, t->reported[L->track] = 1;
            tracks_push(t, L->track, dets[j]);
            taken[j] = 1;
        }
        /* births */
        for (int j = 0; j < nd; j++) {
            if (taken[j] || det->box[dets[j]].score < o->birth_score) continue;
            live = xrealloc(live, sizeof(Live) * (size_t)(nlive + 1));
            int k = tracks_new(t, o->min_hits <= 1);
            tracks_push(t, k, dets[j]);
            live[nlive++] = (Live){.track = k, .last = dets[j], .hits = 1, .confirmed = o->min_hits <= 1};
        }
        free(cost);
        free(s);
        free(match);
        free(taken);
        free(dets);
    }
    free(live);
    return rc;
}

int track_run(MotBoxes *out, const MotBoxes *det, const LinkModel *m, const Appearance *app,
              const TrackOptions *o, Err *e) {
    ASSERT(app || !m->appearance);
    Tracks t = {0};
    int rc = o->batch ? track_batch(&t, det, m, app, o, e) : track_online(&t, det, m, app, o, e);
    if (!rc) emit(out, det, &t, o);
    tracks_free(&t);
    return rc;
}
