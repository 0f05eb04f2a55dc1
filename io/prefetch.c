/* prefetch: batch decoding and the double-buffered reader thread.
 *
 * Slot protocol (both slots guarded by mu): step g goes to slot
 * (g - first) % 2. FREE -> FILLING (thread loads it, unlocked) -> READY
 * (loaded or failed) -> HELD (the caller's current batch) -> FREE when the
 * caller asks for the next one. The thread never runs more than one batch
 * ahead of the caller's current one. */
#include "prefetch.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/parallel.h"

void batch_init(Batch *b, const Sampler *s, const Dataset *ds, int world) {
    const DsMeta *m = ds_meta(ds);
    memset(b, 0, sizeof *b);
    sampler_batch_init(s, world, &b->lb);
    b->channels = (int)m->channels;
    b->height = (int)m->height;
    b->width = (int)m->width;
    size_t img = (size_t)m->channels * m->height * m->width, hw = (size_t)m->height * m->width;
    size_t cap = (size_t)b->lb.cap_items * (size_t)b->lb.per_item;
    b->x = xaligned_floats(cap * img);
    b->pixels = xmalloc(cap * img);
    if (m->has_masks) {
        b->masks = xmalloc(cap * hw);
        b->mask_src = xmalloc(cap * hw);
    }
}

void batch_free(Batch *b) {
    if (!b) return;
    sampler_batch_free(&b->lb);
    free(b->x);
    free(b->masks);
    free(b->pixels);
    free(b->mask_src);
    memset(b, 0, sizeof *b);
}

#define REPLACE_DRAWS 32 /* candidates tried in place of one bad record */

/* Image i of b did not read (e says why). on_bad_record = stop: -1 with
 * e and the way to train on. skip: reads a sample of the same class in
 * its place (the draws of sampler.h, from the global step g and the
 * image's global position), warns, 0; -1 if none of REPLACE_DRAWS reads. */
static int replace_bad(Batch *b, Sampler *s, DsReader *r, int i, uint64_t g, uint8_t *px, uint8_t *mask,
                       Err *e) {
    if (s->spec.on_bad != SAMPLER_BAD_SKIP) {
        size_t n = strlen(e->msg);
        snprintf(e->msg + n, sizeof e->msg - n, "; to train on without it: [data] on_bad_record = skip");
        return -1;
    }
    uint32_t bad = b->lb.ids[i], cls = (uint32_t)b->lb.labels[i];
    Err why = *e;
    Rng rng;
    if (sampler_replacement_start(s, g, sampler_global_image(&b->lb, i), cls, &rng, e))
        return err_set(e, "%s; %s", why.msg, e->msg);
    for (int k = 0; k < REPLACE_DRAWS; k++) {
        uint32_t id = sampler_replacement_next(s, cls, bad, &rng);
        int32_t label;
        if (ds_read(r, id, px, &label, mask, e) || label != b->lb.labels[i]) continue;
        s->bad_records++;
        /* The first ten, then at 16, 32, 64, ... so a log stays readable. */
        if (s->bad_records <= 10 || !(s->bad_records & (s->bad_records - 1)))
            util_warn(
                "%s; skipped ([data] on_bad_record = skip): sample %u of its class in its place at step "
                "%" PRIu64 " (%" PRIu64 " bad records so far on this rank)",
                why.msg, id, g + 1, s->bad_records);
        b->lb.ids[i] = id;
        return 0;
    }
    return err_set(e, "%s; none of %d samples of its class drawn in its place read either (the last: %s)",
                   why.msg, REPLACE_DRAWS, e->msg);
}

/* Decoding images [lo, hi) of a batch whose records are read. */
typedef struct Decode {
    Batch *b;
    const BatchDecode *d;
    const AugmentSpec *aug;
    uint64_t g;
    float lut[NORM_MAX_CHANNELS][256];
} Decode;

/* Images [lo, hi): their pixels through the channel's table, or distorted
 * by their own map (drawn from the step and the image's global position),
 * one map for every channel and the mask. */
static void decode_images(void *ctx, size_t lo, size_t hi) {
    const Decode *k = ctx;
    Batch *b = k->b;
    size_t hw = (size_t)b->height * b->width, img = (size_t)b->channels * hw;
    for (size_t i = lo; i < hi; i++) {
        const uint8_t *px = b->pixels + i * img;
        float *x = b->x + i * img;
        if (!k->aug) {
            for (int c = 0; c < b->channels; c++)
                for (size_t j = 0; j < hw; j++) x[(size_t)c * hw + j] = k->lut[c][px[(size_t)c * hw + j]];
            continue;
        }
        AugmentMap map;
        augment_draw(&map, k->aug, k->d->seed, k->g, (uint64_t)sampler_global_image(&b->lb, (int)i));
        for (int c = 0; c < b->channels; c++)
            augment_image(x + (size_t)c * hw, px + (size_t)c * hw, k->lut[c], &map, (int)k->aug->fill, 1,
                          b->height, b->width);
        if (b->masks) augment_mask(b->masks + i * hw, b->mask_src + i * hw, &map, b->height, b->width);
    }
}

/* Pixels per chunk of the decoding: images are decoded in chunks of at
 * least one image and about this many pixels, on the rank's thread pool. */
#define DECODE_GRAIN 16384

int batch_load(Batch *b, Sampler *s, DsReader *r, int rank, int world, const BatchDecode *d, uint64_t g,
               Err *e) {
    uint64_t spe = sampler_steps_per_epoch(s);
    b->step = g;
    b->epoch = g / spe;
    b->step_in_epoch = g % spe;
    b->wait_seconds = 0;
    if (sampler_local(s, b->epoch, b->step_in_epoch, rank, world, &b->lb, r, e)) return -1;
    ASSERT(d->norm.channels == b->channels);
    size_t img = (size_t)b->channels * b->height * b->width, hw = (size_t)b->height * b->width;
    Decode k = {b, d, d->aug && augment_enabled(d->aug) ? d->aug : NULL, g, {{0}}};
    /* The records, in order (one reader); masks straight into place unless
     * they are distorted. */
    for (int i = 0; i < b->lb.n_images; i++) {
        int32_t label;
        uint8_t *px = b->pixels + (size_t)i * img;
        uint8_t *mdst = !b->masks ? NULL : k.aug ? b->mask_src + (size_t)i * hw : b->masks + (size_t)i * hw;
        int bad = ds_read(r, b->lb.ids[i], px, &label, mdst, e);
        if (!bad && label != b->lb.labels[i]) {
            err_set(e, "%s: samples key %u: label %d in its record but %d in the class index", s->name,
                    b->lb.ids[i], label, b->lb.labels[i]);
            bad = 1;
        }
        if (bad && replace_bad(b, s, r, i, g, px, mdst, e)) return -1;
    }
    /* One table per channel and call: the same floats as norm_apply, for
     * every path that decodes. */
    for (int c = 0; c < b->channels; c++) norm_table(k.lut[c], &d->norm, c);
    parallel_for((size_t)b->lb.n_images, MAX((size_t)1, DECODE_GRAIN / img), decode_images, &k);
    return 0;
}

enum { SLOT_FREE, SLOT_FILLING, SLOT_READY, SLOT_HELD };

struct Prefetch {
    Dataset *ds;
    Sampler s; /* private clone */
    int rank, world;
    BatchDecode decode;
    uint64_t first, end, next; /* next: the step prefetch_next returns next */
    Batch slot[2];
    int state[2], failed[2];
    Err err[2];
    int held;  /* slot the caller holds, or -1 */
    int error; /* a load failed: sticky, message in sticky */
    Err sticky;
    int stop;
    int started; /* 1: reader open, -1: it failed (start_err) */
    Err start_err;
    int joinable;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
};

static void *prefetch_main(void *arg) {
    Prefetch *p = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    DsReader *r = NULL;
    int rc = ds_reader_open(p->ds, &r, &p->start_err);
    pthread_mutex_lock(&p->mu);
    p->started = rc ? -1 : 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (rc) return NULL;
    for (uint64_t g = p->first; g < p->end; g++) {
        int i = (int)((g - p->first) & 1);
        pthread_mutex_lock(&p->mu);
        while (!p->stop && p->state[i] != SLOT_FREE) pthread_cond_wait(&p->cv, &p->mu);
        int stop = p->stop;
        if (!stop) p->state[i] = SLOT_FILLING;
        pthread_mutex_unlock(&p->mu);
        if (stop) break;
        int bad = batch_load(&p->slot[i], &p->s, r, p->rank, p->world, &p->decode, g, &p->err[i]);
        pthread_mutex_lock(&p->mu);
        p->failed[i] = bad;
        p->state[i] = SLOT_READY;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        if (bad) break;
    }
    ds_reader_close(r);
    return NULL;
}

static void prefetch_free(Prefetch *p) {
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    for (int i = 0; i < 2; i++) batch_free(&p->slot[i]);
    sampler_free(&p->s);
    free(p);
}

Prefetch *prefetch_start(Dataset *ds, Sampler *s, int rank, int world, const BatchDecode *d,
                         uint64_t first_step, uint64_t end_step, Err *e) {
    const Norm *norm = &d->norm;
    if (world < 1 || rank < 0 || rank >= world) {
        err_set(e, "prefetch: rank %d of world %d", rank, world);
        return NULL;
    }
    if (norm->channels != (int)ds_meta(ds)->channels) {
        err_set(e, "prefetch: a normalisation of %d channels for %s, which has %u", norm->channels,
                ds_path(ds), ds_meta(ds)->channels);
        return NULL;
    }
    for (int c = 0; c < norm->channels; c++)
        if (!(norm->std[c] > 0) || !isfinite(norm->std[c]) || !isfinite(norm->mean[c])) {
            err_set(e,
                    "prefetch: normalisation of channel %d: mean %g std %g; std must be finite and > 0 "
                    "([data] mean/std or the dataset's meta)",
                    c, (double)norm->mean[c], (double)norm->std[c]);
            return NULL;
        }
    if (first_step > end_step) {
        err_set(e, "prefetch: first step %llu after end step %llu", (unsigned long long)first_step,
                (unsigned long long)end_step);
        return NULL;
    }
    if (world > sampler_global_items(s)) {
        err_set(e,
                "dataset %s: the global batch has %d items, fewer than the %d ranks; raise "
                "[sampler] p*k or batch, or run on fewer ranks",
                ds_path(ds), sampler_global_items(s), world);
        return NULL;
    }
    Prefetch *p = xcalloc(1, sizeof *p);
    p->ds = ds;
    sampler_clone(&p->s, s);
    p->rank = rank;
    p->world = world;
    p->decode = *d;
    p->first = p->next = first_step;
    p->end = end_step;
    p->held = -1;
    for (int i = 0; i < 2; i++) batch_init(&p->slot[i], s, ds, world);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    int rc = pthread_create(&p->thread, NULL, prefetch_main, p);
    if (rc) {
        err_set(e, "prefetch: cannot start the reader thread: %s", strerror(rc));
        prefetch_free(p);
        return NULL;
    }
    p->joinable = 1;
    pthread_mutex_lock(&p->mu);
    while (!p->started) pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    if (p->started < 0) {
        err_set(e, "prefetch: %s", p->start_err.msg);
        prefetch_stop(p);
        return NULL;
    }
    return p;
}

const Batch *prefetch_next(Prefetch *p, Err *e) {
    pthread_mutex_lock(&p->mu);
    if (p->held >= 0) {
        p->state[p->held] = SLOT_FREE;
        p->held = -1;
        pthread_cond_broadcast(&p->cv);
    }
    if (p->error) {
        err_set(e, "%s", p->sticky.msg);
        pthread_mutex_unlock(&p->mu);
        return NULL;
    }
    if (p->next >= p->end) {
        err_set(e, "prefetch: step %llu is past the end of the range [%llu, %llu)",
                (unsigned long long)p->next, (unsigned long long)p->first, (unsigned long long)p->end);
        pthread_mutex_unlock(&p->mu);
        return NULL;
    }
    int i = (int)((p->next - p->first) & 1);
    double t0 = now_seconds();
    while (p->state[i] != SLOT_READY) pthread_cond_wait(&p->cv, &p->mu);
    double waited = now_seconds() - t0;
    if (p->failed[i]) {
        p->error = 1;
        p->sticky = p->err[i];
        err_set(e, "%s", p->sticky.msg);
        pthread_mutex_unlock(&p->mu);
        return NULL;
    }
    p->state[i] = SLOT_HELD;
    p->held = i;
    p->next++;
    Batch *b = &p->slot[i];
    b->wait_seconds = waited;
    pthread_mutex_unlock(&p->mu);
    return b;
}

void prefetch_stop(Prefetch *p) {
    if (!p) return;
    if (p->joinable) {
        pthread_mutex_lock(&p->mu);
        p->stop = 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
    }
    prefetch_free(p);
}
