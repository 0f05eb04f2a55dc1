/* mining: what the [loss] and [mining] sections of a config say, as the
 * losses and miners of mining/ take it (io/config fills these structs
 * directly). One enum per choice, used by the config and the kernels
 * alike. Plain data. */
#ifndef SIAMESE_MINING_H
#define SIAMESE_MINING_H

/* [loss] type. */
typedef enum { LOSS_TRIPLET, LOSS_CONTRASTIVE, LOSS_BCE } LossType;

typedef struct LossSpec {
    LossType type;
    double margin; /* triplet and contrastive */
    long soft;     /* triplet: 1 = soft margin */
} LossSpec;

/* [mining] strategy: the online miners over a PK batch. The triplet loss
 * takes the first three (triplet.h); hard_pairs and none are the pair
 * losses' (pairs.h). */
typedef enum { MINE_BATCH_HARD, MINE_SEMI_HARD, MINE_BATCH_ALL, MINE_HARD_PAIRS, MINE_NONE } MiningStrategy;
/* [mining] scope. */
typedef enum { SCOPE_GLOBAL, SCOPE_LOCAL } MiningScope;

typedef struct MiningSpec {
    MiningStrategy strategy;
    MiningScope scope;
} MiningSpec;

#endif
