/* test_simloss: InfoNCE (symmetric and one-way) and multi-similarity (mined
 * and all pairs) against a naive double-precision implementation written
 * from the formulas (loss, count, mined pairs), their gradients against
 * central differences of that reference, the global mining contract
 * (anchor ranges add up to one call), and PyTorch autograd on the same
 * pool (tests/parity_simloss.py with Debian's python3-torch). */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../io/npy.h"
#include "../mining/simloss.h"
#include "../nn/util.h"
#include "test.h"

#define PYTHON "/usr/bin/python3"
#define N 26
#define D 6

typedef struct Case {
    const char *name;
    int ms, symmetric, mine;
    float t, alpha, beta, base, eps;
} Case;

static const Case cases[] = {
    {"infonce symmetric t=0.1", 0, 1, 0, 0.1f, 0, 0, 0, 0},
    {"infonce one-way t=0.5", 0, 0, 0, 0.5f, 0, 0, 0, 0},
    {"multi-similarity mined", 1, 0, 1, 0, 2.0f, 50.0f, 0.5f, 0.1f},
    {"multi-similarity all pairs", 1, 0, 0, 0, 2.0f, 10.0f, 0.3f, 0.1f},
};
#define NCASES (int)(sizeof cases / sizeof cases[0])

static int32_t labels[N];

static double dot(const double *E, int i, int j) {
    double s = 0;
    for (int k = 0; k < D; k++) s += E[i * D + k] * E[j * D + k];
    return s;
}

/* The loss sum over anchors [a0, a1) straight from the formulas; *count
 * and, for MS, a fingerprint of the kept pairs. */
static double ref_loss(const Case *c, const double *E, int a0, int a1, double *count, uint64_t *kept_sig) {
    double sum = 0;
    *count = 0;
    uint64_t sig = HASH64_INIT;
    for (int a = a0; a < a1; a++) {
        if (!c->ms) {
            for (int p = 0; p < N; p++) {
                if (p == a || labels[p] != labels[a] || (!c->symmetric && p < a)) continue;
                double num = exp(dot(E, a, p) / c->t), den = num;
                for (int n = 0; n < N; n++)
                    if (labels[n] != labels[a]) den += exp(dot(E, a, n) / c->t);
                sum += -log(num / den);
                *count += 1;
            }
            continue;
        }
        double minp = INFINITY, maxn = -INFINITY;
        for (int j = 0; j < N; j++) {
            if (j == a) continue;
            if (labels[j] == labels[a])
                minp = fmin(minp, dot(E, a, j));
            else
                maxn = fmax(maxn, dot(E, a, j));
        }
        double sp = 0, sn = 0;
        for (int j = 0; j < N; j++) {
            if (j == a) continue;
            double s = dot(E, a, j);
            int pos = labels[j] == labels[a];
            int kept = !c->mine || (pos ? s - c->eps < maxn : s + c->eps > minp);
            if (!kept) continue;
            sig = hash64(&j, sizeof j, hash64(&a, sizeof a, sig));
            if (pos)
                sp += exp(-c->alpha * (s - c->base));
            else
                sn += exp(c->beta * (s - c->base));
        }
        sum += log(1 + sp) / c->alpha + log(1 + sn) / c->beta;
        *count += 1;
    }
    if (kept_sig) *kept_sig = sig;
    return sum;
}

static LossStats run_c(const Case *c, float *dE, const float *E, int a0, int a1) {
    static float ws[N * N];
    if (c->ms)
        return simloss_multi_similarity(dE, ws, E, labels, c->alpha, c->beta, c->base, c->eps, c->mine, N, D,
                                        a0, a1);
    return simloss_infonce(dE, ws, E, labels, c->t, c->symmetric, N, D, a0, a1);
}

/* Rows on the unit sphere, 6 classes of 4 and one singleton (no positive). */
static void make_pool(float *E, double *Ed, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed, RNG_TEST, 77);
    for (int i = 0; i < N; i++) {
        labels[i] = i < 24 ? (int32_t)((i * 5) % 6) : 6;
        double n2 = 0, v[D];
        for (int k = 0; k < D; k++) {
            v[k] = rng_normal(&r) + (k == labels[i] % D ? 1.2 : 0);
            n2 += v[k] * v[k];
        }
        for (int k = 0; k < D; k++) {
            E[i * D + k] = (float)(v[k] / sqrt(n2));
            Ed[i * D + k] = E[i * D + k];
        }
    }
}

static void test_against_reference(void) {
    float E[N * D], dE[N * D], dE2[N * D];
    double Ed[N * D];
    make_pool(E, Ed, 1);
    for (int k = 0; k < NCASES; k++) {
        const Case *c = &cases[k];
        memset(dE, 0, sizeof dE);
        LossStats s = run_c(c, dE, E, 0, N);
        double cnt;
        double want = ref_loss(c, Ed, 0, N, &cnt, NULL);
        CHECK(test_close(s.loss_sum, want, 2e-5) && s.count == cnt,
              "%s: loss %.9g vs reference %.9g, count %g vs %g", c->name, s.loss_sum, want, s.count, cnt);
        /* Anchor ranges add up to the whole: [0, 7) + [7, 19) + [19, N). */
        memset(dE2, 0, sizeof dE2);
        LossStats t = {0}, u;
        int cuts[4] = {0, 7, 19, N};
        for (int q = 0; q < 3; q++) {
            u = run_c(c, dE2, E, cuts[q], cuts[q + 1]);
            loss_stats_add(&t, &u);
        }
        double gd = 0;
        for (int i = 0; i < N * D; i++) gd = fmax(gd, fabs(dE[i] - dE2[i]));
        CHECK(test_close(t.loss_sum, s.loss_sum, 1e-6) && t.count == s.count && t.active == s.active &&
                  t.candidates == s.candidates && gd < 1e-5,
              "%s: three anchor ranges give one call's loss (%.9g vs %.9g) and gradient (%.3g)", c->name,
              t.loss_sum, s.loss_sum, gd);
        /* Central differences of the reference; entries where the mined
         * pairs change within +-h are skipped (the loss jumps there). */
        double worst = 0;
        int checked = 0;
        uint64_t sig0;
        ref_loss(c, Ed, 0, N, &cnt, &sig0);
        for (int i = 0; i < N * D; i++) {
            double keep = Ed[i], h = 1e-5, lp, lm;
            uint64_t sp, sm;
            Ed[i] = keep + h;
            lp = ref_loss(c, Ed, 0, N, &cnt, &sp);
            Ed[i] = keep - h;
            lm = ref_loss(c, Ed, 0, N, &cnt, &sm);
            Ed[i] = keep;
            if (sp != sig0 || sm != sig0) continue;
            double fd = (lp - lm) / (2 * h);
            worst = fmax(worst, fabs(fd - dE[i]) / fmax(1.0, fabs(fd)));
            checked++;
        }
        CHECK(worst < 1e-4 && checked > N * D * 3 / 4,
              "%s: gradient vs central differences, worst %.3g over %d", c->name, worst, checked);
    }
    /* Mining keeps fewer pairs than all pairs, and only the informative ones. */
    Case all = cases[2];
    all.mine = 0;
    LossStats m = run_c(&cases[2], dE, E, 0, N), a = run_c(&all, dE, E, 0, N);
    CHECK(m.loss_sum < a.loss_sum && m.candidates == a.candidates, "mined MS keeps a subset (%.6g < %.6g)",
          m.loss_sum, a.loss_sum);
}

/* Everything exactly at a tie: identical rows of two classes. */
static void test_degenerate(void) {
    float E[N * D], dE[N * D];
    for (int i = 0; i < N; i++) {
        labels[i] = i % 2;
        for (int k = 0; k < D; k++) E[i * D + k] = k == 0 ? 1.0f : 0.0f;
    }
    memset(dE, 0, sizeof dE);
    LossStats s = run_c(&cases[0], dE, E, 0, N);
    /* Every logit equal: each term is log(1 + 13) (12 other positives are
     * not in the denominator; 13 negatives). */
    double per = log(14.0);
    CHECK(test_close(s.loss_sum / s.count, per, 1e-6) && s.count == N * 12,
          "infonce with identical rows: %.9g per term (want log 14 = %.9g), %g terms", s.loss_sum / s.count,
          per, s.count);
    double g = 0;
    for (int i = 0; i < N * D; i++) g = fmax(g, fabs(dE[i]));
    CHECK(isfinite(g), "finite gradient at a tie");
}

/* PyTorch autograd on the same pool, case by case. */
static void test_torch(void) {
    char dir[] = "/tmp/siamese-simloss-XXXXXX";
    if (!mkdtemp(dir)) FATAL("mkdtemp failed");
    float E[N * D], dE[N * D];
    double Ed[N * D];
    make_pool(E, Ed, 2);
    Err e;
    char path[PATH_MAX], cmd[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/E.npy", dir);
    if (npy_write_f32(path, E, N, D, &e)) FATAL("%s", e.msg);
    snprintf(path, sizeof path, "%s/labels.npy", dir);
    if (npy_write_i32(path, labels, N, &e)) FATAL("%s", e.msg);
    const char *script = access("tests/parity_simloss.py", R_OK) == 0 ? "tests/parity_simloss.py" : NULL;
    CHECK(script != NULL, "run from the repository root (tests/parity_simloss.py)");
    for (int k = 0; k < NCASES && script; k++) {
        const Case *c = &cases[k];
        snprintf(cmd, sizeof cmd, "%s %s %s %s %d %d %.9g %.9g %.9g %.9g %.9g %d", PYTHON, script, dir,
                 c->ms ? "ms" : "infonce", c->symmetric, c->mine, c->t, c->alpha, c->beta, c->base, c->eps,
                 k);
        int rc = system(cmd);
        CHECK(rc == 0, "%s: %s exited %d (python3-torch: `make deps`)", c->name, cmd, rc);
        if (rc) continue;
        memset(dE, 0, sizeof dE);
        LossStats s = run_c(c, dE, E, 0, N);
        NpyArray tl, tg;
        snprintf(path, sizeof path, "%s/loss%d.npy", dir, k);
        if (npy_read(&tl, path, &e)) FATAL("%s", e.msg);
        snprintf(path, sizeof path, "%s/grad%d.npy", dir, k);
        if (npy_read(&tg, path, &e)) FATAL("%s", e.msg);
        CHECK(tl.dtype == 'f' && tl.count == 1 && tg.dtype == 'f' && tg.count == N * D,
              "%s: torch output shapes", c->name);
        const float *g = tg.data;
        double mean = s.loss_sum / s.count, gw = 0;
        for (int i = 0; i < N * D; i++) gw = fmax(gw, fabs(dE[i] / s.count - g[i]) / fmax(1e-2, fabs(g[i])));
        CHECK(test_close(mean, ((float *)tl.data)[0], 1e-5), "%s: mean loss %.9g vs torch %.9g", c->name,
              mean, ((float *)tl.data)[0]);
        npy_free(&tl), npy_free(&tg);
        CHECK(gw < 1e-4, "%s: gradient vs torch autograd, worst relative %.3g", c->name, gw);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) util_warn("could not remove %s", dir);
}

int main(void) {
    test_against_reference();
    test_degenerate();
    test_torch();
    return test_finish();
}
