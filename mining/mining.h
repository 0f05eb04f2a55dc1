/* mining: what the [loss] and [mining] sections of a config say, as the
 * losses and miners of mining/ take it (io/config fills these structs
 * directly). One enum per choice, used by the config and the kernels
 * alike. Plain data. */
#ifndef SIAMESE_MINING_H
#define SIAMESE_MINING_H

/* [loss] type. */
typedef enum { LOSS_TRIPLET, LOSS_CONTRASTIVE, LOSS_BCE, LOSS_INFONCE, LOSS_MULTI_SIMILARITY, LOSS_MASK } LossType;
/* [loss] mask: the per-pixel loss of type mask (mining/coseg.h). */
typedef enum { MASK_BCE, MASK_DICE, MASK_BCE_DICE, MASK_CLASS } MaskLoss;

typedef struct LossSpec {
    LossType type;
    double margin;                     /* triplet and contrastive */
    long soft;                         /* triplet: 1 = soft margin */
    double temperature;                /* infonce (simloss.h) */
    long symmetric;                    /* infonce: 1 = both directions of every positive pair */
    double ms_alpha, ms_beta, ms_base; /* multi_similarity (simloss.h) */
    MaskLoss mask;                     /* mask (mining/coseg.h) */
    double edge_weight;                /* mask bce / bce_dice: extra BCE weight of outline pixels */
} LossSpec;

/* [mining] strategy: the online miners over a PK batch. The triplet loss
 * takes the first three (triplet.h); hard_pairs and none are the pair
 * losses' (pairs.h); multi_similarity is Wang et al.'s pair mining of the
 * multi-similarity loss (simloss.h), which also takes none. */
typedef enum {
    MINE_BATCH_HARD,
    MINE_SEMI_HARD,
    MINE_BATCH_ALL,
    MINE_HARD_PAIRS,
    MINE_NONE,
    MINE_MULTI_SIMILARITY
} MiningStrategy;
/* [mining] scope. */
typedef enum { SCOPE_GLOBAL, SCOPE_LOCAL } MiningScope;
/* [mining] exchange: the format of the exchanged embeddings (exchange.h). */
typedef enum { EXCHANGE_FP32, EXCHANGE_BF16, EXCHANGE_FP16 } ExchangeFormat;
/* [mining] pool: every anchor against the whole global batch, or against
 * its own class and the `classes` nearest ones (classes.h). */
typedef enum { POOL_EXACT, POOL_CLASSES } MiningPool;

typedef struct MiningSpec {
    MiningStrategy strategy;
    MiningScope scope;
    ExchangeFormat exchange;
    MiningPool pool;
    int classes;    /* pool = classes: neighbour classes per anchor class */
    double epsilon; /* multi_similarity mining margin */
} MiningSpec;

#endif
