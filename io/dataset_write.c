/* dataset_write: the writers of dataset.h (ds_writer_*, ds_write_pairs,
 * ds_write_triplets); the format is documented at the top of dataset.c.
 *
 * Records are queued in memory and written in transactions of about 32 MB.
 * The LMDB map starts small and doubles whenever a transaction hits
 * MDB_MAP_FULL (the transaction is replayed from the queue), so the map ends
 * at most about twice the data. A new dataset is built in
 * "<path>.tmp-<pid>" with MDB_NOSYNC, synced once at the end, and renamed
 * with RENAME_NOREPLACE; meta is written in the last transaction. */
#include "dataset_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WRITER_BATCH_BYTES (32u << 20)
#define WRITER_INITIAL_MAP ((size_t)64 << 20)
#define WRITER_FIXED_HUFFMAN_MAX 4096 /* raw bytes; see ds_writer_create */

/* ---- a batch of puts, replayable after MDB_MAP_FULL ----------------------- */

typedef struct PutOp {
    int db; /* index into the batch's database names */
    unsigned flags;
    size_t koff, voff;
    uint32_t klen, vlen;
} PutOp;

typedef struct PutBatch {
    uint8_t *buf;
    size_t n, cap;
    PutOp *ops;
    size_t nops, opcap;
} PutBatch;

/* Reserves room for one record; returns where the key and value go. */
static uint8_t *batch_add(PutBatch *b, int db, unsigned flags, uint32_t klen, uint32_t vlen) {
    if (b->n + klen + vlen > b->cap) {
        b->cap = MAX(b->cap * 2, b->n + klen + vlen + 4096);
        b->buf = xrealloc(b->buf, b->cap);
    }
    if (b->nops == b->opcap) {
        b->opcap = MAX(b->opcap * 2, 1024);
        b->ops = xrealloc(b->ops, b->opcap * sizeof(PutOp));
    }
    b->ops[b->nops++] = (PutOp){db, flags, b->n, b->n + klen, klen, vlen};
    uint8_t *p = b->buf + b->n;
    b->n += klen + vlen;
    return p;
}

static void batch_text(PutBatch *b, int db, const char *key, const char *val) {
    uint32_t kl = (uint32_t)strlen(key), vl = (uint32_t)strlen(val);
    uint8_t *p = batch_add(b, db, 0, kl, vl);
    memcpy(p, key, kl);
    memcpy(p + kl, val, vl);
}

static void batch_free(PutBatch *b) {
    free(b->buf);
    free(b->ops);
    memset(b, 0, sizeof *b);
}

/* Writes the batch in one transaction. Databases are opened (created) by
 * name inside it; db `clear` (or -1) is emptied first. On MDB_MAP_FULL the
 * map doubles and the transaction is replayed. */
static int batch_commit(MDB_env *env, const PutBatch *b, const char *const *dbnames, int ndb, int clear,
                        const char *path, Err *e) {
    for (;;) {
        MDB_txn *txn;
        MDB_dbi dbi[8];
        ASSERT(ndb <= 8);
        int rc = mdb_txn_begin(env, NULL, 0, &txn);
        if (rc) return err_set(e, "%s: write transaction: %s", path, mdb_strerror(rc));
        for (int i = 0; i < ndb && !rc; i++) rc = mdb_dbi_open(txn, dbnames[i], MDB_CREATE, &dbi[i]);
        if (!rc && clear >= 0) rc = mdb_drop(txn, dbi[clear], 0);
        size_t i = 0;
        for (; i < b->nops && !rc; i++) {
            const PutOp *o = &b->ops[i];
            MDB_val k = {o->klen, b->buf + o->koff}, v = {o->vlen, b->buf + o->voff};
            rc = mdb_put(txn, dbi[o->db], &k, &v, o->flags);
        }
        if (rc)
            mdb_txn_abort(txn);
        else
            rc = mdb_txn_commit(txn);
        if (rc == MDB_MAP_FULL) {
            MDB_envinfo info;
            mdb_env_info(env, &info);
            if ((rc = mdb_env_set_mapsize(env, info.me_mapsize * 2)))
                return err_set(e, "%s: cannot grow the LMDB map to %zu bytes: %s", path, info.me_mapsize * 2,
                               mdb_strerror(rc));
            continue;
        }
        if (rc)
            return err_set(e, "%s: writing %s: %s", path, i && i <= b->nops ? dbnames[b->ops[i - 1].db] : "",
                           mdb_strerror(rc));
        return 0;
    }
}

/* ---- directories ------------------------------------------------------------ */

/* Removes a directory made by a writer (flat: data.mdb, lock.mdb). */
static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            char *p = xmalloc(strlen(dir) + strlen(de->d_name) + 2);
            sprintf(p, "%s/%s", dir, de->d_name);
            unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static void sync_parent(const char *path) {
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    const char *parent = ".";
    if (slash == dir)
        parent = "/";
    else if (slash) {
        *slash = 0;
        parent = dir;
    }
    int fd = open(parent, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

/* ---- the dataset writer ------------------------------------------------------ */

enum { DBW_META, DBW_SAMPLES, DBW_BY_CLASS, DBW_CLASSES, DBW_NAMES, DBW_N };
static const char *const writer_dbs[DBW_N] = {"meta", "samples", "by_class", "classes", "names"};

struct DsWriter {
    char *path, *tmp;
    MDB_env *env;
    uint32_t channels, height, width, classes;
    int compress, has_masks;
    int has_names; /* -1 until the first sample says; names are checked unique at the end */
    char *source;
    char **names;
    size_t npix, raw_len;
    PutBatch batch;
    z_stream zs;
    int zinit;
    uint8_t *raw, *zout;
    size_t zcap;
    uint64_t count;
    int32_t *labels;
    size_t labels_cap;
    uint64_t sum[DS_MAX_CHANNELS], sumsq[DS_MAX_CHANNELS]; /* of the pixel bytes per channel, exact */
    uint32_t *pairs; /* (npairs, 3): a, b, same; written at commit */
    uint64_t npairs;
};

static void writer_free(DsWriter *w) {
    if (w->env) mdb_env_close(w->env);
    if (w->zinit) deflateEnd(&w->zs);
    if (w->names)
        for (uint32_t i = 0; i < w->classes; i++) free(w->names[i]);
    free(w->names);
    free(w->source);
    free(w->raw);
    free(w->zout);
    free(w->labels);
    free(w->pairs);
    batch_free(&w->batch);
    free(w->path);
    free(w->tmp);
    free(w);
}

void ds_writer_abort(DsWriter *w) {
    if (!w) return;
    if (w->env) mdb_env_close(w->env);
    w->env = NULL;
    remove_dir(w->tmp);
    writer_free(w);
}

uint64_t ds_writer_count(const DsWriter *w) { return w->count; }

int ds_writer_create(DsWriter **out, const char *path, const DsWriterSpec *spec, Err *e) {
    *out = NULL;
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    if (len == 0) return err_set(e, "empty dataset path: give --out DB");
    if ((uint64_t)spec->channels * spec->height * spec->width == 0 || spec->channels > DS_MAX_CHANNELS ||
        spec->height > 65535 || spec->width > 65535 ||
        (uint64_t)spec->channels * spec->height * spec->width > (1u << 30))
        return err_set(e,
                       "%s: sample shape %ux%ux%u (CxHxW) out of range: channels 1..%d, sides 1..65535 and at "
                       "most %u values per sample",
                       path, spec->channels, spec->height, spec->width, DS_MAX_CHANNELS, 1u << 30);
    if (spec->classes == 0 || spec->classes > DS_MAX_CLASSES)
        return err_set(e, "%s: %u classes, expected 1..%d", path, spec->classes, DS_MAX_CLASSES);
    if (spec->has_masks == DS_MASKS_CLASS && spec->classes > DS_MAX_MASK_CLASSES)
        return err_set(e, "%s: %u classes with class masks: a mask byte holds class + 1, at most %d classes",
                       path, spec->classes, DS_MAX_MASK_CLASSES);
    for (uint32_t c = 0; spec->class_names && c < spec->classes; c++) {
        size_t n = strlen(spec->class_names[c]);
        if (n == 0 || n > 255)
            return err_set(e, "%s: class %u name '%s' must be 1..255 bytes", path, c, spec->class_names[c]);
    }
    DsWriter *w = xcalloc(1, sizeof *w);
    w->path = xmalloc(len + 1);
    memcpy(w->path, path, len);
    w->path[len] = 0;
    w->tmp = xmalloc(len + 32);
    snprintf(w->tmp, len + 32, "%s.tmp-%ld", w->path, (long)getpid());
    struct stat st;
    if (lstat(w->path, &st) == 0) {
        err_set(e, "%s already exists — remove it or choose another --out", w->path);
        writer_free(w);
        return -1;
    }
    if (lstat(w->tmp, &st) == 0) remove_dir(w->tmp); /* left by a dead process with our pid */
    if (mkdir(w->tmp, 0755) != 0) {
        err_set(e, "cannot create %s: %s — does the parent directory exist and is it writable?", w->tmp,
                strerror(errno));
        writer_free(w);
        return -1;
    }
    w->channels = spec->channels;
    w->height = spec->height;
    w->width = spec->width;
    w->classes = spec->classes;
    w->compress = spec->compress;
    w->has_masks = spec->has_masks;
    w->has_names = -1;
    w->source = xstrdup(spec->source ? spec->source : "");
    w->names = xcalloc(w->classes, sizeof(char *));
    for (uint32_t c = 0; c < w->classes; c++) {
        char num[16];
        snprintf(num, sizeof num, "%u", c);
        w->names[c] = xstrdup(spec->class_names ? spec->class_names[c] : num);
    }
    w->npix = (size_t)w->channels * w->height * w->width;
    w->raw_len = w->npix + (w->has_masks ? (size_t)w->height * w->width : 0);
    w->raw = xmalloc(w->raw_len);
    int rc = mdb_env_create(&w->env);
    if (rc) {
        w->env = NULL;
        goto lmdb_fail;
    }
    mdb_env_set_maxdbs(w->env, 16);
    mdb_env_set_mapsize(w->env, WRITER_INITIAL_MAP);
    if ((rc = mdb_env_open(w->env, w->tmp, MDB_NOLOCK | MDB_NOSYNC, 0644))) goto lmdb_fail;
    if (w->compress) {
        /* Fixed Huffman codes for small records: their dynamic tables cost
         * more to decode (about 2x the inflate time of a 28x28 image) than
         * the ~6% of bytes they save; larger records amortise them. */
        int strategy = w->raw_len <= WRITER_FIXED_HUFFMAN_MAX ? Z_FIXED : Z_DEFAULT_STRATEGY;
        if (deflateInit2(&w->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, strategy) != Z_OK) {
            err_set(e, "%s: zlib deflateInit failed", w->tmp);
            ds_writer_abort(w);
            return -1;
        }
        w->zinit = 1;
        w->zcap = deflateBound(&w->zs, (uLong)w->raw_len);
        w->zout = xmalloc(w->zcap);
    }
    *out = w;
    return 0;
lmdb_fail:
    err_set(e, "%s: cannot create the LMDB environment: %s", w->tmp, mdb_strerror(rc));
    ds_writer_abort(w);
    return -1;
}

static int writer_flush(DsWriter *w, Err *e) {
    if (!w->batch.nops) return 0;
    /* names is the last database: created only when the dataset has names */
    if (batch_commit(w->env, &w->batch, writer_dbs, w->has_names > 0 ? DBW_N : DBW_NAMES, -1, w->tmp, e))
        return -1;
    w->batch.n = w->batch.nops = 0;
    return 0;
}

int ds_writer_add(DsWriter *w, const uint8_t *pixels, int32_t label, const uint8_t *mask, Err *e) {
    return ds_writer_add_named(w, pixels, label, mask, NULL, e);
}

int ds_writer_add_named(DsWriter *w, const uint8_t *pixels, int32_t label, const uint8_t *mask,
                        const char *name, Err *e) {
    if (label < 0 || (uint32_t)label >= w->classes)
        return err_set(e, "%s: sample %" PRIu64 ": label %d out of range (classes %u)", w->path, w->count,
                       label, w->classes);
    if (w->has_masks && !mask)
        return err_set(e, "%s: sample %" PRIu64 ": the dataset has masks but none was given", w->path,
                       w->count);
    if (w->has_masks == DS_MASKS_CLASS)
        for (size_t i = 0; i < (size_t)w->height * w->width; i++)
            if (mask[i] > w->classes)
                return err_set(e, "%s: sample %" PRIu64 ": class mask value %u at pixel %zu is above classes (%u)",
                               w->path, w->count, mask[i], i, w->classes);
    if (w->count >= UINT32_MAX) return err_set(e, "%s: more than %u samples", w->path, UINT32_MAX - 1);
    if (w->has_names < 0) w->has_names = name != NULL;
    if (w->has_names != (name != NULL))
        return err_set(e, "%s: sample %" PRIu64 ": %s, but the samples before it %s", w->path, w->count,
                       name ? "has a name" : "has no name", name ? "have none" : "have names");
    if (name) {
        size_t n = strlen(name);
        const char *why = ds_name_fault(name, n);
        if (why) return err_set(e, "%s: sample name '%.200s' %s", w->path, name, why);
        uint8_t *p = batch_add(&w->batch, DBW_NAMES, MDB_APPEND, 8, (uint32_t)n);
        ds_be64(p, w->count);
        memcpy(p + 8, name, n);
    }
    memcpy(w->raw, pixels, w->npix);
    if (w->has_masks) memcpy(w->raw + w->npix, mask, w->raw_len - w->npix);
    size_t plane = (size_t)w->height * w->width;
    for (uint32_t c = 0; c < w->channels; c++) {
        const uint8_t *px = pixels + c * plane;
        uint64_t s = 0, q = 0;
        for (size_t i = 0; i < plane; i++) {
            s += px[i];
            q += (uint32_t)px[i] * px[i];
        }
        w->sum[c] += s;
        w->sumsq[c] += q;
    }
    const uint8_t *payload = w->raw;
    size_t stored = w->raw_len;
    unsigned flags = w->has_masks ? DS_REC_MASK : 0;
    if (w->compress) {
        deflateReset(&w->zs);
        w->zs.next_in = w->raw;
        w->zs.avail_in = (uInt)w->raw_len;
        w->zs.next_out = w->zout;
        w->zs.avail_out = (uInt)w->zcap;
        if (deflate(&w->zs, Z_FINISH) != Z_STREAM_END) return err_set(e, "%s: zlib deflate failed", w->path);
        if (w->zs.total_out < w->raw_len) { /* else stored raw: see the format */
            payload = w->zout;
            stored = w->zs.total_out;
            flags |= DS_REC_ZLIB;
        }
    }
    uint8_t *p = batch_add(&w->batch, DBW_SAMPLES, MDB_APPEND, 8, (uint32_t)(DS_REC_HEADER + stored));
    ds_be64(p, w->count);
    uint8_t *h = p + 8;
    h[0] = DS_REC_VERSION;
    h[1] = (uint8_t)flags;
    ds_le16(h + 2, w->channels);
    ds_le16(h + 4, w->height);
    ds_le16(h + 6, w->width);
    ds_le32(h + 8, (uint32_t)label);
    ds_le32(h + 12, (uint32_t)w->raw_len);
    ds_le32(h + 16, (uint32_t)stored);
    ds_le32(h + 20, (uint32_t)crc32(0L, w->raw, (uInt)w->raw_len));
    memcpy(h + DS_REC_HEADER, payload, stored);
    if (w->count == w->labels_cap) {
        w->labels_cap = MAX(w->labels_cap * 2, 4096);
        w->labels = xrealloc(w->labels, w->labels_cap * sizeof(int32_t));
    }
    w->labels[w->count++] = label;
    if (w->batch.n >= WRITER_BATCH_BYTES) return writer_flush(w, e);
    return 0;
}

/* Mean and population std of pixel/255 from exact sums over n pixels. */
static void pixel_stats(double *mean, double *sd, uint64_t sum, uint64_t sumsq, double n) {
    double m = 0, var = 0;
    if (n > 0) {
        m = (double)sum / (255.0 * n);
        var = (double)sumsq / (65025.0 * n) - m * m;
    }
    *mean = m;
    *sd = var > 0 ? sqrt(var) : 0.0;
}

int ds_writer_set_pairs(DsWriter *w, const uint32_t *a, const uint32_t *b, uint64_t n, Err *e) {
    for (uint64_t i = 0; i < n; i++)
        if (a[i] >= w->count || b[i] >= w->count || a[i] == b[i])
            return err_set(e, "%s: pair %" PRIu64 " (%u, %u): ids must differ and be < %" PRIu64, w->path, i,
                           a[i], b[i], w->count);
    free(w->pairs);
    w->pairs = xmalloc(sizeof(uint32_t) * 3 * (n ? n : 1));
    for (uint64_t i = 0; i < n; i++) {
        w->pairs[3 * i] = a[i];
        w->pairs[3 * i + 1] = b[i];
        w->pairs[3 * i + 2] = w->labels[a[i]] == w->labels[b[i]];
    }
    w->npairs = n;
    return 0;
}

/* No two samples of w have the same name (names_unique: in bounded memory,
 * its temporary files in the dataset's temporary directory). */
static int writer_names_unique(DsWriter *w, Err *e) {
    MDB_txn *txn;
    MDB_dbi dbi;
    int rc = mdb_txn_begin(w->env, NULL, MDB_RDONLY, &txn);
    if (rc) return err_set(e, "%s: read transaction: %s", w->tmp, mdb_strerror(rc));
    if ((rc = mdb_dbi_open(txn, "names", 0, &dbi))) {
        mdb_txn_abort(txn);
        return err_set(e, "%s: names: %s", w->tmp, mdb_strerror(rc));
    }
    uint64_t a, b;
    char name[256];
    rc = names_unique(txn, dbi, w->count, w->tmp, w->tmp, &a, &b, name, sizeof name, e);
    mdb_txn_abort(txn);
    if (rc == 1)
        return err_set(e, "%s: two samples are called '%.200s' (%" PRIu64 " and %" PRIu64 ")", w->path, name,
                       a, b);
    return rc;
}

/* Queues by_class, classes and meta, and writes them with the last samples
 * in the final transaction; syncs and closes the environment. */
static int writer_commit(DsWriter *w, Err *e) {
    if (writer_flush(w, e)) return -1;
    if (w->has_names > 0 && writer_names_unique(w, e)) return -1;
    if (w->npairs) { /* in a transaction of their own, before meta (which says they are there) */
        PutBatch pb = {0};
        for (uint64_t i = 0; i < w->npairs; i++) {
            uint8_t *p = batch_add(&pb, 0, MDB_APPEND, 8, 12);
            ds_be64(p, i);
            for (int j = 0; j < 3; j++) ds_le32(p + 8 + 4 * j, w->pairs[3 * i + j]);
        }
        const char *const pairs_db[1] = {"pairs"};
        int rc = batch_commit(w->env, &pb, pairs_db, 1, -1, w->tmp, e);
        batch_free(&pb);
        if (rc) return -1;
    }
    uint64_t *off = xcalloc(w->classes + 1, sizeof(uint64_t));
    for (uint64_t i = 0; i < w->count; i++) off[w->labels[i] + 1]++;
    for (uint32_t c = 0; c < w->classes; c++) off[c + 1] += off[c];
    size_t *val = xmalloc(sizeof(size_t) * w->classes); /* offsets: the buffer may move */
    for (uint32_t c = 0; c < w->classes; c++) {
        uint8_t *p = batch_add(&w->batch, DBW_BY_CLASS, MDB_APPEND, 4, (uint32_t)(4 * (off[c + 1] - off[c])));
        ds_be32(p, c);
        val[c] = (size_t)(p + 4 - w->batch.buf);
    }
    uint64_t *fill = xcalloc(w->classes, sizeof(uint64_t));
    for (uint64_t i = 0; i < w->count; i++) { /* ids ascending within each class */
        uint32_t c = (uint32_t)w->labels[i];
        ds_le32(w->batch.buf + val[c] + 4 * fill[c]++, (uint32_t)i);
    }
    free(fill);
    free(val);
    free(off);
    for (uint32_t c = 0; c < w->classes; c++) {
        uint32_t n = (uint32_t)strlen(w->names[c]);
        uint8_t *p = batch_add(&w->batch, DBW_CLASSES, MDB_APPEND, 4, n);
        ds_be32(p, c);
        memcpy(p + 4, w->names[c], n);
    }
    double mean, sd, cmean[DS_MAX_CHANNELS], csd[DS_MAX_CHANNELS];
    uint64_t sum = 0, sumsq = 0;
    for (uint32_t c = 0; c < w->channels; c++) {
        sum += w->sum[c];
        sumsq += w->sumsq[c];
        pixel_stats(&cmean[c], &csd[c], w->sum[c], w->sumsq[c],
                    (double)w->count * (double)w->npix / w->channels);
    }
    pixel_stats(&mean, &sd, sum, sumsq, (double)w->count * (double)w->npix);
    char num[64], list[2][32 * DS_MAX_CHANNELS];
    for (int l = 0; l < 2; l++) {
        size_t k = 0;
        for (uint32_t c = 0; c < w->channels; c++)
            k += (size_t)snprintf(list[l] + k, sizeof list[l] - k, "%s%.9g", c ? "," : "",
                                  l ? csd[c] : cmean[c]);
    }
#define META_PUT(key, ...)                                                                                   \
    do {                                                                                                     \
        snprintf(num, sizeof num, __VA_ARGS__);                                                              \
        batch_text(&w->batch, DBW_META, key, num);                                                           \
    } while (0)
    batch_text(&w->batch, DBW_META, "format", DS_FORMAT_NAME);
    META_PUT("version", "%d", DS_FORMAT_VERSION);
    META_PUT("count", "%" PRIu64, w->count);
    META_PUT("channels", "%u", w->channels);
    META_PUT("height", "%u", w->height);
    META_PUT("width", "%u", w->width);
    META_PUT("classes", "%u", w->classes);
    META_PUT("mean", "%.9g", mean);
    META_PUT("std", "%.9g", sd);
    batch_text(&w->batch, DBW_META, "channel_mean", list[0]);
    batch_text(&w->batch, DBW_META, "channel_std", list[1]);
    META_PUT("compressed", "%d", w->compress ? 1 : 0);
    META_PUT("masks", "%d", w->has_masks == DS_MASKS_CLASS ? DS_MASKS_CLASS : w->has_masks ? DS_MASKS_OBJECT : 0);
    META_PUT("names", "%d", w->has_names > 0 ? 1 : 0);
    META_PUT("npairs", "%" PRIu64, w->npairs);
    META_PUT("ntriplets", "0");
#undef META_PUT
    char src[256];
    snprintf(src, sizeof src, "%s", w->source);
    batch_text(&w->batch, DBW_META, "source", src);
    if (writer_flush(w, e)) return -1;
    int rc = mdb_env_sync(w->env, 1);
    if (rc) return err_set(e, "%s: sync: %s", w->tmp, mdb_strerror(rc));
    mdb_env_close(w->env);
    w->env = NULL;
    return 0;
}

/* rename without replacing. File systems without RENAME_NOREPLACE (some
 * network ones) get a check-then-rename: a race there can at worst replace
 * an empty directory (rename(2) fails on a non-empty one). */
static int rename_noreplace(const char *from, const char *to) {
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS) return -1;
    struct stat st;
    if (lstat(to, &st) == 0) {
        errno = EEXIST;
        return -1;
    }
    return rename(from, to);
}

int ds_writer_finish_all(DsWriter **ws, int n, Err *e) {
    int i, k;
    for (i = 0; i < n; i++)
        if (writer_commit(ws[i], e)) goto fail;
    for (k = 0; k < n; k++) {
        if (rename_noreplace(ws[k]->tmp, ws[k]->path) != 0) {
            int err = errno;
            err_set(e, "cannot rename %s to %s: %s%s", ws[k]->tmp, ws[k]->path, strerror(err),
                    err == EEXIST ? " — it appeared meanwhile; remove it or choose another --out" : "");
            while (k-- > 0) rename_noreplace(ws[k]->path, ws[k]->tmp);
            goto fail;
        }
    }
    for (k = 0; k < n; k++) {
        sync_parent(ws[k]->path);
        writer_free(ws[k]);
    }
    return 0;
fail:
    for (i = 0; i < n; i++) ds_writer_abort(ws[i]);
    return -1;
}

int ds_writer_finish(DsWriter *w, Err *e) { return ds_writer_finish_all(&w, 1, e); }

/* ---- pairs and triplets -------------------------------------------------------- */

/* Replaces sub-database `db` of PATH with n 12-byte records (already
 * validated) and sets meta `metakey` to n, in one transaction. */
static int write_records(const char *path, const char *db, const char *metakey, const uint32_t *t, uint64_t n,
                         Err *e) {
    PutBatch b = {0};
    for (uint64_t i = 0; i < n; i++) {
        uint8_t *p = batch_add(&b, 1, MDB_APPEND, 8, 12);
        ds_be64(p, i);
        for (int j = 0; j < 3; j++) ds_le32(p + 8 + 4 * j, t[3 * i + j]);
    }
    char num[32];
    snprintf(num, sizeof num, "%" PRIu64, n);
    batch_text(&b, 0, metakey, num);
    MDB_env *env;
    int rc = mdb_env_create(&env);
    if (rc) {
        batch_free(&b);
        return err_set(e, "%s: mdb_env_create: %s", path, mdb_strerror(rc));
    }
    mdb_env_set_maxdbs(env, 16);
    if ((rc = mdb_env_open(env, path, 0, 0644))) {
        err_set(e, "%s: cannot open for writing: %s", path, mdb_strerror(rc));
        goto done;
    }
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(env, &info);
    mdb_env_stat(env, &st);
    size_t need = (info.me_last_pgno + 1) * (size_t)st.ms_psize + 2 * b.n + 2 * b.nops * 16 + (16u << 20);
    if (need > info.me_mapsize && (rc = mdb_env_set_mapsize(env, need))) {
        err_set(e, "%s: cannot grow the LMDB map: %s", path, mdb_strerror(rc));
        goto done;
    }
    const char *names[2] = {"meta", db};
    rc = batch_commit(env, &b, names, 2, 1, path, e);
done:
    mdb_env_close(env);
    batch_free(&b);
    return rc ? -1 : 0;
}

int ds_write_pairs(const char *path, const uint32_t *a, const uint32_t *b, const uint8_t *same, uint64_t n,
                   Err *e) {
    Dataset *ds;
    if (ds_open(&ds, path, e)) return -1;
    uint32_t *t = xmalloc(sizeof(uint32_t) * 3 * (n ? n : 1));
    int rc = 0;
    for (uint64_t i = 0; i < n && !rc; i++) {
        t[3 * i] = a[i];
        t[3 * i + 1] = b[i];
        t[3 * i + 2] = same[i];
        rc = ds_check_pair(ds, i, a[i], b[i], same[i], e);
    }
    ds_close(ds); /* before writing: one environment per process at a time */
    if (!rc) rc = write_records(path, "pairs", "npairs", t, n, e);
    free(t);
    return rc;
}

int ds_write_triplets(const char *path, const uint32_t *t, uint64_t n, Err *e) {
    Dataset *ds;
    if (ds_open(&ds, path, e)) return -1;
    int rc = 0;
    for (uint64_t i = 0; i < n && !rc; i++) rc = ds_check_triplet(ds, i, t + 3 * i, e);
    ds_close(ds);
    if (!rc) rc = write_records(path, "triplets", "ntriplets", t, n, e);
    return rc;
}
