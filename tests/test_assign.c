/* test_assign: the exact solvers of the trackers against brute force. The
 * Hungarian method on random matrices 1x1 .. 9x9, square and rectangular,
 * with forbidden pairs and tied integer costs (every injection enumerated);
 * min-cost flow on random small graphs (every integer flow enumerated, for
 * each flow amount and for the best amount, DAG in node order and permuted);
 * the tracking network on random detection sets (every choice of successor
 * enumerated), and two instances worked out by hand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/util.h"
#include "../track/assign.h"
#include "../track/flow.h"
#include "test.h"

/* ---- Hungarian ------------------------------------------------------------- */

typedef struct Brute {
    const double *cost;
    int n, m;
    int best_pairs;
    double best_cost;
    int *col_used;
} Brute;

/* Rows i.. get distinct columns (n <= m); a forbidden pair counts as no pair. */
static void brute_rows(Brute *b, int i, int pairs, double sum) {
    if (i == b->n) {
        if (pairs > b->best_pairs || (pairs == b->best_pairs && sum < b->best_cost))
            b->best_pairs = pairs, b->best_cost = sum;
        return;
    }
    for (int j = 0; j < b->m; j++) {
        if (b->col_used[j]) continue;
        b->col_used[j] = 1;
        double c = b->cost[i * b->m + j];
        if (c == ASSIGN_FORBIDDEN)
            brute_rows(b, i + 1, pairs, sum);
        else
            brute_rows(b, i + 1, pairs + 1, sum + c);
        b->col_used[j] = 0;
    }
}

/* Brute force on the orientation with rows <= columns. */
static void brute_assign(const double *cost, int n, int m, int *pairs, double *best) {
    double *t = xmalloc(sizeof(double) * (size_t)(n * m + 1));
    int r = n, c = m;
    if (n > m) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < m; j++) t[j * n + i] = cost[i * m + j];
        r = m, c = n;
    } else {
        memcpy(t, cost, sizeof(double) * (size_t)(n * m));
    }
    int used[16] = {0};
    Brute b = {.cost = t, .n = r, .m = c, .best_pairs = -1, .best_cost = 0, .col_used = used};
    brute_rows(&b, 0, 0, 0);
    *pairs = b.best_pairs;
    *best = b.best_cost;
    free(t);
}

static void test_hungarian_brute(void) {
    Rng r;
    rng_seed(&r, 2024, RNG_TEST, 1);
    int fails = 0, checked = 0;
    for (int trial = 0; trial < 400; trial++) {
        int n = 1 + (int)rng_below(&r, 9), m = 1 + (int)rng_below(&r, 9);
        if (trial % 50 == 0) n = m = 9;                 /* 9x9, the largest the brute force takes quickly */
        double forbid = (double)rng_below(&r, 4) / 6.0; /* 0 .. 50 % forbidden */
        int ints = trial % 2;                           /* integer costs: many ties */
        double cost[81];
        for (int k = 0; k < n * m; k++) {
            if (rng_uniform_d(&r) < forbid)
                cost[k] = ASSIGN_FORBIDDEN;
            else
                cost[k] = ints ? (double)rng_below(&r, 5) - 2 : rng_uniform_d(&r) * 10 - 3;
        }
        int rc[9], bp;
        double total, bc;
        int pairs = assign_solve(rc, cost, n, m, &total);
        brute_assign(cost, n, m, &bp, &bc);
        /* the assignment is valid and its cost is what was reported */
        int cols[9] = {0}, valid = 1, count = 0;
        double sum = 0;
        for (int i = 0; i < n; i++) {
            if (rc[i] < 0) continue;
            valid &= rc[i] < m && !cols[rc[i]] && cost[i * m + rc[i]] != ASSIGN_FORBIDDEN;
            if (rc[i] < m) cols[rc[i]]++, sum += cost[i * m + rc[i]];
            count++;
        }
        checked++;
        if (!valid || count != pairs || fabs(sum - total) > 1e-9 || pairs != bp || fabs(total - bc) > 1e-9) {
            if (fails++ < 5)
                fprintf(stderr,
                        "trial %d (%dx%d): %d pairs cost %.9g, brute force %d pairs cost %.9g, valid %d\n",
                        trial, n, m, pairs, total, bp, bc, valid);
        }
    }
    CHECK(fails == 0, "Hungarian = brute force on %d random matrices (%d differ)", checked, fails);
}

static void test_hungarian_hand(void) {
    /* 3x3: the greedy choice (row 0 -> col 0, cost 1) forces 9 + 9; the
     * optimum is 2 + 2 + 3 = 7 (0->1, 1->0, 2->2). */
    double c[9] = {1, 2, 9, 2, 9, 9, 9, 3, 3};
    int rc[3];
    double t;
    CHECK(assign_solve(rc, c, 3, 3, &t) == 3 && rc[0] == 1 && rc[1] == 0 && rc[2] == 2 && t == 7,
          "3x3 by hand: %d %d %d cost %g", rc[0], rc[1], rc[2], t);
    /* forbidden pairs: more pairs beat a lower cost. Row 0 may take col 0
     * (cost 0) or col 1 (cost 100); row 1 only col 0: two pairs, 100 + 5. */
    double f[4] = {0, 100, 5, ASSIGN_FORBIDDEN};
    CHECK(assign_solve(rc, f, 2, 2, &t) == 2 && rc[0] == 1 && rc[1] == 0 && t == 105,
          "forbidden: cardinality first: %d %d %g", rc[0], rc[1], t);
    double all[2] = {ASSIGN_FORBIDDEN, ASSIGN_FORBIDDEN};
    CHECK(assign_solve(rc, all, 1, 2, &t) == 0 && rc[0] == -1 && t == 0, "all forbidden");
    CHECK(assign_solve(rc, NULL, 0, 4, &t) == 0, "no rows");
    /* 3 rows, 1 column: the cheapest row gets it */
    double tall[3] = {4, 1, 3};
    CHECK(assign_solve(rc, tall, 3, 1, &t) == 1 && rc[0] == -1 && rc[1] == 0 && rc[2] == -1 && t == 1, "3x1");
}

/* ---- min-cost flow ------------------------------------------------------------ */

enum { GV = 6, GE = 11 };

typedef struct Graph {
    int u[GE], v[GE], cap[GE];
    double cost[GE];
    int ne;
} Graph;

/* best[k]: least cost of a flow of value k from 0 to GV - 1 (INFINITY: none). */
static void brute_flow(const Graph *g, double *best) {
    for (int k = 0; k <= 2 * GE; k++) best[k] = INFINITY;
    int x[GE] = {0};
    for (;;) {
        int bal[GV] = {0};
        double c = 0;
        for (int i = 0; i < g->ne; i++) bal[g->u[i]] -= x[i], bal[g->v[i]] += x[i], c += x[i] * g->cost[i];
        int ok = 1;
        for (int v = 1; v < GV - 1; v++) ok &= bal[v] == 0;
        if (ok && bal[GV - 1] >= 0 && c < best[bal[GV - 1]]) best[bal[GV - 1]] = c;
        int i = 0;
        while (i < g->ne && x[i] == g->cap[i]) x[i++] = 0;
        if (i == g->ne) break;
        x[i]++;
    }
}

static double solve_graph(const Graph *g, int max_flow, int stop, int *sent) {
    Flow f;
    flow_init(&f, GV);
    for (int i = 0; i < g->ne; i++) flow_add_edge(&f, g->u[i], g->v[i], g->cap[i], g->cost[i]);
    double c;
    *sent = flow_min_cost(&f, 0, GV - 1, max_flow, stop, &c);
    flow_free(&f);
    return c;
}

static void test_flow_brute(void) {
    Rng r;
    rng_seed(&r, 77, RNG_TEST, 2);
    int fails = 0, graphs = 0;
    for (int trial = 0; trial < 300; trial++) {
        /* a DAG over a random order of the nodes (source first, sink last in
         * the order); the odd trials keep node order (one-pass potentials),
         * the even ones number the middle nodes at random (Bellman-Ford) */
        int order[GV];
        for (int i = 0; i < GV; i++) order[i] = i;
        if (trial % 2 == 0)
            for (int i = GV - 2; i > 1; i--) {
                int j = 1 + (int)rng_below(&r, (uint64_t)i);
                int t = order[i];
                order[i] = order[j], order[j] = t;
            }
        Graph g = {.ne = 7 + (int)rng_below(&r, GE - 6)};
        for (int i = 0; i < g.ne; i++) {
            int a = (int)rng_below(&r, GV - 1), b = a + 1 + (int)rng_below(&r, (uint64_t)(GV - 1 - a));
            g.u[i] = order[a], g.v[i] = order[b];
            g.cap[i] = 1 + (int)(rng_below(&r, 4) == 0);
            g.cost[i] = trial % 3 == 0 ? (double)rng_below(&r, 7) - 3 : rng_uniform_d(&r) * 8 - 4;
        }
        double best[2 * GE + 1];
        brute_flow(&g, best);
        double overall = 0; /* the empty flow costs 0 */
        int maxf = 0;
        for (int k = 0; k <= 2 * GE; k++) {
            if (best[k] == INFINITY) continue;
            maxf = k;
            if (best[k] < overall) overall = best[k];
        }
        graphs++;
        int bad = 0, sent;
        for (int k = 1; k <= maxf + 1; k++) {
            double c = solve_graph(&g, k, 0, &sent);
            int want = MIN(k, maxf);
            if (sent != want || fabs(c - best[want]) > 1e-9) bad = 1;
        }
        double c = solve_graph(&g, 1000, 1, &sent);
        if (fabs(c - overall) > 1e-9) bad = 1;
        if (bad && fails++ < 5)
            fprintf(stderr, "flow trial %d: best over amounts %.9g, got %.9g\n", trial, overall, c);
    }
    CHECK(fails == 0, "min-cost flow = brute force on %d random graphs, every flow amount (%d differ)",
          graphs, fails);
}

/* ---- the tracking network ------------------------------------------------------- */

typedef struct TrackInst {
    int n, frame[8];
    double det[8], entry[8], exit_[8];
    FlowLink links[40];
    int nlinks;
} TrackInst;

typedef struct TrackBrute {
    const TrackInst *t;
    int choice[8]; /* -2 unused, -1 last in its track, else the link index taken */
    int has_pred[8];
    double best;
} TrackBrute;

/* Detections in time order; detection i decides whether it is used and what
 * follows it. A detection that is used must be a predecessor's choice or a
 * track start; one that some earlier detection chose must be used. */
static void track_brute(TrackBrute *b, int i, double sum) {
    const TrackInst *t = b->t;
    if (i == t->n) {
        if (sum < b->best) b->best = sum;
        return;
    }
    for (int opt = -2; opt < t->nlinks; opt++) {
        if (opt >= 0 && t->links[opt].from != i) continue;
        if (opt == -2 && b->has_pred[i]) continue; /* chosen by a predecessor: must be used */
        if (opt >= 0 && b->has_pred[t->links[opt].to]) continue;
        double s = sum;
        if (opt != -2) {
            s += t->det[i] + (b->has_pred[i] ? 0 : t->entry[i]);
            s += opt == -1 ? t->exit_[i] : t->links[opt].cost;
        }
        if (opt >= 0) b->has_pred[t->links[opt].to] = 1;
        track_brute(b, i + 1, s);
        if (opt >= 0) b->has_pred[t->links[opt].to] = 0;
    }
}

static void test_tracks_brute(void) {
    Rng r;
    rng_seed(&r, 5, RNG_TEST, 3);
    int fails = 0;
    for (int trial = 0; trial < 300; trial++) {
        TrackInst t = {0};
        int frames = 3 + (int)rng_below(&r, 2);
        for (int f = 0; f < frames && t.n < 8; f++) {
            int k = 1 + (int)rng_below(&r, 3);
            for (int j = 0; j < k && t.n < 8; j++) t.frame[t.n++] = f;
        }
        for (int i = 0; i < t.n; i++) {
            t.det[i] = rng_uniform_d(&r) * 3 - 2;
            t.entry[i] = rng_uniform_d(&r) * 2;
            t.exit_[i] = rng_uniform_d(&r) * 2;
            for (int j = i + 1; j < t.n; j++) {
                int gap = t.frame[j] - t.frame[i];
                if (gap >= 1 && gap <= 2 && rng_below(&r, 4) != 0)
                    t.links[t.nlinks++] = (FlowLink){i, j, rng_uniform_d(&r) * 5 - 3};
            }
        }
        TrackBrute b = {.t = &t, .best = 0};
        track_brute(&b, 0, 0);
        int next[8];
        char used[8];
        double c = flow_tracks(next, used, t.n, t.det, t.entry, t.exit_, t.links, t.nlinks);
        /* recompute the cost of what flow_tracks returned */
        double re = 0;
        int preds[8] = {0}, consistent = 1;
        for (int i = 0; i < t.n; i++)
            if (next[i] >= 0) preds[next[i]]++, consistent &= used[i] && used[next[i]];
        for (int i = 0; i < t.n; i++) {
            if (!used[i]) continue;
            consistent &= preds[i] <= 1;
            re += t.det[i] + (preds[i] ? 0 : t.entry[i]);
            if (next[i] < 0) re += t.exit_[i];
            for (int k = 0; k < t.nlinks; k++)
                if (t.links[k].from == i && t.links[k].to == next[i]) re += t.links[k].cost;
        }
        if (!consistent || fabs(re - c) > 1e-9 || fabs(c - b.best) > 1e-9) {
            if (fails++ < 5)
                fprintf(stderr, "tracks trial %d: flow %.9g (recomputed %.9g, consistent %d), brute %.9g\n",
                        trial, c, re, consistent, b.best);
        }
    }
    CHECK(fails == 0, "tracking network = brute force on 300 random instances (%d differ)", fails);
}

static void test_tracks_hand(void) {
    /* Two frames, two detections each: 0, 1 in frame 1; 2, 3 in frame 2.
     * Entry and exit 1 each, detections -2 each. Links 0->2 (-1), 0->3 (0),
     * 1->2 (-0.5), 1->3 (3). One track 0->2 and 1 alone, 3 alone: tracks
     * cost (1 - 2 - 1 - 2 + 1) + (1 - 2 + 1) + (1 - 2 + 1) = -3; tracks
     * 0->3 and 1->2 cost (1 - 2 + 0 - 2 + 1) + (1 - 2 - 0.5 - 2 + 1) = -4.5:
     * the optimum. */
    double det[4] = {-2, -2, -2, -2}, en[4] = {1, 1, 1, 1}, ex[4] = {1, 1, 1, 1};
    FlowLink l[4] = {{0, 2, -1}, {0, 3, 0}, {1, 2, -0.5}, {1, 3, 3}};
    int next[4];
    char used[4];
    double c = flow_tracks(next, used, 4, det, en, ex, l, 4);
    CHECK(c == -4.5 && next[0] == 3 && next[1] == 2 && next[2] == -1 && next[3] == -1,
          "hand instance: cost %g, next %d %d", c, next[0], next[1]);
    /* a false positive: detection 1 costs +1, so it is left out */
    det[1] = 1;
    FlowLink l2[1] = {{0, 2, -1}};
    c = flow_tracks(next, used, 4, det, en, ex, l2, 1);
    /* 0->2: 1 - 2 - 1 - 2 + 1 = -3; 3 alone: 1 - 2 + 1 = 0 (not worth it, not
     * harmful: either way the cost is -3); 1 alone: +3, never. */
    CHECK(c == -3 && next[0] == 2 && !used[1], "false positive left out: cost %g used[1] %d", c, used[1]);
}

int main(void) {
    test_hungarian_hand();
    test_hungarian_brute();
    test_flow_brute();
    test_tracks_brute();
    test_tracks_hand();
    return test_finish();
}
