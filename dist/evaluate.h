/* evaluate: the metrics of a trained model on a dataset (docs/reference-models.md, "Metrics"):
 * Recall@1/@5 and MAP@R by Euclidean distance between embeddings,
 * verification accuracy at the threshold chosen on training pairs, ROC AUC
 * and EER on a fixed seeded set of balanced test pairs, and N-way K-shot
 * accuracy over seeded trials. Pair scores are -distance, or the Koch head's
 * logit when the model has one. Serial: runs on one rank. */
#ifndef SIAMESE_EVALUATE_H
#define SIAMESE_EVALUATE_H

#include <stdint.h>
#include <stdio.h>

#include "../io/augment.h"
#include "../io/config.h"
#include "../io/dataset.h"
#include "../io/norm.h"
#include "../nn/model.h"
#include "protocol.h"

#define EVAL_MAX_K 16 /* Recall@K is computed for K = 1..EVAL_MAX_K */

typedef struct EvalResult {
    int n, classes;
    double recall1, recall5, map_r;
    double recall_k[EVAL_MAX_K]; /* Recall@(k+1); NaN for K > n - 1 */
    double threshold, train_acc, ver_acc, auc, eer;
    int pairs, train_pairs;
    double nway, nway_ci_low, nway_ci_high; /* trials over all classes, 95 % Wilson interval */
    int nway_n, kshot, trials;
    int has_group, group_rule; /* within-group trials ran (EvalProtocol.within_group) */
    NwayScore group;
    const char *trials_file; /* NULL, or the trials file scored into `file` */
    NwayScore file;
    int tta; /* views a sample's embedding averages (1: the image alone) */
    double seconds;
} EvalResult;

/* What eval_run_detail keeps beyond the summary (for siamese report):
 * the test embeddings and the scored balanced test pairs. */
typedef struct EvalDetail {
    float *E; /* (n, dim) test embeddings in sample order; NULL: the model has no embedding */
    int n, dim;
    double *score;   /* (pairs) -distance, or the Koch head's logit */
    uint8_t *same;   /* (pairs) 1 = same-label pair */
    uint32_t *a, *b; /* (pairs) the sample ids of each pair */
    int pairs;
    int koch; /* 1: scores are logits (of the Koch head, or of a model that scores pairs), not -distances */
} EvalDetail;
void eval_detail_free(EvalDetail *d);

/* A trained model loaded from a checkpoint (which carries its config). */
typedef struct EvalModel {
    Config cfg;
    Model model;
    Norm norm; /* the input normalisation it was trained with */
    unsigned long long step;
    int world; /* ranks of the run that saved it (0 if not recorded) */
} EvalModel;
/* Reads path, builds the model for batches of max_batch, loads the
 * parameters. 0, or -1 with e naming the file. Free with eval_model_free. */
int eval_model_load(EvalModel *l, const char *path, int max_batch, Err *e);
/* The thread pool of eval, embed and report: this machine's threads
 * (SIAMESE_THREADS, SLURM_CPUS_PER_TASK or the affinity mask), not the
 * training run's. 0, or -1 with e (a malformed variable). */
int eval_start_threads(Err *e);
void eval_model_free(EvalModel *l);

/* What eval_run_protocol does beside the standard metrics. The within-group
 * trials take N, K, the trial count and the seed from the config's [eval]
 * nway, kshot, trials and [run] seed. */
typedef struct EvalProtocol {
    int within_group;        /* N-way K-shot trials with all N classes from one group */
    int rule;                /* TRIALS_ANY or TRIALS_PAIRED (Koch/Lake drawing rule) */
    const char *groups;      /* comma-separated groups to draw from; NULL or "" = all */
    const char *trials_file; /* score the trials this file lists (by sample name) */
    const char *save_trials; /* write the within-group trials drawn as a trials file */
    int tta;                 /* > 1: embed every image as the mean of this many views
                                (eval_embed_views with the config's [augment] and [run] seed),
                                the training pairs of the verification threshold too */
} EvalProtocol;

/* Embeds every sample of ds: returns (N, emb_dim) floats (caller frees) and
 * the labels (owned by ds). NULL with e on a read error. */
float *eval_embed(Model *m, Dataset *ds, const Norm *norm, Err *e);

/* Test-time augmentation: every sample of ds embedded as the mean of `views`
 * embeddings, view 0 the image itself and view v >= 1 the image distorted
 * by aug with the map augment_draw_view(aug, seed, v, sample id) gives;
 * when the embedding node is an l2norm the mean is normalised again (x /
 * max(||x||, 1e-12)). views <= 1 is eval_embed, bit for bit. The views of a
 * sample depend on (aug, seed, v, id) alone: not on the batch or threads. */
float *eval_embed_views(Model *m, Dataset *ds, const Norm *norm, const AugmentSpec *aug, uint64_t seed,
                        int views, Err *e);

/* Evaluates on test_path; the verification threshold comes from pairs of
 * train_path (skipped, and said so, when it is empty). eval_run_protocol also
 * runs what p asks (p may be NULL); eval_result_free releases what it kept. */
int eval_run(Model *m, const Config *c, const Norm *norm, const char *test_path, const char *train_path,
             EvalResult *r, Err *e);
/* eval_run that also fills keep (may be NULL; free with eval_detail_free). */
int eval_run_detail(Model *m, const Config *c, const Norm *norm, const char *test_path,
                    const char *train_path, EvalResult *r, EvalDetail *keep, Err *e);

int eval_run_protocol(Model *m, const Config *c, const Norm *norm, const char *test_path,
                      const char *train_path, const EvalProtocol *p, EvalResult *r, EvalDetail *keep, Err *e);
void eval_result_free(EvalResult *r);
void eval_print(const EvalResult *r, FILE *out);
/* [eval] nway-way kshot-shot accuracy over [eval] trials trials seeded by
 * [run] seed on ds, pairs scored as eval scores them: a two-image model that
 * scores pairs itself by that logit (reading ds's images, normalised by
 * norm), else over the embeddings E (one row per sample, as eval_embed gives
 * them): Koch head logit or -distance. NaN if the labels cannot hold such
 * trials or an image cannot be read. */
double eval_nway_model(Model *m, Dataset *ds, const Norm *norm, const float *E, const Config *c);
/* JSON keys: docs/commands.md (eval). */
int eval_write_json(const EvalResult *r, const char *path, Err *e);

/* Within-group N-way K-shot accuracy of m on ds, pairs scored as
 * eval_nway_model scores them, with its 95 % interval and per-group
 * accuracy: for validation during training. Deterministic for g->seed. 0,
 * or -1 with e (protocol_group_trials, a read error). out is freed with
 * nway_score_free. */
int eval_within_group(NwayScore *out, Model *m, Dataset *ds, const Norm *norm, const float *E,
                      const GroupEval *g, Err *e);
/* The same for the trials a trials file lists (protocol_read_trials). */
int eval_trials_file(NwayScore *out, Model *m, Dataset *ds, const Norm *norm, const float *E,
                     const char *path, Err *e);

#endif
