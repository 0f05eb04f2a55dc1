/* Tests of mining/pairs: the contrastive and Koch-head losses over pair lists
 * against double references and finite differences (w.r.t. E, and w, b for
 * the head); the hard-pairs miners against a brute force with explicit
 * lowest-index tie-breaks on batches full of ties; contrastive over all
 * pairs; the global-mining contract (ranges over p = 1..4 add up). */
#include <stdlib.h>
#include <string.h>

#include "../mining/distance.h"
#include "../mining/pairs.h"
#include "../nn/util.h"
#include "fixture_num.h"
#include "test.h"

#define MAXN 48

enum { L_CON, L_KOCH };         /* loss */
enum { S_LIST, S_HARD, S_ALL }; /* pairs: a list, mined hard pairs, all (contrastive) */
static const char *lname[] = {"contrastive", "koch"};
static const char *sname[] = {"list", "hard", "all"};

/* ---- data (quantised ties: fixture_gen_ties) ---------------------------- */

static void gen_smooth(float *E, int32_t *labels, int N, int D, int classes, Rng *r) {
    for (int i = 0; i < N * D; i++) E[i] = (float)(0.4 * rng_normal(r));
    for (int i = 0; i < N; i++) labels[i] = (int32_t)rng_below(r, (uint64_t)classes);
}

/* Head weights: quantised (exact logits, real ties) or continuous. */
static void gen_head(float *w, float *b, int D, int quantised, Rng *r) {
    for (int k = 0; k < D; k++)
        w[k] = quantised ? 0.5f * (float)((int)rng_below(r, 5) - 2) : (float)rng_normal(r);
    *b = quantised ? 0.25f : 0.3f;
}

/* ---- reference (double) ------------------------------------------------- */

typedef struct Model {
    int loss;
    double margin;
    const double *w; /* (D) */
    double b;
} Model;

typedef struct Ref {
    double loss, count, hard;
    long active, cand;
    int nch;
    IndexPair ch[2 * MAXN];
    uint64_t sig;    /* chosen pairs, active flags, signs of |u| (Koch) */
    double *gE, *gw; /* NULL, or += the gradient w.r.t. E (N, D) and (w, b) (D + 1) */
} Ref;

/* The score the miner ranks by: distance (contrastive) or logit (Koch),
 * rounded to float when asked (then equal to the library on quantised data). */
static double ref_score(const double *E, int i, int j, const Model *M, int D, int round_f) {
    double v;
    if (M->loss == L_CON) {
        v = fixture_dist(E + i * D, E + j * D, D, (double)DIST_EPS2);
    } else {
        v = M->b;
        for (int k = 0; k < D; k++) v += M->w[k] * fabs(E[i * D + k] - E[j * D + k]);
    }
    return round_f ? (double)(float)v : v;
}

static void ref_pair(Ref *R, const double *E, IndexPair pr, const Model *M, int D, int record) {
    double s = ref_score(E, pr.i, pr.j, M, D, 0), l;
    if (M->loss == L_CON) {
        double h = fmax(M->margin - s, 0);
        l = pr.y ? s * s : h * h;
        R->hard += pr.y ? s : -s;
    } else {
        l = fmax(s, 0) - s * pr.y + log1p(exp(-fabs(s)));
        R->hard += pr.y ? -s : s;
    }
    R->loss += l;
    R->count += 1;
    R->active += l > 0;
    if (R->gE) { /* analytic gradient: clamp -> 0, sign(0) = 0 */
        for (int k = 0; k < D; k++) {
            double u = E[pr.i * D + k] - E[pr.j * D + k], gi;
            if (M->loss == L_CON) {
                double g = pr.y ? 2 * s : -2 * fmax(M->margin - s, 0);
                gi = (float)s <= DIST_MIN ? 0 : g * u / s;
            } else {
                double g = 1 / (1 + exp(-s)) - pr.y;
                gi = g * M->w[k] * ((u > 0) - (u < 0));
                R->gw[k] += g * fabs(u);
                if (k == 0) R->gw[D] += g;
            }
            R->gE[pr.i * D + k] += gi;
            R->gE[pr.j * D + k] -= gi;
        }
    }
    int key[4 + MAXN] = {pr.i, pr.j, pr.y, l > 0};
    if (M->loss == L_KOCH)
        for (int k = 0; k < D; k++) {
            double u = E[pr.i * D + k] - E[pr.j * D + k];
            key[4 + k] = (u > 0) - (u < 0);
        }
    R->sig = hash64(key, sizeof key, R->sig);
    if (record) R->ch[R->nch++] = pr;
}

/* strategy S_LIST: list[k0..k1); S_HARD / S_ALL: anchors [k0, k1). */
static void ref_loss(Ref *R, const double *E, const int32_t *lab, const IndexPair *list, const Model *M,
                     int strategy, int N, int D, int k0, int k1, int round_f) {
    double *gE = R->gE, *gw = R->gw;
    memset(R, 0, sizeof *R);
    R->sig = HASH64_INIT;
    R->gE = gE;
    R->gw = gw;
    if (strategy == S_LIST) {
        for (int k = k0; k < k1; k++) ref_pair(R, E, list[k], M, D, 0);
        R->cand = k1 - k0;
        return;
    }
    for (int a = k0; a < k1; a++) {
        int pos[MAXN], neg[MAXN], np = 0, nn = 0;
        double v[MAXN];
        for (int j = 0; j < N; j++) {
            if (j == a) continue;
            v[j] = ref_score(E, a, j, M, D, round_f);
            if (strategy == S_ALL) ref_pair(R, E, (IndexPair){a, j, lab[j] == lab[a]}, M, D, 0);
            if (lab[j] == lab[a])
                pos[np++] = j;
            else
                neg[nn++] = j;
        }
        R->cand += N - 1;
        if (strategy == S_ALL) continue;
        int koch = M->loss == L_KOCH;
        int p = fixture_pick(v, pos, np, !koch), n = fixture_pick(v, neg, nn, koch);
        if (p >= 0) ref_pair(R, E, (IndexPair){a, p, 1}, M, D, 1);
        if (n >= 0) ref_pair(R, E, (IndexPair){a, n, 0}, M, D, 1);
    }
}

/* Runs the library for (loss, strategy) over range [k0, k1). */
static LossStats run(float *dE, float *dw, float *db, IndexPair *chosen, float *ws, const float *E,
                     const int32_t *lab, const IndexPair *list, const float *w, float b, float margin,
                     int loss, int strategy, int N, int D, int k0, int k1) {
    if (strategy == S_LIST)
        return loss == L_CON ? pairs_contrastive(dE, E, list, margin, N, D, k0, k1)
                             : pairs_koch(dE, dw, db, E, list, w, b, N, D, k0, k1);
    if (strategy == S_ALL) return pairs_contrastive_all(dE, ws, E, lab, margin, N, D, k0, k1);
    return loss == L_CON ? pairs_contrastive_hard(dE, chosen, ws, E, lab, margin, N, D, k0, k1)
                         : pairs_koch_hard(dE, dw, db, chosen, ws, E, lab, w, b, N, D, k0, k1);
}

static void random_list(IndexPair *list, int n, const int32_t *lab, int N, Rng *r) {
    for (int k = 0; k < n; k++) {
        int i = (int)rng_below(r, (uint64_t)N), j = (int)rng_below(r, (uint64_t)N);
        list[k] = (IndexPair){i, j, lab[i] == lab[j]};
    }
}

/* ---- miners vs brute force on batches with ties --------------------------- */

static void test_ties(Rng *r) {
    enum { N = 24, D = 6, NL = 60 };
    static float E[N * D], dE[N * D], dE2[N * D], w[D];
    float *ws = xaligned_floats(pairs_workspace_floats(N, N));
    static double Ed[N * D], wd[D];
    static IndexPair ch[2 * N], list[NL];
    static Ref R;
    int32_t lab[N];
    float b;
    for (int trial = 0; trial < 6; trial++) {
        fixture_gen_ties(E, lab, N, D, 2 + trial % 3, r);
        gen_head(w, &b, D, 1, r);
        fixture_to_double(Ed, E, N * D);
        fixture_to_double(wd, w, D);
        random_list(list, NL, lab, N, r);
        for (int loss = 0; loss < 2; loss++)
            for (int strategy = 0; strategy < 3; strategy++) {
                if (loss == L_KOCH && strategy == S_ALL) continue;
                Model M = {loss, 1.0, wd, b};
                float dw[D] = {0}, db = 0;
                int n = strategy == S_LIST ? NL : N;
                memset(dE, 0, sizeof dE);
                LossStats st = run(dE, dw, &db, ch, ws, E, lab, list, w, b, 1.0f, loss, strategy, N, D, 0, n);
                double gE[N * D] = {0}, gw[D + 1] = {0};
                R.gE = gE;
                R.gw = gw;
                ref_loss(&R, Ed, lab, list, &M, strategy, N, D, 0, n, 1);
                R.gE = R.gw = NULL;
                const char *nm = lname[loss], *sn = sname[strategy];
                CHECK(fixture_grad_err(dE, gE, N * D) < 1e-5, "%s %s trial %d: dE vs analytic, err %g",
                      lname[loss], sname[strategy], trial, fixture_grad_err(dE, gE, N * D));
                if (loss == L_KOCH) {
                    float dwb[D + 1];
                    memcpy(dwb, dw, sizeof dw);
                    dwb[D] = db;
                    CHECK(fixture_grad_err(dwb, gw, D + 1) < 1e-5, "koch %s: dw, db vs analytic",
                          sname[strategy]);
                }
                CHECK(st.count == R.count && st.active == R.active && st.candidates == R.cand,
                      "%s %s: count %g/%g active %ld/%ld cand %ld/%ld", nm, sn, st.count, R.count, st.active,
                      R.active, st.candidates, R.cand);
                CHECK(test_close(st.loss_sum, R.loss, 1e-5) && test_close(st.hardness_sum, R.hard, 1e-5),
                      "%s %s trial %d: loss %.9g vs %.9g, hardness %g vs %g", nm, sn, trial, st.loss_sum,
                      R.loss, st.hardness_sum, R.hard);
                if (strategy != S_HARD) continue;
                int same = (int)st.count == R.nch;
                for (int t = 0; same && t < R.nch; t++)
                    same = ch[t].i == R.ch[t].i && ch[t].j == R.ch[t].j && ch[t].y == R.ch[t].y;
                CHECK(same, "%s hard trial %d: same chosen pairs", nm, trial);
                /* The mined loss is the list loss over the chosen pairs. */
                float dw2[D] = {0}, db2 = 0;
                memset(dE2, 0, sizeof dE2);
                LossStats sl = run(dE2, dw2, &db2, NULL, ws, E, lab, ch, w, b, 1.0f, loss, S_LIST, N, D, 0,
                                   (int)st.count);
                double g[N * D];
                fixture_to_double(g, dE, N * D);
                CHECK(sl.loss_sum == st.loss_sum && sl.count == st.count &&
                          fixture_grad_err(dE2, g, N * D) == 0 && db2 == db,
                      "%s hard: equals the list loss over the chosen pairs", nm);
            }
    }
    /* pairs_list_halves: the offline layout. */
    IndexPair hv[4];
    pairs_list_halves(hv, lab, 8, 4);
    CHECK(hv[2].i == 10 && hv[2].j == 14 && hv[2].y == (lab[10] == lab[14]), "halves layout");
    free(ws);
}

/* ---- finite differences --------------------------------------------------- */

static void test_fd(Rng *r) {
    enum { N = 14, D = 5, NL = 30 };
    static float E[N * D], dE[N * D], w[D];
    float *ws = xaligned_floats(pairs_workspace_floats(N, N));
    static double Ed[N * D], wd[D];
    static IndexPair list[NL];
    static Ref R0, Rp, Rm;
    int32_t lab[N];
    float b;
    const double h = 1e-4;
    for (int trial = 0; trial < 2; trial++) {
        gen_smooth(E, lab, N, D, 3, r);
        gen_head(w, &b, D, 0, r);
        random_list(list, NL, lab, N, r);
        for (int loss = 0; loss < 2; loss++)
            for (int strategy = 0; strategy < 3; strategy++) {
                if (loss == L_KOCH && strategy == S_ALL) continue;
                int n = strategy == S_LIST ? NL : N;
                float dw[D] = {0}, db = 0;
                memset(dE, 0, sizeof dE);
                run(dE, dw, &db, NULL, ws, E, lab, list, w, b, 1.0f, loss, strategy, N, D, 0, n);
                fixture_to_double(Ed, E, N * D);
                fixture_to_double(wd, w, D);
                Model M = {loss, 1.0, wd, b};
                ref_loss(&R0, Ed, lab, list, &M, strategy, N, D, 0, n, 0);
                /* Entries 0..N*D-1: E; then D entries of w and one of b (Koch). */
                int nent = N * D + (loss == L_KOCH ? D + 1 : 0), used = 0;
                double err = 0, gmax = 1;
                for (int e = 0; e < nent; e++) {
                    for (int s = 0; s < 2; s++) {
                        double dh = s ? -h : h;
                        fixture_to_double(Ed, E, N * D);
                        fixture_to_double(wd, w, D);
                        Model Mh = M;
                        if (e < N * D)
                            Ed[e] += dh;
                        else if (e < N * D + D)
                            wd[e - N * D] += dh;
                        else
                            Mh.b += dh;
                        ref_loss(s ? &Rm : &Rp, Ed, lab, list, &Mh, strategy, N, D, 0, n, 0);
                    }
                    if (Rp.sig != R0.sig || Rm.sig != R0.sig) continue; /* a kink */
                    double fd = (Rp.loss - Rm.loss) / (2 * h);
                    double g = e < N * D ? dE[e] : e < N * D + D ? dw[e - N * D] : db;
                    gmax = fmax(gmax, fabs(fd));
                    err = fmax(err, fabs(fd - g));
                    used++;
                }
                CHECK(used > nent / 2, "%s %s: %d of %d entries usable", lname[loss], sname[strategy], used,
                      nent);
                CHECK(err / gmax < 2e-3, "%s %s: finite differences rel err %g", lname[loss], sname[strategy],
                      err / gmax);
            }
    }
    free(ws);
}

/* ---- the global-mining contract ------------------------------------------- */

static void test_split(Rng *r) {
    enum { N = 40, D = 8, NL = 90 };
    static float E[N * D], dE1[N * D], dEp[N * D], w[D];
    float *ws = xaligned_floats(pairs_workspace_floats(N, N));
    static IndexPair ch1[2 * N], chp[2 * N], list[NL];
    static double g1[N * D + D + 1];
    int32_t lab[N];
    float b;
    for (int data = 0; data < 2; data++) {
        if (data)
            fixture_gen_ties(E, lab, N, D, 4, r);
        else
            gen_smooth(E, lab, N, D, 4, r);
        gen_head(w, &b, D, data, r);
        random_list(list, NL, lab, N, r);
        for (int loss = 0; loss < 2; loss++)
            for (int strategy = 0; strategy < 3; strategy++) {
                if (loss == L_KOCH && strategy == S_ALL) continue;
                int n = strategy == S_LIST ? NL : N;
                float dw1[D + 1] = {0}, dwp[D + 1] = {0}; /* dw then db */
                memset(dE1, 0, sizeof dE1);
                LossStats s1 =
                    run(dE1, dw1, dw1 + D, ch1, ws, E, lab, list, w, b, 1.0f, loss, strategy, N, D, 0, n);
                fixture_to_double(g1, dE1, N * D);
                for (int p = 1; p <= 4; p++) {
                    int cut[5];
                    fixture_random_cuts(cut, p, n, r);
                    LossStats sp = {0};
                    memset(dEp, 0, sizeof dEp);
                    memset(dwp, 0, sizeof dwp);
                    long off = 0;
                    for (int q = 0; q < p; q++) {
                        LossStats s = run(dEp, dwp, dwp + D, chp + off, ws, E, lab, list, w, b, 1.0f, loss,
                                          strategy, N, D, cut[q], cut[q + 1]);
                        if (strategy == S_HARD) off += (long)s.count;
                        loss_stats_add(&sp, &s);
                    }
                    const char *nm = lname[loss], *sn = sname[strategy];
                    CHECK(sp.count == s1.count && sp.active == s1.active && sp.candidates == s1.candidates,
                          "%s %s p=%d: counts %g/%g %ld/%ld", nm, sn, p, sp.count, s1.count, sp.active,
                          s1.active);
                    CHECK(test_close(sp.loss_sum, s1.loss_sum, 1e-5) &&
                              test_close(sp.hardness_sum, s1.hardness_sum, 1e-5),
                          "%s %s p=%d: loss %.9g vs %.9g", nm, sn, p, sp.loss_sum, s1.loss_sum);
                    CHECK(fixture_grad_err(dEp, g1, N * D) < 1e-5, "%s %s p=%d data=%d: dE err %g", nm, sn, p,
                          data, fixture_grad_err(dEp, g1, N * D));
                    if (loss == L_KOCH) {
                        double hw[D + 1];
                        fixture_to_double(hw, dw1, D + 1);
                        CHECK(fixture_grad_err(dwp, hw, D + 1) < 1e-5, "koch %s p=%d: dw, db", sn, p);
                    }
                    if (strategy == S_HARD)
                        CHECK(memcmp(ch1, chp, sizeof(IndexPair) * (size_t)s1.count) == 0,
                              "%s hard p=%d: same chosen pairs", nm, p);
                }
            }
    }
    free(ws);
}

int main(void) {
    Rng r;
    rng_seed(&r, 12, RNG_TEST, 2);
    test_ties(&r);
    test_fd(&r);
    test_split(&r);
    return test_finish();
}
