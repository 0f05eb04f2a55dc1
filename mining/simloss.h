/* simloss: losses over the similarity matrix s_ij = e_i . e_j of a pool of
 * embeddings (cosine similarity when the encoder ends in [l2norm]):
 *   InfoNCE / N-pair (Sohn 2016; Oord et al. 2018's InfoNCE; SimCLR's
 *   NT-Xent), temperature t: for an anchor a and a positive p (same label,
 *   p != a), with every row of another label as a negative,
 *       l_ap = -log( exp(s_ap/t) / (exp(s_ap/t) + sum_n exp(s_an/t)) )
 *   symmetric = 1: every ordered positive pair (a, p) is a term, so each
 *   pair counts in both directions (pytorch-metric-learning's NTXentLoss);
 *   symmetric = 0: only p after a in pool order, each pair once, from its
 *   earlier row. count = the number of terms.
 *   Multi-similarity (Wang et al. 2019), with its pair mining, margin eps:
 *   a negative n of anchor a is kept if s_an + eps > min_p s_ap, a positive
 *   if s_ap - eps < max_n s_an (mine = 0 keeps every pair); then
 *       L_a = 1/alpha log(1 + sum_kept_p exp(-alpha (s_ap - base)))
 *           + 1/beta  log(1 + sum_kept_n exp( beta (s_an - base)))
 *   count = the number of anchors (the paper's mean over the batch).
 * Pure functions: no MPI, no allocation.
 *
 * Global mining contract (as triplet.h): E and labels are the whole pool of
 * N rows in global order; a call covers anchors [a0, a1), returns their
 * LossStats and ACCUMULATES (+=) the UNNORMALISED gradient d(loss_sum)/dE
 * into dE (N, D), rows of other ranks included. Splitting [0, N) into
 * ranges and summing gives one call over [0, N).
 *
 * LossStats: InfoNCE: active = terms where some negative is at least as
 * similar to the anchor as the positive, candidates = terms, hardness =
 * max_n s_an - s_ap per term (> 0: a negative wins). Multi-similarity:
 * active = anchors with a kept pair, candidates = pairs looked at
 * (Na (N - 1)), hardness = max_n s_an - min_p s_ap per anchor having both.
 * The workspace holds one block of the anchors' similarity rows
 * (mine_block_rows in distance.h), then dL/ds in place; blocks in order. */
#ifndef SIAMESE_SIMLOSS_H
#define SIAMESE_SIMLOSS_H

#include <stddef.h>
#include <stdint.h>

#include "loss_stats.h"

/* Floats of workspace either loss needs for Na = a1 - a0 anchors: Nb*N,
 * Nb = mine_block_rows(N, Na). */
size_t simloss_workspace_floats(int N, int Na);

LossStats simloss_infonce(float *dE,             /* (N, D) += */
                          float *ws,             /* simloss_workspace_floats */
                          const float *E,        /* (N, D) the pool */
                          const int32_t *labels, /* (N) */
                          float temperature, int symmetric, int N, int D, int a0, int a1);

LossStats simloss_multi_similarity(float *dE,             /* (N, D) += */
                                   float *ws,             /* simloss_workspace_floats */
                                   const float *E,        /* (N, D) the pool */
                                   const int32_t *labels, /* (N) */
                                   float alpha, float beta, float base, float eps, int mine, int N, int D,
                                   int a0, int a1);

#endif
