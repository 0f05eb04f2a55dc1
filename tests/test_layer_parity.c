/* Parity with PyTorch of the layers that join and reshape nodes and of
 * batch norm (Debian's python3-torch runs tests/parity_layers.py): for
 * each case one node, built from a config section and run through its
 * registry row (forward, backward with the input gradient of every input,
 * the running statistics after a training step), against torch's op on
 * the same input, parameters, buffers and output gradient, within 1e-4
 * relative (max |C - torch| / max |torch| per tensor). Covers concat, add,
 * difference and absdiff of the two halves of a batch, upsample (nearest
 * and bilinear), deconv2d, avgpool, batchnorm (training, with the running
 * statistics and num_batches_tracked; inference; C x 1 x 1 rows as
 * BatchNorm1d), leaky_relu, tanh, softmax over channels and correlation (against a torch reference by shifts: torch
 * has no such op). Without torch it FAILS and says to run `make deps`. */
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../io/config.h"
#include "../io/npy.h"
#include "../nn/layer.h"
#include "fixture_num.h"
#include "fixture_torch.h"
#include "test.h"

#define TOL 1e-4

typedef struct Case {
    const char *name, *cfg;
    int rows, c, h, w, train;
} Case;

static const Case cases[] = {
    {"concat", "[concat]\ninput = input@a, input@b\n", 4, 3, 4, 5, 0},
    {"add", "[add]\ninput = input@a, input@b\n", 4, 2, 3, 3, 0},
    {"difference", "[difference]\ninput = input@b, input@a\n", 4, 2, 3, 3, 0},
    {"absdiff", "[absdiff]\ninput = input@a, input@b\n", 6, 3, 2, 4, 0},
    {"upsample-nearest", "[upsample]\nfactor = 3\n", 2, 2, 3, 4, 0},
    {"upsample-bilinear", "[upsample]\nfactor = 2\nmode = bilinear\n", 2, 3, 5, 4, 0},
    {"deconv2d", "[deconv2d]\nfilters = 4\nsize = 4\nstride = 2\npad = 1\n", 2, 3, 5, 4, 0},
    {"deconv2d-s3", "[deconv2d]\nfilters = 2\nsize = 3\nstride = 3\n", 3, 2, 3, 3, 0},
    {"avgpool", "[avgpool]\n", 3, 4, 5, 6, 0},
    {"batchnorm-train", "[batchnorm]\nmomentum = 0.3\neps = 0.001\n", 4, 3, 5, 4, 1},
    {"batchnorm-eval", "[batchnorm]\n", 3, 3, 4, 4, 0},
    {"batchnorm1d-train", "[batchnorm]\n", 8, 5, 1, 1, 1},
    {"correlation-ab", "[correlation]\ninput = input@a, input@b\ndisplacement = 2\n", 4, 3, 6, 5, 0},
    {"leaky_relu", "[leaky_relu]\nslope = 0.2\n", 3, 2, 4, 4, 0},
    {"tanh", "[tanh]\n", 3, 2, 4, 4, 0},
    {"softmax", "[softmax]\n", 3, 5, 3, 4, 0},
    {"correlation-both", "[correlation]\ninput = input\ndisplacement = 1\ndilation = 2\n", 4, 2, 5, 6, 0},
};
#define NCASES (int)(sizeof cases / sizeof cases[0])

static char root[PATH_MAX], dir[PATH_MAX];
static Rng rng;

/* What the C side computed for one case. */
typedef struct Result {
    Model m;
    int ry;
    size_t nx, ny;
    float *y, *dx, *grads, *buffers, *buffers0;
} Result;

static void run_c(Result *res, const Case *k, const char *cdir) {
    Config cfg;
    Err e;
    Model *m = &res->m;
    if (config_parse_text(&cfg, k->cfg, k->name, &e) ||
        model_build(m, &cfg.model, k->name, k->c, k->h, k->w, k->rows, &e))
        FATAL("%s: %s", k->name, e.msg);
    model_init(m, INIT_TORCH, 5);
    for (size_t i = 0; i < m->nparams; i++)
        m->params[i] += 0.2f * (rng_uniform(&rng) - 0.5f); /* not 1 and 0 */
    for (int v = 0; v < m->nbufviews; v++)                 /* some running statistics */
        for (size_t i = 0; i < m->bufviews[v].count; i++)
            m->buffers[m->bufviews[v].offset + i] = m->bufviews[v].ndim ? 0.5f + rng_uniform(&rng) : 3.0f;
    int i = m->nlayers - 1;
    ModelLayer *L = &m->layers[i];
    size_t in = (size_t)k->c * k->h * k->w;
    res->nx = (size_t)k->rows * in;
    res->ry = model_node_rows(m, i, k->rows);
    res->ny = (size_t)res->ry * L->out_size;
    float *x = fixture_rand_floats(&rng, res->nx, -1, 1), *dy = fixture_rand_floats(&rng, res->ny, -1, 1);
    fixture_put_f32(cdir, "x.npy", x, k->rows, (int64_t)in);
    fixture_put_f32(cdir, "dy.npy", dy, 1, (int64_t)res->ny);
    fixture_put_f32(cdir, "params.npy", m->params, 1, (int64_t)m->nparams);
    fixture_put_f32(cdir, "buffers.npy", m->buffers, 1, (int64_t)m->nbuffers);
    res->buffers0 = xmalloc((m->nbuffers + 1) * sizeof(float));
    memcpy(res->buffers0, m->buffers, m->nbuffers * sizeof(float));
    ModelStep st = {k->train, 0, 1, 1, 0, 0, 0};
    model_set_step(m, &st);
    res->y = xmalloc(res->ny * sizeof(float));
    model_forward(m, x, k->rows);
    memcpy(res->y, model_output(m, i), res->ny * sizeof(float));
    res->dx = xaligned_floats(res->nx);
    float *dx[LAYER_MAX_INPUTS];
    const float *xin[LAYER_MAX_INPUTS];
    size_t off[LAYER_MAX_INPUTS], len[LAYER_MAX_INPUTS];
    char inputs[64] = "";
    for (int q = 0; q < L->nin; q++) {
        int half = L->in[q].half;
        len[q] = half == REF_WHOLE ? res->nx : res->nx / 2;
        off[q] = half == REF_B ? res->nx / 2 : 0;
        xin[q] = x + off[q];
        dx[q] = xaligned_floats(len[q]);
        strcat(inputs, half == REF_WHOLE ? " whole" : half == REF_A ? " a" : " b");
    }
    memset(m->grads, 0, m->nparams * sizeof(float));
    L->def->backward(m, L, dx, dy, model_output(m, i), xin, res->ry);
    for (int q = 0; q < L->nin; q++) {
        for (size_t j = 0; j < len[q]; j++) res->dx[off[q] + j] += dx[q][j];
        free(dx[q]);
    }
    model_update_buffers(m);
    res->grads = m->grads;
    res->buffers = m->buffers;

    char path[PATH_MAX];
    fixture_path_fmt(path, sizeof path, "%s/meta.txt", cdir);
    FILE *f = fopen(path, "w");
    if (!f) FATAL("cannot write %s", path);
    fprintf(f, "layer %s\nshape %d %d %d %d\ntrain %d\ninputs%s\n", L->def->name, k->rows, k->c, k->h, k->w,
            k->train, inputs);
    for (int q = 0; q < L->def->nkeys; q++) {
        char *text = config_to_text(&cfg), *sec = strstr(text, "; line"); /* the layer's section */
        char want[64];
        snprintf(want, sizeof want, "\n%s = ", L->def->keys[q].key);
        char *v = sec ? strstr(sec, want) : NULL;
        if (v)
            fprintf(f, "key %s %.*s\n", L->def->keys[q].key, (int)strcspn(v + strlen(want), "\n"),
                    v + strlen(want));
        free(text);
    }
    for (int v = 0; v < m->nviews + m->nbufviews; v++) {
        const ParamView *pv = v < m->nviews ? &m->views[v] : &m->bufviews[v - m->nviews];
        fprintf(f, "%s %s %zu %zu", v < m->nviews ? "view" : "buffer", pv->name, pv->offset, pv->count);
        for (int d = 0; d < pv->ndim; d++) fprintf(f, " %d", pv->shape[d]);
        fputc('\n', f);
    }
    if (fclose(f)) FATAL("cannot write %s", path);
    free(x), free(dy);
}

static void compare(Result *res, const Case *k, const char *cdir) {
    Model *m = &res->m;
    float *ty = fixture_get_f32(cdir, "torch_y.npy", res->ny),
          *tdx = fixture_get_f32(cdir, "torch_dx.npy", res->nx);
    float *tg = fixture_get_f32(cdir, "torch_grads.npy", m->nparams),
          *tb = fixture_get_f32(cdir, "torch_buffers.npy", m->nbuffers);
    if (ty && tdx && (tg || !m->nparams) && (tb || !m->nbuffers)) {
        double ey = fixture_max_rel_err(res->y, ty, res->ny),
               edx = fixture_max_rel_err(res->dx, tdx, res->nx);
        double eg = m->nparams ? fixture_max_rel_err(res->grads, tg, m->nparams) : 0;
        double eb = m->nbuffers ? fixture_max_rel_err(res->buffers, tb, m->nbuffers) : 0;
        printf("%-20s output %.2g  input gradient %.2g  parameter gradients %.2g  buffers %.2g\n", k->name,
               ey, edx, eg, eb);
        CHECK(ey <= TOL, "%s: output differs from torch by %.3g relative", k->name, ey);
        CHECK(edx <= TOL, "%s: input gradient differs from torch by %.3g relative", k->name, edx);
        CHECK(eg <= TOL, "%s: parameter gradients differ from torch by %.3g relative", k->name, eg);
        CHECK(eb <= TOL, "%s: buffers after the step differ from torch by %.3g relative", k->name, eb);
        size_t moved = 0;
        for (size_t i = 0; i < m->nbuffers; i++) moved += res->buffers[i] != res->buffers0[i];
        CHECK(moved == (k->train ? m->nbuffers : 0), "%s: %zu of %zu buffers moved", k->name, moved,
              m->nbuffers);
    }
    free(ty), free(tdx), free(tg), free(tb);
}

int main(void) {
    fixture_repo_root(root, sizeof root, "tests/parity_layers.py");
    rng_seed(&rng, 8, RNG_TEST, 0);
    fixture_path_fmt(dir, sizeof dir, "/tmp/siamese-layer-parity-XXXXXX");
    if (!mkdtemp(dir)) FATAL("mkdtemp failed");
    Result res[NCASES];
    char cdirs[NCASES][PATH_MAX], cmd[NCASES * (PATH_MAX + 4) + 2 * PATH_MAX];
    size_t len =
        (size_t)snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s '%s/tests/parity_layers.py'", PYTHON, root);
    for (int i = 0; i < NCASES; i++) {
        fixture_path_fmt(cdirs[i], sizeof cdirs[i], "%s/%s", dir, cases[i].name);
        if (mkdir(cdirs[i], 0700)) FATAL("mkdir %s failed", cdirs[i]);
        memset(&res[i], 0, sizeof res[i]);
        run_c(&res[i], &cases[i], cdirs[i]);
        len += (size_t)snprintf(cmd + len, sizeof cmd - len, " '%s'", cdirs[i]);
    }
    if (fixture_run_python(cmd) == 0)
        for (int i = 0; i < NCASES; i++) compare(&res[i], &cases[i], cdirs[i]);
    for (int i = 0; i < NCASES; i++) {
        free(res[i].y), free(res[i].dx), free(res[i].buffers0);
        model_free(&res[i].m);
    }
    if (!test_failed_) {
        fixture_path_fmt(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd)) util_warn("could not remove %s", dir);
    } else {
        printf("inputs and outputs kept in %s\n", dir);
    }
    return test_finish();
}
