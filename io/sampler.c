/* sampler: PK and record batches, sharded by rank. See sampler.h for the
 * rules; everything here is a pure function of (seed, epoch, step) plus the
 * dataset's class index and records. */
#include "sampler.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLER_EPOCH_BIT (1ULL << 63)

static const char *mode_name(SamplerMode m) {
    return m == SAMPLER_PK ? "pk" : m == SAMPLER_PAIRS ? "pairs" : m == SAMPLER_COSEG ? "coseg" : "triplets";
}

int sampler_images_per_item(const Sampler *s) {
    return s->spec.mode == SAMPLER_PK ? 1 : s->spec.mode == SAMPLER_TRIPLETS ? 3 : 2;
}

int sampler_global_items(const Sampler *s) {
    return s->spec.mode == SAMPLER_PK ? s->spec.p * s->spec.k : s->spec.batch;
}

uint64_t sampler_steps_per_epoch(const Sampler *s) { return s->steps_per_epoch; }

/* Checks the numbers of the spec that do not depend on the data. */
static int check_spec(const SamplerSpec *spec, const char *name, Err *e) {
    if (spec->mode != SAMPLER_PK && spec->mode != SAMPLER_PAIRS && spec->mode != SAMPLER_TRIPLETS &&
        spec->mode != SAMPLER_COSEG)
        return err_set(e, "sampler: unknown mode %d", (int)spec->mode);
    if (spec->mode == SAMPLER_COSEG && !(spec->common >= 0.0 && spec->common <= 1.0))
        return err_set(e, "sampler for %s: common = %g; must be in [0, 1] ([sampler] common)", name,
                       spec->common);
    if (spec->mode == SAMPLER_PK) {
        if (spec->p < 1 || spec->k < 1)
            return err_set(e, "sampler for %s: p=%d k=%d; both must be >= 1 ([sampler] p, k)", name, spec->p,
                           spec->k);
        /* 3 * P * K must fit an int (images of the largest batch layout). */
        if ((long long)spec->p * spec->k > INT_MAX / 3)
            return err_set(e,
                           "sampler for %s: p*k = %lld images per batch is too many; "
                           "lower [sampler] p or k",
                           name, (long long)spec->p * spec->k);
        if (spec->groups < 0 || (spec->groups && spec->p % spec->groups))
            return err_set(e,
                           "sampler for %s: p = %d classes cannot be split evenly over groups = %d; "
                           "make [sampler] p a multiple of groups (or groups = 0)",
                           name, spec->p, spec->groups);
    } else if (spec->groups) {
        return err_set(e, "sampler for %s: [sampler] groups = %d applies to mode = pk only; remove it", name,
                       spec->groups);
    } else if (spec->batch < 1 || spec->batch > INT_MAX / 3) {
        return err_set(e,
                       "sampler for %s: batch=%d %s per global batch; must be in [1, %d] "
                       "([sampler] batch)",
                       name, spec->batch, mode_name(spec->mode), INT_MAX / 3);
    }
    return 0;
}

static void alloc_scratch(Sampler *s) {
    if (s->spec.mode == SAMPLER_PK) {
        uint32_t bits = s->n_eligible;
        for (uint32_t c = 0; c < s->n_eligible; c++) bits = MAX(bits, s->elig_n[c]);
        s->pick_cls = xmalloc((size_t)s->spec.p * sizeof *s->pick_cls);
        s->pick_grp = xmalloc(((size_t)s->spec.groups + 1) * sizeof *s->pick_grp);
        s->pick = xmalloc((size_t)s->spec.k * sizeof *s->pick);
        s->bits = xcalloc((size_t)bits / 64 + 1, sizeof *s->bits);
        s->global_ids = xmalloc((size_t)s->spec.p * s->spec.k * sizeof *s->global_ids);
    } else if (s->spec.mode == SAMPLER_COSEG) {
        s->bits = xcalloc((size_t)MAX(s->kind_n[0], s->kind_n[1]) / 64 + 1, sizeof *s->bits);
        s->global_rec = xmalloc((size_t)s->spec.batch * sizeof *s->global_rec);
        s->pick = xmalloc((size_t)s->spec.batch * sizeof *s->pick);
    } else {
        s->perm = xmalloc((size_t)s->n_records * sizeof *s->perm);
        s->perm_valid = 0;
    }
}

/* PK with groups: indexes the eligible classes by group (group_of: every
 * class's group in [0, n_groups)) and keeps the groups with at least
 * P/groups of them. */
static int groups_setup(Sampler *s, const int32_t *group_of, int n_groups, Err *e) {
    uint32_t per = (uint32_t)(s->spec.p / s->spec.groups), G = (uint32_t)n_groups;
    uint32_t *count = xcalloc((size_t)G + 1, sizeof *count);
    for (uint32_t i = 0; i < s->n_eligible; i++) count[group_of[s->eligible[i]] + 1]++;
    for (uint32_t g = 0; g < G; g++) count[g + 1] += count[g]; /* count[g] = start of group g */
    s->grp_cls = xmalloc(((size_t)s->n_eligible + 1) * sizeof *s->grp_cls);
    uint32_t *fill = xmalloc(((size_t)G + 1) * sizeof *fill);
    memcpy(fill, count, (size_t)G * sizeof *fill);
    for (uint32_t i = 0; i < s->n_eligible; i++) s->grp_cls[fill[group_of[s->eligible[i]]]++] = i;
    free(fill);
    s->grp_start = xmalloc(((size_t)G + 1) * sizeof *s->grp_start);
    s->grp_n = xmalloc(((size_t)G + 1) * sizeof *s->grp_n);
    s->n_usable = 0;
    for (uint32_t g = 0; g < G; g++)
        if (count[g + 1] - count[g] >= per) {
            s->grp_start[s->n_usable] = count[g];
            s->grp_n[s->n_usable++] = count[g + 1] - count[g];
        }
    free(count);
    if (s->n_usable < (uint32_t)s->spec.groups)
        return err_set(
            e,
            "dataset %s: %u of its %d groups (class-name prefixes before '/') have at least p/groups = "
            "%u classes of k=%d samples, but groups = %d are needed per PK batch; lower [sampler] "
            "groups or p",
            s->name, s->n_usable, n_groups, per, s->spec.k, s->spec.groups);
    return 0;
}

/* PK setup shared by both inits: keeps the classes of at least K samples
 * (class_ids/class_n: every class), warns once about the others. */
static int pk_setup(Sampler *s, const uint32_t *const *class_ids, const uint32_t *class_n, uint32_t classes,
                    Err *e) {
    uint32_t k = (uint32_t)s->spec.k, small = 0;
    uint64_t unused = 0;
    s->eligible = xmalloc(((size_t)classes + 1) * sizeof *s->eligible);
    s->elig_ids = xmalloc(((size_t)classes + 1) * sizeof *s->elig_ids);
    s->elig_n = xmalloc(((size_t)classes + 1) * sizeof *s->elig_n);
    s->n_eligible = 0;
    for (uint32_t c = 0; c < classes; c++) {
        if (class_n[c] >= k) {
            s->eligible[s->n_eligible] = c;
            s->elig_ids[s->n_eligible] = class_ids[c];
            s->elig_n[s->n_eligible++] = class_n[c];
        } else {
            small++;
            unused += class_n[c];
        }
    }
    if (s->n_eligible < (uint32_t)s->spec.p)
        return err_set(e,
                       "dataset %s: only %u of %u classes have at least k=%d samples, but "
                       "p=%d classes are needed per PK batch; lower [sampler] p or k",
                       s->name, s->n_eligible, classes, s->spec.k, s->spec.p);
    if (small)
        util_warn("dataset %s: %u classes have fewer than k=%d samples and are excluded from "
                  "PK batches (%llu samples unused)",
                  s->name, small, s->spec.k, (unsigned long long)unused);
    s->steps_per_epoch = s->count / ((uint64_t)s->spec.p * (uint64_t)s->spec.k);
    ASSERT(s->steps_per_epoch >= 1); /* P eligible classes hold >= P*K samples */
    return 0;
}

/* Coseg: loads the pairs and splits them by kind; checks that each kind
 * fills its share of a batch. */
static int coseg_setup(Sampler *s, const Dataset *ds, Err *e) {
    uint64_t n = s->n_records;
    uint8_t *same = xmalloc(n);
    s->rec_a = xmalloc(n * sizeof *s->rec_a);
    s->rec_b = xmalloc(n * sizeof *s->rec_b);
    if (ds_load_pairs(ds, s->rec_a, s->rec_b, same, e)) {
        free(same);
        return -1;
    }
    for (int k = 0; k < 2; k++) s->kind_rec[k] = xmalloc((n + 1) * sizeof *s->kind_rec[k]);
    for (uint64_t i = 0; i < n; i++) {
        int k = same[i] != 0;
        s->kind_rec[k][s->kind_n[k]++] = (uint32_t)i;
    }
    free(same);
    s->take[1] = (uint32_t)lrint(s->spec.batch * s->spec.common);
    s->take[0] = (uint32_t)s->spec.batch - s->take[1];
    for (int k = 0; k < 2; k++)
        if (s->kind_n[k] < s->take[k])
            return err_set(e,
                           "dataset %s has %u pairs %s a common object (equal labels), fewer than the %u of "
                           "one batch of %d with common = %g; make more pairs or change [sampler] batch or "
                           "common",
                           s->name, s->kind_n[k], k ? "with" : "without", s->take[k], s->spec.batch,
                           s->spec.common);
    return 0;
}

int sampler_init(Sampler *s, const SamplerSpec *spec, const Dataset *ds, Err *e) {
    memset(s, 0, sizeof *s);
    s->spec = *spec;
    s->name = xstrdup(ds_path(ds));
    const DsMeta *m = ds_meta(ds);
    s->count = m->count;
    s->labels = ds_labels(ds);
    s->ds = ds;
    if (check_spec(spec, s->name, e)) goto fail;
    if (spec->mode == SAMPLER_PK) {
        uint32_t classes = m->classes;
        const uint32_t **ids = xmalloc(((size_t)classes + 1) * sizeof *ids);
        uint32_t *n = xmalloc(((size_t)classes + 1) * sizeof *n);
        for (uint32_t c = 0; c < classes; c++) ids[c] = ds_class_ids(ds, c, &n[c]);
        int rc = pk_setup(s, ids, n, classes, e);
        free(ids);
        free(n);
        if (!rc && spec->groups) {
            int32_t *group_of = xmalloc(((size_t)classes + 1) * sizeof *group_of);
            rc = groups_setup(s, group_of, ds_groups(ds, group_of, NULL), e);
            free(group_of);
        }
        if (rc) goto fail;
    } else {
        int pairs = spec->mode != SAMPLER_TRIPLETS;
        const char *what = pairs ? "pairs" : "triplets";
        s->n_records = pairs ? m->npairs : m->ntriplets;
        if (s->n_records == 0) {
            err_set(e,
                    "dataset %s has no %s sub-database, needed by [sampler] mode = %s; run "
                    "`siamese pairs %s --%s N` first",
                    s->name, what, mode_name(spec->mode), s->name, what);
            goto fail;
        }
        if (s->n_records < (uint64_t)spec->batch) {
            err_set(e,
                    "dataset %s has %llu %s, fewer than one global batch of %d; run "
                    "`siamese pairs %s --%s N` with N >= %d, or lower [sampler] batch",
                    s->name, (unsigned long long)s->n_records, what, spec->batch, s->name, what, spec->batch);
            goto fail;
        }
        if (s->n_records > UINT32_MAX) {
            err_set(e, "dataset %s has %llu %s; the sampler handles at most %u", s->name,
                    (unsigned long long)s->n_records, what, UINT32_MAX);
            goto fail;
        }
        s->steps_per_epoch = s->n_records / (uint64_t)spec->batch;
        if (spec->mode == SAMPLER_COSEG && coseg_setup(s, ds, e)) goto fail;
    }
    alloc_scratch(s);
    return 0;
fail:
    sampler_free(s);
    return -1;
}

int sampler_init_labels(Sampler *s, const SamplerSpec *spec, const int32_t *labels, uint64_t count,
                        uint32_t classes, const char *name, Err *e) {
    memset(s, 0, sizeof *s);
    s->spec = *spec;
    s->name = xstrdup(name);
    s->count = count;
    s->labels = labels;
    if (check_spec(spec, s->name, e)) goto fail;
    if (spec->mode != SAMPLER_PK || spec->groups) {
        err_set(e, "sampler for %s: a bare label array supports only mode pk without groups", name);
        goto fail;
    }
    if (count > UINT32_MAX) {
        err_set(e, "sampler for %s: %llu samples; at most %u", name, (unsigned long long)count, UINT32_MAX);
        goto fail;
    }
    /* Counting sort of the ids by label: ascending ids within each class. */
    uint32_t *start = xcalloc((size_t)classes + 1, sizeof *start);
    for (uint64_t i = 0; i < count; i++) {
        if (labels[i] < 0 || (uint32_t)labels[i] >= classes) {
            err_set(e, "sampler for %s: sample %llu has label %d, outside [0, %u)", name,
                    (unsigned long long)i, labels[i], classes);
            free(start);
            goto fail;
        }
        start[labels[i] + 1]++;
    }
    for (uint32_t c = 0; c < classes; c++) start[c + 1] += start[c];
    s->own_ids = xmalloc((size_t)count * sizeof *s->own_ids + 1);
    uint32_t *fill = xmalloc(((size_t)classes + 1) * sizeof *fill);
    memcpy(fill, start, (size_t)classes * sizeof *fill);
    for (uint64_t i = 0; i < count; i++) s->own_ids[fill[labels[i]]++] = (uint32_t)i;
    const uint32_t **ids = xmalloc(((size_t)classes + 1) * sizeof *ids);
    for (uint32_t c = 0; c < classes; c++) {
        ids[c] = s->own_ids + start[c];
        fill[c] = start[c + 1] - start[c];
    }
    int rc = pk_setup(s, ids, fill, classes, e);
    free(ids);
    free(fill);
    free(start);
    if (rc) goto fail;
    alloc_scratch(s);
    return 0;
fail:
    sampler_free(s);
    return -1;
}

void sampler_clone(Sampler *dst, const Sampler *src) {
    memset(dst, 0, sizeof *dst);
    dst->spec = src->spec;
    dst->name = xstrdup(src->name);
    dst->count = src->count;
    dst->labels = src->labels;
    dst->ds = src->ds;
    dst->n_records = src->n_records;
    dst->steps_per_epoch = src->steps_per_epoch;
    dst->n_eligible = src->n_eligible;
    dst->eligible = src->eligible;
    dst->elig_ids = src->elig_ids;
    dst->elig_n = src->elig_n;
    dst->n_usable = src->n_usable;
    dst->grp_cls = src->grp_cls;
    dst->grp_start = src->grp_start;
    dst->grp_n = src->grp_n;
    dst->rec_a = src->rec_a;
    dst->rec_b = src->rec_b;
    for (int k = 0; k < 2; k++) {
        dst->kind_rec[k] = src->kind_rec[k];
        dst->kind_n[k] = src->kind_n[k];
        dst->take[k] = src->take[k];
    }
    dst->shared = 1;
    alloc_scratch(dst);
}

void sampler_free(Sampler *s) {
    if (!s) return;
    if (!s->shared) {
        free(s->eligible);
        free((void *)s->elig_ids);
        free(s->elig_n);
        free(s->grp_cls);
        free(s->grp_start);
        free(s->grp_n);
        free(s->own_ids);
        free(s->rec_a);
        free(s->rec_b);
        free(s->kind_rec[0]);
        free(s->kind_rec[1]);
    }
    free(s->global_rec);
    free(s->name);
    free(s->pick_cls);
    free(s->pick_grp);
    free(s->pick);
    free(s->bits);
    free(s->global_ids);
    free(s->perm);
    memset(s, 0, sizeof *s);
}

void sampler_shard(int n_items, int rank, int world, int *begin, int *count) {
    ASSERT(world >= 1 && rank >= 0 && rank < world && n_items >= world);
    int base = n_items / world, rem = n_items % world;
    *count = base + (rank < rem);
    *begin = rank * base + MIN(rank, rem);
}

void sampler_batch_init(const Sampler *s, int world, LocalBatch *lb) {
    ASSERT(world >= 1);
    int g = sampler_global_items(s), per = sampler_images_per_item(s);
    memset(lb, 0, sizeof *lb);
    lb->per_item = per;
    lb->global_items = g;
    lb->cap_items = (g + world - 1) / world;
    lb->ids = xmalloc((size_t)lb->cap_items * per * sizeof *lb->ids);
    lb->labels = xmalloc((size_t)lb->cap_items * per * sizeof *lb->labels);
    if (per == 2) lb->same = xmalloc((size_t)lb->cap_items);
}

void sampler_batch_free(LocalBatch *lb) {
    if (!lb) return;
    free(lb->ids);
    free(lb->labels);
    free(lb->same);
    memset(lb, 0, sizeof *lb);
}

/* Floyd's algorithm: m distinct values of [0, n), each m-subset equally
 * likely, in O(m) with the bitmap (left all zero on return). */
static void floyd(Rng *r, uint32_t n, uint32_t m, uint32_t *out, uint64_t *bits) {
    ASSERT(m <= n);
    for (uint32_t j = n - m, c = 0; j < n; j++, c++) {
        uint32_t t = (uint32_t)rng_below(r, (uint64_t)j + 1);
        if (bits[t >> 6] >> (t & 63) & 1) t = j; /* j itself is never taken yet */
        bits[t >> 6] |= 1ULL << (t & 63);
        out[c] = t;
    }
    for (uint32_t c = 0; c < m; c++) bits[out[c] >> 6] &= ~(1ULL << (out[c] & 63));
}

/* s->global_ids = the P*K ids of PK batch (epoch, step), class-major. */
static void pk_global(Sampler *s, uint64_t epoch, uint64_t step) {
    uint32_t p = (uint32_t)s->spec.p, k = (uint32_t)s->spec.k;
    Rng r;
    rng_seed(&r, s->spec.seed, RNG_SAMPLER, epoch * s->steps_per_epoch + step);
    if (s->spec.groups) {
        uint32_t G = (uint32_t)s->spec.groups, per = p / G;
        floyd(&r, s->n_usable, G, s->pick_grp, s->bits);
        for (uint32_t g = 0; g < G; g++) {
            uint32_t u = s->pick_grp[g];
            floyd(&r, s->grp_n[u], per, s->pick_cls + g * per, s->bits);
            for (uint32_t c = 0; c < per; c++)
                s->pick_cls[g * per + c] = s->grp_cls[s->grp_start[u] + s->pick_cls[g * per + c]];
        }
    } else {
        floyd(&r, s->n_eligible, p, s->pick_cls, s->bits);
    }
    for (uint32_t c = 0; c < p; c++) {
        uint32_t cls = s->pick_cls[c];
        floyd(&r, s->elig_n[cls], k, s->pick, s->bits);
        for (uint32_t i = 0; i < k; i++) s->global_ids[c * k + i] = s->elig_ids[cls][s->pick[i]];
    }
}

/* s->global_rec = the records of coseg batch (epoch, step), in batch order. */
static void coseg_global(Sampler *s, uint64_t epoch, uint64_t step) {
    Rng r;
    rng_seed(&r, s->spec.seed, RNG_SAMPLER, epoch * s->steps_per_epoch + step);
    uint32_t n = 0;
    for (int k = 1; k >= 0; k--) {
        floyd(&r, s->kind_n[k], s->take[k], s->pick, s->bits);
        for (uint32_t i = 0; i < s->take[k]; i++) s->global_rec[n++] = s->kind_rec[k][s->pick[i]];
    }
    rng_shuffle_u32(&r, s->global_rec, n);
}

static void perm_for_epoch(Sampler *s, uint64_t epoch) {
    if (s->perm_valid && s->perm_epoch == epoch) return;
    for (uint64_t i = 0; i < s->n_records; i++) s->perm[i] = (uint32_t)i;
    Rng r;
    rng_seed(&r, s->spec.seed, RNG_SAMPLER, epoch | SAMPLER_EPOCH_BIT);
    rng_shuffle_u32(&r, s->perm, s->n_records);
    s->perm_epoch = epoch;
    s->perm_valid = 1;
}

int sampler_local(Sampler *s, uint64_t epoch, uint64_t step, int rank, int world, LocalBatch *out,
                  DsReader *r, Err *e) {
    ASSERT(step < s->steps_per_epoch);
    int g = sampler_global_items(s), per = sampler_images_per_item(s);
    if (world > g)
        return err_set(e,
                       "sampler for %s: the global batch has %d %s, fewer than the %d "
                       "ranks; raise [sampler] %s or run on fewer ranks",
                       s->name, g, s->spec.mode == SAMPLER_PK ? "images" : mode_name(s->spec.mode), world,
                       s->spec.mode == SAMPLER_PK ? "p or k" : "batch");
    int begin, n;
    sampler_shard(g, rank, world, &begin, &n);
    ASSERT(out->per_item == per && out->global_items == g && n <= out->cap_items);
    out->n_items = n;
    out->n_images = n * per;
    out->item_begin = begin;
    if (s->spec.mode == SAMPLER_PK) {
        pk_global(s, epoch, step);
        memcpy(out->ids, s->global_ids + begin, (size_t)n * sizeof *out->ids);
    } else if (s->spec.mode == SAMPLER_COSEG) {
        coseg_global(s, epoch, step);
        for (int j = 0; j < n; j++) {
            uint32_t rec = s->global_rec[begin + j];
            out->ids[j] = s->rec_a[rec];
            out->ids[n + j] = s->rec_b[rec];
            out->same[j] = s->labels[s->rec_a[rec]] == s->labels[s->rec_b[rec]];
        }
    } else {
        ASSERT(r != NULL);
        perm_for_epoch(s, epoch);
        const uint32_t *rec = s->perm + step * (uint64_t)g + (uint64_t)begin;
        for (int j = 0; j < n; j++) {
            if (s->spec.mode == SAMPLER_PAIRS) {
                uint32_t a, b;
                int same;
                if (ds_read_pair(r, rec[j], &a, &b, &same, e)) return -1;
                out->ids[j] = a;
                out->ids[n + j] = b;
                out->same[j] = (uint8_t)(same != 0);
            } else {
                uint32_t t[3];
                if (ds_read_triplet(r, rec[j], t, e)) return -1;
                for (int q = 0; q < 3; q++) out->ids[q * n + j] = t[q];
            }
        }
    }
    for (int i = 0; i < out->n_images; i++) {
        ASSERT(out->ids[i] < s->count);
        out->labels[i] = s->labels[out->ids[i]];
    }
    return 0;
}

int sampler_global(Sampler *s, uint64_t epoch, uint64_t step, LocalBatch *out, DsReader *r, Err *e) {
    return sampler_local(s, epoch, step, 0, 1, out, r, e);
}

int sampler_global_image(const LocalBatch *lb, int i) {
    ASSERT(i >= 0 && i < lb->n_images);
    int q = i / lb->n_items, j = i % lb->n_items;
    return q * lb->global_items + lb->item_begin + j;
}

int sampler_replacement_start(const Sampler *s, uint64_t g, int pos, uint32_t cls, Rng *r, Err *e) {
    uint32_t n = 0;
    if (!s->ds) return err_set(e, "%s: no class index to draw a replacement sample from", s->name);
    ds_class_ids(s->ds, cls, &n);
    if (n < 2)
        return err_set(e, "%s: class %u (%s) has no other sample to use in place of its bad one", s->name,
                       cls, ds_class_name(s->ds, cls));
    uint64_t key[2] = {g, (uint64_t)pos};
    rng_seed(r, s->spec.seed, RNG_REPLACE, hash64(key, sizeof key, HASH64_INIT));
    return 0;
}

uint32_t sampler_replacement_next(const Sampler *s, uint32_t cls, uint32_t bad, Rng *r) {
    uint32_t n, id;
    const uint32_t *ids = ds_class_ids(s->ds, cls, &n);
    do id = ids[rng_below(r, n)];
    while (id == bad);
    return id;
}
