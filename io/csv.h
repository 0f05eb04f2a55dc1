/* csv: the run directory's numeric tables (metrics.csv, timing.csv,
 * ranks.csv, eval.csv): a header line of column names, then rows of
 * numbers. A row with the wrong number of fields or a field that is not a
 * number is skipped and counted (a run killed mid-write leaves a partial
 * last line); "nan", "inf" and empty fields read as NaN. */
#ifndef SIAMESE_CSV_H
#define SIAMESE_CSV_H

#include <stddef.h>

#include "../nn/util.h"

#define CSV_MAX_BYTES ((size_t)1 << 31)

typedef struct CsvTable {
    int ncol, nrow;
    char **names;  /* (ncol) */
    double *v;     /* (nrow, ncol) row-major */
    int skipped;   /* malformed rows left out */
    int first_bad; /* 1-based line of the first of them (0: none) */
} CsvTable;

/* Reads path. 0, or -1 with e naming the file (missing, over CSV_MAX_BYTES,
 * no header). Free with csv_free (also after a failure). */
int csv_read(CsvTable *t, const char *path, Err *e);
void csv_free(CsvTable *t);
/* Index of the column called name, or -1. */
int csv_col(const CsvTable *t, const char *name);
/* Column c as a new array of nrow doubles (caller frees); NaN if c < 0. */
double *csv_column(const CsvTable *t, int c);
/* Keeps, for each value of column c, only its last row, and sorts the rows
 * by that column (stable): a resumed run re-logs the steps after its
 * checkpoint. */
void csv_dedupe_sorted(CsvTable *t, int c);

#endif
