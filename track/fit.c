/* fit: see fit.h. Newton's method on the regularised log-loss: the Hessian
 * X^T diag(p (1 - p)) X / n + l2 I is positive definite, solved by Cholesky;
 * at most 50 iterations, stopping when the step is below 1e-10. */
#include "fit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../mining/metrics.h"
#include "assign.h"

/* Solves A x = b in place (A (d, d) symmetric positive definite, destroyed;
 * b becomes x). Fatal when A is not positive definite. */
static void cholesky_solve(double *A, double *b, int d) {
    for (int j = 0; j < d; j++) {
        double s = A[j * d + j];
        for (int k = 0; k < j; k++) s -= A[j * d + k] * A[j * d + k];
        if (!(s > 0)) FATAL("logistic regression: Hessian not positive definite");
        A[j * d + j] = sqrt(s);
        for (int i = j + 1; i < d; i++) {
            double t = A[i * d + j];
            for (int k = 0; k < j; k++) t -= A[i * d + k] * A[j * d + k];
            A[i * d + j] = t / A[j * d + j];
        }
    }
    for (int i = 0; i < d; i++) { /* L y = b */
        for (int k = 0; k < i; k++) b[i] -= A[i * d + k] * b[k];
        b[i] /= A[i * d + i];
    }
    for (int i = d - 1; i >= 0; i--) { /* L^T x = y */
        for (int k = i + 1; k < d; k++) b[i] -= A[k * d + i] * b[k];
        b[i] /= A[i * d + i];
    }
}

static double sigmoid(double z) { return z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z)); }

int logreg_fit(double *w, const double *X, const double *y, int n, int d, double l2) {
    ASSERT(n > 0 && d > 0);
    double *H = xmalloc(sizeof(double) * (size_t)d * d), *g = xmalloc(sizeof(double) * (size_t)d);
    memset(w, 0, sizeof(double) * (size_t)d);
    int it;
    for (it = 1; it <= 50; it++) {
        for (int a = 0; a < d; a++) {
            g[a] = l2 * w[a];
            for (int b = 0; b < d; b++) H[a * d + b] = a == b ? l2 : 0;
        }
        for (int i = 0; i < n; i++) {
            const double *x = X + (size_t)i * d;
            double z = 0;
            for (int a = 0; a < d; a++) z += w[a] * x[a];
            double p = sigmoid(z), r = (p - y[i]) / n, q = p * (1 - p) / n;
            for (int a = 0; a < d; a++) {
                g[a] += r * x[a];
                for (int b = 0; b <= a; b++) H[a * d + b] += q * x[a] * x[b];
            }
        }
        for (int a = 0; a < d; a++)
            for (int b = a + 1; b < d; b++) H[a * d + b] = H[b * d + a];
        cholesky_solve(H, g, d);
        double step = 0;
        for (int a = 0; a < d; a++) w[a] -= g[a], step = MAX(step, fabs(g[a]));
        if (step < 1e-10) break;
    }
    free(H);
    free(g);
    return MIN(it, 50);
}

/* ---- samples -------------------------------------------------------------------- */

/* gt id of every detection (-1: none), matched per frame at IoU >= 0.5. */
static void match_detections(int *gid, const MotBoxes *det, const MotBoxes *gt) {
    for (size_t i = 0; i < det->n; i++) gid[i] = -1;
    for (int32_t f = 1; f <= det->frames && f <= gt->frames; f++) {
        size_t d0 = det->first[f], g0 = gt->first[f];
        int nd = (int)(det->first[f + 1] - d0), ng = (int)(gt->first[f + 1] - g0);
        if (!nd || !ng) continue;
        double *c = xmalloc(sizeof(double) * (size_t)nd * ng);
        int *m = xmalloc(sizeof(int) * (size_t)nd);
        for (int i = 0; i < nd; i++)
            for (int j = 0; j < ng; j++) {
                double iou = mot_iou(&det->box[d0 + i], &gt->box[g0 + j]);
                c[i * ng + j] = iou >= 0.5 ? -iou : ASSIGN_FORBIDDEN;
            }
        assign_solve(m, c, nd, ng, NULL);
        for (int i = 0; i < nd; i++)
            if (m[i] >= 0) gid[d0 + i] = gt->box[g0 + m[i]].id;
        free(c);
        free(m);
    }
}

static void push_link(FitSamples *s, const double *phi, double y, int seq) {
    if (s->n == s->cap) {
        s->cap = MAX(4096, 2 * s->cap);
        s->phi = xrealloc(s->phi, sizeof(double) * TRACK_NFEAT * (size_t)s->cap);
        s->y = xrealloc(s->y, sizeof(double) * (size_t)s->cap);
        s->seq = xrealloc(s->seq, sizeof(int) * (size_t)s->cap);
    }
    memcpy(s->phi + (size_t)s->n * TRACK_NFEAT, phi, sizeof(double) * TRACK_NFEAT);
    s->y[s->n] = y;
    s->seq[s->n++] = seq;
}

int fit_add_sequence(FitSamples *s, int seq, const MotBoxes *det, const MotBoxes *gt, const Appearance *app,
                     const LinkModel *first, const TrackOptions *o, Err *e) {
    int *gid = xmalloc(sizeof(int) * (det->n + 1));
    match_detections(gid, det, gt);
    for (size_t i = 0; i < det->n; i++) {
        if (s->nd == s->dcap) {
            s->dcap = MAX(4096, 2 * s->dcap);
            s->det_score = xrealloc(s->det_score, sizeof(double) * (size_t)s->dcap);
            s->det_y = xrealloc(s->det_y, sizeof(double) * (size_t)s->dcap);
            s->det_seq = xrealloc(s->det_seq, sizeof(int) * (size_t)s->dcap);
        }
        s->det_score[s->nd] = det->box[i].score;
        s->det_y[s->nd] = gid[i] >= 0;
        s->det_seq[s->nd++] = seq;
    }
    int *pa, *pb, np;
    track_candidates(det, o, &pa, &pb, &np);
    double *score = xcalloc((size_t)np + 1, sizeof(double)), *vx = xcalloc((size_t)np + 1, sizeof(double)),
           *vy = xcalloc((size_t)np + 1, sizeof(double));
    int rc = !app || !np ? 0
             : first     ? track_link_scores(score, vx, vy, np, det, first, app, o, e)
                         : app->score(app->ctx, pa, pb, np, score, e);
    for (int k = 0; k < np && !rc; k++) {
        const MotBox *a = &det->box[pa[k]], *b = &det->box[pb[k]];
        if (gid[pa[k]] < 0 && gid[pb[k]] < 0) continue; /* two false positives: nothing to learn */
        double phi[TRACK_NFEAT];
        track_features(phi, a, vx[k], vy[k], b, b->frame - a->frame, score[k]);
        push_link(s, phi, gid[pa[k]] >= 0 && gid[pa[k]] == gid[pb[k]], seq);
    }
    free(pa);
    free(pb);
    free(score);
    free(vx);
    free(vy);
    free(gid);
    return rc;
}

void fit_samples_free(FitSamples *s) {
    free(s->phi);
    free(s->y);
    free(s->seq);
    free(s->det_score);
    free(s->det_y);
    free(s->det_seq);
    memset(s, 0, sizeof *s);
}

double fit_positive_fraction(const FitSamples *s) {
    double p = 0;
    for (int i = 0; i < s->n; i++) p += s->y[i];
    return s->n ? p / s->n : 0;
}

/* ---- fitting and checking --------------------------------------------------------- */

void fit_link_model(LinkModel *m, const FitSamples *s, const int *use, int hold_out) {
    int cols[TRACK_NFEAT], d = 1;
    for (int k = 0; k < TRACK_NFEAT; k++)
        if (use[k]) cols[d - 1] = k, d++;
    double *X = xmalloc(sizeof(double) * (size_t)d * ((size_t)s->n + 1)),
           *y = xmalloc(sizeof(double) * ((size_t)s->n + 1));
    int n = 0;
    for (int i = 0; i < s->n; i++) {
        if (s->seq[i] == hold_out) continue;
        X[(size_t)n * d] = 1;
        for (int c = 1; c < d; c++) X[(size_t)n * d + c] = s->phi[(size_t)i * TRACK_NFEAT + cols[c - 1]];
        y[n++] = s->y[i];
    }
    double w[TRACK_NFEAT + 1];
    memset(m, 0, sizeof *m);
    if (n) logreg_fit(w, X, y, n, d, 1e-4);
    m->b = n ? w[0] : 0;
    for (int c = 1; c < d && n; c++) m->w[cols[c - 1]] = w[c];
    m->appearance = use[0];
    /* detection model: score -> matched */
    n = 0;
    for (int i = 0; i < s->nd; i++) {
        if (s->det_seq[i] == hold_out) continue;
        X[(size_t)n * 2] = 1, X[(size_t)n * 2 + 1] = s->det_score[i];
        y[n++] = s->det_y[i];
    }
    double dw[2] = {0, 0};
    if (n) logreg_fit(dw, X, y, n, 2, 1e-4);
    m->det_b = dw[0], m->det_w = dw[1];
    free(X);
    free(y);
}

FitQuality fit_quality(const LinkModel *m, const FitSamples *s, int seq) {
    FitQuality q = {0};
    double *score = xmalloc(sizeof(double) * ((size_t)s->n + 1));
    uint8_t *same = xmalloc((size_t)s->n + 1);
    int n = 0, right = 0;
    double loss = 0;
    for (int i = 0; i < s->n; i++) {
        if (seq >= 0 && s->seq[i] != seq) continue;
        double z = link_logit(m, s->phi + (size_t)i * TRACK_NFEAT), p = sigmoid(z);
        p = MIN(MAX(p, 1e-12), 1 - 1e-12);
        loss -= s->y[i] > 0.5 ? log(p) : log(1 - p);
        right += (p >= 0.5) == (s->y[i] > 0.5);
        score[n] = z;
        same[n++] = s->y[i] > 0.5;
    }
    q.n = n;
    if (n) {
        q.logloss = loss / n;
        q.accuracy = (double)right / n;
        q.auc = metrics_roc_auc(score, same, n);
    }
    free(score);
    free(same);
    return q;
}
