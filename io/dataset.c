/* dataset: see dataset.h. This file holds the reader and the shared record
 * helpers; the writers are in dataset_write.c.
 *
 * ON-DISK FORMAT, version 2 (DS_FORMAT_VERSION). Version 1 (no sample
 * names, no channel_mean/channel_std, no `names` meta key) is still read: its
 * samples have no names and every channel takes the overall mean and std.
 *
 * A dataset is an LMDB environment in a directory (data.mdb; lock.mdb only
 * appears once `siamese pairs` has written to it). Multi-byte numbers in keys
 * are big-endian so LMDB's byte order is numeric order; numbers inside values
 * are little-endian. Named sub-databases:
 *
 *   meta      key: ASCII name, value: ASCII text (no NUL). Required keys:
 *               format    "siamese-mpi-dataset"
 *               version   "2" (a reader refuses a larger version)
 *               count     samples N; ids 0..N-1 (N < 2^32)
 *               channels, height, width   shape C x H x W (C 1..16, H and W
 *                         1..65535; C*H*W <= 2^30)
 *               classes   labels are 0..classes-1 (1..DS_MAX_CLASSES)
 *               mean, std of pixel/255 over every pixel of every channel of
 *                         every sample (population std), printed with %.9g
 *               channel_mean, channel_std   (version 2) C comma-separated
 *                         numbers: the same statistics per channel
 *               compressed "0" or "1": records were deflated at import
 *               masks     "0", "1" or "2": with 1 or 2 every record carries an
 *                         H x W mask; 2: per-pixel class masks (below)
 *               names     (version 2) "0" or "1": the `names` sub-database
 *                         holds a name for every sample
 *               npairs, ntriplets  records in pairs / triplets (0: absent)
 *               source    free text (where the data came from)
 *             Unknown keys are ignored. meta is written in the last
 *             transaction of an import, so an interrupted import has none.
 *   samples   key: 8-byte big-endian sample id. value: a 24-byte header,
 *             then `stored_len` payload bytes:
 *               off size
 *                 0   1  record version, 1
 *                 1   1  flags: bit 0 DS_REC_ZLIB payload is a raw deflate
 *                        stream (RFC 1951, no zlib/gzip wrapper); bit 1
 *                        DS_REC_MASK payload ends with an H x W uint8 mask;
 *                        other bits 0
 *                 2   2  channels   4 2 height   6 2 width  (match meta)
 *                 8   4  label (int32, 0 <= label < classes, and equal to
 *                        the label by_class gives this id)
 *                12   4  raw_len: payload bytes once inflated: C*H*W pixels
 *                        (uint8, (C, H, W) row-major) + H*W mask bytes if any
 *                16   4  stored_len: bytes after the header (= raw_len when
 *                        not deflated)
 *                20   4  CRC-32 (zlib crc32) of the raw payload
 *             The writer deflates records of up to 4 KB with fixed Huffman
 *             codes (faster to inflate), larger ones with dynamic codes;
 *             readers accept any raw deflate stream.
 *             In a compressed dataset a record whose deflate output would not
 *             be smaller is stored raw (flag bit 0 clear); an uncompressed
 *             dataset never has deflated records. Masks (segmentation) live
 *             in the sample record, after the pixels; there is no `masks`
 *             sub-database. Mask bytes (masks 1): 0 background, anything else
 *             object; importers store 1 for object. With masks 2 (class
 *             masks, `siamese synth coseg --class-masks`) a mask labels every
 *             object of the image: 0 background, c + 1 for a pixel of class c,
 *             never above `classes` (checked on read; at most 255 classes).
 *   by_class  key: 4-byte big-endian label, value: the sample ids of that
 *             label as little-endian uint32, strictly ascending. Every label
 *             0..classes-1 has an entry (possibly empty); together they hold
 *             every id exactly once.
 *   classes   key: 4-byte big-endian label, value: class name in UTF-8, no
 *             NUL, 1..255 bytes ("3", "Alphabet/character01", folder name).
 *             The part before the first '/' (or the whole name) is the
 *             class's group (the Omniglot alphabet).
 *   names     (version 2, when meta names = 1) key: 8-byte big-endian sample
 *             id, value: the sample's name, 1..1024 bytes of UTF-8 with no
 *             control character (below 0x20, 0x7f), no NUL; exactly one
 *             record per id 0..N-1 and no name twice. Importers use the
 *             source's name: the file's path under --root
 *             ("Alphabet/character01/0975_14.png"), or FILE#INDEX for idx
 *             ("train-images-idx3-ubyte.gz#0", INDEX from 0 in file order).
 *   pairs     optional. key: 8-byte big-endian index 0..npairs-1, value 12
 *             bytes: uint32 a, uint32 b, uint32 same (1: same label, 0: not),
 *             with a != b < count and `same` true to the labels.
 *   triplets  optional. key as pairs, value 12 bytes: uint32 anchor,
 *             positive, negative; label(anchor) == label(positive),
 *             anchor != positive, label(negative) != label(anchor).
 *
 * Readers open with MDB_RDONLY|MDB_NOLOCK|MDB_NOTLS: many processes read one
 * dataset with no lock file (read-only file systems work), and a DsReader may
 * move between threads. Because of MDB_NOLOCK nothing may write a dataset
 * (siamese pairs) while it is being read. */
#include "dataset_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

_Static_assert(DS_REC_HEADER == 24, "the record header layout above is 24 bytes");
_Static_assert(DS_MAX_NAME == 1024, "the format text above and DS_NAME_LIMIT_TEXT say 1024");

/* ---- byte helpers (shared with dataset_write.c) --------------------------- */

void ds_be64(uint8_t k[8], uint64_t v) {
    for (int i = 7; i >= 0; i--, v >>= 8) k[i] = (uint8_t)v;
}
void ds_be32(uint8_t k[4], uint32_t v) {
    for (int i = 3; i >= 0; i--, v >>= 8) k[i] = (uint8_t)v;
}
uint32_t ds_get_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
uint64_t ds_get_be64(const uint8_t *p) { return (uint64_t)ds_get_be32(p) << 32 | ds_get_be32(p + 4); }
void ds_le16(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
void ds_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++, v >>= 8) p[i] = (uint8_t)v;
}
uint32_t ds_get_le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
uint32_t ds_get_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- the open dataset ------------------------------------------------------ */

struct Dataset {
    char *path;
    MDB_env *env;
    MDB_dbi samples, pairs, triplets, names_dbi;
    DsMeta meta;
    NameTable names_tab;
    int names_loaded;
    uint32_t *class_ids;  /* count ids grouped by label, ascending within */
    uint64_t *class_off;  /* classes + 1 offsets into class_ids */
    int32_t *labels;      /* count */
    char **names;         /* classes */
};

struct DsReader {
    Dataset *ds;
    MDB_txn *txn;
    DsDecoder *dec;
};

const DsMeta *ds_meta(const Dataset *ds) { return &ds->meta; }
const char *ds_path(const Dataset *ds) { return ds->path; }
const int32_t *ds_labels(const Dataset *ds) { return ds->labels; }

const uint32_t *ds_class_ids(const Dataset *ds, uint32_t label, uint32_t *n) {
    ASSERT(label < ds->meta.classes);
    *n = (uint32_t)(ds->class_off[label + 1] - ds->class_off[label]);
    return ds->class_ids + ds->class_off[label];
}

const char *ds_class_name(const Dataset *ds, uint32_t label) {
    ASSERT(label < ds->meta.classes);
    return ds->names[label];
}

size_t ds_group_len(const char *class_name) {
    const char *slash = strchr(class_name, '/');
    return slash ? (size_t)(slash - class_name) : strlen(class_name);
}

/* qsort_r order of class indices by their group (ds_group_len bytes, byte-
 * wise, a shorter prefix first), then by index. */
static int cmp_group(const void *pa, const void *pb, void *ctx) {
    const char *const *names = ctx;
    uint32_t ia = *(const uint32_t *)pa, ib = *(const uint32_t *)pb;
    size_t na = ds_group_len(names[ia]), nb = ds_group_len(names[ib]);
    int c = memcmp(names[ia], names[ib], MIN(na, nb));
    if (c) return c;
    if (na != nb) return na < nb ? -1 : 1;
    return (ia > ib) - (ia < ib);
}

int names_groups(const char *const *names, uint32_t C, int32_t *of_label, char ***group_names) {
    uint32_t *order = xmalloc(((size_t)C + 1) * sizeof *order);
    for (uint32_t c = 0; c < C; c++) order[c] = c;
    qsort_r(order, C, sizeof *order, cmp_group, (void *)names);
    char **out = group_names ? xmalloc(((size_t)C + 1) * sizeof *out) : NULL;
    int n = 0;
    for (uint32_t i = 0; i < C; i++) {
        const char *a = names[order[i]], *b = i ? names[order[i - 1]] : NULL;
        size_t na = ds_group_len(a);
        if (!b || na != ds_group_len(b) || memcmp(a, b, na)) {
            if (out) out[n] = xstrndup(a, na);
            n++;
        }
        of_label[order[i]] = n - 1;
    }
    free(order);
    if (group_names) *group_names = out;
    return n;
}

int ds_groups(const Dataset *ds, int32_t *of_label, char ***names) {
    return names_groups((const char *const *)ds->names, ds->meta.classes, of_label, names);
}

void ds_groups_free(char **names, int n) {
    if (!names) return;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

const char *ds_sample_name(const Dataset *ds, uint64_t id) {
    if (!ds->meta.has_names) return NULL;
    ASSERT(ds->names_loaded && id < ds->meta.count);
    return names_get(&ds->names_tab, id);
}

int64_t ds_find_sample(const Dataset *ds, const char *name, size_t len) {
    if (!ds->meta.has_names) return -1;
    ASSERT(ds->names_loaded);
    return names_find(&ds->names_tab, name, len);
}

void ds_close(Dataset *ds) {
    if (!ds) return;
    if (ds->env) mdb_env_close(ds->env);
    if (ds->names)
        for (uint32_t i = 0; i < ds->meta.classes; i++) free(ds->names[i]);
    free(ds->names);
    free(ds->class_ids);
    free(ds->class_off);
    free(ds->labels);
    names_free(&ds->names_tab);
    free(ds->path);
    free(ds);
}

/* Copies meta key `key` into buf as a C string; 1 if absent. */
static int meta_text(MDB_txn *txn, MDB_dbi dbi, const char *key, char *buf, size_t cap, const char *path,
                     Err *e) {
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND) return 1;
    if (rc) return err_set(e, "%s: meta key %s: %s", path, key, mdb_strerror(rc));
    if (v.mv_size >= cap || memchr(v.mv_data, 0, v.mv_size))
        return err_set(e, "%s: meta key %s: %zu bytes, malformed — " RECORD_HINT, path, key, v.mv_size);
    memcpy(buf, v.mv_data, v.mv_size);
    buf[v.mv_size] = 0;
    return 0;
}

static int meta_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t min, uint64_t max, int required,
                    uint64_t *out, const char *path, Err *e) {
    char buf[64];
    int rc = meta_text(txn, dbi, key, buf, sizeof buf, path, e);
    if (rc < 0) return -1;
    if (rc == 1) {
        if (required) return err_set(e, "%s: meta key %s missing — " RECORD_HINT, path, key);
        *out = 0;
        return 0;
    }
    if (parse_u64(buf, out) || *out < min || *out > max)
        return err_set(
            e, "%s: meta key %s = '%s', expected an integer in %" PRIu64 "..%" PRIu64 " — " RECORD_HINT, path,
            key, buf, min, max);
    return 0;
}

static int meta_f(MDB_txn *txn, MDB_dbi dbi, const char *key, float *out, const char *path, Err *e) {
    char buf[64];
    double d;
    int rc = meta_text(txn, dbi, key, buf, sizeof buf, path, e);
    if (rc < 0) return -1;
    if (rc == 1) return err_set(e, "%s: meta key %s missing — " RECORD_HINT, path, key);
    if (parse_double(buf, 0.0, 1.0, &d))
        return err_set(e, "%s: meta key %s = '%s', expected a number in 0..1 — " RECORD_HINT, path, key, buf);
    *out = (float)d;
    return 0;
}

/* Meta key `key`: n comma-separated numbers in 0..1. */
static int meta_list(MDB_txn *txn, MDB_dbi dbi, const char *key, uint32_t n, float *out, const char *path,
                     Err *e) {
    char buf[32 * DS_MAX_CHANNELS];
    int rc = meta_text(txn, dbi, key, buf, sizeof buf, path, e);
    if (rc < 0) return -1;
    if (rc == 1) return err_set(e, "%s: meta key %s missing — " RECORD_HINT, path, key);
    char *p = buf;
    for (uint32_t c = 0; c < n; c++) {
        char *end = strchr(p, ',');
        if ((end != NULL) != (c + 1 < n)) break;
        if (end) *end = 0;
        double d;
        if (parse_double(p, 0.0, 1.0, &d)) break;
        out[c] = (float)d;
        if (c + 1 == n) return 0;
        p = end + 1;
    }
    return err_set(e, "%s: meta key %s = '%s', expected %u comma-separated numbers in 0..1 — " RECORD_HINT,
                   path, key, buf, n);
}

static int read_meta(Dataset *ds, MDB_txn *txn, MDB_dbi dbi, Err *e) {
    const char *p = ds->path;
    DsMeta *m = &ds->meta;
    char buf[256];
    int rc = meta_text(txn, dbi, "format", buf, sizeof buf, p, e);
    if (rc < 0) return -1;
    if (rc == 1 || strcmp(buf, DS_FORMAT_NAME))
        return err_set(e, "%s: meta format is '%s', not '%s': not a siamese dataset", p, rc ? "" : buf,
                       DS_FORMAT_NAME);
    uint64_t v, c, h, w, k, z, mk, nm, np, nt;
    if (meta_u64(txn, dbi, "version", 1, UINT32_MAX, 1, &v, p, e)) return -1;
    if (v > DS_FORMAT_VERSION)
        return err_set(e,
                       "%s: format version %" PRIu64 " is newer than this build reads (%d) — update siamese",
                       p, v, DS_FORMAT_VERSION);
    if (meta_u64(txn, dbi, "count", 0, UINT32_MAX, 1, &m->count, p, e) ||
        meta_u64(txn, dbi, "channels", 1, DS_MAX_CHANNELS, 1, &c, p, e) ||
        meta_u64(txn, dbi, "height", 1, 65535, 1, &h, p, e) ||
        meta_u64(txn, dbi, "width", 1, 65535, 1, &w, p, e) ||
        meta_u64(txn, dbi, "classes", 1, DS_MAX_CLASSES, 1, &k, p, e) ||
        meta_u64(txn, dbi, "compressed", 0, 1, 1, &z, p, e) ||
        meta_u64(txn, dbi, "masks", 0, DS_MASKS_CLASS, 1, &mk, p, e) ||
        meta_u64(txn, dbi, "names", 0, 1, v >= 2, &nm, p, e) ||
        meta_u64(txn, dbi, "npairs", 0, UINT64_MAX, 0, &np, p, e) ||
        meta_u64(txn, dbi, "ntriplets", 0, UINT64_MAX, 0, &nt, p, e) ||
        meta_f(txn, dbi, "mean", &m->mean, p, e) || meta_f(txn, dbi, "std", &m->std, p, e))
        return -1;
    if (mk == DS_MASKS_CLASS && k > DS_MAX_MASK_CLASSES)
        return err_set(e,
                       "%s: meta masks = 2 (class masks) with %" PRIu64
                       " classes: a mask byte holds class + 1, "
                       "at most %d classes — " RECORD_HINT,
                       p, k, DS_MAX_MASK_CLASSES);
    if (c * h * w > (1u << 30))
        return err_set(e, "%s: sample shape %" PRIu64 "x%" PRIu64 "x%" PRIu64 " too large — " RECORD_HINT, p,
                       c, h, w);
    m->version = (uint32_t)v;
    m->channels = (uint32_t)c;
    m->height = (uint32_t)h;
    m->width = (uint32_t)w;
    m->classes = (uint32_t)k;
    m->compressed = (int)z;
    m->has_masks = (int)mk;
    m->has_names = (int)nm;
    m->npairs = np;
    if (v >= 2) {
        if (meta_list(txn, dbi, "channel_mean", m->channels, m->channel_mean, p, e) ||
            meta_list(txn, dbi, "channel_std", m->channels, m->channel_std, p, e))
            return -1;
    } else {
        for (uint32_t i = 0; i < m->channels; i++) m->channel_mean[i] = m->mean, m->channel_std[i] = m->std;
    }
    m->ntriplets = nt;
    rc = meta_text(txn, dbi, "source", m->source, sizeof m->source, p, e);
    if (rc < 0) return -1;
    if (rc == 1) m->source[0] = 0;
    return 0;
}

static int open_dbi(MDB_txn *txn, const char *name, int optional, MDB_dbi *dbi, const char *path, Err *e) {
    int rc = mdb_dbi_open(txn, name, 0, dbi);
    if (rc == MDB_NOTFOUND && optional) return 1;
    if (rc == MDB_NOTFOUND)
        return err_set(e,
                       "%s: no '%s' sub-database: not a complete siamese dataset (an interrupted import?) "
                       "— " RECORD_HINT,
                       path, name);
    if (rc) return err_set(e, "%s: sub-database %s: %s", path, name, mdb_strerror(rc));
    return 0;
}

/* The class index's sizes against what the file holds, before anything is
 * allocated for them: by_class and classes must have one record per class
 * (meta count was checked against samples), so meta cannot claim millions
 * of classes that are not there; then the bytes ds_open keeps (labels and
 * class_ids per sample; per class an offset, a name pointer and the name's
 * allocation, at most its 255 bytes + 1 and the allocator's 16, within the
 * bytes of the classes pages) against the caller's limit. */
static int check_index_size(Dataset *ds, MDB_txn *txn, MDB_dbi by_class, MDB_dbi classes, double limit,
                            const char *why, Err *e) {
    const char *p = ds->path;
    const MDB_dbi dbi[2] = {by_class, classes};
    const char *name[2] = {"by_class", "classes"};
    MDB_stat st;
    for (int i = 0; i < 2; i++) {
        int rc = mdb_stat(txn, dbi[i], &st);
        if (rc) return err_set(e, "%s: %s: %s", p, name[i], mdb_strerror(rc));
        if (st.ms_entries != ds->meta.classes)
            return err_set(e, "%s: %s has %zu entries for %u classes (meta classes) — " RECORD_HINT, p,
                           name[i], st.ms_entries, ds->meta.classes);
    }
    double k = ds->meta.classes, pages = (double)(st.ms_leaf_pages + st.ms_overflow_pages) * st.ms_psize;
    double need = 8.0 * (double)ds->meta.count + 32.0 * k + MIN(256.0 * k, pages);
    if (limit > 0 && need > limit)
        return err_set(e,
                       "%s: its class index (%" PRIu64 " samples, %u classes) needs %.2f MB, more than the "
                       "limit of %.2f MB (%s) — raise that limit",
                       p, ds->meta.count, ds->meta.classes, need / 1e6, limit / 1e6, why ? why : "limit");
    return 0;
}

/* Loads by_class into class_ids/class_off/labels, checking that it holds
 * every id exactly once under a valid label. */
static int read_by_class(Dataset *ds, MDB_txn *txn, MDB_dbi dbi, Err *e) {
    const char *p = ds->path;
    uint64_t count = ds->meta.count;
    uint32_t classes = ds->meta.classes;
    ds->labels = xmalloc(sizeof(int32_t) * (count ? count : 1));
    for (uint64_t i = 0; i < count; i++) ds->labels[i] = -1;
    ds->class_ids = xmalloc(sizeof(uint32_t) * (count ? count : 1));
    ds->class_off = xcalloc(classes + 1, sizeof(uint64_t));
    uint64_t filled = 0;
    for (uint32_t c = 0; c < classes; c++) {
        uint8_t kb[4];
        ds_be32(kb, c);
        MDB_val k = {4, kb}, v;
        int rc = mdb_get(txn, dbi, &k, &v);
        if (rc == MDB_NOTFOUND) return err_set(e, "%s: by_class key %u missing — " RECORD_HINT, p, c);
        if (rc) return err_set(e, "%s: by_class key %u: %s", p, c, mdb_strerror(rc));
        if (v.mv_size % 4 || v.mv_size / 4 > count - filled)
            return err_set(e,
                           "%s: by_class key %u: %zu bytes, not a list of at most %" PRIu64
                           " uint32 ids — " RECORD_HINT,
                           p, c, v.mv_size, count - filled);
        const uint8_t *b = v.mv_data;
        uint64_t n = v.mv_size / 4;
        ds->class_off[c] = filled;
        for (uint64_t i = 0; i < n; i++) {
            uint32_t id = ds_get_le32(b + 4 * i);
            if (id >= count || ds->labels[id] != -1 || (i && id <= ds_get_le32(b + 4 * (i - 1))))
                return err_set(e,
                               "%s: by_class key %u: entry %" PRIu64 " (id %u) out of range, repeated or "
                               "not ascending — " RECORD_HINT,
                               p, c, i, id);
            ds->labels[id] = (int32_t)c;
            ds->class_ids[filled++] = id;
        }
    }
    ds->class_off[classes] = filled;
    if (filled != count)
        return err_set(e, "%s: by_class lists %" PRIu64 " ids, meta count is %" PRIu64 " — " RECORD_HINT, p,
                       filled, count);
    return 0;
}

static int read_names(Dataset *ds, MDB_txn *txn, MDB_dbi dbi, Err *e) {
    ds->names = xcalloc(ds->meta.classes, sizeof(char *));
    for (uint32_t c = 0; c < ds->meta.classes; c++) {
        uint8_t kb[4];
        ds_be32(kb, c);
        MDB_val k = {4, kb}, v;
        int rc = mdb_get(txn, dbi, &k, &v);
        if (rc == MDB_NOTFOUND) return err_set(e, "%s: classes key %u missing — " RECORD_HINT, ds->path, c);
        if (rc) return err_set(e, "%s: classes key %u: %s", ds->path, c, mdb_strerror(rc));
        if (v.mv_size == 0 || v.mv_size > 255 || memchr(v.mv_data, 0, v.mv_size))
            return err_set(e, "%s: classes key %u: malformed name (%zu bytes) — " RECORD_HINT, ds->path, c,
                           v.mv_size);
        ds->names[c] = xmalloc(v.mv_size + 1);
        memcpy(ds->names[c], v.mv_data, v.mv_size);
        ds->names[c][v.mv_size] = 0;
    }
    return 0;
}

static int check_optional(Dataset *ds, MDB_txn *txn, const char *name, uint64_t want, MDB_dbi *dbi, Err *e) {
    int rc = open_dbi(txn, name, 1, dbi, ds->path, e);
    if (rc < 0) return -1;
    uint64_t have = 0;
    if (rc == 0) {
        MDB_stat st;
        if ((rc = mdb_stat(txn, *dbi, &st)))
            return err_set(e, "%s: %s: %s", ds->path, name, mdb_strerror(rc));
        have = st.ms_entries;
    }
    if (have != want)
        return err_set(e, "%s: %s holds %" PRIu64 " records, meta says %" PRIu64 " — re-run siamese pairs",
                       ds->path, name, have, want);
    return 0;
}

/* The names sub-database holds one record per sample when meta says names,
 * none otherwise (the records themselves are read by ds_load_names). */
static int check_names(Dataset *ds, MDB_txn *txn, Err *e) {
    int rc = open_dbi(txn, "names", 1, &ds->names_dbi, ds->path, e);
    if (rc < 0) return -1;
    MDB_stat st = {0};
    if (rc == 0 && (rc = mdb_stat(txn, ds->names_dbi, &st)))
        return err_set(e, "%s: names: %s", ds->path, mdb_strerror(rc));
    uint64_t want = ds->meta.has_names ? ds->meta.count : 0;
    if (st.ms_entries != want)
        return err_set(e, "%s: names holds %zu records, expected %" PRIu64 " (meta names %d) — " RECORD_HINT,
                       ds->path, st.ms_entries, want, ds->meta.has_names);
    return 0;
}

int ds_open(Dataset **out, const char *path, Err *e) { return ds_open_within(out, path, 0, NULL, e); }

int ds_open_within(Dataset **out, const char *path, double limit, const char *why, Err *e) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return err_set(e, "%s: no such dataset (%s) — check the path or run siamese import", path,
                       strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return err_set(e, "%s: not a dataset (a dataset is a directory holding data.mdb)", path);
    Dataset *ds = xcalloc(1, sizeof *ds);
    ds->path = xstrdup(path);
    MDB_txn *txn = NULL;
    MDB_dbi meta, by_class, classes;
    int rc = mdb_env_create(&ds->env);
    if (rc) {
        ds->env = NULL;
        err_set(e, "%s: mdb_env_create: %s", path, mdb_strerror(rc));
        goto fail;
    }
    mdb_env_set_maxdbs(ds->env, 16);
    rc = mdb_env_open(ds->env, path, MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS, 0);
    if (rc) {
        err_set(e, "%s: cannot open as LMDB: %s%s", path, mdb_strerror(rc),
                rc == ENOENT ? " (no data.mdb: not a dataset, or an interrupted import)" : "");
        goto fail;
    }
    if ((rc = mdb_txn_begin(ds->env, NULL, MDB_RDONLY, &txn))) {
        err_set(e, "%s: read transaction: %s", path, mdb_strerror(rc));
        goto fail;
    }
    if (open_dbi(txn, "meta", 0, &meta, path, e) || read_meta(ds, txn, meta, e) ||
        open_dbi(txn, "samples", 0, &ds->samples, path, e) ||
        open_dbi(txn, "by_class", 0, &by_class, path, e) || open_dbi(txn, "classes", 0, &classes, path, e))
        goto fail;
    MDB_stat ms;
    if ((rc = mdb_stat(txn, ds->samples, &ms))) {
        err_set(e, "%s: samples: %s", path, mdb_strerror(rc));
        goto fail;
    }
    if (ms.ms_entries != ds->meta.count) {
        err_set(e, "%s: samples holds %zu records, meta count is %" PRIu64 " — " RECORD_HINT, path,
                ms.ms_entries, ds->meta.count);
        goto fail;
    }
    if (check_index_size(ds, txn, by_class, classes, limit, why, e) || read_by_class(ds, txn, by_class, e) ||
        read_names(ds, txn, classes, e) || check_optional(ds, txn, "pairs", ds->meta.npairs, &ds->pairs, e) ||
        check_optional(ds, txn, "triplets", ds->meta.ntriplets, &ds->triplets, e) || check_names(ds, txn, e))
        goto fail;
    /* Committing a read transaction keeps its database handles open for the
     * readers' transactions. */
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc) {
        err_set(e, "%s: %s", path, mdb_strerror(rc));
        goto fail;
    }
    *out = ds;
    return 0;
fail:
    if (txn) mdb_txn_abort(txn);
    ds_close(ds);
    return -1;
}

/* Reads every names record in id order in txn, checking its key and name;
 * with t, into t, refusing a name met before. */
static int scan_names(Dataset *ds, MDB_txn *txn, NameTable *t, Err *e) {
    const char *p = ds->path;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, ds->names_dbi, &cur);
    if (rc) return err_set(e, "%s: names: %s", p, mdb_strerror(rc));
    MDB_val k, v;
    uint64_t i = 0;
    int bad = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && !bad;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), i++) {
        const char *why = ds_name_fault(v.mv_data, v.mv_size);
        if (k.mv_size != 8 || ds_get_be64(k.mv_data) != i || i >= ds->meta.count) {
            bad = err_set(e, "%s: names record %" PRIu64 ": key is not sample id %" PRIu64 " — " RECORD_HINT,
                          p, i, i);
        } else if (why) {
            bad = err_set(e, "%s: names key %" PRIu64 ": the name (%zu bytes) %s — " RECORD_HINT, p, i,
                          v.mv_size, why);
        } else if (t) {
            int64_t dup = names_add(t, v.mv_data, v.mv_size);
            if (dup >= 0)
                bad = err_set(e,
                              "%s: names key %" PRIu64 ": '%s' is also the name of sample %" PRId64
                              " — " RECORD_HINT,
                              p, i, names_get(t, (uint64_t)dup), dup);
        }
    }
    mdb_cursor_close(cur);
    if (!bad && rc != MDB_NOTFOUND) bad = err_set(e, "%s: names: %s", p, mdb_strerror(rc));
    if (!bad && i != ds->meta.count)
        bad = err_set(e, "%s: names holds %" PRIu64 " records, meta count is %" PRIu64 " — " RECORD_HINT, p,
                      i, ds->meta.count);
    return bad ? -1 : 0;
}

int ds_load_names(Dataset *ds, Err *e) {
    if (!ds->meta.has_names || ds->names_loaded) return 0;
    MDB_txn *txn;
    int rc = mdb_txn_begin(ds->env, NULL, MDB_RDONLY, &txn);
    if (rc) return err_set(e, "%s: read transaction: %s", ds->path, mdb_strerror(rc));
    rc = scan_names(ds, txn, &ds->names_tab, e);
    mdb_txn_abort(txn);
    if (rc) {
        names_free(&ds->names_tab);
        return -1;
    }
    ds->names_loaded = 1;
    return 0;
}

int ds_verify_names(Dataset *ds, Err *e) {
    if (!ds->meta.has_names) return 0;
    MDB_txn *txn;
    int rc = mdb_txn_begin(ds->env, NULL, MDB_RDONLY, &txn);
    if (rc) return err_set(e, "%s: read transaction: %s", ds->path, mdb_strerror(rc));
    const char *tmp = getenv("TMPDIR");
    uint64_t a, b;
    char name[256];
    rc = scan_names(ds, txn, NULL, e);
    if (!rc)
        rc = names_unique(txn, ds->names_dbi, ds->meta.count, tmp && tmp[0] ? tmp : "/tmp", ds->path, &a, &b,
                          name, sizeof name, e);
    mdb_txn_abort(txn);
    if (rc == 1)
        return err_set(
            e, "%s: names key %" PRIu64 ": '%.200s' is also the name of sample %" PRIu64 " — " RECORD_HINT,
            ds->path, b, name, a);
    return rc;
}

/* ---- readers ------------------------------------------------------------- */

int ds_reader_open(Dataset *ds, DsReader **out, Err *e) {
    DsReader *r = xcalloc(1, sizeof *r);
    r->ds = ds;
    int rc = mdb_txn_begin(ds->env, NULL, MDB_RDONLY, &r->txn);
    if (rc) {
        free(r);
        *out = NULL;
        return err_set(e, "%s: read transaction: %s", ds->path, mdb_strerror(rc));
    }
    r->dec = ds_decoder_new(&ds->meta, ds->path);
    *out = r;
    return 0;
}

void ds_reader_close(DsReader *r) {
    if (!r) return;
    if (r->txn) mdb_txn_abort(r->txn);
    ds_decoder_free(r->dec);
    free(r);
}

int ds_read(DsReader *r, uint64_t id, uint8_t *pixels, int32_t *label, uint8_t *mask, Err *e) {
    const Dataset *ds = r->ds;
    const char *p = ds->path;
    if (id >= ds->meta.count)
        return err_set(e, "%s: sample id %" PRIu64 " out of range (count %" PRIu64 ")", p, id,
                       ds->meta.count);
    uint8_t kb[8];
    ds_be64(kb, id);
    MDB_val k = {8, kb}, v;
    int rc = mdb_get(r->txn, ds->samples, &k, &v);
    if (rc == MDB_NOTFOUND) return err_set(e, "%s: samples key %" PRIu64 ": missing — " RECORD_HINT, p, id);
    if (rc) return err_set(e, "%s: samples key %" PRIu64 ": %s", p, id, mdb_strerror(rc));
    return ds_decode(r->dec, id, v.mv_data, v.mv_size, ds->labels[id], pixels, label, mask, e);
}

/* Reads record i of pairs/triplets: 12 bytes, three uint32. */
static int read_triple(DsReader *r, MDB_dbi dbi, const char *what, uint64_t i, uint64_t n, uint32_t t[3],
                       Err *e) {
    const char *p = r->ds->path;
    if (i >= n)
        return err_set(e, "%s: %s index %" PRIu64 " out of range (%" PRIu64 " records)%s", p, what, i, n,
                       n ? "" : " — run siamese pairs first");
    uint8_t kb[8];
    ds_be64(kb, i);
    MDB_val k = {8, kb}, v;
    int rc = mdb_get(r->txn, dbi, &k, &v);
    if (rc)
        return err_set(e, "%s: %s key %" PRIu64 ": %s — re-run siamese pairs", p, what, i, mdb_strerror(rc));
    if (v.mv_size != 12)
        return err_set(e, "%s: %s key %" PRIu64 ": %zu bytes, expected 12 — re-run siamese pairs", p, what, i,
                       v.mv_size);
    for (int j = 0; j < 3; j++) t[j] = ds_get_le32((const uint8_t *)v.mv_data + 4 * j);
    return 0;
}

int ds_check_pair(const Dataset *ds, uint64_t i, uint32_t a, uint32_t b, uint32_t same, Err *e) {
    uint64_t c = ds->meta.count;
    if (a >= c || b >= c || a == b || same > 1 || (uint32_t)(ds->labels[a] == ds->labels[b]) != same)
        return err_set(e,
                       "%s: pairs key %" PRIu64 ": (%u, %u, same %u) invalid: ids must differ, "
                       "be < %" PRIu64 " and 'same' match their labels — re-run siamese pairs",
                       ds->path, i, a, b, same, c);
    return 0;
}

int ds_check_triplet(const Dataset *ds, uint64_t i, const uint32_t t[3], Err *e) {
    uint64_t c = ds->meta.count;
    if (t[0] >= c || t[1] >= c || t[2] >= c || t[0] == t[1] || ds->labels[t[0]] != ds->labels[t[1]] ||
        ds->labels[t[0]] == ds->labels[t[2]])
        return err_set(e,
                       "%s: triplets key %" PRIu64 ": (%u, %u, %u) invalid: needs ids < %" PRIu64
                       ", anchor != positive of the same label, negative of another — re-run siamese pairs",
                       ds->path, i, t[0], t[1], t[2], c);
    return 0;
}

int ds_read_pair(DsReader *r, uint64_t i, uint32_t *a, uint32_t *b, int *same, Err *e) {
    uint32_t t[3];
    if (read_triple(r, r->ds->pairs, "pairs", i, r->ds->meta.npairs, t, e)) return -1;
    if (ds_check_pair(r->ds, i, t[0], t[1], t[2], e)) return -1;
    *a = t[0];
    *b = t[1];
    *same = (int)t[2];
    return 0;
}

int ds_load_pairs(const Dataset *ds, uint32_t *a, uint32_t *b, uint8_t *same, Err *e) {
    DsReader r = {.ds = (Dataset *)ds};
    int rc = mdb_txn_begin(ds->env, NULL, MDB_RDONLY, &r.txn);
    if (rc) return err_set(e, "%s: read transaction: %s", ds->path, mdb_strerror(rc));
    int s = 0;
    for (uint64_t i = 0; i < ds->meta.npairs && !rc; i++) {
        rc = ds_read_pair(&r, i, &a[i], &b[i], &s, e);
        same[i] = (uint8_t)s;
    }
    mdb_txn_abort(r.txn);
    return rc ? -1 : 0;
}

int ds_read_triplet(DsReader *r, uint64_t i, uint32_t t[3], Err *e) {
    if (read_triple(r, r->ds->triplets, "triplets", i, r->ds->meta.ntriplets, t, e)) return -1;
    return ds_check_triplet(r->ds, i, t, e);
}
