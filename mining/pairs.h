/* pairs: pair losses over a pool of embeddings, on explicit pair lists
 * (offline pairs) or on pairs mined from the pool:
 *   contrastive (Hadsell et al. 2006), margin m, no 1/2:
 *       y d^2 + (1 - y) max(m - d, 0)^2      d from distance.h
 *   Koch head (Koch et al. 2015): logit z = w . |e_i - e_j| + b, then
 *       binary cross-entropy with logits (stable form), target y.
 *       d|u|/du is taken as sign(u) with sign(0) = 0 (as PyTorch).
 * The hard-pairs miner takes, per anchor a, its hardest positive pair (a, p)
 * and its hardest negative pair (a, n): largest / smallest distance for
 * contrastive, lowest / highest logit for Koch; ties to the lowest pool index.
 * Pure functions: no MPI, no allocation.
 *
 * Global mining contract (as triplet.h): E and labels are the whole pool of N
 * rows in global order; a call covers this rank's share (pairs [k0, k1) of a
 * list, or anchors [a0, a1)), returns its LossStats and ACCUMULATES (+=) the
 * UNNORMALISED gradient into dE (N, D), all rows, and for Koch into dw and db
 * (the caller sums them over ranks like any parameter gradient and scales
 * everything by 1/count). Splitting the share into ranges and summing gives
 * the same as one call.
 *
 * LossStats: count = number of pairs evaluated (list: k1 - k0; hard: pairs
 * chosen, at most 2 per anchor; all: Na * (N - 1)); active = pairs with a
 * non-zero loss; candidates = pairs considered (list: k1 - k0; hard and all:
 * Na * (N - 1)); hardness = how wrong the pair is, larger = harder:
 * contrastive y ? d : -d, Koch y ? -z : z. */
#ifndef SIAMESE_PAIRS_H
#define SIAMESE_PAIRS_H

#include <stddef.h>
#include <stdint.h>

#include "loss_stats.h"

/* Pool row indices of one pair and its target: y = 1 same class, 0 not. */
typedef struct IndexPair {
    int32_t i, j, y;
} IndexPair;

/* Floats of workspace the mined losses need for Na = a1 - a0 anchors:
 * about 3*Nb*N for blocks of Nb = mine_block_rows(N, Na) anchors. */
size_t pairs_workspace_floats(int N, int Na);

/* Contrastive loss over pairs[k0 .. k1). ACCUMULATES into dE. No workspace. */
LossStats pairs_contrastive(float *dE,              /* (N, D) += */
                            const float *E,         /* (N, D) */
                            const IndexPair *pairs, /* (>= k1) */
                            float margin, int N, int D, int k0, int k1);

/* Koch head BCE over pairs[k0 .. k1). ACCUMULATES into dE, dw, db. */
LossStats pairs_koch(float *dE,              /* (N, D) += */
                     float *dw,              /* (D) += */
                     float *db,              /* (1) += */
                     const float *E,         /* (N, D) */
                     const IndexPair *pairs, /* (>= k1) */
                     const float *w,         /* (D) head weight */
                     float b, int N, int D, int k0, int k1);

/* Binary cross-entropy with logits over pairs [k0, k1) scored by a model
 * (a pair-level node of one logit per pair): z[k] the logit of pair k,
 * same[k] its target. ACCUMULATES the unnormalised dl/dz into dz. Stats as
 * pairs_koch (count = pairs). */
LossStats pairs_bce_logits(float *dz,           /* (k1) += */
                           const float *z,      /* (k1) */
                           const uint8_t *same, /* (k1) */
                           int k0, int k1);

/* The Koch head's logit for rows x and y (the value the miner ranks by). */
float pairs_koch_logit(const float *x, const float *y, const float *w, float b, int D);

/* Hard pairs of anchors [a0, a1), then the contrastive / Koch loss over
 * them. chosen (may be NULL, else capacity 2*(a1 - a0)) receives the pairs in
 * anchor order, positive pair first; the loss equals pairs_contrastive /
 * pairs_koch over that list. Anchors without a positive (or a negative)
 * contribute no positive (negative) pair. */
LossStats pairs_contrastive_hard(float *dE,             /* (N, D) += */
                                 IndexPair *chosen,     /* (count) written, or NULL */
                                 float *ws,             /* pairs_workspace_floats */
                                 const float *E,        /* (N, D) */
                                 const int32_t *labels, /* (N) */
                                 float margin, int N, int D, int a0, int a1);
LossStats pairs_koch_hard(float *dE,             /* (N, D) += */
                          float *dw,             /* (D) += */
                          float *db,             /* (1) += */
                          IndexPair *chosen,     /* (count) written, or NULL */
                          float *ws,             /* pairs_workspace_floats */
                          const float *E,        /* (N, D) */
                          const int32_t *labels, /* (N) */
                          const float *w,        /* (D) */
                          float b, int N, int D, int a0, int a1);

/* Contrastive over every (a, j), a in [a0, a1), j != a in the pool: each
 * unordered pair appears twice over the whole pool, and the normaliser is
 * count = Na * (N - 1) (N (N - 1) globally). Distances from the sgemm path. */
LossStats pairs_contrastive_all(float *dE,             /* (N, D) += */
                                float *ws,             /* pairs_workspace_floats */
                                const float *E,        /* (N, D) */
                                const int32_t *labels, /* (N) */
                                float margin, int N, int D, int a0, int a1);

/* Offline layout: a rank's B pairs go through the encoder as one batch
 * [first images; second images] whose rows start at pool row `base`:
 * out[k] = (base + k, base + B + k, labels equal). */
void pairs_list_halves(IndexPair *out,        /* (B) */
                       const int32_t *labels, /* (N) of the pool */
                       int base, int B);

#endif
