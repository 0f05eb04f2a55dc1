/* model: building the graph (see model.h); forward and backward are in
 * model_run.c. Arena layout: the nodes' parameters in config order (each
 * node its views in the order it declares them, e.g. weight then bias),
 * then the head. Backward finishes the last nodes first, so gradient
 * buckets cut from the end of the arena become ready first (dist/comm.c
 * relies on that order).
 *
 * Storage plan: a node's output has its own buffer, or aliases the output
 * of an earlier node: a view (flatten) shares its input's floats, a layer
 * that may run in place overwrites its input when nothing else reads it
 * (and no backward needs it), and the nodes absorbed in a fused block share
 * the block output. Output gradients live in a few pooled buffers handed
 * out by liveness in backward order (a chain uses two, ping-pong); a node
 * whose gradient is a sum (read by several nodes, or seeded by a loss and
 * read) has its own. */
#include "model.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layer.h"
#include "parallel.h"

int model_parse_shape(const char *s, int *c, int *h, int *w) {
    long v[3];
    const char *p = s;
    for (int i = 0; i < 3; i++) {
        char buf[16];
        size_t n = strcspn(p, "x");
        if (n == 0 || n >= sizeof buf || (i < 2) != (p[n] == 'x')) return -1; /* "1x12x12x", "1xx2" */
        memcpy(buf, p, n);
        buf[n] = 0;
        if (parse_long(buf, 1, 100000, &v[i])) return -1;
        p += n + (i < 2);
    }
    *c = (int)v[0], *h = (int)v[1], *w = (int)v[2];
    return 0;
}

/* ---- views ---------------------------------------------------------------- */

static ParamView *push_view(ParamView **arr, int *n, const char *layer, const char *what, size_t off,
                            int ndim, const int *shape) {
    *arr = xrealloc(*arr, (size_t)(*n + 1) * sizeof **arr);
    ParamView *v = &(*arr)[(*n)++];
    memset(v, 0, sizeof *v);
    snprintf(v->name, sizeof v->name, "%s.%s", layer, what);
    v->offset = off;
    v->count = 1;
    v->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        v->shape[i] = shape[i];
        v->count *= (size_t)shape[i];
    }
    return v;
}

size_t model_add_param(Model *m, ModelLayer *L, const char *what, int ndim, const int *shape, ViewInit init,
                       double fan_in, double l2) {
    size_t off = m->nparams;
    if (L->nv == 0) L->v0 = m->nviews, L->p_off = off;
    ParamView *v = push_view(&m->views, &m->nviews, L->name, what, off, ndim, shape);
    v->lr_mult = (float)L->cfg.lr_mult;
    v->decay_mult = (float)L->cfg.decay_mult;
    v->has_momentum = L->cfg.sgd_momentum >= 0, v->momentum = (float)L->cfg.sgd_momentum;
    v->l2 = (float)l2;
    v->init = init;
    v->fan_in = (float)fan_in;
    L->nv++;
    L->np += v->count;
    m->nparams += v->count;
    return off;
}

size_t model_add_buffer(Model *m, ModelLayer *L, const char *what, int ndim, const int *shape,
                        ViewInit init) {
    size_t off = m->nbuffers;
    if (L->nbv == 0) L->bv0 = m->nbufviews;
    ParamView *v = push_view(&m->bufviews, &m->nbufviews, L->name, what, off, ndim, shape);
    v->init = init;
    L->nbv++;
    m->nbuffers += v->count;
    return off;
}

/* ---- inputs and shapes ------------------------------------------------------ */

/* "input, conv1, ..., conv3" (the names node i may read), for messages. */
static void names_above(const Model *m, int i, char *out, size_t n) {
    size_t len = snprintf(out, n, "input");
    for (int j = 0; j < i && len < n; j++) len += snprintf(out + len, n - len, ", %s", m->layers[j].name);
}

/* Parses one reference "NAME" / "NAME@a" / "NAME@b" (trimmed) read by node
 * i; -1 with the reason in e. */
static int parse_ref(const Model *m, const ModelSpec *spec, int i, const char *tok, NodeRef *r, Err *e) {
    char name[LAYER_INPUT_MAX];
    snprintf(name, sizeof name, "%s", tok);
    r->half = REF_WHOLE;
    char *at = strchr(name, '@');
    if (at) {
        if (!strcmp(at, "@a"))
            r->half = REF_A;
        else if (!strcmp(at, "@b"))
            r->half = REF_B;
        else
            return err_set(e, "input '%s': a half is NAME@a or NAME@b", tok);
        *at = 0;
    }
    if (!name[0]) return err_set(e, "input '%s': empty name", tok);
    if (!strcmp(name, "input")) {
        r->node = MODEL_INPUT;
        return 0;
    }
    for (int j = 0; j < i; j++)
        if (!strcmp(m->layers[j].name, name)) {
            r->node = j;
            return 0;
        }
    for (int j = i; j < spec->nlayers; j++)
        if (!strcmp(spec->layers[j].name, name))
            return err_set(e, "input '%s' is %s (line %d): a layer reads only layers above it", name,
                           j == i ? "this layer" : "a layer below", spec->layers[j].line);
    char above[600];
    names_above(m, i, above, sizeof above);
    return err_set(e, "input '%s' is not a layer above this one (layers above: %s)", name, above);
}

/* Fills L->in from its `input` key: by default the node above (the model
 * input for the first). */
static int resolve_inputs(Model *m, const ModelSpec *spec, int i, const char *cfg_name, Err *e) {
    ModelLayer *L = &m->layers[i];
    Err le;
    if (!L->cfg.input[0]) {
        L->nin = 1;
        L->in[0].node = i > 0 ? i - 1 : MODEL_INPUT;
        L->in[0].half = REF_WHOLE;
    } else {
        char buf[LAYER_INPUT_MAX];
        snprintf(buf, sizeof buf, "%s", L->cfg.input);
        L->nin = 0;
        for (char *tok = buf, *next; tok; tok = next) {
            next = strchr(tok, ',');
            if (next) *next++ = 0;
            while (*tok == ' ' || *tok == '\t') tok++;
            size_t len = strlen(tok);
            while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t')) tok[--len] = 0;
            if (L->nin == LAYER_MAX_INPUTS) {
                err_set(&le, "more than %d inputs", LAYER_MAX_INPUTS);
                goto fail;
            }
            if (parse_ref(m, spec, i, tok, &L->in[L->nin++], &le)) goto fail;
        }
    }
    if (L->nin < L->def->min_inputs || L->nin > L->def->max_inputs) {
        if (L->def->min_inputs == L->def->max_inputs)
            err_set(&le, "takes %d input%s, not %d (input = %s)", L->def->min_inputs,
                    L->def->min_inputs > 1 ? "s" : "", L->nin,
                    L->cfg.input[0] ? L->cfg.input : "the layer above");
        else
            err_set(&le, "takes %d to %d inputs, not %d (input = %s)", L->def->min_inputs, L->def->max_inputs,
                    L->nin, L->cfg.input[0] ? L->cfg.input : "the layer above");
        goto fail;
    }
    for (int k = 0; k < L->nin; k++) m->pair |= L->in[k].half != REF_WHOLE;
    m->pair |= L->nin == 1 && (L->def->flags & LAYER_PAIRS_ONE_INPUT);
    return 0;
fail:
    return err_set(e, "%s:%d: [%s] %s: %s", cfg_name, L->line, L->def->name, L->name, le.msg);
}

/* Shape of what ref r reads, per row. */
static void ref_shape(const Model *m, NodeRef r, int *c, int *h, int *w, int *flat, int *halved) {
    if (r.node == MODEL_INPUT) {
        *c = m->in_c, *h = m->in_h, *w = m->in_w, *flat = 0, *halved = 0;
    } else {
        const ModelLayer *P = &m->layers[r.node];
        *c = P->oc, *h = P->oh, *w = P->ow, *flat = P->flat, *halved = P->halved;
    }
    if (r.half != REF_WHOLE) *halved += 1;
}

static int build_node(Model *m, int i, const char *cfg_name, Err *e) {
    ModelLayer *L = &m->layers[i];
    Err le;
    int c, h, w, flat, halved;
    for (int k = 0; k < L->nin; k++) {
        ref_shape(m, L->in[k], &c, &h, &w, &flat, &halved);
        if (halved > 1)
            return err_set(
                e,
                "%s:%d: [%s] %s: %s is pair-level (one row per pair): only per-image nodes have an "
                "a and a b half",
                cfg_name, L->line, L->def->name, L->name, m->layers[L->in[k].node].name);
        if (k == 0) {
            L->c = c, L->h = h, L->w = w, L->in_flat = flat, L->halved = halved;
        } else if (h != L->h || w != L->w || halved != L->halved) {
            return err_set(
                e,
                "%s:%d: [%s] %s: input %d is %dx%dx%d%s but input 1 is %dx%dx%d%s: they must have the "
                "same height, width and rows",
                cfg_name, L->line, L->def->name, L->name, k + 1, c, h, w, halved ? " per pair" : "", L->c,
                L->h, L->w, L->halved ? " per pair" : "");
        }
        L->inc[k] = c;
    }
    L->in_size = (size_t)L->c * L->h * L->w;
    if (L->def->build(m, L, &le))
        return err_set(e, "%s:%d: [%s] %s: %s", cfg_name, L->line, L->def->name, L->name, le.msg);
    L->out_size = (size_t)L->oc * L->oh * L->ow;
    if (L->out_size > INT_MAX) /* shapes are ints: a config claiming more is refused, not wrapped */
        return err_set(e, "%s:%d: [%s] %s: output %dx%dx%d has more than %d values per image", cfg_name,
                       L->line, L->def->name, L->name, L->oc, L->oh, L->ow, INT_MAX);
    m->flops_fwd_per_image += L->halved ? L->flops / 2 : L->flops;
    return 0;
}

/* ---- fusion and storage ------------------------------------------------------- */

static int sole_reader(const Model *m, int p, int q) {
    const ModelLayer *Q = &m->layers[q];
    return p >= 0 && m->layers[p].nuse == 1 && !m->layers[p].is_output && Q->nin == 1 && Q->in[0].node == p &&
           Q->in[0].half == REF_WHOLE;
}

static void plan_fusion(Model *m) {
    for (int i = 0; i < m->nlayers; i++) {
        ModelLayer *L = &m->layers[i];
        if (!L->def->fuse) continue;
        const ModelLayer *next[2];
        int nn = 0;
        while (nn < 2 && i + nn + 1 < m->nlayers && sole_reader(m, i + nn, i + nn + 1)) {
            next[nn] = &m->layers[i + nn + 1];
            nn++;
        }
        int k = L->def->fuse(L, next, nn);
        if (k == 0) continue;
        /* A conv2d block reads channels-last: one channel, or the output of
         * a conv2d block that only it reads (that block then writes
         * channels-last). A LAYER_FUSES_NCHW block reads anything. */
        int src = L->in[0].node, owner = src >= 0 && m->layers[src].fuse < 0 ? m->layers[src].alias : src;
        int nchw = (L->def->flags & LAYER_FUSES_NCHW) != 0;
        int chained = !nchw && src >= 0 && L->in[0].half == REF_WHOLE && owner >= 0 &&
                      m->layers[owner].fuse > 0 && !(m->layers[owner].def->flags & LAYER_FUSES_NCHW) &&
                      owner + m->layers[owner].fuse == src && m->layers[src].nuse == 1 &&
                      !m->layers[src].is_output;
        if (!nchw && L->c != 1 && !chained) continue;
        L->fuse = k;
        for (int j = 1; j <= k; j++) {
            m->layers[i + j].fuse = -1;
            m->layers[i + j].alias = i;
        }
        if (chained) m->layers[owner].nhwc = 1;
        i += k;
    }
}

/* May node i write its output over its input's floats? Only if nothing
 * else reads those floats, now or in a backward. */
static int inplace_ok(const Model *m, int i) {
    const ModelLayer *L = &m->layers[i];
    if (!(L->def->flags & LAYER_INPLACE) || L->nin != 1 || L->in[0].half != REF_WHOLE) return 0;
    int q = L->in[0].node;
    while (q >= 0) {
        const ModelLayer *Q = &m->layers[q];
        if (Q->nuse != 1 || Q->is_output || (Q->def->flags & LAYER_READS_OUTPUT) || Q->fuse != 0) return 0;
        if (Q->alias == q) return 1;
        q = Q->alias;
    }
    return 0; /* the model input is read-only */
}

static void plan_storage(Model *m) {
    for (int i = 0; i < m->nlayers; i++) {
        ModelLayer *L = &m->layers[i];
        if (L->fuse < 0) continue; /* aliased by plan_fusion */
        L->alias = i;
        if ((L->def->flags & LAYER_VIEW) && L->in[0].half == REF_WHOLE)
            L->alias = L->in[0].node;
        else if (inplace_ok(m, i))
            L->alias = L->in[0].node;
    }
}

/* ---- gradients ------------------------------------------------------------- */

/* A passthrough node hands its output gradient to its input unchanged (a
 * view, an absorbed node) when that input has no other reader. */
static int passthrough(const Model *m, int i) {
    const ModelLayer *L = &m->layers[i];
    int p = L->in[0].node;
    if (L->fuse < 0) return 1;
    return (L->def->flags & LAYER_VIEW) && L->alias == p && p >= 0 && sole_reader(m, p, i) && !L->is_output;
}

static size_t node_floats(const Model *m, int i) {
    const ModelLayer *L = &m->layers[i];
    return (size_t)(m->max_batch >> L->halved) * L->out_size;
}

/* Hands out the pooled output-gradient buffers by liveness (model.h). */
static void plan_gradients(Model *m, int *buf_of) {
    int n = m->nlayers, *busy = xcalloc((size_t)n, sizeof(int));
    m->gpool = xcalloc((size_t)n, sizeof *m->gpool);
    m->gpool_floats = xcalloc((size_t)n, sizeof *m->gpool_floats);
    size_t scratch = 0;
    int max_in = 0;
    for (int i = 0; i < n; i++) buf_of[i] = -1;
    for (int i = n - 1; i >= 0; i--) {
        ModelLayer *L = &m->layers[i];
        if (!L->wants_grad) continue;
        L->pass = passthrough(m, i);
        if (L->pass) {
            int p = L->in[0].node;
            if (p >= 0) buf_of[p] = buf_of[i];
            continue;
        }
        for (int k = 0; k < L->nin; k++) {
            int p = L->in[k].node;
            if (p < 0 || !m->layers[p].wants_grad) continue;
            ModelLayer *P = &m->layers[p];
            if (P->nuse > 1 || L->in[k].half != REF_WHOLE || P->grad_own) {
                scratch = MAX(scratch, node_floats(m, p));
                max_in = MAX(max_in, L->nin);
            }
            if (P->grad_own || buf_of[p] >= 0) continue;
            int b = 0;
            while (b < m->ngpool && (busy[b] || b == buf_of[i])) b++;
            if (b == m->ngpool) m->ngpool++;
            busy[b] = 1;
            buf_of[p] = b;
            m->gpool_floats[b] = MAX(m->gpool_floats[b], node_floats(m, p));
        }
        if (buf_of[i] >= 0) busy[buf_of[i]] = 0;
    }
    m->scratch_slot = scratch;
    m->scratch_floats = scratch * (size_t)max_in;
    free(busy);
}

/* ---- outputs ----------------------------------------------------------------- */

/* The embedding ([model] embedding, default the last node: a per-image
 * node, or none when the default is pair-level) and the loss's node ([loss]
 * input, default the embedding, or the last node if there is none). */
static int plan_outputs(Model *m, const ModelSpec *spec, const char *cfg_name, Err *e) {
    int n = m->nlayers;
    m->emb = n - 1;
    if (spec->embedding[0]) {
        m->emb = model_node(m, spec->embedding);
        if (m->emb < 0)
            return err_set(e, "%s: [model] embedding = '%s': no such layer", cfg_name, spec->embedding);
        if (m->layers[m->emb].halved)
            return err_set(
                e,
                "%s: [model] embedding = '%s' is pair-level (one row per pair): eval and embed need a "
                "per-image node",
                cfg_name, spec->embedding);
    } else if (m->layers[m->emb].halved) {
        m->emb = -1; /* a pair scorer without an embedding */
    }
    m->loss = m->emb >= 0 ? m->emb : n - 1;
    if (spec->loss_input[0]) {
        m->loss = model_node(m, spec->loss_input);
        if (m->loss < 0) {
            char above[600];
            names_above(m, n, above, sizeof above);
            return err_set(e, "%s: [loss] input = '%s': no such layer (layers: %s)", cfg_name,
                           spec->loss_input, above + 7);
        }
    }
    if (spec->koch_head && m->emb < 0)
        return err_set(e, "%s: [head] type = koch reads the embedding: set [model] embedding", cfg_name);
    if (spec->koch_head && m->loss != m->emb)
        return err_set(
            e, "%s: [head] type = koch reads the embedding; [loss] input = %s is for models without it",
            cfg_name, spec->loss_input);
    m->emb_dim = m->emb >= 0 ? (int)m->layers[m->emb].out_size : 0;
    if (m->emb >= 0) m->layers[m->emb].is_output = 1;
    m->layers[m->loss].is_output = 1;
    return 0;
}

/* ---- build ------------------------------------------------------------------ */

int model_plan(Model *m, const ModelSpec *spec, const char *cfg_name, int c, int h, int w, int max_batch,
               Err *e) {
    memset(m, 0, sizeof *m);
    int n = spec->nlayers;
    m->nlayers = n;
    m->layers = xcalloc((size_t)n, sizeof *m->layers);
    m->in_c = c, m->in_h = h, m->in_w = w;
    m->max_batch = max_batch;
    m->st.blocks = 1;
    if ((uint64_t)c * h * w > INT_MAX) {
        model_free(m);
        return err_set(e, "%s: input %dx%dx%d has more than %d values per image", cfg_name, c, h, w, INT_MAX);
    }
    for (int i = 0; i < n; i++) {
        ModelLayer *L = &m->layers[i];
        L->cfg = spec->layers[i];
        L->type = L->cfg.type;
        L->def = layer_def(L->type);
        memcpy(L->name, L->cfg.name, sizeof L->name);
        L->line = L->cfg.line;
        L->l2 = L->cfg.l2;
        L->alias = i;
    }
    /* Inputs first: whether this is a two-image model decides some shapes. */
    for (int i = 0; i < n; i++)
        if (resolve_inputs(m, spec, i, cfg_name, e)) {
            model_free(m);
            return -1;
        }
    if (m->pair && (m->max_batch & 1)) m->max_batch++; /* whole pairs: every pair-level node has rows */
    max_batch = m->max_batch;
    for (int i = 0; i < n; i++)
        if (build_node(m, i, cfg_name, e)) {
            model_free(m);
            return -1;
        }
    if (plan_outputs(m, spec, cfg_name, e)) {
        model_free(m);
        return -1;
    }
    if (spec->koch_head) {
        m->has_head = 1;
        m->head_l2 = spec->head_l2;
        int ws[2] = {1, m->emb_dim}, bs[1] = {1};
        ParamView *v = push_view(&m->views, &m->nviews, "head", "weight", m->nparams, 2, ws);
        v->lr_mult = (float)spec->head_lr_mult, v->decay_mult = 1, v->l2 = (float)spec->head_l2;
        v->has_momentum = spec->head_momentum >= 0, v->momentum = (float)spec->head_momentum;
        v->init = VIEW_INIT_WEIGHT_DENSE, v->fan_in = (float)m->emb_dim;
        m->head_w_off = m->nparams;
        m->head_b_off = m->nparams + (size_t)m->emb_dim;
        v = push_view(&m->views, &m->nviews, "head", "bias", m->head_b_off, 1, bs);
        v->lr_mult = (float)spec->head_lr_mult, v->decay_mult = 1;
        v->has_momentum = spec->head_momentum >= 0, v->momentum = (float)spec->head_momentum;
        v->init = VIEW_INIT_BIAS, v->fan_in = (float)m->emb_dim;
        m->nparams += (size_t)m->emb_dim + 1;
    }
    for (int i = 0; i < n; i++) {
        ModelLayer *L = &m->layers[i];
        L->wants_grad = L->np > 0;
        for (int k = 0; k < L->nin; k++) {
            int p = L->in[k].node;
            if (p < 0) continue;
            m->layers[p].nuse++;
            L->wants_grad |= m->layers[p].wants_grad;
        }
    }
    if (!spec->no_fusion) plan_fusion(m);
    plan_storage(m);
    for (int i = 0; i < n; i++) {
        ModelLayer *L = &m->layers[i];
        if (L->def->sizes && L->fuse >= 0) L->def->sizes(m, L, max_batch >> L->halved);
        m->ws_floats = MAX(m->ws_floats, L->ws_floats);
        L->grad_own = L->is_output && L->nuse > 0 && L->wants_grad;
    }
    m->gbuf_of = xcalloc((size_t)n, sizeof(int));
    plan_gradients(m, m->gbuf_of);
    m->embed_only = xcalloc((size_t)n, 1);
    if (m->emb >= 0) m->embed_only[m->emb] = 1;
    for (int i = n - 1; i >= 0; i--)
        for (int k = 0; m->embed_only[i] && k < m->layers[i].nin; k++)
            if (m->layers[i].in[k].node >= 0) m->embed_only[m->layers[i].in[k].node] = 1;
    return 0;
}

void model_alloc(Model *m) {
    int n = m->nlayers, max_batch = m->max_batch;
    m->params = xaligned_floats(MAX(m->nparams, 1));
    m->grads = xaligned_floats(MAX(m->nparams, 1));
    m->buffers = xaligned_floats(MAX(m->nbuffers, 1));
    m->ws = xaligned_floats(MAX(m->ws_floats, 1));
    for (int b = 0; b < m->ngpool; b++) m->gpool[b] = xaligned_floats(m->gpool_floats[b]);
    if (m->scratch_floats) m->scratch = xaligned_floats(m->scratch_floats);
    m->out = xcalloc((size_t)n, sizeof *m->out);
    m->dyp = xcalloc((size_t)n, sizeof *m->dyp);
    m->written = xcalloc((size_t)n, 1);
    for (int i = 0; i < n; i++) {
        ModelLayer *L = &m->layers[i];
        if (L->fuse < 0) continue;
        size_t rows = (size_t)(max_batch >> L->halved);
        if (L->alias == i) L->y = xaligned_floats(rows * m->layers[i + MAX(L->fuse, 0)].out_size);
        size_t state = L->state_row * rows + L->state_fixed;
        if (state) L->state = (uint8_t *)xaligned_floats((state + 3) / 4);
        if (L->grad_own) L->dy = xaligned_floats(node_floats(m, i));
    }
}

int model_build(Model *m, const ModelSpec *spec, const char *cfg_name, int c, int h, int w, int max_batch,
                Err *e) {
    if (model_plan(m, spec, cfg_name, c, h, w, max_batch, e)) return -1;
    model_alloc(m);
    return 0;
}

void model_free(Model *m) {
    for (int i = 0; m->layers && i < m->nlayers; i++) {
        free(m->layers[i].y);
        free(m->layers[i].state);
        free(m->layers[i].dy);
    }
    free(m->layers);
    free(m->views);
    free(m->bufviews);
    free(m->params);
    free(m->grads);
    free(m->buffers);
    free(m->ws);
    for (int b = 0; b < m->ngpool; b++) free(m->gpool[b]);
    free(m->gpool);
    free(m->gpool_floats);
    free(m->written);
    free(m->embed_only);
    free(m->scratch);
    free(m->out);
    free(m->dyp);
    free(m->gbuf_of);
    memset(m, 0, sizeof *m);
}

/* ---- initialisation ------------------------------------------------------ */

static void init_view(float *p, const ParamView *pv, int scheme, Rng *r) {
    double fan_in = pv->fan_in > 0 ? pv->fan_in : 1;
    for (size_t i = 0; i < pv->count; i++) {
        double x;
        if (pv->init == VIEW_INIT_ZERO || pv->init == VIEW_INIT_ONE) {
            x = pv->init == VIEW_INIT_ONE;
        } else if (scheme == INIT_TORCH) {
            x = (2.0 * rng_uniform_d(r) - 1.0) / sqrt(fan_in);
        } else if (scheme == INIT_KOCH) {
            if (pv->init == VIEW_INIT_BIAS)
                x = 0.5 + 1e-2 * rng_normal(r);
            else
                x = (pv->init == VIEW_INIT_WEIGHT_CONV ? 1e-2 : 2e-1) * rng_normal(r);
        } else {
            x = pv->init == VIEW_INIT_BIAS ? 0.0 : sqrt(2.0 / fan_in) * rng_normal(r);
        }
        p[i] = (float)x;
    }
}

void model_init(Model *m, int scheme, uint64_t seed) {
    for (int v = 0; v < m->nviews; v++) {
        Rng r;
        rng_seed(&r, seed, RNG_INIT, (uint64_t)v);
        init_view(m->params + m->views[v].offset, &m->views[v], scheme, &r);
    }
    for (int v = 0; v < m->nbufviews; v++)
        init_view(m->buffers + m->bufviews[v].offset, &m->bufviews[v], scheme, NULL);
}

/* 0 if views a[0..n) and b[0..n) have the same shapes, else -1 with the
 * first that differs in e. */
static int views_match(const ParamView *a, const ParamView *b, int n, Err *e) {
    for (int v = 0; v < n; v++) {
        int same = a[v].ndim == b[v].ndim;
        for (int d = 0; same && d < a[v].ndim; d++) same = a[v].shape[d] == b[v].shape[d];
        if (same) continue;
        char sa[64] = "", sb[64] = "";
        for (int d = 0; d < a[v].ndim; d++)
            snprintf(sa + strlen(sa), sizeof sa - strlen(sa), "%s%d", d ? "x" : "", a[v].shape[d]);
        for (int d = 0; d < b[v].ndim; d++)
            snprintf(sb + strlen(sb), sizeof sb - strlen(sb), "%s%d", d ? "x" : "", b[v].shape[d]);
        return err_set(e, "%s is %s here but %s there", a[v].name, sa, sb);
    }
    return 0;
}

int model_copy_layers(Model *m, const Model *src, Err *e) {
    int copied = 0;
    for (int pass = 0; pass < 2; pass++) /* checks every layer, then copies: all or nothing */
        for (int i = 0; i < m->nlayers; i++) {
            const ModelLayer *L = &m->layers[i];
            int j = L->nv || L->nbv ? model_node(src, L->name) : -1;
            if (j < 0) continue;
            const ModelLayer *S = &src->layers[j];
            if (pass == 1) {
                for (int v = 0; v < L->nv; v++)
                    memcpy(m->params + m->views[L->v0 + v].offset, src->params + src->views[S->v0 + v].offset,
                           m->views[L->v0 + v].count * sizeof(float));
                for (int v = 0; v < L->nbv; v++)
                    memcpy(m->buffers + m->bufviews[L->bv0 + v].offset,
                           src->buffers + src->bufviews[S->bv0 + v].offset,
                           m->bufviews[L->bv0 + v].count * sizeof(float));
                copied++;
                continue;
            }
            if (S->type != L->type || S->nv != L->nv || S->nbv != L->nbv)
                return err_set(
                    e,
                    "layer %s is a [%s] with %d parameter and %d buffer tensors here but a [%s] with "
                    "%d and %d there: rename one of them",
                    L->name, L->def->name, L->nv, L->nbv, S->def->name, S->nv, S->nbv);
            Err ve;
            if (views_match(m->views + L->v0, src->views + S->v0, L->nv, &ve) ||
                views_match(m->bufviews + L->bv0, src->bufviews + S->bv0, L->nbv, &ve))
                return err_set(e, "layer %s has other shapes: %s", L->name, ve.msg);
        }
    if (!copied) return err_set(e, "no layer with parameters has a name the other model has");
    return copied;
}

/* ---- description ------------------------------------------------------------ */

typedef struct L2 {
    const float *p;
    float *g;
    float l2;
} L2;

/* sum p^2 over [lo, hi) (double); g += 2 lambda p */
static double l2_chunk(void *ctx, size_t lo, size_t hi) {
    const L2 *q = ctx;
    double s = 0;
    for (size_t i = lo; i < hi; i++) {
        s += (double)q->p[i] * q->p[i];
        q->g[i] += 2.0f * q->l2 * q->p[i];
    }
    return s;
}

double model_l2_penalty(Model *m) {
    double total = 0;
    for (int v = 0; v < m->nviews; v++) {
        const ParamView *pv = &m->views[v];
        if (pv->l2 == 0) continue;
        L2 q = {m->params + pv->offset, m->grads + pv->offset, pv->l2};
        total += pv->l2 * parallel_sum(pv->count, l2_chunk, &q);
    }
    return total;
}

/* "conv3@a, conv3@b" */
static void format_inputs(const Model *m, const ModelLayer *L, char *out, size_t n) {
    size_t len = 0;
    out[0] = 0;
    for (int k = 0; k < L->nin && len < n; k++) {
        NodeRef r = L->in[k];
        const char *name = r.node == MODEL_INPUT ? "input" : m->layers[r.node].name;
        len += snprintf(out + len, len < n ? n - len : 0, "%s%s%s", k ? ", " : "", name,
                        r.half == REF_A   ? "@a"
                        : r.half == REF_B ? "@b"
                                          : "");
    }
}

void model_describe(const Model *m, FILE *out) {
    fprintf(out, "  %-10s %-11s %-20s %-14s %10s\n", "layer", "type", "input", "output", "params");
    for (int i = 0; i < m->nlayers; i++) {
        const ModelLayer *L = &m->layers[i];
        char shape[48], in[96];
        snprintf(shape, sizeof shape, "%dx%dx%d%s", L->oc, L->oh, L->ow, L->halved ? " /pair" : "");
        format_inputs(m, L, in, sizeof in);
        fprintf(out, "  %-10s %-11s %-20s %-14s %10zu\n", L->name, L->def->name, in, shape, L->np);
    }
    if (m->has_head)
        fprintf(out, "  %-10s %-11s %-20s %-14s %10d\n", "head", "koch", m->layers[m->emb].name, "1",
                m->emb_dim + 1);
    fprintf(out,
            "  total %zu parameters, %zu buffer floats, input %dx%dx%d%s, embedding %s (%d), loss reads %s, "
            "%.2f MFLOP forward per image\n",
            m->nparams, m->nbuffers, m->in_c, m->in_h, m->in_w, m->pair ? " (two images: [a; b])" : "",
            m->emb >= 0 ? m->layers[m->emb].name : "none", m->emb_dim, m->layers[m->loss].name,
            (double)m->flops_fwd_per_image / 1e6);
}

char *model_graph_text(const Model *m) {
    size_t cap = 256 + (size_t)m->nlayers * 192, len = 0;
    char *s = xmalloc(cap);
    len += snprintf(s, cap, "input %dx%dx%d%s\n", m->in_c, m->in_h, m->in_w, m->pair ? " pairs" : "");
    for (int i = 0; i < m->nlayers; i++) {
        const ModelLayer *L = &m->layers[i];
        char in[LAYER_INPUT_MAX + 32];
        format_inputs(m, L, in, sizeof in);
        len += snprintf(s + len, cap - len, "node %s %s input=%s output=%dx%dx%d rows=%s\n", L->name,
                        L->def->name, in, L->oc, L->oh, L->ow, L->halved ? "pair" : "image");
    }
    len += snprintf(s + len, cap - len, "embedding %s\nloss %s\n",
                    m->emb >= 0 ? m->layers[m->emb].name : "none", m->layers[m->loss].name);
    return s;
}

static void print_views(char **s, size_t *len, size_t *cap, const ParamView *v, int n, const char *tag) {
    for (int i = 0; i < n; i++) {
        if (*cap - *len < 256) *s = xrealloc(*s, *cap *= 2);
        *len += snprintf(*s + *len, *cap - *len, "%s", v[i].name);
        if (!v[i].ndim) *len += snprintf(*s + *len, *cap - *len, " 1"); /* a scalar: one float */
        for (int d = 0; d < v[i].ndim; d++)
            *len += snprintf(*s + *len, *cap - *len, "%c%d", d ? 'x' : ' ', v[i].shape[d]);
        *len += snprintf(*s + *len, *cap - *len, "%s\n", tag);
    }
}

int model_topology_parse(const char *text, size_t n, ModelTopology *out, Err *e) {
    memset(out, 0, sizeof *out);
    const char *p = text, *end = text + n;
    for (int line = 1; p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char buf[160], *sp;
        if (len >= sizeof buf || memchr(p, 0, len) || !(sp = memchr(p, ' ', len)))
            return err_set(e, "topology line %d is not 'NAME SHAPE'", line);
        memcpy(buf, p, len);
        buf[len] = 0;
        sp = buf + (sp - p);
        *sp = 0;
        const char *name = buf, *shape = sp + 1;
        int buffer = len > 7 && !strcmp(buf + len - 7, " buffer"); /* a running statistic */
        if (buffer) buf[len - 7] = 0;
        if (line == 1) {
            if (strcmp(name, "input") || model_parse_shape(shape, &out->in_c, &out->in_h, &out->in_w))
                return err_set(e, "topology line 1 is not 'input CxHxW'");
        } else {
            uint64_t count = 1;
            int dims = 0;
            for (const char *q = shape;; dims++) {
                char num[16];
                size_t k = strcspn(q, "x");
                long d;
                if (dims == ARENA_MAX_DIMS || k == 0 || k >= sizeof num) break;
                memcpy(num, q, k);
                num[k] = 0;
                if (parse_long(num, 1, 0x7fffffff, &d)) break;
                count = count > MODEL_TOPOLOGY_MAX_FLOATS / (uint64_t)d ? MODEL_TOPOLOGY_MAX_FLOATS + 1
                                                                        : count * (uint64_t)d;
                if (!q[k]) {
                    dims = -dims - 1; /* a complete shape */
                    break;
                }
                q += k + 1;
            }
            if (dims >= 0 || !name[0])
                return err_set(e,
                               "topology line %d: '%.60s' is not a tensor name and shape d1x..., at most %d "
                               "dimensions of 1..2147483647",
                               line, shape, ARENA_MAX_DIMS);
            *(buffer ? &out->buffer_floats : &out->floats) += count;
            out->tensors++;
            if (out->floats > MODEL_TOPOLOGY_MAX_FLOATS || out->buffer_floats > MODEL_TOPOLOGY_MAX_FLOATS)
                return err_set(e, "topology line %d: more than %llu parameters in all", line,
                               (unsigned long long)MODEL_TOPOLOGY_MAX_FLOATS);
        }
        p += len + 1;
    }
    if (out->in_c == 0) return err_set(e, "topology is empty (no 'input CxHxW' line)");
    return 0;
}

char *model_topology(const Model *m) {
    size_t cap = 4096, len = 0;
    char *s = xmalloc(cap);
    len += snprintf(s, cap, "input %dx%dx%d\n", m->in_c, m->in_h, m->in_w);
    print_views(&s, &len, &cap, m->views, m->nviews, "");
    print_views(&s, &len, &cap, m->bufviews, m->nbufviews, " buffer");
    return s;
}

void model_layer_memory(const Model *m, int i, ModelMemory *mm) {
    const ModelLayer *L = &m->layers[i];
    size_t r = (size_t)(m->max_batch >> L->halved);
    memset(mm, 0, sizeof *mm);
    mm->params = 2 * L->np * sizeof(float);
    for (int v = 0; v < L->nbv; v++) mm->buffers += m->bufviews[L->bv0 + v].count * sizeof(float);
    if (L->fuse >= 0 && L->alias == i)
        mm->activations = r * m->layers[i + MAX(L->fuse, 0)].out_size * sizeof(float);
    if (L->fuse >= 0) mm->state = L->state_row * r + L->state_fixed;
    mm->workspace = L->ws_floats * sizeof(float);
}

size_t model_shared_memory(const Model *m) {
    size_t f = m->ws_floats + m->scratch_floats;
    for (int b = 0; b < m->ngpool; b++) f += m->gpool_floats[b];
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].grad_own) f += node_floats(m, i);
    return f * sizeof(float);
}
