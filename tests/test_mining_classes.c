/* Tests of mining/classes (the hard-class pool of [mining] pool = classes):
 * the fixed-point exponent and sums; the nearest classes on a hand-made
 * batch with tied centroids (ties go to the lower label); the loss and
 * gradient of every triplet miner against a naive reference in double that
 * mines each anchor by brute force over its own class and its m nearest
 * classes (centroids in double); anchors split in two pieces inside a class
 * adding up to one call; and m = P - 1 against exact global mining (to
 * float rounding: the pools are the same rows, the sums grouped by class). */
#include <stdlib.h>
#include <string.h>

#include "../mining/classes.h"
#include "../mining/distance.h"
#include "../mining/triplet.h"
#include "../nn/parallel.h"
#include "../nn/util.h"
#include "test.h"

/* ---- the loss under test: triplet_loss through ClassesLossFn ---------------- */

typedef struct Trip {
    MiningStrategy miner;
    float margin;
    int soft, D;
} Trip;

static LossStats trip_fn(void *ctx, float *dE, float *ws, const float *E, const int32_t *labels, int N,
                         int a0, int a1) {
    const Trip *t = ctx;
    return triplet_loss(dE, NULL, ws, E, labels, t->miner, t->margin, t->soft, N, t->D, a0, a1);
}

/* Runs the plan over anchors [a0, a1) of the batch E (P blocks of K rows);
 * dE (N, D) += the gradient, mapped back to global rows. */
static LossStats run_plan(float *dE, ClassesPlan *p, const float *E, const int32_t *blabel, int a0, int a1,
                          Trip *t) {
    int P = p->P, K = p->K, D = p->D, N = P * K;
    double amax = 0;
    for (int i = 0; i < N * D; i++) amax = fmax(amax, fabs(E[i]));
    p->bits = classes_fixed_bits(amax, K);
    memcpy(p->label, blabel, (size_t)P * sizeof *blabel);
    memset(p->S, 0, (size_t)P * D * sizeof *p->S);
    classes_sums(p->S, E, 0, N, K, D, p->bits);
    classes_plan_blocks(p, a0, a1);
    size_t blk = (size_t)K * D;
    float *U = xaligned_floats((size_t)p->nu * blk), *dU = xaligned_floats((size_t)p->nu * blk);
    for (int j = 0; j < p->nu; j++) memcpy(U + j * blk, E + (size_t)p->ublocks[j] * blk, blk * sizeof *U);
    LossStats s = classes_plan_loss(p, dU, U, trip_fn, t);
    for (int j = 0; j < p->nu; j++)
        for (size_t k = 0; k < blk; k++) dE[(size_t)p->ublocks[j] * blk + k] += dU[j * blk + k];
    free(U), free(dU);
    return s;
}

/* ---- reference (double, brute force) ------------------------------------------ */

static double ref_d(const float *E, int i, int j, int D) {
    double s = 0;
    for (int k = 0; k < D; k++)
        s += ((double)E[i * D + k] - E[j * D + k]) * ((double)E[i * D + k] - E[j * D + k]);
    return sqrt(fmax(s, 1e-12));
}

/* nb (m) = the m blocks nearest block c, centroids in double, ties by label. */
static void ref_nearest(int *nb, const float *E, const int32_t *blabel, int P, int K, int D, int c, int m) {
    double *cen = calloc((size_t)P * D, sizeof *cen), *d = calloc((size_t)P, sizeof *d);
    for (int i = 0; i < P * K; i++)
        for (int k = 0; k < D; k++) cen[(i / K) * D + k] += E[i * D + k] / (double)K;
    int used[64] = {0};
    for (int b = 0; b < P; b++)
        for (int k = 0; k < D; k++)
            d[b] += (cen[c * D + k] - cen[b * D + k]) * (cen[c * D + k] - cen[b * D + k]);
    used[c] = 1;
    for (int j = 0; j < m; j++) {
        int best = -1;
        for (int b = 0; b < P; b++)
            if (!used[b] && (best < 0 || d[b] < d[best] || (d[b] == d[best] && blabel[b] < blabel[best])))
                best = b;
        nb[j] = best;
        used[best] = 1;
    }
    free(cen), free(d);
}

/* Adds g (d_ap - d_an) to the gradient, in double. */
static void ref_grad(double *g, const float *E, int a, int p, int n, double w, int D) {
    double dap = ref_d(E, a, p, D), dan = ref_d(E, a, n, D);
    for (int k = 0; k < D; k++) {
        double up = w * (E[a * D + k] - E[p * D + k]) / dap, un = w * (E[a * D + k] - E[n * D + k]) / dan;
        g[a * D + k] += up - un;
        g[p * D + k] -= up;
        g[n * D + k] += un;
    }
}

static double ref_term(double x, double margin, int soft, double *w) {
    if (soft) {
        *w = 1.0 / (1.0 + exp(-x));
        return log1p(exp(x));
    }
    *w = x + margin > 0 ? 1.0 : 0.0;
    return fmax(x + margin, 0.0);
}

/* The loss sum and count of anchors [a0, a1), each over its own pool. */
static double ref_loss(double *g, double *count, const float *E, const int32_t *blabel, int P, int K, int D,
                       int m, int a0, int a1, MiningStrategy miner, double margin, int soft) {
    double sum = 0;
    *count = 0;
    int nb[64], in[64];
    for (int a = a0; a < a1; a++) {
        int ca = a / K;
        ref_nearest(nb, E, blabel, P, K, D, ca, m);
        memset(in, 0, sizeof in);
        in[ca] = 1;
        for (int j = 0; j < m; j++) in[nb[j]] = 1;
        int hp = -1, hn = -1;
        for (int j = 0; j < P * K; j++) { /* hardest positive and negative, lowest index on ties */
            if (!in[j / K] || j == a) continue;
            double d = ref_d(E, a, j, D);
            if (j / K == ca && (hp < 0 || d > ref_d(E, a, hp, D))) hp = j;
            if (j / K != ca && (hn < 0 || d < ref_d(E, a, hn, D))) hn = j;
        }
        for (int p = 0; p < P * K; p++) {
            if (p / K != ca || p == a) continue;
            double dap = ref_d(E, a, p, D), w;
            if (miner == MINE_BATCH_ALL) {
                for (int n = 0; n < P * K; n++) {
                    if (!in[n / K] || n / K == ca) continue;
                    double l = ref_term(dap - ref_d(E, a, n, D), margin, soft, &w);
                    if (l > 0) sum += l, *count += 1, ref_grad(g, E, a, p, n, w, D);
                }
            } else if (miner == MINE_SEMI_HARD) {
                int sn = -1, far = -1;
                for (int n = 0; n < P * K; n++) {
                    if (!in[n / K] || n / K == ca) continue;
                    double dn = ref_d(E, a, n, D);
                    if (dn > dap && (sn < 0 || dn < ref_d(E, a, sn, D))) sn = n;
                    if (far < 0 || dn > ref_d(E, a, far, D)) far = n;
                }
                int n = sn >= 0 ? sn : far;
                sum += ref_term(dap - ref_d(E, a, n, D), margin, soft, &w), *count += 1;
                ref_grad(g, E, a, p, n, w, D);
            }
        }
        if (miner == MINE_BATCH_HARD) {
            double w;
            sum += ref_term(ref_d(E, a, hp, D) - ref_d(E, a, hn, D), margin, soft, &w), *count += 1;
            ref_grad(g, E, a, hp, hn, w, D);
        }
    }
    return sum;
}

/* ---- data ---------------------------------------------------------------------- */

/* P blocks of K unit rows around P random class centres; labels not in
 * block order. */
static void gen_batch(float *E, int32_t *blabel, int P, int K, int D, Rng *r) {
    for (int b = 0; b < P; b++) {
        blabel[b] = (int32_t)((b * 7 + 3) % 31);
        double c[16];
        for (int k = 0; k < D; k++) c[k] = rng_normal(r);
        for (int i = 0; i < K; i++) {
            float *e = E + ((size_t)b * K + i) * D;
            double s = 0;
            for (int k = 0; k < D; k++) e[k] = (float)(c[k] + 0.6 * rng_normal(r)), s += (double)e[k] * e[k];
            for (int k = 0; k < D; k++) e[k] = (float)(e[k] / sqrt(s));
        }
    }
}

static void test_fixed(void) {
    CHECK(classes_fixed_bits(1.0, 4) == 40, "unit rows, K = 4: 40 bits (got %d)", classes_fixed_bits(1.0, 4));
    CHECK(classes_fixed_bits(0.0, 1) == 40, "zeros: 40 bits");
    CHECK(classes_fixed_bits(1e6, 1024) == 61 - 20 - 10, "1e6 < 2^20, K = 2^10: %d",
          classes_fixed_bits(1e6, 1024));
    CHECK(classes_fixed_bits(NAN, 4) == 0 && classes_fixed_bits(INFINITY, 4) == 0, "non-finite: 0 bits");
    /* sums do not depend on how the rows are split or ordered */
    float E[6 * 3] = {0.1f,  -0.7f, 0.3f, 1.0f, -1.0f, 1e-9f, 0.5f,  0.25f, -0.125f,
                      -0.3f, 0.9f,  0.2f, 0.0f, 0.6f,  -0.6f, 0.33f, 0.66f, 0.99f};
    int64_t a[2 * 3] = {0}, b[2 * 3] = {0};
    classes_sums(a, E, 0, 6, 3, 3, 40);
    classes_sums(b, E + 4 * 3, 4, 2, 3, 3, 40);
    classes_sums(b, E, 0, 2, 3, 3, 40);
    classes_sums(b, E + 2 * 3, 2, 2, 3, 3, 40);
    CHECK(!memcmp(a, b, sizeof a), "fixed-point sums of three pieces equal one pass");
    CHECK(a[0] == llrint(ldexp(0.1f, 40)) + llrint(ldexp(1.0f, 40)) + llrint(ldexp(0.5f, 40)),
          "block 0, dimension 0: the sum of its rows in fixed point");
}

/* Block 0 at the origin, blocks 1 and 2 at the same distance on either
 * side (dyadic values: exact), block 3 far: with m = 1 the lower label of
 * blocks 1 and 2 wins; m = 2 lists both, lower label first. */
static void test_ties(void) {
    float E[4 * 2 * 2] = {0.25f, 0,     -0.25f, 0,      0.5f, 0.25f, 0.5f, -0.25f,
                          -0.5f, 0.25f, -0.5f,  -0.25f, 2,    2,     2,    2};
    for (int swap = 0; swap < 2; swap++) {
        int32_t lab[4] = {5, swap ? 4 : 9, swap ? 9 : 4, 1};
        for (int m = 1; m <= 3; m++) {
            ClassesPlan p;
            classes_plan_init(&p, 4, 2, 2, m, 8, 1);
            memcpy(p.label, lab, sizeof lab);
            p.bits = classes_fixed_bits(2.0, 2);
            classes_sums(p.S, E, 0, 8, 2, 2, p.bits);
            for (int i = 0; i < 8; i++) p.Sd[i] = (double)p.S[i];
            int32_t nb[3];
            classes_nearest(&p, nb, 0);
            int lo = swap ? 1 : 2, hi = swap ? 2 : 1;
            CHECK(nb[0] == lo, "m = %d, labels %d %d: nearest block %d, want %d (lower label)", m, lab[1],
                  lab[2], nb[0], lo);
            if (m >= 2) CHECK(nb[1] == hi, "m = %d: second nearest %d, want %d", m, nb[1], hi);
            if (m == 3) CHECK(nb[2] == 3, "m = 3: the far block last");
            classes_plan_free(&p);
        }
    }
}

static const char *mname[] = {"batch_hard", "semi_hard", "batch_all"};

/* Implementation against the brute-force reference; two pieces of anchors
 * against one; m = P - 1 against exact global mining. */
static void test_reference(Rng *r) {
    enum { P = 9, K = 4, D = 6, N = P * K };
    float *E = xaligned_floats(N * D);
    int32_t blabel[P], labels[N];
    size_t ws = triplet_workspace_floats(N, N);
    for (int trial = 0; trial < 3; trial++) {
        gen_batch(E, blabel, P, K, D, r);
        if (trial == 2) /* two identical classes: equal centroids and equal rows (ties) */
            memcpy(E + 5 * K * D, E + 2 * K * D, K * D * sizeof *E);
        for (int i = 0; i < N; i++) labels[i] = blabel[i / K];
        for (int mi = 0; mi < 3; mi++)
            for (int soft = 0; soft < 2; soft++) {
                if (soft && mi == MINE_BATCH_ALL) continue; /* the soft batch-all sum is not the hinge's */
                Trip t = {(MiningStrategy)mi, 0.3f, soft, D};
                for (int m = 1; m <= 3; m += 2) {
                    ClassesPlan p;
                    classes_plan_init(&p, P, K, D, m, N, ws);
                    float *dE = xaligned_floats(N * D), *dE2 = xaligned_floats(N * D);
                    double *g = calloc((size_t)N * D, sizeof *g), cnt;
                    int a0 = 3, a1 = 29; /* starts and ends inside blocks */
                    LossStats s = run_plan(dE, &p, E, blabel, a0, a1, &t);
                    double ls = ref_loss(g, &cnt, E, blabel, P, K, D, m, a0, a1, t.miner, t.margin, soft);
                    char what[160];
                    snprintf(what, sizeof what, "trial %d, %s soft %d, m = %d: loss sum vs brute force",
                             trial, mname[mi], soft, m);
                    CHECK_CLOSE(s.loss_sum, ls, 1e-5, what);
                    CHECK(s.count == cnt, "%s: count %g vs %g", what, s.count, cnt);
                    double worst = 0;
                    for (int i = 0; i < N * D; i++)
                        worst = fmax(worst, fabs(dE[i] - g[i]) / fmax(1.0, fabs(g[i])));
                    CHECK(worst <= 1e-4, "%s: gradient differs by %.3g relative", what, worst);
                    /* [3, 14) and [14, 29): 14 is inside block 3 */
                    LossStats s1 = run_plan(dE2, &p, E, blabel, a0, 14, &t),
                              s2 = run_plan(dE2, &p, E, blabel, 14, a1, &t);
                    double wd = 0;
                    for (int i = 0; i < N * D; i++)
                        wd = fmax(wd, fabs(dE[i] - dE2[i]) / fmax(1.0, fabs(dE[i])));
                    CHECK(test_close(s1.loss_sum + s2.loss_sum, s.loss_sum, 1e-6) &&
                              s1.count + s2.count == s.count && wd <= 1e-6,
                          "%s: two pieces add up to one (loss %.9g vs %.9g, gradient %.3g)", what,
                          s1.loss_sum + s2.loss_sum, s.loss_sum, wd);
                    free(dE), free(dE2), free(g);
                    classes_plan_free(&p);
                }
                /* m = P - 1: every pool is the whole batch, as exact mining */
                ClassesPlan p;
                classes_plan_init(&p, P, K, D, P - 1, N, ws);
                float *dE = xaligned_floats(N * D), *dX = xaligned_floats(N * D), *wsx = xaligned_floats(ws);
                LossStats s = run_plan(dE, &p, E, blabel, 0, N, &t);
                LossStats x = triplet_loss(dX, NULL, wsx, E, labels, t.miner, t.margin, soft, N, D, 0, N);
                double wd = 0;
                for (int i = 0; i < N * D; i++) wd = fmax(wd, fabs(dE[i] - dX[i]) / fmax(1.0, fabs(dX[i])));
                CHECK(test_close(s.loss_sum, x.loss_sum, 1e-6) && s.count == x.count &&
                          s.active == x.active && s.candidates == x.candidates && wd <= 1e-5,
                      "trial %d, %s soft %d, m = P - 1 vs exact: loss %.9g vs %.9g, count %g vs %g, gradient "
                      "%.3g",
                      trial, mname[mi], soft, s.loss_sum, x.loss_sum, s.count, x.count, wd);
                free(dE), free(dX), free(wsx);
                classes_plan_free(&p);
            }
    }
    free(E);
}

int main(void) {
    parallel_init(2);
    Rng r;
    rng_seed(&r, 18, RNG_TEST, 3);
    test_fixed();
    test_ties();
    test_reference(&r);
    return test_finish();
}
