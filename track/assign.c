/* assign: see assign.h. Forbidden pairs become one large finite cost, big
 * enough that a single forbidden pair outweighs any difference between two
 * totals of allowed pairs: the minimum then has the fewest forbidden pairs
 * (the most allowed ones) and, among those, the least allowed cost. */
#include "assign.h"

#include <stdlib.h>

#include "../nn/util.h"

/* Square-or-wide problem, n <= m, all costs finite: columns of the rows in
 * row_to_col. a is (n, m). Potentials u (rows) and v (columns); rows are
 * added one at a time and each finds its augmenting path by a Dijkstra-like
 * scan over reduced costs a - u - v >= 0. */
static void solve_wide(int *row_to_col, const double *a, int n, int m) {
    /* 1-based internally: column 0 is the virtual start of each search */
    double *u = xcalloc((size_t)n + 1, sizeof(double)), *v = xcalloc((size_t)m + 1, sizeof(double));
    double *minv = xmalloc(sizeof(double) * ((size_t)m + 1));
    int *p = xcalloc((size_t)m + 1, sizeof(int)); /* p[j]: row matched to column j (0: none) */
    int *way = xcalloc((size_t)m + 1, sizeof(int));
    char *used = xmalloc((size_t)m + 1);
    for (int i = 1; i <= n; i++) {
        p[0] = i;
        int j0 = 0;
        for (int j = 0; j <= m; j++) minv[j] = INFINITY, used[j] = 0;
        do {
            used[j0] = 1;
            int i0 = p[j0], j1 = 0;
            double delta = INFINITY;
            const double *row = a + (size_t)(i0 - 1) * m;
            for (int j = 1; j <= m; j++) {
                if (used[j]) continue;
                double cur = row[j - 1] - u[i0] - v[j];
                if (cur < minv[j]) minv[j] = cur, way[j] = j0;
                if (minv[j] < delta) delta = minv[j], j1 = j;
            }
            ASSERT(j1 > 0);
            for (int j = 0; j <= m; j++) {
                if (used[j])
                    u[p[j]] += delta, v[j] -= delta;
                else
                    minv[j] -= delta;
            }
            j0 = j1;
        } while (p[j0] != 0);
        do { /* flip the alternating path back to the start */
            int j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        } while (j0);
    }
    for (int i = 0; i < n; i++) row_to_col[i] = -1;
    for (int j = 1; j <= m; j++)
        if (p[j]) row_to_col[p[j] - 1] = j - 1;
    free(u);
    free(v);
    free(minv);
    free(p);
    free(way);
    free(used);
}

int assign_solve(int *row_to_col, const double *cost, int n, int m, double *total) {
    ASSERT(n >= 0 && m >= 0);
    for (int i = 0; i < n; i++) row_to_col[i] = -1;
    if (total) *total = 0;
    if (n == 0 || m == 0) return 0;
    int wide = n <= m, r = wide ? n : m, c = wide ? m : n;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t k = 0; k < (size_t)n * m; k++)
        if (cost[k] != ASSIGN_FORBIDDEN) {
            ASSERT(isfinite(cost[k]));
            lo = MIN(lo, cost[k]), hi = MAX(hi, cost[k]);
        }
    if (lo > hi) return 0; /* every pair forbidden */
    /* shifted costs lie in [0, hi - lo]; r of them sum to at most r (hi - lo) */
    double big = (hi - lo + 1) * (r + 1);
    double *a = xmalloc(sizeof(double) * (size_t)r * c);
    for (int i = 0; i < r; i++)
        for (int j = 0; j < c; j++) {
            double x = wide ? cost[(size_t)i * m + j] : cost[(size_t)j * m + i];
            a[(size_t)i * c + j] = x == ASSIGN_FORBIDDEN ? big : x - lo;
        }
    int *rc = xmalloc(sizeof(int) * (size_t)r);
    solve_wide(rc, a, r, c);
    int pairs = 0;
    double sum = 0;
    for (int i = 0; i < r; i++) {
        int row = wide ? i : rc[i], col = wide ? rc[i] : i;
        double x = cost[(size_t)row * m + col];
        if (x == ASSIGN_FORBIDDEN) continue;
        row_to_col[row] = col;
        pairs++;
        sum += x;
    }
    free(a);
    free(rc);
    if (total) *total = sum;
    return pairs;
}
