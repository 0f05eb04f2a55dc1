/* fixture_torch: what the PyTorch parity tests share (test_torch_parity,
 * test_layer_parity): paths, the repository root, .npy files of a case
 * directory, and running the Python side
 * (Debian's python3-torch as /usr/bin/python3). Header-only; failures that
 * are not the test's subject are FATAL. */
#ifndef SIAMESE_TESTS_FIXTURE_TORCH_H
#define SIAMESE_TESTS_FIXTURE_TORCH_H

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../io/npy.h"
#include "../nn/model.h"
#include "../nn/util.h"
#include "test.h"

#ifndef PYTHON
#define PYTHON "/usr/bin/python3"
#endif

/* snprintf into a path buffer; a path that does not fit is fatal. */
static inline void fixture_path_fmt(char *out, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(out, n, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= n) FATAL("path too long: %s...", out);
}

/* The repository root into root: the cwd if it holds `probe` (a path
 * relative to the root), else three levels above this binary
 * (BUILD/tests/NAME). */
static inline void fixture_repo_root(char *root, size_t n, const char *probe) {
    if (access(probe, R_OK) == 0) {
        fixture_path_fmt(root, n, ".");
        return;
    }
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0) FATAL("run the test from the repository root (%s not found)", probe);
    exe[k] = 0;
    for (int up = 0; up < 3; up++) {
        char *s = strrchr(exe, '/');
        if (s) *s = 0;
    }
    fixture_path_fmt(root, n, "%s", exe);
}

/* cdir/name as a (rows, cols) float32 .npy. */
static inline void fixture_put_f32(const char *cdir, const char *name, const float *p, int64_t rows,
                                   int64_t cols) {
    char path[PATH_MAX];
    Err e;
    fixture_path_fmt(path, sizeof path, "%s/%s", cdir, name);
    if (npy_write_f32(path, p, rows, cols, &e)) FATAL("%s", e.msg);
}

/* cdir/name into a fresh array of exactly count floats; NULL (and a failed
 * CHECK) if it is missing or of another size. */
static inline float *fixture_get_f32(const char *cdir, const char *name, size_t count) {
    char path[PATH_MAX];
    fixture_path_fmt(path, sizeof path, "%s/%s", cdir, name);
    NpyArray a;
    Err e;
    if (npy_read(&a, path, &e)) {
        CHECK(0, "%s", e.msg);
        return NULL;
    }
    if (a.dtype != 'f' || a.count != count) {
        CHECK(0, "%s: %zu floats expected, found %zu (dtype %c)", path, count, a.count, a.dtype);
        npy_free(&a);
        return NULL;
    }
    return a.data;
}

/* One "view NAME OFFSET COUNT DIM..." line per parameter tensor (the
 * meta.txt of a case directory: the Python side loads the arena by them). */
static inline void fixture_put_views(FILE *f, const ParamView *views, int n) {
    for (int v = 0; v < n; v++) {
        fprintf(f, "view %s %zu %zu", views[v].name, views[v].offset, views[v].count);
        for (int d = 0; d < views[v].ndim; d++) fprintf(f, " %d", views[v].shape[d]);
        fputc('\n', f);
    }
}

/* Runs cmd (the Python side). 0 when it ran and succeeded; 1 when torch
 * is missing (PYTHON absent, or the script's exit 77), after a failed
 * CHECK saying to run `make deps`; -1 (and a failed CHECK) otherwise. */
static inline int fixture_run_python(const char *cmd) {
    fflush(stdout);
    int rc = access(PYTHON, X_OK) == 0 ? system(cmd) : -2;
    int status = rc >= 0 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    if (rc == -2 || status == 77 || status == 127) {
        CHECK(0,
              "PyTorch is not available to %s: `make deps` (run by `make test`) installs Debian's "
              "python3-torch",
              PYTHON);
        return 1;
    }
    CHECK(status == 0, "%s failed (status %d)", cmd, status);
    return status == 0 ? 0 : -1;
}

#endif
