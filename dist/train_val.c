/* train_val: validation during training ([eval] data, every, metric). At
 * every `every` steps and at the end, rank 0 embeds the validation set with
 * the current weights and computes Recall@1, MAP@R and, with [eval] trials
 * > 0, the N-way K-shot accuracy over all classes (and within groups when
 * that is the chosen metric); the row goes to eval.csv and stdout.
 * When the chosen metric beats the best so far, every rank takes part in
 * writing best.smpi (a full checkpoint, outside the `keep` rotation). The
 * best value and eval.csv travel in every checkpoint (train_ckpt.c), so a
 * resumed run continues both exactly. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../mining/metrics.h"
#include "evaluate.h"
#include "protocol.h"
#include "train.h"

static GroupEval val_groups(const Config *c) {
    GroupEval g = {(int)c->eval_nway,
                   (int)c->eval_kshot,
                   (int)c->eval_trials,
                   (uint64_t)c->seed,
                   c->eval_drawings == 1 ? TRIALS_PAIRED : TRIALS_ANY,
                   NULL};
    return g;
}

int trainer_val_open(Trainer *t, Err *e) {
    const Config *c = &t->cfg;
    t->best = NAN;
    if (!c->eval_data[0]) return 0;
    if (t->rank != 0) return 0;
    if (ds_open(&t->val, c->eval_data, e)) return -1;
    const DsMeta *m = ds_meta(t->val);
    const Model *md = &t->model;
    if ((int)m->channels != md->in_c || (int)m->height != md->in_h || (int)m->width != md->in_w)
        return err_set(
            e, "[eval] data = %s is %ux%ux%u but the model takes %dx%dx%d: import it like the training set",
            c->eval_data, m->channels, m->height, m->width, md->in_c, md->in_h, md->in_w);
    Err pe;
    if (metrics_pairs_check(ds_labels(t->val), (int)m->count, &pe))
        return err_set(e, "[eval] data = %s cannot score Recall@1: %s", c->eval_data, pe.msg);
    if (c->eval_metric == VAL_GROUP_NWAY) {
        GroupEval g = val_groups(c);
        Trials tr; /* checks the draw */
        if (protocol_group_trials(&tr, t->val, &g, &pe))
            return err_set(e, "[eval] data = %s cannot hold within-group trials: %s", c->eval_data, pe.msg);
        trials_free(&tr);
    }
    if (c->eval_trials > 0 &&
        metrics_nway_check((int)c->eval_nway, (int)c->eval_kshot, ds_labels(t->val), (int)m->count, &pe))
        return err_set(
            e,
            "[eval] data = %s cannot hold %ld-way %ld-shot trials: %s; lower [eval] nway or kshot, "
            "or set trials = 0",
            c->eval_data, c->eval_nway, c->eval_kshot, pe.msg);
    return 0;
}

/* The columns of eval.csv: the chosen metric first, then the others. */
static int val_columns(const Config *c, int *cols) {
    int n = 0;
    cols[n++] = c->eval_metric;
    for (int k = 0; k < VAL_NMETRICS; k++)
        if (k != c->eval_metric && (k != VAL_NWAY || c->eval_trials > 0) && k != VAL_GROUP_NWAY)
            cols[n++] = k;
    return n;
}

void trainer_val_header(Trainer *t) {
    int cols[VAL_NMETRICS], n = val_columns(&t->cfg, cols);
    char line[256] = "step";
    for (int k = 0; k < n; k++) {
        strcat(line, ",");
        strcat(line, config_enum_name("eval", "metric", cols[k]));
    }
    strcat(line, "\n");
    textbuf_append(&t->evalcsv, line, strlen(line));
}

/* Rank 0: the metrics of the current weights into v (VAL_NMETRICS). */
static int val_metrics(Trainer *t, double *v, Err *e) {
    const Config *c = &t->cfg;
    float *E = eval_embed(&t->model, t->val, &t->norm, e);
    if (!E) return -1;
    int N = (int)ds_meta(t->val)->count, ks[1] = {1};
    const int32_t *labels = ds_labels(t->val);
    int rc = metrics_knn(&v[VAL_RECALL1], &v[VAL_MAP_R], E, labels, N, t->D, ks, 1, 0, e);
    v[VAL_NWAY] = c->eval_trials > 0 ? eval_nway_model(&t->model, t->val, &t->norm, E, c) : NAN;
    v[VAL_GROUP_NWAY] = NAN;
    if (rc == 0 && c->eval_metric == VAL_GROUP_NWAY) {
        NwayScore s;
        GroupEval g = val_groups(c);
        rc = eval_within_group(&s, &t->model, t->val, &t->norm, E, &g, e);
        if (rc == 0) v[VAL_GROUP_NWAY] = s.accuracy, nway_score_free(&s);
    }
    free(E);
    return rc;
}

void trainer_validate(Trainer *t) {
    const Config *c = &t->cfg;
    if (!c->eval_data[0]) return;
    double t0 = now_seconds();
    int improved = 0;
    if (t->rank == 0) {
        double v[VAL_NMETRICS];
        Err e;
        if (val_metrics(t, v, &e)) {
            util_warn("validation at step %llu skipped: %s", (unsigned long long)t->step, e.msg);
        } else {
            double x = v[c->eval_metric];
            improved = isnan(t->best) || x > t->best;
            if (improved) t->best = x, t->best_step = t->step;
            int cols[VAL_NMETRICS], n = val_columns(c, cols);
            char line[256], show[512];
            size_t len = (size_t)snprintf(line, sizeof line, "%llu", (unsigned long long)t->step), sl = 0;
            for (int k = 0; k < n; k++) {
                len += (size_t)snprintf(line + len, sizeof line - len, ",%.6f", v[cols[k]]);
                sl += (size_t)snprintf(show + sl, sizeof show - sl, "%s%s %.4f", k ? "  " : "",
                                       config_enum_name("eval", "metric", cols[k]), v[cols[k]]);
            }
            len += (size_t)snprintf(line + len, sizeof line - len, "\n");
            textbuf_append(&t->evalcsv, line, len);
            if (t->eval_file) fputs(line, t->eval_file), fflush(t->eval_file);
            printf("eval at step %llu: %s  (best %.4f at step %llu%s, %.2f s)\n", (unsigned long long)t->step,
                   show, t->best, (unsigned long long)t->best_step, improved ? ": best.smpi" : "",
                   now_seconds() - t0);
            fflush(stdout);
        }
    }
    dist_bcast_bytes(&improved, sizeof improved);
    if (improved) {
        char path[CFG_PATH + 32];
        Err e;
        snprintf(path, sizeof path, "%s/best.smpi", c->run_dir);
        if (trainer_save(t, path, &e)) util_warn("best.smpi not saved: %s", e.msg);
    }
    t->val_seconds += now_seconds() - t0;
    t->val_passes++;
}
