/* Tests of the layer registry (nn/layer.h): every LayerType has a complete
 * row with a unique name that finds it again; every key of every row is in
 * `siamese train --schema`, gets its default, and round-trips through the
 * canonical text; a section of every type builds; and the storage plan of
 * configs/tiny.ini (what runs in place, what aliases, what each node keeps)
 * and its memory figures equal the ones worked out by hand. */
#include <stdlib.h>
#include <string.h>

#include "../io/config.h"
#include "../nn/layer.h"
#include "test.h"

static void test_rows(void) {
    for (int t = 0; t < LAYER_NTYPES; t++) {
        const LayerDef *d = layer_def((LayerType)t);
        CHECK(d->name && d->doc && d->build && d->forward && d->backward, "row %d is complete", t);
        CHECK(layer_type_by_name(d->name) == t, "%s: found by its name", d->name);
        CHECK(d->min_inputs >= 1 && d->max_inputs >= d->min_inputs && d->max_inputs <= LAYER_MAX_INPUTS,
              "%s: inputs %d..%d", d->name, d->min_inputs, d->max_inputs);
        for (int k = 0; k < d->nkeys; k++)
            CHECK(d->keys[k].section && !strcmp(d->keys[k].section, d->name), "%s: key %s names its section",
                  d->name, d->keys[k].key);
    }
    CHECK(layer_type_by_name("bogus") == -1 && layer_type_by_name("input") == -1,
          "unknown names are not layers");
}

static void test_schema(void) {
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    config_print_schema(f);
    fclose(f);
    for (int t = 0; t < LAYER_NTYPES; t++) {
        const LayerDef *d = layer_def((LayerType)t);
        char want[128];
        snprintf(want, sizeof want, "| [%s] | | layer | | | %s |", d->name, d->doc);
        CHECK(strstr(text, want) != NULL, "schema documents [%s]", d->name);
        for (int k = 0; k < d->nkeys; k++) {
            snprintf(want, sizeof want, "| [%s] | %s |", d->name, d->keys[k].key);
            CHECK(strstr(text, want) != NULL, "schema lists %s.%s", d->name, d->keys[k].key);
        }
    }
    for (int k = 0; k < layer_common_nkeys; k++) {
        char want[128];
        snprintf(want, sizeof want, "| [any layer] | %s |", layer_common_keys[k].key);
        CHECK(strstr(text, want) != NULL, "schema lists the common key %s", layer_common_keys[k].key);
    }
    free(text);
}

/* One section of every type, each with its required keys, parsed and
 * printed back: every key appears with its default. */
static void test_sections(void) {
    char cfg[8192];
    size_t len = snprintf(cfg, sizeof cfg, "[data]\ntrain = x\n");
    for (int t = 0; t < LAYER_NTYPES; t++) {
        const LayerDef *d = layer_def((LayerType)t);
        len += snprintf(cfg + len, sizeof cfg - len, "[%s]\n", d->name);
        for (int k = 0; k < d->nkeys; k++)
            if (!d->keys[k].def) len += snprintf(cfg + len, sizeof cfg - len, "%s = 2\n", d->keys[k].key);
    }
    Config c;
    Err e;
    CHECK(config_parse_text(&c, cfg, "all.ini", &e) == 0, "a section of every type parses: %s", e.msg);
    CHECK(c.model.nlayers == LAYER_NTYPES, "%d sections", c.model.nlayers);
    char *text = config_to_text(&c);
    for (int t = 0; t < LAYER_NTYPES; t++) {
        const LayerDef *d = layer_def((LayerType)t);
        char sec[64];
        snprintf(sec, sizeof sec, "[%s] ; line", d->name);
        const char *p = strstr(text, sec);
        CHECK(p != NULL, "canonical text has [%s]", d->name);
        /* The value is the default, unless the row's finish derives it. */
        for (int k = 0; p && k < d->nkeys; k++) {
            char kv[96];
            snprintf(kv, sizeof kv, "\n%s = %s\n", d->keys[k].key,
                     d->finish        ? ""
                     : d->keys[k].def ? d->keys[k].def
                                      : "2");
            if (d->finish) kv[strlen(kv) - 1] = 0;
            const char *q = strstr(p, kv), *next = strstr(p + 1, "\n[");
            CHECK(q && (!next || q < next), "%s: '%s' in the canonical text", d->name, kv + 1);
        }
    }
    Config back;
    CHECK(config_parse_text(&back, text, "canon", &e) == 0, "canonical text parses: %s", e.msg);
    char *again = config_to_text(&back);
    CHECK(!strcmp(text, again), "canonical text is a fixed point");
    free(text);
    free(again);
}

/* configs/tiny.ini on 1x12x12: conv1 (4 filters, not fused: 4 % 16 != 0),
 * relu in place over it, maxpool (its own output and int32 argmax),
 * flatten a view of it, fc1, l2norm (a norm per row). */
static void test_plan(void) {
    Config c;
    Err e;
    CHECK(config_parse_file(&c, "configs/tiny.ini", &e) == 0, "tiny: %s", e.msg);
    Model m;
    int B = 5;
    CHECK(model_plan(&m, &c.model, c.path, 1, 12, 12, B, &e) == 0, "plan: %s", e.msg);
    const char *names[6] = {"conv1", "relu1", "maxpool1", "flatten1", "fc1", "l2norm1"};
    int alias[6] = {0, 0, 2, 2, 4, 5};
    size_t act[6] = {400, 0, 100, 0, 16, 16}, state[6] = {0, 0, 400, 0, 0, 4};
    for (int i = 0; i < 6; i++) {
        const ModelLayer *L = &m.layers[i];
        ModelMemory mm;
        model_layer_memory(&m, i, &mm);
        CHECK(!strcmp(L->name, names[i]) && L->alias == alias[i], "%s: storage of node %d (alias %d)",
              names[i], i, L->alias);
        CHECK(mm.activations == act[i] * B * sizeof(float) && mm.state == state[i] * B,
              "%s: %zu activation and %zu state bytes", names[i], mm.activations, mm.state);
    }
    ModelMemory mm;
    model_layer_memory(&m, 0, &mm);
    CHECK(mm.params == 2 * (36 + 4) * sizeof(float), "conv1: parameters and gradients %zu bytes", mm.params);
    model_layer_memory(&m, 4, &mm);
    CHECK(mm.params == 2 * (16 * 100 + 16) * sizeof(float), "fc1: %zu bytes", mm.params);
    /* Backward: two ping-pong gradient buffers, the largest the maxpool
     * input gradient (400 floats per row) and the fc1 one (100). */
    CHECK(m.ngpool == 2, "%d pooled gradient buffers", m.ngpool);
    model_free(&m);
}

int main(void) {
    test_rows();
    test_schema();
    test_sections();
    test_plan();
    return test_finish();
}
