/* config: see config.h. The schema table below (singleton sections) and
 * the layer registry's key lists (nn/layer.h, layer sections) are the single
 * source of truth for every key: parsing, defaults, --set, the canonical
 * text and the config reference in docs/config.md all walk them. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/layer.h"
#include "norm.h"

/* A key of a singleton section; off is into Config. */
typedef ConfigKey Key;

#define C(f) offsetof(Config, f)
#define L(f) offsetof(LayerCfg, f)
#define BIG 9.0e15

static const char *const singletons[] = {"run",  "data",  "sampler", "augment",    "model", "head", "loss",
                                         "mining", "optim", "init",    "train", "checkpoint", "dist", "eval"};
#define NSINGLETONS (int)(sizeof singletons / sizeof singletons[0])
/* Layer sections are printed between [augment] and [head]. */
#define LAYERS_AFTER "augment"

static const Key schema[] = {
    {"run", "dir", K_STR, C(run_dir), 0, 0, "runs/default", NULL, "run directory: checkpoints, metrics.csv, config.ini"},
    {"run", "seed", K_INT, C(seed), 0, BIG, "1", NULL, "seed of every random draw (init, sampler, eval)"},
    {"run", "max_memory", K_DBL, C(max_memory), 0, 1e6, "0", NULL,
     "GB a rank may use, checked before allocating (model, gradients, optimizer state, activations, batches); 0 = "
     "the available memory or the cgroup/SLURM limit, whichever is smaller, divided by the ranks on the node"},
    {"run", "threads", K_INT, C(threads), 0, 1024, "0", NULL, "threads per rank (results do not depend on it; may change on resume); 0 = SLURM_CPUS_PER_TASK, else the CPUs of the rank's affinity mask / the ranks sharing them; SIAMESE_THREADS overrides"},
    {"data", "train", K_STR, C(data_train), 0, 0, "", NULL, "training dataset (LMDB directory made by siamese import)"},
    {"data", "test", K_STR, C(data_test), 0, 0, "", NULL, "test dataset for the evaluation at the end (optional)"},
    {"data", "shape", K_STR, C(data_shape), 0, 0, "", NULL, "expected input CxHxW (e.g. 1x28x28), checked against the dataset; empty = the dataset's"},
    {"data", "mean", K_STR, C(data_mean), 0, 0, "0", NULL, "input normalisation mean of pixel/255 (0..1): one number, or one per channel comma-separated; 0 = the training set's per channel"},
    {"data", "std", K_STR, C(data_std), 0, 0, "0", NULL, "input normalisation std (0..10, > 0): one number, or one per channel comma-separated; 0 = the training set's per channel"},
    {"data", "on_bad_record", K_ENUM, C(sampler.on_bad), 0, 0, "stop", "stop|skip",
     "a sample record that fails its checks in training: stop (exit 1 naming its key) or skip (warn, and use "
     "a sample of the same class drawn from (seed, step, position) in its place)"},
    {"sampler", "mode", K_ENUM, C(sampler.mode), 0, 0, "pk", "pk|pairs|triplets|coseg", "pk: P classes x K images; pairs/triplets: records of the dataset's sub-database; coseg: pairs with and without a common object (docs/coseg.md)"},
    {"sampler", "p", K_INT32, C(sampler.p), 2, 100000, "8", NULL, "pk: classes per global batch"},
    {"sampler", "k", K_INT32, C(sampler.k), 1, 100000, "32", NULL, "pk: images per class"},
    {"sampler", "groups", K_INT32, C(sampler.groups), 0, 100000, "0", NULL, "pk: draw the P classes from this many groups (the class name before '/', e.g. Omniglot alphabets), p/groups classes from each, so negatives come from the same group; p must be a multiple; 0 = from all classes"},
    {"sampler", "batch", K_INT32, C(sampler.batch), 1, 1000000, "128", NULL, "pairs/triplets/coseg: records per global batch"},
    {"sampler", "common", K_DBL, C(sampler.common), 0, 1, "0.75", NULL, "coseg: fraction of each batch's pairs with a common object"},
    {"model", "embedding", K_STR, C(model.embedding), 0, LAYER_NAME_MAX, "", NULL, "the node eval and embed read (a per-image node); empty: the last layer (docs/graph.md)"},
    {"augment", "rotate", K_DBL, C(augment.rotate), 0, 180, "0", NULL, "rotation: angle uniform in [-rotate, rotate] degrees (Koch: 10); 0 = off"},
    {"augment", "rotate_p", K_DBL, C(augment.rotate_p), 0, 1, "1", NULL, "probability that an image is rotated (Koch: 0.5)"},
    {"augment", "shear", K_DBL, C(augment.shear), 0, 0.9, "0", NULL, "shear: rho_x, rho_y uniform in [-shear, shear] (Koch: 0.3); 0 = off"},
    {"augment", "shear_p", K_DBL, C(augment.shear_p), 0, 1, "1", NULL, "probability that an image is sheared (Koch: 0.5)"},
    {"augment", "scale_min", K_DBL, C(augment.scale_min), 0.05, 20, "1", NULL, "scale: s_x, s_y uniform in [scale_min, scale_max] (Koch: 0.8); both 1 = off"},
    {"augment", "scale_max", K_DBL, C(augment.scale_max), 0.05, 20, "1", NULL, "upper end of the scale range (Koch: 1.2)"},
    {"augment", "scale_p", K_DBL, C(augment.scale_p), 0, 1, "1", NULL, "probability that an image is scaled (Koch: 0.5)"},
    {"augment", "translate", K_DBL, C(augment.translate), 0, 10000, "0", NULL, "translation: t_x, t_y uniform in [-translate, translate] pixels (Koch: 2); 0 = off"},
    {"augment", "translate_p", K_DBL, C(augment.translate_p), 0, 1, "1", NULL, "probability that an image is translated (Koch: 0.5)"},
    {"augment", "hflip", K_DBL, C(augment.hflip), 0, 1, "0", NULL, "probability of a left-right mirror (not for characters)"},
    {"augment", "crop_pad", K_INT, C(augment.crop_pad), 0, 10000, "0", NULL, "random crop: pad by this many pixels and crop a random HxW window; 0 = off"},
    {"augment", "fill", K_INT, C(augment.fill), 0, 255, "0", NULL, "pixel value (0..255, before normalisation) where a distorted image leaves its source"},
    {"head", "type", K_ENUM, C(model.koch_head), 0, 0, "none", "none|koch", "none: embeddings; koch: |e1-e2| -> linear -> sigmoid"},
    {"head", "lr_mult", K_DBL, C(model.head_lr_mult), 0, 1000, "1", NULL, "learning-rate multiplier of the head"},
    {"head", "momentum", K_DBL, C(model.head_momentum), -1, 1, "-1", NULL, "SGD: the head's final momentum; -1 = [optim] momentum"},
    {"head", "l2", K_DBL, C(model.head_l2), 0, 1000, "0", NULL, "L2 regularisation lambda of the head weights (in the loss)"},
    {"loss", "type", K_ENUM, C(loss.type), 0, 0, "triplet", "triplet|contrastive|bce|infonce|multi_similarity|mask", "triplet (FaceNet), contrastive (Hadsell), bce (Koch head, or a pair-level logit), infonce (N-pair / InfoNCE over the global batch), multi_similarity (Wang et al. 2019), mask (co-segmentation: a mask logit per pixel of each image)"},
    {"loss", "input", K_STR, C(model.loss_input), 0, LAYER_INPUT_MAX, "", NULL, "the node the loss reads; empty: the embedding (bce without a head: a pair-level node of one logit per pair)"},
    {"loss", "margin", K_DBL, C(loss.margin), 0, 100, "0.2", NULL, "margin of the triplet and contrastive losses"},
    {"loss", "soft", K_INT, C(loss.soft), 0, 1, "0", NULL, "triplet: 1 = soft margin log(1+exp(d_ap-d_an))"},
    {"loss", "temperature", K_DBL, C(loss.temperature), 1e-4, 100, "0.1", NULL, "infonce: similarities e_a.e_j are divided by it before the softmax"},
    {"loss", "symmetric", K_INT, C(loss.symmetric), 0, 1, "1", NULL, "infonce: 1 = every ordered positive pair (both directions), 0 = each pair once from its earlier row"},
    {"loss", "alpha", K_DBL, C(loss.ms_alpha), 1e-3, 1000, "2", NULL, "multi_similarity: weight of the positive similarities"},
    {"loss", "beta", K_DBL, C(loss.ms_beta), 1e-3, 1000, "50", NULL, "multi_similarity: weight of the negative similarities"},
    {"loss", "base", K_DBL, C(loss.ms_base), -1, 1, "0.5", NULL, "multi_similarity: the similarity the terms are centred on (lambda)"},
    {"loss", "mask", K_ENUM, C(loss.mask), 0, 0, "bce", "bce|dice|bce_dice|class", "mask: per-pixel binary cross-entropy on the logits, the soft Dice loss, or their sum (the BCE term keeps a gradient on images whose target is empty, where Dice's vanishes); averaged over pixels and images; class: softmax cross-entropy over classes + 1 channels per position against a class-mask dataset's per-pixel classes (pretraining, docs/coseg.md)"},
    {"loss", "edge_weight", K_DBL, C(loss.edge_weight), 0, 100, "0", NULL, "mask = bce or bce_dice: the BCE of a pixel on the target's outline (its value differs from a 4-neighbour's) counts 1 + this (0: every pixel alike; docs/coseg.md)"},
    {"mining", "strategy", K_ENUM, C(mining.strategy), 0, 0, "batch_all", "batch_hard|semi_hard|batch_all|hard_pairs|none|multi_similarity", "online miner over the PK batch (multi_similarity: Wang et al.'s pair mining)"},
    {"mining", "scope", K_ENUM, C(mining.scope), 0, 0, "global", "global|local", "global: mine over all ranks' embeddings (exact); local: within each rank's slice"},
    {"mining", "exchange", K_ENUM, C(mining.exchange), 0, 0, "fp32", "fp32|bf16|fp16", "global scope: the format of the exchanged embeddings; bf16 / fp16 halve the allgather and round every pool row (1 rank too), so p ranks still equal 1 rank; the batch_hard loss moves by at most 4 u max|e| (u = 2^-8 / 2^-11) (docs/mining-scale.md)"},
    {"mining", "pool", K_ENUM, C(mining.pool), 0, 0, "exact", "exact|classes", "global scope: exact = every anchor against the whole global batch; classes = against its own class and the [mining] classes classes whose centroids are nearest (fixed-point sums: the same choice for any rank count); a rank exchanges and mines only those rows (docs/mining-scale.md)"},
    {"mining", "classes", K_INT32, C(mining.classes), 1, 100000, "8", NULL, "pool = classes: neighbour classes per anchor class (>= [sampler] p - 1 is exact mining)"},
    {"mining", "epsilon", K_DBL, C(mining.epsilon), 0, 10, "0.1", NULL, "multi_similarity mining: keep negatives within epsilon above the weakest positive, positives within epsilon below the strongest negative"},
    {"optim", "type", K_ENUM, C(optim.type), 0, 0, "sgd", "sgd|adam|adamw", "optimizer"},
    {"optim", "lr", K_DBL, C(optim.lr), 0, 100, "0.05", NULL, "base learning rate"},
    {"optim", "momentum", K_DBL, C(optim.momentum), 0, 1, "0.9", NULL, "SGD momentum (the final value of layers without their own momentum key)"},
    {"optim", "momentum_start", K_DBL, C(optim.momentum_start), 0, 1, "0.5", NULL, "SGD with momentum_epochs > 0: every layer's momentum in epoch 0 (Koch: 0.5)"},
    {"optim", "momentum_epochs", K_INT, C(optim.momentum_epochs), 0, 1000000, "0", NULL, "SGD: epochs over which each layer's momentum rises linearly from momentum_start to its final value; 0 = no ramp"},
    {"optim", "nesterov", K_INT32, C(optim.nesterov), 0, 1, "0", NULL, "SGD: 1 = Nesterov momentum"},
    {"optim", "weight_decay", K_DBL, C(optim.weight_decay), 0, 10, "0.0005", NULL, "weight decay (SGD/Adam: added to the gradient; AdamW: decoupled)"},
    {"optim", "beta1", K_DBL, C(optim.beta1), 0, 1, "0.9", NULL, "Adam beta1"},
    {"optim", "beta2", K_DBL, C(optim.beta2), 0, 1, "0.999", NULL, "Adam beta2"},
    {"optim", "eps", K_DBL, C(optim.eps), 0, 1, "1e-08", NULL, "Adam epsilon"},
    {"optim", "schedule", K_ENUM, C(optim.schedule), 0, 0, "constant", "constant|step|exp|cosine", "learning-rate schedule"},
    {"optim", "gamma", K_DBL, C(optim.gamma), 0, 1, "0.1", NULL, "step: factor every step_epochs; exp: factor per epoch (Koch: 0.99)"},
    {"optim", "step_epochs", K_INT, C(optim.step_size), 1, 1000000, "1", NULL, "step schedule: epochs between decays"},
    {"optim", "min_lr", K_DBL, C(optim.min_lr), 0, 100, "0", NULL, "cosine: final learning rate"},
    {"optim", "warmup_steps", K_INT, C(optim.warmup_steps), 0, BIG, "0", NULL, "linear warm-up steps (multiplies the schedule)"},
    {"optim", "clip_norm", K_DBL, C(optim.clip_norm), 0, 1e9, "0", NULL, "clip the global gradient norm to this; 0 = off"},
    {"optim", "shard", K_INT32, C(optim.shard), 0, 1, "0", NULL, "1 = shard the optimizer over the ranks: each updates 1/p of the parameters and keeps 1/p of the optimizer state, then the parameters are allgathered (the same bits as 0; may change on resume)"},
    {"init", "scheme", K_ENUM, C(init_scheme), 0, 0, "he", "he|koch|torch", "he: N(0, 2/fan_in), bias 0; koch: conv N(0,1e-2) bias N(0.5,1e-2), dense N(0,0.2); torch: PyTorch's default uniform"},
    {"init", "from", K_STR, C(init_from), 0, 0, "", NULL, "checkpoint to start from: after the scheme's initialisation, every layer with parameters whose name is a layer of the checkpoint's model gets its parameters and running statistics (same type and shapes, else an error naming the layer); empty = none"},
    {"train", "epochs", K_INT, C(epochs), 0, 1000000, "5", NULL, "epochs (used when steps = 0)"},
    {"train", "steps", K_INT, C(steps), 0, BIG, "0", NULL, "total steps; 0 = epochs x steps per epoch"},
    {"train", "log_every", K_INT, C(log_every), 1, BIG, "20", NULL, "progress line every N steps (rank 0)"},
    {"train", "eval", K_INT, C(eval_at_end), 0, 1, "1", NULL, "1 = evaluate on [data] test at the end"},
    {"train", "report", K_INT, C(report), 0, 1, "1", NULL, "1 = write report.html into the run dir at the end (siamese report)"},
    {"checkpoint", "every", K_INT, C(ckpt_every), 0, BIG, "500", NULL, "checkpoint every N steps; 0 = only at the end"},
    {"checkpoint", "keep", K_INT, C(ckpt_keep), 1, 1000000, "3", NULL, "keep the newest N periodic checkpoints"},
    {"checkpoint", "on_error", K_ENUM, C(ckpt_on_error), 0, 0, "stop", "stop|warn", "a failed save stops the run, or warns and goes on"},
    {"dist", "bucket_kfloats", K_INT, C(bucket_kfloats), 1, 1000000, "64", NULL, "gradient allreduce bucket size, in thousands of floats"},
    {"dist", "checksum_every", K_INT, C(checksum_every), 0, BIG, "100", NULL, "compare replica weight hashes every N steps (0 = never; every step with --debug)"},
    {"dist", "timeout", K_DBL, C(dist_timeout), 0, 1e7, "300", NULL,
     "seconds without progress before the job ends with exit 76 (a step may take max(timeout, 10 x the "
     "median step)); 0 = no watchdog"},
    {"eval", "pairs", K_INT, C(eval_pairs), 2, 10000000, "10000", NULL, "balanced test pairs for verification, ROC AUC, EER"},
    {"eval", "train_pairs", K_INT, C(eval_train_pairs), 2, 10000000, "4000", NULL, "training pairs on which the verification threshold is chosen"},
    {"eval", "nway", K_INT, C(eval_nway), 2, 100000, "5", NULL, "N of the N-way K-shot trials"},
    {"eval", "kshot", K_INT, C(eval_kshot), 1, 100000, "1", NULL, "K of the N-way K-shot trials"},
    {"eval", "trials", K_INT, C(eval_trials), 0, 100000000, "1000", NULL, "N-way K-shot trials (0 = skip)"},
    {"eval", "data", K_STR, C(eval_data), 0, 0, "", NULL, "validation dataset scored during training (eval.csv, best.smpi); empty = none"},
    {"eval", "every", K_INT, C(eval_every), 0, BIG, "0", NULL, "validate every N steps (and at the end); 0 = only at the end"},
    {"eval", "metric", K_ENUM, C(eval_metric), 0, 0, "recall_at_1", "recall_at_1|map_at_r|nway_accuracy|group_nway_accuracy", "the validation metric best.smpi follows (nway_accuracy: [eval] nway, kshot, trials over all classes; group_nway_accuracy: the same within a group, e.g. an Omniglot alphabet)"},
    {"eval", "drawings", K_ENUM, C(eval_drawings), 0, 0, "any", "any|paired", "group_nway_accuracy: any samples, or Koch/Lake's paired drawings (every support drawing d1, the query d2)"},
};
#define NKEYS (int)(sizeof schema / sizeof schema[0])
/* K_ENUM values are the index in the key's "a|b|c": the modules' enums in
 * that order. K_INT fields are long or uint64_t. */
_Static_assert(SAMPLER_PK == 0 && SAMPLER_PAIRS == 1 && SAMPLER_TRIPLETS == 2 && SAMPLER_COSEG == 3,
               "[sampler] mode order");
_Static_assert(SAMPLER_BAD_STOP == 0 && SAMPLER_BAD_SKIP == 1, "[data] on_bad_record order");
_Static_assert(LOSS_TRIPLET == 0 && LOSS_CONTRASTIVE == 1 && LOSS_BCE == 2 && LOSS_INFONCE == 3 &&
                   LOSS_MULTI_SIMILARITY == 4 && LOSS_MASK == 5,
               "[loss] type order");
_Static_assert(MASK_BCE == 0 && MASK_DICE == 1 && MASK_BCE_DICE == 2 && MASK_CLASS == 3, "[loss] mask order");
_Static_assert(MINE_BATCH_HARD == 0 && MINE_SEMI_HARD == 1 && MINE_BATCH_ALL == 2 && MINE_HARD_PAIRS == 3 &&
                   MINE_NONE == 4 && MINE_MULTI_SIMILARITY == 5,
               "[mining] strategy order");
_Static_assert(SCOPE_GLOBAL == 0 && SCOPE_LOCAL == 1, "[mining] scope order");
_Static_assert(POOL_EXACT == 0 && POOL_CLASSES == 1, "[mining] pool order");
_Static_assert(OPTIM_SGD == 0 && OPTIM_ADAM == 1 && OPTIM_ADAMW == 2, "[optim] type order");
_Static_assert(OPTIM_SCHED_CONSTANT == 0 && OPTIM_SCHED_STEP == 1 && OPTIM_SCHED_EXP == 2 && OPTIM_SCHED_COSINE == 3,
               "[optim] schedule order");
_Static_assert(INIT_HE == 0 && INIT_KOCH == 1 && INIT_TORCH == 2, "[init] scheme order");
_Static_assert(sizeof(long) == sizeof(uint64_t) && sizeof(SamplerMode) == sizeof(int) &&
                   sizeof(SamplerOnBad) == sizeof(int) &&
                   sizeof(OptimType) == sizeof(int) && sizeof(MiningStrategy) == sizeof(int) &&
                   sizeof(MaskLoss) == sizeof(int),
               "K_INT and K_ENUM field sizes");

#define ORIGIN_MARK "; effective config of "

static int layer_type_of(const char *s) { return layer_type_by_name(s); }

int config_is_layer_section(const char *name) { return layer_type_of(name) >= 0; }

/* The keys of layer type t: the common ones (name, input), then its own. */
static int layer_nkeys(int t) { return layer_common_nkeys + layer_def((LayerType)t)->nkeys; }
static const Key *layer_key(int t, int i) {
    return i < layer_common_nkeys ? &layer_common_keys[i] : &layer_def((LayerType)t)->keys[i - layer_common_nkeys];
}

static int is_singleton(const char *s) {
    for (int i = 0; i < NSINGLETONS; i++)
        if (!strcmp(s, singletons[i])) return 1;
    return 0;
}

static const Key *find_key(const char *section, const char *key) {
    int t = layer_type_of(section);
    if (t >= 0) {
        for (int i = 0; i < layer_nkeys(t); i++)
            if (!strcmp(layer_key(t, i)->key, key)) return layer_key(t, i);
        return NULL;
    }
    for (int i = 0; i < NKEYS; i++)
        if (!strcmp(schema[i].section, section) && !strcmp(schema[i].key, key)) return &schema[i];
    return NULL;
}

static void valid_keys(const char *section, char *out, size_t n) {
    size_t len = 0;
    out[0] = 0;
    int t = layer_type_of(section);
    for (int i = 0; t >= 0 && i < layer_nkeys(t); i++)
        len += snprintf(out + len, len < n ? n - len : 0, "%s%s", len ? ", " : "", layer_key(t, i)->key);
    for (int i = 0; t < 0 && i < NKEYS; i++)
        if (!strcmp(schema[i].section, section))
            len += snprintf(out + len, len < n ? n - len : 0, "%s%s", len ? ", " : "", schema[i].key);
}

/* Messages echo what the user wrote: a control character in it (a newline
 * in a --set argument, an escape sequence in a file) is shown as '?' so an
 * error stays one plain line. */
static int one_line(Err *e) {
    if (e)
        for (char *p = e->msg; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return -1;
}

static int has_control(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return 1;
    return 0;
}

/* Stores text `v` into the field of `k` at base. Returns 0, or -1 with a
 * message (without location) in e. */
static int key_set(const Key *k, void *base, const char *v, Err *e) {
    char *field = (char *)base + k->off;
    switch (k->type) {
    case K_INT: {
        long x;
        if (parse_long(v, (long)k->min, (long)k->max, &x))
            return err_set(e, "%s = '%s': expected a whole number in [%.0f, %.0f]", k->key, v, k->min, k->max);
        memcpy(field, &x, sizeof x);
        return 0;
    }
    case K_INT32: {
        long x;
        if (parse_long(v, (long)k->min, (long)k->max, &x))
            return err_set(e, "%s = '%s': expected a whole number in [%.0f, %.0f]", k->key, v, k->min, k->max);
        int i = (int)x;
        memcpy(field, &i, sizeof i);
        return 0;
    }
    case K_DBL: {
        double x;
        if (parse_double(v, k->min, k->max, &x))
            return err_set(e, "%s = '%s': expected a number in [%g, %g]", k->key, v, k->min, k->max);
        memcpy(field, &x, sizeof x);
        return 0;
    }
    case K_STR: {
        if (has_control(v))
            return err_set(e, "%s: control characters are not allowed in a text value", k->key);
        int layer_name = !k->section && k->off == L(name);
        size_t cap = k->max > 0 ? (size_t)k->max : CFG_PATH, len = strlen(v);
        if (len >= cap) return err_set(e, "%s: value longer than %zu characters", k->key, cap - 1);
        /* Layer names become tensor names and --set sections (conv1.filters). */
        if (layer_name && strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != len)
            return err_set(e, "name = '%s': a layer name is letters, digits, '_' and '-'", v);
        /* The canonical text must parse back to the same value: the INI
         * reader trims spaces and takes ';' after a space as a comment. */
        if (len && (v[0] == ';' || v[0] == ' ' || v[len - 1] == ' ' || strstr(v, " ;")))
            return err_set(e,
                           "%s = '%s': a text value cannot start with ';' or a space, end with a space, or hold "
                           "' ;' (the INI text could not hold it)",
                           k->key, v);
        memcpy(field, v, strlen(v) + 1);
        return 0;
    }
    case K_ENUM: {
        const char *p = k->values;
        int idx = 0;
        size_t vl = strlen(v);
        while (*p) {
            const char *bar = strchr(p, '|');
            size_t len = bar ? (size_t)(bar - p) : strlen(p);
            if (len == vl && !strncmp(p, v, len)) {
                memcpy(field, &idx, sizeof idx);
                return 0;
            }
            idx++;
            p += len + (bar ? 1 : 0);
        }
        return err_set(e, "%s = '%s': expected one of %s", k->key, v, k->values);
    }
    }
    return -1;
}

static void key_format(const Key *k, const void *base, char *out, size_t n) {
    const char *field = (const char *)base + k->off;
    switch (k->type) {
    case K_INT: {
        long x;
        memcpy(&x, field, sizeof x);
        snprintf(out, n, "%ld", x);
        break;
    }
    case K_INT32: {
        int x;
        memcpy(&x, field, sizeof x);
        snprintf(out, n, "%d", x);
        break;
    }
    case K_DBL: {
        double x;
        memcpy(&x, field, sizeof x);
        snprintf(out, n, "%.17g", x);
        /* Shortest text that parses back to the same double. */
        for (int prec = 1; prec <= 17; prec++) {
            char t[64];
            snprintf(t, sizeof t, "%.*g", prec, x);
            if (strtod(t, NULL) == x) {
                snprintf(out, n, "%s", t);
                break;
            }
        }
        break;
    }
    case K_STR: snprintf(out, n, "%s", field); break;
    case K_ENUM: {
        int x;
        memcpy(&x, field, sizeof x);
        const char *p = k->values;
        for (int i = 0; i < x && p; i++) {
            p = strchr(p, '|');
            if (p) p++;
        }
        size_t len = p ? (strchr(p, '|') ? (size_t)(strchr(p, '|') - p) : strlen(p)) : 0;
        snprintf(out, n, "%.*s", (int)len, p ? p : "");
        break;
    }
    }
}

const char *config_enum_name(const char *section, const char *key, int value) {
    /* A few rotating buffers: several names may appear in one printf. */
    static __thread char bufs[8][64];
    static __thread int next;
    char *buf = bufs[next++ % 8];
    const Key *k = find_key(section, key);
    if (!k || k->type != K_ENUM) return "?";
    const char *p = k->values;
    for (int i = 0; i < value && p; i++) {
        p = strchr(p, '|');
        if (p) p++;
    }
    if (!p) return "?";
    size_t len = strchr(p, '|') ? (size_t)(strchr(p, '|') - p) : strlen(p);
    snprintf(buf, 64, "%.*s", (int)len, p);
    return buf;
}

static void set_defaults(const char *section, void *base) {
    Err e;
    int t = layer_type_of(section);
    for (int i = 0; t >= 0 && i < layer_nkeys(t); i++)
        if (layer_key(t, i)->def) key_set(layer_key(t, i), base, layer_key(t, i)->def, &e);
    for (int i = 0; t < 0 && i < NKEYS; i++)
        if (!strcmp(schema[i].section, section) && schema[i].def) key_set(&schema[i], base, schema[i].def, &e);
}

/* ---- parsing ---------------------------------------------------------- */

typedef struct ParseState {
    Config *c;
    const char *name;    /* file name for messages */
    const char *text;    /* config_parse_text: remaining text */
    FILE *f;
    int line;
    char section[64];    /* current section as written */
    int layer;           /* index of the current layer section, or -1 */
    int failed;
    int has_origin; /* the text names the file it came from */
    Err *e;
    unsigned char seen_single[NKEYS];
    unsigned char seen_section[NSINGLETONS];
    uint64_t seen_layer[MODEL_MAX_LAYERS]; /* bit per key of the layer type (< 64 keys per type) */
} ParseState;

static int fail(ParseState *s, int line, const char *fmt, const char *a, const char *b) {
    if (!s->failed) {
        char msg[2200];
        snprintf(msg, sizeof msg, fmt, a, b);
        err_set(s->e, "%s:%d: %s", s->name, line, msg);
    }
    s->failed = 1;
    return 0;
}

static void begin_section(ParseState *s, const char *name) {
    snprintf(s->section, sizeof s->section, "%s", name);
    s->layer = -1;
    int lt = layer_type_of(name);
    if (lt >= 0) {
        ModelSpec *ms = &s->c->model;
        if (ms->nlayers >= MODEL_MAX_LAYERS) {
            fail(s, s->line, "more than %s layer sections%s", "64", "");
            return;
        }
        LayerCfg *l = &ms->layers[ms->nlayers];
        memset(l, 0, sizeof *l);
        l->type = (LayerType)lt;
        l->sgd_momentum = -1; /* layers without the key (batch norm): [optim] momentum */
        l->line = s->line;
        set_defaults(name, l);
        s->layer = ms->nlayers++;
        s->seen_layer[s->layer] = 0;
        return;
    }
    for (int i = 0; i < NSINGLETONS; i++)
        if (!strcmp(name, singletons[i])) {
            if (s->seen_section[i]) fail(s, s->line, "section [%s] appears twice; merge them%s", name, "");
            s->seen_section[i] = 1;
            return;
        }
    char names[600];
    size_t len = 0;
    for (int i = 0; i < NSINGLETONS; i++) len += snprintf(names + len, sizeof names - len, "%s ", singletons[i]);
    len += snprintf(names + len, sizeof names - len, "and layers");
    for (int t = 0; t < LAYER_NTYPES && len < sizeof names; t++)
        len += snprintf(names + len, sizeof names - len, " %s", layer_def((LayerType)t)->name);
    fail(s, s->line, "unknown section [%s]; sections: %s", name, names);
}

static int parse_long_prefix(const char *p, long *out) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p) return -1;
    *out = v;
    return 0;
}

static int handler(ParseState *s, const char *name, const char *value) {
    if (s->failed) return 0;
    if (!s->section[0]) return fail(s, s->line, "key '%s' before any [section]%s", name, "");
    const char *type = s->layer >= 0 ? layer_def(s->c->model.layers[s->layer].type)->name : s->section;
    const Key *k = find_key(type, name);
    if (!k) {
        char keys[512];
        valid_keys(type, keys, sizeof keys);
        char what[600];
        snprintf(what, sizeof what, "[%s]; valid keys: %s", s->section, keys);
        return fail(s, s->line, "unknown key '%s' in %s", name, what);
    }
    if (s->layer >= 0) {
        int t = s->c->model.layers[s->layer].type, ki = 0;
        while (layer_key(t, ki) != k) ki++;
        uint64_t bit = 1ULL << ki;
        if (s->seen_layer[s->layer] & bit) return fail(s, s->line, "key '%s' set twice in [%s]", name, s->section);
        s->seen_layer[s->layer] |= bit;
    } else {
        int ki = (int)(k - schema);
        if (s->seen_single[ki]) return fail(s, s->line, "key '%s' set twice in [%s]", name, s->section);
        s->seen_single[ki] = 1;
    }
    Err ke;
    void *base = s->layer >= 0 ? (void *)&s->c->model.layers[s->layer] : (void *)s->c;
    if (key_set(k, base, value, &ke)) {
        char where[80];
        snprintf(where, sizeof where, "[%s] ", s->section);
        return fail(s, s->line, "%s%s", where, ke.msg);
    }
    return 1;
}

/* The INI lines, of any length (a path may be long; inih's fixed line
 * buffer split such lines, so a canonical text could not be read back):
 * comments start with ';' or '#', ';' after a space starts an inline
 * comment, a section is [name], a key line is key = value. 0, or 1 with the
 * line malformed (s->line). */
static int ini_lines(ParseState *s) {
    char *buf = NULL;
    size_t cap = 0;
    int bad = 0;
    for (;;) {
        size_t n;
        if (s->f) {
            ssize_t got = getline(&buf, &cap, s->f);
            if (got < 0) break;
            n = (size_t)got;
        } else {
            if (!*s->text) break;
            n = strcspn(s->text, "\n");
            if (n + 1 > cap) buf = xrealloc(buf, cap = n + 1);
            memcpy(buf, s->text, n);
            s->text += n + (s->text[n] == '\n');
        }
        buf[n] = 0;
        s->line++;
        if (s->line == 1 && !strncmp(buf, "\xEF\xBB\xBF", 3)) memmove(buf, buf + 3, strlen(buf + 3) + 1);
        if (!strncmp(buf, ORIGIN_MARK, strlen(ORIGIN_MARK))) {
            size_t len = strcspn(buf + strlen(ORIGIN_MARK), "\r\n");
            snprintf(s->c->path, sizeof s->c->path, "%.*s", (int)MIN(len, CFG_PATH - 1), buf + strlen(ORIGIN_MARK));
            s->has_origin = 1;
        }
        char *p = buf, *q = buf + strlen(buf);
        while (*p && isspace((unsigned char)*p)) p++;
        while (q > p && isspace((unsigned char)q[-1])) *--q = 0;
        if (!*p || *p == ';' || *p == '#') continue;
        if (*p == '[') {
            char *end = strchr(p, ']');
            if (!end) {
                bad = 1;
                break;
            }
            char name[64];
            size_t len = MIN((size_t)(end - p - 1), sizeof name - 1);
            memcpy(name, p + 1, len);
            name[len] = 0;
            begin_section(s, name);
            long origin;
            const char *o = strstr(end, "; line ");
            if (s->has_origin && s->layer >= 0 && o && parse_long_prefix(o + 7, &origin) == 0)
                s->c->model.layers[s->layer].line = (int)origin;
        } else {
            char *eq = strchr(p, '=');
            if (!eq) {
                bad = 1;
                break;
            }
            char *k = eq;
            *eq = 0;
            while (k > p && isspace((unsigned char)k[-1])) *--k = 0;
            char *v = eq + 1;
            while (*v && isspace((unsigned char)*v)) v++;
            for (char *c = v; *c; c++)
                if (*c == ';' && c > v && isspace((unsigned char)c[-1])) {
                    *c = 0;
                    break;
                }
            q = v + strlen(v);
            while (q > v && isspace((unsigned char)q[-1])) *--q = 0;
            handler(s, p, v);
        }
        if (s->failed) break;
    }
    free(buf);
    return bad;
}

/* The defaults of every singleton section, worked out once (they are
 * constants of the schema) and copied into each parse. */
static Config defaults_;
static void defaults_build(void) {
    for (int i = 0; i < NSINGLETONS; i++) set_defaults(singletons[i], &defaults_);
}

static void config_defaults(Config *c) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, defaults_build);
    memcpy(c, &defaults_, sizeof *c);
}

/* 1 if the numeric field of a required key k (no default, min >= 1) is
 * still unset (0). */
static int required_unset(const Key *k, const void *base) {
    const char *field = (const char *)base + k->off;
    if (k->def || k->type == K_STR || k->type == K_ENUM) return 0;
    if (k->type == K_INT) {
        long x;
        memcpy(&x, field, sizeof x);
        return x == 0;
    }
    if (k->type == K_INT32) {
        int x;
        memcpy(&x, field, sizeof x);
        return x == 0;
    }
    double x;
    memcpy(&x, field, sizeof x);
    return x == 0;
}

/* Fills default layer names and checks required keys and unique names. */
static int finish_layers(Config *c, const char *name, Err *e) {
    int counts[LAYER_NTYPES] = {0};
    ModelSpec *ms = &c->model;
    for (int i = 0; i < ms->nlayers; i++) {
        LayerCfg *l = &ms->layers[i];
        const LayerDef *d = layer_def(l->type);
        counts[l->type]++;
        if (!l->name[0]) snprintf(l->name, sizeof l->name, "%s%d", d->name, counts[l->type]);
        for (int k = 0; k < layer_nkeys(l->type); k++)
            if (required_unset(layer_key(l->type, k), l))
                return err_set(e, "%s:%d: [%s] %s needs '%s'", name, l->line, d->name, l->name,
                               layer_key(l->type, k)->key);
        Err le;
        if (d->finish && d->finish(l, &le))
            return err_set(e, "%s:%d: [%s] %s: %s", name, l->line, d->name, l->name, le.msg);
        if (!strcmp(l->name, "head") || !strcmp(l->name, "input"))
            return err_set(e, "%s:%d: layer name '%s' is reserved", name, l->line, l->name);
        for (int j = 0; j < i; j++)
            if (!strcmp(ms->layers[j].name, l->name))
                return err_set(e, "%s:%d: layer name '%s' already used at line %d", name, l->line, l->name,
                               ms->layers[j].line);
    }
    return 0;
}

static int parse_common(Config *c, ParseState *s, Err *e) {
    config_defaults(c);
    s->c = c;
    s->layer = -1;
    s->e = e;
    int bad = ini_lines(s);
    if (s->failed) return one_line(e);
    if (bad) return err_set(e, "%s:%d: malformed line (expected [section] or key = value)", s->name, s->line);
    if (s->f && ferror(s->f)) return err_set(e, "%s: cannot read: %s", s->name, strerror(errno));
    if (c->model.nlayers == 0)
        return err_set(e, "%s: no layer sections: the encoder needs at least one layer", s->name);
    return finish_layers(c, s->name, e);
}

int config_parse_file(Config *c, const char *path, Err *e) {
    FILE *f = fopen(path, "r");
    if (!f) return err_set(e, "%s: cannot open config: %s", path, strerror(errno));
    ParseState *s = xcalloc(1, sizeof *s);
    s->f = f;
    s->name = path;
    int rc = parse_common(c, s, e);
    fclose(f);
    free(s);
    if (rc == 0) snprintf(c->path, sizeof c->path, "%s", path);
    return rc;
}

int config_parse_text(Config *c, const char *text, const char *name, Err *e) {
    ParseState *s = xcalloc(1, sizeof *s);
    s->text = text;
    s->name = name;
    int rc = parse_common(c, s, e);
    if (rc == 0 && !s->has_origin) snprintf(c->path, sizeof c->path, "%s", name);
    free(s);
    return rc;
}

static int set_one(Config *c, const char *assignment, Err *e);

int config_set(Config *c, const char *assignment, Err *e) {
    if (has_control(assignment)) {
        err_set(e, "--set %s: control characters (a newline, a tab, ...) are not allowed", assignment);
        return one_line(e);
    }
    return set_one(c, assignment, e) ? one_line(e) : 0;
}

static int set_one(Config *c, const char *assignment, Err *e) {
    const char *eq = strchr(assignment, '=');
    const char *dot = strchr(assignment, '.');
    if (!eq || !dot || dot > eq)
        return err_set(e, "--set %s: expected section.key=value (e.g. optim.lr=0.01 or conv1.filters=16)",
                       assignment);
    char section[64], key[64];
    size_t sl = (size_t)(dot - assignment), kl = (size_t)(eq - dot - 1);
    if (sl >= sizeof section || kl >= sizeof key) return err_set(e, "--set %s: name too long", assignment);
    memcpy(section, assignment, sl);
    section[sl] = 0;
    memcpy(key, dot + 1, kl);
    key[kl] = 0;
    const char *value = eq + 1;
    Err ke;
    if (is_singleton(section)) {
        const Key *k = find_key(section, key);
        if (!k) {
            char keys[512];
            valid_keys(section, keys, sizeof keys);
            return err_set(e, "--set %s: unknown key '%s' in [%s]; valid keys: %s", assignment, key, section, keys);
        }
        if (key_set(k, c, value, &ke)) return err_set(e, "--set %s: %s", assignment, ke.msg);
        return 0;
    }
    for (int i = 0; i < c->model.nlayers; i++) {
        LayerCfg *l = &c->model.layers[i];
        if (strcmp(l->name, section)) continue;
        const LayerDef *d = layer_def(l->type);
        const Key *k = find_key(d->name, key);
        if (!k || !strcmp(key, "name"))
            return err_set(e, "--set %s: layer '%s' (%s) has no settable key '%s'", assignment, section, d->name,
                           key);
        if (key_set(k, l, value, &ke)) return err_set(e, "--set %s: %s", assignment, ke.msg);
        if (d->finish && d->finish(l, &ke)) return err_set(e, "--set %s: %s", assignment, ke.msg);
        return 0;
    }
    return err_set(e, "--set %s: no section or layer named '%s'", assignment, section);
}

int config_validate(const Config *c, Err *e) {
    const char *n = c->path;
    int halves = 0; /* a two-image model may score pairs itself */
    for (int i = 0; i < c->model.nlayers; i++) halves |= strchr(c->model.layers[i].input, '@') != NULL;
    if (c->loss.type == LOSS_BCE && c->model.koch_head != HEAD_KOCH && !halves)
        return err_set(e, "%s: [loss] type = bce needs [head] type = koch, or a two-image model that scores each "
                          "pair (docs/graph.md)", n);
    if (c->model.koch_head == HEAD_KOCH && c->loss.type != LOSS_BCE)
        return err_set(e, "%s: [head] type = koch goes with [loss] type = bce", n);
    /* A layer's own momentum needs the momentum buffer plain SGD does not keep. */
    const OptimSpec *o = &c->optim;
    if (o->type == OPTIM_SGD && optim_state_floats(o, 1) == 0) {
        for (int i = 0; i < c->model.nlayers; i++)
            if (c->model.layers[i].sgd_momentum > 0)
                return err_set(e, "%s:%d: [%s] momentum = %g, but [optim] momentum = 0 keeps no momentum buffer; "
                                  "set [optim] momentum (the default of the other layers)",
                               n, c->model.layers[i].line, c->model.layers[i].name, c->model.layers[i].sgd_momentum);
        if (c->model.koch_head && c->model.head_momentum > 0)
            return err_set(e, "%s: [head] momentum = %g, but [optim] momentum = 0 keeps no momentum buffer", n,
                           c->model.head_momentum);
    }
    if (c->loss.type == LOSS_MASK && augment_enabled(&c->augment))
        return err_set(e,
                       "%s: [augment] distorts the images but not their masks: turn it off for [loss] type = "
                       "mask",
                       n);
    if (c->loss.edge_weight > 0 &&
        (c->loss.type != LOSS_MASK || (c->loss.mask != MASK_BCE && c->loss.mask != MASK_BCE_DICE)))
        return err_set(e,
                       "%s: [loss] edge_weight = %g weights the BCE of mask outlines: it needs [loss] type = mask "
                       "with mask = bce or bce_dice (or set edge_weight = 0)",
                       n, c->loss.edge_weight);
    if (c->loss.type == LOSS_MASK && c->sampler.mode != SAMPLER_COSEG && c->sampler.mode != SAMPLER_PAIRS)
        return err_set(e, "%s: [loss] type = mask trains on the masks of pairs: set [sampler] mode = coseg (or "
                          "pairs)", n);
    if (c->mining.exchange != EXCHANGE_FP32 && (c->sampler.mode != SAMPLER_PK || c->mining.scope != SCOPE_GLOBAL))
        return err_set(e, "%s: [mining] exchange = %s rounds the embeddings of global mining: it needs [sampler] "
                          "mode = pk and [mining] scope = global (or set exchange = fp32)",
                       n, c->mining.exchange == EXCHANGE_BF16 ? "bf16" : "fp16");
    if (c->mining.pool == POOL_CLASSES && (c->sampler.mode != SAMPLER_PK || c->mining.scope != SCOPE_GLOBAL))
        return err_set(e, "%s: [mining] pool = classes picks classes of a pk batch: it needs [sampler] mode = pk and "
                          "[mining] scope = global (or set pool = exact)", n);
    if (c->mining.pool == POOL_CLASSES && c->mining.exchange != EXCHANGE_FP32)
        return err_set(e, "%s: [mining] pool = classes exchanges fp32 rows: set [mining] exchange = fp32", n);
    if (c->sampler.groups && (c->sampler.mode != SAMPLER_PK || c->sampler.p % c->sampler.groups))
        return err_set(e, "%s: [sampler] groups = %d needs mode = pk and p (%d) a multiple of it", n,
                       c->sampler.groups, c->sampler.p);
    if (c->sampler.mode == SAMPLER_PK) {
        MiningStrategy m = c->mining.strategy;
        if (m == MINE_MULTI_SIMILARITY && c->loss.type != LOSS_MULTI_SIMILARITY)
            return err_set(e, "%s: [mining] strategy = multi_similarity goes with [loss] type = multi_similarity", n);
        if (c->loss.type == LOSS_TRIPLET && m != MINE_BATCH_ALL && m != MINE_BATCH_HARD && m != MINE_SEMI_HARD)
            return err_set(e, "%s: triplet loss on pk batches needs [mining] strategy = batch_all, batch_hard "
                              "or semi_hard", n);
        if (c->loss.type == LOSS_CONTRASTIVE && m != MINE_HARD_PAIRS && m != MINE_NONE)
            return err_set(e, "%s: contrastive loss on pk batches needs [mining] strategy = hard_pairs or none "
                              "(all pairs)", n);
        if (c->loss.type == LOSS_BCE && m != MINE_HARD_PAIRS)
            return err_set(e, "%s: bce loss on pk batches needs [mining] strategy = hard_pairs (or use [sampler] "
                              "mode = pairs)", n);
        if (c->loss.type == LOSS_INFONCE && m != MINE_NONE)
            return err_set(e, "%s: infonce loss takes every pair of the batch: set [mining] strategy = none", n);
        if (c->loss.type == LOSS_MULTI_SIMILARITY && m != MINE_MULTI_SIMILARITY && m != MINE_NONE)
            return err_set(e, "%s: multi_similarity loss needs [mining] strategy = multi_similarity (its pair "
                              "mining) or none (every pair)", n);
        if (c->sampler.k < 2)
            return err_set(e, "%s: [sampler] k = %d: pk batches need k >= 2 for positives", n, c->sampler.k);
    } else if (c->loss.type == LOSS_INFONCE || c->loss.type == LOSS_MULTI_SIMILARITY) {
        return err_set(e, "%s: [loss] type = %s needs [sampler] mode = pk (it mines the global batch)", n,
                       c->loss.type == LOSS_INFONCE ? "infonce" : "multi_similarity");
    } else if (c->sampler.mode == SAMPLER_PAIRS || c->sampler.mode == SAMPLER_COSEG) {
        if (c->loss.type == LOSS_TRIPLET)
            return err_set(e, "%s: [sampler] mode = %s goes with loss contrastive, bce or mask, not triplet", n,
                           c->sampler.mode == SAMPLER_PAIRS ? "pairs" : "coseg");
    } else if (c->loss.type != LOSS_TRIPLET) {
        return err_set(e, "%s: [sampler] mode = triplets goes with [loss] type = triplet", n);
    }
    if (c->augment.scale_min > c->augment.scale_max)
        return err_set(e, "%s: [augment] scale_min = %g is above scale_max = %g; swap them", n, c->augment.scale_min,
                       c->augment.scale_max);
    if (c->eval_data[0] && (c->eval_metric == VAL_NWAY || c->eval_metric == VAL_GROUP_NWAY) && c->eval_trials < 1)
        return err_set(e, "%s: [eval] metric = %s needs [eval] trials > 0", n,
                       config_enum_name("eval", "metric", c->eval_metric));
    if (!c->data_train[0]) return err_set(e, "%s: [data] train is not set: point it at a dataset made by siamese import", n);
    float v[NORM_MAX_CHANNELS];
    if (norm_parse_list(c->data_mean, 0, 1, v) < 0)
        return err_set(e, "%s: [data] mean = '%s': expected 0, a number in 0..1, or up to %d comma-separated", n,
                       c->data_mean, NORM_MAX_CHANNELS);
    if (norm_parse_list(c->data_std, 0, 10, v) < 0)
        return err_set(e, "%s: [data] std = '%s': expected 0, a number in 0..10, or up to %d comma-separated", n,
                       c->data_std, NORM_MAX_CHANNELS);
    return 0;
}

char *config_to_text(const Config *c) {
    size_t cap = 1 << 16, len = 0;
    char *out = xmalloc(cap);
    char val[CFG_PATH + 32];
#define EMIT(...) len += snprintf(out + len, cap - len, __VA_ARGS__)
    /* Origin comments keep error messages pointing at the user's file and
     * line after the text has been broadcast or stored in a checkpoint. */
    EMIT("%s%s\n", ORIGIN_MARK, c->path);
    for (int s = 0; s < NSINGLETONS; s++) {
        EMIT("[%s]\n", singletons[s]);
        for (int i = 0; i < NKEYS; i++)
            if (!strcmp(schema[i].section, singletons[s])) {
                key_format(&schema[i], c, val, sizeof val);
                EMIT("%s = %s\n", schema[i].key, val);
            }
        EMIT("\n");
        if (!strcmp(singletons[s], LAYERS_AFTER))
            for (int l = 0; l < c->model.nlayers; l++) {
                const LayerCfg *lc = &c->model.layers[l];
                EMIT("[%s] ; line %d\n", layer_def(lc->type)->name, lc->line);
                for (int i = 0; i < layer_nkeys(lc->type); i++) {
                    key_format(layer_key(lc->type, i), lc, val, sizeof val);
                    EMIT("%s = %s\n", layer_key(lc->type, i)->key, val);
                }
                EMIT("\n");
            }
    }
#undef EMIT
    ASSERT(len < cap - 1);
    return out;
}

int config_same_topology(const Config *a, const Config *b, Err *e) {
    char diff[900] = "";
    size_t len = 0;
    char va[CFG_PATH + 32], vb[CFG_PATH + 32];
#define DIFF(...) len += snprintf(diff + len, len < sizeof diff ? sizeof diff - len : 0, __VA_ARGS__)
    const ModelSpec *ma = &a->model, *mb = &b->model;
    if (ma->nlayers != mb->nlayers) DIFF("%d layers vs %d; ", ma->nlayers, mb->nlayers);
    for (int l = 0; l < MIN(ma->nlayers, mb->nlayers); l++) {
        const LayerCfg *x = &ma->layers[l], *y = &mb->layers[l];
        if (x->type != y->type) {
            DIFF("layer %d: %s vs %s; ", l + 1, layer_def(x->type)->name, layer_def(y->type)->name);
            continue;
        }
        for (int i = 0; i < layer_nkeys(x->type); i++) {
            const Key *k = layer_key(x->type, i);
            if (k->type == K_DBL) continue;
            key_format(k, x, va, sizeof va);
            key_format(k, y, vb, sizeof vb);
            if (strcmp(va, vb)) DIFF("%s.%s: %s vs %s; ", x->name, k->key, va, vb);
        }
    }
    static const char *const topo[][2] = {{"head", "type"},  {"loss", "type"},   {"sampler", "mode"},
                                          {"loss", "input"}, {"model", "embedding"}};
    for (size_t t = 0; t < sizeof topo / sizeof topo[0]; t++) {
        const Key *k = find_key(topo[t][0], topo[t][1]);
        key_format(k, a, va, sizeof va);
        key_format(k, b, vb, sizeof vb);
        if (strcmp(va, vb)) DIFF("%s.%s: %s vs %s; ", topo[t][0], topo[t][1], va, vb);
    }
#undef DIFF
    if (!len) return 0;
    if (len >= 2 && len < sizeof diff) diff[len - 2] = 0;
    return err_set(e, "%s", diff);
}

static void print_key(FILE *out, const char *section, const Key *k) {
    char range[128] = "";
    if (k->type == K_ENUM) snprintf(range, sizeof range, "%s", k->values);
    else if (k->type == K_INT || k->type == K_INT32) snprintf(range, sizeof range, "%.0f .. %.0f", k->min, k->max);
    else if (k->type == K_DBL) snprintf(range, sizeof range, "%g .. %g", k->min, k->max);
    static const char *const tn[] = {"int", "number", "text", "choice", "int"};
    fprintf(out, "| [%s] | %s | %s | %s | %s | %s |\n", section, k->key, tn[k->type], range,
            k->def ? (k->def[0] ? k->def : "(empty)") : "required", k->doc);
}

void config_print_schema(FILE *out) {
    fprintf(out, "| section | key | type | range / values | default | meaning |\n");
    fprintf(out, "| --- | --- | --- | --- | --- | --- |\n");
    for (int i = 0; i < NKEYS; i++) {
        print_key(out, schema[i].section, &schema[i]);
        if (strcmp(schema[i].section, LAYERS_AFTER) || (i + 1 < NKEYS && !strcmp(schema[i + 1].section, LAYERS_AFTER)))
            continue;
        /* The layer sections: the keys they all have, then each type. */
        for (int k = 0; k < layer_common_nkeys; k++) print_key(out, "any layer", &layer_common_keys[k]);
        for (int t = 0; t < LAYER_NTYPES; t++) {
            const LayerDef *d = layer_def((LayerType)t);
            fprintf(out, "| [%s] | | layer | | | %s |\n", d->name, d->doc);
            for (int k = 0; k < d->nkeys; k++) print_key(out, d->name, &d->keys[k]);
        }
    }
}
