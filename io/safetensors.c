/* safetensors: writer and minimal strict reader (see safetensors.h). */
#include "safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors writes host floats as little-endian: port the byte order first"
#endif

#define ST_META_KEY "__metadata__"
#define ST_MAX_HEADER ((uint64_t)100 << 20) /* the reference reader's limit */

/* ---- writing --------------------------------------------------------------- */

typedef struct StrBuf {
    char *s;
    size_t n, cap;
} StrBuf;

static void sb_put(StrBuf *b, const char *p, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = MAX(b->cap * 2, b->n + n + 1);
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, p, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_str(StrBuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* Appends s as a JSON string literal: '"' and '\' escaped, control bytes as
 * \u00XX, other bytes (UTF-8) as they are. */
static void sb_json_string(StrBuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\', esc[1] = (char)*p;
            sb_put(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            sb_put(b, esc, 6);
        } else {
            sb_put(b, (const char *)p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

int safetensors_write(const char *path, const StTensor *t, int n, const char *const *meta, int nmeta,
                      Err *e) {
    if (n < 0 || nmeta < 0 || (nmeta > 0 && !meta))
        return err_set(e, "%s: bad tensor or metadata count (%d, %d)", path, n, nmeta);
    StrBuf h = {0};
    sb_put(&h, "{", 1);
    if (nmeta > 0) {
        sb_json_string(&h, ST_META_KEY);
        sb_put(&h, ":{", 2);
        for (int i = 0; i < nmeta; i++) {
            if (!meta[2 * i] || !meta[2 * i + 1]) {
                free(h.s);
                return err_set(e, "%s: metadata entry %d has a NULL key or value", path, i);
            }
            if (i) sb_put(&h, ",", 1);
            sb_json_string(&h, meta[2 * i]);
            sb_put(&h, ":", 1);
            sb_json_string(&h, meta[2 * i + 1]);
        }
        sb_put(&h, "}", 1);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const char *why = NULL;
        uint64_t count = 1;
        if (!t[i].name || !*t[i].name || strcmp(t[i].name, ST_META_KEY) == 0)
            why = "name is empty or reserved";
        else if (t[i].ndim < 0 || t[i].ndim > ST_MAX_DIMS)
            why = "more than 4 dimensions";
        for (int d = 0; !why && d < t[i].ndim; d++) {
            if (t[i].shape[d] < 0 ||
                (t[i].shape[d] > 0 && count > (UINT64_MAX / 8) / (uint64_t)t[i].shape[d]))
                why = "bad shape";
            else
                count *= (uint64_t)t[i].shape[d];
        }
        if (!why && count > 0 && !t[i].data) why = "no data";
        for (int j = 0; !why && j < i; j++)
            if (strcmp(t[j].name, t[i].name) == 0) why = "name used twice";
        if (why) {
            free(h.s);
            return err_set(e, "%s: tensor %d ('%s'): %s", path, i, t[i].name ? t[i].name : "(null)", why);
        }
        char num[64];
        if (nmeta > 0 || i > 0) sb_put(&h, ",", 1);
        sb_json_string(&h, t[i].name);
        sb_str(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t[i].ndim; d++) {
            snprintf(num, sizeof num, "%s%" PRId64, d ? "," : "", t[i].shape[d]);
            sb_str(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + 4 * count);
        sb_str(&h, num);
        off += 4 * count;
    }
    sb_put(&h, "}", 1);
    while (h.n % 8 != 0) sb_put(&h, " ", 1);

    unsigned char len[8];
    for (int k = 0; k < 8; k++) len[k] = (unsigned char)((uint64_t)h.n >> (8 * k));
    AtomicFile f;
    int rc = -1;
    if (atomic_file_open(&f, path, e) < 0) goto done;
    if (atomic_file_write(&f, len, 8, e) < 0 || atomic_file_write(&f, h.s, h.n, e) < 0) goto abort;
    for (int i = 0; i < n; i++) {
        size_t count = 1;
        for (int d = 0; d < t[i].ndim; d++) count *= (size_t)t[i].shape[d];
        if (count > 0 && atomic_file_write(&f, t[i].data, count * 4, e) < 0) goto abort;
    }
    rc = atomic_file_commit(&f, e);
    goto done;
abort:
    atomic_file_abort(&f);
done:
    free(h.s);
    return rc;
}

/* ---- reading: just enough JSON ------------------------------------------------ */

typedef struct Json {
    const char *p, *end;
    const char *why; /* first error */
} Json;

static int jfail(Json *j, const char *why) {
    if (!j->why) j->why = why;
    return -1;
}

static void jws(Json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int jchar(Json *j, char c) {
    jws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 1;
    }
    return 0;
}

static int jhex4(Json *j, unsigned *v) {
    *v = 0;
    if (j->end - j->p < 4) return jfail(j, "truncated \\u escape");
    for (int k = 0; k < 4; k++) {
        char c = *j->p++;
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16) return jfail(j, "bad \\u escape");
        *v = *v * 16 + d;
    }
    return 0;
}

/* A JSON string into a malloc'd UTF-8 C string (no embedded NULs). */
static int jstring(Json *j, char **out) {
    *out = NULL;
    jws(j);
    if (j->p >= j->end || *j->p != '"') return jfail(j, "expected a string");
    j->p++;
    StrBuf b = {0};
    sb_put(&b, "", 0);
    for (;;) {
        if (j->p >= j->end) goto bad_end;
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"') break;
        if (c < 0x20) {
            free(b.s);
            return jfail(j, "control character in a string");
        }
        if (c != '\\') {
            sb_put(&b, (const char *)&c, 1);
            continue;
        }
        if (j->p >= j->end) goto bad_end;
        char x = *j->p++, ch;
        switch (x) {
        case '"':
            ch = '"';
            break;
        case '\\':
            ch = '\\';
            break;
        case '/':
            ch = '/';
            break;
        case 'b':
            ch = '\b';
            break;
        case 'f':
            ch = '\f';
            break;
        case 'n':
            ch = '\n';
            break;
        case 'r':
            ch = '\r';
            break;
        case 't':
            ch = '\t';
            break;
        case 'u': {
            unsigned u, lo;
            if (jhex4(j, &u) < 0) goto bad;
            if (u >= 0xd800 && u < 0xdc00) { /* surrogate pair */
                if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u') goto bad_sur;
                j->p += 2;
                if (jhex4(j, &lo) < 0) goto bad;
                if (lo < 0xdc00 || lo >= 0xe000) goto bad_sur;
                u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
            } else if (u >= 0xdc00 && u < 0xe000) {
                goto bad_sur;
            }
            if (u == 0) {
                free(b.s);
                return jfail(j, "NUL character in a string");
            }
            unsigned char enc[4];
            int m;
            if (u < 0x80)
                enc[0] = (unsigned char)u, m = 1;
            else if (u < 0x800)
                enc[0] = (unsigned char)(0xc0 | u >> 6), m = 2;
            else if (u < 0x10000)
                enc[0] = (unsigned char)(0xe0 | u >> 12), m = 3;
            else
                enc[0] = (unsigned char)(0xf0 | u >> 18), m = 4;
            for (int k = 1; k < m; k++) enc[k] = (unsigned char)(0x80 | ((u >> (6 * (m - 1 - k))) & 0x3f));
            sb_put(&b, (const char *)enc, (size_t)m);
            continue;
        }
        default:
            free(b.s);
            return jfail(j, "bad escape in a string");
        }
        sb_put(&b, &ch, 1);
    }
    *out = b.s;
    return 0;
bad_sur:
    jfail(j, "bad UTF-16 surrogate in a \\u escape");
    goto bad;
bad_end:
    jfail(j, "unterminated string");
bad:
    free(b.s);
    return -1;
}

static int juint(Json *j, uint64_t *v) {
    jws(j);
    *v = 0;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return jfail(j, "expected an integer");
    for (; j->p < j->end && *j->p >= '0' && *j->p <= '9'; j->p++) {
        if (*v > (UINT64_MAX - 9) / 10) return jfail(j, "integer too large");
        *v = *v * 10 + (uint64_t)(*j->p - '0');
    }
    return 0;
}

/* [u, u, ...] with at most max entries; *n gets the count. */
static int juint_array(Json *j, uint64_t *v, int max, int *n) {
    *n = 0;
    if (!jchar(j, '[')) return jfail(j, "expected '['");
    if (jchar(j, ']')) return 0;
    do {
        if (*n == max) return jfail(j, "array too long");
        if (juint(j, &v[(*n)++]) < 0) return -1;
    } while (jchar(j, ','));
    if (!jchar(j, ']')) return jfail(j, "expected ']'");
    return 0;
}

static int parse_meta(Json *j, StFile *f) {
    if (!jchar(j, '{')) return jfail(j, "__metadata__ is not an object");
    if (jchar(j, '}')) return 0;
    do {
        char *k, *v;
        if (jstring(j, &k) < 0) return -1;
        if (!jchar(j, ':') || jstring(j, &v) < 0) {
            free(k);
            return jfail(j, "__metadata__ values must be strings");
        }
        f->meta = xrealloc(f->meta, (size_t)(f->nmeta + 1) * 2 * sizeof *f->meta);
        f->meta[2 * f->nmeta] = k;
        f->meta[2 * f->nmeta + 1] = v;
        f->nmeta++;
    } while (jchar(j, ','));
    if (!jchar(j, '}')) return jfail(j, "expected '}' after __metadata__");
    return 0;
}

static int parse_tensor(Json *j, StView *t) {
    int have = 0;
    if (!jchar(j, '{')) return jfail(j, "tensor entry is not an object");
    do {
        char *k;
        if (jstring(j, &k) < 0) return -1;
        int bad = !jchar(j, ':');
        if (!bad && strcmp(k, "dtype") == 0) {
            char *v;
            bad = jstring(j, &v) < 0;
            if (!bad && strcmp(v, "F32") != 0) bad = jfail(j, "dtype is not F32");
            free(v);
            have |= 1;
        } else if (!bad && strcmp(k, "shape") == 0) {
            uint64_t s[ST_MAX_DIMS];
            bad = juint_array(j, s, ST_MAX_DIMS, &t->ndim) < 0;
            for (int d = 0; !bad && d < t->ndim; d++) {
                if (s[d] > INT64_MAX) bad = jfail(j, "dimension too large");
                t->shape[d] = (int64_t)s[d];
            }
            have |= 2;
        } else if (!bad && strcmp(k, "data_offsets") == 0) {
            uint64_t o[2];
            int m;
            bad = juint_array(j, o, 2, &m) < 0;
            if (!bad && m != 2) bad = jfail(j, "data_offsets needs 2 entries");
            t->begin = o[0], t->end = o[1];
            have |= 4;
        } else if (!bad) {
            bad = jfail(j, "unknown key in a tensor entry");
        }
        free(k);
        if (bad) return jfail(j, "bad tensor entry");
    } while (jchar(j, ','));
    if (!jchar(j, '}')) return jfail(j, "expected '}' after a tensor entry");
    if (have != 7) return jfail(j, "tensor entry lacks dtype, shape or data_offsets");
    return 0;
}

static int cmp_begin(const void *pa, const void *pb) {
    const StView *a = *(const StView *const *)pa, *b = *(const StView *const *)pb;
    return a->begin < b->begin ? -1 : a->begin > b->begin;
}

int safetensors_read(StFile *f, const char *path, Err *e) {
    memset(f, 0, sizeof *f);
    const char *why = NULL;
    char detail[256] = "";
    FILE *fp = fopen(path, "rb");
    if (!fp) return err_set(e, "%s: cannot open: %s", path, strerror(errno));
    long sz = -1;
    if (fseek(fp, 0, SEEK_END) == 0) sz = ftell(fp);
    if (sz < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        fclose(fp);
        return err_set(e, "%s: cannot size the file: %s", path, strerror(errno));
    }
    f->size = (size_t)sz;
    f->bytes = xmalloc(MAX(f->size, (size_t)1));
    size_t got = fread(f->bytes, 1, f->size, fp);
    fclose(fp);
    if (got != f->size) {
        why = "short read";
        goto fail;
    }
    if (f->size < 8) {
        why = "shorter than the 8-byte header length";
        goto fail;
    }
    uint64_t hn = 0;
    for (int k = 0; k < 8; k++) hn |= (uint64_t)f->bytes[k] << (8 * k);
    if (hn > ST_MAX_HEADER || hn > f->size - 8) {
        why = "header length larger than the file (or 100 MB)";
        goto fail;
    }
    f->header_len = hn;
    uint64_t buf_n = f->size - 8 - hn;
    const unsigned char *buf = f->bytes + 8 + hn;

    Json j = {(const char *)f->bytes + 8, (const char *)f->bytes + 8 + hn, NULL};
    if (!jchar(&j, '{')) {
        j.why = "header is not a JSON object";
    } else if (!jchar(&j, '}')) {
        do {
            char *key;
            if (jstring(&j, &key) < 0) break;
            if (!jchar(&j, ':')) {
                free(key);
                jfail(&j, "expected ':'");
                break;
            }
            if (strcmp(key, ST_META_KEY) == 0) {
                free(key);
                if (parse_meta(&j, f) < 0) break;
                continue;
            }
            f->t = xrealloc(f->t, (size_t)(f->n + 1) * sizeof *f->t);
            StView *t = &f->t[f->n++];
            memset(t, 0, sizeof *t);
            t->name = key;
            if (parse_tensor(&j, t) < 0) {
                snprintf(detail, sizeof detail, " (tensor '%s')", key);
                break;
            }
        } while (jchar(&j, ','));
        if (!j.why && !jchar(&j, '}')) j.why = "expected ',' or '}' in the header";
    }
    if (!j.why) {
        jws(&j);
        if (j.p != j.end) j.why = "junk after the header object";
    }
    if (j.why) {
        why = j.why;
        goto fail;
    }

    /* Every tensor's size, names unique, offsets tiling the buffer. */
    StView **by = xmalloc((size_t)MAX(f->n, 1) * sizeof *by);
    for (int i = 0; i < f->n && !why; i++) {
        StView *t = &f->t[i];
        uint64_t count = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] > 0 && count > (UINT64_MAX / 8) / (uint64_t)t->shape[d]) {
                why = "tensor too large";
                break;
            }
            count *= (uint64_t)t->shape[d];
        }
        if (!why && (t->end < t->begin || t->end - t->begin != 4 * count))
            why = "data_offsets do not match 4 bytes x the shape";
        for (int k = 0; !why && k < i; k++)
            if (strcmp(f->t[k].name, t->name) == 0) why = "name used twice";
        if (why) snprintf(detail, sizeof detail, " (tensor '%s')", t->name);
        by[i] = t;
    }
    if (!why) {
        qsort(by, (size_t)f->n, sizeof *by, cmp_begin);
        uint64_t at = 0;
        for (int i = 0; i < f->n && !why; i++) {
            if (by[i]->begin != at) {
                why = "data_offsets leave a gap or overlap";
                snprintf(detail, sizeof detail, " (tensor '%s' begins at %" PRIu64 ", expected %" PRIu64 ")",
                         by[i]->name, by[i]->begin, at);
            } else if ((8 + hn + at) % 4 != 0) {
                why = "tensor data not 4-byte aligned";
            }
            at = by[i]->end;
            by[i]->data = (const float *)(const void *)(buf + by[i]->begin);
        }
        if (!why && at != buf_n) {
            why = "tensors do not cover the byte buffer";
            snprintf(detail, sizeof detail, " (%" PRIu64 " of %" PRIu64 " bytes)", at, buf_n);
        }
    }
    free(by);
    if (why) goto fail;
    return 0;

fail:
    safetensors_free(f);
    return err_set(e, "%s: not a valid F32 safetensors file: %s%s", path, why, detail);
}

void safetensors_free(StFile *f) {
    for (int i = 0; i < f->n; i++) free(f->t[i].name);
    for (int i = 0; i < 2 * f->nmeta; i++) free(f->meta[i]);
    free(f->t);
    free(f->meta);
    free(f->bytes);
    memset(f, 0, sizeof *f);
}

const StView *safetensors_find(const StFile *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    return NULL;
}

const char *safetensors_meta(const StFile *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta[2 * i], key) == 0) return f->meta[2 * i + 1];
    return NULL;
}
