/* cmd_eval: the commands that need only a checkpoint (it carries its
 * config): eval, embed, export, and `inspect CHECKPOINT` (called by
 * io/cmd_data.c when the argument is a file). Single process, no MPI. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/atomic_file.h"
#include "../io/checkpoint.h"
#include "../io/npy.h"
#include "../io/safetensors.h"
#include "eval_coseg.h"
#include "evaluate.h"
#include "train.h"

static int opt_long(const char *cmd, const char *name, const char *v, long min, long max, long *out) {
    if (parse_long(v, min, max, out)) {
        fprintf(stderr, "siamese %s: %s %s: expected a whole number in [%ld, %ld]\n", cmd, name, v, min, max);
        return -1;
    }
    return 0;
}

static const char eval_usage[] =
    "usage: siamese eval CHECKPOINT --data DB [--json FILE] [--train DB] [--pairs N]\n"
    "                    [--nway N] [--kshot K] [--trials T]\n"
    "                    [--within-group] [--groups LIST] [--drawings any|paired] [--protocol koch]\n"
    "                    [--trials-file F] [--save-trials F] [--tta N [--tta-set augment.KEY=V ...]]\n\n"
    "Recall@1/@5 and MAP@R (Euclidean nearest neighbours, self excluded), verification accuracy\n"
    "at the threshold chosen on training pairs (--train, default the checkpoint's [data] train),\n"
    "ROC AUC and EER on a fixed seeded set of balanced pairs, and N-way K-shot accuracy over seeded\n"
    "trials with a 95% interval. Defaults come from the checkpoint's [eval] section. Prints a table;\n"
    "--json writes it.\n\n"
    "  --within-group     also T N-way K-shot trials with all N classes from one group (the\n"
    "                     class name before '/': the Omniglot alphabet), with per-group accuracy\n"
    "  --groups LIST      draw them only from these comma-separated groups (implies --within-group)\n"
    "  --drawings RULE    any: supports and query are any distinct samples (default); paired:\n"
    "                     every support is drawing d1 of its class, the query drawing d2 != d1\n"
    "                     (the drawing index is NN in a sample name ..._NN.png)\n"
    "  --protocol koch    Koch et al.'s Omniglot protocol as Lake et al. define it: --nway 20\n"
    "                     --kshot 1 --drawings paired --groups " PROTOCOL_KOCH_GROUPS "\n"
    "  --trials-file F    also score the trials F lists by sample name (docs/formats.md)\n"
    "  --save-trials F    write the within-group trials drawn as a trials file\n"
    "  --tta N            test-time augmentation: embed every image as the mean of N views (view 0\n"
    "                     the image, views 1..N-1 distorted by the checkpoint's [augment], seeded\n"
    "                     by [run] seed, the view and the sample), normalised again after an l2norm\n"
    "  --tta-set augment.KEY=V  change a key of those distortions (repeatable)\n\n"
    "A co-segmentation model ([loss] type = mask) is scored on DB's pairs records instead\n"
    "(docs/coseg.md): Jaccard and precision of the predicted masks of pairs with a common object,\n"
    "for classes seen in training (the classes --train has samples of) and unseen ones; for pairs\n"
    "without one, the fraction of pixels marked as object and of images predicted empty. --pairs N\n"
    "scores the first N records (default all); the N-way and group options do not apply. --tta 2\n"
    "runs every pair also mirrored left-right (both images) and averages each pixel's two logits\n"
    "(the second mirrored back) before the threshold; no other N is taken there.\n"
    "A class-map model ([loss] mask = class) is scored on DB's class masks: the accuracy of\n"
    "each position's most likely class against its block's majority (all, object and background\n"
    "positions) and the loss, over the first N images with --pairs N (default all; a two-image\n"
    "model: the first N pairs, each image beside its partner).\n";

/* eval of a co-segmentation model: the masks' measures (eval_coseg.h). */
static int cmd_eval_coseg(EvalModel *l, const char *ckpt, const char *data, const char *train, long pairs,
                          int views, const char *json, Err *e) {
    CosegEval r;
    if (coseg_eval_run(&r, &l->model, &l->norm, data, train, pairs, views, e)) return -1;
    printf("checkpoint %s (step %llu), data %s, seen classes from %s\n", ckpt, l->step, data, train);
    coseg_eval_print(&r, stdout);
    return json ? coseg_eval_write_json(&r, json, e) : 0;
}

int cmd_eval(int argc, char **argv) {
    const char *ckpt = NULL, *data = NULL, *json = NULL, *train = NULL, *protocol = NULL, *drawings = NULL;
    long pairs = -1, nway = -1, kshot = -1, trials = -1, tta = 1;
    const char *tta_set[32];
    int ntta_set = 0;
    EvalProtocol p = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(eval_usage, stdout);
            return 0;
        }
        if (!strcmp(a, "--within-group")) {
            p.within_group = 1;
            continue;
        }
        if (!v && a[0] == '-') {
            fprintf(stderr, "siamese eval: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--data"))
            data = v, i++;
        else if (!strcmp(a, "--json"))
            json = v, i++;
        else if (!strcmp(a, "--train"))
            train = v, i++;
        else if (!strcmp(a, "--groups"))
            p.groups = v, p.within_group = 1, i++;
        else if (!strcmp(a, "--drawings"))
            drawings = v, i++;
        else if (!strcmp(a, "--protocol"))
            protocol = v, i++;
        else if (!strcmp(a, "--trials-file"))
            p.trials_file = v, i++;
        else if (!strcmp(a, "--save-trials"))
            p.save_trials = v, i++;
        else if (!strcmp(a, "--pairs")) {
            if (opt_long("eval", a, v, 2, 10000000, &pairs)) return 2;
            i++;
        } else if (!strcmp(a, "--nway")) {
            if (opt_long("eval", a, v, 2, 100000, &nway)) return 2;
            i++;
        } else if (!strcmp(a, "--kshot")) {
            if (opt_long("eval", a, v, 1, 100000, &kshot)) return 2;
            i++;
        } else if (!strcmp(a, "--trials")) {
            if (opt_long("eval", a, v, 0, 100000000, &trials)) return 2;
            i++;
        } else if (!strcmp(a, "--tta")) {
            if (opt_long("eval", a, v, 1, 1000, &tta)) return 2;
            i++;
        } else if (!strcmp(a, "--tta-set")) {
            if (strncmp(v, "augment.", 8) || !strchr(v, '=')) {
                fprintf(stderr,
                        "siamese eval: --tta-set %s: expected augment.KEY=VALUE (e.g. augment.rotate=5)\n",
                        v);
                return 2;
            }
            if (ntta_set == (int)(sizeof tta_set / sizeof *tta_set)) {
                fprintf(stderr, "siamese eval: --tta-set: at most %d of them\n", ntta_set);
                return 2;
            }
            tta_set[ntta_set++] = v, i++;
        } else if (a[0] != '-' && !ckpt)
            ckpt = a;
        else {
            fprintf(stderr, "siamese eval: unexpected argument '%s'; see siamese eval --help\n", a);
            return 2;
        }
    }
    if (!ckpt || !data) {
        fprintf(stderr, "siamese eval: need CHECKPOINT and --data DB; see siamese eval --help\n");
        return 2;
    }
    if (protocol) {
        if (strcmp(protocol, "koch")) {
            fprintf(stderr, "siamese eval: --protocol %s: the protocol known is koch\n", protocol);
            return 2;
        }
        if (p.groups || (drawings && strcmp(drawings, "paired")) || (nway > 0 && nway != 20) ||
            (kshot > 0 && kshot != 1)) {
            fprintf(stderr,
                    "siamese eval: --protocol koch fixes --nway 20 --kshot 1 --drawings paired and the "
                    "groups; drop the options that contradict it\n");
            return 2;
        }
        p.within_group = 1;
        p.groups = PROTOCOL_KOCH_GROUPS;
        p.rule = TRIALS_PAIRED;
        nway = 20;
        kshot = 1;
    }
    if (drawings) {
        if (!strcmp(drawings, "any"))
            p.rule = TRIALS_ANY;
        else if (!strcmp(drawings, "paired"))
            p.rule = TRIALS_PAIRED;
        else {
            fprintf(stderr, "siamese eval: --drawings %s: expected any or paired\n", drawings);
            return 2;
        }
        p.within_group = 1;
    }
    if (ntta_set && tta < 2) {
        fprintf(stderr, "siamese eval: --tta-set changes the views of --tta N: add --tta N with N >= 2\n");
        return 2;
    }
    if (p.save_trials && !p.within_group) {
        fprintf(stderr, "siamese eval: --save-trials writes within-group trials: add --within-group\n");
        return 2;
    }
    EvalModel l;
    Err e = {{0}};
    if (eval_start_threads(&e) || eval_model_load(&l, ckpt, 256, &e)) {
        fprintf(stderr, "siamese eval: %s\n", e.msg);
        return 1;
    }
    if (!train) train = l.cfg.data_train;
    int coseg = l.cfg.loss.type == LOSS_MASK && l.cfg.loss.mask != MASK_CLASS;
    if (tta > 1 && coseg) {
        const char *why = tta != 2 ? COSEG_TTA_ONLY
                          : ntta_set
                              ? "a co-segmentation model's --tta 2 mirrors the pair: --tta-set does not apply"
                              : NULL;
        if (why) {
            fprintf(stderr, "siamese eval: --tta %ld: %s\n", tta, why);
            eval_model_free(&l);
            return 2;
        }
    } else if (tta > 1) {
        for (int i = 0; i < ntta_set; i++)
            if (config_set(&l.cfg, tta_set[i], &e)) {
                fprintf(stderr, "siamese eval: --tta-set: %s\n", e.msg);
                eval_model_free(&l);
                return 2;
            }
        const char *why =
            l.cfg.loss.type == LOSS_MASK          ? "a class-map model is scored by its positions' classes"
            : l.model.emb < 0                     ? "the model has no per-image embedding"
            : l.model.layers[l.model.loss].halved ? "the model scores pairs itself, not by embeddings"
            : !augment_enabled(&l.cfg.augment)
                ? "the checkpoint's [augment] distorts nothing: give distortions with --tta-set"
            : l.cfg.augment.scale_min > l.cfg.augment.scale_max
                ? "[augment] scale_min is above scale_max: fix the --tta-set values"
                : NULL;
        if (why) {
            fprintf(stderr, "siamese eval: --tta %ld: %s\n", tta, why);
            eval_model_free(&l);
            return 2;
        }
        p.tta = (int)tta;
    }
    if (l.cfg.loss.type == LOSS_MASK && l.cfg.loss.mask == MASK_CLASS) {
        CosegClassEval ce;
        int rc = coseg_class_eval_run(&ce, &l.model, &l.norm, data, pairs, &e);
        if (!rc) {
            printf("checkpoint %s (step %llu), data %s\n", ckpt, l.step, data);
            coseg_class_eval_print(&ce, stdout);
            if (json) rc = coseg_class_eval_write_json(&ce, json, &e);
        }
        if (rc) fprintf(stderr, "siamese eval: %s\n", e.msg);
        eval_model_free(&l);
        return rc ? 1 : 0;
    }
    if (l.cfg.loss.type == LOSS_MASK) {
        int rc = cmd_eval_coseg(&l, ckpt, data, train, pairs, (int)tta, json, &e);
        if (rc) fprintf(stderr, "siamese eval: %s\n", e.msg);
        eval_model_free(&l);
        return rc ? 1 : 0;
    }
    if (pairs > 0) l.cfg.eval_pairs = pairs;
    if (nway > 0) l.cfg.eval_nway = nway;
    if (kshot > 0) l.cfg.eval_kshot = kshot;
    if (trials >= 0) l.cfg.eval_trials = trials;
    EvalResult r;
    int rc = eval_run_protocol(&l.model, &l.cfg, &l.norm, data, train, &p, &r, NULL, &e);
    if (rc == 0) {
        printf("checkpoint %s (step %llu), data %s\n", ckpt, l.step, data);
        eval_print(&r, stdout);
        if (json && eval_write_json(&r, json, &e)) rc = -1;
        if (p.save_trials && rc == 0) printf("wrote %s: %d trials\n", p.save_trials, r.group.trials);
        eval_result_free(&r);
    }
    if (rc) fprintf(stderr, "siamese eval: %s\n", e.msg);
    eval_model_free(&l);
    return rc ? 1 : 0;
}

/* The sample names of ds, one per line in id order (names hold no newline). */
static int write_names(const Dataset *ds, const char *path, Err *e) {
    uint64_t n = ds_meta(ds)->count;
    size_t len = 0, cap = 4096;
    char *buf = xmalloc(cap);
    for (uint64_t i = 0; i < n; i++) {
        const char *name = ds_sample_name(ds, i);
        size_t k = strlen(name);
        if (len + k + 1 > cap) buf = xrealloc(buf, cap = 2 * (len + k + 1));
        memcpy(buf + len, name, k);
        buf[len + k] = '\n';
        len += k + 1;
    }
    int rc = atomic_file_write_all(path, buf, len, e);
    free(buf);
    return rc;
}

int cmd_embed(int argc, char **argv) {
    const char *ckpt = NULL, *data = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: siamese embed CHECKPOINT --data DB --out PREFIX\n\n"
                   "Writes PREFIX.emb.npy (float32, samples x embedding), PREFIX.labels.npy (int32) and,\n"
                   "when DB has sample names, PREFIX.names.txt (one name per line), in sample order.\n");
            return 0;
        }
        if (!strcmp(a, "--data") && v) data = v, i++;
        else if (!strcmp(a, "--out") && v) out = v, i++;
        else if (a[0] != '-' && !ckpt) ckpt = a;
        else {
            fprintf(stderr, "siamese embed: unexpected argument '%s'; see siamese embed --help\n", a);
            return 2;
        }
    }
    if (!ckpt || !data || !out) {
        fprintf(stderr, "siamese embed: need CHECKPOINT, --data DB and --out PREFIX\n");
        return 2;
    }
    EvalModel l;
    Err e = {{0}};
    Dataset *ds = NULL;
    float *E = NULL;
    int rc = 1;
    if (eval_start_threads(&e) || eval_model_load(&l, ckpt, 256, &e)) goto fail;
    if (ds_open(&ds, data, &e) || !(E = eval_embed(&l.model, ds, &l.norm, &e))) goto fail_model;
    char p1[4200], p2[4200];
    snprintf(p1, sizeof p1, "%s.emb.npy", out);
    snprintf(p2, sizeof p2, "%s.labels.npy", out);
    int64_t N = (int64_t)ds_meta(ds)->count;
    if (npy_write_f32(p1, E, N, l.model.emb_dim, &e) || npy_write_i32(p2, ds_labels(ds), N, &e)) goto fail_model;
    printf("wrote %s (%lld x %d) and %s\n", p1, (long long)N, l.model.emb_dim, p2);
    if (ds_load_names(ds, &e)) goto fail_model;
    if (ds_meta(ds)->has_names) {
        snprintf(p1, sizeof p1, "%s.names.txt", out);
        if (write_names(ds, p1, &e)) goto fail_model;
        printf("wrote %s\n", p1);
    } else {
        printf("%s has no sample names: no %s.names.txt\n", data, out);
    }
    rc = 0;
fail_model:
    eval_model_free(&l);
fail:
    if (rc) fprintf(stderr, "siamese embed: %s\n", e.msg);
    free(E);
    if (ds) ds_close(ds);
    return rc;
}

int cmd_export(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf(
                "usage: siamese export CHECKPOINT --out FILE.safetensors\n\n"
                "Writes the weights as safetensors (F32), one tensor per layer parameter and buffer, named\n"
                "LAYER.weight / LAYER.bias (head.weight, head.bias for the Koch head) and, for batch norm,\n"
                "LAYER.running_mean / LAYER.running_var / LAYER.num_batches_tracked (a scalar), in PyTorch\n"
                "layouts: conv (out, in, k, k), deconv2d (in, out, k, k), linear (out, in): a PyTorch model\n"
                "with the same names loads it with load_state_dict. Metadata: the config text and the\n"
                "normalisation (input_mean, input_std: one number, or one per channel comma-separated).\n");
            return 0;
        }
        if (!strcmp(a, "--out") && v) out = v, i++;
        else if (a[0] != '-' && !ckpt) ckpt = a;
        else {
            fprintf(stderr, "siamese export: unexpected argument '%s'; see siamese export --help\n", a);
            return 2;
        }
    }
    if (!ckpt || !out) {
        fprintf(stderr, "siamese export: need CHECKPOINT and --out FILE.safetensors\n");
        return 2;
    }
    EvalModel l;
    Err e = {{0}};
    if (eval_model_load(&l, ckpt, 1, &e)) {
        fprintf(stderr, "siamese export: %s\n", e.msg);
        return 1;
    }
    /* Parameters, then buffers (running statistics), by layer name. */
    const Model *m = &l.model;
    int nt = m->nviews + m->nbufviews;
    StTensor *t = xcalloc((size_t)nt, sizeof *t);
    for (int v = 0; v < nt; v++) {
        const ParamView *pv = v < m->nviews ? &m->views[v] : &m->bufviews[v - m->nviews];
        t[v].name = pv->name;
        t[v].ndim = pv->ndim;
        for (int d = 0; d < pv->ndim; d++) t[v].shape[d] = pv->shape[d];
        t[v].data = (v < m->nviews ? m->params : m->buffers) + pv->offset;
    }
    char mean[32 * NORM_MAX_CHANNELS], std[32 * NORM_MAX_CHANNELS], step[32];
    norm_format(mean, sizeof mean, l.norm.mean, l.norm.channels);
    norm_format(std, sizeof std, l.norm.std, l.norm.channels);
    snprintf(step, sizeof step, "%llu", l.step);
    char *text = config_to_text(&l.cfg);
    const char *meta[] = {"format", "siamese-mpi", "config", text, "input_mean", mean, "input_std", std, "step", step};
    int rc = safetensors_write(out, t, nt, meta, 5, &e);
    if (rc) fprintf(stderr, "siamese export: %s\n", e.msg);
    else
        printf("wrote %s: %d tensors, %zu parameters, %zu buffer floats\n", out, nt, m->nparams, m->nbuffers);
    free(text);
    free(t);
    eval_model_free(&l);
    return rc ? 1 : 0;
}

/* `siamese inspect CHECKPOINT [--compare OTHER [--tol T]]`. */
int inspect_checkpoint(int argc, char **argv) {
    const char *path = NULL, *other = NULL;
    double tol = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--compare") && i + 1 < argc) other = argv[++i];
        else if (!strcmp(argv[i], "--tol") && i + 1 < argc) {
            if (parse_double(argv[++i], 0, 1e30, &tol)) {
                fprintf(stderr, "siamese inspect: --tol %s: expected a number >= 0\n", argv[i]);
                return 2;
            }
        } else if (argv[i][0] != '-' && !path) path = argv[i];
        else {
            fprintf(stderr, "siamese inspect: unexpected argument '%s'; see siamese inspect --help\n", argv[i]);
            return 2;
        }
    }
    Err e = {{0}};
    if (!other) {
        if (ckpt_print(path, stdout, &train_ckpt_bounds, &e)) {
            fprintf(stderr, "siamese inspect: %s\n", e.msg);
            return 1;
        }
        Ckpt *ck;
        if (ckpt_read(&ck, path, &train_ckpt_bounds, &e) == 0) {
            const char *names[] = {"topology", "graph", "state"};
            for (int i = 0; i < 3; i++) {
                size_t n;
                const char *txt = ckpt_get(ck, names[i], &n);
                if (!txt) continue;
                printf("%s:\n", names[i]);
                for (const char *p = txt, *end = txt + n; p < end;) {
                    const char *nl = memchr(p, '\n', (size_t)(end - p));
                    size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
                    printf("  %.*s\n", (int)len, p);
                    p += len + 1;
                }
            }
            ckpt_free(ck);
            /* The model the checkpoint's config builds (also for checkpoints
             * older than the graph section). */
            EvalModel l;
            if (eval_model_load(&l, path, 1, &e) == 0) {
                printf("model:\n");
                model_describe(&l.model, stdout);
                eval_model_free(&l);
            }
        }
        return 0;
    }
    /* Compare the parameters (and optimizer state) of two checkpoints:
     * exit 0 when every value is within tol (relative to max(1, |a|)). */
    Ckpt *a, *b;
    if (ckpt_read(&a, path, &train_ckpt_bounds, &e)) {
        fprintf(stderr, "siamese inspect: %s\n", e.msg);
        return 1;
    }
    if (ckpt_read(&b, other, &train_ckpt_bounds, &e)) {
        fprintf(stderr, "siamese inspect: %s\n", e.msg);
        ckpt_free(a);
        return 1;
    }
    int rc = 0;
    const char *sections[] = {"params", "optim"};
    for (int s = 0; s < 2; s++) {
        size_t na, nb;
        const float *pa = ckpt_get(a, sections[s], &na), *pb = ckpt_get(b, sections[s], &nb);
        if (!pa && !pb) continue;
        if (!pa || !pb || na != nb) {
            printf("%s: sizes differ (%zu vs %zu bytes)\n", sections[s], pa ? na : 0, pb ? nb : 0);
            rc = 1;
            continue;
        }
        size_t n = na / sizeof(float), worst_i = 0, differ = 0;
        double worst = 0;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)pa[i] - pb[i]) / fmax(1.0, fabs(pa[i]));
            if (pa[i] != pb[i]) differ++;
            if (d > worst || isnan(d)) worst = isnan(d) ? INFINITY : d, worst_i = i;
        }
        printf("%s: %zu values, %zu differ, max relative difference %.3g (at %zu)%s\n", sections[s], n, differ, worst,
               worst_i, worst > tol ? " > tol" : "");
        if (worst > tol) rc = 1;
    }
    ckpt_free(a);
    ckpt_free(b);
    return rc;
}
