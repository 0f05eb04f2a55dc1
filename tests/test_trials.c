/* test_trials: within-group N-way K-shot trials (mining/trials.c) against
 * hand-worked cases: the drawing index of a name, the tie credit, trial
 * scores of hand-built trials, the Wilson interval at the closed forms of
 * p = 0 and p = 1 and two known values, and audits of every drawn trial
 * (one group per trial, the paired drawing rule, excluded groups never
 * drawn, determinism, the cases that must fail). */
#include <math.h>
#include <string.h>

#include "../mining/trials.h"
#include "test.h"

static void test_drawing_of(void) {
    CHECK(trials_drawing_of("Alphabet/character01/0975_14.png") == 14, "omniglot name");
    CHECK(trials_drawing_of("0975_01.png") == 1, "no directory");
    CHECK(trials_drawing_of("a_b/c_7") == 7, "no extension, '_' in the directory");
    CHECK(trials_drawing_of("x/y.z/0001_20.pgm") == 20, "dot in the directory");
    CHECK(trials_drawing_of("cat/1.png") == -1, "no '_'");
    CHECK(trials_drawing_of("cat/a_.png") == -1, "no digits");
    CHECK(trials_drawing_of("cat/a_1x.png") == -1, "not only digits");
    CHECK(trials_drawing_of("cat/a_1234567890.png") == -1, "10 digits");
    CHECK(trials_drawing_of("train-images-idx3-ubyte.gz#17") == -1, "idx name");
}

static void test_credit_and_wilson(void) {
    double s1[4] = {0.1, 0.9, 0.3, 0.2}, s2[4] = {0.5, 0.9, 0.9, 0.9}, s3[3] = {1, 1, 1};
    CHECK(metrics_trial_credit(s1, 4, 1) == 1.0 && metrics_trial_credit(s1, 4, 0) == 0.0, "clear top");
    CHECK(metrics_trial_credit(s2, 4, 2) == 1.0 / 3 && metrics_trial_credit(s2, 4, 0) == 0.0,
          "three-way tie");
    CHECK(metrics_trial_credit(s3, 3, 2) == 1.0 / 3, "all tied");
    double lo, hi, z2 = 1.959963984540054 * 1.959963984540054;
    trials_wilson95(&lo, &hi, 0.0, 10);
    CHECK(lo == 0.0 && test_close(hi, z2 / (10 + z2), 1e-12), "p = 0: [0, z^2 / (n + z^2)] = [%g, %g]", lo,
          hi);
    trials_wilson95(&lo, &hi, 1.0, 200);
    CHECK(test_close(lo, 200 / (200 + z2), 1e-12) && hi == 1.0, "p = 1: [n / (n + z^2), 1] = [%g, %g]", lo,
          hi);
    trials_wilson95(&lo, &hi, 0.5, 100);
    CHECK(fabs(lo - 0.4038315) < 1e-6 && fabs(hi - 0.5961685) < 1e-6, "p = 0.5, n = 100: [%g, %g]", lo, hi);
    trials_wilson95(&lo, &hi, 0.9, 400);
    CHECK(fabs(lo - 0.8666894) < 1e-6 && fabs(hi - 0.9257007) < 1e-6, "p = 0.9, n = 400: [%g, %g]", lo, hi);
    trials_wilson95(&lo, &hi, 0.5, 0);
    CHECK(isnan(lo) && isnan(hi), "no trials: NaN");
}

/* Similarity of 1-D points: -|x_i - x_j|. */
static double sim_line(void *ctx, int i, int j) {
    const double *x = ctx;
    return -fabs(x[i] - x[j]);
}

static void test_score_by_hand(void) {
    /* Points x = 0, 1, 3, 5, 4, 9 on a line, 1-shot, 2-way:
     * T0: query 0 (x 0) vs supports 1 (d 1), 2 (d 3): class 0 wins, answer 0 -> 1
     * T1: query 3 (x 5) vs 4 (d 1), 1 (d 4): class 0 wins, answer 1 -> 0
     * T2: query 0 vs 1 (d 1), 2 (d 3): class 0, answer 0 -> 1
     * T3: query 1 (x 1) vs 0 (d 1), 2 (d 2): class 0, answer 1 -> 0
     * mean 0.5. */
    double x[6] = {0, 1, 3, 5, 4, 9};
    Trials t;
    trials_alloc(&t, 4, 2, 1);
    uint32_t q[4] = {0, 3, 0, 1}, s[8] = {1, 2, 4, 1, 1, 2, 0, 2};
    int32_t a[4] = {0, 1, 0, 1};
    memcpy(t.query, q, sizeof q);
    memcpy(t.support, s, sizeof s);
    memcpy(t.answer, a, sizeof a);
    double credit[4];
    double acc = trials_score(&t, sim_line, x, credit);
    CHECK(credit[0] == 1 && credit[1] == 0 && credit[2] == 1 && credit[3] == 0 && acc == 0.5,
          "1-shot credits 1 0 1 0, mean 0.5: %g %g %g %g -> %g", credit[0], credit[1], credit[2], credit[3],
          acc);
    trials_free(&t);

    /* 2-shot, 2-way (a class scores its mean similarity):
     * T0: query 0 (x 0); class 0 {1, 3} (d 1, 5: -3), class 1 {2, 4} (d 3, 4:
     *     -3.5): class 0, answer 0 -> 1
     * T1: query 4 (x 4); class 0 {1, 2} (d 3, 1: -2), class 1 {3, 5} (d 1, 5:
     *     -3): class 0, answer 1 -> 0
     * T2: query 0; class 0 {1, 5} (d 1, 9: -5), class 1 {2, 1} (d 3, 1: -2):
     *     class 1, answer 1 -> 1
     * mean 2/3. */
    trials_alloc(&t, 3, 2, 2);
    uint32_t q2[3] = {0, 4, 0}, s2[12] = {1, 3, 2, 4, 1, 2, 3, 5, 1, 5, 2, 1};
    int32_t a2[3] = {0, 1, 1};
    memcpy(t.query, q2, sizeof q2);
    memcpy(t.support, s2, sizeof s2);
    memcpy(t.answer, a2, sizeof a2);
    acc = trials_score(&t, sim_line, x, credit);
    CHECK(credit[0] == 1 && credit[1] == 0 && credit[2] == 1 && fabs(acc - 2.0 / 3) < 1e-15,
          "2-shot credits 1 0 1: %g %g %g", credit[0], credit[1], credit[2]);
    trials_free(&t);

    /* A tie: query 0 (x 0) against x 1 and x -1. */
    double y[3] = {0, 1, -1};
    trials_alloc(&t, 1, 2, 1);
    t.query[0] = 0, t.support[0] = 1, t.support[1] = 2, t.answer[0] = 1;
    CHECK(trials_score(&t, sim_line, y, NULL) == 0.5, "a tie of two gives 1/2");
    trials_free(&t);
}

/* A data set of G groups x C classes x S samples; label = g * C + c,
 * sample id = label * S + s, drawing = s + 1 (or per `drawing`). */
enum { G = 4, C = 6, S = 5, NS = G * C * S };
static int32_t labels[NS], group_of[G * C];

static double sim_same(void *ctx, int i, int j) {
    (void)ctx;
    return labels[i] == labels[j];
}
static double sim_const(void *ctx, int i, int j) {
    (void)ctx, (void)i, (void)j;
    return 0.25;
}

/* Every trial is valid: n_way distinct classes of one allowed group, the
 * answer class is the query's, K distinct supports of the right class, the
 * query not among them; with drawing: the paired rule. */
static int audit(const Trials *t, const int32_t *drawing, const int32_t *gof, char *why, size_t cap) {
    int K = t->k_shot, W = t->n_way;
    for (int i = 0; i < t->n; i++) {
        const uint32_t *sup = t->support + (size_t)i * W * K;
        int32_t g = gof[labels[t->query[i]]];
        if (g < 0 || g != t->group[i])
            return snprintf(why, cap, "trial %d: group %d of %d", i, t->group[i], g), 0;
        if (labels[sup[t->answer[i] * K]] != labels[t->query[i]])
            return snprintf(why, cap, "trial %d: answer class is not the query's", i), 0;
        for (int w = 0; w < W; w++) {
            int32_t l = labels[sup[w * K]];
            if (gof[l] != g) return snprintf(why, cap, "trial %d: class %d from another group", i, w), 0;
            for (int v = 0; v < w; v++)
                if (labels[sup[v * K]] == l) return snprintf(why, cap, "trial %d: class twice", i), 0;
            for (int k = 0; k < K; k++) {
                uint32_t s = sup[w * K + k];
                if (labels[s] != l || s == t->query[i])
                    return snprintf(why, cap, "trial %d: bad support", i), 0;
                for (int k2 = 0; k2 < k; k2++)
                    if (sup[w * K + k2] == s) return snprintf(why, cap, "trial %d: support twice", i), 0;
                if (drawing && drawing[s] != drawing[sup[k]])
                    return snprintf(why, cap, "trial %d: class %d support %d drawing %d, not %d", i, w, k,
                                    drawing[s], drawing[sup[k]]),
                           0;
            }
        }
        if (drawing)
            for (int k = 0; k < K; k++)
                if (drawing[t->query[i]] == drawing[sup[k]])
                    return snprintf(why, cap, "trial %d: query drawing %d among the supports'", i,
                                    drawing[t->query[i]]),
                           0;
    }
    return 1;
}

static void test_draw(void) {
    for (int l = 0; l < G * C; l++) group_of[l] = l / C;
    for (int i = 0; i < NS; i++) labels[i] = i / S;
    char why[256] = "";
    Err e;
    Trials t, u;
    int32_t drawing[NS];
    for (int i = 0; i < NS; i++) drawing[i] = i % S + 1;
    const int cfg[3][3] = {{5, 1, TRIALS_ANY}, {6, 3, TRIALS_ANY}, {4, 2, TRIALS_PAIRED}};
    for (int c = 0; c < 3; c++) {
        TrialsSpec s = {cfg[c][0], cfg[c][1], 500, 7, cfg[c][2]};
        int rc = trials_within_groups(&t, &s, labels, NS, group_of, G * C, G, drawing, &e);
        CHECK(rc == 0, "%d-way %d-shot: %s", s.n_way, s.k_shot, rc ? e.msg : "");
        if (rc) continue;
        CHECK(t.n == 500 && audit(&t, s.rule == TRIALS_PAIRED ? drawing : NULL, group_of, why, sizeof why),
              "%d-way %d-shot rule %d: %s", s.n_way, s.k_shot, s.rule, why);
        int pos[8] = {0}, grp[G] = {0};
        for (int i = 0; i < t.n; i++) pos[t.answer[i]]++, grp[t.group[i]]++;
        int spread = 1;
        for (int w = 0; w < s.n_way; w++) spread &= pos[w] > 500 / s.n_way / 2;
        for (int g = 0; g < G; g++) spread &= grp[g] > 500 / G / 2;
        CHECK(spread, "answers over every position and trials over every group");
        CHECK(trials_score(&t, sim_same, NULL, NULL) == 1.0, "perfect similarity: 1");
        uint32_t keep = t.query[7];
        t.query[7] = t.support[(size_t)7 * s.n_way * s.k_shot]; /* the audit itself catches a bad trial */
        CHECK(!audit(&t, s.rule == TRIALS_PAIRED ? drawing : NULL, group_of, why, sizeof why),
              "audit fails a bad trial");
        t.query[7] = keep;
        CHECK(fabs(trials_score(&t, sim_const, NULL, NULL) - 1.0 / s.n_way) < 1e-12,
              "constant: ties give 1/N");
        CHECK(trials_within_groups(&u, &s, labels, NS, group_of, G * C, G, drawing, &e) == 0 &&
                  !memcmp(t.query, u.query, 500 * 4) &&
                  !memcmp(t.support, u.support, (size_t)500 * s.n_way * s.k_shot * 4),
              "same seed, same trials");
        trials_free(&u);
        s.seed = 8;
        CHECK(trials_within_groups(&u, &s, labels, NS, group_of, G * C, G, drawing, &e) == 0 &&
                  memcmp(t.query, u.query, 500 * 4),
              "another seed, other trials");
        trials_free(&u);
        trials_free(&t);
    }

    /* Groups 1 and 3 left out: never drawn. */
    int32_t only[G * C];
    for (int l = 0; l < G * C; l++) only[l] = l / C == 1 || l / C == 3 ? -1 : l / C;
    TrialsSpec s = {3, 1, 300, 2, TRIALS_ANY};
    CHECK(trials_within_groups(&t, &s, labels, NS, only, G * C, G, NULL, &e) == 0 &&
              audit(&t, NULL, only, why, sizeof why),
          "restricted groups: %s", why);
    trials_free(&t);

    /* Hand-worked paired case: one group of classes A, B, C (labels 0, 1,
     * 2); A has drawings 1, 2, 3; B and C have 1 and 2. A 3-way trial needs a
     * support drawing all three have (1 or 2); a query drawing of 3 leaves A
     * as the only query class. So every trial: supports share drawing 1 or
     * 2; the query is A's drawing 3, or a class's other of {1, 2}. */
    int32_t lab3[7] = {0, 0, 0, 1, 1, 2, 2}, dr3[7] = {1, 2, 3, 2, 1, 1, 2}, g3[3] = {0, 0, 0};
    TrialsSpec p3 = {3, 1, 400, 5, TRIALS_PAIRED};
    int rc = trials_within_groups(&t, &p3, lab3, 7, g3, 3, 1, dr3, &e);
    CHECK(rc == 0, "paired hand case: %s", rc ? e.msg : "");
    int ok = !rc, seen3 = 0;
    for (int i = 0; ok && i < t.n; i++) {
        int32_t d1 = dr3[t.support[3 * i]];
        for (int w = 0; w < 3; w++) ok &= dr3[t.support[3 * i + w]] == d1;
        ok &= (d1 == 1 || d1 == 2) && dr3[t.query[i]] != d1 &&
              lab3[t.support[3 * i + t.answer[i]]] == lab3[t.query[i]];
        seen3 += dr3[t.query[i]] == 3;
        ok &= dr3[t.query[i]] != 3 || lab3[t.query[i]] == 0;
    }
    CHECK(ok && seen3 > 0 && seen3 < t.n,
          "paired hand case: supports drawing 1 or 2, query 3 only from A (%d)", seen3);
    if (!rc) trials_free(&t);

    /* Cases that must fail. */
    TrialsSpec big = {C + 1, 1, 10, 1, TRIALS_ANY};
    CHECK(trials_within_groups(&t, &big, labels, NS, group_of, G * C, G, NULL, &e) == -1 &&
              strstr(e.msg, "no group has 7 classes"),
          "N above the classes of any group: %s", e.msg);
    TrialsSpec many = {2, S, 10, 1, TRIALS_ANY};
    CHECK(trials_within_groups(&t, &many, labels, NS, group_of, G * C, G, NULL, &e) == -1,
          "K = S leaves no query: %s", e.msg);
    int32_t lonely[7] = {1, 2, 3, 4, 5, 6, 7}; /* nobody shares a drawing */
    CHECK(trials_within_groups(&t, &p3, lab3, 7, g3, 3, 1, lonely, &e) == -1 && strstr(e.msg, "1000 draws"),
          "no shared drawings: %s", e.msg);
    int32_t missing[7] = {1, 2, 3, 2, -1, 1, 2};
    CHECK(trials_within_groups(&t, &p3, lab3, 7, g3, 3, 1, missing, &e) == -1 && strstr(e.msg, "sample 4"),
          "a missing drawing is named: %s", e.msg);
    TrialsSpec one = {1, 1, 10, 1, TRIALS_ANY};
    CHECK(trials_within_groups(&t, &one, labels, NS, group_of, G * C, G, NULL, &e) == -1, "1-way refused: %s",
          e.msg);
}

int main(void) {
    test_drawing_of();
    test_credit_and_wilson();
    test_score_by_hand();
    test_draw();
    return test_finish();
}
