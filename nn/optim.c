/* optim: SGD / Adam / AdamW updates, schedules and clipping. Updates are done
 * in float like PyTorch's foreach kernels; per-tensor scalars (lr, decay,
 * bias corrections) are computed in double and rounded once. Each view's
 * update runs on the pool in chunks of PARALLEL_GRAIN floats (elementwise:
 * the same bits for any thread count); the clipping norm is a parallel_sum. */
#include "optim.h"

#include <math.h>

#include "parallel.h"
#include "util.h"

void optim_spec_default(OptimSpec *o) {
    *o = (OptimSpec){
        .type = OPTIM_SGD,
        .lr = 0.01,
        .momentum = 0.0,
        .momentum_start = 0.0,
        .momentum_epochs = 0,
        .nesterov = 0,
        .weight_decay = 0.0,
        .beta1 = 0.9,
        .beta2 = 0.999,
        .eps = 1e-8,
        .schedule = OPTIM_SCHED_CONSTANT,
        .gamma = 0.1,
        .step_size = 1,
        .min_lr = 0.0,
        .warmup_steps = 0,
    };
}

size_t optim_state_floats(const OptimSpec *o, size_t n) {
    switch (o->type) {
    case OPTIM_SGD:
        return o->momentum != 0.0 || (o->momentum_epochs && o->momentum_start != 0.0) ? n : 0;
    case OPTIM_ADAM:
    case OPTIM_ADAMW:
        return 2 * n;
    }
    FATAL("optim: unknown optimizer type %d", (int)o->type);
}

double optim_lr(const OptimSpec *o, uint64_t step, uint64_t epoch, uint64_t total_steps) {
    double lr = o->lr;
    switch (o->schedule) {
    case OPTIM_SCHED_CONSTANT:
        break;
    case OPTIM_SCHED_STEP:
        ASSERT(o->step_size >= 1);
        lr *= pow(o->gamma, (double)(epoch / o->step_size));
        break;
    case OPTIM_SCHED_EXP:
        lr *= pow(o->gamma, (double)epoch);
        break;
    case OPTIM_SCHED_COSINE: {
        double f = total_steps ? (double)MIN(step, total_steps) / (double)total_steps : 1.0;
        lr = o->min_lr + (o->lr - o->min_lr) * 0.5 * (1.0 + cos(M_PI * f));
        break;
    }
    default:
        FATAL("optim: unknown schedule %d", (int)o->schedule);
    }
    if (o->warmup_steps && step < o->warmup_steps) lr *= (double)(step + 1) / (double)o->warmup_steps;
    return lr;
}

static double sum_squares(void *p, size_t lo, size_t hi) {
    const float *g = p;
    double ss = 0.0;
    for (size_t i = lo; i < hi; i++) ss += (double)g[i] * g[i];
    return ss;
}

double optim_clip(float *grads, size_t n, double max_norm) {
    return optim_clip_range(grads, n, max_norm, 0, n);
}

double optim_clip_range(float *grads, size_t n, double max_norm, size_t lo, size_t hi) {
    ASSERT(lo <= hi && hi <= n);
    double norm = sqrt(optim_sum_squares(grads, n));
    optim_clip_scale(grads, norm, max_norm, lo, hi);
    return norm;
}

double optim_sum_squares(const float *g, size_t n) { return parallel_sum(n, sum_squares, (void *)g); }

void optim_clip_scale(float *grads, double norm, double max_norm, size_t lo, size_t hi) {
    ASSERT(lo <= hi);
    if (max_norm > 0.0 && isfinite(norm) && norm > max_norm) parallel_scale(grads + lo, hi - lo, (float)(max_norm / norm));
}

#define SHARD_GROUP 16

void optim_shard(size_t n, int world, int rank, size_t *lo, size_t *hi) {
    ASSERT(world >= 1 && 0 <= rank && rank < world);
    size_t groups = (n + SHARD_GROUP - 1) / SHARD_GROUP, base = groups / (size_t)world,
           extra = groups % (size_t)world, r = (size_t)rank;
    size_t g0 = r * base + MIN(r, extra), g1 = g0 + base + (r < extra);
    *lo = MIN(n, g0 * SHARD_GROUP);
    *hi = MIN(n, g1 * SHARD_GROUP);
}

/* SGD over one view's floats [0, m). */
static void optim_sgd(const OptimSpec *o, float *p, const float *g, float *buf, size_t m, float lr, float wd,
                      float mom, uint64_t t) {
    for (size_t i = 0; i < m; i++) {
        float d = g[i] + wd * p[i];
        if (buf) {
            float v = t == 1 ? d : mom * buf[i] + d;
            buf[i] = v;
            d = o->nesterov ? d + mom * v : v;
        }
        p[i] -= lr * d;
    }
}

/* Adam (decoupled == 0) or AdamW (decoupled == 1) over one view's floats. */
static void optim_adam(const OptimSpec *o, float *p, const float *g, float *m1, float *m2, size_t m,
                       double lr, double wd, uint64_t t, int decoupled) {
    /* The same float roundings as torch.optim: lerp for m, addcmul for v,
     * addcdiv for the update, scalars formed in double then cast. */
    float w1 = (float)(1.0 - o->beta1), b2 = (float)o->beta2, w2 = (float)(1.0 - o->beta2);
    float eps = (float)o->eps;
    double bc1 = 1.0 - pow(o->beta1, (double)t), bc2 = 1.0 - pow(o->beta2, (double)t);
    float step_size = (float)(lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float decay = decoupled ? (float)(1.0 - lr * wd) : 1.0f;
    float l2 = decoupled ? 0.0f : (float)wd;
    for (size_t i = 0; i < m; i++) {
        float x = p[i] * decay;
        float d = g[i] + l2 * x;
        float a = m1[i] + w1 * (d - m1[i]);
        float v = b2 * m2[i] + w2 * (d * d);
        m1[i] = a;
        m2[i] = v;
        p[i] = x - step_size * (a / (sqrtf(v) / bc2_sqrt + eps));
    }
}

double optim_momentum(const OptimSpec *o, double final, uint64_t epoch) {
    if (!o->momentum_epochs || epoch >= o->momentum_epochs) return final;
    return o->momentum_start + (final - o->momentum_start) * ((double)epoch / (double)o->momentum_epochs);
}

typedef struct Upd {
    const OptimSpec *o;
    float *p, *buf, *m1, *m2;
    const float *g;
    double lr, wd, mom;
    uint64_t t;
} Upd;

static void update_chunk(void *p, size_t lo, size_t hi) {
    const Upd *u = p;
    size_t m = hi - lo;
    if (u->o->type == OPTIM_SGD)
        optim_sgd(u->o, u->p + lo, u->g + lo, u->buf ? u->buf + lo : NULL, m, (float)u->lr, (float)u->wd,
                  (float)u->mom, u->t);
    else
        optim_adam(u->o, u->p + lo, u->g + lo, u->m1 + lo, u->m2 + lo, m, u->lr, u->wd, u->t,
                   u->o->type == OPTIM_ADAMW);
}

void optim_step(const OptimSpec *o, float *params, const float *grads, float *state, size_t n,
                const ParamView *views, int nviews, double lr, uint64_t epoch, uint64_t t) {
    optim_step_range(o, params, grads, state, n, views, nviews, lr, epoch, t, 0, n);
}

void optim_step_range(const OptimSpec *o, float *params, const float *grads, float *state, size_t n,
                      const ParamView *views, int nviews, double lr, uint64_t epoch, uint64_t t, size_t lo,
                      size_t hi) {
    ASSERT(t >= 1 && lo <= hi && hi <= n);
    size_t m = hi - lo; /* the floats of the range: its state's layout */
    ASSERT(state || optim_state_floats(o, m) == 0 || m == 0);
    if (o->type != OPTIM_SGD && o->type != OPTIM_ADAM && o->type != OPTIM_ADAMW)
        FATAL("optim: unknown optimizer type %d", (int)o->type);
    for (int k = 0; k < nviews; k++) {
        const ParamView *v = &views[k];
        ASSERT(v->offset <= n && v->count <= n - v->offset);
        size_t off = MAX(v->offset, lo), end = MIN(v->offset + v->count, hi); /* the view inside the range */
        Upd u = {.o = o, .p = params + off, .g = grads + off, .lr = lr * v->lr_mult, .t = t};
        u.wd = o->weight_decay * v->decay_mult;
        switch (o->type) {
        case OPTIM_SGD: {
            u.mom = optim_momentum(o, v->has_momentum ? v->momentum : o->momentum, epoch);
            int has_state = optim_state_floats(o, n) != 0;
            if (u.mom != 0.0 && !has_state)
                FATAL("optim: %s asks for momentum %g but plain SGD keeps no momentum buffer; set [optim] "
                      "momentum",
                      v->name, u.mom);
            u.buf = has_state ? state + (off - lo) : NULL;
            break;
        }
        case OPTIM_ADAM:
        case OPTIM_ADAMW:
            u.m1 = state + (off - lo), u.m2 = state + m + (off - lo);
            break;
        default:
            FATAL("optim: unknown optimizer type %d", (int)o->type);
        }
        if (off < end) parallel_for(end - off, PARALLEL_GRAIN, update_chunk, &u);
    }
}
