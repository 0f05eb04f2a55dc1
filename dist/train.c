/* train: see train.h. The step, per rank (docs/training.md, "The training step"):
 * local batch from the prefetch thread -> forward -> allgather of embeddings
 * and labels (PK batches, global scope) -> loss of the local anchors against
 * the global pool, normalised by a global count -> reduce-scatter of dE/dE ->
 * backward with bucketed allreduce -> the same optimizer step everywhere.
 * For the same global batch the result equals a 1-rank run to rounding. */
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "evaluate.h"
#include "mem_limit.h"
#include "../nn/parallel.h"
#include "../mining/coseg.h"
#include "../mining/exchange.h"
#include "watchdog.h"

volatile sig_atomic_t train_stop_requested = 0;

void textbuf_append(TextBuf *b, const char *text, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = MAX(b->cap * 2, b->len + n + 4096);
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, text, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void metrics_append(Trainer *t, const char *line) { textbuf_append(&t->metrics, line, strlen(line)); }

#define METRICS_HEADER "step,epoch,loss,data_loss,active_fraction,hardness,lr,grad_norm\n"

/* Batch norm's sums over ranks (the model has no MPI). */
static void model_allreduce(void *ctx, double *v, int n) {
    (void)ctx;
    dist_allreduce_sum_doubles(v, n);
}

/* The node the loss reads fits the loss and the sampler (docs/graph.md). */
static int check_loss_node(const Trainer *t, Err *e) {
    const Config *c = &t->cfg;
    const Model *m = &t->model;
    const ModelLayer *L = &m->layers[m->loss];
    if (m->pair && c->sampler.mode != SAMPLER_PAIRS && c->sampler.mode != SAMPLER_COSEG)
        return err_set(
            e,
            "%s: the model reads halves (NODE@a / NODE@b): two-image models need [sampler] mode = pairs "
            "or coseg",
            c->path);
    if (c->loss.type == LOSS_MASK && c->loss.mask == MASK_CLASS) {
        const DsMeta *dm = ds_meta(t->ds);
        int K = (int)dm->classes + 1;
        if (dm->has_masks != DS_MASKS_CLASS)
            return err_set(e,
                           "%s has %s: [loss] mask = class trains on class masks (siamese synth coseg "
                           "--class-masks)",
                           c->data_train, dm->has_masks ? "object masks, not class masks" : "no masks");
        if (L->halved || L->flat || L->oc != K || L->oh < 1 || L->ow < 1 || m->in_h % L->oh ||
            m->in_w % L->ow)
            return err_set(e,
                           "%s: [loss] mask = class reads %s, %s of %dx%dx%d: it needs a per-image node of "
                           "%d channels (classes + 1: background, then each class) whose height and width "
                           "divide the input's %dx%d (docs/coseg.md)",
                           c->path, L->name, L->halved ? "a pair-level node" : "a node", L->oc, L->oh, L->ow, K,
                           m->in_h, m->in_w);
    } else if (c->loss.type == LOSS_MASK) {
        if (L->halved || L->flat || L->oc != 1 || L->oh != m->in_h || L->ow != m->in_w)
            return err_set(e,
                           "%s: [loss] type = mask reads %s, %s of %dx%dx%d: it needs a per-image node of "
                           "1x%dx%d, one mask logit per input pixel (docs/coseg.md)",
                           c->path, L->name, L->halved ? "a pair-level node" : "a node", L->oc, L->oh, L->ow,
                           m->in_h, m->in_w);
        if (!ds_meta(t->ds)->has_masks)
            return err_set(
                e,
                "%s has no masks: [loss] type = mask trains on a dataset with masks (siamese synth "
                "coseg, or an import with a mask tree)",
                c->data_train);
        if (ds_meta(t->ds)->has_masks == DS_MASKS_CLASS)
            return err_set(e,
                           "%s has class masks (every object by class): [loss] mask = %s trains on the mask of "
                           "each sample's own object (siamese synth coseg without --class-masks), or set mask "
                           "= class",
                           c->data_train, config_enum_name("loss", "mask", c->loss.mask));
    } else if (L->halved) {
        if (c->loss.type != LOSS_BCE || c->model.koch_head || L->out_size != 1)
            return err_set(
                e,
                "%s: the loss reads %s, a pair-level node of %zu values per pair: only [loss] type = bce "
                "without a head reads one, and it needs one logit per pair",
                c->path, L->name, L->out_size);
    } else if (c->loss.type == LOSS_BCE && !c->model.koch_head) {
        return err_set(
            e,
            "%s: [loss] type = bce without [head] type = koch reads a pair-level node of one logit per "
            "pair, not %s (one row per image)",
            c->path, L->name);
    }
    return 0;
}

/* "12.34 GB" or, under 1 GB, "56.7 MB". */
static const char *fmt_gb(char *s, double bytes) {
    snprintf(s, 24, bytes >= 1e9 ? "%.2f GB" : "%.1f MB", bytes >= 1e9 ? bytes / 1e9 : bytes / 1e6);
    return s;
}

/* The memory a rank may use ([run] max_memory, dist/mem_limit.h): the
 * smallest limit of any rank, so all agree (collective); INFINITY if none.
 * why says where it comes from. */
static double agreed_limit(const Config *c, char *why, size_t n) {
    double limit = mem_limit_bytes(c->max_memory, dist_local_ranks(), why, n);
    double least = -dist_max_double(limit > 0 ? -limit : -INFINITY);
    if (least < INFINITY && limit != least) snprintf(why, n, "the smallest limit of the ranks");
    return least;
}

/* The memory the planned model (parameters, gradients, buffers,
 * activations, what backward keeps, workspaces), the optimizer state, the
 * prefetched batches and the mining pool need on this rank, against
 * [run] max_memory (dist/mem_limit.h), before anything of them is
 * allocated; the error gives the figure and the node that dominates it.
 * Every rank reaches this point and takes the smallest limit of any rank,
 * so all agree. */
static int check_memory(const Trainer *t, int max_images, int max_items, Err *e) {
    const Config *c = &t->cfg;
    const Model *m = &t->model;
    const DsMeta *dm = ds_meta(t->ds);
    double node = 0, model = (double)model_shared_memory(m);
    int big = 0;
    for (int i = 0; i < m->nlayers; i++) {
        ModelMemory mm;
        model_layer_memory(m, i, &mm);
        double own = (double)mm.params + (double)mm.buffers + (double)mm.activations + (double)mm.state;
        model += own;
        if (own + (double)mm.workspace > node) node = own + (double)mm.workspace, big = i;
    }
    size_t shard = c->optim.shard ? m->nparams / (size_t)t->world + 16 : m->nparams;
    double optim = 4.0 * (double)optim_state_floats(&c->optim, MIN(shard, m->nparams)) +
                   4.0 * (double)GRADSYNC_SCRATCH_FLOATS(m->nparams, t->world);
    double img = (double)dm->channels * dm->height * dm->width, hw = (double)dm->height * dm->width;
    double batches = 2 * (double)max_images * (4 * img + (dm->has_masks ? hw : 0)); /* prefetch's 2 slots */
    double mining = 4.0 * (double)max_images * (double)t->D;
    if (classes_active(c)) {
        mining += 4.0 * classes_exchange_floats(c, t->D, max_items, t->world) + 4.0 * t->global_items;
    } else if (c->sampler.mode == SAMPLER_PK) {
        int N = t->global_items, Na = c->mining.scope == SCOPE_GLOBAL ? max_items : N;
        mining += 4.0 * (2.0 * N * t->D +
                         (double)MAX(triplet_workspace_floats(N, Na), pairs_workspace_floats(N, Na)));
    }
    double need = model + optim + batches + mining;
    char why[160];
    double least = agreed_limit(c, why, sizeof why);
    if (!(least < INFINITY) || need <= least) return 0;
    const ModelLayer *L = &m->layers[big];
    char f[5][24];
    return err_set(
        e,
        "%s: training needs %s per rank for batches of %d images (node %s: %s of parameters, gradients, "
        "activations and workspace; optimizer state and gradient reduction %s; batches and mining %s), more than the limit "
        "of %s (%s); shrink %s or the batch, or set [run] max_memory",
        c->path, fmt_gb(f[0], need), max_images, L->name, fmt_gb(f[1], node), fmt_gb(f[2], optim),
        fmt_gb(f[3], batches + mining), fmt_gb(f[4], least), why, L->name);
}

/* [init] from: the parameters and buffers of the checkpoint's layers that
 * the model has by name. Every rank reads the file: the same bits, or the
 * same error on every rank. */
static int init_from(Trainer *t, const char *path, Err *e) {
    EvalModel src;
    Err le;
    if (eval_model_load(&src, path, 2, &le)) return err_set(e, "[init] from: %s", le.msg);
    int n = model_copy_layers(&t->model, &src.model, &le);
    eval_model_free(&src);
    if (n < 0) return err_set(e, "[init] from = %s: %s", path, le.msg);
    if (t->rank == 0) printf("init: %d layers from %s\n", n, path);
    return 0;
}

int trainer_setup(Trainer *t, const char *cfg_text, int debug, Err *e) {
    memset(t, 0, sizeof *t);
    t->rank = dist_rank();
    t->world = dist_world();
    t->debug = debug;
    t->cfg_text = xstrdup(cfg_text);
    Config *c = &t->cfg;
    if (config_parse_text(c, cfg_text, "effective config", e)) return -1;
    /* Before anything sized by the thread count (workspaces); collective. */
    int sharing = dist_ranks_sharing_cpus();
    t->threads = parallel_choose_threads(c->threads, sharing, t->threads_why, sizeof t->threads_why, e);
    if (t->threads < 0) return -1;
    parallel_init(t->threads);
    /* The class index within the memory limit, checked before it is read. */
    char why[160];
    double limit = agreed_limit(c, why, sizeof why);
    if (ds_open_within(&t->ds, c->data_train, limit < INFINITY ? limit : 0, why, e)) return -1;
    const DsMeta *m = ds_meta(t->ds);
    if (c->data_shape[0]) {
        int sc, sh, sw;
        if (model_parse_shape(c->data_shape, &sc, &sh, &sw))
            return err_set(e, "[data] shape = '%s': expected CxHxW, e.g. 1x28x28", c->data_shape);
        if ((uint32_t)sc != m->channels || (uint32_t)sh != m->height || (uint32_t)sw != m->width)
            return err_set(e, "%s is %ux%ux%u but the config's [data] shape is %s: import with --resize %dx%d or fix "
                              "the config", c->data_train, m->channels, m->height, m->width, c->data_shape, sh, sw);
    }
    if (norm_resolve(&t->norm, c->data_mean, c->data_std, (int)m->channels, m->channel_mean, m->channel_std,
                     c->path, e))
        return -1;
    SamplerSpec ss = c->sampler;
    ss.seed = (uint64_t)c->seed; /* [run] seed */
    if (sampler_init(&t->sampler, &ss, t->ds, e)) return -1;
    t->global_items = sampler_global_items(&t->sampler);
    t->per_item = sampler_images_per_item(&t->sampler);
    if (t->global_items < t->world)
        return err_set(e, "the global batch has %d items but %d ranks run: every rank needs at least one; use fewer "
                          "ranks or a larger batch", t->global_items, t->world);
    t->steps_per_epoch = sampler_steps_per_epoch(&t->sampler);
    t->total_steps = c->steps > 0 ? (uint64_t)c->steps : (uint64_t)c->epochs * t->steps_per_epoch;
    int begin, max_items;
    sampler_shard(t->global_items, 0, t->world, &begin, &max_items); /* rank 0 has the largest slice */
    int max_images = max_items * t->per_item;
    if (model_plan(&t->model, &c->model, c->path, (int)m->channels, (int)m->height, (int)m->width, max_images,
                   e))
        return -1;
    t->D = (int)model_node_size(&t->model, t->model.loss);
    if (check_loss_node(t, e) || check_memory(t, max_images, max_items, e)) {
        model_free(&t->model);
        memset(&t->model, 0, sizeof t->model);
        return -1;
    }
    model_alloc(&t->model);
    t->model.allreduce = model_allreduce;
    if (t->rank == 0) model_init(&t->model, c->init_scheme, (uint64_t)c->seed);
    dist_bcast_floats(t->model.params, t->model.nparams);
    dist_bcast_floats(t->model.buffers, t->model.nbuffers);
    if (c->init_from[0] && init_from(t, c->init_from, e)) return -1;

    t->opt = c->optim;
    size_t np = t->model.nparams;
    t->nstate = optim_state_floats(&t->opt, np);
    t->shard_lo = xcalloc((size_t)t->world, sizeof(size_t));
    t->shard_n = xcalloc((size_t)t->world, sizeof(size_t));
    t->norm_part = xcalloc((size_t)t->world, sizeof(double));
    for (int r = 0; r < t->world; r++) {
        size_t hi;
        optim_shard(np, t->opt.shard ? t->world : 1, t->opt.shard ? r : 0, &t->shard_lo[r], &hi);
        t->shard_n[r] = hi - t->shard_lo[r];
    }
    t->opt_lo = t->shard_lo[t->rank], t->opt_hi = t->opt_lo + t->shard_n[t->rank];
    t->opt_state = xaligned_floats(optim_state_floats(&t->opt, t->opt_hi - t->opt_lo));
    size_t bucket = (size_t)c->bucket_kfloats * 1000;
    t->gs = t->opt.shard ? gradsync_create_shards(t->model.grads, np, bucket, t->shard_lo, t->shard_n)
                         : gradsync_create(t->model.grads, np, bucket);

    t->rows = xcalloc((size_t)t->world, sizeof(int));
    t->offsets = xcalloc((size_t)t->world, sizeof(int));
    for (int r = 0; r < t->world; r++) sampler_shard(t->global_items, r, t->world, &t->offsets[r], &t->rows[r]);
    size_t D = (size_t)t->D;
    t->dE = xaligned_floats((size_t)max_images * D);
    if (classes_active(c)) { /* the labels of the batch, and only the rows the anchors need */
        t->pool_labels = xcalloc((size_t)t->global_items, sizeof(int32_t));
        t->cls = classes_exchange_create(t, max_items);
    } else if (c->sampler.mode == SAMPLER_PK) {
        int N = t->global_items;
        t->pool_E = xaligned_floats((size_t)N * D);
        t->pool_dE = xaligned_floats((size_t)N * D);
        t->pool_labels = xcalloc((size_t)N, sizeof(int32_t));
        if (c->mining.exchange != EXCHANGE_FP32) t->pool_x = xmalloc((size_t)N * D * exchange_bytes(c->mining.exchange));
        /* A rank mines only its own anchors (at most max_items) against
         * the pool: the workspace is N x anchors, not N x N. */
        int Na = c->mining.scope == SCOPE_GLOBAL ? max_items : N;
        size_t ws = MAX(triplet_workspace_floats(N, Na), pairs_workspace_floats(N, Na));
        ws = MAX(ws, simloss_workspace_floats(N, Na));
        t->ws = xaligned_floats(ws);
    } else if (c->loss.type == LOSS_MASK) {
        t->has_target = xcalloc((size_t)max_images, 1);
    } else if (c->sampler.mode == SAMPLER_PAIRS || c->sampler.mode == SAMPLER_COSEG) {
        t->pairs = xcalloc((size_t)max_items, sizeof(IndexPair));
    } else {
        t->triplets = xcalloc((size_t)max_items, sizeof(IndexTriplet));
        triplet_list_thirds(t->triplets, 0, max_items);
    }
    if (trainer_val_open(t, e)) return -1;
    if (t->rank == 0) {
        metrics_append(t, METRICS_HEADER);
        trainer_val_header(t);
    }
    return 0;
}

void trainer_free(Trainer *t) {
    if (t->pf) prefetch_stop(t->pf);
    if (t->gs) gradsync_free(t->gs);
    if (t->model.params) model_free(&t->model);
    if (t->sampler.spec.p || t->sampler.name) sampler_free(&t->sampler);
    if (t->ds) ds_close(t->ds);
    if (t->timing) fclose(t->timing);
    if (t->metrics_file) fclose(t->metrics_file);
    free(t->opt_state);
    free(t->shard_lo);
    free(t->shard_n);
    free(t->norm_part);
    free(t->rows);
    free(t->offsets);
    free(t->pool_E);
    free(t->pool_dE);
    free(t->pool_labels);
    free(t->pool_x);
    classes_exchange_free(t->cls);
    free(t->dE);
    free(t->ws);
    free(t->pairs);
    free(t->triplets);
    free(t->has_target);
    free(t->metrics.s);
    free(t->evalcsv.s);
    if (t->val) ds_close(t->val);
    if (t->eval_file) fclose(t->eval_file);
    free(t->prof);
    free(t->cfg_text);
    memset(t, 0, sizeof *t);
}

BatchDecode trainer_decode(const Trainer *t) {
    BatchDecode d = {t->norm, &t->cfg.augment, (uint64_t)t->cfg.seed};
    return d;
}

/* The configured PK loss of anchors [a0, a1) against the pool E (N, D):
 * the contract of triplet.h (the head's gradient into the arena too). */
LossStats trainer_pool_loss(Trainer *t, float *dpool, float *ws, const float *pool, const int32_t *labels,
                            int N, int a0, int a1) {
    const Config *c = &t->cfg;
    Model *m = &t->model;
    int D = t->D;
    float *hw = m->has_head ? m->params + m->head_w_off : NULL;
    float hb = m->has_head ? m->params[m->head_b_off] : 0;
    float *dhw = m->has_head ? m->grads + m->head_w_off : NULL,
          *dhb = m->has_head ? m->grads + m->head_b_off : NULL;
    float margin = (float)c->loss.margin;
    if (c->loss.type == LOSS_TRIPLET)
        return triplet_loss(dpool, NULL, ws, pool, labels, c->mining.strategy, margin, (int)c->loss.soft, N,
                            D, a0, a1);
    if (c->loss.type == LOSS_CONTRASTIVE)
        return c->mining.strategy == MINE_HARD_PAIRS
                   ? pairs_contrastive_hard(dpool, NULL, ws, pool, labels, margin, N, D, a0, a1)
                   : pairs_contrastive_all(dpool, ws, pool, labels, margin, N, D, a0, a1);
    if (c->loss.type == LOSS_INFONCE)
        return simloss_infonce(dpool, ws, pool, labels, (float)c->loss.temperature, (int)c->loss.symmetric, N,
                               D, a0, a1);
    if (c->loss.type == LOSS_MULTI_SIMILARITY)
        return simloss_multi_similarity(
            dpool, ws, pool, labels, (float)c->loss.ms_alpha, (float)c->loss.ms_beta, (float)c->loss.ms_base,
            (float)c->mining.epsilon, c->mining.strategy == MINE_MULTI_SIMILARITY, N, D, a0, a1);
    return pairs_koch_hard(dpool, dhw, dhb, NULL, ws, pool, labels, hw, hb, N, D, a0, a1);
}

/* Loss of this rank's share, unnormalised gradient into *dEout (and the head
 * gradient into the arena). Returns the stats to be summed over ranks. With
 * want_grad == 0 only the stats are needed (dE is still written: cheap). */
static LossStats local_loss(Trainer *t, const Batch *b, const float *E, float **dEout, int *pool_rows) {
    const Config *c = &t->cfg;
    const LocalBatch *lb = &b->lb;
    size_t D = (size_t)t->D;
    Model *m = &t->model;
    float *hw = m->has_head ? m->params + m->head_w_off : NULL;
    float hb = m->has_head ? m->params[m->head_b_off] : 0;
    float *dhw = m->has_head ? m->grads + m->head_w_off : NULL, *dhb = m->has_head ? m->grads + m->head_b_off : NULL;
    float margin = (float)c->loss.margin;
    LossStats s = {0};
    if (t->cls) {
        s = classes_exchange_loss(t, lb, E, dEout, pool_rows);
    } else if (c->sampler.mode == SAMPLER_PK) {
        const float *pool = E;
        const int32_t *labels = lb->labels;
        int N = lb->n_items, a0 = 0, a1 = lb->n_items;
        float *dpool = t->dE;
        ExchangeFormat ex = c->mining.exchange;
        if (c->mining.scope == SCOPE_GLOBAL && (t->world > 1 || ex != EXCHANGE_FP32)) {
            if (ex == EXCHANGE_FP32) {
                dist_allgather_rows(t->pool_E, E, D * sizeof(float), t->rows);
            } else { /* every row rounded, this rank's too: the same pool for any p */
                size_t xb = exchange_bytes(ex) * D;
                uint8_t *own = t->pool_x + (size_t)lb->item_begin * xb;
                exchange_pack(own, E, (size_t)lb->n_items * D, ex);
                dist_allgather_rows(t->pool_x, own, xb, t->rows);
                exchange_unpack(t->pool_E, t->pool_x, (size_t)t->global_items * D, ex);
            }
            dist_allgather_rows(t->pool_labels, lb->labels, sizeof(int32_t), t->rows);
            pool = t->pool_E;
            labels = t->pool_labels;
            N = t->global_items;
            a0 = lb->item_begin;
            a1 = a0 + lb->n_items;
            dpool = t->pool_dE;
        }
        memset(dpool, 0, (size_t)N * D * sizeof(float));
        s = trainer_pool_loss(t, dpool, t->ws, pool, labels, N, a0, a1);
        *dEout = dpool;
        *pool_rows = N;
    } else if (c->loss.type == LOSS_MASK) {
        /* One mask per image: its own mask when its pair has a common
         * object, else an empty one (docs/coseg.md). */
        int n = lb->n_images;
        for (int i = 0; i < n; i++) t->has_target[i] = lb->same[i % lb->n_items];
        if (c->loss.mask == MASK_CLASS) {
            const ModelLayer *L = &m->layers[m->loss];
            s.loss_sum = coseg_class_loss(t->dE, E, b->masks, n, L->oc, L->oh, L->ow, m->in_h, m->in_w, 1.0);
        } else {
            s.loss_sum = coseg_mask_loss_edge(t->dE, E, b->masks, t->has_target, n, D, (size_t)m->in_w,
                                              c->loss.mask, c->loss.edge_weight, 1.0);
        }
        s.count = n;
        *dEout = t->dE;
        *pool_rows = n;
    } else if (m->layers[m->loss].halved) {
        /* The model scores each pair: one logit per pair. */
        int B = lb->n_items;
        memset(t->dE, 0, (size_t)B * sizeof(float));
        s = pairs_bce_logits(t->dE, E, lb->same, 0, B);
        *dEout = t->dE;
        *pool_rows = B;
    } else if (c->sampler.mode == SAMPLER_PAIRS || c->sampler.mode == SAMPLER_COSEG) {
        int B = lb->n_items;
        /* Targets come from the pairs record's flag, not from label equality. */
        for (int k = 0; k < B; k++) {
            t->pairs[k].i = k;
            t->pairs[k].j = B + k;
            t->pairs[k].y = lb->same[k] ? 1 : 0;
        }
        memset(t->dE, 0, (size_t)2 * B * D * sizeof(float));
        if (c->loss.type == LOSS_CONTRASTIVE)
            s = pairs_contrastive(t->dE, E, t->pairs, margin, 2 * B, (int)D, 0, B);
        else
            s = pairs_koch(t->dE, dhw, dhb, E, t->pairs, hw, hb, 2 * B, (int)D, 0, B);
        *dEout = t->dE;
        *pool_rows = 2 * B;
    } else {
        int B = lb->n_items;
        triplet_list_thirds(t->triplets, 0, B);
        memset(t->dE, 0, (size_t)3 * B * D * sizeof(float));
        s = triplet_list_loss(t->dE, E, t->triplets, margin, (int)c->loss.soft, 3 * B, (int)D, 0, B);
        *dEout = t->dE;
        *pool_rows = 3 * B;
    }
    return s;
}

static void grad_ready(void *ctx, size_t off, size_t n) { gradsync_ready(ctx, off, n); }

static LossStats global_stats(LossStats s) {
    double v[LOSS_STATS_DOUBLES];
    loss_stats_pack(v, &s);
    dist_allreduce_sum_doubles(v, LOSS_STATS_DOUBLES);
    return loss_stats_unpack(v);
}

/* Forward in training mode, keyed by the batch's step and slice. */
static const float *forward_step(Trainer *t, const Batch *b) {
    const LocalBatch *lb = &b->lb;
    ModelStep st = {1,           b->step,        (uint64_t)t->cfg.seed, lb->per_item,
                    lb->n_items, lb->item_begin, lb->global_items};
    model_set_step(&t->model, &st);
    return model_forward(&t->model, b->x, lb->n_images);
}

double trainer_loss_only(Trainer *t, const Batch *b, double count) {
    const float *E = forward_step(t, b);
    float *dpool;
    int rows;
    /* The head gradient is accumulated too: keep the arena unchanged. */
    float *save = NULL;
    if (t->model.has_head) {
        save = xmalloc(((size_t)t->D + 1) * sizeof(float));
        memcpy(save, t->model.grads + t->model.head_w_off, ((size_t)t->D + 1) * sizeof(float));
    }
    LossStats g = global_stats(local_loss(t, b, E, &dpool, &rows));
    if (save) {
        memcpy(t->model.grads + t->model.head_w_off, save, ((size_t)t->D + 1) * sizeof(float));
        free(save);
    }
    return count > 0 ? g.loss_sum / count : loss_stats_mean(&g);
}

double trainer_grads(Trainer *t, const Batch *b, StepTimes *st) {
    Model *m = &t->model;
    double t0 = now_seconds();
    watchdog_phase(WD_FORWARD);
    parallel_zero(m->grads, m->nparams);
    const float *E = forward_step(t, b);
    double t1 = now_seconds();
    watchdog_phase(WD_EXCHANGE);
    /* Waiting here for the slowest rank is load imbalance, not exchange:
     * time it apart so the exchange + mining figure is the work itself. */
    if (t->world > 1) dist_barrier();
    double t1b = now_seconds();

    float *dpool;
    int rows;
    LossStats g = global_stats(local_loss(t, b, E, &dpool, &rows));
    /* Mean over the global batch: one scale of dE (and of the head's
     * gradient) by the global count, so the allreduced SUM below is the
     * exact gradient and nothing is averaged again. */
    float inv = g.count > 0 ? (float)(1.0 / g.count) : 0.0f;
    parallel_scale(dpool, (size_t)rows * (size_t)t->D, inv);
    if (m->has_head) parallel_scale(m->grads + m->head_w_off, (size_t)t->D + 1, inv);
    const float *dE_local = dpool;
    if (t->cls) {
        classes_exchange_return(t, t->dE, &b->lb);
        dE_local = t->dE;
    } else if (dpool == t->pool_dE) {
        dist_reduce_scatter_rows(t->dE, t->pool_dE, t->D, t->rows);
        dE_local = t->dE;
    }
    double t2 = now_seconds();

    watchdog_phase(WD_BACKWARD);
    gradsync_begin(t->gs);
    if (m->has_head) gradsync_ready(t->gs, m->head_w_off, (size_t)t->D + 1);
    model_backward(m, b->x, dE_local, b->lb.n_images, grad_ready, t->gs);
    t->buckets_in_backward = gradsync_num_started(t->gs);
    double t3 = now_seconds();
    watchdog_phase(WD_ALLREDUCE);
    /* The same after backward: a rank that finished first waits for the
     * slowest one whatever the network; what remains after this barrier is
     * the allreduce that backward did not hide. */
    if (t->world > 1) gradsync_barrier(t->gs); /* the buckets keep moving meanwhile */
    double t3b = now_seconds();
    gradsync_finish(t->gs);
    double t4 = now_seconds();

    /* Terms every rank adds identically, after the sum over ranks. */
    double l2 = model_l2_penalty(m);
    t->last_data_loss = loss_stats_mean(&g);
    t->last_count = g.count;
    t->last_active = g.candidates > 0 ? (double)g.active / (double)g.candidates : 0;
    t->last_hardness = loss_stats_mean_hardness(&g);
    st->data = b->wait_seconds;
    st->forward = t1 - t0;
    st->imbalance = (t1b - t1) + (t3b - t3);
    st->mining = t2 - t1b;
    st->backward = t3 - t2;
    st->allreduce = t4 - t3b;
    return loss_stats_mean(&g) + l2;
}

/* The L2 norm of the summed gradient, with the same bits whether the
 * optimizer is sharded or not: the squares are summed per block of the
 * optimizer's partition over the ranks (optim_shard at this world size,
 * each block a fixed-chunk sum), and the blocks' sums added in rank order.
 * Sharded, a rank holds only its block's sum and the others come by
 * allgather; unsharded, every rank sums every block itself. */
static double grad_norm(Trainer *t) {
    const Model *m = &t->model;
    double *part = t->norm_part, ss = 0;
    if (t->opt.shard)
        dist_allgather_double(part, optim_sum_squares(m->grads + t->opt_lo, t->opt_hi - t->opt_lo));
    else
        for (int r = 0; r < t->world; r++) {
            size_t lo, hi;
            optim_shard(m->nparams, t->world, r, &lo, &hi);
            part[r] = optim_sum_squares(m->grads + lo, hi - lo);
        }
    for (int r = 0; r < t->world; r++) ss += part[r];
    return sqrt(ss);
}

void trainer_step(Trainer *t, const Batch *b, StepTimes *st) {
    Model *m = &t->model;
    const Config *c = &t->cfg;
    double t0 = now_seconds();
    double loss = trainer_grads(t, b, st);
    model_update_buffers(m);
    double t4 = now_seconds();
    watchdog_phase(WD_OPTIMIZER);
    /* Sharded: each rank holds the summed gradient of its shard alone; the
     * norm is summed so that it has the same bits either way (grad_norm). */
    double gnorm = grad_norm(t);
    optim_clip_scale(m->grads, gnorm, c->optim.clip_norm, t->opt_lo, t->opt_hi);
    if (!isfinite(loss) || !isfinite(gnorm)) {
        /* The first view with a non-finite value: a sharded rank looks in
         * its own shard of the gradient, and the lowest view over ranks wins. */
        int first = m->nviews;
        for (int v = 0; v < m->nviews && first == m->nviews; v++) {
            const ParamView *pv = &m->views[v];
            size_t glo = MAX(pv->offset, t->opt_lo), ghi = MIN(pv->offset + pv->count, t->opt_hi);
            for (size_t i = pv->offset; i < pv->offset + pv->count; i++)
                if ((i >= glo && i < ghi && !isfinite(m->grads[i])) || !isfinite(m->params[i])) {
                    first = v;
                    break;
                }
        }
        first = (int)-dist_max_double(-(double)first);
        FATAL("step %llu: loss %g, gradient norm %g: non-finite values (first in %s); lower [optim] lr (now %g), "
              "set [optim] clip_norm, or run with --debug for a gradient check",
              (unsigned long long)t->step, loss, gnorm, first < m->nviews ? m->views[first].name : "?", t->last_lr);
    }
    uint64_t epoch = t->step / t->steps_per_epoch;
    double lr = optim_lr(&t->opt, t->step, epoch, t->total_steps);
    optim_step_range(&t->opt, m->params, m->grads, t->opt_state, m->nparams, m->views, m->nviews, lr, epoch,
                     ++t->opt_t, t->opt_lo, t->opt_hi);
    if (t->opt.shard) dist_allgather_shards(m->params, t->shard_lo, t->shard_n);
    double t5 = now_seconds();

    t->last_loss = loss;
    t->last_gnorm = gnorm;
    t->last_lr = lr;
    st->optimizer = t5 - t4;
    st->total = st->data + (t5 - t0);
    if (t->rank == 0) {
        char line[512];
        snprintf(line, sizeof line, "%llu,%llu,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g\n", (unsigned long long)t->step,
                 (unsigned long long)epoch, loss, t->last_data_loss, t->last_active, t->last_hardness, lr, gnorm);
        metrics_append(t, line);
        if (t->metrics_file) fputs(line, t->metrics_file);
    }
    t->step++;
}
