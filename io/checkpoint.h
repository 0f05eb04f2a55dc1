/* checkpoint: the container file of named, zlib-compressed, CRC-checked
 * sections that a training run saves and resumes from. Writes are atomic
 * through io/atomic_file (temporary file, fsync, rename, fsync of the
 * directory); reads verify every
 * byte and name the file and the fault. Also the run-directory helpers:
 * ckpt-<step>.smpi names, rotation, newest-valid lookup. It does not decide
 * what goes into a checkpoint (the trainer does) and never calls MPI.
 *
 * File format, version 1. All integers little-endian, written byte by byte.
 *
 *   offset    size  field
 *   0         8     magic "SMPICKPT"
 *   8         4     u32 format version (1)
 *   12        4     u32 section count n (0 .. CKPT_MAX_SECTIONS)
 *   16        8     u64 total file size in bytes
 *   24        4     u32 CRC32 of the section table (bytes 32 .. 32+72n)
 *   28        4     u32 CRC32 of bytes 0 .. 27 (the header above)
 *   32        72n   section table, one 72-byte entry per section:
 *                     +0   32  name: 1..31 printable ASCII bytes, NUL-padded
 *                     +32   8  u64 offset of the payload from the file start
 *                     +40   8  u64 payload size (compressed bytes)
 *                     +48   8  u64 raw size (bytes after decompression)
 *                     +56   4  u32 CRC32 of the raw bytes
 *                     +60   4  u32 CRC32 of the payload bytes
 *                     +64   4  u32 flags: bit 0 = CKPT_FLAG_SHUFFLE4; others 0
 *                     +68   4  reserved, 0
 *   32+72n    ...   payloads, back to back in table order (no gaps): each one
 *                   complete zlib stream (RFC 1950) of the section's bytes
 *   size-12   8     end magic "SMPI-END"
 *   size-4    4     u32 CRC32 of every byte before it (0 .. size-5)
 *
 * CRC32 is zlib's crc32() (the IEEE/gzip/PNG polynomial). The header covers
 * the table through its CRC and the trailer covers the whole file, so a flip
 * of any bit anywhere is detected. Names are unique. The first 32 bytes keep
 * this layout in every version, so a newer file is recognised as newer, not
 * as damaged. CKPT_FLAG_SHUFFLE4 (sections added with ckpt_add_f32; raw size a
 * multiple of 4): before compression each block of 1 MiB of raw bytes (the
 * last block shorter) is stored byte-planar: byte j of 4-byte element i of a
 * block of m elements goes to position j*m + i. Floats then compress ~10%
 * better and 4x faster (Huffman-only deflate). Section contents are opaque
 * bytes here: the trainer stores floats/integers in host (little-endian) order.
 *
 * Fault injection (a full disk, a failing fsync) is io/atomic_file's, in the
 * test build only. */
#ifndef SIAMESE_CHECKPOINT_H
#define SIAMESE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../nn/util.h"

#define CKPT_VERSION 1
#define CKPT_MAX_SECTIONS 4096
#define CKPT_NAME_MAX 31 /* bytes of a section name, without the NUL */
#define CKPT_FLAG_SHUFFLE4 1u
#define CKPT_ANY_SIZE SIZE_MAX /* for ckpt_require: any size is fine */
/* ckpt_rotate removes a "<name>.tmp-<pid>" left by a writer whose pid is not
 * alive on this host and that was last modified this long ago. */
#define CKPT_STALE_TMP_SECONDS 600

typedef struct CkptWriter CkptWriter;
typedef struct Ckpt Ckpt;

/* ---- writing ------------------------------------------------------------ */

/* An empty list of sections. Free with ckpt_writer_free. */
CkptWriter *ckpt_writer_new(void);

/* Appends a section. The bytes are REFERENCED, not copied: data must stay
 * alive and unchanged until the last ckpt_write with this writer returns.
 * name: 1..CKPT_NAME_MAX printable ASCII chars, unique in the writer (these
 * are program constants, so a bad one is an ASSERT, not an Err). data may be
 * NULL when n == 0. Sections are written in the order added. */
void ckpt_add(CkptWriter *w, const char *name, const void *data, size_t n);
/* Same, but copies the bytes now (for small temporaries built on the stack). */
void ckpt_add_copy(CkptWriter *w, const char *name, const void *data, size_t n);
/* A float array (referenced, like ckpt_add), stored with CKPT_FLAG_SHUFFLE4
 * and Huffman-only deflate: the choice for parameter and optimizer arenas. */
void ckpt_add_f32(CkptWriter *w, const char *name, const float *data, size_t count);

/* Writes every section to "<path>.tmp-<pid>" in path's directory, fsyncs it,
 * renames it to path and fsyncs the directory (atomic_file). On any failure before the
 * rename (ENOSPC, EROFS, EIO, short write, ...) the temporary file is removed,
 * a file already at path is left untouched, and -1 is returned with e naming
 * the path and the errno text. If only the final fsync of the directory
 * fails, the new file is in place but -1 says it may not be durable. The
 * writer is unchanged and may be written again. Not for concurrent use of the
 * same path by two threads of one process. */
int ckpt_write(CkptWriter *w, const char *path, Err *e);
void ckpt_writer_free(CkptWriter *w); /* also frees ckpt_add_copy copies */

/* ---- reading ------------------------------------------------------------ */

/* What a reader accepts of each section, decided before the section is
 * inflated or anything is allocated for it: the table's raw size must not
 * exceed max_raw(c, i, ...), called for section i once sections 0..i-1 are
 * read and verified (ckpt_get finds those, and only those). It writes what
 * the limit is into what ("a config section holds at most"). The container
 * knows no section's meaning; the program that writes the checkpoints does
 * (dist/train_ckpt.c: train_ckpt_bounds). NULL bounds: only the ratio limit
 * of deflate (for tests of the container itself). */
typedef struct CkptBounds {
    uint64_t (*max_raw)(const Ckpt *c, int i, char *what, size_t n, void *ctx);
    void *ctx;
} CkptBounds;

/* Reads path and verifies everything: magic, version (a newer one is refused
 * naming the supported version), sizes, each section's raw size against the
 * bounds b, header/table/section/file CRCs, and that each section
 * decompresses to exactly its raw size. On success *out owns every section's
 * bytes (free with ckpt_free); on failure *out = NULL and e names the file and
 * the fault, e.g. "runs/x/ckpt-0000000500.smpi: section 'params' CRC mismatch
 * (stored 0x1234abcd, computed 0x0badf00d) - the file is damaged; use an
 * older checkpoint". */
int ckpt_read(Ckpt **out, const char *path, const CkptBounds *b, Err *e);
void ckpt_free(Ckpt *c); /* NULL is fine */

/* The bytes of section name (n gets its size, if not NULL), or NULL if the
 * checkpoint has no such section (or it is not read yet, or damaged: see
 * ckpt_print). Owned by c; 16-byte aligned (malloc). */
const void *ckpt_get(const Ckpt *c, const char *name, size_t *n);
/* Like ckpt_get, but a missing section, or a size other than want (unless
 * want == CKPT_ANY_SIZE), is an error naming the file, section and sizes. */
const void *ckpt_require(const Ckpt *c, const char *name, size_t want, Err *e);

int ckpt_count(const Ckpt *c);
const char *ckpt_name(const Ckpt *c, int i);     /* 0 <= i < ckpt_count */
size_t ckpt_size(const Ckpt *c, int i);          /* raw bytes */
uint64_t ckpt_stored_size(const Ckpt *c, int i); /* compressed bytes */
const char *ckpt_path(const Ckpt *c);            /* as given to ckpt_read */

/* ckpt_read + ckpt_free: 0 if path is a valid checkpoint, else -1 and e. */
int ckpt_verify(const char *path, const CkptBounds *b, Err *e);

/* For `siamese inspect`: prints the header and one line per section (name,
 * raw and stored size, flags, CRC ok or the fault), then sections named
 * "config" or "text:*" as text, indented. A damaged section is reported on
 * its line and the others are still checked; returns -1 (e = the first fault)
 * if anything is wrong, also when nothing could be printed. */
int ckpt_print(const char *path, FILE *out, const CkptBounds *b, Err *e);

/* ---- run directories ----------------------------------------------------- */

/* out = "<dir>/ckpt-<step as 10 or more digits>.smpi". 0, or -1 if it does
 * not fit in n bytes (out is then not a usable path). */
int ckpt_path_for_step(char *out, size_t n, const char *dir, uint64_t step);

/* Keeps the `keep` checkpoints of dir with the highest steps and deletes the
 * older ones (keep <= 0 deletes none). Only names "ckpt-<10..20 digits>.smpi"
 * count; other files are never touched. Also deletes stale temporary files
 * "ckpt-<digits>.smpi.tmp-<pid>" (see CKPT_STALE_TMP_SECONDS). A file that
 * cannot be deleted gives -1 (after trying the others) with e naming it. */
int ckpt_rotate(const char *dir, int keep, Err *e);

/* The newest checkpoint of dir (by step) that verifies, into out. Each newer
 * one that does not verify is skipped with a util_warn naming it and why.
 * Returns 0 if found; 1 if dir holds no checkpoint (or does not exist); -1 if
 * out is too small, dir cannot be read, or every checkpoint is damaged (the
 * caller should not silently start from scratch then). */
int ckpt_find_latest(char *out, size_t n, const char *dir, const CkptBounds *b, Err *e);
/* Same, and hands over the checkpoint already read (*c, caller frees), which
 * saves reading a large file twice when resuming. *c = NULL unless 0. */
int ckpt_read_latest(Ckpt **c, char *out, size_t n, const char *dir, const CkptBounds *b, Err *e);

#endif
