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
#include "../nn/parallel.h"
#include "ckpt_check.h"

int eval_model_load(EvalModel *l, const char *path, int max_batch, Err *e) {
    memset(l, 0, sizeof *l);
    Ckpt *ck;
    if (ckpt_read(&ck, path, &train_ckpt_bounds, e)) return -1;
    TrainCkpt *t = xmalloc(sizeof *t); /* large (a Config) */
    int rc = train_ckpt_check(ck, path, t, e);
    if (rc == 0) rc = norm_fit(&l->norm, &t->state.norm, t->topo.in_c, path, e);
    if (rc == 0) {
        const Config *cf = &t->cfg;
        rc = model_build(&l->model, &cf->model, path, t->topo.in_c, t->topo.in_h, t->topo.in_w, max_batch, e);
        if (rc) model_free(&l->model);
    }
    if (rc == 0) {
        memcpy(l->model.params, t->params, l->model.nparams * sizeof(float));
        if (t->nbuffers) memcpy(l->model.buffers, t->buffers, t->nbuffers * sizeof(float));
        l->cfg = t->cfg;
        l->step = t->state.step;
        l->world = (int)t->state.world;
    }
    free(t);
    ckpt_free(ck);
    return rc;
}

void eval_model_free(EvalModel *l) { model_free(&l->model); }

int eval_start_threads(Err *e) {
    char why[64];
    int threads = parallel_choose_threads(0, 1, why, sizeof why, e);
    if (threads < 0) return -1;
    parallel_init(threads);
    return 0;
}

void eval_detail_free(EvalDetail *d) {
    free(d->E);
    free(d->score);
    free(d->same);
    free(d->a);
    free(d->b);
    memset(d, 0, sizeof *d);
}

float *eval_embed(Model *m, Dataset *ds, const Norm *norm, Err *e) {
    const DsMeta *meta = ds_meta(ds);
    if (m->emb < 0)
        return err_set(e, "the model has no per-image embedding (its last layer scores pairs): set [model] "
                          "embedding to a per-image node"),
               NULL;
    if ((int)meta->channels != m->in_c || (int)meta->height != m->in_h || (int)meta->width != m->in_w)
        return err_set(e,
                       "%s is %ux%ux%u but the model takes %dx%dx%d: import it with the training set's shape",
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
    ASSERT(norm->channels == m->in_c);
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
            norm_apply(x + (size_t)i * img, pix, norm, (size_t)m->in_h * m->in_w);
        }
        const float *E = model_embed(m, x, B);
        memcpy(out + s * D, E, (size_t)B * D * sizeof(float));
    }
    ds_reader_close(r);
    free(x);
    free(pix);
    return out;
}

/* Test-time augmentation's views (eval_embed_views): the buffers, and the
 * mean of the views of B images at a time. */
typedef struct Views {
    Model *m;
    const Norm *norm;
    const AugmentSpec *aug;
    uint64_t seed;
    int views, renorm;
    float (*lut)[256];
    float *x, *x0;
    uint8_t *pix;
    double *sum;
} Views;

static void views_open(Views *v, Model *m, const Norm *norm, const AugmentSpec *aug, uint64_t seed,
                       int views) {
    size_t img = (size_t)m->in_c * m->in_h * m->in_w, D = (size_t)m->emb_dim, B = (size_t)m->max_batch;
    *v = (Views){m,    norm, aug,  seed, views, m->layers[m->emb].type == LAYER_L2NORM,
                 NULL, NULL, NULL, NULL, NULL};
    v->sum = xmalloc(B * D * sizeof(double));
    v->x = xaligned_floats(B * img);
    v->x0 = xaligned_floats(B * img);
    v->pix = xmalloc(B * img);
    v->lut = xmalloc((size_t)m->in_c * sizeof *v->lut);
    for (int c = 0; c < m->in_c; c++) norm_table(v->lut[c], norm, c);
}

static void views_close(Views *v) {
    free(v->sum);
    free(v->x);
    free(v->x0);
    free(v->pix);
    free(v->lut);
}

/* out rows (B, emb_dim; may be E0) = the mean of the views of the B images
 * pix (samples ids[i]) whose view 0 is E0's row: the sum in double, views in
 * order, normalised again after an l2norm. */
static void views_mean(Views *v, float *out, const float *E0, const uint8_t *pix, const uint64_t *ids,
                       int B) {
    Model *m = v->m;
    size_t img = (size_t)m->in_c * m->in_h * m->in_w, D = (size_t)m->emb_dim, hw = (size_t)m->in_h * m->in_w;
    for (size_t j = 0; j < (size_t)B * D; j++) v->sum[j] = E0[j];
    for (int k = 1; k < v->views; k++) {
        for (int i = 0; i < B; i++) {
            AugmentMap map;
            augment_draw_view(&map, v->aug, v->seed, (uint64_t)k, ids[i]);
            for (int c = 0; c < m->in_c; c++)
                augment_image(v->x + (size_t)i * img + c * hw, pix + (size_t)i * img + c * hw, v->lut[c],
                              &map, (int)v->aug->fill, 1, m->in_h, m->in_w);
        }
        const float *E = model_embed(m, v->x, B);
        for (size_t j = 0; j < (size_t)B * D; j++) v->sum[j] += E[j];
    }
    for (int i = 0; i < B; i++) {
        double *row = v->sum + (size_t)i * D, scale = 1.0 / v->views;
        if (v->renorm) {
            double q = 0;
            for (size_t k = 0; k < D; k++) q += row[k] * row[k];
            scale = 1.0 / MAX(sqrt(q), 1e-12);
        }
        for (size_t k = 0; k < D; k++) out[(size_t)i * D + k] = (float)(row[k] * scale);
    }
}

/* out rows (n, emb_dim) = the view means of the samples ids[0..n) of rd, in
 * batches of max_batch; with have0, out's rows already hold view 0 (the
 * image itself), else it is embedded here. 0, or -1 with e on a read error. */
static int views_of(Views *v, DsReader *rd, const uint64_t *ids, size_t n, float *out, int have0, Err *e) {
    Model *m = v->m;
    size_t img = (size_t)m->in_c * m->in_h * m->in_w, D = (size_t)m->emb_dim, hw = (size_t)m->in_h * m->in_w;
    for (size_t s = 0; s < n; s += (size_t)m->max_batch) {
        int B = (int)MIN((size_t)m->max_batch, n - s);
        for (int i = 0; i < B; i++) {
            int32_t label;
            if (ds_read(rd, ids[s + (size_t)i], v->pix + (size_t)i * img, &label, NULL, e)) return -1;
            if (!have0) norm_apply(v->x0 + (size_t)i * img, v->pix + (size_t)i * img, v->norm, hw);
        }
        views_mean(v, out + s * D, have0 ? out + s * D : model_embed(m, v->x0, B), v->pix, ids + s, B);
    }
    return 0;
}

float *eval_embed_views(Model *m, Dataset *ds, const Norm *norm, const AugmentSpec *aug, uint64_t seed,
                        int views, Err *e) {
    float *out = eval_embed(m, ds, norm, e);
    if (!out || views <= 1) return out;
    size_t N = ds_meta(ds)->count;
    uint64_t *ids = xmalloc((N + 1) * sizeof *ids);
    for (size_t i = 0; i < N; i++) ids[i] = i;
    Views v;
    views_open(&v, m, norm, aug, seed, views);
    DsReader *r = NULL;
    /* view 0 (the image itself) is eval_embed's row */
    int bad = ds_reader_open(ds, &r, e) || views_of(&v, r, ids, N, out, 1, e);
    if (r) ds_reader_close(r);
    views_close(&v);
    free(ids);
    if (bad) {
        free(out);
        return NULL;
    }
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

/* The similarity eval uses for m's embeddings E: the Koch head's logit, or
 * -distance. */
static MetricsSim model_sim(const Model *m, const float *E, SimCtx *ctx) {
    *ctx = (SimCtx){E, m->emb_dim, m->has_head ? m->params + m->head_w_off : NULL,
                    m->has_head ? m->params[m->head_b_off] : 0};
    return m->has_head ? sim_koch : sim_dist;
}

/* A two-image model that scores pairs itself (its loss reads a pair-level
 * logit, docs/graph.md): the score of (i, j) is that logit for the batch
 * [image i; image j] of the reader's dataset, in inference mode. A read
 * error is kept in e and bad (the caller checks it). */
typedef struct PairScorer {
    Model *m;
    DsReader *rd;
    const Norm *norm;
    float *x;
    uint8_t *pix;
    Err *e;
    int bad;
} PairScorer;

static double sim_model(void *ctx, int i, int j) {
    PairScorer *s = ctx;
    Model *m = s->m;
    size_t img = (size_t)m->in_c * m->in_h * m->in_w;
    uint64_t ids[2] = {(uint64_t)i, (uint64_t)j};
    for (int q = 0; q < 2 && !s->bad; q++) {
        int32_t lab;
        s->bad = ds_read(s->rd, ids[q], s->pix, &lab, NULL, s->e) != 0;
        norm_apply(s->x + q * img, s->pix, s->norm, (size_t)m->in_h * m->in_w);
    }
    if (s->bad) return 0;
    int train = m->st.train;
    m->st.train = 0;
    double z = model_forward(m, s->x, 2)[0];
    m->st.train = train;
    return z;
}

static int scorer_open(PairScorer *s, Model *m, Dataset *ds, const Norm *norm, Err *e) {
    *s = (PairScorer){m, NULL, norm, NULL, NULL, e, 0};
    if (ds_reader_open(ds, &s->rd, e)) return -1;
    size_t img = (size_t)m->in_c * m->in_h * m->in_w;
    s->x = xaligned_floats(2 * img);
    s->pix = xmalloc(img);
    return 0;
}

static void scorer_close(PairScorer *s) {
    if (s->rd) ds_reader_close(s->rd);
    free(s->x);
    free(s->pix);
}

/* How eval scores the pair (i, j) of ds's samples for m: a two-image model
 * that scores pairs itself by that logit (the pair scorer, reading the
 * images), else over the embeddings E (Koch head logit or -distance). */
typedef struct Scoring {
    MetricsSim sim;
    void *ctx;
    SimCtx s;
    PairScorer ps;
} Scoring;

static int scoring_open(Scoring *sc, Model *m, Dataset *ds, const Norm *norm, const float *E, Err *e) {
    memset(sc, 0, sizeof *sc);
    if (m->layers[m->loss].halved) {
        if (scorer_open(&sc->ps, m, ds, norm, e)) return -1;
        sc->sim = sim_model, sc->ctx = &sc->ps;
        return 0;
    }
    if (!E)
        return err_set(
            e, "the one-shot protocols compare embeddings: this model has none (set [model] embedding)");
    sc->sim = model_sim(m, E, &sc->s), sc->ctx = &sc->s;
    return 0;
}

static void scoring_close(Scoring *sc) { scorer_close(&sc->ps); }

/* Scores t (then freed) with sc; -1 when the pair scorer failed to read an
 * image (e is set). */
static int score_trials(NwayScore *out, Dataset *ds, Trials *t, Scoring *sc) {
    protocol_score(out, t, ds, sc->sim, sc->ctx);
    trials_free(t);
    return sc->ps.bad ? -1 : 0;
}

/* Scores t (drawn or read by the caller; freed) for m on ds as eval does. */
static int score_model_trials(NwayScore *out, Model *m, Dataset *ds, const Norm *norm, const float *E,
                              Trials *t, Err *e) {
    Scoring sc;
    if (scoring_open(&sc, m, ds, norm, E, e)) {
        trials_free(t);
        return -1;
    }
    int rc = score_trials(out, ds, t, &sc);
    scoring_close(&sc);
    return rc;
}

int eval_within_group(NwayScore *out, Model *m, Dataset *ds, const Norm *norm, const float *E,
                      const GroupEval *g, Err *e) {
    memset(out, 0, sizeof *out);
    Trials t;
    if (protocol_group_trials(&t, ds, g, e)) return -1;
    return score_model_trials(out, m, ds, norm, E, &t, e);
}

int eval_trials_file(NwayScore *out, Model *m, Dataset *ds, const Norm *norm, const float *E,
                     const char *path, Err *e) {
    memset(out, 0, sizeof *out);
    Trials t;
    if (protocol_read_trials(&t, ds, path, e)) return -1;
    return score_model_trials(out, m, ds, norm, E, &t, e);
}

/* The within-group trials and the trials file of p, scored by sc. */
static int run_protocol(EvalResult *r, const Config *c, Dataset *ds, Scoring *sc, const EvalProtocol *p,
                        Err *e) {
    if (p->within_group) {
        GroupEval g = {(int)c->eval_nway, (int)c->eval_kshot, (int)c->eval_trials, (uint64_t)c->seed,
                       p->rule,           p->groups};
        Trials t;
        if (protocol_group_trials(&t, ds, &g, e)) return -1;
        if (p->save_trials && protocol_write_trials(&t, ds, p->save_trials, e)) {
            trials_free(&t);
            return -1;
        }
        if (score_trials(&r->group, ds, &t, sc)) return -1;
        r->has_group = 1;
        r->group_rule = p->rule;
    }
    if (p->trials_file) {
        Trials t;
        memset(&r->file, 0, sizeof r->file);
        if (protocol_read_trials(&t, ds, p->trials_file, e) || score_trials(&r->file, ds, &t, sc)) return -1;
        r->trials_file = p->trials_file;
    }
    return 0;
}

void eval_result_free(EvalResult *r) {
    nway_score_free(&r->group);
    nway_score_free(&r->file);
    r->has_group = 0;
    r->trials_file = NULL;
}

/* Scores of a seeded balanced pair set of one dataset (sim over ctx); the
 * pairs' ids go to a, b. */
static void pair_scores(double *score, uint8_t *same, uint32_t *a, uint32_t *b, int npairs,
                        const int32_t *labels, int N, uint64_t seed, void *ctx, MetricsSim sim) {
    metrics_make_pairs(a, b, same, npairs, labels, N, seed);
    for (int p = 0; p < npairs; p++) score[p] = sim(ctx, (int)a[p], (int)b[p]);
}

int eval_run(Model *m, const Config *c, const Norm *norm, const char *test_path, const char *train_path,
             EvalResult *r, Err *e) {
    return eval_run_detail(m, c, norm, test_path, train_path, r, NULL, e);
}

int eval_run_detail(Model *m, const Config *c, const Norm *norm, const char *test_path,
                    const char *train_path, EvalResult *r, EvalDetail *keep, Err *e) {
    return eval_run_protocol(m, c, norm, test_path, train_path, NULL, r, keep, e);
}

int eval_run_protocol(Model *m, const Config *c, const Norm *norm, const char *test_path,
                      const char *train_path, const EvalProtocol *p, EvalResult *r, EvalDetail *keep,
                      Err *e) {
    memset(r, 0, sizeof *r);
    if (keep) memset(keep, 0, sizeof *keep);
    double t0 = now_seconds();
    Dataset *ds;
    if (ds_open(&ds, test_path, e)) return -1;
    /* Models without a per-image embedding (early fusion) have no
     * Recall@K or MAP@R; models that score pairs score the pairs. */
    int scorer = m->layers[m->loss].halved;
    int views = p && p->tta > 1 ? p->tta : 1;
    float *E = m->emb >= 0 ? eval_embed_views(m, ds, norm, &c->augment, (uint64_t)c->seed, views, e) : NULL;
    r->tta = E ? views : 1;
    Scoring sc;
    if ((m->emb >= 0 && !E) || scoring_open(&sc, m, ds, norm, E, e)) {
        free(E);
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
    r->map_r = NAN;
    if (E && metrics_knn(r->recall_k, &r->map_r, E, labels, N, D, ks, MAX(nk, 1), 512, e)) goto fail;
    r->recall1 = r->recall_k[0], r->recall5 = r->recall_k[4];

    if (p && run_protocol(r, c, ds, &sc, p, e)) goto fail;
    MetricsSim sim = sc.sim;
    void *ctx = sc.ctx;
    if (metrics_pairs_check(labels, N, e)) goto fail;
    r->pairs = (int)c->eval_pairs;
    double *score = xmalloc((size_t)r->pairs * sizeof(double));
    uint8_t *same = xmalloc((size_t)r->pairs);
    uint32_t *pa = xmalloc((size_t)r->pairs * sizeof(uint32_t)),
             *pb = xmalloc((size_t)r->pairs * sizeof(uint32_t));
    pair_scores(score, same, pa, pb, r->pairs, labels, N, (uint64_t)c->seed, ctx, sim);
    if (sc.ps.bad) goto fail_pairs;
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
        float *x = xaligned_floats(2 * img), *ea = xaligned_floats(2 * (size_t)D + 1);
        uint8_t *pix = xmalloc(img);
        double *tscore = xmalloc((size_t)np * sizeof(double));
        DsReader *rd;
        int bad = ds_reader_open(tr, &rd, e), opened = !bad;
        PairScorer tps = {m, rd, norm, x, pix, e, 0};
        for (int p = 0; p < np && !bad && scorer; p++) {
            tscore[p] = sim_model(&tps, (int)a[p], (int)b[p]);
            bad = tps.bad;
        }
        for (int p = 0; p < np && !bad && !scorer && views <= 1; p++) {
            uint32_t ids[2] = {a[p], b[p]};
            for (int q = 0; q < 2 && !bad; q++) {
                int32_t lab;
                bad = ds_read(rd, ids[q], pix, &lab, NULL, e);
                norm_apply(x + q * img, pix, norm, (size_t)m->in_h * m->in_w);
            }
            if (bad) break;
            const float *pe = model_embed(m, x, 2);
            memcpy(ea, pe, 2 * (size_t)D * sizeof(float));
            SimCtx tc = sc.s;
            tc.E = ea;
            tscore[p] = sim(&tc, 0, 1);
        }
        if (!bad && !scorer && views > 1) {
            /* --tta: the pairs' distinct training images embedded as view
             * means (views keyed by their own ids) in full batches, the pairs
             * scored on those rows */
            int32_t *slot = xmalloc(((size_t)TN + 1) * sizeof *slot);
            uint64_t *uid = xmalloc((2 * (size_t)np + 1) * sizeof *uid);
            size_t nu = 0;
            for (int i = 0; i < TN; i++) slot[i] = -1;
            for (int p = 0; p < np; p++) {
                uint32_t ids[2] = {a[p], b[p]};
                for (int q = 0; q < 2; q++)
                    if (slot[ids[q]] < 0) slot[ids[q]] = (int32_t)nu, uid[nu++] = ids[q];
            }
            float *U = xaligned_floats(nu * (size_t)D + 1);
            Views tv;
            views_open(&tv, m, norm, &c->augment, (uint64_t)c->seed, views);
            bad = views_of(&tv, rd, uid, nu, U, 0, e);
            views_close(&tv);
            SimCtx tc = sc.s;
            tc.E = U;
            for (int p = 0; p < np && !bad; p++) tscore[p] = sim(&tc, slot[a[p]], slot[b[p]]);
            free(slot), free(uid), free(U);
        }
        if (opened) ds_reader_close(rd);
        if (!bad) {
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
                             .koch = m->has_head || scorer};
    } else {
        free(score);
        free(same);
        free(pa);
        free(pb);
    }
    r->nway_n = (int)c->eval_nway;
    r->kshot = (int)c->eval_kshot;
    r->trials = (int)c->eval_trials;
    r->nway = r->nway_ci_low = r->nway_ci_high = NAN;
    if (r->trials > 0) {
        Err ne;
        if (metrics_nway_check(r->nway_n, r->kshot, labels, N, &ne) == 0) {
            sc.s.E = E;
            r->nway = metrics_nway(r->nway_n, r->kshot, r->trials, (uint64_t)c->seed, labels, N, sim, ctx);
            if (sc.ps.bad) goto fail;
            trials_wilson95(&r->nway_ci_low, &r->nway_ci_high, r->nway, r->trials);
        } else {
            util_warn("N-way K-shot skipped: %s", ne.msg);
        }
    }
    if (keep)
        keep->E = E;
    else
        free(E);
    scoring_close(&sc);
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
    scoring_close(&sc);
    ds_close(ds);
    eval_result_free(r);
    return -1;
}

/* One N-way line: accuracy, trials and the 95 % interval. */
static void print_nway(FILE *out, const char *what, double acc, int n, double lo, double hi) {
    fprintf(out, "  %-28s %8.4f   (%d trials, 95%% interval %.4f-%.4f)\n", what, acc, n, lo, hi);
}

static void print_score(FILE *out, const char *what, const NwayScore *s) {
    char name[96];
    snprintf(name, sizeof name, "%d-way %d-shot %s", s->n_way, s->k_shot, what);
    print_nway(out, name, s->accuracy, s->trials, s->ci_low, s->ci_high);
    if (s->groups_used < 2) return;
    for (int g = 0; g < s->ngroups; g++)
        if (s->group_trials[g])
            fprintf(out, "    %-30.30s %8.4f   (%d trials)\n", s->group_names[g], s->group_acc[g],
                    s->group_trials[g]);
}

void eval_print(const EvalResult *r, FILE *out) {
    fprintf(out, "evaluation on %d samples, %d classes (%.1f s)\n", r->n, r->classes, r->seconds);
    if (r->tta > 1) fprintf(out, "  embeddings: the mean of %d views (test-time augmentation)\n", r->tta);
    if (!isnan(r->map_r)) { /* no embedding: scored pairs only */
        fprintf(out, "  %-28s %8.4f\n", "Recall@1", r->recall1);
        fprintf(out, "  %-28s %8.4f\n", "Recall@5", r->recall5);
        fprintf(out, "  %-28s %8.4f\n", "MAP@R", r->map_r);
    }
    if (!isnan(r->ver_acc)) {
        fprintf(out, "  %-28s %8.4f   (threshold %.4g from %d training pairs, train accuracy %.4f)\n",
                "verification accuracy", r->ver_acc, r->threshold, r->train_pairs, r->train_acc);
    }
    fprintf(out, "  %-28s %8.4f   (%d balanced test pairs)\n", "ROC AUC", r->auc, r->pairs);
    fprintf(out, "  %-28s %8.4f\n", "EER", r->eer);
    if (!isnan(r->nway)) {
        char name[64];
        snprintf(name, sizeof name, "%d-way %d-shot accuracy", r->nway_n, r->kshot);
        print_nway(out, name, r->nway, r->trials, r->nway_ci_low, r->nway_ci_high);
    }
    if (r->has_group)
        print_score(out, r->group_rule == TRIALS_PAIRED ? "within group, paired drawings" : "within group",
                    &r->group);
    if (r->trials_file) {
        fprintf(out, "  trials file %s:\n", r->trials_file);
        print_score(out, "accuracy", &r->file);
    }
}

/* ---- JSON ------------------------------------------------------------------- */

typedef struct Json {
    char *buf;
    size_t len, cap;
} Json;

static void json_put(Json *j, const char *s, size_t n) {
    if (j->len + n + 1 > j->cap) j->buf = xrealloc(j->buf, j->cap = 2 * (j->len + n + 1) + 4096);
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = 0;
}

static void json_str(Json *j, const char *s) {
    json_put(j, "\"", 1);
    for (; *s; s++) {
        char esc[8];
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            json_put(j, (char[]){'\\', (char)c}, 2);
        else if (c < 0x20)
            json_put(j, esc, (size_t)snprintf(esc, sizeof esc, "\\u%04x", c));
        else
            json_put(j, s, 1);
    }
    json_put(j, "\"", 1);
}

/* "key": value, for a number (null when NaN). */
static void json_num(Json *j, const char *key, double v) {
    char b[96];
    int n = isnan(v) ? snprintf(b, sizeof b, ",\n  \"%s\": null", key)
                     : snprintf(b, sizeof b, ",\n  \"%s\": %.9g", key, v);
    json_put(j, b, (size_t)n);
}

static void json_key(Json *j, const char *key) {
    json_put(j, ",\n  ", 4);
    json_str(j, key);
    json_put(j, ": ", 2);
}

/* PREFIX_accuracy, _trials, _nway, _kshot, _ci95_low, _ci95_high, _groups
 * and _by_group ({"group": {"accuracy": A, "trials": T}, ...}); null values
 * when s is NULL (not run). */
static void json_score(Json *j, const char *prefix, const NwayScore *s) {
    static const char *const keys[] = {"accuracy", "trials",    "nway",  "kshot",
                                       "ci95_low", "ci95_high", "groups"};
    double v[7] = {NAN, NAN, NAN, NAN, NAN, NAN, NAN};
    if (s) {
        double w[7] = {s->accuracy, s->trials, s->n_way, s->k_shot, s->ci_low, s->ci_high, s->groups_used};
        memcpy(v, w, sizeof v);
    }
    char key[96];
    for (int i = 0; i < 7; i++) {
        snprintf(key, sizeof key, "%s_%s", prefix, keys[i]);
        json_num(j, key, v[i]);
    }
    snprintf(key, sizeof key, "%s_by_group", prefix);
    json_key(j, key);
    if (!s) {
        json_put(j, "null", 4);
        return;
    }
    json_put(j, "{", 1);
    int first = 1;
    for (int g = 0; g < s->ngroups; g++) {
        if (!s->group_trials[g]) continue;
        json_put(j, first ? "\n    " : ",\n    ", first ? 5 : 6);
        first = 0;
        json_str(j, s->group_names[g]);
        char b[96];
        int n = snprintf(b, sizeof b, ": {\"accuracy\": %.9g, \"trials\": %d}", s->group_acc[g],
                         s->group_trials[g]);
        json_put(j, b, (size_t)n);
    }
    json_put(j, first ? "}" : "\n  }", first ? 1 : 4);
}

int eval_write_json(const EvalResult *r, const char *path, Err *e) {
    const struct {
        const char *key;
        double v;
    } f[] = {{"classes", r->classes},
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
             {"nway_ci95_low", r->nway_ci_low},
             {"nway_ci95_high", r->nway_ci_high}};
    Json j = {0};
    char b[64];
    json_put(&j, b, (size_t)snprintf(b, sizeof b, "{\n  \"samples\": %d,\n  \"recall_at_k\": [", r->n));
    for (int k = 0; k < EVAL_MAX_K; k++) {
        double v = r->recall_k[k];
        json_put(&j, b,
                 (size_t)(isnan(v) ? snprintf(b, sizeof b, "%snull", k ? ", " : "")
                                   : snprintf(b, sizeof b, "%s%.9g", k ? ", " : "", v)));
    }
    json_put(&j, "]", 1);
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) json_num(&j, f[i].key, f[i].v);
    json_score(&j, "within_group", r->has_group ? &r->group : NULL);
    json_key(&j, "within_group_drawings");
    if (r->has_group)
        json_str(&j, r->group_rule == TRIALS_PAIRED ? "paired" : "any");
    else
        json_put(&j, "null", 4);
    json_key(&j, "trials_file");
    if (r->trials_file)
        json_str(&j, r->trials_file);
    else
        json_put(&j, "null", 4);
    json_score(&j, "trials_file", r->trials_file ? &r->file : NULL);
    json_num(&j, "tta_views", r->tta);
    json_num(&j, "seconds", r->seconds);
    json_put(&j, "\n}\n", 3);
    int rc = atomic_file_write_all(path, j.buf, j.len, e);
    free(j.buf);
    return rc;
}

double eval_nway_model(Model *m, Dataset *ds, const Norm *norm, const float *E, const Config *c) {
    Scoring sc;
    Err e;
    if (scoring_open(&sc, m, ds, norm, E, &e)) return NAN;
    double acc = metrics_nway((int)c->eval_nway, (int)c->eval_kshot, (int)c->eval_trials, (uint64_t)c->seed,
                              ds_labels(ds), (int)ds_meta(ds)->count, sc.sim, sc.ctx);
    int bad = sc.ps.bad;
    scoring_close(&sc);
    return bad ? NAN : acc;
}
