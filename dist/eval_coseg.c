/* eval_coseg: see eval_coseg.h. */
#include "eval_coseg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../io/atomic_file.h"

#define COSEG_EVAL_CAP 16 /* pairs per forward */

int coseg_model_check(const Model *m, const char *what, Err *e) {
    const ModelLayer *L = &m->layers[m->loss];
    if (L->halved || L->flat || L->oc != 1 || L->oh != m->in_h || L->ow != m->in_w)
        return err_set(e,
                       "%s is not a co-segmentation model: its loss reads %s (%dx%dx%d), not one mask logit "
                       "per input pixel (1x%dx%d; [loss] type = mask, docs/coseg.md)",
                       what, L->name, L->oc, L->oh, L->ow, m->in_h, m->in_w);
    return 0;
}

/* dst = src with each of the planes' rows of w values reversed. */
static void mirror_rows(float *dst, const float *src, size_t rows, int w) {
    for (size_t i = 0; i < rows; i++)
        for (int x = 0; x < w; x++) dst[i * (size_t)w + (size_t)(w - 1 - x)] = src[i * (size_t)w + (size_t)x];
}

void coseg_logits(Model *m, const float *x, int rows, int views, float *logit) {
    ASSERT(views >= 1 && views <= COSEG_MAX_VIEWS && rows >= 1 && rows <= m->max_batch);
    size_t lines = (size_t)rows * m->in_h, npix = lines * m->in_w;
    int train = m->st.train;
    m->st.train = 0;
    memcpy(logit, model_forward(m, x, rows), npix * sizeof *logit);
    if (views == 2) {
        float *xm = xaligned_floats(npix * m->in_c), *back = xmalloc(npix * sizeof *back);
        mirror_rows(xm, x, lines * m->in_c, m->in_w);
        mirror_rows(back, model_forward(m, xm, rows), lines, m->in_w);
        for (size_t i = 0; i < npix; i++) logit[i] = 0.5f * (logit[i] + back[i]);
        free(xm), free(back);
    }
    m->st.train = train;
}

int coseg_runner_open(CosegRunner *r, Model *m, Dataset *ds, const Norm *norm, int views, Err *e) {
    memset(r, 0, sizeof *r);
    ASSERT(views >= 1 && views <= COSEG_MAX_VIEWS);
    const DsMeta *meta = ds_meta(ds);
    if ((int)meta->channels != m->in_c || (int)meta->height != m->in_h || (int)meta->width != m->in_w)
        return err_set(e, "%s is %ux%ux%u but the model takes %dx%dx%d", ds_path(ds), meta->channels,
                       meta->height, meta->width, m->in_c, m->in_h, m->in_w);
    if (ds_reader_open(ds, &r->rd, e)) return -1;
    r->m = m;
    ASSERT(norm->channels == m->in_c);
    r->norm = *norm;
    r->cap = MIN(COSEG_EVAL_CAP, m->max_batch / 2);
    r->views = views;
    r->has_masks = meta->has_masks == DS_MASKS_OBJECT; /* class masks mark every object, not the common one */
    size_t npix = (size_t)m->in_h * m->in_w, img = (size_t)m->in_c * npix, rows = 2 * (size_t)r->cap;
    r->x = xaligned_floats(rows * img);
    r->pix = xmalloc(rows * img);
    r->truth = xcalloc(rows * npix, 1);
    r->label = xmalloc(rows * sizeof *r->label);
    r->logit = xmalloc(rows * npix * sizeof *r->logit);
    r->pred = xmalloc(rows * npix);
    return 0;
}

void coseg_runner_close(CosegRunner *r) {
    if (r->rd) ds_reader_close(r->rd);
    free(r->x), free(r->pix), free(r->truth), free(r->label), free(r->logit), free(r->pred);
    memset(r, 0, sizeof *r);
}

int coseg_runner_run(CosegRunner *r, const uint32_t *a, const uint32_t *b, int n, Err *e) {
    ASSERT(n >= 1 && n <= r->cap);
    Model *m = r->m;
    size_t npix = (size_t)m->in_h * m->in_w, img = (size_t)m->in_c * npix;
    for (int row = 0; row < 2 * n; row++) {
        uint32_t id = row < n ? a[row] : b[row - n];
        uint8_t *px = r->pix + (size_t)row * img;
        if (ds_read(r->rd, id, px, &r->label[row], r->has_masks ? r->truth + (size_t)row * npix : NULL, e))
            return -1;
        norm_apply(r->x + (size_t)row * img, px, &r->norm, npix);
    }
    coseg_logits(m, r->x, 2 * n, r->views, r->logit);
    coseg_threshold(r->pred, r->logit, (size_t)2 * n * npix);
    return 0;
}

int coseg_pair_kind(const Dataset *train, int same, int32_t label) {
    if (!same) return COSEG_NONE;
    if (!train) return COSEG_SEEN;
    uint32_t cnt = 0;
    if (label >= 0 && (uint32_t)label < ds_meta(train)->classes) ds_class_ids(train, (uint32_t)label, &cnt);
    return cnt > 0 ? COSEG_SEEN : COSEG_UNSEEN;
}

int coseg_eval_run(CosegEval *out, Model *m, const Norm *norm, const char *test_path, const char *train_path,
                   long max_pairs, int views, Err *e) {
    memset(out, 0, sizeof *out);
    out->views = views;
    double t0 = now_seconds();
    if (coseg_model_check(m, "the checkpoint", e)) return -1;
    if (!train_path || !train_path[0])
        return err_set(e, "seen and unseen classes come from the training set: give --train DB");
    Dataset *ds = NULL, *tr = NULL;
    if (ds_open(&ds, test_path, e)) return -1;
    const DsMeta *meta = ds_meta(ds);
    int rc = -1;
    uint32_t *a = NULL, *b = NULL;
    uint8_t *same = NULL;
    CosegRunner r = {0};
    if (!meta->has_masks || meta->npairs == 0) {
        err_set(e, "%s has no %s: co-segmentation is evaluated on pairs with masks (siamese synth coseg)",
                test_path, meta->has_masks ? "pairs records" : "masks");
        goto out;
    }
    if (meta->has_masks == DS_MASKS_CLASS) { /* every object marked: not the common object's pixels */
        err_set(
            e,
            "%s has class masks (every object by class): co-segmentation is scored on the common object's "
            "mask (siamese synth coseg without --class-masks)",
            test_path);
        goto out;
    }
    if (ds_open(&tr, train_path, e)) goto out;
    uint64_t n = meta->npairs;
    if (max_pairs > 0 && (uint64_t)max_pairs < n) n = (uint64_t)max_pairs;
    a = xmalloc(meta->npairs * sizeof *a), b = xmalloc(meta->npairs * sizeof *b),
    same = xmalloc(meta->npairs);
    if (ds_load_pairs(ds, a, b, same, e) || coseg_runner_open(&r, m, ds, norm, views, e)) goto out;
    size_t npix = (size_t)m->in_h * m->in_w;
    CosegStats st = {0};
    for (uint64_t p0 = 0; p0 < n; p0 += (uint64_t)r.cap) {
        int k = (int)MIN((uint64_t)r.cap, n - p0);
        if (coseg_runner_run(&r, a + p0, b + p0, k, e)) goto out;
        for (int row = 0; row < 2 * k; row++) {
            int kind = coseg_pair_kind(tr, same[p0 + (uint64_t)(row % k)], r.label[row]);
            coseg_stats_add(&st, r.pred + (size_t)row * npix, r.truth + (size_t)row * npix, npix, kind);
        }
    }
    coseg_stats_finish(&st, &out->m);
    out->pairs = n;
    out->seconds = now_seconds() - t0;
    rc = 0;
out:
    coseg_runner_close(&r);
    free(a), free(b), free(same);
    if (tr) ds_close(tr);
    ds_close(ds);
    return rc;
}

void coseg_eval_print(const CosegEval *r, FILE *out) {
    const CosegMetrics *m = &r->m;
    fprintf(out, "co-segmentation, %llu pairs (%.1f s)%s\n", (unsigned long long)r->pairs, r->seconds,
            r->views == 2 ? ", each also mirrored left-right (the two logits of a pixel averaged)" : "");
    fprintf(out, "  common object, seen classes   %6llu pairs  Jaccard %.4f  precision %.4f\n",
            (unsigned long long)m->pairs_seen, m->jaccard_seen, m->precision_seen);
    fprintf(out, "  common object, unseen classes %6llu pairs  Jaccard %.4f  precision %.4f\n",
            (unsigned long long)m->pairs_unseen, m->jaccard_unseen, m->precision_unseen);
    fprintf(out, "  common object, all            %6llu pairs  Jaccard %.4f  precision %.4f\n",
            (unsigned long long)(m->pairs_seen + m->pairs_unseen), m->jaccard, m->precision);
    fprintf(out, "  no common object              %6llu pairs  wrong pixels %.4f  predicted empty %.4f\n",
            (unsigned long long)m->pairs_none, m->wrong_pixels_none, m->empty_none);
}

/* A flat JSON object of numbers (NaN as null), written atomically to path. */
typedef struct JsonField {
    const char *key;
    double v;
} JsonField;

static int json_fields_write(const JsonField *f, int n, const char *path, Err *e) {
    char buf[32 * 64 + 16];
    ASSERT(n <= 32);
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len,
                                isnan(f[i].v) ? "%s  \"%s\": null" : "%s  \"%s\": %.9g", i ? ",\n" : "{\n",
                                f[i].key, f[i].v);
    len += (size_t)snprintf(buf + len, sizeof buf - len, "\n}\n");
    return atomic_file_write_all(path, buf, len, e);
}

int coseg_eval_write_json(const CosegEval *r, const char *path, Err *e) {
    const CosegMetrics *m = &r->m;
    const JsonField f[] = {{"jaccard_seen", m->jaccard_seen},
                           {"precision_seen", m->precision_seen},
                           {"jaccard_unseen", m->jaccard_unseen},
                           {"precision_unseen", m->precision_unseen},
                           {"jaccard", m->jaccard},
                           {"precision", m->precision},
                           {"wrong_pixels_none", m->wrong_pixels_none},
                           {"empty_none", m->empty_none},
                           {"pairs_seen", (double)m->pairs_seen},
                           {"pairs_unseen", (double)m->pairs_unseen},
                           {"pairs_none", (double)m->pairs_none},
                           {"pairs", (double)r->pairs},
                           {"tta_views", (double)r->views},
                           {"seconds", r->seconds}};
    return json_fields_write(f, (int)(sizeof f / sizeof f[0]), path, e);
}

/* ---- class maps ([loss] mask = class) ------------------------------------ */

int coseg_class_eval_run(CosegClassEval *out, Model *m, const Norm *norm, const char *test_path,
                         long max_images, Err *e) {
    ASSERT(norm->channels == m->in_c);
    memset(out, 0, sizeof *out);
    double t0 = now_seconds();
    Dataset *ds = NULL;
    if (ds_open(&ds, test_path, e)) return -1;
    const DsMeta *meta = ds_meta(ds);
    const ModelLayer *L = &m->layers[m->loss];
    int K = (int)meta->classes + 1, rc = -1;
    DsReader *rd = NULL;
    float *x = NULL, *dz = NULL;
    uint8_t *pix = NULL, *truth = NULL, *same = NULL;
    uint32_t *pa = NULL, *pb = NULL;
    if (meta->has_masks != DS_MASKS_CLASS) {
        err_set(e,
                "%s has no class masks: a class-map model is evaluated on a dataset made with siamese synth "
                "coseg --class-masks",
                test_path);
        goto out;
    }
    if ((int)meta->channels != m->in_c || (int)meta->height != m->in_h || (int)meta->width != m->in_w) {
        err_set(e, "%s is %ux%ux%u but the model takes %dx%dx%d", test_path, meta->channels, meta->height,
                meta->width, m->in_c, m->in_h, m->in_w);
        goto out;
    }
    if (L->halved || L->flat || L->oc != K || m->in_h % L->oh || m->in_w % L->ow) {
        err_set(e,
                "the checkpoint's loss node %s (%dx%dx%d) is not a class map of %s's %d classes + background",
                L->name, L->oc, L->oh, L->ow, test_path, K - 1);
        goto out;
    }
    /* A two-image model (m->pair) maps an image with its partner: it runs on
     * the dataset's pairs, a batch of k pairs as the rows [a_1..a_k;
     * b_1..b_k] as in training; n counts pairs then. */
    uint64_t n = meta->count;
    if (m->pair) {
        if (!meta->npairs) {
            err_set(e,
                    "%s has no pairs records: a two-image model's class maps depend on the partner (siamese "
                    "synth coseg writes the pairs)",
                    test_path);
            goto out;
        }
        n = meta->npairs;
        pa = xmalloc(sizeof(uint32_t) * n), pb = xmalloc(sizeof(uint32_t) * n), same = xmalloc(n);
        if (ds_load_pairs(ds, pa, pb, same, e)) goto out;
    }
    if (ds_reader_open(ds, &rd, e)) goto out;
    if (max_images > 0 && (uint64_t)max_images < n) n = (uint64_t)max_images;
    int cap = MAX(1, MIN(32, m->max_batch) & ~1), per = m->pair ? cap / 2 : cap;
    size_t npix = (size_t)m->in_h * m->in_w, img = (size_t)m->in_c * npix, plane = (size_t)L->oh * L->ow;
    int fy = m->in_h / L->oh, fx = m->in_w / L->ow;
    x = xaligned_floats((size_t)cap * img);
    dz = xaligned_floats((size_t)cap * K * plane);
    pix = xmalloc((size_t)cap * img);
    truth = xmalloc((size_t)cap * npix);
    uint64_t right = 0, right_obj = 0, right_bg = 0, obj = 0;
    int hist[257];
    for (uint64_t i0 = 0; i0 < n; i0 += (uint64_t)per) {
        int kp = (int)MIN((uint64_t)per, n - i0), k = m->pair ? 2 * kp : kp;
        for (int row = 0; row < k; row++) {
            uint64_t id = !m->pair   ? i0 + (uint64_t)row
                          : row < kp ? pa[i0 + (uint64_t)row]
                                     : pb[i0 + (uint64_t)(row - kp)];
            if (ds_read(rd, id, pix + (size_t)row * img, NULL, truth + (size_t)row * npix, e)) goto out;
            norm_apply(x + (size_t)row * img, pix + (size_t)row * img, norm, npix);
        }
        int train = m->st.train;
        m->st.train = 0;
        const float *z = model_forward(m, x, k);
        m->st.train = train;
        out->loss += coseg_class_loss(dz, z, truth, k, K, L->oh, L->ow, m->in_h, m->in_w, 1.0);
        for (int row = 0; row < k; row++)
            for (int y = 0; y < L->oh; y++)
                for (int xx = 0; xx < L->ow; xx++) {
                    memset(hist, 0, sizeof(int) * (size_t)K);
                    for (int dy = 0; dy < fy; dy++)
                        for (int dx = 0; dx < fx; dx++)
                            hist[truth[(size_t)row * npix + (size_t)(y * fy + dy) * m->in_w + xx * fx +
                                       dx]]++;
                    int want = 0, got = 0;
                    const float *zp = z + (size_t)row * K * plane + (size_t)y * L->ow + xx;
                    for (int c = 1; c < K; c++) {
                        if (hist[c] > hist[want]) want = c;
                        if (zp[(size_t)c * plane] > zp[(size_t)got * plane]) got = c;
                    }
                    right += want == got;
                    obj += want != 0;
                    right_obj += want != 0 && want == got;
                    right_bg += want == 0 && got == 0;
                }
    }
    out->images = m->pair ? 2 * n : n;
    out->positions = out->images * plane;
    out->object_positions = obj;
    out->accuracy = (double)right / (double)out->positions;
    out->object_accuracy = obj ? (double)right_obj / (double)obj : NAN;
    out->background_accuracy = out->positions > obj ? (double)right_bg / (double)(out->positions - obj) : NAN;
    out->loss /= (double)out->images;
    out->seconds = now_seconds() - t0;
    rc = 0;
out:
    if (rd) ds_reader_close(rd);
    free(x), free(dz), free(pix), free(truth), free(pa), free(pb), free(same);
    ds_close(ds);
    return rc;
}

void coseg_class_eval_print(const CosegClassEval *r, FILE *out) {
    fprintf(out, "class maps, %llu images (%.1f s)\n", (unsigned long long)r->images, r->seconds);
    fprintf(out, "  positions %llu  accuracy %.4f  loss %.4f\n", (unsigned long long)r->positions,
            r->accuracy, r->loss);
    fprintf(out, "  object positions %llu  accuracy %.4f;  background positions accuracy %.4f\n",
            (unsigned long long)r->object_positions, r->object_accuracy, r->background_accuracy);
}

int coseg_class_eval_write_json(const CosegClassEval *r, const char *path, Err *e) {
    const JsonField f[] = {{"class_accuracy", r->accuracy},
                           {"class_object_accuracy", r->object_accuracy},
                           {"class_background_accuracy", r->background_accuracy},
                           {"class_loss", r->loss},
                           {"images", (double)r->images},
                           {"positions", (double)r->positions},
                           {"object_positions", (double)r->object_positions},
                           {"seconds", r->seconds}};
    return json_fields_write(f, (int)(sizeof f / sizeof f[0]), path, e);
}
