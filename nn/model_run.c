/* model_run: forward and backward over the graph built by model.c, node by
 * node through the registry rows. Backward keeps, per node, which halves of
 * its output gradient have been written in this pass: the first reader to
 * reach a range writes it (the kernels' contract), later ones write into
 * scratch and add, and a range nobody wrote is zeroed before the node's own
 * backward reads it. */
#include <string.h>

#include "layer.h"
#include "model.h"
#include "parallel.h"

enum { HALF_A = 1, HALF_B = 2, FULL = 3 };

void model_set_step(Model *m, const ModelStep *st) { m->st = *st; }

int model_node(const Model *m, const char *name) {
    for (int i = 0; i < m->nlayers; i++)
        if (!strcmp(m->layers[i].name, name)) return i;
    return -1;
}

const float *model_output(const Model *m, int node) { return m->out[node]; }
size_t model_node_size(const Model *m, int node) { return m->layers[node].out_size; }
int model_node_rows(const Model *m, int node, int rows) { return rows >> m->layers[node].halved; }

uint64_t model_row_position(const Model *m, int i, int r) {
    const ModelStep *s = &m->st;
    if (s->items <= 0) return (uint64_t)r;
    if (m->layers[i].halved) return (uint64_t)s->item0 + (uint64_t)r;
    return (uint64_t)(r / s->items) * (uint64_t)s->global_items + (uint64_t)s->item0 +
           (uint64_t)(r % s->items);
}

/* Rows of what ref r reads when the model input has `rows` rows. */
static int ref_rows(const Model *m, NodeRef r, int rows) {
    int n = r.node == MODEL_INPUT ? rows : rows >> m->layers[r.node].halved;
    return r.half == REF_WHOLE ? n : n / 2;
}

static size_t ref_size(const Model *m, NodeRef r) {
    return r.node == MODEL_INPUT ? (size_t)m->in_c * m->in_h * m->in_w : m->layers[r.node].out_size;
}

/* Offset in floats of ref r's first row within its node's output. */
static size_t ref_offset(const Model *m, NodeRef r, int rows) {
    return r.half == REF_B ? (size_t)ref_rows(m, r, rows) * ref_size(m, r) : 0;
}

/* Where a layer's timing starts: wall clock, work offset, and the threads'
 * work CPU clock (thread_cpu_seconds + its offset) if prof_cpu is kept. */
typedef struct ProfMark {
    double t, w, c;
} ProfMark;

static double work_cpu(void) { return thread_cpu_seconds() + parallel_work_cpu_offset(); }

static ProfMark prof_mark(const Model *m) {
    ProfMark k = {0, 0, 0};
    if (m->prof) {
        k.t = now_seconds(), k.w = parallel_work_offset();
        if (m->prof_cpu) k.c = work_cpu();
    }
    return k;
}

/* prof[k] += the wall seconds since the mark, prof[2 nlayers + k] += the
 * threads' work since then (nn/parallel.h: wall + the change of the work
 * offset), prof_cpu[k] += their work CPU seconds. */
static void prof_add(Model *m, int k, ProfMark t0) {
    double dt = now_seconds() - t0.t;
    m->prof[k] += dt;
    m->prof[2 * m->nlayers + k] += dt + parallel_work_offset() - t0.w;
    if (m->prof_cpu) m->prof_cpu[k] += work_cpu() - t0.c;
}

static void run_forward(Model *m, const float *x, int rows, const unsigned char *only) {
    ASSERT(rows <= m->max_batch);
    m->x = x;
    m->rows = rows;
    for (int i = 0; i < m->nlayers; i++) {
        ModelLayer *L = &m->layers[i];
        if (only && !only[i]) continue;
        if (L->alias != i && (L->fuse < 0 || (L->def->flags & LAYER_VIEW))) {
            m->out[i] = L->alias == MODEL_INPUT ? x : m->out[L->alias];
            continue;
        }
        ProfMark t0 = prof_mark(m);
        const float *in[LAYER_MAX_INPUTS];
        for (int k = 0; k < L->nin; k++) {
            NodeRef r = L->in[k];
            in[k] = (r.node == MODEL_INPUT ? x : m->out[r.node]) + ref_offset(m, r, rows);
        }
        float *y = L->alias == i ? L->y : (float *)m->out[L->alias];
        L->def->forward(m, L, y, in, rows >> L->halved);
        m->out[i] = y;
        if (m->prof) prof_add(m, 2 * i, t0);
    }
}

const float *model_forward(Model *m, const float *x, int rows) {
    ASSERT(!m->pair || rows % 2 == 0);
    run_forward(m, x, rows, NULL);
    return m->out[m->loss];
}

const float *model_embed(Model *m, const float *x, int rows) {
    ASSERT(m->emb >= 0);
    int train = m->st.train;
    m->st.train = 0;
    run_forward(m, x, rows, m->embed_only);
    m->st.train = train;
    return m->out[m->emb];
}

/* The writable gradient buffer of node p (pooled or its own). */
static float *grad_buf(Model *m, int p) {
    const ModelLayer *P = &m->layers[p];
    return P->grad_own ? P->dy : m->gpool[m->gbuf_of[p]];
}

/* Makes the halves `want` of node p's gradient written, zeroing those that
 * are not. */
static void cover(Model *m, int p, int want, int rows) {
    int missing = want & ~m->written[p];
    if (!missing) return;
    size_t n = (size_t)model_node_rows(m, p, rows) * m->layers[p].out_size, half = n / 2;
    float *g = grad_buf(m, p);
    if (missing == FULL)
        memset(g, 0, n * sizeof(float));
    else
        memset(g + (missing == HALF_B ? half : 0), 0, half * sizeof(float));
    m->written[p] |= (unsigned char)missing;
    m->dyp[p] = g;
}

void model_backward_seeds(Model *m, const ModelSeed *seeds, int nseeds, GradReadyFn ready, void *ctx) {
    int rows = m->rows;
    memset(m->written, 0, (size_t)m->nlayers);
    for (int s = 0; s < nseeds; s++) {
        int i = seeds[s].node;
        ModelLayer *L = &m->layers[i];
        ASSERT(L->is_output && !m->written[i]);
        if (L->grad_own) {
            memcpy(L->dy, seeds[s].g, (size_t)model_node_rows(m, i, rows) * L->out_size * sizeof(float));
            m->dyp[i] = L->dy;
        } else {
            m->dyp[i] = seeds[s].g;
        }
        m->written[i] = FULL;
    }
    for (int i = m->nlayers - 1; i >= 0; i--) {
        ModelLayer *L = &m->layers[i];
        int p0 = L->in[0].node;
        if (L->pass) {
            if (p0 >= 0 && m->written[i]) { /* passthrough: same floats, same gradient */
                m->dyp[p0] = m->dyp[i];
                m->written[p0] = m->written[i];
            }
            continue;
        }
        ProfMark t0 = prof_mark(m);
        if (m->written[i] && L->wants_grad) {
            if (m->written[i] != FULL) cover(m, i, FULL, rows);
            int r = rows >> L->halved;
            float *dx[LAYER_MAX_INPUTS];
            float *add_to[LAYER_MAX_INPUTS] = {0};
            size_t add_n[LAYER_MAX_INPUTS] = {0};
            const float *in[LAYER_MAX_INPUTS];
            for (int k = 0; k < L->nin; k++) {
                NodeRef ref = L->in[k];
                int p = ref.node;
                in[k] = (p == MODEL_INPUT ? m->x : m->out[p]) + ref_offset(m, ref, rows);
                dx[k] = NULL;
                if (p < 0 || !m->layers[p].wants_grad) continue;
                int want = ref.half == REF_A ? HALF_A : ref.half == REF_B ? HALF_B : FULL;
                float *dst = grad_buf(m, p) + ref_offset(m, ref, rows);
                if (L->def->flags & LAYER_ACCUMULATES) {
                    cover(m, p, want, rows);
                    dx[k] = dst;
                } else if (!(m->written[p] & want)) {
                    dx[k] = dst;
                    m->written[p] |= (unsigned char)want;
                    m->dyp[p] = grad_buf(m, p);
                } else {
                    cover(m, p, want, rows);
                    add_n[k] = (size_t)ref_rows(m, ref, rows) * ref_size(m, ref);
                    dx[k] = m->scratch + (size_t)k * m->scratch_slot;
                    add_to[k] = dst;
                }
            }
            const float *y = m->out[i];
            L->def->backward(m, L, dx, m->dyp[i], y, in, r);
            for (int k = 0; k < L->nin; k++)
                for (size_t j = 0; j < add_n[k]; j++) add_to[k][j] += dx[k][j];
        }
        if (m->prof) prof_add(m, 2 * i + 1, t0);
        if (ready && L->np) ready(ctx, L->p_off, L->np);
    }
}

void model_backward(Model *m, const float *x, const float *dE, int rows, GradReadyFn ready, void *ctx) {
    ASSERT(x == m->x && rows == m->rows);
    ModelSeed s = {m->loss, dE};
    model_backward_seeds(m, &s, 1, ready, ctx);
}

void model_update_buffers(Model *m) {
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].def->update) m->layers[i].def->update(m, &m->layers[i]);
}
