/* train_classes: the exchange of [mining] pool = classes (mining/classes.h)
 * in the training step. Per step: the labels and the classes' fixed-point
 * sums over all ranks (an allgather of N ints, an allreduce of P x D
 * int64), this rank's anchor classes and their nearest classes, a request
 * to every rank for the blocks it holds of them (alltoall of counts,
 * alltoallv of block ids), the rows themselves (alltoallv), the loss block
 * by block; after the global normalisation, the gradients of the received
 * rows go back to their owners by the reverse alltoallv and are summed
 * there in rank order. A rank receives at most its anchor blocks x (m + 1)
 * x K rows, whatever the rank count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../mining/classes.h"
#include "train.h"

struct ClassesExchange {
    ClassesPlan plan;
    float *U, *dU;    /* (max_union K, D) the needed rows, their gradient */
    float *out;       /* (max_items world, D) rows sent, then gradients received */
    int32_t *req_out; /* (max_union + world) the blocks asked of each rank, in rank order */
    int32_t *req_in;  /* (max_blocks world) the blocks each rank asks of this one */
    int *nreq_out, *nreq_in, *nrow_out, *nrow_in; /* (world) */
};

static int32_t block_label(const Trainer *t, int b) { return t->pool_labels[(size_t)b * t->cfg.sampler.k]; }

int classes_active(const Config *c) {
    return c->sampler.mode == SAMPLER_PK && c->mining.scope == SCOPE_GLOBAL &&
           c->mining.pool == POOL_CLASSES && c->mining.classes < c->sampler.p - 1;
}

ClassesExchange *classes_exchange_create(const Trainer *t, int max_items) {
    const Config *c = &t->cfg;
    int P = c->sampler.p, K = c->sampler.k, D = t->D, W = t->world;
    ClassesExchange *x = xcalloc(1, sizeof *x);
    int Nc = (MIN(c->mining.classes, P - 1) + 1) * K;
    size_t ws = MAX(triplet_workspace_floats(Nc, K), pairs_workspace_floats(Nc, K));
    ws = MAX(ws, simloss_workspace_floats(Nc, K));
    classes_plan_init(&x->plan, P, K, D, c->mining.classes, max_items, ws);
    x->U = xaligned_floats((size_t)x->plan.max_union * K * D);
    x->dU = xaligned_floats((size_t)x->plan.max_union * K * D);
    x->out = xaligned_floats((size_t)max_items * W * D);
    x->req_out = xcalloc((size_t)x->plan.max_union + W, sizeof *x->req_out);
    x->req_in = xcalloc((size_t)x->plan.max_blocks * W, sizeof *x->req_in);
    x->nreq_out = xcalloc((size_t)W, sizeof(int));
    x->nreq_in = xcalloc((size_t)W, sizeof(int));
    x->nrow_out = xcalloc((size_t)W, sizeof(int));
    x->nrow_in = xcalloc((size_t)W, sizeof(int));
    return x;
}

double classes_exchange_floats(const Config *c, int D, int max_items, int world) {
    int P = c->sampler.p, K = c->sampler.k, m = MIN(c->mining.classes, P - 1);
    double blocks = MIN(P, (max_items + K - 1) / K + 1), uni = MIN(P, blocks * (m + 1)),
           Nc = (double)(m + 1) * K;
    double ws = (double)MAX(triplet_workspace_floats((int)Nc, K), pairs_workspace_floats((int)Nc, K));
    return 2.0 * P * D + 2.0 * uni * K * D + (double)max_items * world * D + 2.0 * Nc * D + ws;
}

void classes_exchange_free(ClassesExchange *x) {
    if (!x) return;
    classes_plan_free(&x->plan);
    free(x->U), free(x->dU), free(x->out), free(x->req_out), free(x->req_in);
    free(x->nreq_out), free(x->nreq_in), free(x->nrow_out), free(x->nrow_in);
    free(x);
}

static LossStats pool_loss(void *t, float *dE, float *ws, const float *E, const int32_t *labels, int N,
                           int a0, int a1) {
    return trainer_pool_loss(t, dE, ws, E, labels, N, a0, a1);
}

/* Rows [r0, r1) of block b that lie in [off, off + n). */
static void block_rows(int *r0, int *r1, int b, int K, int off, int n) {
    *r0 = MAX(b * K, off);
    *r1 = MIN((b + 1) * K, off + n);
}

LossStats classes_exchange_loss(Trainer *t, const LocalBatch *lb, const float *E, float **dEout, int *rows) {
    ClassesExchange *x = t->cls;
    ClassesPlan *p = &x->plan;
    int K = p->K, D = p->D, W = t->world, off = lb->item_begin, n = lb->n_items;
    size_t rb = (size_t)D * sizeof(float);
    /* Labels and fixed-point sums: exact integers, the same on every rank. */
    dist_allgather_rows(t->pool_labels, lb->labels, sizeof(int32_t), t->rows);
    for (int b = 0; b < p->P; b++) p->label[b] = block_label(t, b);
    double amax = 0.0;
    for (size_t i = 0; i < (size_t)n * D; i++) amax = isnan(E[i]) || fabsf(E[i]) > amax ? fabsf(E[i]) : amax;
    p->bits = classes_fixed_bits(dist_max_double(amax), K);
    memset(p->S, 0, (size_t)p->P * D * sizeof *p->S);
    classes_sums(p->S, E, off, n, K, D, p->bits);
    dist_allreduce_sum_int64(p->S, (size_t)p->P * D);
    classes_plan_blocks(p, off, off + n);
    /* Ask every rank for the blocks of the union it holds (in global order). */
    int nq = 0;
    for (int s = 0; s < W; s++) {
        int first, cnt = classes_blocks_in(p, t->offsets[s], t->rows[s], &first);
        x->nreq_out[s] = cnt;
        x->nrow_in[s] = 0;
        for (int j = 0; j < cnt; j++) {
            int b = p->ublocks[first + j], r0, r1;
            x->req_out[nq++] = b;
            block_rows(&r0, &r1, b, K, t->offsets[s], t->rows[s]);
            x->nrow_in[s] += r1 - r0;
        }
    }
    dist_alltoall_counts(x->nreq_in, x->nreq_out);
    dist_alltoallv_rows(x->req_in, x->nreq_in, x->req_out, x->nreq_out, sizeof(int32_t));
    /* Send each asker the rows of its blocks that this rank holds. */
    size_t o = 0, q = 0;
    for (int r = 0; r < W; r++) {
        x->nrow_out[r] = 0;
        for (int j = 0; j < x->nreq_in[r]; j++, q++) {
            int r0, r1;
            block_rows(&r0, &r1, x->req_in[q], K, off, n);
            ASSERT(r0 < r1);
            memcpy(x->out + o * D, E + (size_t)(r0 - off) * D, (size_t)(r1 - r0) * rb);
            o += (size_t)(r1 - r0);
            x->nrow_out[r] += r1 - r0;
        }
    }
    dist_alltoallv_rows(x->U, x->nrow_in, x->out, x->nrow_out, rb);
    size_t urows = (size_t)p->nu * K;
    memset(x->dU, 0, urows * rb);
    LossStats s = classes_plan_loss(p, x->dU, x->U, pool_loss, t);
    *dEout = x->dU;
    *rows = (int)urows;
    return s;
}

void classes_exchange_return(Trainer *t, float *dE, const LocalBatch *lb) {
    ClassesExchange *x = t->cls;
    int K = x->plan.K, D = x->plan.D, W = t->world, off = lb->item_begin, n = lb->n_items;
    dist_alltoallv_rows(x->out, x->nrow_out, x->dU, x->nrow_in, (size_t)D * sizeof(float));
    /* Every asker's gradient of this rank's rows, askers in rank order. */
    memset(dE, 0, (size_t)n * D * sizeof *dE);
    size_t o = 0, q = 0;
    for (int r = 0; r < W; r++)
        for (int j = 0; j < x->nreq_in[r]; j++, q++) {
            int r0, r1;
            block_rows(&r0, &r1, x->req_in[q], K, off, n);
            for (int i = r0; i < r1; i++, o++) {
                float *g = dE + (size_t)(i - off) * D;
                const float *h = x->out + o * D;
                for (int k = 0; k < D; k++) g[k] += h[k];
            }
        }
}
