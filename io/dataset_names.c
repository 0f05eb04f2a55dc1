/* dataset_names: the sample-name table that the dataset writer (uniqueness
 * while importing) and reader (ds_load_names, ds_find_sample) share: every
 * name once in one growing block, looked up through an open-addressing hash
 * table of ids. Names are checked by ds_name_fault. */
#include "dataset_internal.h"

#include <string.h>

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
