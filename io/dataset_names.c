/* dataset_names: the sample-name table of the reader (ds_load_names,
 * ds_find_sample): every name once in one growing block, looked up through
 * an open-addressing hash table of ids; and the uniqueness check of the
 * writer and of `inspect --verify` (names_unique), which holds no name in
 * memory. Names are checked by ds_name_fault. */
#include "dataset_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const char *ds_name_fault(const char *s, size_t n) {
    if (n == 0) return "empty";
    if (n > DS_MAX_NAME) return "longer than " DS_NAME_LIMIT_TEXT " bytes";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
            return "holds a control character (tab, newline, NUL, ...)";
    return NULL;
}

void names_free(NameTable *t) {
    free(t->blob);
    free(t->off);
    free(t->slot);
    memset(t, 0, sizeof *t);
}

static uint64_t name_hash(const char *s, size_t n) { return hash64(s, n, HASH64_INIT); }

/* The slot holding id + 1 for name s, or the empty slot where it would go. */
static uint64_t find_slot(const NameTable *t, const char *s, size_t n) {
    uint64_t mask = t->nslots - 1, h = name_hash(s, n) & mask;
    for (;; h = (h + 1) & mask) {
        uint32_t v = t->slot[h];
        if (!v) return h;
        uint64_t id = v - 1, len = t->off[id + 1] - t->off[id] - 1;
        if (len == n && !memcmp(t->blob + t->off[id], s, n)) return h;
    }
}

static void grow_slots(NameTable *t) {
    uint64_t old = t->nslots;
    uint32_t *os = t->slot;
    t->nslots = old ? 2 * old : 1024;
    t->slot = xcalloc(t->nslots, sizeof(uint32_t));
    for (uint64_t i = 0; i < old; i++)
        if (os[i]) {
            uint64_t id = os[i] - 1;
            const char *s = t->blob + t->off[id];
            t->slot[find_slot(t, s, t->off[id + 1] - t->off[id] - 1)] = os[i];
        }
    free(os);
}

int64_t names_add(NameTable *t, const char *s, size_t n) {
    if (2 * (t->n + 1) > t->nslots) grow_slots(t);
    uint64_t h = find_slot(t, s, n);
    if (t->slot[h]) return (int64_t)t->slot[h] - 1;
    if (t->n + 2 > t->offcap) {
        t->offcap = MAX(2 * t->offcap, 1024);
        t->off = xrealloc(t->off, t->offcap * sizeof(uint64_t));
    }
    if (t->len + n + 1 > t->cap) {
        t->cap = MAX(2 * t->cap, t->len + n + 1 + 65536);
        t->blob = xrealloc(t->blob, t->cap);
    }
    if (t->n == 0) t->off[0] = 0;
    memcpy(t->blob + t->len, s, n);
    t->blob[t->len + n] = 0;
    t->len += n + 1;
    t->off[t->n + 1] = t->len;
    t->slot[h] = (uint32_t)(++t->n);
    return -1;
}

int64_t names_find(const NameTable *t, const char *s, size_t n) {
    if (!t->nslots) return -1;
    uint32_t v = t->slot[find_slot(t, s, n)];
    return v ? (int64_t)v - 1 : -1;
}

const char *names_get(const NameTable *t, uint64_t id) { return t->blob + t->off[id]; }

/* ---- uniqueness in bounded memory ------------------------------------------ */

#define NAMES_PART_ENTRIES (1u << 18) /* hashes per temporary file, on average, up to NAMES_PARTS files */

typedef struct HashId {
    uint64_t hash, id;
} HashId;

static int cmp_hash_id(const void *pa, const void *pb) {
    const HashId *x = pa, *y = pb;
    if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* An unnamed temporary file in dir (unlinked at once), or NULL. */
static FILE *temp_file(const char *dir) {
    size_t n = strlen(dir) + 32;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/.siamese-names-XXXXXX", dir);
    int fd = mkstemp(p);
    FILE *f = NULL;
    if (fd >= 0) {
        unlink(p);
        if (!(f = fdopen(fd, "w+b"))) close(fd);
    }
    free(p);
    return f;
}

/* Name `id` of dbi (its bytes and length), or NULL. */
static const char *name_of(MDB_txn *txn, MDB_dbi dbi, uint64_t id, size_t *len) {
    uint8_t kb[8];
    ds_be64(kb, id);
    MDB_val k = {8, kb}, v;
    if (mdb_get(txn, dbi, &k, &v)) return NULL;
    *len = v.mv_size;
    return v.mv_data;
}

/* The first repeat within the sorted hashes h[0..n) into (*a, *b) if its
 * *b is smaller than the one found so far. */
static void find_repeat(MDB_txn *txn, MDB_dbi dbi, const HashId *h, size_t n, uint64_t *a, uint64_t *b) {
    for (size_t i = 0; i + 1 < n; i++) {
        for (size_t j = i + 1; j < n && h[j].hash == h[i].hash; j++) {
            size_t li = 0, lj = 0;
            const char *si = name_of(txn, dbi, h[i].id, &li), *sj = name_of(txn, dbi, h[j].id, &lj);
            if (si && sj && li == lj && !memcmp(si, sj, li) &&
                (h[j].id < *b || (h[j].id == *b && h[i].id < *a))) {
                *a = h[i].id;
                *b = h[j].id;
            }
        }
    }
}

int names_unique(MDB_txn *txn, MDB_dbi dbi, uint64_t n, const char *tmpdir, const char *path, uint64_t *a,
                 uint64_t *b, char *name, size_t cap, Err *e) {
    size_t parts =
        (size_t)MIN((uint64_t)NAMES_PARTS, MAX(1, (n + NAMES_PART_ENTRIES - 1) / NAMES_PART_ENTRIES));
    FILE **f = xcalloc(parts, sizeof *f);
    MDB_cursor *cur = NULL;
    HashId *h = NULL;
    int rc = 0;
    *a = *b = UINT64_MAX;
    for (size_t p = 0; p < parts && !rc; p++)
        if (!(f[p] = temp_file(tmpdir)))
            rc = err_set(e, "%s: cannot create a temporary file in %s for the name check: %s — set TMPDIR",
                         path, tmpdir, strerror(errno));
    int mrc = rc ? 0 : mdb_cursor_open(txn, dbi, &cur);
    if (mrc) rc = err_set(e, "%s: names: %s", path, mdb_strerror(mrc));
    MDB_val k, v;
    for (mrc = rc ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        HashId x = {hash64(v.mv_data, v.mv_size, HASH64_INIT), k.mv_size == 8 ? ds_get_be64(k.mv_data) : 0};
        if (fwrite(&x, sizeof x, 1, f[x.hash % parts]) != 1) break;
    }
    if (!rc && mrc != MDB_NOTFOUND)
        rc = mrc ? err_set(e, "%s: names: %s", path, mdb_strerror(mrc))
                 : err_set(e, "%s: writing a temporary file in %s for the name check: %s — set TMPDIR", path,
                           tmpdir, strerror(errno));
    if (cur) mdb_cursor_close(cur);
    for (size_t p = 0; p < parts && !rc; p++) {
        long bytes = fflush(f[p]) == 0 ? ftell(f[p]) : -1;
        size_t m = bytes > 0 ? (size_t)bytes / sizeof(HashId) : 0;
        h = xrealloc(h, (m ? m : 1) * sizeof(HashId));
        rewind(f[p]);
        if (bytes < 0 || fread(h, sizeof(HashId), m, f[p]) != m) {
            rc = err_set(e, "%s: reading back a temporary file in %s for the name check: %s — set TMPDIR",
                         path, tmpdir, strerror(errno));
            break;
        }
        qsort(h, m, sizeof(HashId), cmp_hash_id);
        find_repeat(txn, dbi, h, m, a, b);
    }
    for (size_t p = 0; p < parts; p++)
        if (f[p]) fclose(f[p]);
    free(f);
    free(h);
    if (rc) return -1;
    if (*b == UINT64_MAX) return 0;
    size_t len = 0;
    const char *s = name_of(txn, dbi, *a, &len);
    snprintf(name, cap, "%.*s", (int)MIN(len, cap ? cap - 1 : 0), s ? s : "");
    return 1;
}
