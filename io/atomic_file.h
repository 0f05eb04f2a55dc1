/* atomic_file: the one durable-write primitive: write a file so that
 * readers see either the old file or the complete new one (and its
 * counterpart, file_read_whole, reads one whole). Bytes go to
 * "<path>.tmp-<pid>" in the same directory, which is fsynced, renamed over
 * path, and the directory fsynced. Used by the checkpoint, .npy,
 * safetensors and run-directory writers; unbuffered (callers write large
 * blocks). Not for two threads of one process writing the same path at
 * once. */
#ifndef SIAMESE_ATOMIC_FILE_H
#define SIAMESE_ATOMIC_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "../nn/util.h"

typedef struct AtomicFile {
    int fd;     /* -1 once committed or aborted */
    char *path; /* owned */
    char *tmp;  /* owned */
    uint64_t written, limit; /* bytes written; injected fault: ENOSPC beyond limit */
    int fsync_fails;         /* injected fault: the fsync fails with EIO */
} AtomicFile;

/* Fault injection, for the tests only: NULL in the siamese users run; the
 * test build (tests/fixture_hooks.c, linked into every test program and into
 * build/siamese-test) sets it to a function that reads
 * SIAMESE_FAULT_WRITE_LIMIT=N (writes fail with ENOSPC once N bytes are
 * written, a partial write first, like a real full disk) and
 * SIAMESE_FAULT_FSYNC=1 (the fsync of the temporary file fails with EIO).
 * Called by atomic_file_open; -1 with e refuses the open. */
typedef struct AtomicFaults {
    uint64_t write_limit; /* UINT64_MAX: none */
    int fsync_fails;
} AtomicFaults;
extern int (*atomic_file_faults)(AtomicFaults *f, Err *e);

/* Creates the temporary file. 0, or -1 with e naming the path and errno text
 * (f is then already cleaned up; atomic_file_abort is harmless). */
int atomic_file_open(AtomicFile *f, const char *path, Err *e);

/* Writes all n bytes (retrying short writes and EINTR). 0, or -1 with e; the
 * caller then calls atomic_file_abort. */
int atomic_file_write(AtomicFile *f, const void *p, size_t n, Err *e);
/* The same at byte offset `at`, not moving the file position (a header
 * rewritten once the rest is known). */
int atomic_file_pwrite(AtomicFile *f, const void *p, size_t n, uint64_t at, Err *e);

/* fsync, close, rename onto path, fsync the directory; frees f's strings in
 * every case. On failure before the rename the temporary file is removed
 * and a file already at path is untouched; -1 with e. If only the directory
 * fsync fails the new file is in place and -1 says it may not be durable. */
int atomic_file_commit(AtomicFile *f, Err *e);

/* Closes and removes the temporary file and frees f's strings. Idempotent;
 * a no-op after commit. */
void atomic_file_abort(AtomicFile *f);

/* The whole sequence for a buffer: open, write n bytes, commit (abort on
 * failure). 0, or -1 with e naming the path; an old file stays intact. */
int atomic_file_write_all(const char *path, const void *p, size_t n, Err *e);

/* Reads the regular file path whole into *out (malloc'd, with a NUL byte
 * after the n bytes). Files over limit bytes are refused before anything
 * is allocated, the message calling the file `what` ("an image"). 0, or -1
 * with e naming path. */
int file_read_whole(const char *path, size_t limit, const char *what, uint8_t **out, size_t *n, Err *e);

#endif
