/* trials: see trials.h. Samples are grouped by label (ids ascending) and
 * labels by group with counting sorts; the paired rule also sorts each
 * label's samples by drawing so that a drawing is found by binary search. */
#include "trials.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PAIRED_ATTEMPTS 1000

void trials_alloc(Trials *t, int n, int n_way, int k_shot) {
    ASSERT(n >= 0 && n_way >= 1 && k_shot >= 1);
    t->n = n;
    t->n_way = n_way;
    t->k_shot = k_shot;
    size_t m = n ? (size_t)n : 1;
    t->query = xmalloc(m * sizeof *t->query);
    t->support = xmalloc(m * (size_t)n_way * (size_t)k_shot * sizeof *t->support);
    t->answer = xmalloc(m * sizeof *t->answer);
    t->group = xmalloc(m * sizeof *t->group);
}

void trials_free(Trials *t) {
    free(t->query);
    free(t->support);
    free(t->answer);
    free(t->group);
    memset(t, 0, sizeof *t);
}

/* Offsets of a counting sort of n keys in [0, m): start has m + 1 entries,
 * idx lists the positions 0..n-1 grouped by key, ascending within a key.
 * Keys < 0 are left out. */
static void bucket(int *start, uint32_t *idx, const int32_t *key, int n, int m) {
    memset(start, 0, sizeof(int) * ((size_t)m + 1));
    for (int i = 0; i < n; i++)
        if (key[i] >= 0) start[key[i] + 1]++;
    for (int b = 0; b < m; b++) start[b + 1] += start[b];
    int *fill = xcalloc((size_t)m + 1, sizeof(int));
    for (int i = 0; i < n; i++)
        if (key[i] >= 0) idx[start[key[i]] + fill[key[i]]++] = (uint32_t)i;
    free(fill);
}

typedef struct Pool {
    int n_labels, n_groups;
    int *lstart;       /* (n_labels + 1) into members */
    uint32_t *members; /* samples by label; ANY permutes them in place */
    int *gstart;       /* (n_groups + 1) into glabels */
    uint32_t *glabels; /* labels with samples, by group */
    int32_t *drawing;  /* PAIRED: members' drawings, same order (sorted within a label) */
    int *dstart;       /* PAIRED: (n_groups + 1) into dvals */
    uint32_t *dvals;   /* PAIRED: distinct drawings of each group, ascending */
} Pool;

static void pool_free(Pool *p) {
    free(p->lstart);
    free(p->members);
    free(p->gstart);
    free(p->glabels);
    free(p->drawing);
    free(p->dstart);
    free(p->dvals);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static const int32_t *sort_drawing_; /* qsort context: drawing of each sample */
static int cmp_by_drawing(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (sort_drawing_[x] != sort_drawing_[y]) return sort_drawing_[x] < sort_drawing_[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* The sample of label l with drawing d (the lowest index), or -1. */
static int64_t find_drawing(const Pool *p, int l, int32_t d) {
    int lo = p->lstart[l], hi = p->lstart[l + 1];
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (p->drawing[mid] < d)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < p->lstart[l + 1] && p->drawing[lo] == d ? (int64_t)p->members[lo] : -1;
}

static int pool_build(Pool *p, const int32_t *labels, int N, const int32_t *group_of, int n_labels,
                      int n_groups, const int32_t *drawing, Err *e) {
    memset(p, 0, sizeof *p);
    p->n_labels = n_labels;
    p->n_groups = n_groups;
    int32_t *key = xmalloc(((size_t)N + (size_t)n_labels + 1) * sizeof(int32_t));
    for (int i = 0; i < N; i++) {
        ASSERT(labels[i] >= 0 && labels[i] < n_labels);
        ASSERT(group_of[labels[i]] < n_groups);
        key[i] = group_of[labels[i]] >= 0 ? labels[i] : -1;
    }
    p->lstart = xmalloc(((size_t)n_labels + 1) * sizeof(int));
    p->members = xmalloc(((size_t)N + 1) * sizeof(uint32_t));
    bucket(p->lstart, p->members, key, N, n_labels);
    for (int l = 0; l < n_labels; l++) key[l] = p->lstart[l + 1] > p->lstart[l] ? group_of[l] : -1;
    p->gstart = xmalloc(((size_t)n_groups + 1) * sizeof(int));
    p->glabels = xmalloc(((size_t)n_labels + 1) * sizeof(uint32_t));
    bucket(p->gstart, p->glabels, key, n_labels, n_groups);
    free(key);
    if (!drawing) return 0;
    int total = p->lstart[n_labels];
    p->drawing = xmalloc(((size_t)total + 1) * sizeof(int32_t));
    sort_drawing_ = drawing;
    for (int l = 0; l < n_labels; l++)
        qsort(p->members + p->lstart[l], (size_t)(p->lstart[l + 1] - p->lstart[l]), sizeof(uint32_t),
              cmp_by_drawing);
    for (int k = 0; k < total; k++) {
        p->drawing[k] = drawing[p->members[k]];
        if (p->drawing[k] < 0)
            return err_set(e, "trials: sample %u has no drawing index, which the paired rule needs",
                           p->members[k]);
    }
    p->dstart = xmalloc(((size_t)n_groups + 1) * sizeof(int));
    p->dvals = xmalloc(((size_t)total + 1) * sizeof(uint32_t));
    int nd = 0;
    for (int g = 0; g < n_groups; g++) {
        p->dstart[g] = nd;
        int first = nd;
        for (int j = p->gstart[g]; j < p->gstart[g + 1]; j++) {
            int l = (int)p->glabels[j];
            for (int k = p->lstart[l]; k < p->lstart[l + 1]; k++) p->dvals[nd++] = (uint32_t)p->drawing[k];
        }
        qsort(p->dvals + first, (size_t)(nd - first), sizeof(uint32_t), cmp_u32);
        int u = first;
        for (int k = first; k < nd; k++)
            if (k == first || p->dvals[k] != p->dvals[u - 1]) p->dvals[u++] = p->dvals[k];
        nd = u;
    }
    p->dstart[n_groups] = nd;
    return 0;
}

static int label_count(const Pool *p, int l) { return p->lstart[l + 1] - p->lstart[l]; }

/* Places the query class at a uniform position: cls[answer] = qc, the
 * n_way - 1 others in order around it. Returns the answer. */
static int place(Rng *r, uint32_t *cls, uint32_t qc, const uint32_t *others, int n_way) {
    int answer = (int)rng_below(r, (uint64_t)n_way);
    for (int w = 0, o = 0; w < n_way; w++) cls[w] = w == answer ? qc : others[o++];
    return answer;
}

/* One ANY trial from group g (eligible). */
static void draw_any(Trials *t, int ti, Pool *p, int g, Rng *r, uint32_t *sc, uint32_t *qcands,
                     uint32_t *cls) {
    int K = t->k_shot, nq = 0, ns = 0;
    for (int j = p->gstart[g]; j < p->gstart[g + 1]; j++) {
        uint32_t l = p->glabels[j];
        if (label_count(p, (int)l) >= K + 1) qcands[nq++] = l;
    }
    uint32_t qc = qcands[rng_below(r, (uint64_t)nq)];
    for (int j = p->gstart[g]; j < p->gstart[g + 1]; j++) {
        uint32_t l = p->glabels[j];
        if (l != qc && label_count(p, (int)l) >= K) sc[ns++] = l;
    }
    rng_pick_u32(r, sc, (size_t)ns, (size_t)(t->n_way - 1));
    int answer = place(r, cls, qc, sc, t->n_way);
    for (int w = 0; w < t->n_way; w++) {
        uint32_t *m = p->members + p->lstart[cls[w]];
        int q = w == answer;
        rng_pick_u32(r, m, (size_t)label_count(p, (int)cls[w]), (size_t)(K + q));
        if (q) t->query[ti] = m[0];
        memcpy(t->support + ((size_t)ti * t->n_way + w) * K, m + q, (size_t)K * sizeof(uint32_t));
    }
    t->answer[ti] = answer;
    t->group[ti] = g;
}

/* One PAIRED trial from group g: 1 on success, 0 if the drawings drawn leave
 * too few classes (the caller redraws). */
static int draw_paired(Trials *t, int ti, Pool *p, int g, Rng *r, uint32_t *sc, uint32_t *qcands,
                       uint32_t *cls, uint32_t *dv) {
    int K = t->k_shot, nd = p->dstart[g + 1] - p->dstart[g], nq = 0, ns = 0;
    memcpy(dv, p->dvals + p->dstart[g], (size_t)nd * sizeof(uint32_t));
    rng_pick_u32(r, dv, (size_t)nd, (size_t)(K + 1));
    for (int j = p->gstart[g]; j < p->gstart[g + 1]; j++) {
        int l = (int)p->glabels[j], ok = 1;
        for (int k = 0; k < K && ok; k++) ok = find_drawing(p, l, (int32_t)dv[k]) >= 0;
        if (!ok) continue;
        sc[ns++] = (uint32_t)l;
        if (find_drawing(p, l, (int32_t)dv[K]) >= 0) qcands[nq++] = (uint32_t)l;
    }
    if (ns < t->n_way || nq < 1) return 0;
    uint32_t qc = qcands[rng_below(r, (uint64_t)nq)];
    for (int j = 0; j < ns; j++)
        if (sc[j] == qc) sc[j] = sc[--ns];
    rng_pick_u32(r, sc, (size_t)ns, (size_t)(t->n_way - 1));
    int answer = place(r, cls, qc, sc, t->n_way);
    for (int w = 0; w < t->n_way; w++)
        for (int k = 0; k < K; k++)
            t->support[((size_t)ti * t->n_way + w) * K + k] =
                (uint32_t)find_drawing(p, (int)cls[w], (int32_t)dv[k]);
    t->query[ti] = (uint32_t)find_drawing(p, (int)qc, (int32_t)dv[K]);
    t->answer[ti] = answer;
    t->group[ti] = g;
    return 1;
}

int trials_within_groups(Trials *out, const TrialsSpec *s, const int32_t *labels, int N,
                         const int32_t *group_of, int n_labels, int n_groups, const int32_t *drawing,
                         Err *e) {
    memset(out, 0, sizeof *out);
    if (s->n_way < 2 || s->k_shot < 1 || s->trials < 1)
        return err_set(e, "trials: %d-way %d-shot, %d trials: need N >= 2, K >= 1 and at least one trial",
                       s->n_way, s->k_shot, s->trials);
    if (s->rule == TRIALS_PAIRED && !drawing)
        return err_set(e, "trials: the paired rule needs drawing indices");
    Pool p;
    if (pool_build(&p, labels, N, group_of, n_labels, n_groups, s->rule == TRIALS_PAIRED ? drawing : NULL,
                   e)) {
        pool_free(&p);
        return -1;
    }
    /* Groups that can hold a trial (PAIRED: that may, given the drawings). */
    uint32_t *elig = xmalloc(((size_t)n_groups + 1) * sizeof(uint32_t));
    int ne = 0, K = s->k_shot;
    for (int g = 0; g < n_groups; g++) {
        int ns = 0, nq = 0;
        for (int j = p.gstart[g]; j < p.gstart[g + 1]; j++) {
            int c = label_count(&p, (int)p.glabels[j]);
            ns += c >= K;
            nq += c >= K + 1;
        }
        int ok = ns >= s->n_way && nq >= 1;
        if (s->rule == TRIALS_PAIRED) ok = ok && p.dstart[g + 1] - p.dstart[g] >= K + 1;
        if (ok) elig[ne++] = (uint32_t)g;
    }
    int rc = 0;
    if (ne == 0) {
        rc = err_set(e,
                     "trials: no group has %d classes with >= %d samples (one of them with >= %d%s) — lower "
                     "the N-way or K-shot, or choose other groups",
                     s->n_way, K, K + 1, s->rule == TRIALS_PAIRED ? ", and >= K + 1 distinct drawings" : "");
    } else {
        trials_alloc(out, s->trials, s->n_way, K);
        uint32_t *sc = xmalloc(((size_t)n_labels + 1) * sizeof(uint32_t));
        uint32_t *qc = xmalloc(((size_t)n_labels + 1) * sizeof(uint32_t));
        uint32_t *cls = xmalloc((size_t)s->n_way * sizeof(uint32_t));
        uint32_t *dv = xmalloc(((size_t)N + 1) * sizeof(uint32_t));
        Rng r;
        rng_seed(&r, s->seed, RNG_EVAL, 2);
        for (int t = 0; t < s->trials && !rc; t++) {
            if (s->rule == TRIALS_ANY) {
                draw_any(out, t, &p, (int)elig[rng_below(&r, (uint64_t)ne)], &r, sc, qc, cls);
                continue;
            }
            int a = 0;
            while (a < PAIRED_ATTEMPTS &&
                   !draw_paired(out, t, &p, (int)elig[rng_below(&r, (uint64_t)ne)], &r, sc, qc, cls, dv))
                a++;
            if (a == PAIRED_ATTEMPTS)
                rc = err_set(
                    e,
                    "trials: trial %d: %d draws of groups and drawings found no %d classes that share "
                    "%d drawings — the paired rule needs classes drawn by the same people",
                    t + 1, PAIRED_ATTEMPTS, s->n_way, K);
        }
        free(sc), free(qc), free(cls), free(dv);
        if (rc) trials_free(out);
    }
    free(elig);
    pool_free(&p);
    return rc;
}

double trials_score(const Trials *t, MetricsSim sim, void *ctx, double *credit) {
    if (t->n < 1) return NAN;
    double *score = xmalloc((size_t)t->n_way * sizeof *score), total = 0.0;
    for (int i = 0; i < t->n; i++) {
        for (int w = 0; w < t->n_way; w++) {
            const uint32_t *sup = t->support + ((size_t)i * t->n_way + w) * t->k_shot;
            double s = 0.0;
            for (int k = 0; k < t->k_shot; k++) s += sim(ctx, (int)t->query[i], (int)sup[k]);
            score[w] = s / t->k_shot;
        }
        double c = metrics_trial_credit(score, t->n_way, t->answer[i]);
        if (credit) credit[i] = c;
        total += c;
    }
    free(score);
    return total / t->n;
}

void trials_wilson95(double *lo, double *hi, double p, int n) {
    if (n < 1) {
        *lo = *hi = NAN;
        return;
    }
    const double z = 1.959963984540054;
    double z2n = z * z / n, den = 1.0 + z2n, mid = (p + z2n / 2.0) / den;
    double half = z / den * sqrt(p * (1.0 - p) / n + z2n / (4.0 * n));
    *lo = fmax(0.0, mid - half);
    *hi = fmin(1.0, mid + half);
}

int32_t trials_drawing_of(const char *name) {
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strrchr(base, '.'), *end = dot ? dot : base + strlen(base);
    const char *us = NULL;
    for (const char *q = base; q < end; q++)
        if (*q == '_') us = q;
    if (!us || end - us - 1 < 1 || end - us - 1 > 9) return -1;
    int32_t v = 0;
    for (const char *q = us + 1; q < end; q++) {
        if (*q < '0' || *q > '9') return -1;
        v = v * 10 + (*q - '0');
    }
    return v;
}
