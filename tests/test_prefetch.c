/* test_prefetch: the prefetch thread returns bit for bit what batch_load
 * returns for the same steps (PK and pairs, world 1 and rank 1 of 3,
 * compressed and plain records), decodes to (pixel/255 - mean)/std NCHW,
 * stops cleanly early, and reports a corrupted record by its key; with
 * on_bad_record = skip, bad records (length, label, flags, CRC) are replaced
 * by the documented draw of a sample of the same class, and rank slices of
 * 3 ranks hold what one rank holds. */
#include <lmdb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../io/dataset.h"
#include "../io/prefetch.h"
#include "../io/sampler.h"
#include "../nn/util.h"
#include "test.h"

#define C 2
#define H 5
#define W 3
#define N 40
#define NCLS 7

/* The same normalisation for every channel and no augmentation, for the
 * calls below. */
static const BatchDecode *dec1(float mean, float std) {
    static BatchDecode d;
    norm_uniform(&d.norm, C, mean, std);
    return &d;
}

static uint8_t pixel(uint32_t id, size_t j) { return (uint8_t)(id * 31 + j * 7 + (j > 20)); }
static int32_t label_of(uint32_t id) { return (int32_t)(id * 5 % NCLS); }

static void write_db(const char *path, int compress) {
    Err e;
    DsWriterSpec ws = {.channels = C,
                       .height = H,
                       .width = W,
                       .classes = NCLS,
                       .compress = compress,
                       .source = "test_prefetch"};
    DsWriter *w;
    if (ds_writer_create(&w, path, &ws, &e)) FATAL("%s", e.msg);
    uint8_t px[C * H * W];
    for (uint32_t i = 0; i < N; i++) {
        for (size_t j = 0; j < sizeof px; j++) px[j] = pixel(i, j);
        if (ds_writer_add(w, px, label_of(i), NULL, &e)) FATAL("%s", e.msg);
    }
    if (ds_writer_finish(w, &e)) FATAL("%s", e.msg);
    uint32_t a[50], b[50];
    uint8_t same[50];
    for (uint32_t i = 0; i < 50; i++) {
        a[i] = i * 7 % N;
        b[i] = (i * 13 + 5) % N;
        same[i] = label_of(a[i]) == label_of(b[i]);
    }
    if (ds_write_pairs(path, a, b, same, 50, &e)) FATAL("%s", e.msg);
}

/* Prefetched steps [first, end) against batch_load and the pixel formula. */
static void check_steps(Dataset *ds, SamplerMode mode, int rank, int world, uint64_t first, uint64_t end,
                        const char *what) {
    Err e;
    SamplerSpec spec = {.mode = mode, .p = 3, .k = 4, .batch = 10, .seed = 11};
    Sampler s;
    if (sampler_init(&s, &spec, ds, &e)) FATAL("%s", e.msg);
    DsReader *r;
    if (ds_reader_open(ds, &r, &e)) FATAL("%s", e.msg);
    /* Per channel: channel 0 mean 0.3 std 0.7, channel 1 mean 0.1 std 0.45. */
    const float mean[2] = {0.3f, 0.1f}, std[2] = {0.7f, 0.45f};
    BatchDecode dec = {.norm = {.channels = C}};
    for (int c = 0; c < C; c++) dec.norm.mean[c] = mean[c], dec.norm.std[c] = std[c];
    Batch ref;
    batch_init(&ref, &s, ds, world);
    Prefetch *p = prefetch_start(ds, &s, rank, world, &dec, first, end, &e);
    CHECK(p != NULL, "%s: start: %s", what, e.msg);
    if (!p) return;
    int meta_ok = 1, ids_ok = 1, x_ok = 1, formula_ok = 1, align_ok = 1, n = 0;
    int per = mode == SAMPLER_PAIRS ? 2 : 1, g = sampler_global_items(&s), lo, cnt;
    sampler_shard(g, rank, world, &lo, &cnt);
    uint64_t spe = sampler_steps_per_epoch(&s);
    for (uint64_t step = first; step < end; step++, n++) {
        const Batch *b = prefetch_next(p, &e);
        CHECK(b != NULL, "%s: step %llu: %s", what, (unsigned long long)step, e.msg);
        if (!b) break;
        if (batch_load(&ref, &s, r, rank, world, &dec, step, &e)) FATAL("%s", e.msg);
        if (b->step != step || b->epoch != step / spe || b->step_in_epoch != step % spe ||
            b->lb.n_items != cnt || b->lb.item_begin != lo || b->lb.n_images != cnt * per ||
            b->wait_seconds < 0)
            meta_ok = 0;
        size_t ni = (size_t)b->lb.n_images, img = C * H * W;
        if (memcmp(b->lb.ids, ref.lb.ids, ni * 4) || memcmp(b->lb.labels, ref.lb.labels, ni * 4) ||
            (mode == SAMPLER_PAIRS && memcmp(b->lb.same, ref.lb.same, (size_t)cnt)))
            ids_ok = 0;
        if (memcmp(b->x, ref.x, ni * img * sizeof(float))) x_ok = 0;
        if ((uintptr_t)b->x % 64) align_ok = 0;
        for (size_t i = 0; i < ni; i++) {
            if (b->lb.labels[i] != label_of(b->lb.ids[i])) formula_ok = 0;
            for (size_t j = 0; j < img; j++) {
                size_t c = j / (H * W);
                float want = ((float)pixel(b->lb.ids[i], j) / 255.0f - mean[c]) / std[c];
                if (memcmp(&b->x[i * img + j], &want, sizeof want)) formula_ok = 0;
            }
        }
    }
    CHECK(n == (int)(end - first), "%s: %d steps delivered", what, n);
    CHECK(meta_ok, "%s: step, epoch, slice of each batch", what);
    CHECK(ids_ok, "%s: ids, labels, same flags equal batch_load's", what);
    CHECK(x_ok, "%s: floats bit-equal to batch_load's", what);
    CHECK(formula_ok, "%s: x = (pixel/255 - mean[c])/std[c] per channel, NCHW, labels right", what);
    CHECK(align_ok, "%s: x 64-byte aligned", what);
    CHECK(prefetch_next(p, &e) == NULL && strstr(e.msg, "past the end"), "%s: past end: %s", what, e.msg);
    prefetch_stop(p);
    batch_free(&ref);
    ds_reader_close(r);
    sampler_free(&s);
}

/* Corrupts the samples record of `id`: off < 0 truncates it to 3 bytes,
 * else byte off is xored with x. Key format: the dataset's fixed-width
 * big-endian id; its width is found from the first key in the database. */
static void corrupt_at(const char *path, uint32_t id, int off, uint8_t x) {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    MDB_val k, v;
    if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 16) || mdb_env_open(env, path, 0, 0644) ||
        mdb_txn_begin(env, NULL, 0, &txn) || mdb_dbi_open(txn, "samples", 0, &dbi) ||
        mdb_cursor_open(txn, dbi, &cur) || mdb_cursor_get(cur, &k, &v, MDB_FIRST))
        FATAL("cannot open %s for corruption", path);
    size_t kw = k.mv_size;
    ASSERT(kw >= 4 && kw <= 8);
    unsigned char key[8];
    for (size_t i = 0; i < kw; i++) key[i] = (unsigned char)((uint64_t)id >> (8 * (kw - 1 - i)));
    mdb_cursor_close(cur);
    MDB_val kk = {kw, key}, vv = {3, (void *)"bad"}, old;
    uint8_t rec[512];
    if (off >= 0) {
        if (mdb_get(txn, dbi, &kk, &old) || old.mv_size > sizeof rec || (size_t)off >= old.mv_size)
            FATAL("corrupt: record %u", id);
        memcpy(rec, old.mv_data, old.mv_size);
        rec[off] ^= x;
        vv = (MDB_val){old.mv_size, rec};
    }
    if (mdb_put(txn, dbi, &kk, &vv, 0) || mdb_txn_commit(txn)) FATAL("corrupt put");
    mdb_env_close(env);
}
static void corrupt(const char *path, uint32_t id) { corrupt_at(path, id, -1, 0); }

/* The dataset at path and a PK sampler over it (P 3, K 4, seed 11). */
static void open_pk(const char *path, Dataset **ds, Sampler *s) {
    Err e;
    SamplerSpec spec = {.mode = SAMPLER_PK, .p = 3, .k = 4, .seed = 11};
    if (ds_open(ds, path, &e) || sampler_init(s, &spec, *ds, &e)) FATAL("%s", e.msg);
}

static void test_corrupt(const char *path) {
    Err e;
    Dataset *ds;
    Sampler s;
    open_pk(path, &ds, &s);
    LocalBatch lb;
    sampler_batch_init(&s, 1, &lb);
    uint64_t spe = sampler_steps_per_epoch(&s), g = 2;
    sampler_global(&s, g / spe, g % spe, &lb, NULL, &e);
    /* A sample of step 2 not used by steps 0 and 1 (so they still load). */
    uint32_t bad = UINT32_MAX;
    for (int i = 0; i < lb.n_images && bad == UINT32_MAX; i++) {
        uint32_t id = lb.ids[i];
        int used = 0;
        LocalBatch o;
        sampler_batch_init(&s, 1, &o);
        for (uint64_t q = 0; q < 2; q++) {
            sampler_global(&s, q / spe, q % spe, &o, NULL, &e);
            for (int j = 0; j < o.n_images; j++) used |= o.ids[j] == id;
        }
        sampler_batch_free(&o);
        if (!used) bad = id;
    }
    ASSERT(bad != UINT32_MAX);
    sampler_batch_free(&lb);
    sampler_free(&s);
    ds_close(ds);
    corrupt(path, bad);

    open_pk(path, &ds, &s);
    char key[48];
    snprintf(key, sizeof key, "samples key %u:", bad);
    Prefetch *p = prefetch_start(ds, &s, 0, 1, dec1(0.5f, 0.25f), 0, 6, &e);
    CHECK(p != NULL, "start: %s", e.msg);
    const Batch *b0 = prefetch_next(p, &e), *b1 = prefetch_next(p, &e);
    CHECK(b0 && b1 && b1->step == 1, "steps 0 and 1 load");
    const Batch *b2 = prefetch_next(p, &e);
    CHECK(b2 == NULL && strstr(e.msg, key) && strstr(e.msg, "on_bad_record = skip"),
          "corrupt sample %s named, with the way to train on: %s", key, e.msg);
    strcpy(e.msg, "");
    CHECK(prefetch_next(p, &e) == NULL && strstr(e.msg, key), "error is sticky: %s", e.msg);
    prefetch_stop(p);
    /* The synchronous path reports the same. */
    Batch b;
    DsReader *r;
    if (ds_reader_open(ds, &r, &e)) FATAL("%s", e.msg);
    batch_init(&b, &s, ds, 1);
    CHECK(batch_load(&b, &s, r, 0, 1, dec1(0.5f, 0.25f), 2, &e) == -1 && strstr(e.msg, key), "batch_load: %s",
          e.msg);
    batch_free(&b);
    ds_reader_close(r);
    sampler_free(&s);
    ds_close(ds);
}

static int is_bad(uint32_t id, const uint32_t *bad, int nbad) {
    for (int i = 0; i < nbad; i++)
        if (bad[i] == id) return 1;
    return 0;
}

/* on_bad_record = skip over steps [0, end) of `mode`, the bad ids known:
 * world 1 (prefetched) holds the sampler's batch with every bad id replaced
 * by the first good draw of the rule in sampler.h, worked out here from
 * the rule; every rank of 3 holds its slice of that batch. Returns the
 * replacements seen. */
static int check_skip(Dataset *ds, SamplerMode mode, const uint32_t *bad, int nbad, uint64_t end,
                      const char *what) {
    Err e;
    SamplerSpec spec = {.mode = mode, .p = 3, .k = 4, .batch = 10, .seed = 11, .on_bad = SAMPLER_BAD_SKIP};
    Sampler s;
    if (sampler_init(&s, &spec, ds, &e)) FATAL("%s", e.msg);
    DsReader *r;
    if (ds_reader_open(ds, &r, &e)) FATAL("%s", e.msg);
    LocalBatch ref;
    sampler_batch_init(&s, 1, &ref);
    Batch part;
    batch_init(&part, &s, ds, 3);
    const float mean = 0.25f, std = 0.5f;
    BatchDecode dec = {0};
    norm_uniform(&dec.norm, C, mean, std);
    Prefetch *p = prefetch_start(ds, &s, 0, 1, &dec, 0, end, &e);
    CHECK(p != NULL, "%s: start: %s", what, e.msg);
    if (!p) return 0;
    uint64_t spe = sampler_steps_per_epoch(&s);
    int replaced = 0, ids_ok = 1, x_ok = 1, ranks_ok = 1;
    size_t img = C * H * W;
    for (uint64_t g = 0; g < end; g++) {
        const Batch *b = prefetch_next(p, &e);
        CHECK(b != NULL, "%s: step %llu loads despite bad records: %s", what, (unsigned long long)g, e.msg);
        if (!b) break;
        if (sampler_global(&s, g / spe, g % spe, &ref, r, &e)) FATAL("%s", e.msg);
        for (int i = 0; i < ref.n_images; i++) {
            uint32_t want = ref.ids[i];
            if (is_bad(want, bad, nbad)) {
                uint32_t n;
                const uint32_t *cls = ds_class_ids(ds, (uint32_t)ref.labels[i], &n);
                uint64_t key[2] = {g, (uint64_t)i};
                Rng rng;
                rng_seed(&rng, 11, RNG_REPLACE, hash64(key, sizeof key, HASH64_INIT));
                do want = cls[rng_below(&rng, n)];
                while (want == ref.ids[i] || is_bad(want, bad, nbad));
                replaced++;
            }
            if (b->lb.ids[i] != want || b->lb.labels[i] != ref.labels[i] || label_of(want) != ref.labels[i])
                ids_ok = 0;
            for (size_t j = 0; j < img; j++) {
                float x = ((float)pixel(want, j) / 255.0f - mean) / std;
                if (memcmp(&b->x[i * img + j], &x, sizeof x)) x_ok = 0;
            }
        }
        for (int rank = 0; rank < 3; rank++) {
            if (batch_load(&part, &s, r, rank, 3, &dec, g, &e)) FATAL("%s", e.msg);
            for (int i = 0; i < part.lb.n_images; i++) {
                int q = sampler_global_image(&part.lb, i);
                if (part.lb.ids[i] != b->lb.ids[q] || memcmp(part.x + i * img, b->x + q * img, img * 4))
                    ranks_ok = 0;
            }
        }
    }
    CHECK(ids_ok, "%s: bad ids replaced by the rule's draw, labels kept", what);
    CHECK(x_ok, "%s: the replacements' pixels", what);
    CHECK(ranks_ok, "%s: 3 ranks' slices are the one-rank batch", what);
    prefetch_stop(p);
    batch_free(&part);
    sampler_batch_free(&ref);
    ds_reader_close(r);
    sampler_free(&s);
    return replaced;
}

/* After test_corrupt (one truncated record): three more of step 3, bad in
 * their label, flags and pixels (CRC); skip replaces all. */
static void test_skip(const char *path) {
    Err e;
    Dataset *ds;
    Sampler s;
    open_pk(path, &ds, &s);
    DsReader *r;
    if (ds_reader_open(ds, &r, &e)) FATAL("%s", e.msg);
    uint32_t bad[4];
    int nbad = 0;
    uint8_t px[C * H * W];
    for (uint32_t id = 0; id < N && !nbad; id++)
        if (ds_read(r, id, px, NULL, NULL, &e)) bad[nbad++] = id; /* test_corrupt's */
    LocalBatch lb;
    sampler_batch_init(&s, 1, &lb);
    uint64_t spe = sampler_steps_per_epoch(&s);
    sampler_global(&s, 3 / spe, 3 % spe, &lb, NULL, &e);
    for (int i = 0; i < lb.n_images && nbad < 4; i += 4) /* one per class: the others replace it */
        if (lb.ids[i] != bad[0]) bad[nbad++] = lb.ids[i];
    sampler_batch_free(&lb);
    ds_reader_close(r);
    sampler_free(&s);
    ds_close(ds);
    ASSERT(nbad == 4);
    corrupt_at(path, bad[1], 8, 1);    /* label field: another class */
    corrupt_at(path, bad[2], 1, 0x80); /* flags */
    corrupt_at(path, bad[3], 23, 1);   /* stored CRC */
    if (ds_open(&ds, path, &e)) FATAL("%s", e.msg);
    int n = check_skip(ds, SAMPLER_PK, bad, nbad, 6, "skip pk");
    CHECK(n >= 4, "skip pk: %d replacements (each bad record of steps 2 and 3)", n);
    n = check_skip(ds, SAMPLER_PAIRS, bad, nbad, 5, "skip pairs");
    CHECK(n >= 1, "skip pairs: %d replacements", n);
    ds_close(ds);
}

/* Stopping with batches unread: the thread is blocked on a full buffer. */
static void test_stop(Dataset *ds) {
    Err e;
    SamplerSpec spec = {.mode = SAMPLER_PAIRS, .batch = 10, .seed = 1};
    Sampler s;
    if (sampler_init(&s, &spec, ds, &e)) FATAL("%s", e.msg);
    Prefetch *p = prefetch_start(ds, &s, 0, 1, dec1(0.f, 1.f), 0, 10, &e);
    const Batch *a = prefetch_next(p, &e), *b = prefetch_next(p, &e);
    CHECK(a && b && b->step == 1, "two of ten steps");
    usleep(20000); /* let the thread fill step 2 and block on the held slot */
    prefetch_stop(p);
    CHECK(1, "stopped after 2 of 10 steps");
    p = prefetch_start(ds, &s, 0, 1, dec1(0.f, 1.f), 0, 10, &e);
    usleep(20000);
    prefetch_stop(p);
    p = prefetch_start(ds, &s, 0, 1, dec1(0.f, 1.f), 0, 10, &e);
    prefetch_stop(p); /* possibly mid-load */
    CHECK(1, "stopped before any step");
    p = prefetch_start(ds, &s, 0, 1, dec1(0.f, 1.f), 4, 4, &e);
    CHECK(p && prefetch_next(p, &e) == NULL, "empty range: %s", e.msg);
    prefetch_stop(p);
    CHECK(prefetch_start(ds, &s, 0, 1, dec1(0.f, 0.f), 0, 4, &e) == NULL && strstr(e.msg, "std"), "std 0: %s",
          e.msg);
    CHECK(prefetch_start(ds, &s, 0, 11, dec1(0.f, 1.f), 0, 4, &e) == NULL && strstr(e.msg, "11 ranks"),
          "11 ranks for 10 pairs: %s", e.msg);
    sampler_free(&s);
}

int main(void) {
    char dir[] = "/tmp/test_prefetch.XXXXXX", path[256], cmd[300];
    if (!mkdtemp(dir)) FATAL("mkdtemp");
    for (int compress = 0; compress <= 1; compress++) {
        snprintf(path, sizeof path, "%s/db%d", dir, compress);
        write_db(path, compress);
        Err e;
        Dataset *ds;
        if (ds_open(&ds, path, &e)) FATAL("%s", e.msg);
        char what[64];
        const char *z = compress ? "zlib" : "plain";
        snprintf(what, sizeof what, "pk %s world 1", z);
        check_steps(ds, SAMPLER_PK, 0, 1, 0, 8, what);
        snprintf(what, sizeof what, "pk %s rank 1 of 3", z);
        check_steps(ds, SAMPLER_PK, 1, 3, 2, 9, what);
        snprintf(what, sizeof what, "pairs %s world 1", z);
        check_steps(ds, SAMPLER_PAIRS, 0, 1, 3, 15, what);
        snprintf(what, sizeof what, "pairs %s rank 1 of 3", z);
        check_steps(ds, SAMPLER_PAIRS, 1, 3, 0, 12, what);
        if (compress) test_stop(ds);
        ds_close(ds);
        test_corrupt(path);
        test_skip(path);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) FATAL("%s", cmd);
    return test_finish();
}
