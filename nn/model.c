/* model: see model.h. Arena layout: the encoder's tensors in layer order
 * (each layer: weight then bias), then the head. Backward finishes the last
 * layers first, so gradient buckets cut from the end of the arena become
 * ready first (dist/comm.c relies on that order). */
#include "model.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "activation.h"
#include "conv2d.h"
#include "convblock.h"
#include "l2norm.h"
#include "linear.h"
#include "pool.h"

const char *const layer_type_names[LAYER_NTYPES] = {"conv2d", "maxpool", "relu", "sigmoid",
                                                    "linear", "flatten", "l2norm"};

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

static void add_view(Model *m, const char *layer, const char *what, size_t off, size_t count, int ndim,
                     const int *shape, double lr_mult, double decay_mult, double l2) {
    ParamView *v = &m->views[m->nviews++];
    memset(v, 0, sizeof *v);
    snprintf(v->name, sizeof v->name, "%s.%s", layer, what);
    v->offset = off;
    v->count = count;
    v->ndim = ndim;
    for (int i = 0; i < ndim; i++) v->shape[i] = shape[i];
    v->lr_mult = (float)lr_mult;
    v->decay_mult = (float)decay_mult;
    v->l2 = (float)l2;
}

/* Marks the fused blocks (model.h) and their output layouts. A block's
 * input must be channels-last: one channel, or another block's output.
 * Only where convblock's SIMD kernels run: elsewhere conv2d is faster. */
static void plan_fusion(Model *m) {
    int prev_block = -1; /* conv layer of the block that ends right before i */
    for (int i = 0; i < m->nlayers; i++) {
        ModelLayer *L = &m->layers[i];
        int ok = L->type == LAYER_CONV2D && L->pad == 0 && convblock_fast((int)L->filters) &&
                 i + 1 < m->nlayers && m->layers[i + 1].type == LAYER_RELU && (L->c == 1 || prev_block >= 0);
        if (!ok) {
            prev_block = -1;
            continue;
        }
        const ModelLayer *P = i + 2 < m->nlayers ? &m->layers[i + 2] : NULL;
        int pool = P && P->type == LAYER_MAXPOOL && P->size == 2 && P->stride == 2;
        L->fuse = pool ? 2 : 1;
        for (int j = 1; j <= L->fuse; j++) m->layers[i + j].fuse = -1;
        if (prev_block >= 0) m->layers[prev_block].nhwc = 1;
        prev_block = i;
        i += L->fuse;
    }
}

int model_build(Model *m, const LayerCfg *cfgs, int n, int koch_head, double head_lr_mult, double head_l2,
                const char *cfg_name, int c, int h, int w, int max_batch, Err *e) {
    memset(m, 0, sizeof *m);
    m->nlayers = n;
    m->layers = xcalloc((size_t)n, sizeof *m->layers);
    m->views = xcalloc((size_t)(2 * n + 2), sizeof *m->views);
    m->in_c = c, m->in_h = h, m->in_w = w;
    m->max_batch = max_batch;
    if ((uint64_t)c * h * w > INT_MAX)
        return err_set(e, "%s: input %dx%dx%d has more than %d values per image", cfg_name, c, h, w, INT_MAX);
    size_t off = 0;
    int spatial = 1; /* the input still has a meaningful (c, h, w) */
    for (int i = 0; i < n; i++) {
        const LayerCfg *lc = &cfgs[i];
        ModelLayer *L = &m->layers[i];
        L->type = lc->type;
        memcpy(L->name, lc->name, sizeof L->name);
        L->line = lc->line;
        L->c = c, L->h = h, L->w = w;
        L->filters = lc->filters, L->size = lc->size, L->stride = lc->stride, L->pad = lc->pad, L->out = lc->out;
        L->l2 = lc->l2;
        L->in_size = (size_t)c * h * w;
        switch (lc->type) {
        case LAYER_CONV2D: {
            if (!spatial)
                return err_set(e, "%s:%d: [conv2d] %s: its input is flat (%d features); put convolutions before "
                                  "flatten/linear", cfg_name, lc->line, lc->name, c * h * w);
            long oh = (h + 2 * lc->pad - lc->size) / lc->stride + 1, ow = (w + 2 * lc->pad - lc->size) / lc->stride + 1;
            if (h + 2 * lc->pad < lc->size || w + 2 * lc->pad < lc->size)
                return err_set(e, "%s:%d: [conv2d] %s: kernel %ld does not fit its %dx%dx%d input (pad %ld); lower "
                                  "size, add pad, or drop a pooling layer before it",
                               cfg_name, lc->line, lc->name, lc->size, c, h, w, lc->pad);
            L->oc = (int)lc->filters, L->oh = (int)oh, L->ow = (int)ow;
            L->nw = (size_t)lc->filters * c * lc->size * lc->size;
            L->nb = (size_t)lc->filters;
            L->w_off = off, L->b_off = off + L->nw;
            off += L->nw + L->nb;
            int ws_shape[4] = {(int)lc->filters, c, (int)lc->size, (int)lc->size}, bs[1] = {(int)lc->filters};
            add_view(m, lc->name, "weight", L->w_off, L->nw, 4, ws_shape, lc->lr_mult, lc->decay_mult, lc->l2);
            add_view(m, lc->name, "bias", L->b_off, L->nb, 1, bs, lc->lr_mult, lc->decay_mult, 0);
            m->flops_fwd_per_image += 2ULL * L->nw * oh * ow;
            break;
        }
        case LAYER_MAXPOOL:
            if (!spatial || h < lc->size || w < lc->size)
                return err_set(e, "%s:%d: [maxpool] %s: window %ld does not fit its %dx%dx%d input", cfg_name,
                               lc->line, lc->name, lc->size, c, h, w);
            L->oc = c, L->oh = (int)((h - lc->size) / lc->stride + 1), L->ow = (int)((w - lc->size) / lc->stride + 1);
            break;
        case LAYER_LINEAR: {
            int in = c * h * w;
            L->oc = (int)lc->out, L->oh = 1, L->ow = 1;
            L->nw = (size_t)lc->out * in;
            L->nb = (size_t)lc->out;
            L->w_off = off, L->b_off = off + L->nw;
            off += L->nw + L->nb;
            int ws_shape[2] = {(int)lc->out, in}, bs[1] = {(int)lc->out};
            add_view(m, lc->name, "weight", L->w_off, L->nw, 2, ws_shape, lc->lr_mult, lc->decay_mult, lc->l2);
            add_view(m, lc->name, "bias", L->b_off, L->nb, 1, bs, lc->lr_mult, lc->decay_mult, 0);
            m->flops_fwd_per_image += 2ULL * L->nw;
            spatial = 0;
            break;
        }
        case LAYER_FLATTEN:
            L->oc = c * h * w, L->oh = 1, L->ow = 1;
            spatial = 0;
            break;
        case LAYER_L2NORM:
            L->oc = c * h * w, L->oh = 1, L->ow = 1;
            spatial = 0;
            break;
        default: /* relu, sigmoid: shape-preserving */
            L->oc = c, L->oh = h, L->ow = w;
            break;
        }
        c = L->oc, h = L->oh, w = L->ow;
        L->out_size = (size_t)c * h * w;
        if (L->out_size > INT_MAX) /* shapes are ints: a config claiming more is refused, not wrapped */
            return err_set(e, "%s:%d: [%s] %s: output %dx%dx%d has more than %d values per image", cfg_name,
                           lc->line, layer_type_names[lc->type], lc->name, c, h, w, INT_MAX);
    }
    m->emb_dim = c * h * w;
    if (koch_head) {
        m->has_head = 1;
        m->head_w_off = off;
        m->head_b_off = off + (size_t)m->emb_dim;
        int ws_shape[2] = {1, m->emb_dim}, bs[1] = {1};
        add_view(m, "head", "weight", m->head_w_off, (size_t)m->emb_dim, 2, ws_shape, head_lr_mult, 1, head_l2);
        add_view(m, "head", "bias", m->head_b_off, 1, 1, bs, head_lr_mult, 1, 0);
        m->head_l2 = head_l2;
        off += (size_t)m->emb_dim + 1;
    }
    m->nparams = off;
    if (max_batch == 0) return 0; /* model_plan: the layout only */
    m->params = xaligned_floats(off);
    m->grads = xaligned_floats(off);
    plan_fusion(m);
    /* Workspace: the largest any convolution needs. Gradient buffers: the
     * largest input gradient a layer writes (flatten and fused layers write
     * none; the first layer needs none). */
    size_t ws = 0, grad[2] = {1, 1};
    int which = 0; /* the walk of model_backward: which buffer each input gradient lands in */
    for (int i = n - 1; i >= 0; i--) {
        ModelLayer *L = &m->layers[i];
        if (L->type == LAYER_CONV2D && L->fuse > 0)
            ws = MAX(ws, convblock_workspace_floats(L->c, L->h, L->w, (int)L->filters, (int)L->size,
                                                    (int)L->stride, L->fuse == 2));
        else if (L->type == LAYER_CONV2D)
            ws = MAX(ws, conv2d_workspace_floats(max_batch, L->c, L->h, L->w, (int)L->filters, (int)L->size,
                                                 (int)L->stride, (int)L->pad));
        if (i > 0 && L->fuse >= 0 && L->type != LAYER_FLATTEN) {
            grad[which] = MAX(grad[which], L->in_size);
            which ^= 1;
        }
    }
    m->ws = xaligned_floats(ws);
    for (int k = 0; k < 2; k++) {
        m->gbuf_floats[k] = grad[k] * (size_t)max_batch;
        m->gbuf[k] = xaligned_floats(m->gbuf_floats[k]);
    }
    /* Activations: relu, sigmoid and flatten work in place on their input;
     * a fused block owns one buffer of its last layer's size. */
    const float *prev = NULL; /* NULL: the model input */
    for (int i = 0; i < n; i++) {
        ModelLayer *L = &m->layers[i];
        int inplace = L->type == LAYER_RELU || L->type == LAYER_SIGMOID || L->type == LAYER_FLATTEN;
        /* A sigmoid would overwrite the output that the backward of a relu,
         * sigmoid or fused block before it reads (a relu leaves it as is). */
        if (L->type == LAYER_SIGMOID && i > 0) {
            const ModelLayer *Q = &m->layers[i - 1];
            if (Q->type == LAYER_RELU || Q->type == LAYER_SIGMOID || Q->fuse) inplace = 0;
        }
        if (L->fuse < 0) {
            L->y = (float *)prev;
        } else if (L->fuse > 0) {
            const ModelLayer *last = &m->layers[i + L->fuse];
            L->y = xaligned_floats(last->out_size * (size_t)max_batch);
            if (L->fuse == 2) L->arg = xmalloc(last->out_size * (size_t)max_batch);
        } else {
            if (inplace && prev) L->y = (float *)prev;
            else L->y = xaligned_floats(L->out_size * (size_t)max_batch);
            if (L->type == LAYER_MAXPOOL) L->idx = xcalloc(L->out_size * (size_t)max_batch, sizeof(int32_t));
        }
        if (L->type == LAYER_L2NORM) L->norms = xaligned_floats((size_t)max_batch);
        prev = L->y;
    }
    return 0;
}

int model_plan(Model *m, const LayerCfg *cfgs, int n, int koch_head, const char *cfg_name, int c, int h,
               int w, Err *e) {
    return model_build(m, cfgs, n, koch_head, 1, 0, cfg_name, c, h, w, 0, e);
}

void model_free(Model *m) {
    const float *prev = NULL;
    for (int i = 0; i < m->nlayers; i++) {
        ModelLayer *L = &m->layers[i];
        if (L->y != prev) free(L->y);
        prev = L->y;
        free(L->idx);
        free(L->arg);
        free(L->norms);
    }
    free(m->layers);
    free(m->views);
    free(m->params);
    free(m->grads);
    free(m->ws);
    free(m->gbuf[0]);
    free(m->gbuf[1]);
    memset(m, 0, sizeof *m);
}

void model_init(Model *m, int scheme, uint64_t seed) {
    for (int v = 0; v < m->nviews; v++) {
        ParamView *pv = &m->views[v];
        float *p = m->params + pv->offset;
        Rng r;
        rng_seed(&r, seed, RNG_INIT, (uint64_t)v);
        int is_bias = strstr(pv->name, ".bias") != NULL;
        /* fan_in: the weight's elements per output (also for its bias). */
        const ParamView *wv = is_bias ? pv - 1 : pv;
        double fan_in = (double)wv->count / (double)wv->shape[0];
        int is_conv = wv->ndim == 4;
        for (size_t i = 0; i < pv->count; i++) {
            double x;
            switch (scheme) {
            case INIT_KOCH:
                if (is_bias) x = 0.5 + 1e-2 * rng_normal(&r);
                else x = (is_conv ? 1e-2 : 2e-1) * rng_normal(&r);
                break;
            case INIT_TORCH: {
                double bound = 1.0 / sqrt(fan_in);
                x = bound * (2.0 * rng_uniform_d(&r) - 1.0);
                break;
            }
            default: x = is_bias ? 0.0 : sqrt(2.0 / fan_in) * rng_normal(&r); break;
            }
            p[i] = (float)x;
        }
    }
}

const float *model_forward(Model *m, const float *x, int B) {
    ASSERT(B <= m->max_batch);
    const float *in = x;
    for (int i = 0; i < m->nlayers; i++) {
        double t0 = m->prof ? now_seconds() : 0;
        ModelLayer *L = &m->layers[i];
        if (L->fuse < 0) continue; /* done by its block; y is the block output */
        const float *w = m->params + L->w_off, *b = m->params + L->b_off;
        size_t n = L->out_size * (size_t)B;
        switch (L->type) {
        case LAYER_CONV2D:
            if (L->fuse > 0)
                convblock_forward(L->y, L->arg, in, w, b, B, L->c, L->h, L->w, (int)L->filters, (int)L->size,
                                  (int)L->stride, L->fuse == 2, !L->nhwc, m->ws);
            else
                conv2d_forward(L->y, in, w, b, B, L->c, L->h, L->w, (int)L->filters, (int)L->size, (int)L->stride,
                               (int)L->pad, m->ws);
            break;
        case LAYER_MAXPOOL:
            maxpool_forward(L->y, L->idx, in, B, L->c, L->h, L->w, (int)L->size, (int)L->stride);
            break;
        case LAYER_RELU: relu_forward(L->y, in, n); break;
        case LAYER_SIGMOID: sigmoid_forward(L->y, in, n); break;
        case LAYER_LINEAR: linear_forward(L->y, in, w, b, B, (int)L->in_size, (int)L->out); break;
        case LAYER_FLATTEN:
            if (L->y != in) memcpy(L->y, in, n * sizeof(float));
            break;
        case LAYER_L2NORM: l2norm_forward(L->y, L->norms, in, B, (int)L->out_size); break;
        }
        in = L->y;
        if (m->prof) m->prof[2 * i] += now_seconds() - t0;
    }
    return in;
}

void model_backward(Model *m, const float *x, const float *dE, int B, GradReadyFn ready, void *ctx) {
    /* dcur: gradient w.r.t. the current layer's output. It starts as dE
     * (read only) and then lives in the ping-pong buffers. */
    const float *dcur = dE;
    int which = 0;
    for (int i = m->nlayers - 1; i >= 0; i--) {
        double t0 = m->prof ? now_seconds() : 0;
        ModelLayer *L = &m->layers[i];
        /* Absorbed layers are done by their block; flatten passes the
         * gradient through unchanged (same floats, same order). */
        if (L->fuse < 0 || (L->type == LAYER_FLATTEN && i > 0)) continue;
        const float *in = i > 0 ? m->layers[i - 1].y : x;
        const float *w = m->params + L->w_off;
        float *dw = m->grads + L->w_off, *db = m->grads + L->b_off;
        size_t nout = L->out_size * (size_t)B;
        /* The first layer needs no input gradient. */
        float *din = i > 0 ? m->gbuf[which] : NULL;
        switch (L->type) {
        case LAYER_CONV2D:
            if (L->fuse > 0)
                convblock_backward(din, dw, db, dcur, L->y, L->arg, in, w, B, L->c, L->h, L->w, (int)L->filters,
                                   (int)L->size, (int)L->stride, L->fuse == 2, !L->nhwc, m->ws);
            else
                conv2d_backward(din, dw, db, dcur, in, w, B, L->c, L->h, L->w, (int)L->filters, (int)L->size,
                                (int)L->stride, (int)L->pad, m->ws);
            break;
        case LAYER_MAXPOOL:
            if (din) maxpool_backward(din, dcur, L->idx, B, L->c, L->h, L->w, (int)L->size, (int)L->stride);
            break;
        case LAYER_RELU:
            if (din) relu_backward(din, dcur, L->y, nout);
            break;
        case LAYER_SIGMOID:
            if (din) sigmoid_backward(din, dcur, L->y, nout);
            break;
        case LAYER_LINEAR: linear_backward(din, dw, db, dcur, in, w, B, (int)L->in_size, (int)L->out); break;
        case LAYER_FLATTEN:
            if (din) memcpy(din, dcur, nout * sizeof(float));
            break;
        case LAYER_L2NORM:
            if (din) l2norm_backward(din, dcur, L->y, L->norms, B, (int)L->out_size);
            break;
        }
        if (m->prof) m->prof[2 * i + 1] += now_seconds() - t0;
        if (ready && (L->nw || L->nb)) ready(ctx, L->w_off, L->nw + L->nb);
        if (din) {
            dcur = din;
            which ^= 1;
        }
    }
}

double model_l2_penalty(Model *m) {
    double total = 0;
    for (int v = 0; v < m->nviews; v++) {
        const ParamView *pv = &m->views[v];
        if (pv->l2 == 0) continue;
        const float *p = m->params + pv->offset;
        float *g = m->grads + pv->offset;
        double s = 0;
        for (size_t i = 0; i < pv->count; i++) {
            s += (double)p[i] * p[i];
            g[i] += 2.0f * pv->l2 * p[i];
        }
        total += pv->l2 * s;
    }
    return total;
}

void model_describe(const Model *m, FILE *out) {
    fprintf(out, "  %-10s %-8s %-14s %10s\n", "layer", "type", "output", "params");
    fprintf(out, "  %-10s %-8s %-14s %10s\n", "input", "", "", "");
    for (int i = 0; i < m->nlayers; i++) {
        const ModelLayer *L = &m->layers[i];
        char shape[32];
        snprintf(shape, sizeof shape, "%dx%dx%d", L->oc, L->oh, L->ow);
        fprintf(out, "  %-10s %-8s %-14s %10zu\n", L->name, layer_type_names[L->type], shape, L->nw + L->nb);
    }
    if (m->has_head) fprintf(out, "  %-10s %-8s %-14s %10d\n", "head", "koch", "1", m->emb_dim + 1);
    fprintf(out, "  total %zu parameters, input %dx%dx%d, embedding %d, %.2f MFLOP forward per image\n", m->nparams,
            m->in_c, m->in_h, m->in_w, m->emb_dim, (double)m->flops_fwd_per_image / 1e6);
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
            out->floats += count;
            out->tensors++;
            if (out->floats > MODEL_TOPOLOGY_MAX_FLOATS)
                return err_set(e, "topology line %d: more than %llu parameters in all", line,
                               (unsigned long long)MODEL_TOPOLOGY_MAX_FLOATS);
        }
        p += len + 1;
    }
    if (out->in_c == 0) return err_set(e, "topology is empty (no 'input CxHxW' line)");
    return 0;
}

char *model_topology(const Model *m) {
    size_t cap = 256 + (size_t)m->nviews * 128, len = 0;
    char *s = xmalloc(cap);
    len += snprintf(s + len, cap - len, "input %dx%dx%d\n", m->in_c, m->in_h, m->in_w);
    for (int v = 0; v < m->nviews; v++) {
        const ParamView *pv = &m->views[v];
        len += snprintf(s + len, cap - len, "%s", pv->name);
        for (int d = 0; d < pv->ndim; d++) len += snprintf(s + len, cap - len, "%c%d", d ? 'x' : ' ', pv->shape[d]);
        len += snprintf(s + len, cap - len, "\n");
    }
    return s;
}
