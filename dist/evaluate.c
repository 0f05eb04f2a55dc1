/* evaluate: see evaluate.h. */
#include "evaluate.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../io/atomic_file.h"
#include "../mining/metrics.h"
#include "../mining/pairs.h"

float *eval_embed(Model *m, Dataset *ds, float mean, float std, Err *e) {
    const DsMeta *meta = ds_meta(ds);
    if ((int)meta->channels != m->in_c || (int)meta->height != m->in_h || (int)meta->width != m->in_w)
        return err_set(e, "%s is %ux%ux%u but the model takes %dx%dx%d: import it with the training set's shape",
                       ds_path(ds), meta->channels, meta->height, meta->width, m->in_c, m->in_h, m->in_w),
               NULL;
    size_t N = meta->count, img = (size_t)m->in_c * m->in_h * m->in_w, D = (size_t)m->emb_dim;
    float *out = xaligned_floats(N * D);
    float *x = xaligned_floats((size_t)m->max_batch * img);
    uint8_t *pix = xmalloc(img);
    DsReader *r;
    if (ds_reader_open(ds, &r, e)) {
        free(out);
        free(x);
        free(pix);
        return NULL;
    }
    float inv = 1.0f / 255.0f;
    for (size_t s = 0; s < N; s += (size_t)m->max_batch) {
        int B = (int)MIN((size_t)m->max_batch, N - s);
        for (int i = 0; i < B; i++) {
            int32_t label;
            if (ds_read(r, s + (size_t)i, pix, &label, NULL, e)) {
                ds_reader_close(r);
                free(out);
                free(x);
                free(pix);
                return NULL;
            }
            float *xi = x + (size_t)i * img;
            for (size_t k = 0; k < img; k++) xi[k] = ((float)pix[k] * inv - mean) / std;
        }
        const float *E = model_forward(m, x, B);
        memcpy(out + s * D, E, (size_t)B * D * sizeof(float));
    }
    ds_reader_close(r);
    free(x);
    free(pix);
    return out;
}

typedef struct SimCtx {
    const float *E;
    int D;
    const float *w;
    float b;
} SimCtx;

static double sim_koch(void *ctx, int i, int j) {
    SimCtx *s = ctx;
    return pairs_koch_logit(s->E + (size_t)i * s->D, s->E + (size_t)j * s->D, s->w, s->b, s->D);
}

static double sim_dist(void *ctx, int i, int j) {
    SimCtx *s = ctx;
    const float *a = s->E + (size_t)i * s->D, *b = s->E + (size_t)j * s->D;
    double d = 0;
    for (int k = 0; k < s->D; k++) d += ((double)a[k] - b[k]) * ((double)a[k] - b[k]);
    return -sqrt(d);
}

/* Scores of a seeded balanced pair set of one dataset's embeddings. */
static void pair_scores(double *score, uint8_t *same, int npairs, const float *E, const int32_t *labels, int N,
                        uint64_t seed, SimCtx *ctx, MetricsSim sim) {
    uint32_t *a = xmalloc((size_t)npairs * sizeof(uint32_t)), *b = xmalloc((size_t)npairs * sizeof(uint32_t));
    metrics_make_pairs(a, b, same, npairs, labels, N, seed);
    ctx->E = E;
    for (int p = 0; p < npairs; p++) score[p] = sim(ctx, (int)a[p], (int)b[p]);
    free(a);
    free(b);
}

int eval_run(Model *m, const Config *c, float mean, float std, const char *test_path, const char *train_path,
             EvalResult *r, Err *e) {
    memset(r, 0, sizeof *r);
    double t0 = now_seconds();
    Dataset *ds;
    if (ds_open(&ds, test_path, e)) return -1;
    float *E = eval_embed(m, ds, mean, std, e);
    if (!E) {
        ds_close(ds);
        return -1;
    }
    const DsMeta *meta = ds_meta(ds);
    int N = (int)meta->count, D = m->emb_dim;
    const int32_t *labels = ds_labels(ds);
    r->n = N;
    r->classes = (int)meta->classes;
    int ks[2] = {1, 5};
    double rec[2];
    if (metrics_knn(rec, &r->map_r, E, labels, N, D, ks, 2, 512, e)) goto fail;
    r->recall1 = rec[0], r->recall5 = rec[1];

    SimCtx ctx = {E, D, m->has_head ? m->params + m->head_w_off : NULL, m->has_head ? m->params[m->head_b_off] : 0};
    MetricsSim sim = m->has_head ? sim_koch : sim_dist;
    if (metrics_pairs_check(labels, N, e)) goto fail;
    r->pairs = (int)c->eval_pairs;
    double *score = xmalloc((size_t)r->pairs * sizeof(double));
    uint8_t *same = xmalloc((size_t)r->pairs);
    pair_scores(score, same, r->pairs, E, labels, N, (uint64_t)c->seed, &ctx, sim);
    r->auc = metrics_roc_auc(score, same, r->pairs);
    r->eer = metrics_eer(score, same, r->pairs);
    r->threshold = NAN;
    r->ver_acc = NAN;
    if (train_path && train_path[0]) {
        /* Threshold from training pairs: embed only the images they use. */
        Dataset *tr;
        if (ds_open(&tr, train_path, e)) goto fail_pairs;
        const DsMeta *tm = ds_meta(tr);
        int TN = (int)tm->count, np = (int)c->eval_train_pairs;
        uint32_t *a = xmalloc((size_t)np * sizeof(uint32_t)), *b = xmalloc((size_t)np * sizeof(uint32_t));
        uint8_t *ts = xmalloc((size_t)np);
        metrics_make_pairs(a, b, ts, np, ds_labels(tr), TN, (uint64_t)c->seed + 1);
        size_t img = (size_t)m->in_c * m->in_h * m->in_w;
        float *x = xaligned_floats(2 * img), *ea = xaligned_floats(2 * (size_t)D);
        uint8_t *pix = xmalloc(img);
        double *tscore = xmalloc((size_t)np * sizeof(double));
        DsReader *rd;
        int bad = ds_reader_open(tr, &rd, e);
        for (int p = 0; p < np && !bad; p++) {
            uint32_t ids[2] = {a[p], b[p]};
            for (int q = 0; q < 2 && !bad; q++) {
                int32_t lab;
                bad = ds_read(rd, ids[q], pix, &lab, NULL, e);
                for (size_t k = 0; k < img; k++) x[q * img + k] = ((float)pix[k] / 255.0f - mean) / std;
            }
            if (bad) break;
            const float *pe = model_forward(m, x, 2);
            memcpy(ea, pe, 2 * (size_t)D * sizeof(float));
            SimCtx tc = ctx;
            tc.E = ea;
            tscore[p] = sim(&tc, 0, 1);
        }
        if (!bad) {
            ds_reader_close(rd);
            r->threshold = metrics_best_threshold(&r->train_acc, tscore, ts, np);
            r->ver_acc = metrics_accuracy_at(r->threshold, score, same, r->pairs);
            r->train_pairs = np;
        }
        free(a), free(b), free(ts), free(x), free(ea), free(pix), free(tscore);
        ds_close(tr);
        if (bad) goto fail_pairs;
    }
    free(score);
    free(same);
    r->nway_n = (int)c->eval_nway;
    r->kshot = (int)c->eval_kshot;
    r->trials = (int)c->eval_trials;
    r->nway = NAN;
    if (r->trials > 0) {
        Err ne;
        if (metrics_nway_check(r->nway_n, r->kshot, labels, N, &ne) == 0) {
            ctx.E = E;
            r->nway = metrics_nway(r->nway_n, r->kshot, r->trials, (uint64_t)c->seed, labels, N, sim, &ctx);
        } else {
            util_warn("N-way K-shot skipped: %s", ne.msg);
        }
    }
    free(E);
    ds_close(ds);
    r->seconds = now_seconds() - t0;
    return 0;
fail_pairs:
    free(score);
    free(same);
fail:
    free(E);
    ds_close(ds);
    return -1;
}

void eval_print(const EvalResult *r, FILE *out) {
    fprintf(out, "evaluation on %d samples, %d classes (%.1f s)\n", r->n, r->classes, r->seconds);
    fprintf(out, "  %-28s %8.4f\n", "Recall@1", r->recall1);
    fprintf(out, "  %-28s %8.4f\n", "Recall@5", r->recall5);
    fprintf(out, "  %-28s %8.4f\n", "MAP@R", r->map_r);
    if (!isnan(r->ver_acc)) {
        fprintf(out, "  %-28s %8.4f   (threshold %.4g from %d training pairs, train accuracy %.4f)\n",
                "verification accuracy", r->ver_acc, r->threshold, r->train_pairs, r->train_acc);
    }
    fprintf(out, "  %-28s %8.4f   (%d balanced test pairs)\n", "ROC AUC", r->auc, r->pairs);
    fprintf(out, "  %-28s %8.4f\n", "EER", r->eer);
    if (!isnan(r->nway)) {
        char name[64];
        snprintf(name, sizeof name, "%d-way %d-shot accuracy", r->nway_n, r->kshot);
        fprintf(out, "  %-28s %8.4f   (%d trials)\n", name, r->nway, r->trials);
    }
}

static size_t json_num(char *out, size_t cap, const char *key, double v, int last) {
    if (isnan(v)) return (size_t)snprintf(out, cap, "  \"%s\": null%s\n", key, last ? "" : ",");
    return (size_t)snprintf(out, cap, "  \"%s\": %.9g%s\n", key, v, last ? "" : ",");
}

int eval_write_json(const EvalResult *r, const char *path, Err *e) {
    const struct {
        const char *key;
        double v;
    } f[] = {{"samples", r->n},
             {"classes", r->classes},
             {"recall_at_1", r->recall1},
             {"recall_at_5", r->recall5},
             {"map_at_r", r->map_r},
             {"verification_accuracy", r->ver_acc},
             {"verification_threshold", r->threshold},
             {"train_pairs_accuracy", r->train_acc},
             {"roc_auc", r->auc},
             {"eer", r->eer},
             {"test_pairs", r->pairs},
             {"nway", r->nway_n},
             {"kshot", r->kshot},
             {"nway_trials", r->trials},
             {"nway_accuracy", r->nway},
             {"seconds", r->seconds}};
    int nf = (int)(sizeof f / sizeof f[0]);
    char buf[2048];
    size_t len = (size_t)snprintf(buf, sizeof buf, "{\n");
    for (int i = 0; i < nf; i++) len += json_num(buf + len, sizeof buf - len, f[i].key, f[i].v, i == nf - 1);
    len += (size_t)snprintf(buf + len, sizeof buf - len, "}\n");
    return atomic_file_write_all(path, buf, len, e);
}
