/* metrics: evaluation of a trained embedding or pair scorer. Retrieval
 * (Recall@K, MAP@R) over all N samples in row blocks (one sgemm per block,
 * never an N x N matrix), verification on seeded balanced pairs (ROC AUC, EER,
 * best threshold, accuracy) and seeded N-way K-shot trials. Serial, no MPI;
 * it computes no embeddings and draws no scores: callers supply them.
 * Definitions: docs/reference-models.md, "Metrics". */
#ifndef SIAMESE_METRICS_H
#define SIAMESE_METRICS_H

#include <stdint.h>

#include "../nn/util.h"

/* ---- retrieval ------------------------------------------------------------ */

/* Ranking used by every retrieval metric: for sample i, the other samples
 * j != i in increasing Euclidean distance, computed in float as
 * ||e_j||^2 - 2 e_i.e_j (the ||e_i||^2 term is the same for the whole row, so
 * leaving it out changes no order and loses less precision); equal distances
 * are broken by the lower index j. */

/* Recall@K for each K in ks: the fraction of all N samples that have at least
 * one same-label sample among their K nearest others (Recall@1 is
 * precision@1). Samples whose label occurs once count as misses.
 *
 * MAP@R (Musgrave et al. 2020; pytorch-metric-learning's
 * mean_average_precision_at_r with the query excluded): for sample i,
 * R = number of other samples with its label, AP@R = (1/R) sum_{r=1..R}
 * P(r) rel(r) over its R nearest others, where rel(r) = 1 if the r-th nearest
 * has the same label and P(r) is the fraction of same-label samples among the
 * first r. MAP@R is the mean over samples with R >= 1 (0 if there are none).
 *
 * block_rows: rows per sgemm block; <= 0 picks 512 (fewer if N is so large
 * that a block of distances would exceed 32 MB). Scratch is allocated here
 * and freed before returning. Returns 0, or -1 with e set when N < 2, D < 1,
 * a K is outside [1, N-1], or E holds a NaN or infinity. */
int metrics_knn(double *recall /* (nk) */, double *map_at_r /* scalar, may be NULL */,
                const float *E /* (N, D) */, const int32_t *labels /* (N) */, int N, int D,
                const int *ks /* (nk) */, int nk, int block_rows, Err *e);

/* The k nearest others of each sample queries[q] in that same ranking:
 * nn[q * k + r] is its (r+1)-th nearest (self excluded), dist (may be NULL)
 * the Euclidean distance to it (in double, stored as float). 0, or -1 with e
 * when k is outside [1, N-1], a query is outside [0, N), or E is not finite. */
int metrics_neighbours(int *nn /* (nq, k) */, float *dist /* (nq, k) or NULL */, const float *E /* (N, D) */,
                       int N, int D, const int *queries /* (nq) */, int nq, int k, Err *e);

/* Recall@K alone, with the default block size; returns 0 or -1 (bad
 * arguments as in metrics_knn; the message goes to util_warn). */
int metrics_recall_at_k(double *out /* (nk) */, const float *E /* (N, D) */, const int32_t *labels /* (N) */,
                        int N, int D, const int *ks, int nk);

/* ---- verification pairs --------------------------------------------------- */

/* 0 if make_pairs can run on these labels (some label has >= 2 samples and
 * there are >= 2 distinct labels), else -1 with e saying what is missing. */
int metrics_pairs_check(const int32_t *labels /* (N) */, int N, Err *e);

/* Balanced seeded pair set: pair p is same-label when p is even (so
 * ceil(npairs/2) same, floor(npairs/2) different, and every prefix is
 * balanced). a[p] is uniform over the samples (over samples whose label
 * occurs at least twice for same pairs); b[p] is uniform over the samples
 * with a's label other than a itself (same), or over the samples with any
 * other label (different). Pairs are drawn with replacement. The RNG is
 * rng_seed(&r, seed, RNG_EVAL, 0): the set depends only on (labels, seed).
 * Precondition: metrics_pairs_check passes (ASSERTed). */
void metrics_make_pairs(uint32_t *a /* (npairs) */, uint32_t *b /* (npairs) */, uint8_t *same /* (npairs) */,
                        int npairs, const int32_t *labels /* (N) */, int N, uint64_t seed);

/* Scores are "higher = more similar" (embedding nets: -distance; Koch head:
 * the sigmoid probability); same[i] != 0 marks a same-label pair. */

/* ROC AUC, exact: the Mann-Whitney statistic P(score_same > score_diff) with
 * ties counted 1/2, via one sort. NaN if either class of pair is absent. */
double metrics_roc_auc(const double *score /* (n) */, const uint8_t *same /* (n) */, int n);

/* The ROC of the rule score >= t => same, at t = -inf (point 0: FPR 1,
 * FNR 0) and then just above each distinct score, ascending: point m has
 * FPR fpr[m] (share of different pairs accepted), FNR fnr[m] (share of same
 * pairs rejected) and thr[m] = the smallest score still accepted (+inf at
 * the last point, where nothing is). Arrays of n + 1. Returns the number of
 * points (distinct scores + 1), or -1 if a score is NaN or a class is absent. */
int metrics_roc_curve(double *fpr, double *fnr, double *thr, const double *score /* (n) */,
                      const uint8_t *same /* (n) */, int n);

/* The EER of such a curve (m points), as metrics_eer defines it; *seg (may
 * be NULL) gets the index of the point that ends the crossing segment. */
double metrics_eer_curve(int *seg, const double *fpr, const double *fnr, int m);

/* Equal error rate. The ROC is taken at every threshold t in
 * {-inf, each distinct score} plus +inf with the rule score >= t => same;
 * FPR(t) = share of different pairs accepted, FNR(t) = share of same pairs
 * rejected. FPR - FNR falls from 1 to -1 along that list; the EER is where
 * the piecewise-linear curve through consecutive (FPR, FNR) points crosses
 * FPR = FNR (exact when a point lies on it). NaN if a class is absent. */
double metrics_eer(const double *score /* (n) */, const uint8_t *same /* (n) */, int n);

/* Accuracy of the rule score >= thr => same. n > 0. */
double metrics_accuracy_at(double thr, const double *score /* (n) */, const uint8_t *same /* (n) */, int n);

/* The threshold with the highest accuracy on these pairs. Candidates are
 * the midpoints between adjacent distinct sorted scores, plus min - 1 (all
 * accepted) and max + 1 (none accepted); among equally accurate candidates
 * the lowest wins. Writes that accuracy to *best_acc (may be NULL). n > 0. */
double metrics_best_threshold(double *best_acc, const double *score /* (n) */, const uint8_t *same /* (n) */,
                              int n);

/* ---- N-way K-shot ----------------------------------------------------------- */

/* Similarity of sample i (the query) to sample j (a support); higher = more
 * alike. */
typedef double (*MetricsSim)(void *ctx, int i, int j);

/* Credit of one trial given each class's score (higher = more alike): 1 if
 * class `answer` alone has the top score, 1/m if it ties with m - 1 others
 * (the expectation of a random tie-break), else 0. */
double metrics_trial_credit(const double *score /* (n) */, int n, int answer);

/* 0 if trials can be drawn: at least n_way labels with >= k_shot samples, at
 * least one of them with >= k_shot + 1; else -1 with e set. */
int metrics_nway_check(int n_way, int k_shot, const int32_t *labels /* (N) */, int N, Err *e);

/* Mean accuracy over `trials` seeded N-way K-shot trials (Koch/Lake protocol
 * generalised). Each trial: a query label uniform over the labels with
 * >= k_shot + 1 samples, n_way - 1 other labels uniform (without
 * replacement) over the labels with >= k_shot samples, k_shot supports per
 * label and one query of the query label, all distinct. A label's score is
 * the mean of sim(query, support) over its k_shot supports; the trial counts
 * 1 if the query's label alone has the top score, 1/m if it ties with m - 1
 * others (the expectation of a random tie-break), else 0. One stream
 * rng_seed(&r, seed, RNG_EVAL, 1) for all trials: deterministic for a seed.
 * Returns NaN if metrics_nway_check fails or trials < 1. */
double metrics_nway(int n_way, int k_shot, int trials, uint64_t seed, const int32_t *labels /* (N) */, int N,
                    MetricsSim sim, void *ctx);

/* metrics_nway with sim = -Euclidean distance between rows of E (in double). */
double metrics_nway_embed(int n_way, int k_shot, int trials, uint64_t seed, const float *E /* (N, D) */,
                          const int32_t *labels /* (N) */, int N, int D);

#endif
