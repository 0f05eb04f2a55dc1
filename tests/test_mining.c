/* Tests of mining/distance and mining/triplet: the sgemm distance matrix and
 * its backward against naive double loops and finite differences; every
 * triplet miner against a brute-force enumeration with explicit lowest-index
 * tie-breaks on batches full of ties (quantised embeddings, duplicate rows,
 * few classes); finite-difference gradients of every miner; the global-mining
 * contract (anchor ranges split over p = 1..4 "ranks" add up to one call). */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "../mining/distance.h"
#include "../mining/triplet.h"
#include "../nn/util.h"
#include "fixture_num.h"
#include "test.h"

#define MAXN 64

/* ---- data ---------------------------------------------------------------- */

/* Continuous rows on the unit sphere (no ties, no clamps). */
static void gen_smooth(float *E, int32_t *labels, int N, int D, int classes, Rng *r) {
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int k = 0; k < D; k++) {
            E[i * D + k] = (float)rng_normal(r);
            s += (double)E[i * D + k] * E[i * D + k];
        }
        for (int k = 0; k < D; k++) E[i * D + k] = (float)(E[i * D + k] / sqrt(s));
        labels[i] = (int32_t)rng_below(r, (uint64_t)classes);
    }
}

/* ---- reference (double, naive) -------------------------------------------- */

/* dm = distances of the spec formula in double; rounded to float when asked
 * (then equal to the sgemm path on quantised data). */
static void ref_dist(double *dm, const double *E, int N, int D, int round_f) {
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double d = fixture_dist(E + i * D, E + j * D, D, (double)DIST_EPS2);
            dm[i * N + j] = round_f ? (double)(float)d : d;
        }
}

typedef struct Ref {
    double loss, count, hard;
    long active, cand;
    int nch;
    IndexTriplet ch[MAXN * MAXN];
    uint64_t sig; /* hash of the chosen terms and their active flags */
} Ref;

static double ref_term(double x, double m, int soft, double *g) {
    if (soft) {
        double e = exp(-fabs(x));
        *g = x >= 0 ? 1 / (1 + e) : e / (1 + e);
        return fmax(x, 0) + log1p(e);
    }
    *g = x + m > 0 ? 1 : 0;
    return x + m > 0 ? x + m : 0;
}

static void ref_add(Ref *R, double *gdd, const double *dm, int N, int a, int p, int n, double m, int soft,
                    int record) {
    double x = dm[a * N + p] - dm[a * N + n], g, l = ref_term(x, m, soft, &g);
    int act = soft || l > 0;
    R->loss += l;
    R->active += act;
    R->hard += x;
    R->count += 1;
    if (gdd) {
        gdd[a * N + p] += g;
        gdd[a * N + n] -= g;
    }
    int key[4] = {a, p, n, act};
    R->sig = hash64(key, sizeof key, R->sig);
    if (record) R->ch[R->nch++] = (IndexTriplet){a, p, n};
}

/* Brute force over every triplet of anchors [a0, a1); gdd (N x N, may be
 * NULL) += dL/dd. */
static void ref_triplet(Ref *R, double *gdd, const double *dm, const int32_t *lab, int N, int a0, int a1,
                        MiningStrategy miner, double m, int soft) {
    memset(R, 0, sizeof *R);
    R->sig = HASH64_INIT;
    int pos[MAXN], neg[MAXN];
    for (int a = a0; a < a1; a++) {
        int np = 0, nn = 0;
        for (int j = 0; j < N; j++) {
            if (lab[j] != lab[a])
                neg[nn++] = j;
            else if (j != a)
                pos[np++] = j;
        }
        R->cand += (long)np * nn;
        const double *row = dm + a * N;
        if (miner == MINE_BATCH_ALL) {
            for (int q = 0; q < np; q++)
                for (int s = 0; s < nn; s++) {
                    double x = row[pos[q]] - row[neg[s]], g, l = ref_term(x, m, soft, &g);
                    if (!soft && l <= 0) continue; /* inactive: not counted */
                    ref_add(R, gdd, dm, N, a, pos[q], neg[s], m, soft, 0);
                }
        } else if (miner == MINE_BATCH_HARD) {
            int p = fixture_pick(row, pos, np, 1), n = fixture_pick(row, neg, nn, 0);
            if (p >= 0 && n >= 0) ref_add(R, gdd, dm, N, a, p, n, m, soft, 1);
        } else {
            for (int q = 0; q < np && nn > 0; q++) {
                int p = pos[q], far_set[MAXN], nf = 0;
                for (int s = 0; s < nn; s++)
                    if (row[neg[s]] > row[p]) far_set[nf++] = neg[s];
                int n = nf > 0 ? fixture_pick(row, far_set, nf, 0) : fixture_pick(row, neg, nn, 1);
                ref_add(R, gdd, dm, N, a, p, n, m, soft, 1);
            }
        }
    }
}

/* dE_ref from dL/dd: row i gets (e_i - e_j)/d_ij per unit of gdd_ij, row j
 * the opposite; 0 on the clamp (the float distance at DIST_MIN). */
static void ref_grad_from_dd(double *dE, const double *gdd, const double *dm, const double *E, int N, int D) {
    memset(dE, 0, sizeof(double) * N * D);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double g = gdd[i * N + j];
            if (g == 0 || (float)dm[i * N + j] <= DIST_MIN) continue;
            double s = g / dm[i * N + j];
            for (int k = 0; k < D; k++) {
                dE[i * D + k] += s * (E[i * D + k] - E[j * D + k]);
                dE[j * D + k] -= s * (E[i * D + k] - E[j * D + k]);
            }
        }
}

/* The triplet miners are MiningStrategy values 0..2 (mining/mining.h). */
static const char *miner_name[] = {
    [MINE_BATCH_ALL] = "batch_all", [MINE_BATCH_HARD] = "batch_hard", [MINE_SEMI_HARD] = "semi_hard"};
_Static_assert(MINE_BATCH_HARD < 3 && MINE_SEMI_HARD < 3 && MINE_BATCH_ALL < 3, "loops over miners 0..2");

/* ---- distance ------------------------------------------------------------- */

static void test_distance(Rng *r) {
    enum { NA = 7, NP = 13, D = 9 };
    float A[NA * D], P[NP * D], d[NA * NP], ws[NA * NP + NA + NP];
    CHECK(DIST_MIN == sqrtf(DIST_EPS2), "DIST_MIN %.9g", (double)DIST_MIN);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < NA * D; i++)
            A[i] = round ? 0.25f * (float)((int)rng_below(r, 5) - 2) : (float)rng_normal(r);
        for (int i = 0; i < NP * D; i++)
            P[i] = round ? 0.25f * (float)((int)rng_below(r, 5) - 2) : (float)rng_normal(r);
        memcpy(P + 3 * D, A + 2 * D, D * sizeof(float)); /* duplicates: the clamp */
        memcpy(P + 8 * D, A + 5 * D, D * sizeof(float));
        dist_matrix(d, A, P, NA, NP, D, ws);
        double err = 0;
        for (int i = 0; i < NA; i++)
            for (int j = 0; j < NP; j++) {
                double s = 0;
                for (int k = 0; k < D; k++)
                    s += ((double)A[i * D + k] - P[j * D + k]) * ((double)A[i * D + k] - P[j * D + k]);
                double ref = sqrt(fmax(s, 1e-12));
                err = fmax(err, fabs(d[i * NP + j] - ref));
                if (round)
                    CHECK(d[i * NP + j] == (float)sqrt(fmax(s, (double)DIST_EPS2)),
                          "exact on quantised data (%d,%d)", i, j);
            }
        CHECK(err < 2e-3, "dist_matrix vs naive: max err %g", err);
        CHECK(d[2 * NP + 3] <= DIST_MIN && d[5 * NP + 8] <= DIST_MIN, "duplicates clamped: %g %g",
              (double)d[2 * NP + 3], (double)d[5 * NP + 8]);
        CHECK(dist_pair(A + 2 * D, P + 3 * D, D) <= DIST_MIN, "dist_pair clamps");

        /* Backward: L = sum c_ij d_ij, vs central differences of the double
         * distance (the clamped entries carry c but must give 0). */
        float c[NA * NP], dA[NA * D], dP[NP * D], bws[NA * NP + NA + NP];
        for (int i = 0; i < NA * NP; i++) c[i] = (float)rng_normal(r);
        for (int i = 0; i < NA * D; i++) dA[i] = 1.0f; /* accumulate on top of 1 */
        memset(dP, 0, sizeof dP);
        dist_matrix_backward(dA, dP, c, d, A, P, NA, NP, D, bws);
        double h = 1e-4, ferr = 0, gmax = 1;
        for (int which = 0; which < 2; which++) {
            int rows = which ? NP : NA;
            for (int e = 0; e < rows * D; e++) {
                double Ad[NA * D], Pd[NP * D], Lpm[2];
                for (int s = 0; s < 2; s++) {
                    fixture_to_double(Ad, A, NA * D);
                    fixture_to_double(Pd, P, NP * D);
                    (which ? Pd : Ad)[e] += s ? -h : h;
                    double L = 0;
                    for (int i = 0; i < NA; i++)
                        for (int j = 0; j < NP; j++) {
                            if (d[i * NP + j] <= DIST_MIN) continue; /* clamp: constant */
                            double q = 0;
                            for (int k = 0; k < D; k++)
                                q += (Ad[i * D + k] - Pd[j * D + k]) * (Ad[i * D + k] - Pd[j * D + k]);
                            L += c[i * NP + j] * sqrt(q);
                        }
                    Lpm[s] = L;
                }
                double fd = (Lpm[0] - Lpm[1]) / (2 * h);
                double g = which ? dP[e] : dA[e] - 1.0;
                gmax = fmax(gmax, fabs(fd));
                ferr = fmax(ferr, fabs(fd - g));
            }
        }
        CHECK(ferr / gmax < 1e-3, "dist_matrix_backward vs finite differences: rel err %g", ferr / gmax);
    }
}

/* ---- triplet miners vs brute force on batches with ties --------------------- */

static void test_ties(Rng *r) {
    enum { N = 40, D = 6 };
    static float E[N * D], dE[N * D];
    float *ws = xaligned_floats(triplet_workspace_floats(N, N));
    static double Ed[N * D], dm[N * N], gdd[N * N], dEr[N * D];
    static IndexTriplet ch[N * N];
    static Ref R;
    int32_t lab[N];
    for (int trial = 0; trial < 6; trial++) {
        fixture_gen_ties(E, lab, N, D, 2 + trial % 3, r);
        if (trial >= 4) /* far apart (still exact): the soft margin's slow path */
            for (int i = 0; i < N * D; i++) E[i] *= 8.0f;
        fixture_to_double(Ed, E, N * D);
        ref_dist(dm, Ed, N, D, 1);
        for (int miner = 0; miner < 3; miner++)
            for (int soft = 0; soft < 2; soft++) {
                float m = 0.2f;
                memset(dE, 0, sizeof dE);
                memset(gdd, 0, sizeof gdd);
                LossStats st = triplet_loss(dE, miner == MINE_BATCH_ALL ? NULL : ch, ws, E, lab,
                                            (MiningStrategy)miner, m, soft, N, D, 0, N);
                ref_triplet(&R, gdd, dm, lab, N, 0, N, (MiningStrategy)miner, m, soft);
                const char *mn = miner_name[miner];
                CHECK(st.count == R.count && st.active == R.active && st.candidates == R.cand,
                      "%s soft=%d: count %g/%g active %ld/%ld cand %ld/%ld", mn, soft, st.count, R.count,
                      st.active, R.active, st.candidates, R.cand);
                CHECK(test_close(st.loss_sum, R.loss, 1e-5), "%s soft=%d loss %.9g vs %.9g", mn, soft,
                      st.loss_sum, R.loss);
                CHECK(test_close(st.hardness_sum, R.hard, 1e-5), "%s soft=%d hardness %g vs %g", mn, soft,
                      st.hardness_sum, R.hard);
                if (miner != MINE_BATCH_ALL) {
                    int same = (int)st.count == R.nch;
                    for (int t = 0; same && t < R.nch; t++)
                        same = ch[t].a == R.ch[t].a && ch[t].p == R.ch[t].p && ch[t].n == R.ch[t].n;
                    CHECK(same, "%s soft=%d trial %d: same chosen triplets", mn, soft, trial);
                    /* The list loss over the chosen triplets is the same loss. */
                    static float dE2[N * D];
                    memset(dE2, 0, sizeof dE2);
                    LossStats sl = triplet_list_loss(dE2, E, ch, m, soft, N, D, 0, (int)st.count);
                    CHECK(sl.count == st.count && sl.active == st.active &&
                              test_close(sl.loss_sum, st.loss_sum, 1e-5),
                          "%s soft=%d: list loss over chosen %g vs %g", mn, soft, sl.loss_sum, st.loss_sum);
                    double e2[N * D];
                    fixture_to_double(e2, dE, N * D);
                    CHECK(fixture_grad_err(dE2, e2, N * D) < 1e-5, "%s soft=%d: list gradient", mn, soft);
                }
                ref_grad_from_dd(dEr, gdd, dm, Ed, N, D);
                CHECK(fixture_grad_err(dE, dEr, N * D) < 1e-5, "%s soft=%d trial %d: gradient err %g", mn,
                      soft, trial, fixture_grad_err(dE, dEr, N * D));
            }
    }
    /* One class only: no negatives, nothing counted, no gradient. */
    for (int i = 0; i < N; i++) lab[i] = 3;
    for (int miner = 0; miner < 3; miner++) {
        memset(dE, 0, sizeof dE);
        LossStats st = triplet_loss(dE, NULL, ws, E, lab, (MiningStrategy)miner, 0.2f, 0, N, D, 0, N);
        double z[N * D] = {0};
        CHECK(st.count == 0 && st.loss_sum == 0 && st.candidates == 0 && fixture_grad_err(dE, z, N * D) == 0,
              "%s: one class gives nothing", miner_name[miner]);
    }
    free(ws);
}

/* ---- finite differences --------------------------------------------------- */

/* Central differences of the double reference loss, skipping entries whose
 * perturbation changes the chosen triplets or their active flags. */
static void test_fd(Rng *r) {
    enum { N = 14, D = 5 };
    static float E[N * D], dE[N * D];
    float *ws = xaligned_floats(triplet_workspace_floats(N, N));
    static double Ed[N * D], dm[N * N];
    static Ref R0, Rp, Rm;
    int32_t lab[N];
    const double h = 1e-4;
    for (int trial = 0; trial < 2; trial++) {
        gen_smooth(E, lab, N, D, 3, r);
        for (int miner = 0; miner < 3; miner++)
            for (int soft = 0; soft < 2; soft++) {
                float m = 0.5f;
                memset(dE, 0, sizeof dE);
                triplet_loss(dE, NULL, ws, E, lab, (MiningStrategy)miner, m, soft, N, D, 0, N);
                fixture_to_double(Ed, E, N * D);
                ref_dist(dm, Ed, N, D, 0);
                ref_triplet(&R0, NULL, dm, lab, N, 0, N, (MiningStrategy)miner, m, soft);
                double err = 0, gmax = 1;
                int used = 0;
                for (int e = 0; e < N * D; e++) {
                    fixture_to_double(Ed, E, N * D);
                    Ed[e] += h;
                    ref_dist(dm, Ed, N, D, 0);
                    ref_triplet(&Rp, NULL, dm, lab, N, 0, N, (MiningStrategy)miner, m, soft);
                    Ed[e] -= 2 * h;
                    ref_dist(dm, Ed, N, D, 0);
                    ref_triplet(&Rm, NULL, dm, lab, N, 0, N, (MiningStrategy)miner, m, soft);
                    if (Rp.sig != R0.sig || Rm.sig != R0.sig) continue; /* a kink */
                    double fd = (Rp.loss - Rm.loss) / (2 * h);
                    gmax = fmax(gmax, fabs(fd));
                    err = fmax(err, fabs(fd - dE[e]));
                    used++;
                }
                CHECK(used > N * D / 2, "%s soft=%d: %d of %d entries usable", miner_name[miner], soft, used,
                      N * D);
                CHECK(err / gmax < 2e-3, "%s soft=%d: finite differences rel err %g", miner_name[miner], soft,
                      err / gmax);
            }
        /* The explicit-list loss on a random list. */
        IndexTriplet t[40];
        for (int k = 0; k < 40; k++)
            t[k] =
                (IndexTriplet){(int32_t)rng_below(r, N), (int32_t)rng_below(r, N), (int32_t)rng_below(r, N)};
        for (int soft = 0; soft < 2; soft++) {
            memset(dE, 0, sizeof dE);
            LossStats st = triplet_list_loss(dE, E, t, 0.5f, soft, N, D, 0, 40);
            double err = 0, gmax = 1, L0 = 0;
            for (int e = -1; e < N * D; e++) {
                double L[2];
                for (int s = 0; s < 2; s++) {
                    fixture_to_double(Ed, E, N * D);
                    if (e >= 0) Ed[e] += s ? -h : h;
                    ref_dist(dm, Ed, N, D, 0);
                    L[s] = 0;
                    for (int k = 0; k < 40; k++) {
                        double g, x = dm[t[k].a * N + t[k].p] - dm[t[k].a * N + t[k].n];
                        L[s] += ref_term(x, 0.5, soft, &g);
                    }
                }
                if (e < 0) {
                    L0 = L[0];
                    continue;
                }
                double fd = (L[0] - L[1]) / (2 * h);
                gmax = fmax(gmax, fabs(fd));
                err = fmax(err, fabs(fd - dE[e]));
            }
            CHECK(test_close(st.loss_sum, L0, 1e-5), "list loss soft=%d: %g vs %g", soft, st.loss_sum, L0);
            CHECK(st.count == 40 && st.candidates == 40, "list count");
            CHECK(err / gmax < 2e-3, "list loss soft=%d: finite differences rel err %g", soft, err / gmax);
        }
    }
    free(ws);
}

/* ---- the global-mining contract: ranges add up ------------------------------ */

static void test_split(Rng *r) {
    enum { N = 48, D = 8 };
    static float E[N * D], dE1[N * D], dEp[N * D];
    float *ws = xaligned_floats(triplet_workspace_floats(N, N));
    static IndexTriplet ch1[N * N], chp[N * N];
    static double g1[N * D];
    int32_t lab[N];
    for (int data = 0; data < 2; data++) {
        if (data)
            fixture_gen_ties(E, lab, N, D, 4, r);
        else
            gen_smooth(E, lab, N, D, 4, r);
        for (int miner = 0; miner < 4; miner++) /* 3 = the explicit list */
            for (int soft = 0; soft < 2; soft++) {
                IndexTriplet list[100];
                for (int k = 0; k < 100; k++)
                    list[k] = (IndexTriplet){(int32_t)rng_below(r, N), (int32_t)rng_below(r, N),
                                             (int32_t)rng_below(r, N)};
                int n_all = miner == 3 ? 100 : N;
                IndexTriplet *c1 = miner == MINE_BATCH_ALL || miner == 3 ? NULL : ch1;
                memset(dE1, 0, sizeof dE1);
                LossStats s1 = miner == 3 ? triplet_list_loss(dE1, E, list, 0.2f, soft, N, D, 0, n_all)
                                          : triplet_loss(dE1, c1, ws, E, lab, (MiningStrategy)miner, 0.2f,
                                                         soft, N, D, 0, N);
                fixture_to_double(g1, dE1, N * D);
                for (int p = 1; p <= 4; p++) {
                    int cut[5];
                    fixture_random_cuts(cut, p, n_all, r);
                    LossStats sp = {0};
                    memset(dEp, 0, sizeof dEp);
                    long off = 0;
                    for (int q = 0; q < p; q++) {
                        LossStats s =
                            miner == 3
                                ? triplet_list_loss(dEp, E, list, 0.2f, soft, N, D, cut[q], cut[q + 1])
                                : triplet_loss(dEp, c1 ? chp + off : NULL, ws, E, lab, (MiningStrategy)miner,
                                               0.2f, soft, N, D, cut[q], cut[q + 1]);
                        off += (long)s.count;
                        loss_stats_add(&sp, &s);
                    }
                    const char *mn = miner == 3 ? "list" : miner_name[miner];
                    CHECK(sp.count == s1.count && sp.active == s1.active && sp.candidates == s1.candidates,
                          "%s soft=%d p=%d: counts %g/%g %ld/%ld", mn, soft, p, sp.count, s1.count, sp.active,
                          s1.active);
                    CHECK(test_close(sp.loss_sum, s1.loss_sum, 1e-5) &&
                              test_close(sp.hardness_sum, s1.hardness_sum, 1e-5),
                          "%s soft=%d p=%d: loss %.9g vs %.9g", mn, soft, p, sp.loss_sum, s1.loss_sum);
                    CHECK(fixture_grad_err(dEp, g1, N * D) < 1e-5, "%s soft=%d p=%d data=%d: dE err %g", mn,
                          soft, p, data, fixture_grad_err(dEp, g1, N * D));
                    if (c1)
                        CHECK(memcmp(ch1, chp, sizeof(IndexTriplet) * (size_t)s1.count) == 0,
                              "%s soft=%d p=%d: same chosen triplets", mn, soft, p);
                }
            }
    }
    IndexTriplet th[3];
    triplet_list_thirds(th, 30, 3);
    CHECK(th[1].a == 31 && th[1].p == 34 && th[1].n == 37, "thirds layout");
    free(ws);
}

/* ---- the hinge threshold of batch-all ---------------------------------------- */

static int hinge_ref(float dap, float dan, float m) { return (dap - dan) + m > 0.0f; }

static float rand_float_any(Rng *r) { /* every exponent, both signs, sometimes special */
    uint32_t u = (uint32_t)rng_u64(r);
    switch (rng_below(r, 16)) {
    case 0: return 0.0f;
    case 1: return INFINITY;
    case 2: return NAN;
    case 3: return FLT_MIN * (float)rng_uniform(r); /* subnormal */
    default: break;
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return isnan(f) ? 1.0f : f;
}

static void test_hinge_threshold(Rng *r) {
    long bad = 0, tried = 0, nan_t = 0;
    for (int i = 0; i < 20000; i++) {
        float dap, m;
        if (i % 2) { /* the distances of normalised embeddings and usual margins */
            dap = 2.0f * (float)rng_uniform(r);
            m = (float)rng_uniform(r);
        } else {
            dap = fabsf(rand_float_any(r));
            m = fabsf(rand_float_any(r));
            if (rng_below(r, 4) == 0) m = -m;
        }
        float T = triplet_hinge_threshold(dap, m);
        nan_t += isnan(T);
        /* around T, around dap + m, and anywhere */
        float probe[3] = {T, dap + m, fabsf(rand_float_any(r))};
        for (int q = 0; q < 3; q++) {
            float n = probe[q];
            for (int s = 0; s < 6; s++) n = nextafterf(n, -INFINITY);
            for (int s = 0; s < 13; s++, n = nextafterf(n, INFINITY)) {
                tried++;
                bad += hinge_ref(dap, n, m) != (n < T);
            }
        }
    }
    CHECK(bad == 0, "hinge threshold: %ld of %ld probes disagree with (d_ap - d_an) + m > 0", bad, tried);
    CHECK(nan_t == 0, "hinge threshold: NaN for %ld of 20000 (d_ap, m)", nan_t);
    /* The array form (16 lanes at a time with AVX-512) gives the scalar
     * function's bits for every lane: usual distances, any floats, the
     * smallest positive ones (the vector steps stop at +0), and margins of
     * every kind; lengths that leave a partial vector. */
    long diff = 0, total = 0;
    float dap[37], t[37];
    for (int i = 0; i < 4000; i++) {
        float m = i % 4 == 0   ? fabsf(rand_float_any(r)) * (rng_below(r, 2) ? 1.0f : -1.0f)
                  : i % 4 == 1 ? (float)rng_uniform(r)
                  : i % 4 == 2 ? FLT_TRUE_MIN * (float)rng_below(r, 3)
                               : 0.2f;
        int n = 1 + (int)rng_below(r, 37);
        for (int k = 0; k < n; k++) {
            switch (rng_below(r, 4)) {
            case 0:
                dap[k] = 2.0f * (float)rng_uniform(r);
                break;
            case 1:
                dap[k] = fabsf(rand_float_any(r));
                break;
            case 2:
                dap[k] = FLT_TRUE_MIN * (float)rng_below(r, 4);
                break;
            default:
                dap[k] = rand_float_any(r);
                break;
            }
        }
        triplet_hinge_thresholds(t, dap, n, m);
        for (int k = 0; k < n; k++) {
            float want = triplet_hinge_threshold(dap[k], m);
            total++;
            diff += memcmp(&want, &t[k], sizeof want) != 0;
        }
    }
    CHECK(diff == 0, "hinge thresholds (array form): %ld of %ld differ from the scalar function's bits", diff,
          total);
}

/* ---- batch-all hinge: the counting paths against the float predicate ------- */

/* Batch-all's hinge keeps integer counts, c_p per positive and c_n per
 * negative, found by a blocked pass over the row (any number of positives)
 * or, with AVX-512 and at most 63 positives, by ranking the negatives among
 * the sorted thresholds. Both must give exactly the counts of the loss's own
 * float test, (d_ap - d_an) + m > 0, on the float distances: then dE is bit
 * for bit dist_matrix_backward of those counts. PK batches on both sides of
 * 63 positives, N not a multiple of 16, quantised rows (equal distances and
 * equal thresholds), margins 0, tiny, usual, huge and negative, and anchor
 * subsets as one rank of several sees them. */
static void test_hinge_counts(Rng *r) {
    static const int pk[][2] = {{3, 70}, {2, 65}, {4, 64}, {3, 63}, {5, 33},
                                {7, 9},  {30, 2}, {3, 17}, {1, 40}};
    static const float margins[] = {0.2f, 0.0f, 1e-7f, 5.0f, -0.05f};
    int D = 8, bad_count = 0, bad_grad = 0, bad_loss = 0, cases = 0;
    for (size_t c = 0; c < sizeof pk / sizeof pk[0]; c++)
        for (int quant = 0; quant < 2; quant++) {
            int N = pk[c][0] * pk[c][1] + (quant ? 3 : 0); /* 3 rows of one more class */
            float *E = xaligned_floats((size_t)N * D), *dE = xaligned_floats((size_t)N * D);
            float *dE2 = xaligned_floats((size_t)N * D), *d = xaligned_floats((size_t)N * N);
            float *dd = xaligned_floats((size_t)N * N), *ws = xaligned_floats(triplet_workspace_floats(N, N));
            float *ws2 = xaligned_floats(dist_backward_workspace_floats(N, N) + (size_t)N + N);
            int32_t *lab = xmalloc((size_t)N * sizeof *lab);
            gen_smooth(E, lab, N, D, 1, r);
            for (int i = 0; i < N; i++) lab[i] = i < pk[c][0] * pk[c][1] ? i / pk[c][1] : 99;
            if (quant) /* a few levels per entry: many equal distances */
                for (int i = 0; i < N * D; i++) E[i] = 0.25f * roundf(4.0f * E[i]);
            for (size_t mi = 0; mi < sizeof margins / sizeof margins[0]; mi++) {
                float m = margins[mi];
                int a0 = (int)rng_below(r, (uint64_t)N / 2),
                    a1 = a0 + 1 + (int)rng_below(r, (uint64_t)(N - a0));
                int Na = a1 - a0;
                memset(dE, 0, (size_t)N * D * sizeof *dE);
                LossStats st = triplet_loss(dE, NULL, ws, E, lab, MINE_BATCH_ALL, m, 0, N, D, a0, a1);
                /* the reference: counts from the float test, same distances */
                dist_matrix(d, E + (size_t)a0 * D, E, Na, N, D, ws2);
                memset(dd, 0, (size_t)Na * N * sizeof *dd);
                long active = 0;
                double loss = 0;
                for (int i = 0; i < Na; i++) {
                    const float *row = d + (size_t)i * N;
                    for (int p = 0; p < N; p++) {
                        if (p == a0 + i || lab[p] != lab[a0 + i]) continue;
                        for (int n = 0; n < N; n++) {
                            if (lab[n] == lab[a0 + i] || !((row[p] - row[n]) + m > 0.0f)) continue;
                            dd[(size_t)i * N + p] += 1.0f;
                            dd[(size_t)i * N + n] -= 1.0f;
                            active++;
                            loss += ((double)row[p] + m) - (double)row[n];
                        }
                    }
                }
                memset(dE2, 0, (size_t)N * D * sizeof *dE2);
                dist_matrix_backward(dE2 + (size_t)a0 * D, dE2, dd, d, E + (size_t)a0 * D, E, Na, N, D, ws2);
                cases++;
                bad_count += st.active != active || st.count != (double)active;
                bad_grad += memcmp(dE, dE2, (size_t)N * D * sizeof *dE) != 0;
                bad_loss += !test_close(st.loss_sum, loss, 1e-9);
                if (st.active != active || memcmp(dE, dE2, (size_t)N * D * sizeof *dE) != 0)
                    fprintf(stderr,
                            "  hinge counts: P=%d K=%d quant=%d m=%g anchors [%d,%d): active %ld/%ld\n",
                            pk[c][0], pk[c][1], quant, (double)m, a0, a1, st.active, active);
            }
            free(E), free(dE), free(dE2), free(d), free(dd), free(ws), free(ws2), free(lab);
        }
    CHECK(bad_count == 0, "batch-all hinge: active count differs from the float test in %d of %d cases",
          bad_count, cases);
    CHECK(bad_grad == 0,
          "batch-all hinge: dE not bit-equal to the backward of the exact counts in %d of %d cases", bad_grad,
          cases);
    CHECK(bad_loss == 0, "batch-all hinge: loss off the exact-count sum in %d of %d cases", bad_loss, cases);
}

int main(void) {
    Rng r;
    rng_seed(&r, 11, RNG_TEST, 1);
    test_distance(&r);
    test_ties(&r);
    test_hinge_threshold(&r);
    test_hinge_counts(&r);
    test_fd(&r);
    test_split(&r);
    return test_finish();
}
