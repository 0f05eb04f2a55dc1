/* Tests of nn/optim: SGD (plain, momentum, Nesterov), Adam and AdamW against
 * a scalar double-precision reference written from PyTorch's documented
 * update rules, over several steps with weight decay, per-view lr_mult and
 * decay_mult and an arena gap outside every view; the schedules at chosen
 * steps against closed forms; clipping to exactly the max norm. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/optim.h"
#include "../nn/util.h"
#include "test.h"

#define N_ARENA 24
#define N_STEPS 6

static const ParamView views[3] = {
    {.name = "a.weight", .offset = 0, .count = 7, .lr_mult = 1.0f, .decay_mult = 1.0f},
    {.name = "a.bias", .offset = 7, .count = 3, .lr_mult = 0.5f, .decay_mult = 0.0f},
    /* floats 10..13 belong to no view: never updated */
    {.name = "b.weight", .offset = 14, .count = 10, .lr_mult = 2.0f, .decay_mult = 3.0f},
};

/* Reference state for one scalar. */
typedef struct RefState {
    double p, buf, m, v;
} RefState;

static void ref_step(const OptimSpec *o, RefState *s, double g, double lr, double wd, uint64_t t) {
    if (o->type == OPTIM_SGD) {
        g += wd * s->p;
        if (o->momentum != 0.0) {
            s->buf = t == 1 ? g : o->momentum * s->buf + g;
            g = o->nesterov ? g + o->momentum * s->buf : s->buf;
        }
        s->p -= lr * g;
        return;
    }
    if (o->type == OPTIM_ADAMW)
        s->p *= 1.0 - lr * wd;
    else
        g += wd * s->p;
    s->m = o->beta1 * s->m + (1.0 - o->beta1) * g;
    s->v = o->beta2 * s->v + (1.0 - o->beta2) * g * g;
    double mhat = s->m / (1.0 - pow(o->beta1, (double)t));
    double vhat = s->v / (1.0 - pow(o->beta2, (double)t));
    s->p -= lr * mhat / (sqrt(vhat) + o->eps);
}

/* Runs N_STEPS of optim_step and the reference side by side; returns the
 * largest relative parameter difference over all steps. */
static double run_against_reference(const OptimSpec *o, const char *what) {
    Rng r;
    rng_seed(&r, 3, RNG_TEST, 0);
    float params[N_ARENA], grads[N_ARENA];
    size_t ns = optim_state_floats(o, N_ARENA);
    float *state = ns ? xcalloc(ns, sizeof *state) : NULL;
    RefState ref[N_ARENA];
    int in_view[N_ARENA] = {0};
    double lr_mult[N_ARENA] = {0}, decay_mult[N_ARENA] = {0};
    for (int k = 0; k < 3; k++)
        for (size_t i = views[k].offset; i < views[k].offset + views[k].count; i++) {
            in_view[i] = 1;
            lr_mult[i] = views[k].lr_mult;
            decay_mult[i] = views[k].decay_mult;
        }
    for (int i = 0; i < N_ARENA; i++) {
        params[i] = 2.0f * rng_uniform(&r) - 1.0f;
        ref[i] = (RefState){params[i], 0, 0, 0};
    }
    double worst = 0.0;
    for (uint64_t t = 1; t <= N_STEPS; t++) {
        double lr = optim_lr(o, t - 1, (t - 1) / 2, N_STEPS);
        for (int i = 0; i < N_ARENA; i++) grads[i] = 2.0f * rng_uniform(&r) - 1.0f;
        float gcopy[N_ARENA];
        memcpy(gcopy, grads, sizeof grads);
        optim_step(o, params, grads, state, N_ARENA, views, 3, lr, 0, t);
        CHECK(memcmp(gcopy, grads, sizeof grads) == 0, "%s: grads untouched", what);
        for (int i = 0; i < N_ARENA; i++) {
            if (!in_view[i]) continue;
            ref_step(o, &ref[i], grads[i], lr * lr_mult[i], o->weight_decay * decay_mult[i], t);
            double d = fabs(params[i] - ref[i].p) / fmax(fabs(ref[i].p), 1e-3);
            if (d > worst || isnan(d)) worst = isnan(d) ? INFINITY : d;
        }
    }
    /* floats outside every view keep their initial value */
    int untouched = 1;
    for (int i = 0; i < N_ARENA; i++)
        if (!in_view[i]) untouched &= params[i] == (float)ref[i].p;
    CHECK(untouched, "%s: floats outside the views are not updated", what);
    free(state);
    return worst;
}

static void test_optimizers(void) {
    OptimSpec o;
    optim_spec_default(&o);
    CHECK(optim_state_floats(&o, 100) == 0, "plain SGD has no state");
    o.lr = 0.05;
    o.weight_decay = 5e-4 * 40; /* large enough to matter in 6 steps */
    double e = run_against_reference(&o, "sgd");
    CHECK(e < 1e-5, "sgd vs reference, rel err %g", e);

    o.momentum = 0.9;
    CHECK(optim_state_floats(&o, 100) == 100, "momentum SGD: n floats");
    e = run_against_reference(&o, "sgd momentum");
    CHECK(e < 1e-5, "sgd momentum vs reference, rel err %g", e);

    o.nesterov = 1;
    e = run_against_reference(&o, "sgd nesterov");
    CHECK(e < 1e-5, "sgd nesterov vs reference, rel err %g", e);

    /* with a cosine schedule and warm-up feeding the lr */
    o.schedule = OPTIM_SCHED_COSINE;
    o.min_lr = 0.001;
    o.warmup_steps = 2;
    e = run_against_reference(&o, "sgd nesterov cosine warm-up");
    CHECK(e < 1e-5, "sgd nesterov + cosine + warm-up vs reference, rel err %g", e);

    optim_spec_default(&o);
    o.type = OPTIM_ADAM;
    o.lr = 0.01;
    o.weight_decay = 0.1;
    CHECK(optim_state_floats(&o, 100) == 200, "adam: 2n floats");
    e = run_against_reference(&o, "adam");
    CHECK(e < 1e-5, "adam vs reference, rel err %g", e);
    o.type = OPTIM_ADAMW;
    CHECK(optim_state_floats(&o, 100) == 200, "adamw: 2n floats");
    e = run_against_reference(&o, "adamw");
    CHECK(e < 1e-5, "adamw vs reference, rel err %g", e);
    o.beta1 = 0.5;
    o.beta2 = 0.9;
    o.eps = 1e-3;
    e = run_against_reference(&o, "adamw betas");
    CHECK(e < 1e-5, "adamw (betas 0.5/0.9, eps 1e-3) vs reference, rel err %g", e);
}

/* Closed forms independent of the reference: Adam's first step moves each
 * parameter by lr * sign(g) (bias correction makes m/sqrt(v) = g/|g|);
 * momentum SGD's first step equals plain SGD's (buffer = g); AdamW with
 * zero gradient only shrinks p by (1 - lr*wd). */
static void test_closed_forms(void) {
    ParamView v = {.name = "w", .offset = 0, .count = 4, .lr_mult = 1, .decay_mult = 1};
    float p[4] = {1, -2, 3, 0.5f}, g[4] = {0.3f, -7, 1e-3f, -0.01f}, st[8] = {0};
    OptimSpec o;
    optim_spec_default(&o);
    o.type = OPTIM_ADAM;
    optim_step(&o, p, g, st, 4, &v, 1, 0.1, 0, 1);
    float want[4] = {0.9f, -1.9f, 2.9f, 0.6f};
    int ok = 1;
    for (int i = 0; i < 4; i++) ok &= fabsf(p[i] - want[i]) < 1e-5f;
    CHECK(ok, "adam first step = lr * sign(g): %g %g %g %g", p[0], p[1], p[2], p[3]);

    float q[4] = {1, -2, 3, 0.5f}, z[4] = {0}, st2[8] = {0};
    o.type = OPTIM_ADAMW;
    o.weight_decay = 0.5;
    optim_step(&o, q, z, st2, 4, &v, 1, 0.1, 0, 1);
    ok = 1;
    const float q0[4] = {1, -2, 3, 0.5f};
    for (int i = 0; i < 4; i++) ok &= q[i] == q0[i] * (float)(1.0 - 0.1 * 0.5);
    CHECK(ok, "adamw with zero gradient: p * (1 - lr*wd): %g %g", q[0], q[1]);

    float a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 4}, mom[4] = {9, 9, 9, 9};
    OptimSpec s;
    optim_spec_default(&s);
    optim_step(&s, a, g, NULL, 4, &v, 1, 0.1, 0, 1);
    s.momentum = 0.9;
    optim_step(&s, b, g, mom, 4, &v, 1, 0.1, 0, 1); /* t == 1: buffer = g, old ignored */
    CHECK(memcmp(a, b, sizeof a) == 0, "momentum SGD first step equals plain SGD");
    CHECK(memcmp(mom, g, sizeof mom) == 0, "momentum buffer initialised to the gradient");
}

static void test_schedules(void) {
    OptimSpec o;
    optim_spec_default(&o);
    o.lr = 0.1;
    CHECK_CLOSE(optim_lr(&o, 12345, 7, 100), 0.1, 1e-15, "constant");

    o.schedule = OPTIM_SCHED_STEP;
    o.gamma = 0.5;
    o.step_size = 3;
    CHECK_CLOSE(optim_lr(&o, 0, 0, 0), 0.1, 1e-15, "step epoch 0");
    CHECK_CLOSE(optim_lr(&o, 99, 2, 0), 0.1, 1e-15, "step epoch 2");
    CHECK_CLOSE(optim_lr(&o, 99, 3, 0), 0.05, 1e-15, "step epoch 3");
    CHECK_CLOSE(optim_lr(&o, 99, 8, 0), 0.025, 1e-15, "step epoch 8");

    o.schedule = OPTIM_SCHED_EXP;
    o.gamma = 0.99;
    CHECK_CLOSE(optim_lr(&o, 5, 0, 0), 0.1, 1e-15, "exp epoch 0");
    CHECK_CLOSE(optim_lr(&o, 5, 10, 0), 0.1 * pow(0.99, 10), 1e-15, "exp epoch 10");
    CHECK_CLOSE(optim_lr(&o, 5, 200, 0), 0.1 * 0.133979675, 1e-9, "exp epoch 200");

    o.schedule = OPTIM_SCHED_COSINE;
    o.min_lr = 0.001;
    CHECK_CLOSE(optim_lr(&o, 0, 0, 100), 0.1, 1e-15, "cosine start");
    CHECK_CLOSE(optim_lr(&o, 50, 0, 100), 0.0505, 1e-15, "cosine middle");
    CHECK_CLOSE(optim_lr(&o, 25, 0, 100), 0.001 + 0.099 * (1 + sqrt(0.5)) / 2, 1e-15, "cosine quarter");
    CHECK_CLOSE(optim_lr(&o, 100, 0, 100), 0.001, 1e-15, "cosine end");
    CHECK_CLOSE(optim_lr(&o, 250, 0, 100), 0.001, 1e-15, "cosine past the end");

    o.warmup_steps = 10;
    CHECK_CLOSE(optim_lr(&o, 0, 0, 100), 0.1 * 0.1, 1e-15, "warm-up step 0 (x 1/10)");
    CHECK_CLOSE(optim_lr(&o, 4, 0, 100), 0.5 * (0.001 + 0.099 * (1 + cos(M_PI * 0.04)) / 2), 1e-15,
                "warm-up step 4 times cosine");
    CHECK_CLOSE(optim_lr(&o, 10, 0, 100), 0.001 + 0.099 * (1 + cos(M_PI * 0.1)) / 2, 1e-15,
                "after warm-up: cosine alone");
    o.schedule = OPTIM_SCHED_CONSTANT;
    CHECK_CLOSE(optim_lr(&o, 9, 0, 100), 0.1, 1e-15, "warm-up last step reaches lr");
}

static void test_clip(void) {
    Rng r;
    rng_seed(&r, 5, RNG_TEST, 1);
    enum { N = 1001 };
    float *g = xmalloc(N * sizeof *g), *g0 = xmalloc(N * sizeof *g0);
    double ss = 0.0;
    for (int i = 0; i < N; i++) {
        g[i] = g0[i] = (float)rng_normal(&r);
        ss += (double)g[i] * g[i];
    }
    double norm = optim_clip(g, N, 0.0);
    CHECK_CLOSE(norm, sqrt(ss), 1e-12, "clip(max 0) returns the norm");
    CHECK(memcmp(g, g0, N * sizeof *g) == 0, "clip(max 0) only measures");
    norm = optim_clip(g, N, 1e9);
    CHECK(memcmp(g, g0, N * sizeof *g) == 0 && fabs(norm - sqrt(ss)) < 1e-9, "norm below max: untouched");
    norm = optim_clip(g, N, 2.5);
    CHECK_CLOSE(norm, sqrt(ss), 1e-12, "clip returns the norm before clipping");
    double after = optim_clip(g, N, 0.0);
    CHECK(fabs(after - 2.5) < 1e-6 * 2.5, "clipped norm is the max norm: %.9g", after);
    int dir = 1;
    for (int i = 0; i < N; i++) dir &= fabs(g[i] - g0[i] * 2.5 / sqrt(ss)) < 1e-6;
    CHECK(dir, "clipping keeps the direction");
    g[3] = NAN;
    memcpy(g0, g, N * sizeof *g);
    norm = optim_clip(g, N, 1.0);
    CHECK(isnan(norm) && memcmp(g, g0, N * sizeof *g) == 0, "NaN norm reported, no scaling");
    free(g);
    free(g0);
}

/* Koch's schedule: each view's momentum rises linearly per epoch from
 * momentum_start to its own final value (or the optimizer's), against a
 * double-precision loop of PyTorch's SGD rule with momentum set per epoch. */
static void test_momentum_ramp(void) {
    OptimSpec o;
    optim_spec_default(&o);
    o.momentum = 0.9;
    CHECK(optim_momentum(&o, 0.9, 0) == 0.9 && optim_momentum(&o, 0.3, 7) == 0.3, "no ramp: the final value");
    o.momentum_start = 0.5;
    o.momentum_epochs = 4;
    CHECK_CLOSE(optim_momentum(&o, 0.9, 0), 0.5, 1e-15, "ramp epoch 0: the start");
    CHECK_CLOSE(optim_momentum(&o, 0.9, 2), 0.7, 1e-15, "ramp epoch 2: half way");
    CHECK_CLOSE(optim_momentum(&o, 0.3, 1), 0.45, 1e-15, "ramp down to a lower final value");
    CHECK(optim_momentum(&o, 0.9, 4) == 0.9 && optim_momentum(&o, 0.9, 100) == 0.9, "ramp ends at the final");
    CHECK(optim_state_floats(&o, 10) == 10, "momentum SGD keeps a buffer");
    o.momentum = 0;
    CHECK(optim_state_floats(&o, 10) == 10, "a ramp from 0.5 keeps one even with momentum 0");
    o.momentum = 0.9;
    /* Two views: one with its own final momentum 0.6, one with the optimizer's 0.9. */
    ParamView v[2] = {{.name = "a",
                       .offset = 0,
                       .count = 3,
                       .lr_mult = 1,
                       .decay_mult = 1,
                       .has_momentum = 1,
                       .momentum = 0.6f},
                      {.name = "b", .offset = 3, .count = 3, .lr_mult = 2, .decay_mult = 1}};
    float p[6] = {1, -1, 0.5f, 2, -3, 0.25f}, st[6] = {0};
    double rp[6], rb[6] = {0};
    for (int i = 0; i < 6; i++) rp[i] = p[i];
    const double lr = 0.05;
    double worst = 0;
    for (uint64_t t = 1; t <= 12; t++) {
        uint64_t epoch = (t - 1) / 2; /* two steps an epoch: the ramp ends in epoch 4 */
        float g[6];
        for (int i = 0; i < 6; i++) g[i] = (float)(0.3 * sin(1.7 * (double)t + i) + 0.1 * p[i]);
        optim_step(&o, p, g, st, 6, v, 2, lr, epoch, t);
        for (int i = 0; i < 6; i++) {
            double fin = i < 3 ? 0.6 : 0.9, f = epoch >= 4 ? 1.0 : (double)epoch / 4.0;
            double mom = 0.5 + (fin - 0.5) * f, vlr = lr * (i < 3 ? 1 : 2);
            rb[i] = t == 1 ? g[i] : mom * rb[i] + g[i];
            rp[i] -= vlr * rb[i];
            worst = fmax(worst, fabs(rp[i] - p[i]));
        }
    }
    CHECK(worst < 1e-5, "per-view momentum with a linear ramp equals the reference (worst %.3g)", worst);
}

/* The sharded optimizer: optim_shard cuts [0, n) into contiguous groups of
 * 16 in rank order; optim_step_range over the shards (each with its own
 * state, the shard's layout) and clip_range's scaling of each shard give
 * the bits of one optim_step / optim_clip, for every optimizer, per-view
 * multipliers and momentum, a gap outside every view and a momentum ramp
 * (shard counts differ by one group of 16 and the short last group). */
static void test_shards(void) {
    enum { N = 1000 };
    ParamView v[3] = {{.name = "a", .offset = 0, .count = 333, .lr_mult = 1, .decay_mult = 1},
                      {.name = "b", .offset = 333, .count = 500, .lr_mult = 0.5f, .decay_mult = 0},
                      {.name = "c", .offset = 900, .count = 100, .lr_mult = 2, .decay_mult = 1}};
    v[1].has_momentum = 1, v[1].momentum = 0.7f;
    for (int world = 1; world <= 90; world += world < 8 ? 1 : 41) {
        size_t prev = 0, lo, hi, most = 0, least = N;
        for (int r = 0; r < world; r++) {
            optim_shard(N, world, r, &lo, &hi);
            CHECK(lo == prev && lo <= hi && (lo % 16 == 0 || lo == N), "world %d rank %d: [%zu, %zu)", world,
                  r, lo, hi);
            most = MAX(most, hi - lo), least = MIN(least, hi - lo), prev = hi;
        }
        CHECK(prev == N && most - least < 32, "world %d: covers [0, %d), counts %zu..%zu", world, N, least,
              most);
    }
    for (int type = 0; type < 4; type++) {
        OptimSpec o;
        optim_spec_default(&o);
        o.type = type == 3 ? OPTIM_SGD : (OptimType)type;
        o.momentum = 0.9, o.nesterov = type == 3, o.weight_decay = 0.01, o.momentum_epochs = 3;
        o.momentum_start = 0.5;
        Rng r;
        rng_seed(&r, 5, RNG_TEST, (uint64_t)type);
        float p1[N], g[N], g1[N], p2[N], g2[N], s1[2 * N] = {0}, s2[2 * N] = {0};
        for (int i = 0; i < N; i++) p1[i] = p2[i] = (float)rng_normal(&r);
        size_t parts = optim_state_floats(&o, N) / N;
        int world = 3;
        for (uint64_t t = 1; t <= 4; t++) {
            for (int i = 0; i < N; i++) g[i] = g1[i] = g2[i] = (float)rng_normal(&r);
            double n1 = optim_clip(g1, N, 5.0);
            optim_step(&o, p1, g1, s1, N, v, 3, 0.1, t - 1, t);
            for (int q = 0; q < world; q++) {
                size_t lo, hi;
                optim_shard(N, world, q, &lo, &hi);
                float sq[2 * N];
                for (size_t k = 0; k < parts; k++) /* the shard's state, from the whole one */
                    memcpy(sq + k * (hi - lo), s2 + k * N + lo, (hi - lo) * sizeof(float));
                memcpy(g2, g, sizeof g2);
                double n2 = optim_clip_range(g2, N, 5.0, lo, hi);
                CHECK(n2 == n1, "clip norm of the whole gradient on every shard");
                optim_step_range(&o, p2, g2, sq, N, v, 3, 0.1, t - 1, t, lo, hi);
                for (size_t k = 0; k < parts; k++)
                    memcpy(s2 + k * N + lo, sq + k * (hi - lo), (hi - lo) * sizeof(float));
            }
        }
        CHECK(memcmp(p1, p2, sizeof p1) == 0 && memcmp(s1, s2, sizeof s1) == 0,
              "optimizer %d: 3 shards = one step, bit for bit", type);
        CHECK(parts == (type == 1 || type == 2 ? 2u : 1u) && s1[N - 1] != 0, "optimizer %d: a state", type);
    }
}

int main(void) {
    test_shards();
    test_momentum_ramp();
    test_optimizers();
    test_closed_forms();
    test_schedules();
    test_clip();
    return test_finish();
}
