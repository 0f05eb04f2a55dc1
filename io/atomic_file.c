/* atomic_file: temporary file, fsync, rename, fsync of the directory. */
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int (*atomic_file_faults)(AtomicFaults *f, Err *e) = NULL;

static void release(AtomicFile *f) {
    free(f->path);
    free(f->tmp);
    f->path = f->tmp = NULL;
}

int atomic_file_open(AtomicFile *f, const char *path, Err *e) {
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->limit = UINT64_MAX;
    size_t n = strlen(path);
    if (n == 0 || path[n - 1] == '/') return err_set(e, "'%s': not a file name", path);
    AtomicFaults faults = {UINT64_MAX, 0};
    Err fe;
    if (atomic_file_faults && atomic_file_faults(&faults, &fe)) return err_set(e, "%s: %s", path, fe.msg);
    f->limit = faults.write_limit;
    f->fsync_fails = faults.fsync_fails;
    f->path = xstrdup(path);
    f->tmp = xmalloc(n + 32);
    snprintf(f->tmp, n + 32, "%s.tmp-%ld", path, (long)getpid());
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        int saved = errno;
        err_set(e,
                "%s: cannot create temporary file %s: %s - does the directory exist and is it "
                "writable?",
                path, f->tmp, strerror(saved));
        release(f);
        return -1;
    }
    return 0;
}

/* Writes n bytes at the file position (at < 0) or at offset at, within
 * the injected byte limit. */
static int put(AtomicFile *f, const void *p, size_t n, int64_t at, Err *e) {
    ASSERT(f->fd >= 0);
    const unsigned char *b = p;
    size_t allowed = (size_t)MIN((uint64_t)n, f->limit - MIN(f->limit, f->written));
    int err = 0;
    while (allowed > 0) {
        size_t k = MIN(allowed, (size_t)1 << 30);
        ssize_t w = at < 0 ? write(f->fd, b, k) : pwrite(f->fd, b, k, (off_t)at);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            err = w < 0 ? errno : EIO;
            break;
        }
        b += w;
        allowed -= (size_t)w;
        n -= (size_t)w;
        f->written += (uint64_t)w;
        if (at >= 0) at += w;
    }
    if (!err && n > 0) err = ENOSPC; /* the injected limit */
    if (!err) return 0;
    return err_set(e, "%s: writing temporary file %s failed after %llu bytes: %s%s", f->path, f->tmp,
                   (unsigned long long)f->written, strerror(err),
                   err == ENOSPC || err == EDQUOT ? " - free some space" : "");
}

int atomic_file_write(AtomicFile *f, const void *p, size_t n, Err *e) { return put(f, p, n, -1, e); }

int atomic_file_pwrite(AtomicFile *f, const void *p, size_t n, uint64_t at, Err *e) {
    return put(f, p, n, (int64_t)at, e);
}

int atomic_file_commit(AtomicFile *f, Err *e) {
    ASSERT(f->fd >= 0);
    const char *stage = "syncing";
    int saved;
    if (f->fsync_fails) errno = EIO;
    if (f->fsync_fails || fsync(f->fd) < 0) goto fail;
    stage = "closing";
    int fd = f->fd;
    f->fd = -1;
    if (close(fd) < 0) goto fail;
    stage = "renaming";
    if (rename(f->tmp, f->path) < 0) goto fail;

    /* The new file is in place; make the rename itself durable. */
    char *slash = strrchr(f->path, '/');
    const char *dir = ".";
    if (slash == f->path)
        dir = "/";
    else if (slash)
        *slash = '\0', dir = f->path; /* path is not needed any more */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || (fsync(dfd) < 0 && errno != EINVAL)) {
        saved = errno;
        if (dfd >= 0) close(dfd);
        err_set(e,
                "%s/%s: written and renamed, but syncing the directory failed: %s - the file "
                "may not survive a crash",
                dir, slash ? slash + 1 : f->path, strerror(saved));
        release(f);
        return -1;
    }
    close(dfd);
    release(f);
    return 0;

fail:
    saved = errno;
    err_set(e,
            "%s: %s temporary file %s failed: %s; a previous file at that path, if any, is "
            "untouched",
            f->path, stage, f->tmp, strerror(saved));
    atomic_file_abort(f);
    return -1;
}

void atomic_file_abort(AtomicFile *f) {
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
    if (f->tmp) unlink(f->tmp);
    release(f);
}

int atomic_file_write_all(const char *path, const void *p, size_t n, Err *e) {
    AtomicFile f;
    if (atomic_file_open(&f, path, e)) return -1;
    if (atomic_file_write(&f, p, n, e)) {
        atomic_file_abort(&f);
        return -1;
    }
    return atomic_file_commit(&f, e);
}

int file_read_whole(const char *path, size_t limit, const char *what, uint8_t **out, size_t *n, Err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return err_set(e, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > limit) {
        fclose(f);
        return err_set(e, "%s: %lld bytes, too large for %s (limit %zu)", path, (long long)st.st_size, what,
                       limit);
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = xmalloc(size + 1);
    size_t got = fread(buf, 1, size, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != size) {
        free(buf);
        return err_set(e, "%s: read error after %zu of %zu bytes", path, got, size);
    }
    buf[size] = 0;
    *out = buf;
    *n = size;
    return 0;
}
