/* test_sampler: shards, PK batches from a synthetic class index (structure,
 * determinism, rank-count independence, exclusion of small classes, loose
 * uniformity), pairs/triplets batches from a small dataset written in /tmp
 * (rank-count independence, one permutation per epoch), and co-segmentation
 * batches (the ratio of pairs with a common object, distinct records of each
 * kind, stateless per step, rank-count independence, loose uniformity), and
 * PK batches drawn group by group ([sampler] groups). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../io/dataset.h"
#include "../io/sampler.h"
#include "../nn/util.h"
#include "test.h"

#define NCLS 20

static void test_shard(void) {
    int ok = 1;
    for (int n = 1; n <= 40; n++)
        for (int w = 1; w <= MIN(n, 9); w++) {
            int next = 0, prev = n + 1, lo = n, hi = 0;
            for (int r = 0; r < w; r++) {
                int b, c;
                sampler_shard(n, r, w, &b, &c);
                if (b != next || c > prev || c < 1) ok = 0;
                next = b + c;
                prev = c;
                lo = MIN(lo, c);
                hi = MAX(hi, c);
            }
            if (next != n || hi - lo > 1) ok = 0;
        }
    CHECK(ok, "shards are contiguous, cover, non-increasing, differ by <= 1");
    int want[4][2] = {{0, 8}, {8, 8}, {16, 7}, {23, 7}};
    for (int r = 0; r < 4; r++) {
        int b, c;
        sampler_shard(30, r, 4, &b, &c);
        CHECK(b == want[r][0] && c == want[r][1], "30 over 4, rank %d: [%d, +%d)", r, b, c);
    }
}

/* Class c has size[c] samples; ids are handed out in a shuffled order so
 * that classes are not contiguous id ranges. */
static int32_t *make_labels(uint64_t *count, int *size) {
    uint64_t n = 0;
    for (int c = 0; c < NCLS; c++) {
        size[c] = 1 + (c * 5) % 11 + (c == 7 ? 200 : 0); /* 1..11, class 7 big */
        n += (uint64_t)size[c];
    }
    uint32_t *perm = xmalloc(n * sizeof *perm);
    for (uint64_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    Rng r;
    rng_seed(&r, 9, RNG_TEST, 0);
    rng_shuffle_u32(&r, perm, n);
    int32_t *labels = xmalloc(n * sizeof *labels);
    uint64_t j = 0;
    for (int c = 0; c < NCLS; c++)
        for (int i = 0; i < size[c]; i++) labels[perm[j++]] = c;
    free(perm);
    *count = n;
    return labels;
}

static int same_batch(const LocalBatch *a, const LocalBatch *b) {
    return a->n_images == b->n_images && !memcmp(a->ids, b->ids, (size_t)a->n_images * sizeof *a->ids) &&
           !memcmp(a->labels, b->labels, (size_t)a->n_images * sizeof *a->labels);
}

/* The local batches of world ranks, put at their global positions, give
 * exactly the world-1 batch (ids, labels, same flags). */
static int check_union(Sampler *s, uint64_t ep, uint64_t st, int world, DsReader *rd,
                       const LocalBatch *glob) {
    LocalBatch lb;
    sampler_batch_init(s, world, &lb);
    int ok = 1, items = 0;
    char *seen = xcalloc((size_t)glob->n_images, 1);
    Err e;
    for (int r = 0; r < world; r++) {
        if (sampler_local(s, ep, st, r, world, &lb, rd, &e)) {
            fprintf(stderr, "sampler_local: %s\n", e.msg);
            ok = 0;
            break;
        }
        if (lb.item_begin != items || lb.n_images != lb.n_items * glob->per_item) ok = 0;
        items += lb.n_items;
        for (int i = 0; i < lb.n_images; i++) {
            int g = sampler_global_image(&lb, i);
            if (g < 0 || g >= glob->n_images || seen[g]) {
                ok = 0;
                continue;
            }
            seen[g] = 1;
            if (lb.ids[i] != glob->ids[g] || lb.labels[i] != glob->labels[g]) ok = 0;
        }
        for (int j = 0; glob->same && j < lb.n_items; j++)
            if (lb.same[j] != glob->same[lb.item_begin + j]) ok = 0;
    }
    if (items != glob->n_items) ok = 0;
    free(seen);
    sampler_batch_free(&lb);
    return ok;
}

static void test_pk(void) {
    int size[NCLS];
    uint64_t count;
    int32_t *labels = make_labels(&count, size);
    Err e;
    Sampler s, s2;
    SamplerSpec spec = {.mode = SAMPLER_PK, .p = 5, .k = 6, .seed = 42};
    int elig = 0;
    for (int c = 0; c < NCLS; c++) elig += size[c] >= 6;
    CHECK(sampler_init_labels(&s, &spec, labels, count, NCLS, "fake", &e) == 0, "%s", e.msg);
    CHECK(sampler_init_labels(&s2, &spec, labels, count, NCLS, "fake", &e) == 0, "%s", e.msg);
    CHECK((int)s.n_eligible == elig, "%u eligible, want %d", s.n_eligible, elig);
    CHECK(sampler_global_items(&s) == 30, "items %d", sampler_global_items(&s));
    uint64_t spe = sampler_steps_per_epoch(&s);
    CHECK(spe == count / 30, "steps per epoch %llu, count %llu", (unsigned long long)spe,
          (unsigned long long)count);

    LocalBatch g1, g2, g3;
    sampler_batch_init(&s, 1, &g1);
    sampler_batch_init(&s, 1, &g2);
    sampler_batch_init(&s, 1, &g3);
    /* Structure over every step of three epochs. */
    int struct_ok = 1, det_ok = 1, union_ok = 1, differ = 0, pairs = 0;
    for (uint64_t ep = 0; ep < 3; ep++)
        for (uint64_t st = 0; st < spe; st++) {
            sampler_global(&s, ep, st, &g1, NULL, &e);
            sampler_global(&s2, ep, st, &g2, NULL, &e);
            if (!same_batch(&g1, &g2)) det_ok = 0;
            if (g1.n_images != 30 || g1.item_begin != 0 || g1.same) struct_ok = 0;
            for (int c = 0; c < 5; c++) {
                int32_t lab = g1.labels[c * 6];
                if (lab < 0 || lab >= NCLS || size[lab] < 6) struct_ok = 0;
                for (int c2 = 0; c2 < c; c2++)
                    if (g1.labels[c2 * 6] == lab) struct_ok = 0;
                for (int i = 0; i < 6; i++) {
                    uint32_t id = g1.ids[c * 6 + i];
                    if (id >= count || labels[id] != lab || g1.labels[c * 6 + i] != lab) struct_ok = 0;
                    for (int i2 = 0; i2 < i; i2++)
                        if (g1.ids[c * 6 + i2] == id) struct_ok = 0;
                }
            }
            for (int w = 1; w <= 4; w++)
                if (!check_union(&s, ep, st, w, NULL, &g1)) union_ok = 0;
            if (st > 0) {
                pairs++;
                differ += !same_batch(&g1, &g3);
            }
            memcpy(g3.ids, g1.ids, 30 * sizeof *g1.ids);
            memcpy(g3.labels, g1.labels, 30 * sizeof *g1.labels);
            g3.n_images = g1.n_images;
        }
    CHECK(struct_ok, "P distinct eligible classes x K distinct samples, class-major");
    CHECK(det_ok, "two samplers give the same batch for each (seed, epoch, step)");
    CHECK(union_ok, "for world 1..4 the local batches make up the global batch");
    CHECK(differ == pairs, "consecutive steps differ (%d of %d)", differ, pairs);

    /* Epoch and seed change the batch; the clone does not. */
    sampler_global(&s, 0, 1, &g1, NULL, &e);
    sampler_global(&s, 1, 1, &g2, NULL, &e);
    CHECK(!same_batch(&g1, &g2), "epoch 0 and 1 differ at step 1");
    Sampler s3, cl;
    SamplerSpec spec3 = spec;
    spec3.seed = 43;
    CHECK(sampler_init_labels(&s3, &spec3, labels, count, NCLS, "fake", &e) == 0, "%s", e.msg);
    sampler_global(&s3, 0, 1, &g2, NULL, &e);
    CHECK(!same_batch(&g1, &g2), "seeds 42 and 43 differ");
    sampler_clone(&cl, &s);
    sampler_global(&cl, 0, 1, &g2, NULL, &e);
    CHECK(same_batch(&g1, &g2), "a clone gives the same batch");
    sampler_free(&cl);
    sampler_free(&s3);
    /* Order of calls does not matter (stateless per step). */
    sampler_global(&s2, 2, 3, &g2, NULL, &e);
    sampler_global(&s2, 0, 1, &g2, NULL, &e);
    CHECK(same_batch(&g1, &g2), "batch independent of the previous calls");

    /* More ranks than items: an error, not a crash. */
    Sampler tiny;
    SamplerSpec ts = {.mode = SAMPLER_PK, .p = 2, .k = 1, .seed = 1};
    CHECK(sampler_init_labels(&tiny, &ts, labels, count, NCLS, "fake", &e) == 0, "%s", e.msg);
    LocalBatch lt;
    sampler_batch_init(&tiny, 3, &lt);
    CHECK(sampler_local(&tiny, 0, 0, 0, 3, &lt, NULL, &e) == -1 && strstr(e.msg, "3 ranks"),
          "3 ranks for 2 images: %s", e.msg);
    sampler_batch_free(&lt);
    sampler_free(&tiny);

    /* Fewer than P eligible classes: error naming the numbers. */
    SamplerSpec big = {.mode = SAMPLER_PK, .p = elig + 1, .k = 6, .seed = 1};
    char want[64];
    snprintf(want, sizeof want, "only %d of %d classes", elig, NCLS);
    CHECK(sampler_init_labels(&tiny, &big, labels, count, NCLS, "fake", &e) == -1 && strstr(e.msg, want) &&
              strstr(e.msg, "p=") && strstr(e.msg, "k=6"),
          "error: %s", e.msg);
    int32_t keep = labels[3];
    labels[3] = NCLS;
    CHECK(sampler_init_labels(&tiny, &spec, labels, count, NCLS, "fake", &e) == -1 &&
              strstr(e.msg, "sample 3"),
          "bad label: %s", e.msg);
    labels[3] = keep;
    SamplerSpec bad = {.mode = SAMPLER_PK, .p = 0, .k = 6};
    CHECK(sampler_init_labels(&tiny, &bad, labels, count, NCLS, "fake", &e) == -1, "p=0");

    sampler_batch_free(&g1);
    sampler_batch_free(&g2);
    sampler_batch_free(&g3);
    sampler_free(&s);
    sampler_free(&s2);
    free(labels);
}

/* Over many steps each eligible class is drawn about T*P/E times and each
 * sample of the big class about equally often (loose chi-square bounds). */
static void test_pk_uniform(void) {
    int size[NCLS];
    uint64_t count;
    int32_t *labels = make_labels(&count, size);
    Err e;
    Sampler s;
    SamplerSpec spec = {.mode = SAMPLER_PK, .p = 4, .k = 8, .seed = 7};
    CHECK(sampler_init_labels(&s, &spec, labels, count, NCLS, "fake", &e) == 0, "%s", e.msg);
    LocalBatch g;
    sampler_batch_init(&s, 1, &g);
    long cls[NCLS] = {0}, *smp = xcalloc(count, sizeof *smp);
    uint64_t spe = sampler_steps_per_epoch(&s), T = 0;
    for (uint64_t ep = 0; T < 20000; ep++)
        for (uint64_t st = 0; st < spe; st++, T++) {
            sampler_global(&s, ep, st, &g, NULL, &e);
            for (int c = 0; c < 4; c++) cls[g.labels[c * 8]]++;
            for (int i = 0; i < 32; i++) smp[g.ids[i]]++;
        }
    int E = 0, small_seen = 0;
    for (int c = 0; c < NCLS; c++) {
        if (size[c] >= 8)
            E++;
        else
            small_seen += cls[c] != 0;
    }
    CHECK(small_seen == 0, "%d classes with < K samples appeared", small_seen);
    double mu = (double)T * 4 / E, chi = 0;
    int all = 1;
    for (int c = 0; c < NCLS; c++)
        if (size[c] >= 8) {
            all &= cls[c] > 0;
            chi += (cls[c] - mu) * (cls[c] - mu) / mu;
        }
    double dof = E - 1;
    CHECK(all, "every eligible class appears");
    CHECK(chi < dof + 6 * sqrt(2 * dof), "class chi-square %.1f, dof %.0f", chi, dof);
    /* Samples of the big class 7 (211 samples, drawn when 7 is picked). */
    double n7 = 0, chi7 = 0;
    for (uint64_t i = 0; i < count; i++)
        if (labels[i] == 7) n7 += (double)smp[i];
    double mu7 = n7 / size[7];
    for (uint64_t i = 0; i < count; i++)
        if (labels[i] == 7) chi7 += (smp[i] - mu7) * (smp[i] - mu7) / mu7;
    double dof7 = size[7] - 1;
    CHECK(chi7 < dof7 + 6 * sqrt(2 * dof7), "sample chi-square %.1f, dof %.0f", chi7, dof7);
    free(smp);
    sampler_batch_free(&g);
    sampler_free(&s);
    free(labels);
}

/* A small dataset with pairs and triplets, written in dir. */
static int write_db(const char *path, uint64_t n, uint64_t npairs, uint64_t ntrip, Err *e) {
    DsWriterSpec ws = {.channels = 1, .height = 4, .width = 4, .classes = 5, .source = "test"};
    DsWriter *w;
    if (ds_writer_create(&w, path, &ws, e)) return -1;
    uint8_t px[16];
    for (uint64_t i = 0; i < n; i++) {
        for (int j = 0; j < 16; j++) px[j] = (uint8_t)(i * 7 + (uint64_t)j);
        if (ds_writer_add(w, px, (int32_t)(i * 3 % 5), NULL, e)) {
            ds_writer_abort(w);
            return -1;
        }
    }
    if (ds_writer_finish(w, e)) return -1;
    Rng r;
    rng_seed(&r, 5, RNG_TEST, 1);
    uint32_t *a = xmalloc(npairs * 4), *b = xmalloc(npairs * 4), *t = xmalloc(ntrip * 12);
    uint8_t *same = xmalloc(npairs);
    /* Valid records: label(id) = id*3 % 5 depends only on id % 5. */
    for (uint64_t i = 0; i < npairs; i++) {
        a[i] = (uint32_t)rng_below(&r, n);
        do b[i] = (uint32_t)rng_below(&r, n);
        while (b[i] == a[i]);
        same[i] = a[i] % 5 == b[i] % 5;
    }
    for (uint64_t i = 0; i < ntrip; i++) {
        uint32_t *x = t + 3 * i;
        x[0] = (uint32_t)rng_below(&r, n);
        do x[1] = x[0] % 5 + 5 * (uint32_t)rng_below(&r, n / 5);
        while (x[1] == x[0]);
        do x[2] = (uint32_t)rng_below(&r, n);
        while (x[2] % 5 == x[0] % 5);
    }
    int rc = ds_write_pairs(path, a, b, same, npairs, e);
    if (!rc && ntrip) rc = ds_write_triplets(path, t, ntrip, e);
    free(a), free(b), free(t), free(same);
    return rc;
}

static void test_records(void) {
    char dir[] = "/tmp/test_sampler.XXXXXX", path[256], path2[256], cmd[300];
    if (!mkdtemp(dir)) FATAL("mkdtemp");
    snprintf(path, sizeof path, "%s/db", dir);
    snprintf(path2, sizeof path2, "%s/db2", dir);
    Err e;
    CHECK(write_db(path, 60, 97, 61, &e) == 0, "write: %s", e.msg);
    Dataset *ds;
    DsReader *rd;
    if (ds_open(&ds, path, &e) || ds_reader_open(ds, &rd, &e)) FATAL("open: %s", e.msg);
    for (int mode = SAMPLER_PAIRS; mode <= SAMPLER_TRIPLETS; mode++) {
        int pairs = mode == SAMPLER_PAIRS;
        SamplerSpec spec = {.mode = mode, .batch = 30, .seed = 3};
        Sampler s, s2;
        CHECK(sampler_init(&s, &spec, ds, &e) == 0, "%s", e.msg);
        CHECK(sampler_init(&s2, &spec, ds, &e) == 0, "%s", e.msg);
        uint64_t nrec = pairs ? 97 : 61, spe = sampler_steps_per_epoch(&s);
        CHECK(spe == nrec / 30, "steps per epoch %llu", (unsigned long long)spe);
        LocalBatch g, g2;
        sampler_batch_init(&s, 1, &g);
        sampler_batch_init(&s, 1, &g2);
        int det = 1, uni = 1, lab = 1, layout = 1, fresh = 1;
        for (uint64_t ep = 0; ep < 3; ep++) {
            char *used = xcalloc(nrec, 1);
            for (uint64_t st = 0; st < spe; st++) {
                CHECK(sampler_global(&s, ep, st, &g, rd, &e) == 0, "%s", e.msg);
                sampler_global(&s2, ep, st, &g2, rd, &e);
                if (!same_batch(&g, &g2) || (pairs && memcmp(g.same, g2.same, 30))) det = 0;
                if (g.n_items != 30 || g.n_images != 30 * (pairs ? 2 : 3)) layout = 0;
                for (int i = 0; i < g.n_images; i++)
                    if (g.labels[i] != (int32_t)(g.ids[i] * 3 % 5)) lab = 0;
                /* Identify the records: each batch item is a distinct record,
                 * none repeated within the epoch. */
                for (int j = 0; j < 30; j++) {
                    int hit = -1;
                    for (uint64_t q = 0; q < nrec && hit < 0; q++) {
                        uint32_t a, b, t[3];
                        int same;
                        if (pairs) {
                            ds_read_pair(rd, q, &a, &b, &same, &e);
                            if (a == g.ids[j] && b == g.ids[30 + j] && same == g.same[j] && !used[q])
                                hit = (int)q;
                        } else {
                            ds_read_triplet(rd, q, t, &e);
                            if (t[0] == g.ids[j] && t[1] == g.ids[30 + j] && t[2] == g.ids[60 + j] &&
                                !used[q])
                                hit = (int)q;
                        }
                    }
                    if (hit < 0)
                        fresh = 0;
                    else
                        used[hit] = 1;
                }
                for (int w = 1; w <= 4; w++)
                    if (!check_union(&s, ep, st, w, rd, &g)) uni = 0;
            }
            free(used);
        }
        CHECK(det, "%s: same batches from two samplers", pairs ? "pairs" : "triplets");
        CHECK(layout, "%s: layout", pairs ? "pairs" : "triplets");
        CHECK(lab, "%s: labels from ds_labels", pairs ? "pairs" : "triplets");
        CHECK(fresh, "%s: batches are distinct records of the file, none twice an epoch",
              pairs ? "pairs" : "triplets");
        CHECK(uni, "%s: world 1..4 (30 items over 4 ranks) make up the global batch",
              pairs ? "pairs" : "triplets");
        sampler_global(&s, 0, 0, &g, rd, &e);
        sampler_global(&s, 1, 0, &g2, rd, &e);
        CHECK(!same_batch(&g, &g2), "%s: epochs permute differently", pairs ? "pairs" : "triplets");
        /* Too big a batch: error names the dataset and the command. */
        Sampler t;
        SamplerSpec big = spec;
        big.batch = (int)nrec + 1;
        CHECK(sampler_init(&t, &big, ds, &e) == -1 && strstr(e.msg, path) && strstr(e.msg, "siamese pairs"),
              "too big: %s", e.msg);
        sampler_batch_free(&g);
        sampler_batch_free(&g2);
        sampler_free(&s);
        sampler_free(&s2);
    }
    /* PK on a real dataset: 5 classes of 12. */
    SamplerSpec pk = {.mode = SAMPLER_PK, .p = 3, .k = 4, .seed = 1};
    Sampler s;
    CHECK(sampler_init(&s, &pk, ds, &e) == 0 && s.n_eligible == 5, "pk on a dataset: %s", e.msg);
    sampler_free(&s);
    ds_reader_close(rd);
    ds_close(ds);
    /* No triplets sub-database: error says what to run. */
    CHECK(write_db(path2, 10, 5, 0, &e) == 0, "write: %s", e.msg);
    if (ds_open(&ds, path2, &e)) FATAL("open: %s", e.msg);
    SamplerSpec tr = {.mode = SAMPLER_TRIPLETS, .batch = 2};
    CHECK(sampler_init(&s, &tr, ds, &e) == -1 && strstr(e.msg, "no triplets") && strstr(e.msg, "--triplets"),
          "no triplets: %s", e.msg);
    ds_close(ds);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) FATAL("%s", cmd);
}

/* Coseg: 40 records with a common object (equal labels), 30 without. */
static void test_coseg(void) {
    char dir[] = "/tmp/test_sampler.XXXXXX", path[256], cmd[300];
    if (!mkdtemp(dir)) FATAL("mkdtemp");
    snprintf(path, sizeof path, "%s/db", dir);
    Err e;
    CHECK(write_db(path, 60, 0, 0, &e) == 0, "write: %s", e.msg);
    enum { NREC = 70, NCOM = 40, B = 16 };
    uint32_t a[NREC], b[NREC];
    uint8_t same[NREC];
    Rng r;
    rng_seed(&r, 9, RNG_TEST, 2);
    for (int i = 0; i < NREC; i++) { /* label(id) = id*3 % 5 depends on id % 5 */
        a[i] = (uint32_t)rng_below(&r, 60);
        int dup;
        do {
            b[i] = i < NCOM ? a[i] % 5 + 5 * (uint32_t)rng_below(&r, 12) : (uint32_t)rng_below(&r, 60);
            dup = 0;
            for (int q = 0; q < i; q++) dup |= a[q] == a[i] && b[q] == b[i];
        } while (b[i] == a[i] || dup || (i >= NCOM && b[i] % 5 == a[i] % 5));
        same[i] = i < NCOM;
    }
    CHECK(ds_write_pairs(path, a, b, same, NREC, &e) == 0, "pairs: %s", e.msg);
    Dataset *ds;
    if (ds_open(&ds, path, &e)) FATAL("open: %s", e.msg);
    SamplerSpec spec = {.mode = SAMPLER_COSEG, .batch = B, .common = 0.75, .seed = 4};
    Sampler s, s2;
    CHECK(sampler_init(&s, &spec, ds, &e) == 0, "coseg init: %s", e.msg);
    CHECK(sampler_init(&s2, &spec, ds, &e) == 0, "coseg init: %s", e.msg);
    CHECK(sampler_steps_per_epoch(&s) == NREC / B, "coseg steps per epoch %llu",
          (unsigned long long)sampler_steps_per_epoch(&s));
    LocalBatch g, g2;
    sampler_batch_init(&s, 1, &g);
    sampler_batch_init(&s, 1, &g2);
    int ratio = 1, distinct = 1, flags = 1, det = 1, uni = 1, mixed = 0, mixed_last = 0, differ = 0,
        nsteps = 400;
    int count[NREC] = {0};
    for (int st = nsteps - 1; st >= 0; st--) { /* backwards: nothing may depend on the call order */
        uint64_t ep = (uint64_t)st / 4, sp = (uint64_t)st % 4;
        CHECK(sampler_global(&s, ep, sp, &g, NULL, &e) == 0, "%s", e.msg);
        if (st + 1 < nsteps) differ += !same_batch(&g, &g2);
        if (st % 37 == 0) {
            sampler_global(&s2, ep, sp, &g2, NULL, &e);
            det &= same_batch(&g, &g2) && !memcmp(g.same, g2.same, B);
            for (int w = 1; w <= 4; w++) uni &= check_union(&s, ep, sp, w, NULL, &g);
        }
        int ncom = 0, used[NREC] = {0};
        for (int j = 0; j < B; j++) {
            int hit = -1;
            for (int q = 0; q < NREC && hit < 0; q++)
                if (a[q] == g.ids[j] && b[q] == g.ids[B + j] && !used[q]) hit = q;
            if (hit < 0) {
                distinct = 0;
                continue;
            }
            used[hit] = 1;
            count[hit]++;
            ncom += hit < NCOM;
            flags &= g.same[j] == (hit < NCOM) && (g.labels[j] == g.labels[B + j]) == g.same[j];
        }
        ratio &= ncom == 12;
        mixed += g.same[0] == 0;
        mixed_last += g.same[B - 1] == 1;
        memcpy(g2.ids, g.ids, sizeof(uint32_t) * 2 * B); /* the next (earlier) step compares with this one */
        g2.n_images = g.n_images;
    }
    CHECK(ratio, "coseg: every batch holds round(16 x 0.75) = 12 pairs with a common object");
    CHECK(distinct, "coseg: every item is a record of the file, none twice in a batch");
    CHECK(flags, "coseg: same flags = equal labels = the record's kind");
    CHECK(det, "coseg: two samplers give the same batch for a step");
    CHECK(uni, "coseg: world 1..4 make up the global batch");
    CHECK(differ == nsteps - 1, "coseg: consecutive steps differ (%d of %d)", differ, nsteps - 1);
    CHECK(
        mixed > nsteps / 8 && mixed < nsteps / 2 && mixed_last > nsteps / 2,
        "coseg: the batch order is shuffled (%d / %d of %d batches start without / end with a common object)",
        mixed, mixed_last, nsteps);
    /* loose uniformity within each kind: expected 400*12/40 = 120 and 400*4/30 = 53.3 draws per record */
    double chi[2] = {0, 0};
    for (int q = 0; q < NREC; q++) {
        double mu = q < NCOM ? nsteps * 12.0 / NCOM : nsteps * 4.0 / (NREC - NCOM);
        chi[q < NCOM] += (count[q] - mu) * (count[q] - mu) / mu;
    }
    CHECK(chi[1] < 39 + 6 * sqrt(78) && chi[0] < 29 + 6 * sqrt(58),
          "coseg: chi-square %.1f (dof 39), %.1f (dof 29)", chi[1], chi[0]);
    /* too few of one kind; a ratio out of range; no pairs at all */
    Sampler t;
    SamplerSpec all = spec;
    all.common = 1.0;
    all.batch = 41;
    CHECK(sampler_init(&t, &all, ds, &e) == -1 && strstr(e.msg, "40 pairs with a common object") &&
              strstr(e.msg, "41"),
          "too few common: %s", e.msg);
    all.common = 1.5;
    CHECK(sampler_init(&t, &all, ds, &e) == -1 && strstr(e.msg, "common = 1.5"), "common 1.5: %s", e.msg);
    all = spec;
    all.common = 0.0;
    all.batch = 30;
    LocalBatch g0;
    CHECK(sampler_init(&t, &all, ds, &e) == 0, "common 0: %s", e.msg);
    sampler_batch_init(&t, 1, &g0);
    CHECK(sampler_global(&t, 0, 0, &g0, NULL, &e) == 0, "common 0: %s", e.msg);
    int none = 1;
    for (int j = 0; j < 30; j++) none &= g0.same[j] == 0;
    CHECK(none, "common 0: no pair with a common object");
    sampler_batch_free(&g0);
    sampler_free(&t);
    sampler_batch_free(&g);
    sampler_batch_free(&g2);
    sampler_free(&s);
    sampler_free(&s2);
    ds_close(ds);
    snprintf(path, sizeof path, "%s/db2", dir);
    CHECK(write_db(path, 10, 0, 0, &e) == 0, "write: %s", e.msg);
    if (ds_open(&ds, path, &e)) FATAL("open: %s", e.msg);
    CHECK(sampler_init(&t, &spec, ds, &e) == -1 && strstr(e.msg, "no pairs sub-database") &&
              strstr(e.msg, "mode = coseg"),
          "no pairs: %s", e.msg);
    ds_close(ds);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) FATAL("%s", cmd);
}

/* PK batches drawn group by group: a dataset whose class names put its 15
 * classes in groups a (3 classes), b (6), c (5, one of them too small for
 * K), d (1), listed out of order; p = 6 over groups = 2: three classes of
 * one group, then three of another. */
static void test_pk_groups(void) {
    char dir[] = "/tmp/test_sampler.XXXXXX", path[256], cmd[300];
    if (!mkdtemp(dir)) FATAL("mkdtemp");
    snprintf(path, sizeof path, "%s/db", dir);
    static const char *const names[] = {"c/0", "b/0", "a/0", "b/1", "d/0", "c/1",     "b/2", "a/1",
                                        "c/2", "b/3", "c/3", "a/2", "b/4", "c/small", "b/5"};
    enum { NC = 15, PER = 4, K = 2 };
    const int group_of[NC] = {2, 1, 0, 1, 3, 2, 1, 0, 2, 1, 2, 0, 1, 2, 1}; /* a=0 .. d=3 by name */
    DsWriterSpec ws = {
        .channels = 1, .height = 2, .width = 2, .classes = NC, .source = "test", .class_names = names};
    DsWriter *w;
    Err e;
    if (ds_writer_create(&w, path, &ws, &e)) FATAL("create: %s", e.msg);
    uint8_t px[4] = {0};
    for (int c = 0; c < NC; c++)
        for (int i = 0; i < (c == 13 ? 1 : PER); i++)
            if (ds_writer_add(w, px, c, NULL, &e)) FATAL("add: %s", e.msg);
    if (ds_writer_finish(w, &e)) FATAL("finish: %s", e.msg);
    Dataset *ds;
    if (ds_open(&ds, path, &e)) FATAL("open: %s", e.msg);

    /* ds_groups: numbered in byte-wise order of the names, names returned. */
    int32_t of[NC];
    char **gn = NULL;
    int ng = ds_groups(ds, of, &gn), groups_ok = ng == 4;
    for (int c = 0; c < NC && groups_ok; c++) groups_ok = of[c] == group_of[c];
    for (int g = 0; g < ng && groups_ok; g++) groups_ok = gn[g][0] == 'a' + g && gn[g][1] == 0;
    CHECK(groups_ok, "ds_groups: %d groups, numbered by name", ng);
    ds_groups_free(gn, ng);

    SamplerSpec spec = {.mode = SAMPLER_PK, .p = 6, .k = K, .groups = 2, .seed = 11};
    Sampler s;
    CHECK(sampler_init(&s, &spec, ds, &e) == 0, "groups init: %s", e.msg);
    CHECK(s.n_usable == 3, "%u usable groups (a, b, c), want 3", s.n_usable);
    LocalBatch g;
    sampler_batch_init(&s, 1, &g);
    uint64_t spe = sampler_steps_per_epoch(&s);
    long pair[4][4] = {{0}}, cls[NC] = {0}, T = 0;
    int struct_ok = 1, union_ok = 1;
    for (uint64_t ep = 0; T < 6000; ep++)
        for (uint64_t st = 0; st < spe; st++, T++) {
            if (sampler_global(&s, ep, st, &g, NULL, &e)) FATAL("global: %s", e.msg);
            int first = group_of[g.labels[0]], second = group_of[g.labels[3 * K]];
            struct_ok &= first != second;
            for (int c = 0; c < 6; c++) {
                int l = g.labels[c * K];
                struct_ok &= group_of[l] == (c < 3 ? first : second) && l != 13 && l != 4;
                for (int c2 = 0; c2 < c; c2++) struct_ok &= g.labels[c2 * K] != l;
                for (int i = 0; i < K; i++)
                    struct_ok &= g.labels[c * K + i] == l && ds_labels(ds)[g.ids[c * K + i]] == l;
                cls[l]++;
            }
            for (int i = 1; i < K; i++) struct_ok &= g.ids[i] != g.ids[0];
            pair[first][second]++;
            if (T < 40)
                for (int world = 2; world <= 4; world++) union_ok &= check_union(&s, ep, st, world, NULL, &g);
        }
    CHECK(struct_ok, "every batch: 3 distinct classes of one group, then 3 of another, K samples each");
    CHECK(union_ok, "ranks 2..4 read the world-1 batch");
    /* The three pairs of distinct usable groups are equally likely (Floyd's
     * draw is a uniform subset, not a uniform order), and within a group
     * every eligible class is (chi-square, loose bounds). */
    double mu = T / 3.0, chi = 0;
    for (int a = 0; a < 3; a++)
        for (int b = a + 1; b < 3; b++) {
            double n = (double)(pair[a][b] + pair[b][a]);
            chi += (n - mu) * (n - mu) / mu;
        }
    CHECK(chi < 2 + 6 * sqrt(4.0), "group-pair chi-square %.1f, dof 2", chi);
    double chic = 0, nb = 0;
    for (int c = 0; c < NC; c++) nb += group_of[c] == 1 ? (double)cls[c] : 0;
    for (int c = 0; c < NC; c++)
        if (group_of[c] == 1) chic += (cls[c] - nb / 6) * (cls[c] - nb / 6) / (nb / 6);
    CHECK(chic < 5 + 6 * sqrt(10.0), "class chi-square within group b %.1f, dof 5", chic);
    CHECK(cls[13] == 0 && cls[4] == 0, "the small class and the one-class group never drawn");
    sampler_batch_free(&g);
    sampler_free(&s);

    /* Refusals, one line each: p not a multiple, too few usable groups, a
     * mode other than pk, a bare label array. */
    SamplerSpec bad = spec;
    bad.groups = 4;
    CHECK(sampler_init(&s, &bad, ds, &e) == -1 && strstr(e.msg, "p = 6") && strstr(e.msg, "groups = 4"),
          "p not a multiple: %s", e.msg);
    bad.groups = 6; /* one class per group: a, b, c and d qualify, 4 < 6 */
    CHECK(sampler_init(&s, &bad, ds, &e) == -1 && strstr(e.msg, "4 of its 4 groups") && strstr(e.msg, path),
          "too few groups: %s", e.msg);
    bad.groups = 2;
    bad.mode = SAMPLER_PAIRS;
    bad.batch = 4;
    CHECK(sampler_init(&s, &bad, ds, &e) == -1 && strstr(e.msg, "mode = pk only"), "pairs: %s", e.msg);
    int32_t lab[8] = {0, 0, 1, 1, 2, 2, 3, 3};
    CHECK(sampler_init_labels(&s, &spec, lab, 8, 4, "bare", &e) == -1 && strstr(e.msg, "without groups"),
          "bare labels: %s", e.msg);
    ds_close(ds);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) FATAL("%s", cmd);
}

int main(void) {
    test_shard();
    test_pk();
    test_pk_uniform();
    test_records();
    test_coseg();
    test_pk_groups();
    return test_finish();
}
