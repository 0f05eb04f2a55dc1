/* prefetch: reads, decodes and augments one rank's slice of each global
 * batch. A background thread with its own DsReader fills two buffers in
 * turn, so batch g+1 is read while the caller trains on batch g. batch_load
 * is the same work done synchronously (the thread calls it too). Pixels
 * become floats x = (pixel/255 - mean[c]) / std[c] (norm.h), NCHW,
 * distorted by io/augment when asked. No sampling policy here. */
#ifndef SIAMESE_PREFETCH_H
#define SIAMESE_PREFETCH_H

#include <stdint.h>

#include "../nn/util.h"
#include "augment.h"
#include "dataset.h"
#include "norm.h"
#include "sampler.h"

/* One decoded local batch. Global step g is (epoch, step_in_epoch) =
 * (g / steps_per_epoch, g % steps_per_epoch). Buffers are allocated once by
 * batch_init for the largest slice over `world` ranks. */
typedef struct Batch {
    uint64_t step; /* global step g */
    uint64_t epoch, step_in_epoch;
    LocalBatch lb;  /* ids, labels, same flags, slice */
    float *x;       /* (lb.n_images, C, H, W), 64-byte aligned */
    uint8_t *masks; /* (lb.n_images, H, W) if the dataset has masks, else NULL */
    int channels, height, width;
    double wait_seconds; /* time prefetch_next blocked for it */
    uint8_t *pixels;     /* private: the records' pixels (lb.n_images x C x H x W) */
    uint8_t *mask_src;   /* private: their masks before augmentation */
} Batch;

/* How records become the encoder's input: x = (pixel/255 - mean[c]) /
 * std[c] for channel c, after the distortions of aug (NULL, or nothing enabled: none) drawn from
 * rng_seed_item(seed, RNG_AUGMENT, g, the image's global batch position). */
typedef struct BatchDecode {
    Norm norm; /* per channel */
    const AugmentSpec *aug;
    uint64_t seed;
} BatchDecode;

void batch_init(Batch *b, const Sampler *s, const Dataset *ds, int world);
void batch_free(Batch *b);
/* Samples and decodes rank's slice of global step g into b: reads the
 * records in order in the calling thread, then decodes (and distorts) them
 * on the thread pool (nn/parallel), in chunks of whole images: the same
 * bits for any thread count. -1 with e on a
 * bad record (ds_read's message, naming the key) or a label that disagrees
 * with the class index; with [data] on_bad_record = skip such a sample is
 * replaced (sampler.h) and -1 only if no replacement reads. */
int batch_load(Batch *b, Sampler *s, DsReader *r, int rank, int world, const BatchDecode *d, uint64_t g,
               Err *e);

typedef struct Prefetch Prefetch;

/* Starts the thread for global steps [first_step, end_step). The thread
 * samples with a private clone of s (s and d->aug stay the caller's and must
 * outlive the Prefetch), opens its own reader on ds and blocks every signal
 * (handlers run on the caller's threads). NULL with e on bad arguments or if
 * the reader or thread cannot start. */
Prefetch *prefetch_start(Dataset *ds, Sampler *s, int rank, int world, const BatchDecode *d,
                         uint64_t first_step, uint64_t end_step, Err *e);
/* Blocks until the next step's batch is ready and returns it; it stays valid
 * until the next call (or prefetch_stop). NULL with e on a read error (then
 * on every later call too) or past end_step. */
const Batch *prefetch_next(Prefetch *p, Err *e);
/* Stops and joins the thread (it finishes at most the batch it is loading)
 * and frees everything. Safe at any point; NULL is a no-op. */
void prefetch_stop(Prefetch *p);

#endif
