/* tsne: see tsne.h. The quadtree is rebuilt every step into one node array
 * that only grows; a leaf holds one point, or several (a list) at the depth
 * limit, where near-duplicates end up and are summed exactly. The
 * traversal reads a compact copy of the cells (QCell) and skips empty
 * ones. Each point's forces are its own sums, so chunks of points run on
 * any thread; Z is added up afterwards in the tree's order. */
#include "tsne.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/parallel.h"

void tsne_spec_default(TsneSpec *s) {
    *s = (TsneSpec){.perplexity = 30,
                    .iters = 1000,
                    .exag_iters = 250,
                    .exaggeration = 12,
                    .theta = 0.5,
                    .lr = 0,
                    .seed = 1};
}

void tsne_p_free(TsneP *P) {
    free(P->row);
    free(P->col);
    free(P->val);
    memset(P, 0, sizeof *P);
}

/* ---- input affinities ---------------------------------------------------- */

typedef struct Nbr {
    float d;
    int j;
} Nbr;

static int cmp_nbr(const void *pa, const void *pb) {
    const Nbr *a = pa, *b = pb;
    if (a->d != b->d) return a->d < b->d ? -1 : 1;
    return (a->j > b->j) - (a->j < b->j);
}

/* Moves the m smallest of a[0..n) to a[0..m), sorted (quickselect, then a
 * sort of the m). */
static void smallest_sorted(Nbr *a, int n, int m) {
    int lo = 0, hi = n - 1, k = m - 1;
    while (hi > lo) {
        Nbr pivot = a[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (cmp_nbr(&a[i], &pivot) < 0) i++;
            while (cmp_nbr(&a[j], &pivot) > 0) j--;
            if (i <= j) {
                Nbr t = a[i];
                a[i++] = a[j];
                a[j--] = t;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            break;
    }
    qsort(a, (size_t)m, sizeof *a, cmp_nbr);
}

/* p_{.|i} over k squared distances d (ascending): bisection on beta so that
 * the entropy is log(perplexity). Writes p (k), summing to 1. */
static void calibrate_row(double *p, const float *d, int k, double perplexity) {
    double target = log(perplexity), beta = 1.0, lo = 0.0, hi = INFINITY;
    for (int it = 0; it < 200; it++) {
        double sum = 0.0, dsum = 0.0;
        for (int j = 0; j < k; j++) {
            p[j] = exp(-beta * ((double)d[j] - d[0])); /* shifted: the nearest has weight 1 */
            sum += p[j];
            dsum += p[j] * ((double)d[j] - d[0]);
        }
        double H = log(sum) + beta * dsum / sum;
        for (int j = 0; j < k; j++) p[j] /= sum;
        if (fabs(H - target) < 1e-5) break;
        if (H > target) { /* too flat: sharpen */
            lo = beta;
            beta = isinf(hi) ? beta * 2.0 : 0.5 * (beta + hi);
        } else {
            hi = beta;
            beta = 0.5 * (beta + lo);
        }
    }
}

typedef struct Entry {
    int i, j;
    double v;
} Entry;

static int cmp_entry(const void *pa, const void *pb) {
    const Entry *a = pa, *b = pb;
    if (a->i != b->i) return a->i < b->i ? -1 : 1;
    return (a->j > b->j) - (a->j < b->j);
}

int tsne_affinities(TsneP *P, const float *X, int N, int D, double perplexity, Err *e) {
    memset(P, 0, sizeof *P);
    if (N < 4 || D < 1) return err_set(e, "t-SNE: %d points of dimension %d; need at least 4 and 1", N, D);
    for (size_t t = 0; t < (size_t)N * (size_t)D; t++)
        if (!isfinite(X[t])) return err_set(e, "t-SNE: point %zu is not finite", t / (size_t)D);
    int k = (int)MIN((double)(N - 1), floor(3.0 * perplexity));
    if (3.0 * perplexity > k) perplexity = fmax(k / 3.0, 1.0);
    float *sq = xmalloc((size_t)N * sizeof *sq);
    for (int i = 0; i < N; i++) {
        double s = 0.0;
        for (int d = 0; d < D; d++) s += (double)X[(size_t)i * D + d] * X[(size_t)i * D + d];
        sq[i] = (float)s;
    }
    int B = 256;
    float *G = xmalloc((size_t)B * N * sizeof *G), *dk = xmalloc((size_t)k * sizeof *dk);
    Nbr *nb = xmalloc((size_t)N * sizeof *nb);
    double *p = xmalloc((size_t)k * sizeof *p);
    Entry *ent = xmalloc(2 * (size_t)N * k * sizeof *ent);
    size_t ne = 0;
    for (int r0 = 0; r0 < N; r0 += B) {
        int nb_rows = MIN(B, N - r0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb_rows, N, D, 1.0f, X + (size_t)r0 * D, D, X, D,
                    0.0f, G, N);
        for (int b = 0; b < nb_rows; b++) {
            int i = r0 + b, n = 0;
            for (int j = 0; j < N; j++) {
                if (j == i) continue;
                float d2 = sq[i] + sq[j] - 2.0f * G[(size_t)b * N + j];
                nb[n++] = (Nbr){d2 > 0.0f ? d2 : 0.0f, j};
            }
            smallest_sorted(nb, n, k);
            for (int t = 0; t < k; t++) dk[t] = nb[t].d;
            calibrate_row(p, dk, k, perplexity);
            for (int t = 0; t < k; t++) {
                ent[ne++] = (Entry){i, nb[t].j, p[t]};
                ent[ne++] = (Entry){nb[t].j, i, p[t]};
            }
        }
    }
    /* Sum the two directions of each pair: sort by (i, j), merge. */
    qsort(ent, ne, sizeof *ent, cmp_entry);
    P->n = N;
    P->row = xcalloc((size_t)N + 1, sizeof *P->row);
    P->col = xmalloc(ne * sizeof *P->col);
    P->val = xmalloc(ne * sizeof *P->val);
    size_t nnz = 0;
    for (size_t t = 0; t < ne;) {
        size_t u = t;
        double v = 0.0;
        for (; u < ne && ent[u].i == ent[t].i && ent[u].j == ent[t].j; u++) v += ent[u].v;
        P->col[nnz] = ent[t].j;
        P->val[nnz] = v / (2.0 * N);
        P->row[ent[t].i + 1]++;
        nnz++;
        t = u;
    }
    for (int i = 0; i < N; i++) P->row[i + 1] += P->row[i];
    free(ent);
    free(p);
    free(nb);
    free(dk);
    free(G);
    free(sq);
    return 0;
}

/* ---- Barnes-Hut quadtree ------------------------------------------------- */

#define TSNE_MAX_DEPTH 40

typedef struct QNode {
    double cx, cy, half; /* the cell: centre and half side */
    double mx, my;       /* sum of the points' coordinates; after qt_centres, their mean */
    int count;
    int child; /* first of 4 children, or -1 for a leaf */
    int first; /* leaf: first point of its list, -1 if empty */
    int depth;
} QNode;

/* A cell as the traversal reads it (half the bytes of a QNode): centre of
 * mass, squared side, point count, first child (-1: leaf), list head. */
typedef struct QCell {
    double mx, my, side2;
    int count, child, first, pad;
} QCell;

typedef struct QTree {
    QNode *node;
    QCell *cell; /* (cap) filled by qt_centres */
    int n, cap;
    int *next;   /* (N) the list of points of a leaf */
    int *order;  /* (N) the points in depth-first order */
    double *rep; /* (N, 2) repulsion workspace */
    double *zk;  /* (N) each point's share of Z, in that order */
} QTree;

static void qt_init(QTree *t, int N) {
    memset(t, 0, sizeof *t);
    t->next = xmalloc((size_t)N * sizeof *t->next);
    t->order = xmalloc((size_t)N * sizeof *t->order);
    t->rep = xmalloc(2 * (size_t)N * sizeof *t->rep);
    t->zk = xmalloc((size_t)N * sizeof *t->zk);
}

static void qt_free(QTree *t) {
    free(t->node);
    free(t->cell);
    free(t->next);
    free(t->order);
    free(t->rep);
    free(t->zk);
}

static int qt_new(QTree *t, double cx, double cy, double half, int depth) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 1024;
        t->node = xrealloc(t->node, (size_t)t->cap * sizeof *t->node);
        t->cell = xrealloc(t->cell, (size_t)t->cap * sizeof *t->cell);
    }
    t->node[t->n] = (QNode){cx, cy, half, 0, 0, 0, -1, -1, depth};
    return t->n++;
}

static int quadrant(const QNode *q, double x, double y) { return (x >= q->cx) + 2 * (y >= q->cy); }

static void qt_build(QTree *t, const double *Y, int N) {
    double x0 = Y[0], x1 = Y[0], y0 = Y[1], y1 = Y[1];
    for (int i = 1; i < N; i++) {
        x0 = fmin(x0, Y[2 * i]), x1 = fmax(x1, Y[2 * i]);
        y0 = fmin(y0, Y[2 * i + 1]), y1 = fmax(y1, Y[2 * i + 1]);
    }
    double half = 0.5 * fmax(x1 - x0, y1 - y0) * (1.0 + 1e-9) + 1e-12;
    t->n = 0;
    qt_new(t, 0.5 * (x0 + x1), 0.5 * (y0 + y1), half, 0);
    for (int i = 0; i < N; i++) {
        double x = Y[2 * i], y = Y[2 * i + 1];
        int q = 0;
        for (;;) {
            QNode *nd = &t->node[q];
            nd->count++;
            nd->mx += x, nd->my += y;
            if (nd->child >= 0) {
                q = nd->child + quadrant(nd, x, y);
                continue;
            }
            if (nd->first < 0 || nd->depth >= TSNE_MAX_DEPTH) { /* empty leaf, or the depth limit: list it */
                t->next[i] = nd->first;
                nd->first = i;
                break;
            }
            /* A leaf with one point: split, move that point down, go on. */
            int old = nd->first, depth = nd->depth + 1;
            double h = 0.5 * nd->half, cx = nd->cx, cy = nd->cy;
            int c = qt_new(t, cx - h, cy - h, h, depth);
            qt_new(t, cx + h, cy - h, h, depth);
            qt_new(t, cx - h, cy + h, h, depth);
            qt_new(t, cx + h, cy + h, h, depth);
            nd = &t->node[q]; /* qt_new may have moved the array */
            nd->child = c;
            nd->first = -1;
            QNode *oc = &t->node[c + quadrant(nd, Y[2 * old], Y[2 * old + 1])];
            oc->count = 1;
            oc->mx = Y[2 * old], oc->my = Y[2 * old + 1];
            oc->first = old;
            t->next[old] = -1;
            q = c + quadrant(nd, x, y);
        }
    }
}

/* After the build: sums of coordinates become centres of mass, and the
 * cells the traversal reads are filled. */
static void qt_centres(QTree *t) {
    for (int q = 0; q < t->n; q++) {
        QNode *nd = &t->node[q];
        if (nd->count > 0) nd->mx /= nd->count, nd->my /= nd->count;
        double side = 2.0 * nd->half;
        t->cell[q] = (QCell){nd->mx, nd->my, side * side, nd->count, nd->child, nd->first, 0};
    }
}

/* Repulsion on point i: adds sum w (into *z) and sum w^2 (y_i - y_j) (into
 * f) over every other point, a cell summarised by its centre of mass when
 * its side is below theta times the distance to it (theta2 = theta^2).
 * Depth first with an explicit stack, children in quadrant order. */
static void qt_repulse(const QTree *t, const double *Y, int i, double theta2, double *z, double *f) {
    int stack[4 * (TSNE_MAX_DEPTH + 2)], sp = 0;
    double xi = Y[2 * i], yi = Y[2 * i + 1], zs = 0.0, fx = 0.0, fy = 0.0;
    stack[sp++] = 0;
    const QCell *cell = t->cell;
    while (sp > 0) {
        const QCell *nd = &cell[stack[--sp]];
        if (nd->child < 0) {
            for (int j = nd->first; j >= 0; j = t->next[j]) {
                if (j == i) continue;
                double dx = xi - Y[2 * j], dy = yi - Y[2 * j + 1];
                double w = 1.0 / (1.0 + dx * dx + dy * dy);
                zs += w;
                fx += w * w * dx, fy += w * w * dy;
            }
            continue;
        }
        double dx = xi - nd->mx, dy = yi - nd->my, d2 = dx * dx + dy * dy;
        if (nd->side2 < theta2 * d2) {
            double w = 1.0 / (1.0 + d2), cw = nd->count * w;
            zs += cw;
            fx += cw * w * dx, fy += cw * w * dy;
            continue;
        }
        for (int c = nd->child + 3; c >= nd->child; c--) /* empty cells add nothing: not visited */
            if (cell[c].count) stack[sp++] = c;
    }
    *z += zs;
    f[0] += fx, f[1] += fy;
}

/* The points in the tree's depth-first order (neighbours in the map come
 * one after another, and so do the cells their traversals visit). */
static void qt_order(const QTree *t, int *order) {
    int stack[4 * (TSNE_MAX_DEPTH + 2)], sp = 0, n = 0;
    stack[sp++] = 0;
    while (sp > 0) {
        const QNode *nd = &t->node[stack[--sp]];
        if (nd->child < 0) {
            for (int j = nd->first; j >= 0; j = t->next[j]) order[n++] = j;
            continue;
        }
        for (int c = 3; c >= 0; c--) stack[sp++] = nd->child + c;
    }
}

/* Points per chunk of the parallel loops (the chunks depend on N only). */
#define TSNE_GRAIN 256

/* Attractive part of points [lo, hi), and (want_kl) the sum p log(p / w)
 * of the true P over their rows, in row order. */
static double attract_rows(double *grad, const TsneP *P, const double *Y, int lo, int hi, double exag,
                           int want_kl) {
    double plogpw = 0.0;
    for (int i = lo; i < hi; i++) {
        double fx = 0.0, fy = 0.0;
        for (int t = P->row[i]; t < P->row[i + 1]; t++) {
            int j = P->col[t];
            double dx = Y[2 * i] - Y[2 * j], dy = Y[2 * i + 1] - Y[2 * j + 1];
            double w = 1.0 / (1.0 + dx * dx + dy * dy), p = P->val[t];
            fx += p * w * dx, fy += p * w * dy;
            if (want_kl && p > 0) plogpw += p * log(p / w);
        }
        grad[2 * i] = 4.0 * exag * fx;
        grad[2 * i + 1] = 4.0 * exag * fy;
    }
    return plogpw;
}

typedef struct StepCtx {
    double *grad;
    const TsneP *P;
    const double *Y;
    double exag, theta;
    const QTree *t;
} StepCtx;

static void attract_range(void *ctx, size_t lo, size_t hi) {
    const StepCtx *c = ctx;
    attract_rows(c->grad, c->P, c->Y, (int)lo, (int)hi, c->exag, 0);
}

/* Repulsion on the points order[lo..hi): t->rep and t->zk. */
static void repulse_range(void *ctx, size_t lo, size_t hi) {
    const StepCtx *c = ctx;
    const QTree *t = c->t;
    const double *Y = c->Y;
    int N = c->P->n;
    for (size_t k = lo; k < hi; k++) {
        int i = t->order[k];
        double z = 0.0, f[2] = {0.0, 0.0};
        if (c->theta > 0) {
            qt_repulse(t, Y, i, c->theta * c->theta, &z, f);
        } else {
            for (int j = 0; j < N; j++) {
                if (j == i) continue;
                double dx = Y[2 * i] - Y[2 * j], dy = Y[2 * i + 1] - Y[2 * j + 1];
                double w = 1.0 / (1.0 + dx * dx + dy * dy);
                z += w;
                f[0] += w * w * dx, f[1] += w * w * dy;
            }
        }
        t->zk[k] = z;
        t->rep[2 * i] = f[0], t->rep[2 * i + 1] = f[1];
    }
}

/* The gradient into grad; returns KL(P || Q) when want_kl, else 0. */
static double gradient_tree(double *grad, const TsneP *P, const double *Y, int N, double theta, double exag,
                            QTree *t, int want_kl) {
    StepCtx c = {grad, P, Y, exag, theta, t};
    double plogpw = 0.0;
    if (want_kl) /* one running sum over every row, as defined */
        plogpw = attract_rows(grad, P, Y, 0, N, exag, 1);
    else
        parallel_for((size_t)N, TSNE_GRAIN, attract_range, &c);
    qt_build(t, Y, N);
    qt_centres(t);
    qt_order(t, t->order);
    parallel_for((size_t)N, TSNE_GRAIN, repulse_range, &c);
    double *rep = t->rep, Z = 0.0;
    for (int k = 0; k < N; k++) Z += t->zk[k]; /* in the tree's order, whatever the threads */
    for (int i = 0; i < 2 * N; i++) grad[i] -= 4.0 * rep[i] / Z;
    /* KL = sum p log(p / (w / Z)) = sum p log(p / w) + log Z (sum p = 1). */
    return want_kl ? plogpw + log(Z) : 0.0;
}

double tsne_gradient(double *grad, const TsneP *P, const double *Y, int N, double theta, double exag) {
    QTree t;
    qt_init(&t, N);
    double kl = gradient_tree(grad, P, Y, N, theta, exag, &t, 1);
    qt_free(&t);
    return kl;
}

double tsne_kl_exact(const TsneP *P, const double *Y, int N) {
    double Z = 0.0, kl = 0.0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            if (i == j) continue;
            double dx = Y[2 * i] - Y[2 * j], dy = Y[2 * i + 1] - Y[2 * j + 1];
            Z += 1.0 / (1.0 + dx * dx + dy * dy);
        }
    for (int i = 0; i < N; i++)
        for (int t = P->row[i]; t < P->row[i + 1]; t++) {
            int j = P->col[t];
            double dx = Y[2 * i] - Y[2 * j], dy = Y[2 * i + 1] - Y[2 * j + 1];
            double q = 1.0 / (1.0 + dx * dx + dy * dy) / Z, p = P->val[t];
            if (p > 0) kl += p * log(p / q);
        }
    return kl;
}

/* ---- optimisation ---------------------------------------------------------- */

int tsne_run(float *Yout, double *kl, const float *X, int N, int D, const TsneSpec *s, Err *e) {
    TsneP P;
    if (tsne_affinities(&P, X, N, D, s->perplexity, e)) return -1;
    double *Y = xmalloc(2 * (size_t)N * sizeof *Y), *grad = xmalloc(2 * (size_t)N * sizeof *grad);
    double *upd = xcalloc(2 * (size_t)N, sizeof *upd), *gain = xmalloc(2 * (size_t)N * sizeof *gain);
    Rng r;
    rng_seed(&r, s->seed, RNG_REPORT, 1);
    for (int i = 0; i < 2 * N; i++) Y[i] = 1e-4 * rng_normal(&r), gain[i] = 1.0;
    double lr = s->lr > 0 ? s->lr : fmax(N / s->exaggeration, 50.0);
    QTree t;
    qt_init(&t, N);
    int nk = 0;
    for (int it = 0; it <= s->iters; it++) {
        if (it == s->iters && !kl) break;
        int exag = it < s->exag_iters, want = kl && (it % 50 == 0 || it == s->iters);
        double cur = gradient_tree(grad, &P, Y, N, s->theta, exag ? s->exaggeration : 1.0, &t, want);
        if (want) kl[nk++] = cur;
        if (it == s->iters) break;
        double mom = exag ? 0.5 : 0.8;
        for (int k = 0; k < 2 * N; k++) {
            /* gains grow where the gradient changes sign against the step */
            gain[k] = (grad[k] > 0) != (upd[k] > 0) ? gain[k] + 0.2 : gain[k] * 0.8;
            if (gain[k] < 0.01) gain[k] = 0.01;
            upd[k] = mom * upd[k] - lr * gain[k] * grad[k];
            Y[k] += upd[k];
        }
        double mx = 0.0, my = 0.0;
        for (int i = 0; i < N; i++) mx += Y[2 * i], my += Y[2 * i + 1];
        mx /= N, my /= N;
        for (int i = 0; i < N; i++) Y[2 * i] -= mx, Y[2 * i + 1] -= my;
    }
    for (int k = 0; k < 2 * N; k++) Yout[k] = (float)Y[k];
    qt_free(&t);
    free(Y);
    free(grad);
    free(upd);
    free(gain);
    tsne_p_free(&P);
    return 0;
}
