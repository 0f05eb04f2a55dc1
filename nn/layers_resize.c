/* layers_resize: the registry rows of the layers that change the spatial
 * size without pooling maxima: upsample (nearest or bilinear, integer
 * factor), deconv2d (transposed convolution) and avgpool (global average),
 * and their glue to nn/upsample, nn/deconv2d and nn/avgpool. */
#include "avgpool.h"
#include "deconv2d.h"
#include "layers.h"
#include "upsample.h"

static int spatial_input(const ModelLayer *L, Err *e) {
    if (L->in_flat)
        return err_set(e, "its input is flat (%d features): it needs a C x H x W map", L->c * L->h * L->w);
    return 0;
}

/* ---- upsample ---------------------------------------------------------------- */

static const ConfigKey upsample_keys[] = {
    {"upsample", "factor", K_INT, L(factor), 1, 16, "2", NULL, "integer scale factor of height and width"},
    {"upsample", "mode", K_ENUM, L(mode), 0, 0, "nearest", "nearest|bilinear",
     "nearest or bilinear (align_corners = False), as torch.nn.Upsample"},
};
_Static_assert(UPSAMPLE_NEAREST == 0 && UPSAMPLE_BILINEAR == 1, "upsample mode values are the key's order");

static int upsample_build(Model *m, ModelLayer *L, Err *e) {
    (void)m;
    if (spatial_input(L, e)) return -1;
    int f = (int)L->cfg.factor;
    L->oc = L->c, L->oh = L->h * f, L->ow = L->w * f;
    return 0;
}

static void upsample_fwd(Model *m, ModelLayer *L, float *y, const float *const *x, int rows) {
    (void)m;
    upsample_forward(y, x[0], rows, L->c, L->h, L->w, (int)L->cfg.factor, (UpsampleMode)L->cfg.mode);
}

static void upsample_bwd(Model *m, ModelLayer *L, float *const *dx, const float *dy, const float *y,
                         const float *const *x, int rows) {
    (void)m, (void)y, (void)x;
    if (dx[0])
        upsample_backward(dx[0], dy, rows, L->c, L->h, L->w, (int)L->cfg.factor, (UpsampleMode)L->cfg.mode);
}

const LayerDef layer_upsample = {.name = "upsample",
                                 .doc = "spatial upsampling by an integer factor, nearest or bilinear "
                                        "(torch.nn.Upsample)",
                                 .keys = upsample_keys,
                                 .nkeys = NKEYS(upsample_keys),
                                 .min_inputs = 1,
                                 .max_inputs = 1,
                                 .build = upsample_build,
                                 .forward = upsample_fwd,
                                 .backward = upsample_bwd};

/* ---- deconv2d ---------------------------------------------------------------- */

static const ConfigKey deconv2d_keys[] = {
    {"deconv2d", "filters", K_INT, L(filters), 1, 65536, NULL, NULL, "output channels"},
    {"deconv2d", "size", K_INT, L(size), 1, 64, "3", NULL, "kernel size (square)"},
    {"deconv2d", "stride", K_INT, L(stride), 1, 64, "1", NULL,
     "stride: the output is about stride times larger"},
    {"deconv2d", "pad", K_INT, L(pad), 0, 64, "0", NULL, "padding removed from each side of the output"},
    LR_KEYS("deconv2d"),
};

static int deconv2d_build(Model *m, ModelLayer *L, Err *e) {
    if (spatial_input(L, e)) return -1;
    int K = (int)L->cfg.size, S = (int)L->cfg.stride, P = (int)L->cfg.pad, F = (int)L->cfg.filters;
    L->oc = F, L->oh = deconv2d_out_size(L->h, K, S, P), L->ow = deconv2d_out_size(L->w, K, S, P);
    if (L->oh < 1 || L->ow < 1)
        return err_set(
            e,
            "pad %d leaves no output of its %dx%dx%d input (output side (n - 1) * stride - 2 * pad + "
            "size); lower pad",
            P, L->c, L->h, L->w);
    int ws[4] = {L->c, F, K, K};
    layers_weight_bias(m, L, 4, ws, F, (double)F * K * K); /* PyTorch's fan-in of ConvTranspose2d */
    L->flops = 2ULL * L->nw * (uint64_t)L->h * (uint64_t)L->w;
    L->ws_floats = deconv2d_workspace_floats(L->c, L->h, L->w, F, K, S, P);
    return 0;
}

static void deconv2d_fwd(Model *m, ModelLayer *L, float *y, const float *const *x, int rows) {
    const LayerCfg *c = &L->cfg;
    deconv2d_forward(y, x[0], m->params + L->w_off, m->params + L->b_off, rows, L->c, L->h, L->w,
                     (int)c->filters, (int)c->size, (int)c->stride, (int)c->pad, L->fuse > 0, m->ws);
}

static void deconv2d_bwd(Model *m, ModelLayer *L, float *const *dx, const float *dy, const float *y,
                         const float *const *x, int rows) {
    const LayerCfg *c = &L->cfg;
    deconv2d_backward(dx[0], m->grads + L->w_off, m->grads + L->b_off, dy, L->fuse > 0 ? y : NULL, x[0],
                      m->params + L->w_off, rows, L->c, L->h, L->w, (int)c->filters, (int)c->size,
                      (int)c->stride, (int)c->pad, m->ws);
}

/* deconv2d -> relu, where nothing else reads the deconv2d's output, runs as
 * one node: the ReLU applied with the bias, and in the backward dout cut by
 * the block output image by image (no separate passes; the same bits). */
static int deconv2d_fuse(const ModelLayer *L, const ModelLayer *const *next, int nnext) {
    (void)L;
    return nnext >= 1 && next[0]->type == LAYER_RELU;
}

const LayerDef layer_deconv2d = {.name = "deconv2d",
                                 .doc =
                                     "2-D transposed convolution (PyTorch ConvTranspose2d), square kernel; "
                                     "weight (in, out, K, K)",
                                 .keys = deconv2d_keys,
                                 .nkeys = NKEYS(deconv2d_keys),
                                 .min_inputs = 1,
                                 .max_inputs = 1,
                                 .flags = LAYER_FUSES_NCHW,
                                 .build = deconv2d_build,
                                 .forward = deconv2d_fwd,
                                 .backward = deconv2d_bwd,
                                 .fuse = deconv2d_fuse};

/* ---- avgpool ----------------------------------------------------------------- */

static int avgpool_build(Model *m, ModelLayer *L, Err *e) {
    (void)m;
    if (spatial_input(L, e)) return -1;
    L->oc = L->c, L->oh = 1, L->ow = 1;
    return 0;
}

static void avgpool_fwd(Model *m, ModelLayer *L, float *y, const float *const *x, int rows) {
    (void)m;
    avgpool_forward(y, x[0], rows, L->c, L->h * L->w);
}

static void avgpool_bwd(Model *m, ModelLayer *L, float *const *dx, const float *dy, const float *y,
                        const float *const *x, int rows) {
    (void)m, (void)y, (void)x;
    if (dx[0]) avgpool_backward(dx[0], dy, rows, L->c, L->h * L->w);
}

const LayerDef layer_avgpool = {.name = "avgpool",
                                .doc = "global average pooling: C x 1 x 1 (adaptive_avg_pool2d(x, 1))",
                                .min_inputs = 1,
                                .max_inputs = 1,
                                .build = avgpool_build,
                                .forward = avgpool_fwd,
                                .backward = avgpool_bwd};
