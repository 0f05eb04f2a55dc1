/* safetensors: export named float32 tensors in the safetensors format
 * (https://huggingface.co/docs/safetensors), and a minimal strict reader for
 * tests and tools. Only dtype F32 and up to ST_MAX_DIMS dimensions; it knows
 * nothing about models (the caller names the tensors). Writes are atomic.
 *
 * Layout: u64 little-endian N; N bytes of JSON header; the byte buffer.
 *   {"__metadata__":{"k":"v",...},"name":{"dtype":"F32","shape":[a,b],
 *    "data_offsets":[begin,end]},...}
 * "__metadata__" comes first and is omitted when there is none; tensors follow
 * in the order given, their data back to back in that same order (offsets
 * relative to the buffer start, contiguous, no gaps). The header is padded
 * with spaces so that 8 + N is a multiple of 8. Little-endian hosts only. */
#ifndef SIAMESE_SAFETENSORS_H
#define SIAMESE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "../nn/util.h"

#define ST_MAX_DIMS 4

/* One tensor to write. name: non-empty, unique, not "__metadata__" (any
 * bytes; JSON-escaped as needed). ndim 0 is a scalar (one float). */
typedef struct StTensor {
    const char *name;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const float *data; /* (prod(shape)), C order */
} StTensor;

/* Writes tensors t[0..n) and metadata pairs meta[2i] (key) -> meta[2i+1]
 * (value), i < nmeta (meta may be NULL when nmeta == 0). 0, or -1 with e
 * naming the path and the bad tensor or the I/O failure; a file already at
 * path is then untouched. */
int safetensors_write(const char *path, const StTensor *t, int n, const char *const *meta, int nmeta, Err *e);

/* ---- reading ------------------------------------------------------------ */

typedef struct StView {
    char *name;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t begin, end; /* data_offsets, relative to the byte buffer */
    const float *data;   /* into StFile.bytes */
} StView;

typedef struct StFile {
    int n; /* tensors, in header order */
    StView *t;
    int nmeta;
    char **meta; /* (2 * nmeta): key, value, ... */
    uint64_t header_len;
    unsigned char *bytes; /* the whole file */
    size_t size;
} StFile;

/* Reads path and validates it: header length and JSON, every tensor F32 with
 * end - begin = 4 * prod(shape), offsets covering the buffer exactly with no
 * gaps or overlaps (in offset order), unique names. On success *f owns
 * everything (safetensors_free); on failure *f is zeroed and e names the
 * file and the fault. */
int safetensors_read(StFile *f, const char *path, Err *e);
void safetensors_free(StFile *f);

/* The tensor called name, or NULL. */
const StView *safetensors_find(const StFile *f, const char *name);
/* The metadata value for key, or NULL. */
const char *safetensors_meta(const StFile *f, const char *key);

#endif
