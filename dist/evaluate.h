/* evaluate: the metrics of a trained model on a dataset (docs/reference-models.md, "Metrics"):
 * Recall@1/@5 and MAP@R by Euclidean distance between embeddings,
 * verification accuracy at the threshold chosen on training pairs, ROC AUC
 * and EER on a fixed seeded set of balanced test pairs, and N-way K-shot
 * accuracy over seeded trials. Pair scores are -distance, or the Koch head's
 * logit when the model has one. Serial: runs on one rank. */
#ifndef SIAMESE_EVALUATE_H
#define SIAMESE_EVALUATE_H

#include <stdio.h>

#include "../io/config.h"
#include "../io/dataset.h"
#include "../nn/model.h"

typedef struct EvalResult {
    int n, classes;
    double recall1, recall5, map_r;
    double threshold, train_acc, ver_acc, auc, eer;
    int pairs, train_pairs;
    double nway;
    int nway_n, kshot, trials;
    double seconds;
} EvalResult;

/* Embeds every sample of ds: returns (N, emb_dim) floats (caller frees) and
 * the labels (owned by ds). NULL with e on a read error. */
float *eval_embed(Model *m, Dataset *ds, float mean, float std, Err *e);

/* Evaluates on test_path; the verification threshold comes from pairs of
 * train_path (skipped, and said so, when it is empty). */
int eval_run(Model *m, const Config *c, float mean, float std, const char *test_path, const char *train_path,
             EvalResult *r, Err *e);
void eval_print(const EvalResult *r, FILE *out);
int eval_write_json(const EvalResult *r, const char *path, Err *e);

#endif
