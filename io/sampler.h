/* sampler: names the global batch for (seed, epoch, step) and the slice of it
 * that one rank reads. PK batches (P classes x K samples) for online mining,
 * records of the pairs / triplets sub-databases, or co-segmentation batches
 * (pairs with and without a common object in a set ratio). The global batch never
 * depends on the rank count: rank r of p takes a contiguous slice of its
 * items. No I/O of pixels and no decoding here (prefetch.h does that). */
#ifndef SIAMESE_SAMPLER_H
#define SIAMESE_SAMPLER_H

#include <stdint.h>

#include "../nn/util.h"
#include "dataset.h"

/* [sampler] mode (io/config fills a SamplerSpec directly). */
typedef enum { SAMPLER_PK = 0, SAMPLER_PAIRS = 1, SAMPLER_TRIPLETS = 2, SAMPLER_COSEG = 3 } SamplerMode;
/* [data] on_bad_record: a sample record that fails its checks stops the run
 * or is replaced (sampler_replacement_start). */
typedef enum { SAMPLER_BAD_STOP = 0, SAMPLER_BAD_SKIP = 1 } SamplerOnBad;

typedef struct SamplerSpec {
    SamplerMode mode;
    int p, k;      /* PK: classes per batch, samples per class */
    int groups;    /* PK: draw the P classes from this many groups, P/groups each; 0 = from all */
    int batch;     /* pairs/triplets/coseg: records per global batch */
    double common; /* coseg: fraction of the batch with a common object, 0..1 */
    uint64_t seed;
    SamplerOnBad on_bad; /* [data] on_bad_record */
} SamplerSpec;

/* Rules (part of reproducibility; change them and old runs stop resuming
 * onto the same batches):
 *  - PK batch for (epoch, step): an Rng seeded (seed, RNG_SAMPLER,
 *    epoch * steps_per_epoch + step) picks P distinct classes uniformly among
 *    the eligible ones, then K distinct samples uniformly within each (Floyd's
 *    algorithm: O(P + P*K) per step). Stateless per step: resuming needs only
 *    the step. Order is class-major: P blocks of K images of one class. So a
 *    rank's slice holds few classes; with scope=local mining and many ranks a
 *    slice may lack negatives (global mining is unaffected).
 *  - PK with groups = G >= 1 (the classes' groups: ds_groups, the name before
 *    '/', e.g. an Omniglot alphabet): the same Rng picks G distinct groups
 *    uniformly among those with at least P/G eligible classes (in the order
 *    ds_groups numbers them), then for each picked group, in turn, P/G
 *    distinct classes uniformly among its eligible ones and K samples of
 *    each. P must be a multiple of G; fewer than G such groups is an error.
 *    Hard negatives come from the same group, as in within-group trials.
 *  - Classes with fewer than K samples are EXCLUDED from PK batches (never
 *    padded with duplicates); sampler_init warns once with their count, and
 *    fails if fewer than P classes remain.
 *  - Pairs / triplets: a permutation of all records per epoch, seeded
 *    (seed, RNG_SAMPLER, epoch | 1<<63); batch `step` is records
 *    [step*B, (step+1)*B) of it. The tail of fewer than B records is unused
 *    in that epoch (another epoch's permutation covers it).
 *  - Coseg: the pairs sub-database's records, split once into those with
 *    a common object (same = 1: equal labels, docs/formats.md) and those
 *    without. Batch (epoch, step): an Rng seeded (seed, RNG_SAMPLER,
 *    epoch * steps_per_epoch + step) draws C = round(batch * common)
 *    distinct records of the first kind and batch - C of the second
 *    (Floyd), then shuffles the batch's order (Fisher-Yates) so every rank's
 *    slice mixes both. Stateless per step; an epoch is floor(records /
 *    batch) steps. Each kind must have enough records for one batch.
 *  - An item (image in PK mode, pair, triplet) is the unit split across
 *    ranks: sampler_shard gives contiguous slices, sizes differing by <= 1.
 *  - on_bad_record = skip: a sample whose record fails its checks is
 *    replaced in its batch by a sample of the same class: draws uniform over
 *    the class's other ids from an Rng seeded (seed, RNG_REPLACE, hash of
 *    the global step and the image's position in the global batch), the
 *    first that reads. A batch keeps its shape and labels, and p ranks read
 *    what one rank reads.
 * Fields are private; use the functions. */
typedef struct Sampler {
    SamplerSpec spec;
    char *name;            /* dataset path, for messages (owned) */
    uint64_t count;        /* samples in the dataset */
    const int32_t *labels; /* (count) label of every sample, not owned */
    uint64_t n_records;    /* pairs or triplets in the sub-database */
    const Dataset *ds;     /* sampler_init's (its class index), or NULL */
    uint64_t bad_records;  /* replaced so far by this sampler (or clone) */
    uint64_t steps_per_epoch;
    /* PK: the eligible classes (>= K samples) */
    uint32_t n_eligible;
    uint32_t *eligible;        /* (n_eligible) their labels */
    const uint32_t **elig_ids; /* (n_eligible) their sample ids, ascending */
    uint32_t *elig_n;          /* (n_eligible) their sizes */
    /* PK with groups: the groups with >= P/groups eligible classes */
    uint32_t n_usable;
    uint32_t *grp_cls;   /* eligible-class indices, group by group */
    uint32_t *grp_start; /* (n_usable) first index into grp_cls of each usable group */
    uint32_t *grp_n;     /* (n_usable) its eligible classes */
    uint32_t *own_ids;   /* index storage built by sampler_init_labels */
    int shared;          /* clone: the arrays above belong to another */
    /* scratch, allocated once */
    uint32_t *pick_cls;   /* (P) */
    uint32_t *pick_grp;   /* (groups) */
    uint32_t *pick;       /* (K) */
    uint64_t *bits;       /* Floyd's membership bitmap, kept all zero */
    uint32_t *global_ids; /* (P*K) */
    /* pairs/triplets: the permutation of records for perm_epoch */
    uint32_t *perm; /* (n_records) */
    uint64_t perm_epoch;
    int perm_valid;
    /* coseg: every record's ids, and the records of each kind */
    uint32_t *rec_a, *rec_b; /* (n_records) */
    uint32_t *kind_rec[2];   /* [0] without, [1] with a common object */
    uint32_t kind_n[2];      /* their counts */
    uint32_t take[2];        /* records of each kind per batch */
    uint32_t *global_rec;    /* (batch) scratch: the batch's records */
} Sampler;

/* The ids one rank reads, in the order its encoder sees them:
 *   PK:       ids of items [item_begin, item_begin + n_items) of the global list
 *   pairs:    [first images of the local pairs; second images]   2*n_items
 *   coseg:    as pairs
 *   triplets: [anchors; positives; negatives]                     3*n_items
 * labels[i] is the label of ids[i]; same[j] (pairs only, else NULL) is the
 * record's flag for local pair j (pairs and coseg: 1 = equal labels, for
 * coseg a common object). Allocated once by sampler_batch_init. */
typedef struct LocalBatch {
    int n_images; /* n_items * per_item */
    int n_items;
    int item_begin;   /* first global item of this slice */
    int global_items; /* items in the global batch */
    int per_item;     /* images per item: 1, 2 or 3 */
    int cap_items;    /* capacity in items */
    uint32_t *ids;    /* (cap_items * per_item) */
    int32_t *labels;  /* (cap_items * per_item) */
    uint8_t *same;    /* (cap_items) pairs mode, else NULL */
} LocalBatch;

/* Validates the spec against the dataset: PK needs P eligible classes
 * (with groups: that many groups of P/groups eligible classes);
 * pairs/triplets need the sub-database with at least `batch` records, coseg
 * enough records of each kind for one batch (the
 * message names the dataset and the `siamese pairs` command to run). The
 * dataset must outlive the sampler. 0, or -1 with e. */
int sampler_init(Sampler *s, const SamplerSpec *spec, const Dataset *ds, Err *e);
/* PK mode from a bare label array (count entries in [0, classes)), for tests
 * and synthetic data: builds its own class index; labels must outlive s.
 * `name` is used in messages. */
int sampler_init_labels(Sampler *s, const SamplerSpec *spec, const int32_t *labels, uint64_t count,
                        uint32_t classes, const char *name, Err *e);
/* A sampler giving the same batches with its own scratch and permutation
 * cache (for another thread); shares the read-only index, so src must
 * outlive dst. Free with sampler_free. */
void sampler_clone(Sampler *dst, const Sampler *src);
void sampler_free(Sampler *s);

/* PK: floor(count / (P*K)); pairs/triplets/coseg: floor(records / batch). >= 1. */
uint64_t sampler_steps_per_epoch(const Sampler *s);
/* P*K in PK mode, else batch. */
int sampler_global_items(const Sampler *s);
/* 1 (PK), 2 (pairs, coseg) or 3 (triplets). */
int sampler_images_per_item(const Sampler *s);

/* Contiguous slice of n_items for rank of world: sizes differ by at most 1,
 * earlier ranks get the larger ones. Asserts n_items >= world >= 1. */
void sampler_shard(int n_items, int rank, int world, int *begin, int *count);

/* Allocates lb for the largest slice over `world` ranks (world 1: the whole
 * global batch). Free with sampler_batch_free. */
void sampler_batch_init(const Sampler *s, int world, LocalBatch *lb);
void sampler_batch_free(LocalBatch *lb);

/* Fills out with rank's slice of the global batch (epoch, step); step <
 * steps_per_epoch. The reader is needed for pairs/triplets records (may be
 * NULL in PK and coseg modes). -1 with e on a bad record or if the global batch has
 * fewer items than there are ranks. Not thread-safe on one Sampler (clone). */
int sampler_local(Sampler *s, uint64_t epoch, uint64_t step, int rank, int world, LocalBatch *out,
                  DsReader *r, Err *e);
/* The whole global batch: sampler_local as rank 0 of world 1. */
int sampler_global(Sampler *s, uint64_t epoch, uint64_t step, LocalBatch *out, DsReader *r, Err *e);
/* Index in the global batch's image order (world-1 layout) of local image i. */
int sampler_global_image(const LocalBatch *lb, int i);

/* The draws in place of sample `bad` of class cls, image pos of the global
 * batch of global step g, whose record failed: seeds r (-1 with e if the
 * sampler has no class index or the class has no other sample); then
 * sampler_replacement_next gives the candidates, the caller taking the
 * first that reads. */
int sampler_replacement_start(const Sampler *s, uint64_t g, int pos, uint32_t cls, Rng *r, Err *e);
uint32_t sampler_replacement_next(const Sampler *s, uint32_t cls, uint32_t bad, Rng *r);

#endif
