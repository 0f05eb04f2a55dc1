/* protocol: one-shot evaluation protocols over a dataset's class groups and
 * sample names: N-way K-shot trials within a group (Koch et al.'s Omniglot
 * protocol as Lake et al. define it is the paired rule over ten evaluation
 * alphabets), trials files (a fixed list of trials by sample name, format in
 * docs/formats.md), and the score of trials with its 95 % interval and a
 * per-group breakdown. Serial, no MPI; the similarity comes from the caller. */
#ifndef SIAMESE_PROTOCOL_H
#define SIAMESE_PROTOCOL_H

#include "../io/dataset.h"
#include "../io/import.h"
#include "../mining/trials.h"

/* The evaluation alphabets of Lake et al.'s one-shot classification runs,
 * which Koch et al. report on (20-way 1-shot within an alphabet). */
#define PROTOCOL_KOCH_GROUPS IMPORT_KOCH_GROUPS

typedef struct GroupEval {
    int n_way, k_shot, trials;
    uint64_t seed;
    int rule;           /* TRIALS_ANY, or TRIALS_PAIRED (drawing index from the names: trials_drawing_of) */
    const char *groups; /* comma-separated group names to draw from; NULL or "" = every group */
} GroupEval;

/* Accuracy of a set of trials: the mean credit (trials.h), its 95 % Wilson
 * interval, and the same per group (the groups of the dataset, in byte-wise
 * order; a file's trial belongs to its query's group). */
typedef struct NwayScore {
    double accuracy, ci_low, ci_high;
    int trials, n_way, k_shot;
    int groups_used;    /* groups with at least one trial */
    int ngroups;        /* every group of the dataset */
    char **group_names; /* (ngroups) */
    double *group_acc;  /* (ngroups), NaN without trials */
    int *group_trials;  /* (ngroups) */
} NwayScore;
void nway_score_free(NwayScore *s);

/* Draws within-group trials from ds (its labels, class groups and, for the
 * paired rule, sample names). -1 with e for an unknown group name, a sample
 * without a drawing index ("Alphabet/character01/0975_14.png" has 14), or
 * trials that cannot be drawn. */
int protocol_group_trials(Trials *out, Dataset *ds, const GroupEval *g, Err *e);

/* Reads a trials file against ds's sample names: every name must be in ds,
 * the supports of one class share a label, the classes' labels differ, and
 * the answer's label is the query's. -1 with e naming the file and line. */
int protocol_read_trials(Trials *out, Dataset *ds, const char *path, Err *e);

/* Writes t as a trials file (written whole or not at all). */
int protocol_write_trials(const Trials *t, Dataset *ds, const char *path, Err *e);

/* Scores t with sim over ds's samples into out (allocated; nway_score_free). */
void protocol_score(NwayScore *out, const Trials *t, const Dataset *ds, MetricsSim sim, void *ctx);

#endif
