/* ckpt_check: what a training checkpoint must hold to be read (see
 * ckpt_check.h). Pure functions over a Ckpt already in memory: no MPI, so
 * the fuzz harness fuzz_ckpt runs them as eval and resume do. */
#include "ckpt_check.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The value of "key=value" in the state section's lines, as a C string in
 * buf; -1 if the key is absent or its value does not fit. */
static int state_text(const char *state, size_t n, const char *key, char *buf, size_t cap) {
    size_t kl = strlen(key);
    const char *p = state, *end = state + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (len > kl && !strncmp(p, key, kl) && p[kl] == '=') {
            if (len - kl - 1 >= cap || memchr(p, 0, len)) return -1;
            memcpy(buf, p + kl + 1, len - kl - 1);
            buf[len - kl - 1] = 0;
            return 0;
        }
        p += len + 1;
    }
    return -1;
}

/* Range of each integer of the state: what a run of this program can reach
 * ([train] steps and [run] seed stop at 9e15; a rank count of 2^20 and an
 * epoch of 2^32 steps are beyond any machine). */
#define STATE_BIG 9000000000000000ull

int train_state_parse(const char *text, size_t n, TrainState *s, Err *e) {
    static const struct {
        const char *key;
        unsigned long long min, max;
        size_t off;
    } ints[] = {{"format", 1, 1, (size_t)-1},
                {"step", 0, STATE_BIG, offsetof(TrainState, step)},
                {"epoch", 0, STATE_BIG, offsetof(TrainState, epoch)},
                {"step_in_epoch", 0, STATE_BIG, offsetof(TrainState, step_in_epoch)},
                {"opt_t", 0, STATE_BIG, offsetof(TrainState, opt_t)},
                {"world", 1, 1u << 20, offsetof(TrainState, world)},
                {"seed", 0, STATE_BIG, offsetof(TrainState, seed)},
                /* 0: a run of train.epochs = 0 saves its initial weights */
                {"total_steps", 0, STATE_BIG, offsetof(TrainState, total_steps)},
                {"steps_per_epoch", 1, 1ull << 32, offsetof(TrainState, steps_per_epoch)}};
    memset(s, 0, sizeof *s);
    char buf[64];
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        uint64_t v;
        if (state_text(text, n, ints[i].key, buf, sizeof buf))
            return err_set(e, "its state section has no %s= line", ints[i].key);
        if (parse_u64(buf, &v) || v < ints[i].min || v > ints[i].max)
            return err_set(e, "state %s=%s is not an integer in %llu..%llu", ints[i].key, buf, ints[i].min,
                           ints[i].max);
        if (ints[i].off != (size_t)-1) memcpy((char *)s + ints[i].off, &v, sizeof v);
    }
    /* The normalisation: means of pixel/255 and stds within [data] std's
     * range, one number or one per channel. */
    const char *fkey[2] = {"mean", "std"};
    float *dst[2] = {s->norm.mean, s->norm.std};
    int cnt[2];
    char list[32 * NORM_MAX_CHANNELS];
    for (int i = 0; i < 2; i++) {
        if (state_text(text, n, fkey[i], list, sizeof list))
            return err_set(e, "its state section has no %s= line", fkey[i]);
        if ((cnt[i] = norm_parse_list(list, i ? 1e-6 : 0, i ? 10 : 1, dst[i])) < 0)
            return err_set(e, "state %s=%s is outside %s (one number per channel, comma-separated)", fkey[i],
                           list, i ? "1e-06..10" : "0..1");
    }
    if (cnt[0] != cnt[1])
        return err_set(e, "state mean= and std= hold %d and %d numbers: one per channel each", cnt[0],
                       cnt[1]);
    s->norm.channels = cnt[0];
    char bs[64];
    int nb = !state_text(text, n, "best", buf, sizeof buf) +
             !state_text(text, n, "best_step", bs, sizeof bs) +
             !state_text(text, n, "best_metric", s->best_metric, sizeof s->best_metric);
    if (nb == 3) {
        if (parse_double(buf, -1e300, 1e300, &s->best) || parse_u64(bs, &s->best_step))
            return err_set(e, "state best=%s best_step=%s: expected a finite number and a step", buf, bs);
        s->has_best = 1;
    } else if (nb) {
        return err_set(e, "its state section has only some of best=, best_step=, best_metric=");
    }
    if (s->step > s->total_steps || s->opt_t > s->step || s->best_step > s->step ||
        s->epoch != s->step / s->steps_per_epoch || s->step_in_epoch != s->step % s->steps_per_epoch)
        return err_set(e,
                       "state step=%llu epoch=%llu step_in_epoch=%llu opt_t=%llu total_steps=%llu "
                       "steps_per_epoch=%llu do not agree",
                       (unsigned long long)s->step, (unsigned long long)s->epoch,
                       (unsigned long long)s->step_in_epoch, (unsigned long long)s->opt_t,
                       (unsigned long long)s->total_steps, (unsigned long long)s->steps_per_epoch);
    return 0;
}

int train_check_params(const float *p, const Model *m, Err *e) {
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < m->nparams; i++)
        if (!isfinite(p[i]) && !bad++) first = i;
    if (!bad) return 0;
    const char *where = "?";
    for (int v = 0; v < m->nviews; v++)
        if (first >= m->views[v].offset && first - m->views[v].offset < m->views[v].count)
            where = m->views[v].name;
    return err_set(
        e,
        "%zu of its %zu parameters are not finite (NaN or inf; the first in %s): the run had diverged "
        "when it was saved; use an earlier checkpoint",
        bad, m->nparams, where);
}

/* ---- what a reader accepts (io/checkpoint.h, CkptBounds) ----------------- */

#define CKPT_TEXT_MAX ((uint64_t)1 << 20) /* config, topology, any other text section */
#define CKPT_STATE_MAX 4096
#define METRICS_HEADER_MAX 4096
#define METRICS_ROW_MAX 256 /* one metrics.csv row: 2 integers and 6 %.9g numbers */
#define EVAL_ROW_MAX 256    /* one eval.csv row: a step and at most VAL_NMETRICS %.6f numbers */

static uint64_t train_max_raw(const Ckpt *c, int i, char *what, size_t n, void *ctx) {
    (void)ctx;
    const char *name = ckpt_name(c, i);
    size_t len;
    if (!strcmp(name, "buffers")) {
        const char *t = ckpt_get(c, "topology", &len);
        ModelTopology mt;
        Err e;
        if (!t || model_topology_parse(t, len, &mt, &e)) {
            snprintf(what, n, "no valid topology section comes before it to say its size, so it may hold");
            return 0;
        }
        snprintf(what, n, "the %llu buffer floats of the topology section take",
                 (unsigned long long)mt.buffer_floats);
        return sizeof(float) * mt.buffer_floats;
    }
    if (!strcmp(name, "params") || !strcmp(name, "optim")) {
        const char *t = ckpt_get(c, "topology", &len);
        ModelTopology mt;
        Err e;
        if (!t || model_topology_parse(t, len, &mt, &e)) {
            snprintf(what, n, "no valid topology section comes before it to say its size, so it may hold");
            return 0;
        }
        int optim = name[0] == 'o'; /* Adam: two floats per parameter */
        snprintf(what, n, "%sthe %llu parameters of the topology section take",
                 optim ? "the optimizer state of " : "", (unsigned long long)mt.floats);
        return (optim ? 2 : 1) * sizeof(float) * mt.floats;
    }
    if (!strcmp(name, "metrics") || !strcmp(name, "eval")) { /* at most a row per step, and one at the end */
        const char *st = ckpt_get(c, "state", &len);
        TrainState ts;
        Err e;
        if (st && !train_state_parse(st, len, &ts, &e)) {
            snprintf(what, n, "the %s of %llu steps take at most",
                     name[0] == 'm' ? "metrics" : "validation rows", (unsigned long long)ts.step);
            return METRICS_HEADER_MAX + (ts.step + 1) * (name[0] == 'm' ? METRICS_ROW_MAX : EVAL_ROW_MAX);
        }
    }
    if (!strcmp(name, "state")) {
        snprintf(what, n, "a state section holds at most");
        return CKPT_STATE_MAX;
    }
    snprintf(what, n, "a %s section holds at most", name);
    return CKPT_TEXT_MAX;
}

const CkptBounds train_ckpt_bounds = {train_max_raw, NULL};

/* The first line where a and b differ, for messages. */
static int first_diff_line(const char *a, const char *b, size_t bn) {
    int line = 1;
    for (size_t i = 0; i < bn && a[i] == b[i]; i++) line += a[i] == '\n';
    return line;
}

int train_ckpt_check(const Ckpt *ck, const char *path, TrainCkpt *t, Err *e) {
    memset(t, 0, sizeof *t);
    size_t n, tn, sn;
    const char *text = ckpt_get(ck, "config", &n), *tp = ckpt_get(ck, "topology", &tn),
               *st = ckpt_get(ck, "state", &sn);
    if (!text || !tp || !st)
        return err_set(e, "%s: no config, topology or state section: not a training checkpoint", path);
    int rc = -1;
    Model plan = {0};
    char *topo = NULL, *ctext = strndup(text, n); /* sections are bytes: copy with a NUL */
    Err why;
    if (strlen(ctext) != n) {
        err_set(e, "%s: its config section holds a NUL byte", path);
        goto out;
    }
    if (config_parse_text(&t->cfg, ctext, path, e)) goto out;
    if (model_topology_parse(tp, tn, &t->topo, &why) || train_state_parse(st, sn, &t->state, &why)) {
        err_set(e, "%s: %s", path, why.msg);
        goto out;
    }
    /* What the config builds, against what the checkpoint says it holds,
     * before anything of that size is allocated. */
    const Config *cf = &t->cfg;
    if (model_plan(&plan, &cf->model, path, t->topo.in_c, t->topo.in_h, t->topo.in_w, 1, e)) goto out;
    topo = model_topology(&plan);
    if (strlen(topo) != tn || memcmp(topo, tp, tn)) {
        err_set(
            e,
            "%s: its config section builds another model than its topology section describes (they differ "
            "at topology line %d) - the file is damaged or was not written by siamese train",
            path, first_diff_line(topo, tp, tn));
        goto out;
    }
    t->params = ckpt_require(ck, "params", plan.nparams * sizeof(float), e);
    if (!t->params) goto out;
    if (train_check_params(t->params, &plan, &why)) {
        err_set(e, "%s: %s", path, why.msg);
        goto out;
    }
    t->nparams = plan.nparams;
    if (plan.nbuffers) { /* running statistics: the topology lists them */
        t->buffers = ckpt_require(ck, "buffers", plan.nbuffers * sizeof(float), e);
        if (!t->buffers) goto out;
        t->nbuffers = plan.nbuffers;
    }
    rc = 0;
out:
    model_free(&plan);
    free(topo);
    free(ctext);
    if (rc) t->params = NULL, t->buffers = NULL;
    return rc;
}
