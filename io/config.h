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

#include "../mining/mining.h"
#include "../nn/layer_spec.h"
#include "../nn/optim.h"
#include "../nn/util.h"
#include "augment.h"
#include "sampler.h"

#define CFG_PATH 512

/* The enums of sections whose struct belongs to another module are that
 * module's (SamplerMode, LossType, MiningStrategy, MiningScope, OptimType,
 * OptimSchedule, INIT_*); these two are the config's own. */
enum { HEAD_NONE, HEAD_KOCH };
enum { ONERR_STOP, ONERR_WARN };
/* [eval] metric: what validation during training ranks weights by (higher = better). */
enum { VAL_RECALL1, VAL_MAP_R, VAL_NWAY, VAL_GROUP_NWAY, VAL_NMETRICS };

typedef struct Config {
    char path[CFG_PATH];  /* file it came from, for messages */
    /* [run] */
    char run_dir[CFG_PATH];
    long seed;
    double max_memory; /* GB per rank; 0 = from the machine (dist/mem_limit.h) */
    long threads; /* 0: automatic (nn/parallel.h parallel_choose_threads) */
    /* [data] */
    char data_train[CFG_PATH], data_test[CFG_PATH];
    char data_shape[CFG_PATH]; /* "CxHxW" or empty */
    char data_mean[CFG_PATH], data_std[CFG_PATH]; /* "0" (the training set's), "v" or "v1,v2,v3" (io/norm.h) */
    /* Each section that configures one module fills that module's own
     * struct, which the module takes as it is. */
    SamplerSpec sampler; /* [sampler] (its seed is [run] seed) */
    AugmentSpec augment; /* [augment] */
    ModelSpec model;     /* layer sections, [model], [head], [loss] input */
    LossSpec loss;       /* [loss] */
    MiningSpec mining;   /* [mining] */
    OptimSpec optim;     /* [optim] */
    /* [init] */
    int init_scheme;
    char init_from[CFG_PATH]; /* [init] from: layers of the same names copied from it; empty: none */
    /* [train] */
    long epochs, steps, log_every, eval_at_end, report;
    /* [checkpoint] */
    long ckpt_every, ckpt_keep;
    int ckpt_on_error;
    /* [dist] */
    long bucket_kfloats, checksum_every;
    double dist_timeout; /* seconds; 0 = no watchdog */
    /* [eval] */
    long eval_pairs, eval_train_pairs, eval_nway, eval_kshot, eval_trials;
    char eval_data[CFG_PATH]; /* validation during training: dataset, or empty */
    long eval_every;
    int eval_metric, eval_drawings;
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
