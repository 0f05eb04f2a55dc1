/* classes: the hard-class pool of [mining] pool = classes. A PK global
 * batch is P blocks of K rows, one class per block, in class-major order
 * (io/sampler.h). Each class's centroid is summed in 64-bit fixed point, so
 * the sums, and the m classes nearest each class chosen from them, are the
 * same bits for any split of the rows over ranks and any order of summing.
 * An anchor is mined against its own class's K rows (its positives) and the
 * rows of the m classes whose centroids are nearest its own (squared
 * Euclidean distance of the sums, ties to the lower label), nothing else:
 * its pool does not depend on which rank holds it. Pure functions, no MPI;
 * the plan allocates once (docs/mining-scale.md). */
#ifndef SIAMESE_CLASSES_H
#define SIAMESE_CLASSES_H

#include <stddef.h>
#include <stdint.h>

#include "loss_stats.h"

/* One loss over a pool (the contract of triplet.h: anchors [a0, a1) of the
 * N rows E, the unnormalised gradient ACCUMULATED into dE (N, D)). */
typedef LossStats (*ClassesLossFn)(void *ctx, float *dE, float *ws, const float *E, const int32_t *labels,
                                   int N, int a0, int a1);

typedef struct ClassesPlan {
    int P, K, D, m; /* m: neighbour classes per class, at most P - 1 */
    int bits;       /* fixed point: x is held as llrint(x 2^bits) */
    int64_t *S;     /* (P, D) the classes' sums in fixed point */
    double *Sd;     /* (P, D) the same as doubles (classes_plan_blocks) */
    int32_t *label; /* (P) each block's class label */
    /* This rank's anchors: global rows [a0, a1), blocks [c0, c1). */
    int a0, a1, c0, c1, max_blocks;
    int32_t *nb;      /* (max_blocks, m) the nearest classes of each anchor block, nearest first */
    int32_t *ublocks; /* (nu) the blocks whose rows the anchors need, ascending */
    int nu, max_union;
    int32_t *upos; /* (P) a block's index in ublocks, or -1 */
    /* One class's pool of (m + 1) K rows, and scratch. */
    float *E, *dE, *ws;
    int32_t *plabels, *pblocks;
    void *order; /* (m) (distance, label, block) records */
} ClassesPlan;

/* Allocates for anchors slices of at most max_anchors rows and a loss
 * workspace of ws_floats (sized for a pool of classes_pool_rows rows and
 * K anchors). m is clamped to P - 1. */
void classes_plan_init(ClassesPlan *p, int P, int K, int D, int m, int max_anchors, size_t ws_floats);
void classes_plan_free(ClassesPlan *p);
/* Rows of one class's pool: (m + 1) K. */
int classes_pool_rows(const ClassesPlan *p);

/* The fixed-point exponent for values of magnitude at most maxabs summed K
 * at a time: 40 bits below the binary point (2^-40 ~ 1e-12 for
 * l2-normalised embeddings), fewer if K maxabs 2^bits would pass 2^61 (so
 * that differences of sums fit in an int64). Non-finite maxabs: 0. */
int classes_fixed_bits(double maxabs, int K);
/* S (P, D) += the fixed-point rows of E (n rows whose first is global row
 * row0), each into its block (row / K). Non-finite values count as 0. */
void classes_sums(int64_t *S, const float *E, int row0, int n, int K, int D, int bits);
/* nb (m) = the m blocks nearest block c by the squared distance of their
 * sums (p->Sd), nearest first, equal distances by ascending label. */
void classes_nearest(ClassesPlan *p, int32_t *nb, int c);

/* From p->S and p->label: the anchors [a0, a1) (global rows), their blocks'
 * neighbours, and the union of the blocks they need (ublocks, upos). */
void classes_plan_blocks(ClassesPlan *p, int a0, int a1);
/* Rows of ublocks in rank r's slice [off, off + n): *first = the index of
 * the first ublock that intersects it; returns how many do. */
int classes_blocks_in(const ClassesPlan *p, int off, int n, int *first);

/* The loss of the anchors: U (nu K, D) holds the rows of ublocks in order.
 * Each anchor block's pool (its own and its neighbours' rows, in global
 * order) is copied out and passed to f with that block's anchors; the
 * stats are added block after block and the pool's gradient is
 * ACCUMULATED into dU (nu K, D), blocks in order. */
LossStats classes_plan_loss(ClassesPlan *p, float *dU, const float *U, ClassesLossFn f, void *ctx);

#endif
