/* protocol: see protocol.h. The groups of a dataset are its class names'
 * prefixes before '/' (ds_group_len), numbered in byte-wise order. */
#include "protocol.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../io/atomic_file.h"

#define TRIALS_FILE_MAX (1L << 30)

/* ---- groups ------------------------------------------------------------------ */

typedef struct Groups {
    int n;
    char **names;      /* (n), sorted */
    int32_t *of_label; /* (classes) */
} Groups;

static void groups_free(Groups *g) {
    ds_groups_free(g->names, g->n);
    free(g->of_label);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int group_index(const Groups *g, const char *name) {
    char *const *hit = bsearch(&name, g->names, (size_t)g->n, sizeof(char *), cmp_str);
    return hit ? (int)(hit - g->names) : -1;
}

static void groups_build(Groups *g, const Dataset *ds) {
    g->of_label = xmalloc(sizeof(int32_t) * ((size_t)ds_meta(ds)->classes + 1));
    g->n = ds_groups(ds, g->of_label, &g->names);
}

/* Keeps only the groups listed in `only` (comma-separated): the labels of
 * the others get group -1. */
static int groups_restrict(Groups *g, uint32_t classes, const char *only, const char *db, Err *e) {
    if (!only || !only[0]) return 0;
    uint8_t *keep = xcalloc((size_t)g->n + 1, 1);
    char *list = xstrdup(only), *save = NULL;
    int rc = 0, any = 0;
    for (char *tok = strtok_r(list, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        int i = group_index(g, tok);
        if (i < 0)
            rc = err_set(e, "%s has no group '%s' (its %d groups run from '%s' to '%s') — check --groups", db,
                         tok, g->n, g->n ? g->names[0] : "", g->n ? g->names[g->n - 1] : "");
        else
            keep[i] = any = 1;
    }
    if (!rc && !any) rc = err_set(e, "--groups '%s' names no group", only);
    for (uint32_t c = 0; !rc && c < classes; c++)
        if (!keep[g->of_label[c]]) g->of_label[c] = -1;
    free(list);
    free(keep);
    return rc;
}

/* ---- within-group trials ------------------------------------------------------- */

int protocol_group_trials(Trials *out, Dataset *ds, const GroupEval *ge, Err *e) {
    memset(out, 0, sizeof *out);
    const DsMeta *m = ds_meta(ds);
    const char *db = ds_path(ds);
    if (m->count > INT32_MAX) return err_set(e, "%s: too many samples for N-way trials", db);
    Groups g;
    groups_build(&g, ds);
    int32_t *drawing = NULL;
    int rc = groups_restrict(&g, m->classes, ge->groups, db, e);
    if (!rc && ge->rule == TRIALS_PAIRED) {
        if ((rc = ds_load_names(ds, e)) == 0 && !m->has_names)
            rc = err_set(e, "%s has no sample names, which the paired drawing rule reads — re-import it", db);
        const int32_t *labels = ds_labels(ds);
        drawing = xmalloc(sizeof(int32_t) * (m->count + 1));
        for (uint64_t i = 0; i < m->count && !rc; i++) {
            drawing[i] = g.of_label[labels[i]] >= 0 ? trials_drawing_of(ds_sample_name(ds, i)) : -1;
            if (g.of_label[labels[i]] >= 0 && drawing[i] < 0)
                rc = err_set(e,
                             "%s: sample %" PRIu64
                             " '%s' has no drawing index (NAME_NN.png), which the paired "
                             "rule needs — use --drawings any",
                             db, i, ds_sample_name(ds, i));
        }
    }
    if (!rc) {
        TrialsSpec spec = {ge->n_way, ge->k_shot, ge->trials, ge->seed, ge->rule};
        if (trials_within_groups(out, &spec, ds_labels(ds), (int)m->count, g.of_label, (int)m->classes, g.n,
                                 drawing, e))
            rc = -1;
    }
    free(drawing);
    groups_free(&g);
    return rc;
}

/* ---- trials files ---------------------------------------------------------------- */

static int read_text(const char *path, char **out, size_t *n, Err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(e, "%s: cannot open the trials file: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > TRIALS_FILE_MAX) {
        fclose(f);
        return err_set(e, "%s: not a regular file of at most %ld bytes", path, TRIALS_FILE_MAX);
    }
    char *buf = xmalloc((size_t)st.st_size + 1);
    size_t got = fread(buf, 1, (size_t)st.st_size, f);
    int bad = ferror(f) || got != (size_t)st.st_size;
    fclose(f);
    if (bad) {
        free(buf);
        return err_set(e, "%s: read error", path);
    }
    buf[got] = 0;
    *out = buf;
    *n = got;
    return 0;
}

/* A growing list of trial rows (query, supports..., answer) as sample ids. */
typedef struct Rows {
    uint32_t *v;
    size_t n, cap;
} Rows;

static void rows_push(Rows *r, uint32_t x) {
    if (r->n == r->cap) r->v = xrealloc(r->v, (r->cap = MAX(2 * r->cap, 4096)) * sizeof(uint32_t));
    r->v[r->n++] = x;
}

#define LINE_FAIL(...) (err_set(e, "%s:%d: " __VA_ARGS__), -1)

/* Parses one trial line (tab-separated fields, NUL-terminated in place) into
 * rows; *n_way is set by the first trial. */
static int parse_trial(Rows *rows, char *line, int ln, int k_shot, int *n_way, Dataset *ds, const char *path,
                       Err *e) {
    enum { MAX_FIELDS = 1 << 16 };
    char **f = xmalloc(sizeof(char *) * MAX_FIELDS);
    int nf = 0, rc = 0;
    for (char *p = line;; p++) {
        if (nf == MAX_FIELDS) {
            free(f);
            return LINE_FAIL("more than %d fields", path, ln, MAX_FIELDS - 1);
        }
        f[nf++] = p;
        p = strchr(p, '\t');
        if (!p) break;
        *p = 0;
    }
    int ns = nf - 2, N = ns / k_shot;
    const int32_t *labels = ds_labels(ds);
    long answer = 0;
    if (nf < 4 || ns % k_shot || N < 2)
        rc = LINE_FAIL("%d fields: a trial is QUERY, then N >= 2 classes of %d support name%s, then ANSWER, "
                       "separated by tabs",
                       path, ln, nf, k_shot, k_shot > 1 ? "s" : "");
    else if (*n_way && N != *n_way)
        rc = LINE_FAIL("%d classes, but the first trial has %d: every trial of a file has the same N", path,
                       ln, N, *n_way);
    else if (parse_long(f[nf - 1], 1, N, &answer))
        rc = LINE_FAIL("answer '%s' is not a class number in 1..%d (the last field)", path, ln, f[nf - 1], N);
    size_t base = rows->n;
    for (int i = 0; i < nf - 1 && !rc; i++) {
        int64_t id = ds_find_sample(ds, f[i], strlen(f[i]));
        if (id < 0)
            rc = LINE_FAIL("field %d: no sample named '%.300s' in %s", path, ln, i + 1, f[i], ds_path(ds));
        else
            rows_push(rows, (uint32_t)id);
    }
    if (!rc) {
        const uint32_t *r = rows->v + base;
        int32_t ql = labels[r[0]];
        for (int w = 0; w < N && !rc; w++) {
            const uint32_t *sup = r + 1 + w * k_shot;
            int32_t l = labels[sup[0]];
            for (int k = 0; k < k_shot && !rc; k++) {
                if (sup[k] == r[0])
                    rc = LINE_FAIL("the query '%s' is also a support", path, ln, f[0]);
                else if (labels[sup[k]] != l)
                    rc = LINE_FAIL("class %d: supports '%s' and '%s' have different labels in %s", path, ln,
                                   w + 1, f[1 + w * k_shot], f[1 + w * k_shot + k], ds_path(ds));
            }
            for (int v = 0; v < w && !rc; v++)
                if (labels[r[1 + v * k_shot]] == l)
                    rc = LINE_FAIL("classes %d and %d have the same label in %s ('%s')", path, ln, v + 1,
                                   w + 1, ds_path(ds), ds_class_name(ds, (uint32_t)l));
            if (!rc && (w + 1 == answer) != (l == ql))
                rc = LINE_FAIL("answer %ld, but the query '%s' has%s the label of class %d in %s", path, ln,
                               answer, f[0], w + 1 == answer ? " not" : "", w + 1, ds_path(ds));
        }
    }
    if (!rc) {
        rows_push(rows, (uint32_t)(answer - 1));
        *n_way = N;
    }
    free(f);
    return rc;
}

int protocol_read_trials(Trials *out, Dataset *ds, const char *path, Err *e) {
    memset(out, 0, sizeof *out);
    if (ds_load_names(ds, e)) return -1;
    if (!ds_meta(ds)->has_names)
        return err_set(e, "%s has no sample names, which a trials file refers to — re-import it",
                       ds_path(ds));
    char *text = NULL;
    size_t len = 0;
    if (read_text(path, &text, &len, e)) return -1;
    Rows rows = {0};
    int rc = 0, ln = 0, k_shot = 1, n_way = 0, ntrials = 0;
    const char *nul = memchr(text, 0, len);
    if (nul) {
        for (const char *p = text; p < nul; p++) ln += *p == '\n';
        rc = LINE_FAIL("NUL byte: not a text file", path, ln + 1);
    }
    for (char *line = text, *next; line && !rc; line = next) {
        ln++;
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r') line[--n] = 0;
        if (n == 0 || line[0] == '#') continue;
        if (!strchr(line, '\t')) {
            long k;
            if (strncmp(line, "kshot ", 6) || parse_long(line + 6, 1, 100000, &k))
                rc = LINE_FAIL("'%.100s' is neither a trial (tab-separated fields) nor 'kshot K'", path, ln,
                               line);
            else if (ntrials)
                rc = LINE_FAIL("'kshot' must come before the first trial", path, ln);
            else
                k_shot = (int)k;
        } else {
            rc = parse_trial(&rows, line, ln, k_shot, &n_way, ds, path, e);
            ntrials++;
        }
    }
    if (!rc && ntrials == 0) rc = err_set(e, "%s: no trials (see docs/formats.md, Trials files)", path);
    if (!rc) {
        trials_alloc(out, ntrials, n_way, k_shot);
        size_t row = 2 + (size_t)n_way * k_shot;
        const int32_t *labels = ds_labels(ds);
        Groups g;
        groups_build(&g, ds);
        for (int t = 0; t < ntrials; t++) {
            const uint32_t *r = rows.v + (size_t)t * row;
            out->query[t] = r[0];
            memcpy(out->support + (size_t)t * n_way * k_shot, r + 1, sizeof(uint32_t) * n_way * k_shot);
            out->answer[t] = (int32_t)r[row - 1];
            out->group[t] = g.of_label[labels[r[0]]];
        }
        groups_free(&g);
    }
    free(rows.v);
    free(text);
    return rc;
}

int protocol_write_trials(const Trials *t, Dataset *ds, const char *path, Err *e) {
    if (ds_load_names(ds, e)) return -1;
    if (!ds_meta(ds)->has_names)
        return err_set(e, "%s has no sample names: its trials cannot be written by name", ds_path(ds));
    size_t len = 0, cap = 1 << 16;
    char *buf = xmalloc(cap);
#define PUT(s, n)                                                                                            \
    do {                                                                                                     \
        size_t n_ = (n);                                                                                     \
        if (len + n_ + 64 > cap) buf = xrealloc(buf, cap = 2 * (len + n_ + 64));                             \
        memcpy(buf + len, (s), n_);                                                                          \
        len += n_;                                                                                           \
    } while (0)
    len = (size_t)snprintf(buf, cap, "# siamese trials: %d trials, %d-way %d-shot, names of %s\nkshot %d\n",
                           t->n, t->n_way, t->k_shot, ds_path(ds), t->k_shot);
    if (len >= cap) len = cap - 1;
    for (int i = 0; i < t->n; i++) {
        const char *q = ds_sample_name(ds, t->query[i]);
        PUT(q, strlen(q));
        for (int k = 0; k < t->n_way * t->k_shot; k++) {
            const char *s = ds_sample_name(ds, t->support[(size_t)i * t->n_way * t->k_shot + k]);
            PUT("\t", 1);
            PUT(s, strlen(s));
        }
        char num[24];
        int n = snprintf(num, sizeof num, "\t%d\n", t->answer[i] + 1);
        PUT(num, (size_t)n);
    }
#undef PUT
    int rc = atomic_file_write_all(path, buf, len, e);
    free(buf);
    return rc;
}

/* ---- scores ---------------------------------------------------------------------- */

void nway_score_free(NwayScore *s) {
    for (int i = 0; i < s->ngroups; i++) free(s->group_names[i]);
    free(s->group_names);
    free(s->group_acc);
    free(s->group_trials);
    memset(s, 0, sizeof *s);
}

void protocol_score(NwayScore *out, const Trials *t, const Dataset *ds, MetricsSim sim, void *ctx) {
    memset(out, 0, sizeof *out);
    double *credit = xmalloc(sizeof(double) * ((size_t)t->n + 1));
    out->accuracy = trials_score(t, sim, ctx, credit);
    out->trials = t->n;
    out->n_way = t->n_way;
    out->k_shot = t->k_shot;
    trials_wilson95(&out->ci_low, &out->ci_high, out->accuracy, t->n);
    Groups g;
    groups_build(&g, ds);
    out->ngroups = g.n;
    out->group_names = g.names;
    g.names = NULL;
    g.n = 0;
    groups_free(&g);
    out->group_acc = xcalloc((size_t)out->ngroups + 1, sizeof(double));
    out->group_trials = xcalloc((size_t)out->ngroups + 1, sizeof(int));
    for (int i = 0; i < t->n; i++)
        if (t->group[i] >= 0 && t->group[i] < out->ngroups) {
            out->group_acc[t->group[i]] += credit[i];
            out->group_trials[t->group[i]]++;
        }
    for (int i = 0; i < out->ngroups; i++) {
        out->groups_used += out->group_trials[i] > 0;
        out->group_acc[i] = out->group_trials[i] ? out->group_acc[i] / out->group_trials[i] : NAN;
    }
    free(credit);
}
