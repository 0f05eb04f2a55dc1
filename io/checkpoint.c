/* checkpoint: see checkpoint.h for the format and the contracts. */
#include "checkpoint.h"

#include "atomic_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define MAGIC "SMPICKPT"
#define END_MAGIC "SMPI-END"
#define HEADER_BYTES 32
#define ENTRY_BYTES 72
#define TRAILER_BYTES 12
#define CHUNK (1u << 20)       /* streaming unit; also the SHUFFLE4 block */
#define OUT_CHUNK (256u << 10) /* deflate output buffer */
/* deflate cannot expand more than ~1032:1; a table claiming more is refused
 * before anything is allocated for it. */
#define MAX_RATIO 1100u

/* ---- little-endian fields ------------------------------------------------ */

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* crc32() takes a uInt length: feed large buffers in pieces. */
static uint32_t crc_update(uint32_t crc, const void *p, uint64_t n) {
    const unsigned char *b = p;
    while (n > 0) {
        uInt k = (uInt)MIN(n, (uint64_t)1 << 30);
        crc = (uint32_t)crc32(crc, b, k);
        b += k;
        n -= k;
    }
    return crc;
}

/* Byte-planar transform of one block of m 4-byte elements (and back). */
static void shuffle4(unsigned char *dst, const unsigned char *src, size_t m) {
    for (size_t i = 0; i < m; i++)
        for (int j = 0; j < 4; j++) dst[(size_t)j * m + i] = src[4 * i + (size_t)j];
}
static void unshuffle4(unsigned char *dst, const unsigned char *src, size_t m) {
    for (size_t i = 0; i < m; i++)
        for (int j = 0; j < 4; j++) dst[4 * i + (size_t)j] = src[(size_t)j * m + i];
}

static int name_valid(const char *s, size_t len) {
    if (len == 0 || len > CKPT_NAME_MAX) return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x20 || s[i] > 0x7e) return 0;
    return 1;
}

/* ---- writer -------------------------------------------------------------- */

typedef struct CkptEntry {
    char name[CKPT_NAME_MAX + 1];
    const unsigned char *data;
    size_t n;
    void *owned; /* ckpt_add_copy's copy, else NULL */
    uint32_t flags;
} CkptEntry;

struct CkptWriter {
    CkptEntry *e;
    int n, cap;
};

CkptWriter *ckpt_writer_new(void) { return xcalloc(1, sizeof(CkptWriter)); }

void ckpt_writer_free(CkptWriter *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->e[i].owned);
    free(w->e);
    free(w);
}

static CkptEntry *writer_push(CkptWriter *w, const char *name, const void *data, size_t n) {
    ASSERT(name && name_valid(name, strlen(name)));
    ASSERT(data || n == 0);
    ASSERT(w->n < CKPT_MAX_SECTIONS);
    for (int i = 0; i < w->n; i++) ASSERT(strcmp(w->e[i].name, name) != 0);
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->e = xrealloc(w->e, (size_t)w->cap * sizeof *w->e);
    }
    CkptEntry *en = &w->e[w->n++];
    memset(en, 0, sizeof *en);
    strcpy(en->name, name);
    en->data = data;
    en->n = n;
    return en;
}

void ckpt_add(CkptWriter *w, const char *name, const void *data, size_t n) { writer_push(w, name, data, n); }

void ckpt_add_copy(CkptWriter *w, const char *name, const void *data, size_t n) {
    void *copy = xmalloc(n);
    if (n) memcpy(copy, data, n);
    writer_push(w, name, copy, n)->owned = copy;
}

void ckpt_add_f32(CkptWriter *w, const char *name, const float *data, size_t count) {
    ASSERT(count <= SIZE_MAX / 4);
    writer_push(w, name, data, count * 4)->flags = CKPT_FLAG_SHUFFLE4;
}

/* Everything ckpt_write writes goes through a Sink: the temporary file of
 * the durable-write primitive (io/atomic_file) and the CRC of the bytes
 * appended. On failure e says why. */
typedef struct Sink {
    AtomicFile f;
    uint32_t crc; /* of the bytes appended (not of those written at an offset) */
    Err *e;
} Sink;

/* at < 0: append (and fold into the running CRC); else write at offset at. */
static int sink_put(Sink *s, const void *p, size_t n, int64_t at) {
    if (at >= 0) return atomic_file_pwrite(&s->f, p, n, (uint64_t)at, s->e);
    if (atomic_file_write(&s->f, p, n, s->e)) return -1;
    s->crc = crc_update(s->crc, p, n);
    return 0;
}

/* Deflates one section into the sink and fills its table entry t; outbuf
 * holds out_n bytes. A small section gets a window and hash table no larger
 * than it needs (sections of 32 KB and more: zlib's defaults, 15 and 8): the
 * same matches, a fraction of the memory to allocate and clear. */
static int write_section(Sink *s, const CkptEntry *en, unsigned char *outbuf, size_t out_n,
                         unsigned char *shuf, unsigned char *t, uint64_t off, uint64_t *stored) {
    int shuffle = (en->flags & CKPT_FLAG_SHUFFLE4) != 0;
    int wbits = 9; /* deflate's smallest window; a match reaches 262 bytes less than the window */
    while (wbits < 15 && ((size_t)1 << wbits) < en->n + 262) wbits++;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 1, Z_DEFLATED, wbits, MAX(1, wbits - 7),
                     shuffle ? Z_HUFFMAN_ONLY : Z_DEFAULT_STRATEGY) != Z_OK)
        FATAL("deflateInit2 failed: out of memory?");
    uint32_t cr = 0, cs = 0;
    size_t pos = 0;
    int rc = 0;
    *stored = 0;
    do {
        size_t k = MIN(en->n - pos, (size_t)CHUNK);
        const unsigned char *in = en->data + pos;
        if (k) cr = crc_update(cr, in, k);
        if (shuffle && k) {
            shuffle4(shuf, in, k / 4);
            in = shuf;
        }
        pos += k;
        int flush = pos == en->n ? Z_FINISH : Z_NO_FLUSH, zr;
        zs.next_in = (Bytef *)(uintptr_t)in;
        zs.avail_in = (uInt)k;
        do {
            zs.next_out = outbuf;
            zs.avail_out = (uInt)out_n;
            zr = deflate(&zs, flush);
            ASSERT(zr != Z_STREAM_ERROR);
            size_t have = out_n - zs.avail_out;
            cs = crc_update(cs, outbuf, have);
            *stored += have;
            if (have && sink_put(s, outbuf, have, -1) < 0) rc = -1;
        } while (rc == 0 && (zs.avail_out == 0 || (flush == Z_FINISH && zr != Z_STREAM_END)));
    } while (rc == 0 && pos < en->n);
    deflateEnd(&zs);
    memcpy(t, en->name, strlen(en->name)); /* the rest is already NUL */
    put_u64(t + 32, off);
    put_u64(t + 40, *stored);
    put_u64(t + 48, (uint64_t)en->n);
    put_u32(t + 56, cr);
    put_u32(t + 60, cs);
    put_u32(t + 64, en->flags);
    return rc;
}

int ckpt_write(CkptWriter *w, const char *path, Err *e) {
    Sink s = {.crc = 0, .e = e};
    if (atomic_file_open(&s.f, path, e)) return -1;
    size_t head_n = HEADER_BYTES + (size_t)w->n * ENTRY_BYTES;
    unsigned char *head = xcalloc(1, head_n);
    size_t shuf_n = 0, out_n = 64; /* the buffers only as large as needed */
    for (int i = 0; i < w->n; i++) {
        if (w->e[i].flags & CKPT_FLAG_SHUFFLE4) shuf_n = MAX(shuf_n, MIN(w->e[i].n, (size_t)CHUNK));
        out_n =
            MAX(out_n, MIN((size_t)compressBound((uLong)MIN(w->e[i].n, (size_t)CHUNK)), (size_t)OUT_CHUNK));
    }
    unsigned char *outbuf = xmalloc(out_n), *shuf = shuf_n ? xmalloc(shuf_n) : NULL;
    int rc = -1;
    /* Placeholder header and table (rewritten at the end): a full disk shows
     * up now rather than after the payloads. Not part of s.crc. */
    if (atomic_file_write(&s.f, head, head_n, e) < 0) goto fail;
    uint64_t off = head_n;
    for (int i = 0; i < w->n; i++) {
        uint64_t stored;
        if (write_section(&s, &w->e[i], outbuf, out_n, shuf, head + HEADER_BYTES + (size_t)i * ENTRY_BYTES,
                          off, &stored) < 0)
            goto fail;
        off += stored;
    }
    if (sink_put(&s, END_MAGIC, 8, -1) < 0) goto fail;
    memcpy(head, MAGIC, 8);
    put_u32(head + 8, CKPT_VERSION);
    put_u32(head + 12, (uint32_t)w->n);
    put_u64(head + 16, off + TRAILER_BYTES);
    put_u32(head + 24, crc_update(0, head + HEADER_BYTES, head_n - HEADER_BYTES));
    put_u32(head + 28, crc_update(0, head, 28));
    uint32_t file_crc =
        (uint32_t)crc32_combine(crc_update(0, head, head_n), s.crc, (z_off_t)(off + 8 - head_n));
    unsigned char tail[4];
    put_u32(tail, file_crc);
    if (sink_put(&s, tail, 4, -1) < 0) goto fail;
    if (sink_put(&s, head, head_n, 0) < 0) goto fail;
    rc = atomic_file_commit(&s.f, e); /* fsync, rename, fsync of the directory */
fail:
    if (rc && s.f.fd >= 0) atomic_file_abort(&s.f);
    free(head);
    free(outbuf);
    free(shuf);
    return rc;
}

/* ---- reader -------------------------------------------------------------- */

typedef struct CkptSection {
    char name[CKPT_NAME_MAX + 1];
    unsigned char *data; /* raw bytes, NULL until read */
    uint64_t offset, stored, raw;
    uint32_t crc_raw, crc_stored, flags;
    char fault[400]; /* empty if the section verified */
} CkptSection;

struct Ckpt {
    char *path;
    uint64_t file_size;
    int n;
    CkptSection *s;
};

void ckpt_free(Ckpt *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) free(c->s[i].data);
    free(c->s);
    free(c->path);
    free(c);
}

typedef struct Source {
    int fd;
    const char *path;
    uint64_t pos, size;
    uint32_t crc; /* of every byte read so far */
} Source;

static int src_read(Source *r, void *buf, size_t n, Err *e) {
    unsigned char *p = buf;
    size_t left = n;
    while (left > 0) {
        ssize_t k = read(r->fd, p, left);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0)
            return err_set(e, "%s: read error at byte %llu: %s", r->path, (unsigned long long)r->pos,
                           strerror(errno));
        if (k == 0)
            return err_set(
                e,
                "%s: unexpected end of file at byte %llu of %llu - truncated while being read? use an "
                "older checkpoint",
                r->path, (unsigned long long)r->pos, (unsigned long long)r->size);
        p += k;
        left -= (size_t)k;
        r->pos += (uint64_t)k;
    }
    r->crc = crc_update(r->crc, buf, n);
    return 0;
}

#define DAMAGED " - the file is damaged; use an older checkpoint"

/* Reads, checks and decompresses section x (the source is at its offset).
 * A fault of the section's own bytes goes to x->fault and returns 0, so the
 * caller may go on; an I/O error or end of file returns -1. */
static int read_section(Source *r, CkptSection *x, unsigned char *inbuf, unsigned char *shuf, Err *e) {
    x->data = malloc(x->raw ? x->raw : 1);
    if (!x->data)
        return err_set(e, "%s: section '%s': cannot allocate %llu bytes", r->path, x->name,
                       (unsigned long long)x->raw);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit(&zs) != Z_OK) FATAL("inflateInit failed: out of memory?");
    uint32_t cs = 0;
    uint64_t left = x->stored, done = 0;
    int zr = Z_OK;
    const char *zwhy = NULL;
    unsigned char scratch;
    while (left > 0) {
        size_t k = (size_t)MIN(left, (uint64_t)CHUNK);
        if (src_read(r, inbuf, k, e) < 0) {
            inflateEnd(&zs);
            return -1;
        }
        cs = crc_update(cs, inbuf, k);
        left -= k;
        if (zwhy) continue; /* keep reading: the CRC verdict comes first */
        if (zr == Z_STREAM_END) {
            zwhy = "data after the end of the zlib stream";
            continue;
        }
        zs.next_in = inbuf;
        zs.avail_in = (uInt)k;
        for (;;) {
            uint64_t room = x->raw - done;
            /* With no room left, any output lands in scratch: too much data. */
            zs.next_out = room ? x->data + done : &scratch;
            zs.avail_out = room ? (uInt)MIN(room, (uint64_t)1 << 30) : 1;
            uInt before = zs.avail_out;
            zr = inflate(&zs, Z_NO_FLUSH);
            if (room) done += before - zs.avail_out;
            if (!room && zs.avail_out == 0) {
                zwhy = "decompresses to more bytes than the table says";
                break;
            }
            if (zr == Z_STREAM_END) {
                if (zs.avail_in > 0) zwhy = "data after the end of the zlib stream";
                break;
            }
            if (zr == Z_BUF_ERROR && zs.avail_in == 0) { /* needs the next chunk */
                zr = Z_OK;
                break;
            }
            if (zr != Z_OK) {
                zwhy = zs.msg ? zs.msg : "invalid zlib stream";
                break;
            }
            if (zs.avail_in == 0 && zs.avail_out > 0) break;
        }
    }
    inflateEnd(&zs);
    if (!zwhy && zr != Z_STREAM_END) zwhy = "the zlib stream ends early";
    if (!zwhy && done != x->raw) zwhy = "decompresses to fewer bytes than the table says";
    if (cs != x->crc_stored) {
        snprintf(x->fault, sizeof x->fault,
                 "section '%s' CRC mismatch of its compressed bytes (stored 0x%08x, "
                 "computed 0x%08x)" DAMAGED,
                 x->name, x->crc_stored, cs);
        return 0;
    }
    if (zwhy) {
        snprintf(x->fault, sizeof x->fault, "section '%s' does not decompress (%s)" DAMAGED, x->name, zwhy);
        return 0;
    }
    if (x->flags & CKPT_FLAG_SHUFFLE4) {
        for (uint64_t at = 0; at < x->raw; at += CHUNK) {
            size_t b = (size_t)MIN((uint64_t)CHUNK, x->raw - at);
            memcpy(shuf, x->data + at, b);
            unshuffle4(x->data + at, shuf, b / 4);
        }
    }
    uint32_t cr = crc_update(0, x->data, x->raw);
    if (cr != x->crc_raw)
        snprintf(x->fault, sizeof x->fault,
                 "section '%s' CRC mismatch (stored 0x%08x, computed 0x%08x)" DAMAGED, x->name, x->crc_raw,
                 cr);
    return 0;
}

/* Reads section x's stored bytes without inflating them (its raw size was
 * refused): the whole-file CRC still covers them. -1 only on I/O errors. */
static int skip_section(Source *r, const CkptSection *x, unsigned char *inbuf, Err *e) {
    for (uint64_t left = x->stored; left > 0;) {
        size_t k = (size_t)MIN(left, (uint64_t)CHUNK);
        if (src_read(r, inbuf, k, e) < 0) return -1;
        left -= k;
    }
    return 0;
}

/* Parses and checks the table entries (their CRC already matched). */
static int check_table(Ckpt *c, const unsigned char *tab, Err *e) {
    uint64_t off = HEADER_BYTES + (uint64_t)c->n * ENTRY_BYTES;
    for (int i = 0; i < c->n; i++) {
        const unsigned char *t = tab + (size_t)i * ENTRY_BYTES;
        CkptSection *x = &c->s[i];
        size_t len = strnlen((const char *)t, 32);
        for (size_t j = len; j < 32; j++)
            if (t[j]) len = 99; /* bytes after the NUL */
        if (!name_valid((const char *)t, len))
            return err_set(
                e,
                "%s: section %d has an invalid name (want 1..%d printable ASCII chars, NUL-padded)" DAMAGED,
                c->path, i, CKPT_NAME_MAX);
        memcpy(x->name, t, len);
        x->name[len] = 0;
        for (int j = 0; j < i; j++)
            if (!strcmp(c->s[j].name, x->name))
                return err_set(e, "%s: section name '%s' appears twice" DAMAGED, c->path, x->name);
        x->offset = get_u64(t + 32);
        x->stored = get_u64(t + 40);
        x->raw = get_u64(t + 48);
        x->crc_raw = get_u32(t + 56);
        x->crc_stored = get_u32(t + 60);
        x->flags = get_u32(t + 64);
        if (x->flags & ~CKPT_FLAG_SHUFFLE4 || get_u32(t + 68))
            return err_set(e,
                           "%s: section '%s' has unknown flags 0x%08x/0x%08x (written by a newer siamese?)",
                           c->path, x->name, x->flags, get_u32(t + 68));
        if ((x->flags & CKPT_FLAG_SHUFFLE4) && x->raw % 4)
            return err_set(e, "%s: section '%s' is 4-byte shuffled but has %llu bytes" DAMAGED, c->path,
                           x->name, (unsigned long long)x->raw);
        if (x->offset != off || x->stored > c->file_size || off + x->stored > c->file_size - TRAILER_BYTES)
            return err_set(
                e,
                "%s: section '%s' offset %llu + %llu bytes does not fit the layout (expected offset "
                "%llu, file %llu bytes)" DAMAGED,
                c->path, x->name, (unsigned long long)x->offset, (unsigned long long)x->stored,
                (unsigned long long)off, (unsigned long long)c->file_size);
        if (x->raw / MAX_RATIO > x->stored || x->raw > SIZE_MAX / 2)
            return err_set(e,
                           "%s: section '%s' claims %llu raw bytes from %llu compressed: impossible" DAMAGED,
                           c->path, x->name, (unsigned long long)x->raw, (unsigned long long)x->stored);
        off += x->stored;
    }
    if (off + TRAILER_BYTES != c->file_size)
        return err_set(e, "%s: sections end at byte %llu but the trailer should start at %llu" DAMAGED,
                       c->path, (unsigned long long)off, (unsigned long long)(c->file_size - TRAILER_BYTES));
    return 0;
}

/* err_set, then the one cleanup path of ckpt_load. */
#define BAIL(...)                                                                                            \
    do {                                                                                                     \
        err_set(e, __VA_ARGS__);                                                                             \
        goto done;                                                                                           \
    } while (0)

/* The reader behind ckpt_read and ckpt_print. tolerant: a section fault is
 * recorded in the section and reading goes on (the first one is returned in
 * e); header, table and I/O faults always stop it. *out is set whenever the
 * table was read (also on -1 in tolerant mode), else NULL. */
static int ckpt_load(Ckpt **out, const char *path, int tolerant, const CkptBounds *b, Err *e) {
    *out = NULL;
    Source r = {.fd = -1, .path = path, .crc = 0};
    Ckpt *c = NULL;
    unsigned char hdr[HEADER_BYTES], *tab = NULL, *inbuf = NULL, *shuf = NULL;
    int rc = -1, faults = 0;
    struct stat st;

    r.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r.fd < 0) return err_set(e, "%s: cannot open checkpoint: %s", path, strerror(errno));
    if (fstat(r.fd, &st) < 0) BAIL("%s: cannot stat: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) BAIL("%s: is a directory, not a checkpoint file", path);
    if (!S_ISREG(st.st_mode)) BAIL("%s: not a regular file, so not a checkpoint", path);
    r.size = (uint64_t)st.st_size;
    if (r.size < HEADER_BYTES + TRAILER_BYTES)
        BAIL("%s: only %llu bytes, less than the smallest checkpoint (%d bytes) - truncated or not a "
             "checkpoint; use an older one",
             path, (unsigned long long)r.size, HEADER_BYTES + TRAILER_BYTES);
    if (src_read(&r, hdr, HEADER_BYTES, e) < 0) goto done;
    if (memcmp(hdr, MAGIC, 8) != 0)
        BAIL("%s: not a siamese checkpoint (the file does not start with \"" MAGIC "\")", path);
    uint32_t hcrc = crc_update(0, hdr, 28);
    if (hcrc != get_u32(hdr + 28))
        BAIL("%s: header CRC mismatch (stored 0x%08x, computed 0x%08x)" DAMAGED, path, get_u32(hdr + 28),
             hcrc);
    uint32_t version = get_u32(hdr + 8), n = get_u32(hdr + 12);
    if (version != CKPT_VERSION)
        BAIL("%s: checkpoint format version %u; this build of siamese reads version %d only%s", path, version,
             CKPT_VERSION, version > CKPT_VERSION ? " - use a newer siamese" : "");
    uint64_t fsize = get_u64(hdr + 16);
    if (fsize != r.size)
        BAIL("%s: the file has %llu bytes but its header says %llu - %s; use an older checkpoint", path,
             (unsigned long long)r.size, (unsigned long long)fsize,
             r.size < fsize ? "truncated (incomplete write or copy)" : "extra bytes at the end");
    if (n > CKPT_MAX_SECTIONS || HEADER_BYTES + (uint64_t)n * ENTRY_BYTES + TRAILER_BYTES > fsize)
        BAIL("%s: %u sections do not fit in %llu bytes" DAMAGED, path, n, (unsigned long long)fsize);
    c = xcalloc(1, sizeof *c);
    c->path = xstrdup(path);
    c->file_size = fsize;
    c->n = (int)n;
    c->s = xcalloc(n ? n : 1, sizeof *c->s);
    tab = xmalloc((size_t)n * ENTRY_BYTES);
    if (src_read(&r, tab, (size_t)n * ENTRY_BYTES, e) < 0) goto done;
    uint32_t tcrc = crc_update(0, tab, (uint64_t)n * ENTRY_BYTES);
    if (tcrc != get_u32(hdr + 24))
        BAIL("%s: section table CRC mismatch (stored 0x%08x, computed 0x%08x)" DAMAGED, path,
             get_u32(hdr + 24), tcrc);
    if (check_table(c, tab, e) < 0) goto done;
    if (tolerant) *out = c;

    uint64_t in_n = 1, shuf_n = 0; /* buffers only as large as needed */
    for (int i = 0; i < c->n; i++) {
        in_n = MAX(in_n, MIN(c->s[i].stored, (uint64_t)CHUNK));
        if (c->s[i].flags & CKPT_FLAG_SHUFFLE4) shuf_n = MAX(shuf_n, MIN(c->s[i].raw, (uint64_t)CHUNK));
    }
    inbuf = xmalloc((size_t)in_n);
    shuf = shuf_n ? xmalloc((size_t)shuf_n) : NULL;
    for (int i = 0; i < c->n; i++) {
        CkptSection *x = &c->s[i];
        char what[160] = "";
        uint64_t max = b && b->max_raw ? b->max_raw(c, i, what, sizeof what, b->ctx) : UINT64_MAX;
        if (x->raw > max) {
            snprintf(
                x->fault, sizeof x->fault,
                "section '%s' claims %llu bytes once inflated, but %s %llu - the file is damaged or was not "
                "written by siamese train",
                x->name, (unsigned long long)x->raw, what, (unsigned long long)max);
            if (!faults++) err_set(e, "%s: %s", path, x->fault);
            if (!tolerant || skip_section(&r, x, inbuf, e) < 0) {
                for (int j = i + 1; j < c->n; j++)
                    snprintf(c->s[j].fault, sizeof c->s[j].fault,
                             "not checked: an earlier section was refused");
                goto done;
            }
            continue;
        }
        if (read_section(&r, x, inbuf, shuf, e) < 0) {
            for (int j = i; j < c->n; j++)
                snprintf(c->s[j].fault, sizeof c->s[j].fault, "not checked: read failed");
            goto done;
        }
        if (c->s[i].fault[0]) {
            if (!faults++) err_set(e, "%s: %s", path, c->s[i].fault);
            if (!tolerant) goto done;
        }
    }
    unsigned char tail[TRAILER_BYTES];
    uint32_t before_crc;
    if (src_read(&r, tail, 8, e) < 0) goto done;
    before_crc = r.crc;
    if (src_read(&r, tail + 8, 4, e) < 0) goto done;
    if (memcmp(tail, END_MAGIC, 8) != 0) {
        if (!faults++) err_set(e, "%s: end marker \"" END_MAGIC "\" missing" DAMAGED, path);
    } else if (before_crc != get_u32(tail + 8)) {
        if (!faults++)
            err_set(e, "%s: whole-file CRC mismatch (stored 0x%08x, computed 0x%08x)" DAMAGED, path,
                    get_u32(tail + 8), before_crc);
    }
    if (faults) goto done;
    *out = c;
    rc = 0;
done:
    if (rc < 0 && !(tolerant && *out == c)) ckpt_free(c);
    free(tab);
    free(inbuf);
    free(shuf);
    close(r.fd);
    return rc;
}

int ckpt_read(Ckpt **out, const char *path, const CkptBounds *b, Err *e) {
    return ckpt_load(out, path, 0, b, e);
}

int ckpt_verify(const char *path, const CkptBounds *b, Err *e) {
    Ckpt *c;
    if (ckpt_read(&c, path, b, e) < 0) return -1;
    ckpt_free(c);
    return 0;
}

const void *ckpt_get(const Ckpt *c, const char *name, size_t *n) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->s[i].name, name)) {
            if (!c->s[i].data || c->s[i].fault[0]) return NULL; /* not read (yet), or damaged */
            if (n) *n = (size_t)c->s[i].raw;
            return c->s[i].data;
        }
    return NULL;
}

const void *ckpt_require(const Ckpt *c, const char *name, size_t want, Err *e) {
    size_t n;
    const void *p = ckpt_get(c, name, &n);
    if (!p) {
        err_set(e, "%s: no section '%s' - written by an older siamese, or not a training checkpoint?",
                c->path, name);
        return NULL;
    }
    if (want != CKPT_ANY_SIZE && n != want) {
        err_set(e, "%s: section '%s' has %zu bytes, expected %zu - does the config match the checkpoint?",
                c->path, name, n, want);
        return NULL;
    }
    return p;
}

int ckpt_count(const Ckpt *c) { return c->n; }
const char *ckpt_name(const Ckpt *c, int i) {
    ASSERT(i >= 0 && i < c->n);
    return c->s[i].name;
}
size_t ckpt_size(const Ckpt *c, int i) {
    ASSERT(i >= 0 && i < c->n);
    return (size_t)c->s[i].raw;
}
uint64_t ckpt_stored_size(const Ckpt *c, int i) {
    ASSERT(i >= 0 && i < c->n);
    return c->s[i].stored;
}
const char *ckpt_path(const Ckpt *c) { return c->path; }

int ckpt_print(const char *path, FILE *out, const CkptBounds *b, Err *e) {
    Ckpt *c;
    Err why;
    int rc = ckpt_load(&c, path, 1, b, &why);
    if (rc < 0) err_set(e, "%s", why.msg);
    if (!c) return -1;
    fprintf(out, "checkpoint %s: format version %d, %llu bytes, %d sections%s\n", path, CKPT_VERSION,
            (unsigned long long)c->file_size, c->n, rc < 0 ? " - DAMAGED" : ", all CRCs ok");
    fprintf(out, "  %-31s %14s %14s %6s %-4s %s\n", "section", "raw bytes", "stored bytes", "ratio", "enc",
            "check");
    int section_faults = 0;
    for (int i = 0; i < c->n; i++) {
        const CkptSection *x = &c->s[i];
        section_faults += x->fault[0] != 0;
        fprintf(out, "  %-31s %14llu %14llu %6.3f %-4s %s%s\n", x->name, (unsigned long long)x->raw,
                (unsigned long long)x->stored, x->raw ? (double)x->stored / (double)x->raw : 0.0,
                x->flags & CKPT_FLAG_SHUFFLE4 ? "f32" : "-", x->fault[0] ? "DAMAGED: " : "ok", x->fault);
    }
    if (rc < 0 && !section_faults) fprintf(out, "  DAMAGED: %s\n", why.msg);
    for (int i = 0; i < c->n; i++) {
        const CkptSection *x = &c->s[i];
        if (x->fault[0] || (strcmp(x->name, "config") != 0 && strncmp(x->name, "text:", 5) != 0)) continue;
        fprintf(out, "%s:\n", x->name);
        for (uint64_t j = 0; j < x->raw; j++) {
            int ch = x->data[j];
            if ((j == 0 || x->data[j - 1] == '\n') && ch != '\n') fputs("    ", out);
            fputc(ch == '\n' || ch == '\t' || (ch >= 0x20 && ch < 0x7f) || ch >= 0x80 ? ch : '?', out);
        }
        if (x->raw && x->data[x->raw - 1] != '\n') fputc('\n', out);
    }
    ckpt_free(c);
    return rc;
}

/* ---- run directories ----------------------------------------------------- */

int ckpt_path_for_step(char *out, size_t n, const char *dir, uint64_t step) {
    int k = snprintf(out, n, "%s/ckpt-%010llu.smpi", dir, (unsigned long long)step);
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

/* "ckpt-<10..20 digits>.smpi" -> 1 and *step; with ".tmp-<pid>" after it -> 2
 * and *pid; anything else -> 0. */
static int parse_name(const char *s, uint64_t *step, long *pid) {
    if (strncmp(s, "ckpt-", 5) != 0) return 0;
    const char *d = s + 5;
    size_t nd = strspn(d, "0123456789");
    if (nd < 10 || nd > 20 || strncmp(d + nd, ".smpi", 5) != 0) return 0;
    char digits[21];
    memcpy(digits, d, nd);
    digits[nd] = 0;
    if (parse_u64(digits, step) < 0) return 0;
    const char *rest = d + nd + 5;
    if (!*rest) return 1;
    if (strncmp(rest, ".tmp-", 5) != 0 || !rest[5] || strspn(rest + 5, "0123456789") != strlen(rest + 5))
        return 0;
    return parse_long(rest + 5, 0, 0x7fffffff, pid) == 0 ? 2 : 0;
}

typedef struct CkptFile {
    uint64_t step;
    char name[64];
} CkptFile;

static int by_step_desc(const void *a, const void *b) {
    const CkptFile *x = a, *y = b;
    if (x->step != y->step) return x->step < y->step ? 1 : -1;
    return strcmp(y->name, x->name);
}

/* Lists dir's checkpoints, newest first. If stale_tmp, deletes stale temp
 * files on the way (their failures go to *unlink_err). 1 = no such dir. */
static int list_dir(const char *dir, CkptFile **files, int *count, int stale_tmp, Err *unlink_err,
                    int *unlink_fail, Err *e) {
    *files = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return 1;
        return err_set(e, "%s: cannot list the checkpoint directory: %s", dir, strerror(errno));
    }
    int cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t step;
        long pid;
        int kind = parse_name(de->d_name, &step, &pid);
        if (kind == 1 && strlen(de->d_name) < sizeof((*files)->name)) {
            if (*count == cap) {
                cap = cap ? 2 * cap : 16;
                *files = xrealloc(*files, (size_t)cap * sizeof **files);
            }
            (*files)[*count].step = step;
            strcpy((*files)[*count].name, de->d_name);
            (*count)++;
        } else if (kind == 2 && stale_tmp) {
            char p[4096];
            struct stat st;
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            int alive = pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH);
            if (alive || stat(p, &st) < 0 || difftime(time(NULL), st.st_mtime) < CKPT_STALE_TMP_SECONDS)
                continue;
            if (unlink(p) < 0 && errno != ENOENT && !(*unlink_fail)++)
                err_set(unlink_err, "%s: cannot delete stale temporary file: %s", p, strerror(errno));
        }
    }
    closedir(d);
    if (*count > 1) qsort(*files, (size_t)*count, sizeof **files, by_step_desc);
    return 0;
}

int ckpt_rotate(const char *dir, int keep, Err *e) {
    CkptFile *f;
    int n, fails = 0;
    Err ue;
    int rc = list_dir(dir, &f, &n, 1, &ue, &fails, e);
    if (rc < 0) return -1;
    for (int i = keep > 0 ? keep : n; i < n; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, f[i].name);
        if (unlink(p) < 0 && errno != ENOENT && !fails++)
            err_set(&ue, "%s: cannot delete old checkpoint: %s", p, strerror(errno));
    }
    free(f);
    if (fails) return err_set(e, "%s (%d file%s could not be deleted)", ue.msg, fails, fails > 1 ? "s" : "");
    return 0;
}

int ckpt_read_latest(Ckpt **c, char *out, size_t n, const char *dir, const CkptBounds *b, Err *e) {
    CkptFile *f;
    int count, unused = 0;
    *c = NULL;
    int rc = list_dir(dir, &f, &count, 0, NULL, &unused, e);
    if (rc != 0) return rc;
    if (count == 0) {
        free(f);
        return 1;
    }
    rc = -1;
    int i;
    for (i = 0; i < count; i++) {
        char p[4096];
        Err why;
        snprintf(p, sizeof p, "%s/%s", dir, f[i].name);
        if (ckpt_read(c, p, b, &why) < 0) {
            util_warn("skipping checkpoint: %s", why.msg);
            continue;
        }
        if (snprintf(out, n, "%s", p) >= (int)n) {
            ckpt_free(*c);
            *c = NULL;
            err_set(e, "%s: path longer than the %zu bytes given for it", p, n);
        } else {
            rc = 0;
        }
        break;
    }
    if (i == count)
        err_set(
            e,
            "%s: none of its %d checkpoints verifies (newest: %s; see the warnings above) - move them away "
            "to start from scratch",
            dir, count, f[0].name);
    free(f);
    return rc;
}

int ckpt_find_latest(char *out, size_t n, const char *dir, const CkptBounds *b, Err *e) {
    Ckpt *c;
    int rc = ckpt_read_latest(&c, out, n, dir, b, e);
    ckpt_free(c);
    return rc;
}
