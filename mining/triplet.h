/* triplet: the triplet loss (Schroff et al. 2015, FaceNet) over a pool of
 * embeddings, with three online miners (batch-all, batch-hard, semi-hard)
 * and an explicit-list variant for offline triplets. Per triplet the term is
 *     hinge:        max(d_ap - d_an + m, 0)     (computed as (d_ap - d_an) + m)
 *     soft margin:  log(1 + exp(d_ap - d_an))  (stable softplus; m unused;
 *                   batch-all sums it through products of 16 factors,
 *                   relative error about 1e-6)
 * with the distances of distance.h. Pure functions: no MPI, no allocation.
 *
 * Global mining contract. E and labels are the whole (global) pool of N rows
 * in global order; the caller owns anchors [a0, a1). A call computes the
 * terms of its anchors against the whole pool, returns their LossStats and
 * ACCUMULATES (+=) the UNNORMALISED gradient d(loss_sum)/dE into dE (N, D),
 * rows of other ranks included. The caller sums the stats over ranks, takes
 * loss = loss_sum / count, scales dE by 1/count and reduce-scatters it.
 * Splitting [0, N) into ranges and summing gives one call over [0, N).
 *
 * Ties: whenever a miner takes an extremum (hardest positive or negative,
 * closest negative), the lowest pool index wins.
 *
 * LossStats fields, per miner:
 *   MINE_BATCH_ALL     every valid (a, p, n): p != a with a's label, n with
 *                      another label. count = active triplets (hinge) or all
 *                      valid triplets (soft margin).
 *   MINE_BATCH_HARD    per anchor, the hardest positive (largest d) and the
 *                      hardest negative (smallest d). count = anchors having
 *                      both (zero-loss ones included).
 *   MINE_SEMI_HARD     per (anchor, positive) pair, every positive (FaceNet):
 *                      the closest negative farther than the positive
 *                      (smallest d_an with d_an > d_ap, inside or outside the
 *                      margin); if no negative is farther, the farthest
 *                      negative (largest d_an). This is the rule of
 *                      TensorFlow Addons' TripletSemiHardLoss. count = pairs
 *                      having a negative (zero-loss ones included).
 *   active       terms with a non-zero loss among the counted ones (with the
 *                soft margin every term: softplus > 0);
 *   candidates   valid triplets (a, p, n) of the anchors (the miner's choice
 *                set), or the number of listed triplets for the list loss;
 *   hardness     d_ap - d_an of each counted term (> 0: the negative is
 *                closer than the positive); mean = hardness_sum / count. */
#ifndef SIAMESE_TRIPLET_H
#define SIAMESE_TRIPLET_H

#include <stddef.h>
#include <stdint.h>

#include "loss_stats.h"
#include "mining.h"

/* Pool row indices of one triplet. */
typedef struct IndexTriplet {
    int32_t a, p, n;
} IndexTriplet;

/* The hinge test (d_ap - d_an) + margin > 0, exactly as the loss computes
 * it, holds iff d_an < T for the T returned here (the test cannot pass
 * again once d_an has made it fail). Batch-all compares against T. */
float triplet_hinge_threshold(float dap, float margin);

/* t[i] = triplet_hinge_threshold(dap[i], margin) for i < n, the same bits;
 * with AVX-512, 16 at a time (the usual case, a positive finite
 * dap + margin, in vector steps of one ulp; any other lane by the scalar
 * function). */
void triplet_hinge_thresholds(float *t, const float *dap, int n, float margin);

/* Floats of workspace triplet_loss needs for Na = a1 - a0 anchors:
 * about 3*Nb*N for blocks of Nb = mine_block_rows(N, Na) anchors. */
size_t triplet_workspace_floats(int N, int Na);

/* Entries `chosen` may receive: Na (batch-hard), Na*(N-1) (semi-hard),
 * 0 for MINE_BATCH_ALL (which never writes chosen). */
size_t triplet_chosen_capacity(MiningStrategy miner, int N, int Na);

/* The mined triplet loss of anchors [a0, a1) against the pool (see above).
 * ACCUMULATES the unnormalised gradient into dE. chosen (may be NULL)
 * receives the chosen triplets of batch-hard and semi-hard, in anchor then
 * positive order, count of them; it must be NULL for MINE_BATCH_ALL. margin is
 * used by the hinge (soft = 0) only. */
LossStats triplet_loss(float *dE,             /* (N, D) += */
                       IndexTriplet *chosen,  /* (count) written, or NULL */
                       float *ws,             /* triplet_workspace_floats */
                       const float *E,        /* (N, D) the pool */
                       const int32_t *labels, /* (N) */
                       MiningStrategy miner, float margin, int soft, int N, int D, int a0, int a1);

/* The loss over explicit triplets t[t0 .. t1) (offline triplets). count =
 * t1 - t0; ACCUMULATES the unnormalised gradient into dE. Distances come from
 * dist_pair. Needs no workspace. */
LossStats triplet_list_loss(float *dE,             /* (N, D) += */
                            const float *E,        /* (N, D) */
                            const IndexTriplet *t, /* (>= t1) pool indices */
                            float margin, int soft, int N, int D, int t0, int t1);

/* Offline layout: a rank's B triplets go through the encoder as one batch
 * [anchors; positives; negatives] whose rows start at pool row `base`:
 * out[k] = (base + k, base + B + k, base + 2B + k). */
void triplet_list_thirds(IndexTriplet *out, /* (B) */ int base, int B);

#endif
