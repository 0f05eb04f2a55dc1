/* layer_table: the registry (nn/layer.h): the keys every layer section
 * has, the table of rows in LayerType order (built from LAYER_LIST, so it
 * covers every type by construction; the rows are in nn/layers_*.c), and
 * the lookups. */
#include <string.h>

#include "layers.h"

const ConfigKey layer_common_keys[] = {
    {NULL, "name", K_STR, L(name), 0, LAYER_NAME_MAX, "", NULL,
     "layer name (tensor names: NAME.weight, NAME.bias); default: type + index"},
    {NULL, "input", K_STR, L(input), 0, LAYER_INPUT_MAX, "", NULL,
     "the nodes it reads: NODE, or NODE@a / NODE@b (a half of a two-image model), several separated by "
     "commas; "
     "'input' is the model input; empty: the layer above (docs/graph.md)"},
};
const int layer_common_nkeys = (int)(sizeof layer_common_keys / sizeof layer_common_keys[0]);

static const LayerDef *const table[] = {
#define X(U, l) [LAYER_##U] = &layer_##l,
    LAYER_LIST(X)
#undef X
};
_Static_assert(sizeof table / sizeof table[0] == LAYER_NTYPES, "the layer table has one row per LayerType");

const LayerDef *layer_def(LayerType t) {
    ASSERT((int)t >= 0 && t < LAYER_NTYPES);
    return table[t];
}

int layer_type_by_name(const char *name) {
    for (int t = 0; t < LAYER_NTYPES; t++)
        if (!strcmp(table[t]->name, name)) return t;
    return -1;
}

void layers_weight_bias(Model *m, ModelLayer *L, int ndim, const int *wshape, int nbias, double fan_in) {
    L->w_off = model_add_param(m, L, "weight", ndim, wshape,
                               ndim == 4 ? VIEW_INIT_WEIGHT_CONV : VIEW_INIT_WEIGHT_DENSE, fan_in, L->cfg.l2);
    L->nw = m->views[m->nviews - 1].count;
    int bs[1] = {nbias};
    L->b_off = model_add_param(m, L, "bias", 1, bs, VIEW_INIT_BIAS, fan_in, 0);
    L->nb = (size_t)nbias;
}

int layers_same_shape(Model *m, ModelLayer *L, Err *e) {
    (void)m, (void)e;
    L->oc = L->c, L->oh = L->h, L->ow = L->w, L->flat = L->in_flat;
    return 0;
}
