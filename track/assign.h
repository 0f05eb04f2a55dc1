/* assign: the Hungarian method for rectangular assignment problems with
 * forbidden pairs (shortest augmenting paths with row and column potentials,
 * O(n^2 m) for n <= m). Used frame by frame by the CLEAR MOT metrics and the
 * online tracker, and once per sequence by the identity metrics. */
#ifndef SIAMESE_ASSIGN_H
#define SIAMESE_ASSIGN_H

#include <math.h>

/* A cost that forbids a pair. */
#define ASSIGN_FORBIDDEN INFINITY

/* cost is (n, m) row-major; entries are finite or ASSIGN_FORBIDDEN. Finds
 * the assignment with the most allowed pairs and, among those, the least
 * total cost. row_to_col[i] is the column of row i or -1 (n entries). Returns
 * the number of pairs; *total (if not NULL) their summed cost. n or m may be
 * 0. Works on a private copy; cost is not changed. */
int assign_solve(int *row_to_col, const double *cost, int n, int m, double *total);

#endif
