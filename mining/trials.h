/* trials: N-way K-shot trials as explicit lists of sample indices, drawn
 * within groups of classes (all N classes of a trial from one group, e.g.
 * one Omniglot alphabet) or read from a file by the caller, and scored with
 * any similarity. Koch et al.'s one-shot protocol as Lake et al. define it
 * is the paired drawing rule: every support is drawing d1 of its class, the
 * query drawing d2 != d1 of one of them. Pure functions, no MPI, no I/O. */
#ifndef SIAMESE_TRIALS_H
#define SIAMESE_TRIALS_H

#include <stdint.h>

#include "metrics.h"

/* n trials of n_way classes with k_shot supports each. Trial t asks which
 * class query[t] belongs to; class w's supports are support[(t * n_way + w)
 * * k_shot + k], k < k_shot; answer[t] in [0, n_way) is the right class;
 * group[t] is the group the trial was drawn from (-1: unknown, e.g. a file). */
typedef struct Trials {
    int n, n_way, k_shot;
    uint32_t *query;   /* (n) */
    uint32_t *support; /* (n, n_way, k_shot) */
    int32_t *answer;   /* (n) */
    int32_t *group;    /* (n) */
} Trials;

void trials_alloc(Trials *t, int n, int n_way, int k_shot);
void trials_free(Trials *t);

/* Drawing rules of trials_within_groups. */
enum { TRIALS_ANY, TRIALS_PAIRED };

typedef struct TrialsSpec {
    int n_way, k_shot, trials;
    uint64_t seed;
    int rule; /* TRIALS_ANY or TRIALS_PAIRED */
} TrialsSpec;

/* Draws spec->trials seeded trials (one stream, rng_seed(seed, RNG_EVAL, 2))
 * whose n_way classes all come from one group. labels[i] in [0, n_labels);
 * group_of[l] is label l's group in [0, n_groups), or -1 to leave the label
 * out. Each trial: a group uniform over the groups that can hold a trial,
 * then
 *   ANY:    a query class uniform over the group's classes with >= k_shot + 1
 *           samples, n_way - 1 others uniform without replacement over its
 *           classes with >= k_shot samples; k_shot distinct supports per
 *           class uniformly, the query another sample of its class.
 *   PAIRED: drawing[i] >= 0 is sample i's drawing index (for Omniglot the
 *           person who drew it). k_shot + 1 distinct drawing values d_1..d_k,
 *           d_q uniform over those present in the group; classes that have
 *           every d_1..d_k may be supports, and those that also have d_q may
 *           be the query's; the query class uniform over the latter, the
 *           others uniform over the former; class c's supports are its
 *           samples with drawings d_1..d_k, the query its sample with d_q (the
 *           lowest index when a drawing repeats). A draw where fewer than
 *           n_way classes qualify is redrawn (group and drawings), at most
 *           1000 times per trial.
 * The answer's position among the n_way classes is uniform. Returns 0, or -1
 * with e saying why no trial can be drawn (no group with n_way classes of
 * enough samples, a needed drawing index missing, redraws exhausted). */
int trials_within_groups(Trials *out, const TrialsSpec *spec, const int32_t *labels /* (N) */, int N,
                         const int32_t *group_of /* (n_labels) */, int n_labels, int n_groups,
                         const int32_t *drawing /* (N), PAIRED only; else may be NULL */, Err *e);

/* Scores every trial: class w scores the mean of sim(query, support) over
 * its k_shot supports; credit[t] is 1 if the answer alone has the top score,
 * 1/m if it ties with m - 1 others, else 0 (metrics_trial_credit). Returns
 * the mean credit (NaN if t->n == 0); credit may be NULL. */
double trials_score(const Trials *t, MetricsSim sim, void *ctx, double *credit /* (n) */);

/* Wilson score interval at 95 % (z = 1.959964) for a fraction p of n trials:
 * [lo, hi] within [0, 1]; NaN, NaN when n < 1. */
void trials_wilson95(double *lo, double *hi, double p, int n);

/* The drawing index in a sample name: the digits after the last '_' of its
 * last path component, before the extension ("Alphabet/character01/
 * 0975_14.png" -> 14). -1 when there are none (or more than 9 digits). */
int32_t trials_drawing_of(const char *name);

#endif
