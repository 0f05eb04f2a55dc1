/* mot: see mot.h. Box files are parsed line by line with strtod/strtol on
 * a NUL-terminated copy of the buffer; seqinfo.ini through libinih. */
#include "mot.h"

#include <errno.h>
#include <float.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "atomic_file.h"
#include "image.h"

/* ---- seqinfo.ini --------------------------------------------------------- */

typedef struct SeqinfoState {
    MotSeqInfo *info;
    const char *path;
    Err *e;
    int failed, has_len, has_w, has_h;
} SeqinfoState;

static int seqinfo_int(SeqinfoState *s, const char *name, const char *value, long max, int32_t *out) {
    long v;
    if (parse_long(value, 1, max, &v)) {
        err_set(s->e, "%s: [Sequence] %s = '%s' is not an integer in 1..%ld", s->path, name, value, max);
        return -1;
    }
    *out = (int32_t)v;
    return 0;
}

static int seqinfo_str(SeqinfoState *s, const char *name, const char *value, char *out, size_t cap) {
    if (strlen(value) >= cap) {
        err_set(s->e, "%s: [Sequence] %s is longer than %zu characters", s->path, name, cap - 1);
        return -1;
    }
    if (strchr(value, '/') || !strcmp(value, "..")) {
        err_set(s->e, "%s: [Sequence] %s = '%s' must be a plain name (no '/')", s->path, name, value);
        return -1;
    }
    snprintf(out, cap, "%s", value);
    return 0;
}

static int seqinfo_handler(void *user, const char *section, const char *name, const char *value) {
    SeqinfoState *s = user;
    if (s->failed || strcmp(section, "Sequence")) return 1; /* other sections are ignored */
    MotSeqInfo *in = s->info;
    int rc = 0;
    if (!strcmp(name, "seqLength"))
        rc = seqinfo_int(s, name, value, MOT_MAX_FRAMES, &in->frames), s->has_len = 1;
    else if (!strcmp(name, "imWidth"))
        rc = seqinfo_int(s, name, value, MOT_MAX_SIDE, &in->width), s->has_w = 1;
    else if (!strcmp(name, "imHeight"))
        rc = seqinfo_int(s, name, value, MOT_MAX_SIDE, &in->height), s->has_h = 1;
    else if (!strcmp(name, "name"))
        rc = seqinfo_str(s, name, value, in->name, sizeof in->name);
    else if (!strcmp(name, "imDir"))
        rc = seqinfo_str(s, name, value, in->im_dir, sizeof in->im_dir);
    else if (!strcmp(name, "imExt"))
        rc = seqinfo_str(s, name, value, in->im_ext, sizeof in->im_ext);
    else if (!strcmp(name, "frameRate") && parse_double(value, 1e-3, 1e6, &in->frame_rate))
        rc = err_set(s->e, "%s: [Sequence] frameRate = '%s' is not a number in (0, 1e6]", s->path, value);
    if (rc) s->failed = 1;
    return !rc;
}

static void seqinfo_defaults(MotSeqInfo *info) {
    memset(info, 0, sizeof *info);
    snprintf(info->im_dir, sizeof info->im_dir, "img1");
    snprintf(info->im_ext, sizeof info->im_ext, ".jpg");
    info->frame_rate = 30;
}

int mot_parse_seqinfo(const char *buf, size_t n, const char *path, MotSeqInfo *info, Err *e) {
    seqinfo_defaults(info);
    if (memchr(buf, 0, n)) return err_set(e, "%s: contains a NUL byte: not a seqinfo.ini text file", path);
    char *text = xmalloc(n + 1);
    memcpy(text, buf, n);
    text[n] = 0;
    SeqinfoState s = {.info = info, .path = path, .e = e};
    int rc = ini_parse_string(text, seqinfo_handler, &s);
    free(text);
    if (s.failed) return -1;
    if (rc > 0) return err_set(e, "%s:%d: malformed line (expected [Sequence] or key=value)", path, rc);
    if (!s.has_len || !s.has_w || !s.has_h)
        return err_set(e, "%s: [Sequence] needs seqLength, imWidth and imHeight (missing %s)", path,
                       !s.has_len ? "seqLength"
                       : !s.has_w ? "imWidth"
                                  : "imHeight");
    if (info->im_ext[0] != '.')
        return err_set(e, "%s: [Sequence] imExt '%s' must start with '.'", path, info->im_ext);
    return 0;
}

/* ---- box files ------------------------------------------------------------- */

enum { MOT_MAX_COLS = 16 };

/* Splits one line (NUL-terminated, no newline) into up to MOT_MAX_COLS
 * numbers separated by commas (spaces around them allowed). Returns the
 * count, or -1 when a field is not a finite number or there are too many. */
static int split_numbers(char *line, double *v) {
    int k = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        if (k == MOT_MAX_COLS) return -1;
        char *end;
        errno = 0;
        v[k] = strtod(p, &end);
        if (end == p || errno == ERANGE || !isfinite(v[k])) return -1;
        k++;
        p = end;
        while (*p == ' ' || *p == '\t' || *p == '\r') p++;
        if (!*p) return k;
        if (*p != ',') return -1;
        p++;
    }
}

static int is_int(double v) { return v == floor(v) && fabs(v) < 2e9; }

void mot_boxes_build(MotBoxes *b, const MotBox *box, size_t n, int32_t frames) {
    ASSERT(frames >= 0);
    b->n = n;
    b->frames = frames;
    b->box = xmalloc(sizeof(MotBox) * (n ? n : 1));
    b->first = xcalloc((size_t)frames + 2, sizeof(size_t));
    /* counting sort by frame keeps the input order within a frame (stable) */
    for (size_t i = 0; i < n; i++) {
        ASSERT(box[i].frame >= 1 && box[i].frame <= frames);
        b->first[box[i].frame + 1]++;
    }
    for (int32_t f = 1; f <= frames; f++) b->first[f + 1] += b->first[f];
    b->first[0] = b->first[1] = 0;
    size_t *pos = xmalloc(sizeof(size_t) * ((size_t)frames + 2));
    memcpy(pos, b->first, sizeof(size_t) * ((size_t)frames + 2));
    for (size_t i = 0; i < n; i++) b->box[pos[box[i].frame]++] = box[i];
    free(pos);
}

void mot_boxes_free(MotBoxes *b) {
    free(b->box);
    free(b->first);
    memset(b, 0, sizeof *b);
}

static const char *kind_name(MotKind k) {
    return k == MOT_DET ? "detection" : k == MOT_GT ? "ground-truth" : "result";
}

/* One line's k numbers into bx; 0 or -1 with e (the caller prefixes
 * path:line). */
static int parse_line(const double *v, int k, MotKind kind, const MotSeqInfo *in, MotBox *bx, Err *e) {
    if (!is_int(v[0]) || !is_int(v[1]))
        return err_set(e, "frame and id must be integers (got %g, %g)", v[0], v[1]);
    if (v[0] < 1 || v[0] > in->frames)
        return err_set(e, "frame %.0f is outside the sequence's frames 1..%d", v[0], in->frames);
    if (kind != MOT_DET && v[1] < 0) return err_set(e, "%s id %.0f is negative", kind_name(kind), v[1]);
    double x = v[2] - 1, y = v[3] - 1, w = v[4], h = v[5];
    if (!(w > 0) || !(h > 0)) return err_set(e, "box has no area (width %g, height %g)", w, h);
    double x0 = MAX(x, 0.0), y0 = MAX(y, 0.0), x1 = MIN(x + w, (double)in->width),
           y1 = MIN(y + h, (double)in->height);
    if (x1 <= x0 || y1 <= y0)
        return err_set(e, "box (%g,%g,%g,%g) lies wholly outside the %dx%d frame", v[2], v[3], w, h,
                       in->width, in->height);
    if (!((float)(x1 - x0) > 0) || !((float)(y1 - y0) > 0)) /* stored as floats */
        return err_set(e, "box (%g,%g,%g,%g) has no area inside the %dx%d frame in single precision", v[2],
                       v[3], w, h, in->width, in->height);
    *bx = (MotBox){.frame = (int32_t)v[0],
                   .id = (int32_t)v[1],
                   .x = (float)x0,
                   .y = (float)y0,
                   .w = (float)(x1 - x0),
                   .h = (float)(y1 - y0),
                   .score = 1,
                   .vis = 1,
                   .cls = 1,
                   .flag = 1};
    if (kind == MOT_DET) bx->id = -1;
    if (kind != MOT_GT) {
        if (k >= 7 && !(fabs(v[6]) <= FLT_MAX)) /* it would be stored as inf, and written so */
            return err_set(e, "score %g is out of the float range", v[6]);
        if (k >= 7) bx->score = (float)v[6];
        return 0;
    }
    if (k >= 7) {
        if (!is_int(v[6])) return err_set(e, "ground-truth flag %g is not an integer", v[6]);
        bx->flag = v[6] != 0;
    }
    if (k == 9) { /* MOT16/17/20: class and visibility */
        if (!is_int(v[7]) || v[7] < 1 || v[7] > 1000)
            return err_set(e, "class %g is not an integer in 1..1000", v[7]);
        if (v[8] < 0 || v[8] > 1) return err_set(e, "visibility %g is outside [0, 1]", v[8]);
        bx->cls = (int32_t)v[7];
        bx->vis = (float)v[8];
    }
    return 0;
}

/* Order of (frame, id, line) for the duplicate-id check. */
typedef struct IdKey {
    int32_t frame, id, line;
} IdKey;

static int cmp_idkey(const void *a, const void *b) {
    const IdKey *x = a, *y = b;
    if (x->frame != y->frame) return x->frame < y->frame ? -1 : 1;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return (x->line > y->line) - (x->line < y->line);
}

/* An id twice in one frame: error naming the later line; 0 if none. */
static int check_unique_ids(const MotBox *box, const int32_t *line, size_t n, const char *path, Err *e) {
    IdKey *k = xmalloc(sizeof(IdKey) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) k[i] = (IdKey){box[i].frame, box[i].id, line[i]};
    qsort(k, n, sizeof *k, cmp_idkey);
    int rc = 0;
    for (size_t i = 1; i < n && !rc; i++)
        if (k[i].frame == k[i - 1].frame && k[i].id == k[i - 1].id)
            rc = err_set(e, "%s:%d: id %d appears twice in frame %d (also line %d)", path, k[i].line, k[i].id,
                         k[i].frame, k[i - 1].line);
    free(k);
    return rc;
}

int mot_parse_boxes(const char *buf, size_t n, const char *path, MotKind kind, const MotSeqInfo *info,
                    MotBoxes *out, Err *e) {
    memset(out, 0, sizeof *out);
    if (memchr(buf, 0, n)) return err_set(e, "%s: contains a NUL byte: not a MOTChallenge text file", path);
    size_t lines = 1;
    for (size_t i = 0; i < n; i++) lines += buf[i] == '\n';
    char *text = xmalloc(n + 1);
    memcpy(text, buf, n);
    text[n] = 0;
    MotBox *box = xmalloc(sizeof(MotBox) * lines);
    int32_t *lineno = xmalloc(sizeof(int32_t) * lines);
    size_t nb = 0;
    int cols = 0, rc = 0;
    char *p = text;
    for (long ln = 1; p && *p; ln++) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        char *q = p;
        while (*q == ' ' || *q == '\t' || *q == '\r') q++;
        if (*q) {
            double v[MOT_MAX_COLS];
            Err le;
            int k = split_numbers(p, v);
            if (k < 6) {
                rc = err_set(e,
                             "%s:%ld: malformed line: expected comma-separated numbers frame,id,x,y,w,h,...",
                             path, ln);
                break;
            }
            if (!cols) cols = k;
            if (k != cols) {
                rc = err_set(e, "%s:%ld: %d columns, but the file's first line has %d", path, ln, k, cols);
                break;
            }
            if (parse_line(v, k, kind, info, &box[nb], &le)) {
                rc = err_set(e, "%s:%ld: %s", path, ln, le.msg);
                break;
            }
            lineno[nb++] = (int32_t)MIN(ln, INT32_MAX);
        }
        p = nl ? nl + 1 : NULL;
    }
    free(text);
    if (!rc && kind != MOT_DET) rc = check_unique_ids(box, lineno, nb, path, e);
    if (!rc) mot_boxes_build(out, box, nb, info->frames);
    free(box);
    free(lineno);
    return rc;
}

/* ---- writing ---------------------------------------------------------------- */

void mot_format_boxes(const MotBoxes *b, MotKind kind, char **text, size_t *len) {
    size_t cap = 128 * (b->n + 1), n = 0;
    char *t = xmalloc(cap);
    for (size_t i = 0; i < b->n; i++) {
        const MotBox *x = &b->box[i];
        int k;
        if (kind == MOT_GT)
            k = snprintf(t + n, cap - n, "%d,%d,%.2f,%.2f,%.2f,%.2f,%d,%d,%.3f\n", x->frame, x->id,
                         x->x + 1.0, x->y + 1.0, x->w, x->h, x->flag, x->cls, x->vis);
        else
            k = snprintf(t + n, cap - n, "%d,%d,%.2f,%.2f,%.2f,%.2f,%.4f,-1,-1,-1\n", x->frame,
                         kind == MOT_DET ? -1 : x->id, x->x + 1.0, x->y + 1.0, x->w, x->h, x->score);
        ASSERT(k > 0 && (size_t)k < cap - n); /* 128 bytes hold any line of finite floats */
        n += (size_t)k;
    }
    t[n] = 0;
    *text = t;
    *len = n;
}

int mot_write_boxes(const char *path, const MotBoxes *b, MotKind kind, Err *e) {
    char *t;
    size_t n;
    mot_format_boxes(b, kind, &t, &n);
    int rc = atomic_file_write_all(path, t, n, e);
    free(t);
    return rc;
}

/* ---- sequences ---------------------------------------------------------------- */

#define MOT_MAX_FILE ((size_t)1 << 31)

static int read_text(const char *path, char **out, size_t *n, Err *e) {
    return file_read_whole(path, MOT_MAX_FILE, "a MOTChallenge text file", (uint8_t **)out, n, e);
}

int mot_read_boxes(const char *path, MotKind kind, const MotSeqInfo *info, MotBoxes *out, Err *e) {
    char *buf;
    size_t n;
    memset(out, 0, sizeof *out);
    if (read_text(path, &buf, &n, e)) return -1;
    int rc = mot_parse_boxes(buf, n, path, kind, info, out, e);
    free(buf);
    return rc;
}

static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = xmalloc(n);
    snprintf(s, n, "%s/%s", a, b);
    return s;
}

void mot_frame_path(const MotSeq *s, int32_t f, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s/%06d%s", s->dir, s->info.im_dir, f, s->info.im_ext);
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* MOT15: no seqinfo.ini. The frames are img1/000001.jpg (or .png) onwards. */
static int seqinfo_infer(MotSeq *s, Err *e) {
    char path[4096];
    static const char *exts[] = {".jpg", ".png"};
    for (int k = 0; k < 2; k++) {
        snprintf(s->info.im_ext, sizeof s->info.im_ext, "%s", exts[k]);
        mot_frame_path(s, 1, path, sizeof path);
        if (file_exists(path)) break;
        if (k == 1)
            return err_set(
                e,
                "%s: no seqinfo.ini and no first frame img1/000001.jpg or .png: not a MOTChallenge "
                "sequence",
                s->dir);
    }
    int32_t f = 1;
    while (f < MOT_MAX_FRAMES) {
        mot_frame_path(s, f + 1, path, sizeof path);
        if (!file_exists(path)) break;
        f++;
    }
    s->info.frames = f;
    mot_frame_path(s, 1, path, sizeof path);
    Image img;
    if (image_load(&img, path, e)) return -1;
    s->info.width = (int32_t)img.width;
    s->info.height = (int32_t)img.height;
    image_free(&img);
    return 0;
}

int mot_seq_open(MotSeq *s, const char *dir, Err *e) {
    memset(s, 0, sizeof *s);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return err_set(e, "%s: not a directory (expected a MOTChallenge sequence)", dir);
    s->dir = xstrdup(dir);
    size_t dl = strlen(s->dir);
    while (dl > 1 && s->dir[dl - 1] == '/') s->dir[--dl] = 0;
    char *ini = join(s->dir, "seqinfo.ini");
    int rc;
    if (file_exists(ini)) {
        char *buf;
        size_t n;
        rc = read_text(ini, &buf, &n, e);
        if (!rc) {
            rc = mot_parse_seqinfo(buf, n, ini, &s->info, e);
            free(buf);
        }
    } else {
        seqinfo_defaults(&s->info);
        rc = seqinfo_infer(s, e);
    }
    free(ini);
    if (!rc && !s->info.name[0]) {
        const char *base = strrchr(s->dir, '/');
        snprintf(s->info.name, sizeof s->info.name, "%s", base ? base + 1 : s->dir);
    }
    if (rc) mot_seq_close(s);
    return rc;
}

void mot_seq_close(MotSeq *s) {
    free(s->dir);
    memset(s, 0, sizeof *s);
}

int mot_seq_boxes(const MotSeq *s, MotKind kind, MotBoxes *out, Err *e) {
    ASSERT(kind != MOT_RES);
    char *p = join(s->dir, kind == MOT_DET ? "det/det.txt" : "gt/gt.txt");
    int rc = mot_read_boxes(p, kind, &s->info, out, e);
    free(p);
    return rc;
}

double mot_iou(const MotBox *a, const MotBox *b) {
    double ix = MIN(a->x + a->w, b->x + b->w) - MAX(a->x, b->x);
    double iy = MIN(a->y + a->h, b->y + b->h) - MAX(a->y, b->y);
    if (ix <= 0 || iy <= 0) return 0;
    double inter = ix * iy, uni = (double)a->w * a->h + (double)b->w * b->h - inter;
    return uni > 0 ? inter / uni : 0;
}

void mot_crop(uint8_t *out, const Image *img, const MotBox *b, int oh, int ow) {
    int W = (int)img->width, H = (int)img->height, C = (int)img->channels;
    int x0 = (int)floorf(b->x), y0 = (int)floorf(b->y), x1 = (int)ceilf(b->x + b->w),
        y1 = (int)ceilf(b->y + b->h);
    x0 = MIN(MAX(x0, 0), W - 1), y0 = MIN(MAX(y0, 0), H - 1);
    x1 = MIN(MAX(x1, x0 + 1), W), y1 = MIN(MAX(y1, y0 + 1), H);
    int cw = x1 - x0, ch = y1 - y0;
    uint8_t *plane = xmalloc((size_t)cw * ch);
    for (int c = 0; c < C; c++) {
        for (int y = 0; y < ch; y++)
            for (int x = 0; x < cw; x++)
                plane[y * cw + x] = img->pixels[((size_t)(y0 + y) * W + x0 + x) * C + c];
        image_resize(out + (size_t)c * oh * ow, (uint32_t)oh, (uint32_t)ow, plane, (uint32_t)ch,
                     (uint32_t)cw);
    }
    free(plane);
}
