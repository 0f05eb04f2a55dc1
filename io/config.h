/* config: the INI experiment file. One schema table (section, key, type,
 * bounds, default) drives parsing, --set overrides, validation and the
 * canonical text that rank 0 broadcasts and checkpoints store. Singleton
 * sections ([run], [optim], ...) and one section per layer, in order, whose
 * keys the layer registry (nn/layer.h) declares.
 * Errors name the file and line. Knows nothing of models or MPI. */
#ifndef SIAMESE_CONFIG_H
#define SIAMESE_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "../nn/layer_spec.h"
#include "../nn/util.h"

#define CFG_PATH 512

enum { SAMPLER_MODE_PK, SAMPLER_MODE_PAIRS, SAMPLER_MODE_TRIPLETS };
enum { HEAD_NONE, HEAD_KOCH };
enum { LOSS_TRIPLET, LOSS_CONTRASTIVE, LOSS_BCE };
enum { MINE_BATCH_HARD, MINE_SEMI_HARD, MINE_BATCH_ALL, MINE_HARD_PAIRS, MINE_NONE };
enum { SCOPE_GLOBAL, SCOPE_LOCAL };
enum { OPT_SGD, OPT_ADAM, OPT_ADAMW }; /* same order as nn/optim.h OptimType */
enum { SCHED_CONSTANT, SCHED_STEP, SCHED_EXP, SCHED_COSINE };
enum { ONERR_STOP, ONERR_WARN };

typedef struct Config {
    char path[CFG_PATH];  /* file it came from, for messages */
    /* [run] */
    char run_dir[CFG_PATH];
    long seed;
    /* [data] */
    char data_train[CFG_PATH], data_test[CFG_PATH];
    char data_shape[CFG_PATH]; /* "CxHxW" or empty */
    double data_mean, data_std; /* 0: take the training set's meta */
    /* [sampler] */
    int sampler_mode;
    long p, k, batch;
    /* layer sections and [head] */
    ModelSpec model;
    /* [loss] */
    int loss_type;
    double margin;
    long soft;
    /* [mining] */
    int mining_strategy, mining_scope;
    /* [optim] */
    int optim_type;
    double lr, momentum, weight_decay, beta1, beta2, eps;
    long nesterov;
    int schedule;
    double gamma, min_lr, clip_norm;
    long step_epochs, warmup_steps;
    /* [init] */
    int init_scheme;
    /* [train] */
    long epochs, steps, log_every, eval_at_end;
    /* [checkpoint] */
    long ckpt_every, ckpt_keep;
    int ckpt_on_error;
    /* [dist] */
    long bucket_kfloats, checksum_every;
    /* [eval] */
    long eval_pairs, eval_train_pairs, eval_nway, eval_kshot, eval_trials;
} Config;

/* Parses a file (or, config_parse_text, a string such as the canonical text
 * of a checkpoint; `name` is used in messages). Unknown sections or keys,
 * malformed or out-of-range values: -1 with "FILE:LINE: ..." in e. */
int config_parse_file(Config *c, const char *path, Err *e);
int config_parse_text(Config *c, const char *text, const char *name, Err *e);

/* Applies one "section.key=value" (section may be a layer name, e.g.
 * "conv1.filters=16"). -1 with the override named in e. */
int config_set(Config *c, const char *assignment, Err *e);

/* Cross-checks between sections (loss vs head vs mining vs sampler). */
int config_validate(const Config *c, Err *e);

/* Canonical text: every key of every section with its effective value, in
 * schema order. Parsing it gives back the same Config. Caller frees. */
char *config_to_text(const Config *c);

/* 1 if name is a layer section type (conv2d, relu, ...). */
int config_is_layer_section(const char *name);

/* Names of the enum values, for messages and progress output. */
const char *config_enum_name(const char *section, const char *key, int value);

/* Compares the keys that define the model topology and the data shape
 * (layers, head, loss type); writes the differing keys into e as
 * "conv1.filters: 32 vs 16, ..." and returns -1 if any differ. */
int config_same_topology(const Config *a, const Config *b, Err *e);

/* Prints the schema (sections, keys, types, ranges, defaults) as a
 * Markdown table: docs/config.md's config reference is generated from it. */
void config_print_schema(FILE *out);

#endif
