/* fuzz: what the libFuzzer harnesses (fuzz/fuzz_*.c) share. Each harness
 * defines LLVMFuzzerTestOneInput over one decoder; built with clang
 * -fsanitize=fuzzer,address,undefined by `make fuzz`, or with the project's
 * compiler and fuzz/replay_main.c by `make test-build` to replay the corpus
 * (tests/e2e_fuzz_replay.sh). FATAL and ASSERT in library code exit the
 * process, which libFuzzer reports as a crash: a decoder must answer every
 * input with 0 or an Err. FUZZ_CHECK is a property the harness asserts. */
#ifndef SIAMESE_FUZZ_H
#define SIAMESE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../nn/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                                                \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "fuzz: property failed: %s: ", #cond);                                           \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

/* An in-memory file named by a path the file APIs accept
 * ("/proc/self/fd/N"): made on first use, then rewritten with each input
 * (a static FuzzFile: one memfd for the whole run, as making and closing
 * one per input cost more than the decoders it feeds). Readers open the
 * path afresh, so they start at offset 0. */
typedef struct FuzzFile {
    int fd;
    char path[64]; /* empty until the first fuzz_file_put */
} FuzzFile;

/* The file now holds exactly the n bytes of d. */
static inline void fuzz_file_put(FuzzFile *f, const uint8_t *d, size_t n) {
    if (!f->path[0]) {
        f->fd = memfd_create("fuzz", MFD_CLOEXEC);
        ASSERT(f->fd >= 0);
        snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
    }
    ASSERT(ftruncate(f->fd, 0) == 0);
    for (size_t done = 0; done < n;) {
        ssize_t w = pwrite(f->fd, d + done, n - done, (off_t)done);
        ASSERT(w > 0);
        done += (size_t)w;
    }
}

/* An Err message is one line, and a non-empty one. */
static inline void fuzz_check_message(const Err *e) {
    FUZZ_CHECK(e->msg[0] && !strchr(e->msg, '\n'), "error message '%s'", e->msg);
}

#endif
