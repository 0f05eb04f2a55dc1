/* import_source: see import_source.h. */
#include "import_source.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset.h"
#include "import.h"

void source_free(Source *s) {
    if (s->paths)
        for (uint64_t i = 0; i < s->n; i++) free(s->paths[i]);
    for (uint32_t c = 0; c < s->classes; c++) free(s->names[c]);
    free(s->names);
    free(s->paths);
    free(s->name_at);
    for (size_t k = 0; k < s->nexclude; k++) free(s->exclude[k]);
    free(s->exclude);
    free(s->excluded);
    free(s->labels);
    if (s->gz) gzclose(s->gz);
    memset(s, 0, sizeof *s);
}

void source_add(Source *s, char *path, int32_t label) {
    if (s->n == s->cap) {
        s->cap = MAX(s->cap * 2, 1024);
        s->labels = xrealloc(s->labels, s->cap * sizeof(int32_t));
        if (path || s->paths) {
            s->paths = xrealloc(s->paths, s->cap * sizeof(char *));
            s->name_at = xrealloc(s->name_at, s->cap * sizeof(uint32_t));
        }
    }
    if (path) {
        s->paths[s->n] = path;
        s->name_at[s->n] = (uint32_t)s->root_len;
    }
    s->labels[s->n++] = label;
}

void source_class(Source *s, const char *name) {
    if ((s->classes & (s->classes - 1)) == 0) /* grow at powers of two */
        s->names = xrealloc(s->names, sizeof(char *) * (s->classes ? 2 * s->classes : 1));
    s->names[s->classes++] = xstrdup(name);
}

/* ---- folders ------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static char *join(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    char *p = xmalloc(na + nb + 2);
    memcpy(p, a, na);
    p[na] = '/';
    memcpy(p + na + 1, b, nb + 1);
    return p;
}

/* Entries of dir except dotfiles, sorted byte-wise; want_dirs: 1 every entry
 * must be a directory, 0 a regular file. */
static int list_dir(const char *dir, int want_dirs, const char *what, char ***out, size_t *n, Err *e) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return err_set(e, "%s: cannot open directory: %s", dir, strerror(errno));
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        if (cnt == cap) v = xrealloc(v, sizeof(char *) * (cap = MAX(2 * cap, 64)));
        v[cnt++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (cnt) qsort(v, cnt, sizeof(char *), cmp_str);
    for (size_t i = 0; i < cnt; i++) {
        char *p = join(dir, v[i]);
        struct stat st;
        int ok = stat(p, &st) == 0 && (want_dirs ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
        if (!ok) {
            err_set(e, "%s: not %s%s", p, what,
                    want_dirs ? "" : " (a directory or special file inside a class folder)");
            free(p);
            for (size_t j = 0; j < cnt; j++) free(v[j]);
            free(v);
            return -1;
        }
        free(p);
    }
    *out = v;
    *n = cnt;
    return 0;
}

static void free_list(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* Adds every file of class folder dir as label s->classes - 1. */
static int add_class_files(Source *s, const char *dir, Err *e) {
    char **files;
    size_t nf;
    if (list_dir(dir, 0, "an image file", &files, &nf, e)) return -1;
    if (nf == 0) {
        free(files);
        return err_set(e, "%s: empty class folder — add images or remove it", dir);
    }
    for (size_t i = 0; i < nf; i++) source_add(s, join(dir, files[i]), (int32_t)s->classes - 1);
    free_list(files, nf);
    return 0;
}

static int source_tree(Source *s, const char *root, int omniglot, Err *e);

/* Splits the --exclude-groups list ("koch": IMPORT_KOCH_GROUPS) into s. */
static int source_exclude(Source *s, const char *list, Err *e) {
    if (!list) return 0;
    if (!strcmp(list, "koch")) list = IMPORT_KOCH_GROUPS;
    for (const char *p = list;;) {
        const char *q = strchr(p, ',');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == 0 || n > 255)
            return err_set(e, "--exclude-groups '%s': %s group name — give names separated by single commas",
                           list, n ? "an over-long" : "an empty");
        s->exclude = xrealloc(s->exclude, sizeof(char *) * (s->nexclude + 1));
        char *g = xmalloc(n + 1);
        memcpy(g, p, n);
        g[n] = 0;
        s->exclude[s->nexclude++] = g;
        if (!q) break;
        p = q + 1;
    }
    s->excluded = xcalloc(s->nexclude, 1);
    return 0;
}

/* 1 if group (a top-level folder name) is excluded, marking it found. */
static int source_skip(Source *s, const char *group) {
    for (size_t k = 0; k < s->nexclude; k++)
        if (!strcmp(s->exclude[k], group)) return s->excluded[k] = 1;
    return 0;
}

/* Every class name once over all roots; 0, or -1 naming a duplicate. */
static int check_class_names(const Source *s, Err *e) {
    char **v = xmalloc(sizeof(char *) * (s->classes ? s->classes : 1));
    memcpy(v, s->names, sizeof(char *) * s->classes);
    qsort(v, s->classes, sizeof(char *), cmp_str);
    int rc = 0;
    for (uint32_t c = 1; c < s->classes && !rc; c++)
        if (!strcmp(v[c], v[c - 1]))
            rc = err_set(e, "class '%s' is under two --root folders — give each class once", v[c]);
    free(v);
    return rc;
}

static int source_root(Source *s, const char *root, int omniglot, Err *e);

int source_folder(Source *s, const char *const *roots, int omniglot, const char *exclude, Err *e) {
    if (source_exclude(s, exclude, e)) return -1;
    for (int r = 0; r < IMPORT_MAX_ROOTS && roots[r]; r++)
        if (source_root(s, roots[r], omniglot, e)) return -1;
    for (size_t k = 0; k < s->nexclude; k++)
        if (!s->excluded[k])
            return err_set(e, "--exclude-groups: no %s '%s' under any --root — check the name",
                           omniglot ? "alphabet" : "class folder", s->exclude[k]);
    if (s->n == 0)
        return err_set(e, "%s: every class was excluded by --exclude-groups — nothing to import", roots[0]);
    return check_class_names(s, e);
}

static int source_root(Source *s, const char *root, int omniglot, Err *e) {
    if (!s->paths) s->paths = xmalloc(sizeof(char *));
    size_t rl = strlen(root);
    while (rl > 1 && root[rl - 1] == '/') rl--; /* "DIR/" names samples like "DIR" */
    char *r = xmalloc(rl + 1);
    memcpy(r, root, rl);
    r[rl] = 0;
    s->root_len = rl + 1;
    int rc = source_tree(s, r, omniglot, e);
    free(r);
    return rc;
}

static int source_tree(Source *s, const char *root, int omniglot, Err *e) {
    char **top;
    size_t nt;
    if (list_dir(root, 1,
                 omniglot ? "an alphabet folder (--root must hold alphabet/character/*.png)"
                          : "a class folder (--root must hold one folder per class)",
                 &top, &nt, e))
        return -1;
    if (nt == 0) {
        free(top);
        return err_set(e, "%s: no %s folders found", root, omniglot ? "alphabet" : "class");
    }
    int rc = 0;
    for (size_t i = 0; i < nt && !rc; i++) {
        if (source_skip(s, top[i])) continue;
        char *dir = join(root, top[i]);
        if (!omniglot) {
            if (s->classes >= DS_MAX_CLASSES)
                rc = err_set(e, "%s: more than %d classes", root, DS_MAX_CLASSES);
            if (!rc) source_class(s, top[i]);
            if (!rc) rc = add_class_files(s, dir, e);
        } else {
            char **chars;
            size_t nc;
            rc = list_dir(dir, 1, "a character folder (is --root one level too high or too low?)", &chars,
                          &nc, e);
            if (!rc && nc == 0) rc = err_set(e, "%s: empty alphabet folder — remove it", dir);
            for (size_t j = 0; !rc && j < nc; j++) {
                char *cdir = join(dir, chars[j]);
                char *name = join(top[i], chars[j]);
                if (strlen(name) > 255) rc = err_set(e, "%s: class name longer than 255 bytes", cdir);
                if (!rc && s->classes >= DS_MAX_CLASSES)
                    rc = err_set(e, "%s: more than %d classes", root, DS_MAX_CLASSES);
                if (!rc) source_class(s, name);
                if (!rc) rc = add_class_files(s, cdir, e);
                free(name);
                free(cdir);
            }
            free_list(chars, nc);
        }
        free(dir);
    }
    free_list(top, nt);
    return rc;
}

/* The name of sample i: its path under the root, or FILE#INDEX for idx (the
 * images file's base name, INDEX from 0 in file order). */
const char *source_name(const Source *s, uint64_t i, char *buf, size_t cap) {
    if (s->paths) return s->paths[i] + s->name_at[i];
    const char *base = strrchr(s->images, '/');
    snprintf(buf, cap, "%s#%" PRIu64, base ? base + 1 : s->images, i);
    return buf;
}

void import_mirror(uint8_t *dst, const uint8_t *src, uint32_t h, uint32_t w) {
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) dst[(size_t)y * w + x] = src[(size_t)y * w + (w - 1 - x)];
}

void import_rotate(uint8_t *dst, const uint8_t *src, uint32_t n, uint32_t quarters) {
    for (uint32_t y = 0; y < n; y++)
        for (uint32_t x = 0; x < n; x++) {
            uint32_t sy = y, sx = x; /* dst(y, x) = src(sy, sx), counter-clockwise */
            if (quarters % 4 == 1) sy = x, sx = n - 1 - y;
            if (quarters % 4 == 2) sy = n - 1 - y, sx = n - 1 - x;
            if (quarters % 4 == 3) sy = n - 1 - x, sx = y;
            dst[(size_t)y * n + x] = src[(size_t)sy * n + sx];
        }
}

/* Every name must be valid before anything is written (import.h), with the
 * room for a rotated copy's "@rotNNN" when rotating and a mirrored one's
 * "@mirror" when mirroring. */
int check_names(const Source *s, uint32_t rotations, int mirror, Err *e) {
    char buf[DS_MAX_NAME + 32];
    size_t extra = (rotations > 1 ? 7 : 0) + (mirror ? 7 : 0);
    for (uint32_t c = 0; c < s->classes && extra; c++)
        if (strlen(s->names[c]) + extra > 255)
            return err_set(
                e, "class '%s': its copies' names (@rotNNN, @mirror) would pass 255 bytes — shorten it",
                s->names[c]);
    for (uint64_t i = 0; i < s->n; i++) {
        const char *name = source_name(s, i, buf, sizeof buf), *why = ds_name_fault(name, strlen(name));
        if (!why && strlen(name) + extra > DS_MAX_NAME)
            why = "would be too long with a copy's @rotNNN or @mirror";
        if (why)
            return err_set(e, "%s: its sample name '%s' %s — rename it", s->paths ? s->paths[i] : s->images,
                           name, why);
    }
    return 0;
}
