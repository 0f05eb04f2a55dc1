/* dataset_record: decodes and validates one record of the samples
 * sub-database (its 24-byte header and payload, laid out at the top of
 * dataset.c) into pixels, label and mask. A pure function of the record's
 * bytes and of what the dataset's meta and class index say, so records can
 * be decoded, tested and fuzzed (fuzz/fuzz_record.c) without LMDB. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dataset_internal.h"

struct DsDecoder {
    char *path;
    uint32_t channels, height, width, classes;
    int compressed, has_masks;
    size_t npix, raw_len; /* C*H*W; payload bytes once inflated */
    z_stream zs;
    int zinit;
    uint8_t *scratch; /* raw_len bytes, for inflating */
};

DsDecoder *ds_decoder_new(const DsMeta *m, const char *path) {
    ASSERT(m->channels >= 1 && m->height >= 1 && m->width >= 1 && m->classes >= 1);
    DsDecoder *d = xcalloc(1, sizeof *d);
    d->path = xstrdup(path);
    d->channels = m->channels, d->height = m->height, d->width = m->width, d->classes = m->classes;
    d->compressed = m->compressed, d->has_masks = m->has_masks;
    d->npix = (size_t)m->channels * m->height * m->width;
    d->raw_len = d->npix + (m->has_masks ? (size_t)m->height * m->width : 0);
    d->scratch = xmalloc(d->raw_len);
    return d;
}

void ds_decoder_free(DsDecoder *d) {
    if (!d) return;
    if (d->zinit) inflateEnd(&d->zs);
    free(d->scratch);
    free(d->path);
    free(d);
}

#define REC_FAIL(...) err_set(e, "%s: samples key %" PRIu64 ": " __VA_ARGS__)

/* Inflates the raw deflate payload into d->scratch (exactly raw_len bytes). */
static int inflate_payload(DsDecoder *d, uint64_t id, const uint8_t *in, size_t n, Err *e) {
    const char *p = d->path;
    size_t raw = d->raw_len;
    if (!d->zinit) {
        memset(&d->zs, 0, sizeof d->zs);
        if (inflateInit2(&d->zs, -15) != Z_OK) return REC_FAIL("zlib inflateInit failed", p, id);
        d->zinit = 1;
    } else {
        inflateReset(&d->zs);
    }
    d->zs.next_in = (Bytef *)in;
    d->zs.avail_in = (uInt)n;
    d->zs.next_out = d->scratch;
    d->zs.avail_out = (uInt)raw;
    int rc = inflate(&d->zs, Z_FINISH);
    if (rc == Z_STREAM_END && d->zs.avail_in == 0 && d->zs.total_out == raw) return 0;
    if (rc == Z_STREAM_END && d->zs.avail_in)
        return REC_FAIL("%u stray bytes after the zlib stream — " RECORD_HINT, p, id, d->zs.avail_in);
    if (rc == Z_STREAM_END)
        return REC_FAIL("zlib data inflates to %lu bytes, expected %zu — " RECORD_HINT, p, id,
                        d->zs.total_out, raw);
    if (rc == Z_DATA_ERROR)
        return REC_FAIL("corrupt zlib data (%s) — " RECORD_HINT, p, id, d->zs.msg ? d->zs.msg : "bad stream");
    if (d->zs.avail_out == 0)
        return REC_FAIL("zlib data inflates to more than %zu bytes — " RECORD_HINT, p, id, raw);
    return REC_FAIL("zlib data truncated (%zu bytes inflate to %lu of %zu) — " RECORD_HINT, p, id, n,
                    d->zs.total_out, raw);
}

int ds_decode(DsDecoder *d, uint64_t id, const uint8_t *b, size_t n, int32_t want_label, uint8_t *pixels,
              int32_t *label, uint8_t *mask, Err *e) {
    const char *p = d->path;
    if (n < DS_REC_HEADER)
        return REC_FAIL("%zu bytes, shorter than the %d-byte record header — " RECORD_HINT, p, id, n,
                        DS_REC_HEADER);
    unsigned flags = b[1];
    uint32_t lab = ds_get_le32(b + 8), raw = ds_get_le32(b + 12), stored = ds_get_le32(b + 16);
    unsigned want_flags = d->has_masks ? DS_REC_MASK : 0;
    if (b[0] != DS_REC_VERSION)
        return REC_FAIL("record version %u, expected %d — " RECORD_HINT, p, id, b[0], DS_REC_VERSION);
    if ((flags & ~DS_REC_ZLIB) != want_flags || ((flags & DS_REC_ZLIB) && !d->compressed))
        return REC_FAIL("flags 0x%02x do not fit the dataset (compressed %d, masks %d) — " RECORD_HINT, p, id,
                        flags, d->compressed, d->has_masks);
    if (ds_get_le16(b + 2) != d->channels || ds_get_le16(b + 4) != d->height ||
        ds_get_le16(b + 6) != d->width)
        return REC_FAIL("shape %ux%ux%u, expected %ux%ux%u — " RECORD_HINT, p, id, ds_get_le16(b + 2),
                        ds_get_le16(b + 4), ds_get_le16(b + 6), d->channels, d->height, d->width);
    if (lab >= d->classes)
        return REC_FAIL("label %d out of range (classes %u) — " RECORD_HINT, p, id, (int32_t)lab, d->classes);
    if (want_label >= 0 && (int32_t)lab != want_label)
        return REC_FAIL("label %u, but by_class files it under %d — " RECORD_HINT, p, id, lab, want_label);
    if (raw != d->raw_len)
        return REC_FAIL("raw length %u, expected %zu (%ux%ux%u%s) — " RECORD_HINT, p, id, raw, d->raw_len,
                        d->channels, d->height, d->width, d->has_masks ? " + mask" : "");
    if (stored != n - DS_REC_HEADER || (!(flags & DS_REC_ZLIB) && stored != raw)) {
        if (!(flags & DS_REC_ZLIB))
            return REC_FAIL("%zu bytes, expected %zu (%ux%ux%u%s + %d-byte header) — " RECORD_HINT, p, id, n,
                            d->raw_len + DS_REC_HEADER, d->channels, d->height, d->width,
                            d->has_masks ? " + mask" : "", DS_REC_HEADER);
        return REC_FAIL(
            "%zu bytes, header says %u payload bytes + %d-byte header (truncated zlib data?) — " RECORD_HINT,
            p, id, n, stored, DS_REC_HEADER);
    }
    const uint8_t *src = b + DS_REC_HEADER;
    if (flags & DS_REC_ZLIB) {
        if (inflate_payload(d, id, src, stored, e)) return -1;
        src = d->scratch;
    }
    uint32_t crc = (uint32_t)crc32(0L, src, (uInt)raw);
    if (crc != ds_get_le32(b + 20))
        return REC_FAIL("CRC-32 mismatch (stored %08x, pixels give %08x): corrupted record — " RECORD_HINT, p,
                        id, ds_get_le32(b + 20), crc);
    memcpy(pixels, src, d->npix);
    if (d->has_masks == DS_MASKS_CLASS) {
        const uint8_t *mk = src + d->npix;
        for (size_t i = 0; i < raw - d->npix; i++)
            if (mk[i] > d->classes)
                return REC_FAIL("class mask value %u at pixel %zu is above classes (%u): a class mask holds 0 "
                                "(background) or class + 1 — " RECORD_HINT,
                                p, id, mk[i], i, d->classes);
    }
    if (mask && d->has_masks) memcpy(mask, src + d->npix, raw - d->npix);
    if (label) *label = (int32_t)lab;
    return 0;
}
