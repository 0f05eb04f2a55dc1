/* csv: see csv.h. */
#include "csv.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"

void csv_free(CsvTable *t) {
    for (int c = 0; c < t->ncol; c++) free(t->names[c]);
    free(t->names);
    free(t->v);
    memset(t, 0, sizeof *t);
}

/* One field [s, end) as a number: strtod over all of it, or NaN if empty. */
static int field_value(const char *s, const char *end, double *out) {
    while (s < end && (*s == ' ' || *s == '\r')) s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\r')) end--;
    if (s == end) {
        *out = NAN;
        return 0;
    }
    char buf[64];
    size_t n = (size_t)(end - s);
    if (n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *stop;
    *out = strtod(buf, &stop);
    return *stop ? -1 : 0;
}

int csv_read(CsvTable *t, const char *path, Err *e) {
    memset(t, 0, sizeof *t);
    uint8_t *data;
    size_t n;
    if (file_read_whole(path, CSV_MAX_BYTES, "a CSV table", &data, &n, e)) return -1;
    char *s = (char *)data, *end = s + n;
    char *nl = memchr(s, '\n', n);
    if (!nl || nl == s) {
        free(data);
        return err_set(e, "%s: no header line (expected column names separated by commas)", path);
    }
    t->ncol = 1;
    for (char *p = s; p < nl; p++) t->ncol += *p == ',';
    t->names = xcalloc((size_t)t->ncol, sizeof *t->names);
    char *p = s;
    for (int c = 0; c < t->ncol; c++) {
        char *q = p;
        while (q < nl && *q != ',') q++;
        char *qe = q;
        while (qe > p && (qe[-1] == '\r' || qe[-1] == ' ')) qe--;
        t->names[c] = strndup(p, (size_t)(qe - p));
        p = q + 1;
    }
    size_t lines = 0;
    for (char *q = nl + 1; q < end; q++) lines += *q == '\n';
    lines++;
    t->v = xmalloc(lines * (size_t)t->ncol * sizeof *t->v);
    int line = 1;
    for (char *row = nl + 1; row < end;) {
        char *re = memchr(row, '\n', (size_t)(end - row));
        int complete = re != NULL;
        if (!re) re = end;
        line++;
        if (re > row) {
            double *dst = t->v + (size_t)t->nrow * t->ncol;
            int c = 0, bad = !complete; /* a last line without its newline was cut short */
            for (char *f = row; !bad && c < t->ncol; c++) {
                char *fe = f;
                while (fe < re && *fe != ',') fe++;
                if (field_value(f, fe, &dst[c]) || (c < t->ncol - 1 && fe == re)) bad = 1;
                f = fe + 1;
                if (c == t->ncol - 1 && fe != re) bad = 1;
            }
            if (bad) {
                t->skipped++;
                if (!t->first_bad) t->first_bad = line;
            } else {
                t->nrow++;
            }
        }
        row = re + 1;
    }
    free(data);
    return 0;
}

int csv_col(const CsvTable *t, const char *name) {
    for (int c = 0; c < t->ncol; c++)
        if (!strcmp(t->names[c], name)) return c;
    return -1;
}

double *csv_column(const CsvTable *t, int c) {
    double *out = xmalloc((size_t)(t->nrow > 0 ? t->nrow : 1) * sizeof *out);
    for (int r = 0; r < t->nrow; r++) out[r] = c >= 0 ? t->v[(size_t)r * t->ncol + c] : NAN;
    return out;
}

typedef struct KeyRow {
    double key;
    int row;
} KeyRow;

static int cmp_keyrow(const void *pa, const void *pb) {
    const KeyRow *a = pa, *b = pb;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    return (a->row > b->row) - (a->row < b->row);
}

void csv_dedupe_sorted(CsvTable *t, int c) {
    if (c < 0 || t->nrow < 2) return;
    KeyRow *k = xmalloc((size_t)t->nrow * sizeof *k);
    for (int r = 0; r < t->nrow; r++) k[r] = (KeyRow){t->v[(size_t)r * t->ncol + c], r};
    qsort(k, (size_t)t->nrow, sizeof *k, cmp_keyrow);
    double *v = xmalloc((size_t)t->nrow * t->ncol * sizeof *v);
    int m = 0;
    for (int r = 0; r < t->nrow; r++) {
        if (r + 1 < t->nrow && k[r + 1].key == k[r].key) continue; /* a later row has this key */
        memcpy(v + (size_t)m * t->ncol, t->v + (size_t)k[r].row * t->ncol, (size_t)t->ncol * sizeof *v);
        m++;
    }
    free(t->v);
    t->v = v;
    t->nrow = m;
    free(k);
}
