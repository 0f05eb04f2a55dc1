/* pairgen: see pairgen.h. Draws use positions in the samples grouped by
 * class (a counting sort of the ids), so "another sample of the same class"
 * and "a sample of another class" are single draws, no rejection loops. */
#include "pairgen.h"

#include <stdlib.h>

typedef struct Groups {
    uint32_t *ids;  /* count ids grouped by label, ascending within */
    uint64_t *off;  /* classes + 1 */
    uint64_t *elig; /* positions (into ids) of samples in classes of >= 2 */
    uint64_t nelig;
    const int32_t *labels;
    uint64_t count;
} Groups;

static void groups_free(Groups *g) {
    free(g->ids);
    free(g->off);
    free(g->elig);
}

static int groups_build(Groups *g, const int32_t *labels, uint64_t count, uint32_t classes, Err *e) {
    g->labels = labels;
    g->count = count;
    g->off = xcalloc((size_t)classes + 1, sizeof(uint64_t));
    g->ids = xmalloc(sizeof(uint32_t) * (count ? count : 1));
    g->elig = xmalloc(sizeof(uint64_t) * (count ? count : 1));
    g->nelig = 0;
    for (uint64_t i = 0; i < count; i++) {
        if (labels[i] < 0 || (uint32_t)labels[i] >= classes) {
            groups_free(g);
            return err_set(e, "sample %llu: label %d out of range (classes %u)", (unsigned long long)i,
                           labels[i], classes);
        }
        g->off[labels[i] + 1]++;
    }
    uint32_t nonempty = 0;
    for (uint32_t c = 0; c < classes; c++) {
        nonempty += g->off[c + 1] > 0;
        g->off[c + 1] += g->off[c];
    }
    uint64_t *fill = xcalloc((size_t)classes, sizeof(uint64_t));
    for (uint64_t i = 0; i < count; i++) g->ids[g->off[labels[i]] + fill[labels[i]]++] = (uint32_t)i;
    free(fill);
    for (uint32_t c = 0; c < classes; c++)
        if (g->off[c + 1] - g->off[c] >= 2)
            for (uint64_t p = g->off[c]; p < g->off[c + 1]; p++) g->elig[g->nelig++] = p;
    if (g->nelig == 0) {
        groups_free(g);
        return err_set(e, "no class has 2 or more samples: positive pairs are impossible");
    }
    if (nonempty < 2) {
        groups_free(g);
        return err_set(e, "all samples share one class: negative pairs are impossible");
    }
    return 0;
}

/* A same-class pair: (anchor, positive), anchor != positive. */
static void draw_same(const Groups *g, Rng *r, uint32_t *a, uint32_t *p) {
    uint64_t pa = g->elig[rng_below(r, g->nelig)];
    int32_t c = g->labels[g->ids[pa]];
    uint64_t lo = g->off[c], n = g->off[c + 1] - lo;
    uint64_t pp = lo + rng_below(r, n - 1);
    if (pp >= pa) pp++; /* skip the anchor itself */
    *a = g->ids[pa];
    *p = g->ids[pp];
}

/* A sample uniformly among those whose label is not c. */
static uint32_t draw_other(const Groups *g, Rng *r, int32_t c) {
    uint64_t lo = g->off[c], n = g->off[c + 1] - lo;
    uint64_t q = rng_below(r, g->count - n);
    if (q >= lo) q += n; /* skip class c's range */
    return g->ids[q];
}

int pairgen_pairs(uint32_t *a, uint32_t *b, uint8_t *same, uint64_t n, const int32_t *labels, uint64_t count,
                  uint32_t classes, uint64_t seed, Err *e) {
    Groups g;
    if (groups_build(&g, labels, count, classes, e)) return -1;
    Rng r;
    rng_seed(&r, seed, RNG_PAIRS, 0);
    for (uint64_t i = 0; i < n; i++) {
        if (i % 2 == 0) {
            draw_same(&g, &r, &a[i], &b[i]);
            same[i] = 1;
        } else {
            uint32_t x = (uint32_t)rng_below(&r, count);
            a[i] = x;
            b[i] = draw_other(&g, &r, labels[x]);
            same[i] = 0;
        }
    }
    groups_free(&g);
    return 0;
}

int pairgen_triplets(uint32_t *t, uint64_t n, const int32_t *labels, uint64_t count, uint32_t classes,
                     uint64_t seed, Err *e) {
    Groups g;
    if (groups_build(&g, labels, count, classes, e)) return -1;
    Rng r;
    rng_seed(&r, seed, RNG_PAIRS, 1);
    for (uint64_t i = 0; i < n; i++) {
        draw_same(&g, &r, &t[3 * i], &t[3 * i + 1]);
        t[3 * i + 2] = draw_other(&g, &r, labels[t[3 * i]]);
    }
    groups_free(&g);
    return 0;
}
