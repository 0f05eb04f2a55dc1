/* train_run: the run around the step: config broadcast, run directory,
 * resume, the loop with progress, metrics, checkpoints, replica checksums
 * and the signal stop protocol, then the final save and evaluation. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../io/atomic_file.h"
#include "../nn/parallel.h"
#include "eval_coseg.h"
#include "evaluate.h"
#include "report.h"
#include "train.h"
#include "watchdog.h"

static int mkdir_p(const char *path, Err *e) {
    char buf[CFG_PATH];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0777) && errno != EEXIST) return err_set(e, "%s: cannot create: %s", buf, strerror(errno));
            *p = '/';
        }
    if (mkdir(buf, 0777) && errno != EEXIST) return err_set(e, "%s: cannot create run directory: %s", buf, strerror(errno));
    return 0;
}

/* Writes text to dir/name atomically (tmp, fsync, rename, fsync dir). */
static int write_text(const char *dir, const char *name, const char *text, size_t n, Err *e) {
    char path[CFG_PATH + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return atomic_file_write_all(path, text, n, e);
}

static void fmt_duration(char *out, size_t n, double s) {
    if (!(s >= 0) || s > 1e8) snprintf(out, n, "?");
    else if (s < 60) snprintf(out, n, "%.0fs", s);
    else if (s < 3600) snprintf(out, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(out, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

/* The per-layer part of the summary: ms per step, forward + backward, and
 * with threads the share of the threads' time spent working. */
static void print_layers(const Trainer *t, double steps) {
    const Model *m = &t->model;
    int nl = m->nlayers;
    printf("per layer (rank 0, ms per step, forward + backward%s):",
           t->threads > 1 ? ", share of the threads' time spent working" : "");
    const char *sep = " ";
    for (int i = 0; i < nl; i++) {
        double f = t->prof[2 * i], b = t->prof[2 * i + 1];
        if (m->layers[i].fuse < 0 || f + b <= 0) continue;
        printf("%s%s %.2f+%.2f", sep, m->layers[i].name, 1e3 * f / steps, 1e3 * b / steps);
        if (t->threads > 1)
            printf(" (%.0f%%)",
                   100 * (t->prof[2 * nl + 2 * i] + t->prof[2 * nl + 2 * i + 1]) / (t->threads * (f + b)));
        sep = ", ";
    }
    printf("\n");
}

/* Rank 0 reads the config and the overrides; everyone gets the canonical
 * text, or an empty one meaning "rank 0 reported an error, exit 2". */
static char *load_config_text(const TrainOptions *o) {
    char *text = NULL;
    if (dist_rank() == 0) {
        Config c;
        Err e = {{0}};
        int ok = config_parse_file(&c, o->config_path, &e) == 0;
        for (int i = 0; ok && i < o->nsets; i++) ok = config_set(&c, o->sets[i], &e) == 0;
        if (ok) ok = config_validate(&c, &e) == 0;
        if (ok) {
            text = config_to_text(&c);
        } else {
            fprintf(stderr, "siamese train: %s\n", e.msg);
            text = xstrdup("");
        }
    }
    dist_bcast_text(&text);
    if (!text[0]) {
        free(text);
        return NULL;
    }
    return text;
}

/* command.log: one line per start of the run (fresh or resumed): when, the
 * software version, the rank count, the step it starts from, the command. */
static void log_command(const char *dir, const char *command, int world, uint64_t step) {
    char path[CFG_PATH + 32], when[64] = "?";
    snprintf(path, sizeof path, "%s/command.log", dir);
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    FILE *f = fopen(path, "a");
    if (!f) {
        util_warn("%s: cannot append: %s", path, strerror(errno));
        return;
    }
    fprintf(f, "%s\t%s\t%d rank%s\tstep %llu\t%s\n", when, SIAMESE_VERSION, world, world > 1 ? "s" : "",
            (unsigned long long)step, command ? command : "siamese train");
    if (fclose(f)) util_warn("%s: %s", path, strerror(errno));
}

#define RANKS_HEADER                                                                                         \
    "first_step,last_step,ranks,rank,timed_steps,data_s,forward_s,imbalance_s,exchange_mining_s,backward_s," \
    "allreduce_wait_s,optimizer_s,step_s\n"

/* ranks.csv: every rank's time totals over this start's timed steps, one
 * row per rank, appended at the end of each start (finished or stopped by a
 * signal): how long each rank waited for the data, for the others and for
 * the allreduce. Collective. */
static void log_ranks(Trainer *t, uint64_t first) {
    const StepTimes *s = &t->sum;
    double mine[9] = {(double)t->timed_steps, s->data,      s->forward, s->imbalance, s->mining, s->backward,
                      s->allreduce,           s->optimizer, s->total};
    double *all = t->rank == 0 ? xmalloc((size_t)t->world * 9 * sizeof *all) : NULL;
    dist_gather_doubles(all, mine, 9);
    if (t->rank != 0) return;
    char path[CFG_PATH + 32];
    snprintf(path, sizeof path, "%s/ranks.csv", t->cfg.run_dir);
    int fresh = access(path, F_OK) != 0;
    FILE *f = fopen(path, "a");
    if (!f) {
        util_warn("%s: cannot append: %s", path, strerror(errno));
        free(all);
        return;
    }
    if (fresh) fputs(RANKS_HEADER, f);
    for (int r = 0; r < t->world; r++) {
        const double *v = all + (size_t)r * 9;
        fprintf(f, "%llu,%llu,%d,%d,%.0f", (unsigned long long)first, (unsigned long long)t->step, t->world,
                r, v[0]);
        for (int k = 1; k < 9; k++) fprintf(f, ",%.6f", v[k]);
        fputc('\n', f);
    }
    if (fclose(f)) util_warn("%s: %s", path, strerror(errno));
    free(all);
}

/* --debug: central differences of the global loss for a few parameters of
 * each tensor against the analytic gradient of the first batch. */
static void gradient_check(Trainer *t, const Batch *b) {
    Model *m = &t->model;
    StepTimes st;
    double base = trainer_grads(t, b, &st);
    if (t->opt.shard) dist_allgather_shards(m->grads, t->shard_lo, t->shard_n); /* reduce-scattered */
    float *g = xmalloc(m->nparams * sizeof(float));
    memcpy(g, m->grads, m->nparams * sizeof(float));
    double worst = 0, l0 = trainer_loss_only(t, b, t->last_count);
    int checked = 0, bad = 0, kinks = 0;
    for (int v = 0; v < m->nviews; v++) {
        Rng r;
        rng_seed(&r, 99, RNG_TEST, (uint64_t)v);
        for (int k = 0; k < 4; k++) {
            size_t i = m->views[v].offset + rng_below(&r, m->views[v].count);
            float keep = m->params[i];
            double h = 1e-3 * fmax(1.0, fabs(keep));
            m->params[i] = keep + (float)h;
            double lp = trainer_loss_only(t, b, t->last_count);
            m->params[i] = keep - (float)h;
            double lm = trainer_loss_only(t, b, t->last_count);
            m->params[i] = keep;
            /* ReLU, max-pooling and the miners make the loss piecewise
             * smooth. A kink within +-h shows as one-sided slopes that
             * disagree; there the difference quotient means nothing. */
            double fwd = (lp - l0) / h, bwd = (l0 - lm) / h;
            double fd[2] = {fwd, (lp - lm) / (2 * h)};
            if (fabs(fwd - bwd) > 0.05 * (fabs(fwd) + fabs(bwd)) + 1e-6) {
                kinks++;
                continue;
            }
            /* trainer_loss_only leaves out the L2 term: so does fd. */
            double an = g[i] - 2.0 * m->views[v].l2 * keep;
            double err = fabs(fd[1] - an) / fmax(1e-4, fabs(fd[1]) + fabs(an));
            checked++;
            if (err > 5e-2) bad++;
            worst = fmax(worst, err);
            if (t->rank == 0 && err > 5e-2)
                printf("  grad check %-16s [%zu]: finite difference %.6g, backward %.6g\n", m->views[v].name,
                       i - m->views[v].offset, fd[1], an);
        }
    }
    if (t->rank == 0)
        printf("debug: gradient check of the real model at step %llu: %d parameters, %d disagree, worst relative "
               "error %.2g, %d skipped at kinks (relu, pooling, mining) (loss %.6g)%s\n",
               (unsigned long long)t->step, checked, bad, worst, kinks, base,
               bad > checked / 10 ? " -- SUSPICIOUS: backward does not match the loss" : "");
    free(g);
}

void (*train_step_hook)(int rank, uint64_t step, int after) = NULL;

/* The end of train_main on every path after the watchdog started. */
static int train_end(Trainer *t, int status) {
    watchdog_stop();
    trainer_free(t);
    free(t);
    return status;
}

int train_main(const TrainOptions *o) {
    int rank = dist_rank();
    char *text = load_config_text(o);
    if (!text) return 2;
    Err e = {{0}};
    /* The watchdog first, so that it covers the start-up: the canonical
     * text parses (else trainer_setup reports why, with the default). */
    Config *pre = xmalloc(sizeof *pre);
    double timeout = config_parse_text(pre, text, "effective config", &e) ? 300 : pre->dist_timeout;
    free(pre);
    if (watchdog_start(timeout, &e)) {
        if (rank == 0) fprintf(stderr, "siamese train: %s\n", e.msg);
        free(text);
        return 2;
    }
    Trainer *t = xcalloc(1, sizeof *t);
    /* Set-up errors are reported by every rank that has them (they read
     * the same files); agree on the outcome so nobody waits forever. */
    int failed = trainer_setup(t, text, o->debug, &e) != 0;
    free(text);
    if (dist_any(failed)) {
        if (failed && rank == 0) fprintf(stderr, "siamese train: %s\n", e.msg);
        return train_end(t, 2);
    }
    Config *c = &t->cfg;
    if (rank == 0) {
        if (mkdir_p(c->run_dir, &e)) FATAL("%s", e.msg);
        printf("siamese train: %s, %d rank%s x %d thread%s (%s), run dir %s\n", o->config_path, t->world,
               t->world > 1 ? "s" : "", t->threads, t->threads > 1 ? "s" : "", t->threads_why, c->run_dir);
        model_describe(&t->model, stdout);
        char mean[32 * NORM_MAX_CHANNELS], std[32 * NORM_MAX_CHANNELS];
        norm_format(mean, sizeof mean, t->norm.mean, t->norm.channels);
        norm_format(std, sizeof std, t->norm.std, t->norm.channels);
        printf("  data %s: %llu samples, %u classes, normalisation mean %s std %s\n", c->data_train,
               (unsigned long long)ds_meta(t->ds)->count, ds_meta(t->ds)->classes, mean, std);
        printf("  global batch: %d %s (%d images), %llu steps per epoch, %llu steps\n", t->global_items,
               c->sampler.mode == SAMPLER_PK         ? "images"
               : c->sampler.mode == SAMPLER_TRIPLETS ? "triplets"
                                                     : "pairs",
               t->global_items * t->per_item, (unsigned long long)t->steps_per_epoch,
               (unsigned long long)t->total_steps);
        if (c->loss.type == LOSS_MASK)
            printf("  loss mask (%s per pixel), optim %s lr %g\n",
                   config_enum_name("loss", "mask", c->loss.mask),
                   config_enum_name("optim", "type", c->optim.type), c->optim.lr);
        else
            printf("  loss %s, mining %s (%s), optim %s lr %g\n",
                   config_enum_name("loss", "type", c->loss.type),
                   config_enum_name("mining", "strategy", c->mining.strategy),
                   config_enum_name("mining", "scope", c->mining.scope),
                   config_enum_name("optim", "type", c->optim.type), c->optim.lr);
        if (c->loss.type == LOSS_TRIPLET && c->mining.strategy == MINE_BATCH_HARD && !c->loss.soft &&
            c->optim.type == OPTIM_SGD && c->optim.warmup_steps == 0)
            util_warn("batch_hard triplet mining with SGD from a random start often collapses (every embedding "
                      "the same point, loss stuck at the margin); consider strategy = batch_all, a warm-up "
                      "([optim] warmup_steps), or Adam");
        printf("effective config:\n%s", t->cfg_text);
        fflush(stdout);
    }
    if (o->resume) {
        if (trainer_resume(t, o->resume, &e)) {
            if (rank == 0) fprintf(stderr, "siamese train: %s\n", e.msg);
            return train_end(t, 2);
        }
    }
    if (rank == 0) {
        if (write_text(c->run_dir, "config.ini", t->cfg_text, strlen(t->cfg_text), &e)) FATAL("%s", e.msg);
        log_command(c->run_dir, o->command, t->world, t->step);
        /* metrics.csv restarts from what the checkpoint holds (a resumed
         * run's file equals the uninterrupted one's), then grows a row a step. */
        if (write_text(c->run_dir, "metrics.csv", t->metrics.s, t->metrics.len, &e)) FATAL("%s", e.msg);
        char mp[CFG_PATH + 32];
        snprintf(mp, sizeof mp, "%s/metrics.csv", c->run_dir);
        t->metrics_file = fopen(mp, "a");
        if (!t->metrics_file) FATAL("%s: cannot append: %s", mp, strerror(errno));
        if (c->eval_data[0]) { /* eval.csv likewise, a row per validation */
            if (write_text(c->run_dir, "eval.csv", t->evalcsv.s, t->evalcsv.len, &e)) FATAL("%s", e.msg);
            snprintf(mp, sizeof mp, "%s/eval.csv", c->run_dir);
            t->eval_file = fopen(mp, "a");
            if (!t->eval_file) FATAL("%s: cannot append: %s", mp, strerror(errno));
        }
        char tp[CFG_PATH + 32];
        snprintf(tp, sizeof tp, "%s/timing.csv", c->run_dir);
        t->timing = fopen(tp, t->step > 0 ? "a" : "w");
        if (!t->timing) FATAL("%s: cannot write: %s", tp, strerror(errno));
        if (t->step == 0)
            fprintf(t->timing, "step,data_s,forward_s,imbalance_s,exchange_mining_s,backward_s,allreduce_wait_s,"
                               "optimizer_s,step_s,images_per_s\n");
    }
    BatchDecode dec = trainer_decode(t);
    t->pf = prefetch_start(t->ds, &t->sampler, t->rank, t->world, &dec, t->step, t->total_steps, &e);
    if (!t->pf) FATAL("%s", e.msg);
    t->t_start = now_seconds();
    uint64_t first = t->step;
    /* Per-layer times for the summary; the threads' work too with a pool. */
    t->prof = xcalloc((size_t)4 * t->model.nlayers, sizeof *t->prof);
    t->model.prof = t->prof;
    parallel_profile(t->threads > 1);
    int status = 0;
    double window_t = now_seconds();
    uint64_t window_steps = 0;
    int images = t->global_items * t->per_item;
    while (t->step < t->total_steps) {
        watchdog_step(t->step);
        if (train_step_hook) train_step_hook(rank, t->step, 0);
        const Batch *b = prefetch_next(t->pf, &e);
        if (!b) util_fatal(NULL, 0, "%s", e.msg); /* bad data: the message names the record */
        if (o->debug && t->step == first) gradient_check(t, b);
        StepTimes st;
        trainer_step(t, b, &st);
        watchdog_step_done();
        window_steps++;
        uint64_t done = t->step;
        if (train_step_hook) train_step_hook(rank, done, 1);
        if (rank == 0)
            fprintf(t->timing, "%llu,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.1f\n", (unsigned long long)(done - 1),
                    st.data, st.forward, st.imbalance, st.mining, st.backward, st.allreduce, st.optimizer, st.total,
                    st.total > 0 ? images / st.total : 0);
        if (done - first == 2) memset(t->prof, 0, (size_t)4 * t->model.nlayers * sizeof *t->prof);
        if (done - first > 2) { /* skip warm-up steps in the summary */
            t->sum.data += st.data, t->sum.forward += st.forward, t->sum.mining += st.mining;
            t->sum.imbalance += st.imbalance;
            t->sum.backward += st.backward, t->sum.allreduce += st.allreduce,
                t->sum.optimizer += st.optimizer;
            t->sum.total += st.total;
            t->timed_steps++;
        }
        uint64_t every = o->debug ? 1 : (uint64_t)c->checksum_every;
        if (t->world > 1 && every && done % every == 0) dist_check_replicas(t->model.params, t->model.nparams, done);
        if (rank == 0 && (done % (uint64_t)c->log_every == 0 || done == t->total_steps)) {
            double now = now_seconds(), ips = window_steps * images / (now - window_t);
            char eta[32];
            fmt_duration(eta, sizeof eta, (double)(t->total_steps - done) * images / ips);
            fflush(t->metrics_file);
            fflush(t->timing);
            printf("step %llu/%llu  epoch %llu  loss %.4f  active %.3f  lr %.4g  %.0f img/s  ETA %s\n",
                   (unsigned long long)done, (unsigned long long)t->total_steps,
                   (unsigned long long)((done - 1) / t->steps_per_epoch + 1), t->last_loss, t->last_active, t->last_lr,
                   ips, eta);
            fflush(stdout);
            window_t = now;
            window_steps = 0;
        }
        if (c->eval_data[0] && c->eval_every > 0 && done % (uint64_t)c->eval_every == 0 && done < t->total_steps)
            trainer_validate(t);
        int stop = dist_any(train_stop_requested != 0);
        int periodic = c->ckpt_every > 0 && done % (uint64_t)c->ckpt_every == 0 && done < t->total_steps;
        if (periodic || stop) {
            watchdog_phase(WD_CHECKPOINT);
            char path[CFG_PATH + 64];
            ckpt_path_for_step(path, sizeof path, c->run_dir, done);
            if (trainer_save(t, path, &e)) {
                if (c->ckpt_on_error == ONERR_STOP || stop) FATAL("checkpoint not saved: %s", e.msg);
                util_warn("checkpoint not saved (earlier ones are intact): %s", e.msg);
            } else if (rank == 0) {
                if (ckpt_rotate(c->run_dir, (int)c->ckpt_keep, &e)) util_warn("%s", e.msg);
                if (stop) printf("stopped by a signal at step %llu: checkpoint %s written; resume with --resume auto\n",
                                 (unsigned long long)done, path);
            }
            if (rank == 0) fflush(t->metrics_file);
        }
        if (stop) {
            status = TRAIN_EXIT_RESUME;
            break;
        }
    }
    watchdog_phase(WD_END);
    prefetch_stop(t->pf);
    t->pf = NULL;
    log_ranks(t, first);
    t->model.prof = NULL;
    parallel_profile(0);
    if (status == 0) {
        /* The last validation before the final checkpoint, which then holds
         * its row (a finished run started again trains and scores nothing). */
        if (t->step > first) trainer_validate(t);
        char path[CFG_PATH + 64];
        ckpt_path_for_step(path, sizeof path, c->run_dir, t->step);
        if (trainer_save(t, path, &e)) FATAL("final checkpoint not saved: %s", e.msg);
        snprintf(path, sizeof path, "%s/model.smpi", c->run_dir);
        if (trainer_save(t, path, &e)) FATAL("final model not saved: %s", e.msg);
        if (rank == 0) {
            if (ckpt_rotate(c->run_dir, (int)c->ckpt_keep, &e)) util_warn("%s", e.msg);
            if (fflush(t->metrics_file) || fsync(fileno(t->metrics_file)))
                util_warn("%s/metrics.csv: %s", c->run_dir, strerror(errno));
            double wall = now_seconds() - t->t_start;
            printf("done: %llu steps in %.1f s; final model %s\n", (unsigned long long)(t->step - first), wall, path);
            if (t->timed_steps) {
                StepTimes *s = &t->sum;
                double n = (double)t->timed_steps, tot = s->total;
                printf("time per step (rank 0, %llu steps): %.2f ms = data wait %.1f%%, forward %.1f%%, waiting for "
                       "other ranks %.1f%%, exchange + mining %.1f%%, backward %.1f%%, allreduce wait %.1f%%, "
                       "optimizer %.1f%%; %.0f img/s\n",
                       (unsigned long long)t->timed_steps, 1e3 * tot / n, 100 * s->data / tot, 100 * s->forward / tot,
                       100 * s->imbalance / tot, 100 * s->mining / tot, 100 * s->backward / tot, 100 * s->allreduce / tot,
                       100 * s->optimizer / tot, n * images / tot);
                print_layers(t, n);
            }
            if (t->val_passes)
                printf("validation: %d passes in %.1f s, %.1f%% of the run's %.1f s; best %s %.4f at step %llu "
                       "(%s/best.smpi)\n",
                       t->val_passes, t->val_seconds, 100 * t->val_seconds / wall, wall,
                       config_enum_name("eval", "metric", c->eval_metric), t->best, (unsigned long long)t->best_step,
                       c->run_dir);
            fflush(stdout);
            EvalResult r;
            EvalDetail detail = {0};
            int evaluated = 0, coseg_evaluated = 0;
            CosegEval cr;
            if (c->eval_at_end && c->data_test[0] && c->loss.type == LOSS_MASK && c->loss.mask == MASK_CLASS) {
                watchdog_phase(WD_EVAL);
                char cjp[CFG_PATH + 32];
                snprintf(cjp, sizeof cjp, "%s/eval.json", c->run_dir);
                CosegClassEval ce;
                if (coseg_class_eval_run(&ce, &t->model, &t->norm, c->data_test, 0, &e) ||
                    (coseg_class_eval_print(&ce, stdout), coseg_class_eval_write_json(&ce, cjp, &e)))
                    util_warn("evaluation failed: %s", e.msg);
            } else if (c->eval_at_end && c->data_test[0] && c->loss.type == LOSS_MASK) {
                watchdog_phase(WD_EVAL);
                char cjp[CFG_PATH + 32];
                snprintf(cjp, sizeof cjp, "%s/eval.json", c->run_dir);
                if (coseg_eval_run(&cr, &t->model, &t->norm, c->data_test, c->data_train, 0, 1, &e) ||
                    (coseg_eval_print(&cr, stdout), coseg_eval_write_json(&cr, cjp, &e)))
                    util_warn("evaluation failed: %s", e.msg);
                else
                    coseg_evaluated = 1;
            } else if (c->eval_at_end && c->data_test[0]) {
                watchdog_phase(WD_EVAL);
                if (eval_run_detail(&t->model, c, &t->norm, c->data_test, c->data_train, &r,
                                    c->report ? &detail : NULL, &e)) {
                    util_warn("evaluation failed: %s", e.msg);
                } else {
                    evaluated = 1;
                    eval_print(&r, stdout);
                    char jp[CFG_PATH + 32];
                    snprintf(jp, sizeof jp, "%s/eval.json", c->run_dir);
                    if (eval_write_json(&r, jp, &e)) util_warn("%s", e.msg);
                }
            }
            /* After model.smpi and eval.json; a failure only warns. It adds
             * no evaluation of its own: with [train] eval = 0 it draws the
             * run's files only, so its time stays bounded (a co-segmentation
             * run's adds the masks of 4 test pairs). */
            if (c->report) {
                watchdog_phase(WD_EVAL); /* the report belongs to the end's evaluation */
                const char *dir = c->run_dir;
                ReportOptions ro = {.runs = &dir,
                                    .nruns = 1,
                                    .tsne = 1,
                                    .eval0 = evaluated ? &r : NULL,
                                    .detail0 = evaluated ? &detail : NULL,
                                    .coseg0 = coseg_evaluated ? &cr : NULL,
                                    .no_eval = !evaluated && !coseg_evaluated};
                fflush(stdout);
                if (report_write(&ro, &e)) util_warn("report not written: %s", e.msg);
            }
            if (evaluated && c->report) eval_detail_free(&detail);
        }
    }
    watchdog_phase(WD_END);
    dist_barrier_idle(); /* the others wait for rank 0's evaluation and report without spinning */
    return train_end(t, status);
}
