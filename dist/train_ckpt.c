/* train_ckpt: what a training checkpoint holds and how a run resumes.
 * Sections (io/checkpoint.c is the container): config (canonical text),
 * topology (tensor and buffer names and shapes), graph (the nodes, text),
 * params (f32 arena), buffers (f32 running statistics; only when the model
 * has some: rank 0's, which all ranks share unless batch norm's sync = 0),
 * optim (f32 optimizer state, same layout; absent for plain SGD), state (text: step,
 * epoch, optimizer step count, world size at save, seed, normalisation,
 * the best validation value and its step), metrics (metrics.csv so far),
 * eval (eval.csv so far, with [eval] data). Nothing is per rank: the sampler is a pure
 * function of (seed, epoch, step) and every replica holds the same weights
 * and optimizer state, so any world size can resume any checkpoint. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

/* Floats of optimizer state per arena float: 0 (plain SGD), 1 or 2 (Adam:
 * m then v, each laid out like the arena). */
static size_t optim_parts(const Trainer *t) { return t->model.nparams ? t->nstate / t->model.nparams : 0; }

void trainer_gather_optim(Trainer *t, float *full) {
    size_t n = t->model.nparams, own = t->opt_hi - t->opt_lo;
    for (size_t k = 0; k < optim_parts(t); k++)
        if (t->opt.shard)
            dist_gather_shards(full ? full + k * n : NULL, t->opt_state + k * own, t->shard_lo, t->shard_n);
        else if (t->rank == 0)
            memcpy(full + k * n, t->opt_state + k * n, n * sizeof(float));
}

/* Every rank's part of the whole state in rank 0's full (NULL elsewhere). */
static void scatter_optim(Trainer *t, const float *full) {
    size_t n = t->model.nparams, own = t->opt_hi - t->opt_lo;
    for (size_t k = 0; k < optim_parts(t); k++)
        dist_scatter_shards(t->opt_state + k * own, full ? full + k * n : NULL, t->shard_lo, t->shard_n);
}

int trainer_save(Trainer *t, const char *path, Err *e) {
    int rc = 0;
    float *optim = t->opt_state; /* the whole state, on rank 0 */
    if (t->opt.shard && t->nstate) {
        optim = t->rank == 0 ? xaligned_floats(t->nstate) : NULL;
        trainer_gather_optim(t, optim);
    }
    if (t->rank == 0) {
        char *topo = model_topology(&t->model), *graph = model_graph_text(&t->model);
        char state[2048], mean[32 * NORM_MAX_CHANNELS], std[32 * NORM_MAX_CHANNELS];
        norm_format(mean, sizeof mean, t->norm.mean, t->norm.channels);
        norm_format(std, sizeof std, t->norm.std, t->norm.channels);
        int sl = snprintf(
            state, sizeof state,
            "format=1\nstep=%llu\nepoch=%llu\nstep_in_epoch=%llu\nopt_t=%llu\nworld=%d\nseed=%ld\n"
            "mean=%s\nstd=%s\ntotal_steps=%llu\nsteps_per_epoch=%llu\n"
            "rng=stateless: every draw is seeded from (seed, purpose, step); the sampler position is "
            "the step\n",
            (unsigned long long)t->step, (unsigned long long)(t->step / t->steps_per_epoch),
            (unsigned long long)(t->step % t->steps_per_epoch), (unsigned long long)t->opt_t, t->world,
            t->cfg.seed, mean, std, (unsigned long long)t->total_steps,
            (unsigned long long)t->steps_per_epoch);
        if (!isnan(t->best))
            snprintf(state + sl, sizeof state - (size_t)sl, "best=%.17g\nbest_step=%llu\nbest_metric=%s\n",
                     t->best, (unsigned long long)t->best_step,
                     config_enum_name("eval", "metric", t->cfg.eval_metric));
        CkptWriter *w = ckpt_writer_new();
        ckpt_add(w, "config", t->cfg_text, strlen(t->cfg_text));
        ckpt_add(w, "topology", topo, strlen(topo));
        ckpt_add(w, "graph", graph, strlen(graph));
        ckpt_add_f32(w, "params", t->model.params, t->model.nparams);
        if (t->model.nbuffers) ckpt_add_f32(w, "buffers", t->model.buffers, t->model.nbuffers);
        if (t->nstate) ckpt_add_f32(w, "optim", optim, t->nstate);
        ckpt_add(w, "state", state, strlen(state));
        ckpt_add(w, "metrics", t->metrics.s, t->metrics.len);
        if (t->cfg.eval_data[0]) ckpt_add(w, "eval", t->evalcsv.s, t->evalcsv.len);
        rc = ckpt_write(w, path, e);
        ckpt_writer_free(w);
        free(topo);
        free(graph);
    }
    if (optim != t->opt_state) free(optim);
    return rc;
}

/* Keys whose change on resume keeps the run meaningful; every other key
 * must be equal (the run would otherwise silently become another run). */
static const char *const resume_unsafe[] = {"eval.data", "eval.metric"}; /* the best so far means another thing */
static const char *const resume_safe[] = {"run.dir",     "run.threads",  "run.max_memory", "data.test",
                                          "data.on_bad_record", "optim.lr", "train.epochs",   "train.steps",
                                          "train.log_every",    "train.eval", "train.report", "checkpoint.",
                                          "dist.",              "eval.",       "optim.shard"};

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
            int safe = 0, unsafe = 0;
            for (size_t i = 0; i < sizeof resume_unsafe / sizeof resume_unsafe[0]; i++)
                unsafe |= !strcmp(key, resume_unsafe[i]);
            for (size_t i = 0; i < sizeof resume_safe / sizeof resume_safe[0]; i++) {
                size_t sl = strlen(resume_safe[i]);
                if (resume_safe[i][sl - 1] == '.' ? !strncmp(key, resume_safe[i], sl)
                                                  : !strcmp(key, resume_safe[i]))
                    safe = 1;
            }
            const char *va = strchr(la, '=') ? strchr(la, '=') + 2 : "",
                       *vb = strchr(lb, '=') ? strchr(lb, '=') + 2 : "";
            if (safe && !unsafe)
                cl += snprintf(changed + cl, cl < n ? n - cl : 0, "%s%s: %s -> %s", cl ? ", " : "", key, va,
                               vb);
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
                          "run.dir, run.threads, run.max_memory, data.test, data.on_bad_record, optim.lr, "
                          "optim.shard, train.*, checkpoint.*, dist.*, eval.* but eval.data and eval.metric may); "
                          "start a new run dir or restore them",
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
    TrainState ts;
    memset(&ts, 0, sizeof ts);
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
                        fprintf(lf, "resumed from %s at step %llu on %d rank%s; changed: %s\n", path, step,
                                t->world, t->world > 1 ? "s" : "", changed[0] ? changed : "nothing");
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
    const float *optim = NULL; /* rank 0: the checkpoint's optimizer state, if it has one */
    if (t->rank == 0) {
        size_t n;
        const float *p = ckpt_get(ck, "params", NULL); /* its size and values are checked above */
        memcpy(t->model.params, p, t->model.nparams * sizeof(float));
        if (t->model.nbuffers) { /* the topology check above matched their shapes */
            const float *bu = ckpt_require(ck, "buffers", t->model.nbuffers * sizeof(float), e);
            if (!bu) FATAL("%s", e->msg);
            memcpy(t->model.buffers, bu, t->model.nbuffers * sizeof(float));
        }
        if (t->nstate) {
            const float *o = ckpt_get(ck, "optim", &n);
            if (o && n == t->nstate * sizeof(float))
                optim = o;
            else
                util_warn("%s: no optimizer state for this optimizer: it starts from zero", path);
        }
        /* The metrics and validation rows so far replace the headers
         * trainer_setup wrote; the best value continues if it measured the
         * same metric. */
        const char *mt = ckpt_get(ck, "metrics", &n);
        t->metrics.len = 0;
        if (mt) textbuf_append(&t->metrics, mt, n);
        const char *ev = ckpt_get(ck, "eval", &n);
        if (ev && t->cfg.eval_data[0]) {
            t->evalcsv.len = 0;
            textbuf_append(&t->evalcsv, ev, n);
        }
        if (ts.has_best && !strcmp(ts.best_metric, config_enum_name("eval", "metric", t->cfg.eval_metric)))
            t->best = ts.best, t->best_step = ts.best_step;
        printf("resume: %s at step %llu\n", path, step);
    }
    unsigned long long v[2] = {step, opt_t};
    dist_bcast_bytes(v, sizeof v);
    t->step = v[0];
    t->opt_t = v[1];
    dist_bcast_floats(t->model.params, t->model.nparams);
    dist_bcast_floats(t->model.buffers, t->model.nbuffers);
    if (t->nstate && t->opt.shard) {
        float *zero = t->rank == 0 && !optim ? xaligned_floats(t->nstate) : NULL;
        scatter_optim(t, optim ? optim : zero);
        free(zero);
    } else if (t->nstate) {
        if (t->rank == 0 && optim) memcpy(t->opt_state, optim, t->nstate * sizeof(float));
        dist_bcast_floats(t->opt_state, t->nstate);
    }
    ckpt_free(ck);
    return 0;
}
