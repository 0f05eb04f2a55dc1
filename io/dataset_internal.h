/* dataset_internal: what dataset.c (reader) and dataset_write.c (writers)
 * share: record layout constants and byte-order helpers. Not for other
 * modules: they use dataset.h. The format itself is documented at the top of
 * dataset.c. */
#ifndef SIAMESE_DATASET_INTERNAL_H
#define SIAMESE_DATASET_INTERNAL_H

#include <lmdb.h>
#include <stdlib.h>
#include <zlib.h>

#include "dataset.h"

#define RECORD_HINT "re-run siamese import" /* ends the messages of bad records */
#define DS_REC_HEADER 24 /* bytes before the payload of a samples record */
#define DS_REC_VERSION 1
#define DS_REC_ZLIB 0x01u /* payload is a raw deflate stream */
#define DS_REC_MASK 0x02u /* payload ends with an H x W mask */

void ds_be64(uint8_t k[8], uint64_t v);
void ds_be32(uint8_t k[4], uint32_t v);
uint64_t ds_get_be64(const uint8_t *p);
uint32_t ds_get_be32(const uint8_t *p);
void ds_le16(uint8_t *p, uint32_t v);
void ds_le32(uint8_t *p, uint32_t v);
uint32_t ds_get_le16(const uint8_t *p);
uint32_t ds_get_le32(const uint8_t *p);

/* Sample names in memory: name i is blob[off[i] ..] (NUL-terminated), ids in
 * insertion order; slot is an open-addressing table of id + 1 (0: empty). */
typedef struct NameTable {
    char *blob;
    size_t len, cap;
    uint64_t *off; /* n + 1 */
    uint64_t n, offcap;
    uint32_t *slot;
    uint64_t nslots;
} NameTable;
#define DS_NAME_LIMIT_TEXT "1024" /* DS_MAX_NAME, for messages */
/* Appends s[0..n) as id t->n and returns -1, or returns the id already called
 * that (nothing added). */
int64_t names_add(NameTable *t, const char *s, size_t n);
int64_t names_find(const NameTable *t, const char *s, size_t n);
const char *names_get(const NameTable *t, uint64_t id);
void names_free(NameTable *t);

/* Whether the names of sub-database dbi (keys: 8-byte big-endian ids) are
 * pairwise different, with memory bounded whatever their number n: each
 * name's 64-bit hash and id go to one of up to NAMES_PARTS temporary files
 * in tmpdir (by the hash), each file is then sorted alone, and names of
 * equal hashes are compared by reading them. 0 if all differ; 1 with *a < *b
 * the ids of the repeated name of smallest *b (the first sample, in id
 * order, to repeat an earlier name) and name (cap bytes, truncated) that
 * name; -1 with e on an I/O or LMDB error. */
#define NAMES_PARTS 128
int names_unique(MDB_txn *txn, MDB_dbi dbi, uint64_t n, const char *tmpdir, const char *path, uint64_t *a,
                 uint64_t *b, char *name, size_t cap, Err *e);

/* Validate one pairs / triplets record against the labels of ds (i is the
 * record index, named in the error). */
int ds_check_pair(const Dataset *ds, uint64_t i, uint32_t a, uint32_t b, uint32_t same, Err *e);
int ds_check_triplet(const Dataset *ds, uint64_t i, const uint32_t t[3], Err *e);

#endif
