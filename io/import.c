/* import: see import.h. A Source (import_source.h) lists every sample's
 * label (and file path for folder layouts) before anything is written, so the
 * split is decided on the list; then the pixels are decoded one sample at a
 * time, in source order, and sent to the train or test writer. Nothing holds
 * the whole dataset in memory. */
#include "import.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "dataset.h"
#include "image.h"
#include "import_source.h"

#define IDX_IMAGES_MAGIC 0x00000803u
#define IDX_LABELS_MAGIC 0x00000801u     /* one unsigned byte per label */
#define IDX_LABELS_INT_MAGIC 0x00000c01u /* one big-endian int32 per label: any class count */

/* ---- idx ------------------------------------------------------------------ */

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads up to n bytes; *got says how many. -1 only on a gzip stream error. */
static int gz_read(gzFile g, uint8_t *buf, size_t n, size_t *got, const char *path, Err *e) {
    *got = 0;
    while (*got < n) {
        unsigned chunk = (unsigned)MIN(n - *got, (size_t)1 << 30);
        int r = gzread(g, buf + *got, chunk);
        if (r < 0) {
            int zerr;
            const char *msg = gzerror(g, &zerr);
            return err_set(e, "%s: read error: %s", path, zerr == Z_ERRNO ? strerror(errno) : msg);
        }
        if (r == 0) break;
        *got += (size_t)r;
    }
    return 0;
}

/* deflate never expands more than about 1032:1: a gzip file of n bytes
 * holds at most this many (an upper bound, for checks before allocating). */
static uint64_t gz_max_bytes(uint64_t n) { return n * 1032 + 1024; }

/* Opens an idx file (plain or gzip) and reads its header. *bound gets the
 * most bytes the file can hold once decompressed (exact for a plain file),
 * so a header claiming more is refused before anything is allocated. */
/* Opens an idx file whose magic is `magic` or (if not 0) `alt`; *which
 * says which (0 or 1). */
static int idx_open(gzFile *out, const char *path, uint32_t magic, uint32_t alt, int *which, uint32_t *dims,
                    int ndims, uint64_t *bound, int *exact, Err *e) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return err_set(e, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return err_set(e, "%s: not a regular file", path);
    uint8_t sig[2] = {0, 0};
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(e, "%s: cannot open: %s", path, strerror(errno));
    size_t nsig = fread(sig, 1, 2, f);
    fclose(f);
    *exact = !(nsig == 2 && sig[0] == 0x1f && sig[1] == 0x8b);
    *bound = *exact ? (uint64_t)st.st_size : gz_max_bytes((uint64_t)st.st_size);
    gzFile g = gzopen(path, "rb");
    if (!g) return err_set(e, "%s: cannot open: %s", path, strerror(errno));
    uint8_t h[16];
    size_t need = 4 + 4 * (size_t)ndims, got;
    if (gz_read(g, h, need, &got, path, e)) goto fail;
    *which = got >= 4 && alt && be32(h) == alt;
    if (got < 4 || (be32(h) != magic && !*which)) {
        char want[32];
        snprintf(want, sizeof want, alt ? "0x%08x or 0x%08x" : "0x%08x", magic, alt);
        err_set(e, "%s: not an idx %s file (magic 0x%08x, expected %s) — check --images/--labels", path,
                magic == IDX_IMAGES_MAGIC ? "images" : "labels", got >= 4 ? be32(h) : 0, want);
        goto fail;
    }
    if (got < need) {
        err_set(e, "%s: truncated idx header (%zu of %zu bytes) — re-download it", path, got, need);
        goto fail;
    }
    for (int i = 0; i < ndims; i++) dims[i] = be32(h + 4 + 4 * i);
    *out = g;
    return 0;
fail:
    gzclose(g);
    return -1;
}

/* After the last byte the header accounts for: 0 if the stream ends there
 * and ends well, else -1 naming the file (what = "12 images of 28x28"). A
 * gzip file must end with its CRC and length trailer: zlib's gzread does not
 * report a missing one as an error, so it is checked here. */
static int idx_end(gzFile g, const char *path, const char *what, Err *e) {
    uint8_t b;
    int r = gzread(g, &b, 1);
    if (r > 0) return err_set(e, "%s: longer than its header says (%s) — is it the right file?", path, what);
    int zerr = Z_OK;
    const char *msg = gzerror(g, &zerr);
    if (r < 0 || (zerr != Z_OK && zerr != Z_BUF_ERROR))
        return err_set(e, "%s: read error at the end: %s", path, zerr == Z_ERRNO ? strerror(errno) : msg);
    if (zerr == Z_BUF_ERROR)
        return err_set(
            e, "%s: the gzip data ends without its CRC and length trailer (truncated) — re-download it",
            path);
    return 0;
}

/* The size check of an idx header against its file: a plain file must be
 * exactly that long, a gzip file able to hold it. */
static int idx_size(const char *path, uint64_t need, uint64_t bound, int exact, const char *what, Err *e) {
    if (exact && need > bound)
        return err_set(e, "%s: truncated: %llu bytes, its header (%s) needs %llu — re-download it", path,
                       (unsigned long long)bound, what, (unsigned long long)need);
    if (exact && need < bound)
        return err_set(
            e,
            "%s: longer than its header says (%s: %llu bytes, the file has %llu) — is it the right "
            "file?",
            path, what, (unsigned long long)need, (unsigned long long)bound);
    if (need > bound)
        return err_set(
            e,
            "%s: its header (%s) needs %llu bytes, more than this gzip file can hold (at most %llu) "
            "— truncated or not an idx file",
            path, what, (unsigned long long)need, (unsigned long long)bound);
    return 0;
}

static int source_idx(Source *s, const char *images, const char *labels, Err *e) {
    uint32_t dl[1] = {0}, di[3] = {0, 0, 0};
    gzFile gl;
    uint64_t lbound = 0, ibound = 0;
    int lexact = 1, iexact = 1, wide = 0, unused;
    if (idx_open(&gl, labels, IDX_LABELS_MAGIC, IDX_LABELS_INT_MAGIC, &wide, dl, 1, &lbound, &lexact, e))
        return -1;
    if (idx_open(&s->gz, images, IDX_IMAGES_MAGIC, 0, &unused, di, 3, &ibound, &iexact, e)) {
        gzclose(gl);
        return -1;
    }
    s->images = images;
    s->h = di[1];
    s->w = di[2];
    int rc = -1;
    uint8_t *lab = NULL;
    size_t got;
    char what[96];
    if (di[0] == 0 || s->h == 0 || s->w == 0 || s->h > IMAGE_MAX_SIDE || s->w > IMAGE_MAX_SIDE ||
        (uint64_t)s->h * s->w > IMAGE_MAX_PIXELS) {
        err_set(
            e,
            "%s: its header claims %u images of %ux%u (HxW); an idx import needs at least one image, each "
            "side 1..%d and at most %u pixels per image",
            images, di[0], s->h, s->w, IMAGE_MAX_SIDE, IMAGE_MAX_PIXELS);
        goto done;
    }
    snprintf(what, sizeof what, "%u images of %ux%u", di[0], s->h, s->w);
    if (idx_size(images, 16 + (uint64_t)di[0] * s->h * s->w, ibound, iexact, what, e)) goto done;
    if (di[0] != dl[0]) {
        err_set(e, "%s holds %u images but %s holds %u labels — use matching files", images, di[0], labels,
                dl[0]);
        goto done;
    }
    size_t lb = wide ? 4 : 1, lbytes = (size_t)dl[0] * lb;
    snprintf(what, sizeof what, "%u labels", dl[0]);
    if (idx_size(labels, 8 + (uint64_t)lbytes, lbound, lexact, what, e)) goto done;
    lab = xmalloc(lbytes);
    if (gz_read(gl, lab, lbytes, &got, labels, e)) goto done;
    if (got < lbytes) {
        err_set(
            e,
            "%s: truncated: %zu of %u labels (file should be %zu bytes after decompression) — re-download it",
            labels, got / lb, dl[0], lbytes + 8);
        goto done;
    }
    if (idx_end(gl, labels, what, e)) goto done;
    uint32_t maxl = 0;
    /* Classes are 0..max label, empty ones included: bounded by the samples
     * (or 256, what byte labels allow), so a few labels cannot ask for
     * millions of classes. */
    uint32_t cap = MIN((uint32_t)DS_MAX_CLASSES, MAX(256u, dl[0]));
    for (uint32_t i = 0; i < dl[0]; i++) {
        uint32_t l = wide ? be32(lab + 4 * (size_t)i) : lab[i];
        if (l >= cap) {
            err_set(e,
                    "%s: label %u of sample %u is outside 0..%u (labels number the classes from 0; at most "
                    "max(256, samples) and %d classes)",
                    labels, l, i, cap - 1, DS_MAX_CLASSES);
            goto done;
        }
        source_add(s, NULL, (int32_t)l);
        maxl = MAX(maxl, l);
    }
    for (uint32_t c = 0; c <= maxl; c++) {
        char name[16];
        snprintf(name, sizeof name, "%u", c);
        source_class(s, name);
    }
    rc = 0;
done:
    free(lab);
    gzclose(gl);
    return rc;
}

int import_idx_load(IdxSet *out, const char *images, const char *labels, Err *e) {
    memset(out, 0, sizeof *out);
    Source s = {0};
    if (source_idx(&s, images, labels, e)) {
        source_free(&s);
        return -1;
    }
    size_t bytes = (size_t)s.n * s.h * s.w, got;
    uint8_t *px = xmalloc(bytes);
    int rc = gz_read(s.gz, px, bytes, &got, images, e);
    if (!rc && got < bytes)
        rc = err_set(e, "%s: truncated: %zu of %zu pixel bytes — re-download it", images, got, bytes);
    char what[96];
    snprintf(what, sizeof what, "%llu images of %ux%u", (unsigned long long)s.n, s.h, s.w);
    if (!rc) rc = idx_end(s.gz, images, what, e);
    if (rc) {
        free(px);
        source_free(&s);
        return -1;
    }
    out->n = (uint32_t)s.n, out->h = s.h, out->w = s.w;
    out->pixels = px;
    out->labels = xmalloc(s.n);
    for (uint64_t i = 0; i < s.n; i++) {
        if (s.labels[i] > 255) {
            err_set(e, "%s: label %d of sample %llu does not fit the byte labels of this reader", labels,
                    s.labels[i], (unsigned long long)i);
            import_idx_free(out); /* frees px too */
            source_free(&s);
            return -1;
        }
        out->labels[i] = (uint8_t)s.labels[i];
    }
    source_free(&s);
    return 0;
}

void import_idx_free(IdxSet *s) {
    free(s->pixels);
    free(s->labels);
    memset(s, 0, sizeof *s);
}

/* ---- split --------------------------------------------------------------- */

typedef struct Split {
    uint8_t *dest;       /* n: 0 train, 1 test */
    int32_t *relabel[2]; /* classes: new label in each dataset, -1 if absent */
    uint32_t classes[2];
    uint64_t count[2];
} Split;

/* CLASS and GROUP: round(F * units) whole units (classes or groups; at least
 * 1, at most all but 1) go to test, drawn by a seeded shuffle. */
static int split_units(Split *sp, const Source *s, const ImportOptions *o, Rng *r, Err *e) {
    uint32_t C = s->classes, U = C;
    int32_t *unit = xmalloc(sizeof(int32_t) * (C ? C : 1));
    if (o->split == IMPORT_SPLIT_GROUP) {
        U = (uint32_t)names_groups((const char *const *)s->names, C, unit, NULL);
    } else {
        for (uint32_t c = 0; c < C; c++) unit[c] = (int32_t)c;
    }
    const char *what = o->split == IMPORT_SPLIT_GROUP ? "group" : "class";
    if (U < 2) {
        free(unit);
        return err_set(e, "cannot split by %s: the source has %u %s%s", what, U, what,
                       o->split == IMPORT_SPLIT_GROUP ? " (the class name before '/')" : "");
    }
    uint32_t ntest = (uint32_t)(o->test_fraction * U + 0.5);
    ntest = MAX(1u, MIN(ntest, U - 1));
    uint32_t *perm = xmalloc(sizeof(uint32_t) * U);
    for (uint32_t u = 0; u < U; u++) perm[u] = u;
    rng_shuffle_u32(r, perm, U);
    uint8_t *is_test = xcalloc(U, 1);
    for (uint32_t i = 0; i < ntest; i++) is_test[perm[i]] = 1;
    for (uint32_t c = 0; c < C; c++) {
        int d = is_test[unit[c]];
        sp->relabel[d][c] = (int32_t)sp->classes[d]++;
        sp->relabel[!d][c] = -1;
    }
    for (uint64_t i = 0; i < s->n; i++) sp->dest[i] = is_test[unit[s->labels[i]]];
    free(perm);
    free(is_test);
    free(unit);
    return 0;
}

static int make_split(Split *sp, const Source *s, const ImportOptions *o, Err *e) {
    uint32_t C = s->classes;
    sp->dest = xcalloc(s->n, 1);
    for (int d = 0; d < 2; d++) sp->relabel[d] = xmalloc(sizeof(int32_t) * C);
    Rng r;
    rng_seed(&r, o->seed, RNG_SPLIT, 0);
    double f = o->test_fraction;
    if (o->split == IMPORT_SPLIT_CLASS || o->split == IMPORT_SPLIT_GROUP) {
        if (split_units(sp, s, o, &r, e)) return -1;
    } else if (o->split == IMPORT_SPLIT_SAMPLE) {
        uint64_t *off = xcalloc((size_t)C + 1, sizeof(uint64_t));
        for (uint64_t i = 0; i < s->n; i++) off[s->labels[i] + 1]++;
        for (uint32_t c = 0; c < C; c++) off[c + 1] += off[c];
        uint32_t *ids = xmalloc(sizeof(uint32_t) * s->n);
        uint64_t *fill = xcalloc(C, sizeof(uint64_t));
        for (uint64_t i = 0; i < s->n; i++) ids[off[s->labels[i]] + fill[s->labels[i]]++] = (uint32_t)i;
        for (uint32_t c = 0; c < C; c++) {
            uint64_t nc = off[c + 1] - off[c];
            uint64_t nt = (uint64_t)(f * (double)nc + 0.5);
            if (nc && nt > nc - 1) nt = nc - 1; /* keep one training sample */
            rng_shuffle_u32(&r, ids + off[c], nc);
            for (uint64_t k = 0; k < nt; k++) sp->dest[ids[off[c] + k]] = 1;
            sp->relabel[0][c] = sp->relabel[1][c] = (int32_t)c;
        }
        sp->classes[0] = sp->classes[1] = C;
        free(ids);
        free(fill);
        free(off);
    } else {
        for (uint32_t c = 0; c < C; c++) sp->relabel[0][c] = (int32_t)c;
        sp->classes[0] = C;
    }
    for (uint64_t i = 0; i < s->n; i++) sp->count[sp->dest[i]]++;
    int nd = o->split == IMPORT_SPLIT_NONE ? 1 : 2;
    for (int d = 0; d < nd; d++)
        if (sp->count[d] == 0)
            return err_set(e,
                           "the %s split would be empty (%" PRIu64 " samples, --test-fraction %g) — change "
                           "--test-fraction",
                           d ? "test" : "train", s->n, f);
    return 0;
}

static void split_free(Split *sp) {
    free(sp->dest);
    free(sp->relabel[0]);
    free(sp->relabel[1]);
}

/* ---- the import ------------------------------------------------------------ */

const char *import_split_name(ImportSplit s) {
    static const char *const names[] = {"none", "class", "sample", "group"};
    return names[s];
}

static int check_options(const ImportOptions *o, Err *e) {
    if (!o->out) return err_set(e, "missing --out DB");
    if (o->format == IMPORT_IDX && (!o->images || !o->labels || o->roots[0]))
        return err_set(e, "--format idx needs --images FILE and --labels FILE (and no --root)");
    if (o->format == IMPORT_IDX && o->exclude_groups)
        return err_set(e, "--exclude-groups goes with --format folder or omniglot");
    if (o->rotations > 1 && o->rotations != 2 && o->rotations != 4)
        return err_set(e, "--rotations %u: give 2 (0 and 180 degrees) or 4 (0, 90, 180, 270)", o->rotations);
    if (o->rotations > 1 && o->resize_h != o->resize_w)
        return err_set(e, "--rotations needs square images: --resize NxN (here %ux%u)", o->resize_h,
                       o->resize_w);
    if (o->format != IMPORT_IDX && (!o->roots[0] || o->images || o->labels))
        return err_set(e, "--format %s needs --root DIR (and no --images/--labels)",
                       o->format == IMPORT_FOLDER ? "folder" : "omniglot");
    if (o->masks && o->format != IMPORT_FOLDER)
        return err_set(e,
                       "--masks goes with --format folder (an image tree and a mask tree that mirrors it)");
    struct stat mst;
    if (o->masks && (stat(o->masks, &mst) != 0 || !S_ISDIR(mst.st_mode)))
        return err_set(e, "%s: the --masks directory does not exist or is not a directory", o->masks);
    if ((o->resize_h == 0) != (o->resize_w == 0) || o->resize_h > IMAGE_MAX_SIDE ||
        o->resize_w > IMAGE_MAX_SIDE)
        return err_set(e, "--resize %ux%u out of range (HxW, each 1..%d)", o->resize_h, o->resize_w,
                       IMAGE_MAX_SIDE);
    if (o->split != IMPORT_SPLIT_NONE) {
        if (!o->test_out) return err_set(e, "--split-by needs --test-out DB");
        if (!(o->test_fraction > 0 && o->test_fraction < 1))
            return err_set(e, "--test-fraction %g must be strictly between 0 and 1", o->test_fraction);
        if (!strcmp(o->out, o->test_out)) return err_set(e, "--out and --test-out are both %s", o->out);
    } else if (o->test_out) {
        return err_set(e, "--test-out needs --split-by class|group|sample");
    }
    const char *outs[2] = {o->out, o->test_out};
    for (int d = 0; d < 2; d++) {
        struct stat st;
        if (outs[d] && lstat(outs[d], &st) == 0)
            return err_set(e, "%s already exists — remove it or choose another %s", outs[d],
                           d ? "--test-out" : "--out");
    }
    return 0;
}

static void describe(char *buf, size_t cap, const ImportOptions *o, int part) {
    static const char *fmt[] = {"idx", "folder", "omniglot"};
    int k = o->format == IMPORT_IDX ? snprintf(buf, cap, "idx %s %s", o->images, o->labels)
                                    : snprintf(buf, cap, "%s %s", fmt[o->format], o->roots[0]);
    for (int r = 1; r < IMPORT_MAX_ROOTS && o->roots[r] && k >= 0 && (size_t)k < cap; r++)
        k += snprintf(buf + k, cap - (size_t)k, " %s", o->roots[r]);
    if (k >= 0 && (size_t)k < cap && o->exclude_groups)
        k += snprintf(buf + k, cap - (size_t)k, "; without %s", o->exclude_groups);
    /* the held-out part (part 1) is stored as is */
    if (k >= 0 && (size_t)k < cap && o->rotations > 1 && !part)
        k += snprintf(buf + k, cap - (size_t)k, "; %u rotations", o->rotations);
    if (k >= 0 && (size_t)k < cap && o->mirror && !part)
        k += snprintf(buf + k, cap - (size_t)k, "; mirrored");
    if (k < 0 || (size_t)k >= cap) return;
    if (o->resize_h) k += snprintf(buf + k, cap - (size_t)k, "; resize %ux%u", o->resize_h, o->resize_w);
    if (k >= 0 && (size_t)k < cap && o->invert) k += snprintf(buf + k, cap - (size_t)k, "; inverted");
    if (k >= 0 && (size_t)k < cap && o->color) k += snprintf(buf + k, cap - (size_t)k, "; colour");
    if (k >= 0 && (size_t)k < cap && o->masks)
        k += snprintf(buf + k, cap - (size_t)k, "; masks %s", o->masks);
    if (k >= 0 && (size_t)k < cap && o->split != IMPORT_SPLIT_NONE)
        snprintf(buf + k, cap - (size_t)k, "; %s part of split by %s, test fraction %g, seed %" PRIu64,
                 part ? "test" : "train", import_split_name(o->split), o->test_fraction, o->seed);
}

/* Decodes sample i into img (h x w before resizing, `color`: RGB); for folder
 * layouts the caller frees img. */
static int source_pixels(Source *s, uint64_t i, uint8_t *idxbuf, int color, Image *img, Err *e) {
    if (!s->paths) {
        size_t need = (size_t)s->h * s->w, got;
        if (gz_read(s->gz, idxbuf, need, &got, s->images, e)) return -1;
        if (got < need)
            return err_set(
                e, "%s: truncated at image %" PRIu64 " of %" PRIu64 " (%zu of %zu bytes) — re-download it",
                s->images, i, s->n, got, need);
        img->pixels = idxbuf;
        img->height = s->h;
        img->width = s->w;
        img->channels = 1;
        return 0;
    }
    return image_load_color(img, s->paths[i], color, e);
}

/* Stores the decoded img as C planes of H x W into out (resized, inverted);
 * planes is scratch that grows to the image's size. */
static int store_pixels(uint8_t *out, uint32_t C, uint32_t H, uint32_t W, const ImportOptions *o,
                        const Image *img, uint8_t **planes, const char *path, const char *first, Err *e) {
    if (!o->resize_h && (img->height != H || img->width != W))
        return err_set(e,
                       "%s: image is %ux%u (HxW), expected %ux%u like %s — use --resize HxW or fix the image",
                       path, img->height, img->width, H, W, first);
    size_t np = (size_t)img->height * img->width;
    *planes = xrealloc(*planes, np * C);
    if (img->channels == C)
        image_planes(*planes, img);
    else /* grey idx images in colour: R = G = B */
        for (uint32_t c = 0; c < C; c++) memcpy(*planes + c * np, img->pixels, np);
    for (uint32_t c = 0; c < C; c++)
        image_resize(out + (size_t)c * H * W, H, W, *planes + c * np, img->height, img->width);
    if (o->invert)
        for (size_t k = 0; k < (size_t)C * H * W; k++) out[k] = (uint8_t)(255 - out[k]);
    return 0;
}

/* The mask of sample `name` (its path under the root, image h x w) into
 * mask (H x W, 0/1): see import.h. */
static int load_mask(uint8_t *mask, uint32_t H, uint32_t W, const char *masks, const char *name,
                     const char *image, uint32_t h, uint32_t w, Err *e) {
    size_t n = strlen(masks) + strlen(name) + 8;
    char *p = xmalloc(n), *alt = xmalloc(n);
    snprintf(alt, n, "%s/%s", masks, name);
    const char *dot = strrchr(name, '.'), *slash = strrchr(name, '/');
    int stem = dot && (!slash || dot > slash) ? (int)(dot - name) : (int)strlen(name);
    snprintf(p, n, "%s/%.*s.png", masks, stem, name);
    struct stat st;
    const char *path = stat(p, &st) == 0 ? p : stat(alt, &st) == 0 ? alt : NULL;
    Image m = {0};
    int rc = 0;
    if (!path)
        rc = err_set(e, "%s: no mask for this image: expected %s%s%s%s", image, p,
                     strcmp(p, alt) ? " (or " : "", strcmp(p, alt) ? alt : "", strcmp(p, alt) ? ")" : "");
    else if (image_load_mask(&m, path, e))
        rc = -1;
    else if (m.height != h || m.width != w)
        rc = err_set(e, "%s: mask is %ux%u (HxW) but its image %s is %ux%u — masks must match their images",
                     path, m.height, m.width, image, h, w);
    else
        image_resize(mask, H, W, m.pixels, h, w); /* 0/1: an average of at least 1/2 rounds to 1 */
    image_free(&m);
    free(p);
    free(alt);
    return rc;
}

int import_run(const ImportOptions *o, ImportResult *res, Err *e) {
    memset(res, 0, sizeof *res);
    if (check_options(o, e)) return -1;
    Source s = {0};
    Split sp = {0};
    DsWriter *w[2] = {NULL, NULL};
    uint8_t *idxbuf = NULL, *out = NULL, *planes = NULL, *mask = NULL, *rot = NULL, *rmask = NULL,
            *mir = NULL, *mmask = NULL;
    uint32_t C = o->color ? 3 : 1;
    Image img = {0};
    int rc = -1;
    if (o->format == IMPORT_IDX
            ? source_idx(&s, o->images, o->labels, e)
            : source_folder(&s, o->roots, o->format == IMPORT_OMNIGLOT, o->exclude_groups, e))
        goto done;
    if (check_names(&s, o->rotations, o->mirror, e) || make_split(&sp, &s, o, e)) goto done;
    /* The stored size: --resize, or the first image's (all must match). */
    uint32_t H = o->resize_h, W = o->resize_w;
    const char *first = s.paths ? s.paths[0] : s.images;
    if (!H) {
        if (s.paths) {
            if (image_load(&img, s.paths[0], e)) goto done;
            H = img.height;
            W = img.width;
            image_free(&img);
        } else {
            H = s.h;
            W = s.w;
        }
    }
    uint32_t Rt = o->rotations > 1 ? o->rotations : 1; /* the training part's */
    uint32_t Mt = o->mirror ? 2 : 1;                   /* as drawn, and mirrored */
    if (Rt > 1 && H != W) {
        err_set(e, "--rotations needs square images: %s is %ux%u (HxW) — add --resize NxN", first, H, W);
        goto done;
    }
    int nd = o->split == IMPORT_SPLIT_NONE ? 1 : 2;
    for (int d = 0; d < nd; d++) {
        /* Classes 0..Cd-1 as split, then each rotation's copies in the same
         * order, then (--mirror) all of those mirrored in the same order; the
         * held-out part of a split is stored as is. */
        uint32_t Cd = sp.classes[d], R = d ? 1 : Rt * Mt;
        const char **names = xmalloc(sizeof(char *) * Cd * R);
        char **rotated = xmalloc(sizeof(char *) * Cd * R);
        for (uint32_t c = 0; c < s.classes; c++)
            if (sp.relabel[d][c] >= 0) names[sp.relabel[d][c]] = s.names[c];
        for (uint32_t r = 1; r < R; r++)
            for (uint32_t c = 0; c < Cd; c++) {
                size_t n = strlen(names[c]) + 24;
                uint32_t q = r % Rt;
                rotated[r * Cd + c] = xmalloc(n);
                int k = q ? snprintf(rotated[r * Cd + c], n, "%s@rot%u", names[c], q * 360 / Rt)
                          : snprintf(rotated[r * Cd + c], n, "%s", names[c]);
                if (r >= Rt) snprintf(rotated[r * Cd + c] + k, n - (size_t)k, "@mirror");
                names[r * Cd + c] = rotated[r * Cd + c];
            }
        char src[256];
        describe(src, sizeof src, o, d);
        DsWriterSpec spec = {.channels = C,
                             .height = H,
                             .width = W,
                             .classes = Cd * R,
                             .compress = o->compress,
                             .has_masks = o->masks != NULL,
                             .source = src,
                             .class_names = names};
        int bad = ds_writer_create(&w[d], d ? o->test_out : o->out, &spec, e);
        for (uint32_t k = Cd; k < Cd * R; k++) free(rotated[k]);
        free(rotated);
        free(names);
        if (bad) goto done;
    }
    if (!s.paths) idxbuf = xmalloc((size_t)s.h * s.w);
    out = xmalloc((size_t)C * H * W);
    mask = o->masks ? xmalloc((size_t)H * W) : NULL;
    if (Rt > 1 || Mt > 1) {
        rot = xmalloc((size_t)C * H * W);
        rmask = mask ? xmalloc((size_t)H * W) : NULL;
    }
    if (Mt > 1) {
        mir = xmalloc((size_t)C * H * W);
        mmask = mask ? xmalloc((size_t)H * W) : NULL;
    }
    for (uint64_t i = 0; i < s.n; i++) {
        char nbuf[DS_MAX_NAME + 32], rbuf[DS_MAX_NAME + 48];
        const char *name = source_name(&s, i, nbuf, sizeof nbuf), *path = s.paths ? s.paths[i] : s.images;
        if (source_pixels(&s, i, idxbuf, o->color, &img, e) ||
            store_pixels(out, C, H, W, o, &img, &planes, path, first, e) ||
            (mask && load_mask(mask, H, W, o->masks, name, path, img.height, img.width, e)))
            goto done;
        if (s.paths) image_free(&img);
        int d = sp.dest[i];
        int32_t label = sp.relabel[d][s.labels[i]];
        if (ds_writer_add_named(w[d], out, label, mask, name, e)) goto done;
        uint32_t R = d ? 1 : Rt * Mt;
        for (uint32_t r = 1; r < R; r++) { /* the sample's turned, then mirrored copies follow it */
            uint32_t q = r % Rt, quarter = q * 4 / Rt;
            for (uint32_t c = 0; c < C && quarter; c++)
                import_rotate(rot + (size_t)c * H * W, out + (size_t)c * H * W, H, quarter);
            if (mask && quarter) import_rotate(rmask, mask, H, quarter);
            const uint8_t *px = quarter ? rot : out, *mk = quarter ? rmask : mask;
            if (r >= Rt) {
                for (uint32_t c = 0; c < C; c++)
                    import_mirror(mir + (size_t)c * H * W, px + (size_t)c * H * W, H, W);
                if (mask) import_mirror(mmask, mk, H, W);
                px = mir, mk = mmask;
            }
            int k = q ? snprintf(rbuf, sizeof rbuf, "%s@rot%u", name, q * 360 / Rt)
                      : snprintf(rbuf, sizeof rbuf, "%s", name);
            if (r >= Rt && k >= 0 && (size_t)k < sizeof rbuf)
                snprintf(rbuf + k, sizeof rbuf - (size_t)k, "@mirror");
            if (ds_writer_add_named(w[d], px, label + (int32_t)(r * sp.classes[d]), mk, rbuf, e)) goto done;
        }
    }
    if (!s.paths) {
        char what[96];
        snprintf(what, sizeof what, "%" PRIu64 " images of %ux%u", s.n, s.h, s.w);
        if (idx_end(s.gz, s.images, what, e)) goto done;
    }
    DsWriter *ws[2] = {w[0], w[1]};
    w[0] = w[1] = NULL; /* finish_all frees them, on failure too */
    if (ds_writer_finish_all(ws, nd, e)) goto done;
    for (int d = 0; d < nd; d++) {
        res->count[d] = sp.count[d] * (d ? 1 : Rt * Mt);
        res->classes[d] = sp.classes[d] * (d ? 1 : Rt * Mt);
    }
    res->height = H;
    res->width = W;
    res->channels = C;
    rc = 0;
done:
    if (s.paths) image_free(&img);
    ds_writer_abort(w[0]);
    ds_writer_abort(w[1]);
    free(idxbuf);
    free(out);
    free(planes);
    free(mask);
    free(rot);
    free(rmask);
    free(mir);
    free(mmask);
    split_free(&sp);
    source_free(&s);
    return rc;
}
