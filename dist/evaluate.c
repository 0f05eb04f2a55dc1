/* evaluate: see evaluate.h. */
#include "evaluate.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../io/atomic_file.h"
#include "../io/checkpoint.h"
#include "../mining/metrics.h"
#include "../mining/pairs.h"

static double state_value(const char *state, size_t n, const char *key, double def) {
    size_t kl = strlen(key);
    for (const char *p = state; p && p < state + n;) {
        if (!strncmp(p, key, kl) && p[kl] == '=') return strtod(p + kl + 1, NULL);
        p = memchr(p, '\n', (size_t)(state + n - p));
        if (p) p++;
    }
    return def;
}

int eval_model_load(EvalModel *l, const char *path, int max_batch, Err *e) {
    memset(l, 0, sizeof *l);
    Ckpt *ck;
    if (ckpt_read(&ck, path, e)) return -1;
    size_t n;
    size_t tn;
    const char *text = ckpt_get(ck, "config", &n), *tp = ckpt_get(ck, "topology", &tn);
    int c, h, w, rc = -1;
    /* Sections are bytes, not strings: copy with a terminating NUL. */
    char *ctext = text ? strndup(text, n) : NULL, *topo = tp ? strndup(tp, tn) : NULL;
    if (!ctext || !topo) {
        err_set(e, "%s: no config or topology section: not a training checkpoint", path);
        goto out;
    }
    if (config_parse_text(&l->cfg, ctext, path, e)) goto out;
    if (sscanf(topo, "input %dx%dx%d", &c, &h, &w) != 3) {
        err_set(e, "%s: topology section has no input shape", path);
        goto out;
    }
    const Config *cf = &l->cfg;
    if (model_build(&l->model, cf->layers, cf->nlayers, cf->head_type == HEAD_KOCH, cf->head_lr_mult,
                    cf->head_l2, path, c, h, w, max_batch, e))
        goto out;
    const float *p = ckpt_require(ck, "params", l->model.nparams * sizeof(float), e);
    if (!p) {
        model_free(&l->model);
        goto out;
    }
    memcpy(l->model.params, p, l->model.nparams * sizeof(float));
    const char *st = ckpt_get(ck, "state", &n);
    l->mean = st ? (float)state_value(st, n, "mean", 0) : 0;
    l->std = st ? (float)state_value(st, n, "std", 1) : 1;
    l->step = st ? (unsigned long long)state_value(st, n, "step", 0) : 0;
    l->world = st ? (int)state_value(st, n, "world", 0) : 0;
    rc = 0;
out:
    free(ctext);
    free(topo);
    ckpt_free(ck);
    return rc;
}

void eval_model_free(EvalModel *l) { model_free(&l->model); }

void eval_detail_free(EvalDetail *d) {
    free(d->E);
    free(d->score);
    free(d->same);
    free(d->a);
    free(d->b);
    memset(d, 0, sizeof *d);
}

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

/* Scores of a seeded balanced pair set of one dataset's embeddings; the
 * pairs' ids go to a, b. */
static void pair_scores(double *score, uint8_t *same, uint32_t *a, uint32_t *b, int npairs, const float *E,
                        const int32_t *labels, int N, uint64_t seed, SimCtx *ctx, MetricsSim sim) {
    metrics_make_pairs(a, b, same, npairs, labels, N, seed);
    ctx->E = E;
    for (int p = 0; p < npairs; p++) score[p] = sim(ctx, (int)a[p], (int)b[p]);
}

int eval_run(Model *m, const Config *c, float mean, float std, const char *test_path, const char *train_path,
             EvalResult *r, Err *e) {
    return eval_run_detail(m, c, mean, std, test_path, train_path, r, NULL, e);
}

int eval_run_detail(Model *m, const Config *c, float mean, float std, const char *test_path,
                    const char *train_path, EvalResult *r, EvalDetail *keep, Err *e) {
    memset(r, 0, sizeof *r);
    if (keep) memset(keep, 0, sizeof *keep);
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
    int ks[EVAL_MAX_K], nk = MIN(EVAL_MAX_K, N - 1);
    for (int k = 0; k < EVAL_MAX_K; k++) ks[k] = k + 1, r->recall_k[k] = NAN;
    if (metrics_knn(r->recall_k, &r->map_r, E, labels, N, D, ks, MAX(nk, 1), 512, e)) goto fail;
    r->recall1 = r->recall_k[0], r->recall5 = r->recall_k[4];

    SimCtx ctx = {E, D, m->has_head ? m->params + m->head_w_off : NULL, m->has_head ? m->params[m->head_b_off] : 0};
    MetricsSim sim = m->has_head ? sim_koch : sim_dist;
    if (metrics_pairs_check(labels, N, e)) goto fail;
    r->pairs = (int)c->eval_pairs;
    double *score = xmalloc((size_t)r->pairs * sizeof(double));
    uint8_t *same = xmalloc((size_t)r->pairs);
    uint32_t *pa = xmalloc((size_t)r->pairs * sizeof(uint32_t)),
             *pb = xmalloc((size_t)r->pairs * sizeof(uint32_t));
    pair_scores(score, same, pa, pb, r->pairs, E, labels, N, (uint64_t)c->seed, &ctx, sim);
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
    if (keep) {
        *keep = (EvalDetail){.n = N,
                             .dim = D,
                             .score = score,
                             .same = same,
                             .a = pa,
                             .b = pb,
                             .pairs = r->pairs,
                             .koch = m->has_head};
    } else {
        free(score);
        free(same);
        free(pa);
        free(pb);
    }
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
    if (keep)
        keep->E = E;
    else
        free(E);
    ds_close(ds);
    r->seconds = now_seconds() - t0;
    return 0;
fail_pairs:
    free(score);
    free(same);
    free(pa);
    free(pb);
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
    char buf[4096];
    size_t len = (size_t)snprintf(buf, sizeof buf, "{\n  \"recall_at_k\": [");
    for (int k = 0; k < EVAL_MAX_K; k++) {
        double v = r->recall_k[k];
        len += (size_t)(isnan(v) ? snprintf(buf + len, sizeof buf - len, "%snull", k ? ", " : "")
                                 : snprintf(buf + len, sizeof buf - len, "%s%.9g", k ? ", " : "", v));
    }
    len += (size_t)snprintf(buf + len, sizeof buf - len, "],\n");
    for (int i = 0; i < nf; i++) len += json_num(buf + len, sizeof buf - len, f[i].key, f[i].v, i == nf - 1);
    len += (size_t)snprintf(buf + len, sizeof buf - len, "}\n");
    return atomic_file_write_all(path, buf, len, e);
}
