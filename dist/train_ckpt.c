/* train_ckpt: what a training checkpoint holds and how a run resumes.
 * Sections (io/checkpoint.c is the container): config (canonical text),
 * topology (tensor names and shapes), params (f32 arena), optim (f32
 * optimizer state, same layout; absent for plain SGD), state (text: step,
 * epoch, optimizer step count, world size at save, seed, normalisation),
 * metrics (metrics.csv so far). Nothing is per rank: the sampler is a pure
 * function of (seed, epoch, step) and every replica holds the same weights
 * and optimizer state, so any world size can resume any checkpoint. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

int trainer_save(Trainer *t, const char *path, Err *e) {
    int rc = 0;
    if (t->rank == 0) {
        char *topo = model_topology(&t->model);
        char state[1024];
        snprintf(state, sizeof state,
                 "format=1\nstep=%llu\nepoch=%llu\nstep_in_epoch=%llu\nopt_t=%llu\nworld=%d\nseed=%ld\n"
                 "mean=%.9g\nstd=%.9g\ntotal_steps=%llu\nsteps_per_epoch=%llu\n"
                 "rng=stateless: every draw is seeded from (seed, purpose, step); the sampler position is the step\n",
                 (unsigned long long)t->step, (unsigned long long)(t->step / t->steps_per_epoch),
                 (unsigned long long)(t->step % t->steps_per_epoch),
                 (unsigned long long)t->opt_t, t->world, t->cfg.seed, t->mean, t->std,
                 (unsigned long long)t->total_steps, (unsigned long long)t->steps_per_epoch);
        CkptWriter *w = ckpt_writer_new();
        ckpt_add(w, "config", t->cfg_text, strlen(t->cfg_text));
        ckpt_add(w, "topology", topo, strlen(topo));
        ckpt_add_f32(w, "params", t->model.params, t->model.nparams);
        if (t->nstate) ckpt_add_f32(w, "optim", t->opt_state, t->nstate);
        ckpt_add(w, "state", state, strlen(state));
        ckpt_add(w, "metrics", t->metrics, t->metrics_len);
        rc = ckpt_write(w, path, e);
        ckpt_writer_free(w);
        free(topo);
    }
    return rc;
}

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
    /* The normalisation: a mean of pixel/255 and a std within [data] std's range. */
    const char *fkey[2] = {"mean", "std"};
    double f[2];
    for (int i = 0; i < 2; i++) {
        if (state_text(text, n, fkey[i], buf, sizeof buf))
            return err_set(e, "its state section has no %s= line", fkey[i]);
        if (parse_double(buf, i ? 1e-6 : 0, i ? 10 : 1, &f[i]))
            return err_set(e, "state %s=%s is outside %s", fkey[i], buf, i ? "1e-06..10" : "0..1");
    }
    s->mean = (float)f[0];
    s->std = (float)f[1];
    if (s->step > s->total_steps || s->opt_t > s->step || s->epoch != s->step / s->steps_per_epoch ||
        s->step_in_epoch != s->step % s->steps_per_epoch)
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

static uint64_t train_max_raw(const Ckpt *c, int i, char *what, size_t n, void *ctx) {
    (void)ctx;
    const char *name = ckpt_name(c, i);
    size_t len;
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
    if (!strcmp(name, "metrics")) {
        const char *st = ckpt_get(c, "state", &len);
        TrainState ts;
        Err e;
        if (st && !train_state_parse(st, len, &ts, &e)) {
            snprintf(what, n, "the metrics of %llu steps take at most", (unsigned long long)ts.step);
            return METRICS_HEADER_MAX + (ts.step + 1) * METRICS_ROW_MAX;
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

/* Keys whose change on resume keeps the run meaningful; every other key
 * must be equal (the run would otherwise silently become another run). */
static const char *const resume_safe[] = {"run.dir", "data.test", "optim.lr", "train.epochs", "train.steps",
                                          "train.log_every", "train.eval", "checkpoint.", "dist.", "eval."};

int train_resume_compatible(const Config *saved, const Config *now, char *changed, size_t n, Err *e) {
    if (config_same_topology(saved, now, e)) {
        char msg[sizeof e->msg];
        snprintf(msg, sizeof msg, "%s", e->msg);
        return err_set(e, "the checkpoint's model differs from the config's: %s", msg);
    }
    char *a = config_to_text(saved), *b = config_to_text(now);
    char refused[800] = "";
    size_t rl = 0, cl = 0;
    changed[0] = 0;
    /* Walk both canonical texts line by line (same schema: same lines). */
    char section[64] = "";
    char *sa = NULL, *sb = NULL;
    char *la = strtok_r(a, "\n", &sa), *lb = strtok_r(b, "\n", &sb);
    int layer = 0;
    while (la && lb) {
        if (la[0] == '[') {
            snprintf(section, sizeof section, "%.*s", (int)(strcspn(la + 1, "]")), la + 1);
            if (config_is_layer_section(section)) layer++;
        } else if (strcmp(la, lb)) {
            char key[160];
            size_t kl = strcspn(la, " =");
            if (config_is_layer_section(section))
                snprintf(key, sizeof key, "%s.%.*s", now->model.layers[layer - 1].name, (int)kl, la);
            else
                snprintf(key, sizeof key, "%s.%.*s", section, (int)kl, la);
            int safe = 0;
            for (size_t i = 0; i < sizeof resume_safe / sizeof resume_safe[0]; i++) {
                size_t sl = strlen(resume_safe[i]);
                if (resume_safe[i][sl - 1] == '.' ? !strncmp(key, resume_safe[i], sl) : !strcmp(key, resume_safe[i]))
                    safe = 1;
            }
            const char *va = strchr(la, '=') ? strchr(la, '=') + 2 : "", *vb = strchr(lb, '=') ? strchr(lb, '=') + 2 : "";
            if (safe)
                cl += snprintf(changed + cl, cl < n ? n - cl : 0, "%s%s: %s -> %s", cl ? ", " : "", key, va, vb);
            else
                rl += snprintf(refused + rl, rl < sizeof refused ? sizeof refused - rl : 0, "%s%s: %s -> %s",
                               rl ? ", " : "", key, va, vb);
        }
        la = strtok_r(NULL, "\n", &sa);
        lb = strtok_r(NULL, "\n", &sb);
    }
    free(a);
    free(b);
    if (rl)
        return err_set(e, "the config differs from the checkpoint's in keys that cannot change on resume: %s (only "
                          "run.dir, data.test, optim.lr, train.*, checkpoint.*, dist.*, eval.* may); start a new run "
                          "dir or restore them",
                       refused);
    return 0;
}

int trainer_resume(Trainer *t, const char *what, Err *e) {
    /* Rank 0 reads and checks; the verdict and the state are broadcast. */
    char path[CFG_PATH + 64] = "";
    int status = 0; /* 0 resumed, 1 nothing to resume, -1 error */
    Ckpt *ck = NULL;
    char msg[sizeof e->msg] = "";
    unsigned long long step = 0, opt_t = 0;
    if (t->rank == 0) {
        Err le = {{0}};
        if (!strcmp(what, "auto")) {
            int rc = ckpt_read_latest(&ck, path, sizeof path, t->cfg.run_dir, &train_ckpt_bounds, &le);
            status = rc == 1 ? 1 : rc;
        } else {
            snprintf(path, sizeof path, "%s", what);
            status = ckpt_read(&ck, path, &train_ckpt_bounds, &le);
        }
        if (status == 0) {
            size_t n;
            const char *text = ckpt_get(ck, "config", &n);
            Config saved;
            char *ctext = text ? strndup(text, n) : NULL;
            char changed[800];
            if (!ctext || config_parse_text(&saved, ctext, path, &le) ||
                train_resume_compatible(&saved, &t->cfg, changed, sizeof changed, &le)) {
                status = -1;
            } else {
                char *topo = model_topology(&t->model);
                const char *st = ckpt_get(ck, "topology", &n);
                if (!st || n != strlen(topo) || memcmp(st, topo, n)) {
                    err_set(&le, "tensor shapes differ from the model the config builds");
                    status = -1;
                }
                free(topo);
                const char *state = ckpt_get(ck, "state", &n);
                TrainState ts;
                if (status == 0 && !state) {
                    err_set(&le, "no 'state' section: not a training checkpoint");
                    status = -1;
                } else if (status == 0 && train_state_parse(state, n, &ts, &le)) {
                    status = -1;
                } else if (status == 0) {
                    step = ts.step;
                    opt_t = ts.opt_t;
                }
                const float *p =
                    status == 0 ? ckpt_require(ck, "params", t->model.nparams * sizeof(float), &le) : NULL;
                if (status == 0 && (!p || train_check_params(p, &t->model, &le))) status = -1;
                if (status == 0 && changed[0]) printf("resume: changed on resume (recorded): %s\n", changed);
                if (status == 0) {
                    /* The record of every resume of this run directory. */
                    char lp[CFG_PATH + 32];
                    snprintf(lp, sizeof lp, "%s/resume.log", t->cfg.run_dir);
                    FILE *lf = fopen(lp, "a");
                    if (lf) {
                        fprintf(lf, "resumed from %s at step %llu on %d rank%s; changed: %s\n", path, step, t->world,
                                t->world > 1 ? "s" : "", changed[0] ? changed : "nothing");
                        fclose(lf);
                    } else {
                        util_warn("%s: cannot append: %s", lp, strerror(errno));
                    }
                }
            }
            free(ctext);
        }
        if (status == -1) {
            /* Name the file unless the message already does. */
            int named = !path[0] || strstr(le.msg, path);
            size_t pl = named ? 0 : (size_t)snprintf(msg, sizeof msg, "%.600s: ", path);
            snprintf(msg + pl, sizeof msg - pl, "%.*s", (int)(sizeof msg - pl - 1), le.msg);
        }
    }
    int st32 = status;
    dist_bcast_bytes(&st32, sizeof st32);
    if (st32 == -1) {
        dist_bcast_bytes(msg, sizeof msg);
        ckpt_free(ck);
        return err_set(e, "cannot resume: %s", msg);
    }
    if (st32 == 1) {
        if (t->rank == 0) printf("resume: no checkpoint in %s, starting from step 0\n", t->cfg.run_dir);
        return 0;
    }
    if (t->rank == 0) {
        size_t n;
        const float *p = ckpt_get(ck, "params", NULL); /* its size and values are checked above */
        memcpy(t->model.params, p, t->model.nparams * sizeof(float));
        if (t->nstate) {
            const float *o = ckpt_get(ck, "optim", &n);
            if (o && n == t->nstate * sizeof(float)) memcpy(t->opt_state, o, n);
            else util_warn("%s: no optimizer state for this optimizer: it starts from zero", path);
        }
        const char *mt = ckpt_get(ck, "metrics", &n);
        /* The metrics so far replace the header trainer_setup wrote. */
        t->metrics_cap = MAX(t->metrics_cap, n + 4096);
        t->metrics = xrealloc(t->metrics, t->metrics_cap);
        t->metrics_len = mt ? n : 0;
        if (mt) memcpy(t->metrics, mt, n);
        t->metrics[t->metrics_len] = 0;
        printf("resume: %s at step %llu\n", path, step);
    }
    unsigned long long v[2] = {step, opt_t};
    dist_bcast_bytes(v, sizeof v);
    t->step = v[0];
    t->opt_t = v[1];
    dist_bcast_floats(t->model.params, t->model.nparams);
    if (t->nstate) dist_bcast_floats(t->opt_state, t->nstate);
    ckpt_free(ck);
    return 0;
}
