/* fuzz_ckpt: a training checkpoint through the reader with the training
 * bounds (ckpt_read), the tolerant reader of `siamese inspect` (ckpt_print)
 * and the checks eval, embed and export run before building a model
 * (train_ckpt_check: config, topology, state, the config's model inferred
 * without allocating, parameters). Input: a mode byte, then either (even)
 * the checkpoint file's bytes, or (odd) its sections as NAME NUL, a 4-byte
 * little-endian length and that many raw bytes, repeated, which the harness
 * writes as a valid file first (so mutations reach the content behind the
 * CRCs). Properties: what ckpt_read accepts ckpt_print accepts; an accepted
 * training checkpoint has its params section the size of its topology, all
 * finite, and a sane state. */
#include <math.h>

#include "../dist/ckpt_check.h"
#include "fuzz.h"

/* Writes the sections encoded in d (see above) as a checkpoint at path. */
static void write_sections(const char *path, const uint8_t *d, size_t n) {
    CkptWriter *w = ckpt_writer_new();
    char names[64][CKPT_NAME_MAX + 1];
    int k = 0;
    while (n > 0 && k < 64) {
        const uint8_t *nul = memchr(d, 0, MIN(n, (size_t)CKPT_NAME_MAX + 1));
        if (!nul || nul == d || n - (size_t)(nul - d) < 5) break;
        size_t nl = (size_t)(nul - d);
        memcpy(names[k], d, nl);
        names[k][nl] = 0;
        int ok = 1;
        for (size_t i = 0; i < nl; i++) ok &= names[k][i] >= 0x20 && names[k][i] <= 0x7e;
        for (int j = 0; j < k; j++) ok &= strcmp(names[j], names[k]) != 0;
        const uint8_t *p = nul + 1;
        size_t len = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 | (size_t)p[3] << 24;
        p += 4;
        size_t left = n - (size_t)(p - d);
        if (len > left) len = left;
        if (!ok) break;
        if ((!strcmp(names[k], "params") || !strcmp(names[k], "optim")) && len % 4 == 0)
            ckpt_add_f32(w, names[k], (const float *)(uintptr_t)p, len / 4); /* the writer only reads it */
        else
            ckpt_add(w, names[k], p, len);
        k++;
        n = left - len;
        d = p + len;
    }
    Err e;
    if (ckpt_write(w, path, &e)) FATAL("%s", e.msg);
    ckpt_writer_free(w);
}

static char built[64]; /* the checkpoint written from sections, removed at exit */
static void remove_built(void) { unlink(built); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static FILE *devnull;
    if (!devnull) {
        devnull = fopen("/dev/null", "w");
        snprintf(built, sizeof built, "/dev/shm/fuzz-ckpt-%d.smpi", (int)getpid());
        atexit(remove_built);
    }
    if (size < 1) return 0;
    static FuzzFile f;
    const char *path = built;
    int given = !(data[0] & 1); /* the file's bytes as they are */
    if (!given) {
        /* ckpt_add_f32 reads floats: give it an aligned copy */
        uint8_t *copy = xmalloc(size);
        memcpy(copy, data, size);
        write_sections(built, copy + 1, size - 1);
        free(copy);
    } else {
        fuzz_file_put(&f, data + 1, size - 1);
        path = f.path;
    }
    Ckpt *c = NULL;
    Err e = {{0}}, pe = {{0}};
    int rc = ckpt_read(&c, path, &train_ckpt_bounds, &e);
    /* The tolerant reader on the files as given (a written one is valid). */
    int prc = given ? ckpt_print(path, devnull, &train_ckpt_bounds, &pe) : rc;
    if (rc) {
        fuzz_check_message(&e);
        FUZZ_CHECK(c == NULL && prc != 0, "ckpt_read refused (%s) what ckpt_print accepts", e.msg);
    } else {
        FUZZ_CHECK(prc == 0, "ckpt_print refuses (%s) what ckpt_read accepts", pe.msg);
        TrainCkpt *t = xmalloc(sizeof *t);
        if (train_ckpt_check(c, path, t, &e)) {
            fuzz_check_message(&e);
        } else {
            size_t n;
            FUZZ_CHECK(ckpt_get(c, "params", &n) == (const void *)t->params &&
                           n == t->nparams * sizeof(float) && t->nparams == t->topo.floats,
                       "params %zu bytes for %zu parameters", n, t->nparams);
            for (size_t i = 0; i < t->nparams; i++) FUZZ_CHECK(isfinite(t->params[i]), "parameter %zu", i);
            int std_ok = t->state.norm.channels >= 1 && t->state.norm.channels <= NORM_MAX_CHANNELS;
            for (int c = 0; std_ok && c < t->state.norm.channels; c++) std_ok = t->state.norm.std[c] > 0;
            FUZZ_CHECK(std_ok && t->state.steps_per_epoch >= 1 && t->state.step <= t->state.total_steps, "state");
        }
        free(t);
        ckpt_free(c);
    }
    return 0;
}
