/* npy: .npy writer and strict reader (see npy.h). */
#include "npy.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy writes host floats as little-endian: port the byte order first"
#endif

#define NPY_MAGIC "\x93NUMPY"
#define NPY_ALIGN 64

/* Writes the 1.0 header for (descr, shape) into buf (>= 256 bytes); returns
 * its total length (a multiple of NPY_ALIGN). */
static size_t npy_header(char *buf, size_t cap, const char *descr, const int64_t *shape, int ndim) {
    char dict[200];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int d = 0; d < ndim; d++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%" PRId64, d ? ", " : "", shape[d]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", ndim == 1 ? "," : "");
    ASSERT(n > 0 && (size_t)n < sizeof dict);
    size_t total = 10 + (size_t)n + 1; /* magic, version, length, dict, '\n' */
    total = (total + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    ASSERT(total <= cap);
    size_t hlen = total - 10;
    memcpy(buf, NPY_MAGIC, 6);
    buf[6] = 1;
    buf[7] = 0;
    buf[8] = (char)(hlen & 0xff);
    buf[9] = (char)(hlen >> 8);
    memcpy(buf + 10, dict, (size_t)n);
    memset(buf + 10 + n, ' ', total - 10 - (size_t)n - 1);
    buf[total - 1] = '\n';
    return total;
}

static int npy_write(const char *path, const char *descr, const int64_t *shape, int ndim, const void *data,
                     Err *e) {
    uint64_t count = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || (shape[d] > 0 && count > (UINT64_MAX / 4) / (uint64_t)shape[d]))
            return err_set(e, "%s: bad array shape (dimension %d is %" PRId64 ")", path, d, shape[d]);
        count *= (uint64_t)shape[d];
    }
    if (count > 0 && !data) return err_set(e, "%s: no data for a non-empty array", path);
    char head[256];
    size_t hn = npy_header(head, sizeof head, descr, shape, ndim);
    AtomicFile f;
    if (atomic_file_open(&f, path, e) < 0) return -1;
    if (atomic_file_write(&f, head, hn, e) < 0 ||
        (count > 0 && atomic_file_write(&f, data, (size_t)count * 4, e) < 0)) {
        atomic_file_abort(&f);
        return -1;
    }
    return atomic_file_commit(&f, e);
}

int npy_write_f32(const char *path, const float *data, int64_t rows, int64_t cols, Err *e) {
    int64_t shape[2] = {rows, cols};
    return npy_write(path, "<f4", shape, 2, data, e);
}

int npy_write_i32(const char *path, const int32_t *data, int64_t n, Err *e) {
    return npy_write(path, "<i4", &n, 1, data, e);
}

/* ---- reading --------------------------------------------------------------- */

static const char *skip_ws(const char *s, const char *end) {
    while (s < end && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) s++;
    return s;
}

/* Matches literal lit at s (after spaces); returns the position after it or
 * NULL. */
static const char *expect(const char *s, const char *end, const char *lit) {
    s = skip_ws(s, end);
    size_t n = strlen(lit);
    if ((size_t)(end - s) < n || memcmp(s, lit, n) != 0) return NULL;
    return s + n;
}

/* Parses the header dict text [s, end) into a. 0 or -1 with why set. */
static int parse_dict(NpyArray *a, const char *s, const char *end, const char **why) {
    int have_descr = 0, have_order = 0, have_shape = 0;
    if (!(s = expect(s, end, "{"))) return *why = "header does not start with '{'", -1;
    for (;;) {
        const char *t = expect(s, end, "}");
        if (t) {
            s = t;
            break;
        }
        if ((t = expect(s, end, "'descr'"))) {
            if (!(t = expect(t, end, ":"))) return *why = "no ':' after 'descr'", -1;
            const char *v;
            if ((v = expect(t, end, "'<f4'")))
                a->dtype = 'f';
            else if ((v = expect(t, end, "'<i4'")))
                a->dtype = 'i';
            else
                return *why = "dtype is not '<f4' or '<i4'", -1;
            s = v;
            have_descr = 1;
        } else if ((t = expect(s, end, "'fortran_order'"))) {
            if (!(t = expect(t, end, ":"))) return *why = "no ':' after 'fortran_order'", -1;
            if (!(s = expect(t, end, "False"))) return *why = "Fortran order is not supported", -1;
            have_order = 1;
        } else if ((t = expect(s, end, "'shape'"))) {
            if (!(t = expect(t, end, ":")) || !(t = expect(t, end, "(")))
                return *why = "shape is not a tuple", -1;
            a->ndim = 0;
            for (;;) {
                const char *u = expect(t, end, ")");
                if (u) {
                    t = u;
                    break;
                }
                t = skip_ws(t, end);
                if (t >= end || !isdigit((unsigned char)*t)) return *why = "bad shape entry", -1;
                if (a->ndim == NPY_MAX_DIMS) return *why = "too many dimensions", -1;
                int64_t v = 0;
                for (; t < end && isdigit((unsigned char)*t); t++) {
                    if (v > (INT64_MAX - 9) / 10) return *why = "dimension too large", -1;
                    v = v * 10 + (*t - '0');
                }
                a->shape[a->ndim++] = v;
                if ((u = expect(t, end, ",")))
                    t = u;
                else if (!expect(t, end, ")"))
                    return *why = "bad shape tuple", -1;
            }
            s = t;
            have_shape = 1;
        } else {
            return *why = "unexpected key in the header dict", -1;
        }
        const char *c = expect(s, end, ",");
        if (c)
            s = c;
        else if (!expect(s, end, "}"))
            return *why = "missing ',' between header entries", -1;
    }
    if (!have_descr || !have_order || !have_shape)
        return *why = "header lacks 'descr', 'fortran_order' or 'shape'", -1;
    if (skip_ws(s, end) != end) return *why = "junk after the header dict", -1;
    return 0;
}

int npy_read(NpyArray *a, const char *path, Err *e) {
    memset(a, 0, sizeof *a);
    FILE *fp = fopen(path, "rb");
    if (!fp) return err_set(e, "%s: cannot open: %s", path, strerror(errno));
    char *head = NULL;
    const char *why = NULL;
    unsigned char pre[12];
    if (fread(pre, 1, 8, fp) != 8 || memcmp(pre, NPY_MAGIC, 6) != 0) {
        why = "not a .npy file (no \\x93NUMPY magic)";
        goto fail;
    }
    size_t hlen, pre_n;
    if (pre[6] == 1 && pre[7] == 0) {
        if (fread(pre + 8, 1, 2, fp) != 2) goto truncated;
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
        pre_n = 10;
    } else if (pre[6] == 2 && pre[7] == 0) {
        if (fread(pre + 8, 1, 4, fp) != 4) goto truncated;
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        pre_n = 12;
        if (hlen > (1u << 24)) {
            why = "header longer than 16 MB";
            goto fail;
        }
    } else {
        why = "unsupported format version (only 1.0 and 2.0)";
        goto fail;
    }
    head = xmalloc(hlen + 1);
    if (fread(head, 1, hlen, fp) != hlen) goto truncated;
    if (hlen == 0 || head[hlen - 1] != '\n') {
        why = "header does not end with a newline";
        goto fail;
    }
    if ((pre_n + hlen) % 16 != 0) {
        why = "header length breaks the 16-byte alignment rule";
        goto fail;
    }
    if (parse_dict(a, head, head + hlen, &why) < 0) goto fail;
    a->count = 1;
    for (int d = 0; d < a->ndim; d++) {
        if (a->shape[d] > 0 && a->count > (SIZE_MAX / 4) / (size_t)a->shape[d]) {
            why = "array too large";
            goto fail;
        }
        a->count *= (size_t)a->shape[d];
    }
    a->data = xmalloc(MAX(a->count * 4, (size_t)1));
    if (fread(a->data, 4, a->count, fp) != a->count) goto truncated;
    if (fgetc(fp) != EOF) {
        why = "bytes after the array data";
        goto fail;
    }
    fclose(fp);
    free(head);
    return 0;

truncated:
    why = ferror(fp) ? strerror(errno) : "file truncated";
fail:
    fclose(fp);
    free(head);
    free(a->data);
    memset(a, 0, sizeof *a);
    return err_set(e, "%s: %s", path, why);
}

void npy_free(NpyArray *a) {
    free(a->data);
    memset(a, 0, sizeof *a);
}
