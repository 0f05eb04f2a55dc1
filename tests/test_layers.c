/* Tests of the layer kernels: conv2d (BLAS path against the naive loops and
 * finite differences, incl. stride 2, padding, non-square inputs, several
 * image chunks), maxpool (reference loops, ties, NaN, gradients), relu,
 * sigmoid, tanh, leaky_relu, linear and l2norm (finite differences, in-place use, the clamped
 * zero row), and that parameter gradients accumulate. The loss for finite
 * differences is sum(out * R) with a fixed random R. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/activation.h"
#include "../nn/batchnorm.h"
#include "../nn/conv2d.h"
#include "../nn/deconv2d.h"
#include "../nn/l2norm.h"
#include "../nn/leaky_relu.h"
#include "../nn/linear.h"
#include "../nn/parallel.h"
#include "../nn/pool.h"
#include "../nn/tanh.h"
#include "../nn/util.h"
#include "fixture_num.h"
#include "test.h"

static Rng rng;

/* ---- conv2d --------------------------------------------------------------- */

typedef struct ConvCase {
    int B, C, H, W, F, K, stride, pad, Ho, Wo;
    float *in, *w, *b, *out, *R, *ws;
} ConvCase;

static double conv_loss(void *ctx) {
    ConvCase *c = ctx;
    conv2d_forward(c->out, c->in, c->w, c->b, c->B, c->C, c->H, c->W, c->F, c->K, c->stride, c->pad, c->ws);
    return fixture_dot(c->out, c->R, (size_t)c->B * c->F * c->Ho * c->Wo);
}

static void test_conv(int B, int C, int H, int W, int F, int K, int stride, int pad, int fd) {
    ConvCase c = {
        B, C, H, W, F, K, stride, pad, conv2d_out_size(H, K, stride, pad), conv2d_out_size(W, K, stride, pad),
        0, 0, 0, 0, 0, 0};
    char what[160];
    snprintf(what, sizeof what, "conv B%d C%d %dx%d F%d K%d s%d p%d", B, C, H, W, F, K, stride, pad);
    size_t nin = (size_t)B * C * H * W, nw = (size_t)F * C * K * K;
    size_t nout = (size_t)B * F * c.Ho * c.Wo;
    c.in = fixture_rand_floats(&rng, nin, -1, 1);
    c.w = fixture_rand_floats(&rng, nw, -1, 1);
    c.b = fixture_rand_floats(&rng, (size_t)F, -1, 1);
    c.R = fixture_rand_floats(&rng, nout, -1, 1);
    c.out = xaligned_floats(nout);
    c.ws = fixture_rand_floats(&rng, conv2d_workspace_floats(B, C, H, W, F, K, stride, pad), -9, 9);
    float *ref = xaligned_floats(nout);

    /* forward: BLAS == naive, with and without bias */
    conv_loss(&c);
    conv2d_forward_naive(ref, c.in, c.w, c.b, B, C, H, W, F, K, stride, pad);
    double e = fixture_max_rel_err(c.out, ref, nout);
    CHECK(e < 1e-5, "%s: forward vs naive, rel err %g", what, e);
    conv2d_forward(c.out, c.in, c.w, NULL, B, C, H, W, F, K, stride, pad, c.ws);
    conv2d_forward_naive(ref, c.in, c.w, NULL, B, C, H, W, F, K, stride, pad);
    e = fixture_max_rel_err(c.out, ref, nout);
    CHECK(e < 1e-5, "%s: forward (no bias) vs naive, rel err %g", what, e);

    /* backward: BLAS == naive; dw, db accumulate; din is written */
    float *din = fixture_rand_floats(&rng, nin, -5, 5), *dw = xaligned_floats(nw);
    float *db = xaligned_floats((size_t)F);
    float *din_r = xaligned_floats(nin), *dw_r = xaligned_floats(nw);
    float *db_r = xaligned_floats((size_t)F);
    conv2d_backward(din, dw, db, c.R, c.in, c.w, B, C, H, W, F, K, stride, pad, c.ws);
    conv2d_backward_naive(din_r, dw_r, db_r, c.R, c.in, c.w, B, C, H, W, F, K, stride, pad);
    e = fixture_max_rel_err(din, din_r, nin);
    CHECK(e < 1e-5, "%s: din vs naive, rel err %g", what, e);
    e = fixture_max_rel_err(dw, dw_r, nw);
    CHECK(e < 1e-5, "%s: dw vs naive, rel err %g", what, e);
    e = fixture_max_rel_err(db, db_r, (size_t)F);
    CHECK(e < 1e-5, "%s: db vs naive, rel err %g", what, e);

    if (fd) {
        /* conv is linear in each of in, w, b: central differences are exact
         * up to rounding, so a large step is fine. */
        e = fixture_fd_error(conv_loss, &c, c.in, din, nin, 0.05f, 200, &rng);
        CHECK(e < 2e-3, "%s: din vs finite differences, rel err %g", what, e);
        e = fixture_fd_error(conv_loss, &c, c.w, dw, nw, 0.05f, 200, &rng);
        CHECK(e < 2e-3, "%s: dw vs finite differences, rel err %g", what, e);
        e = fixture_fd_error(conv_loss, &c, c.b, db, (size_t)F, 0.05f, 200, &rng);
        CHECK(e < 2e-3, "%s: db vs finite differences, rel err %g", what, e);
    }

    /* second call: dw, db doubled; din unchanged (written, not added) */
    float *dw1 = xaligned_floats(nw), *db1 = xaligned_floats((size_t)F);
    float *din1 = xaligned_floats(nin);
    memcpy(dw1, dw, nw * sizeof *dw);
    memcpy(db1, db, (size_t)F * sizeof *db);
    memcpy(din1, din, nin * sizeof *din);
    conv2d_backward(din, dw, db, c.R, c.in, c.w, B, C, H, W, F, K, stride, pad, c.ws);
    for (size_t i = 0; i < nw; i++) dw1[i] *= 2.0f;
    for (int i = 0; i < F; i++) db1[i] *= 2.0f;
    CHECK(fixture_max_rel_err(dw, dw1, nw) < 1e-6, "%s: dw accumulates", what);
    CHECK(fixture_max_rel_err(db, db1, (size_t)F) < 1e-6, "%s: db accumulates", what);
    CHECK(fixture_max_rel_err(din, din1, nin) == 0.0, "%s: din is written, not added", what);

    /* din NULL and db NULL: dw alone still right */
    memset(dw, 0, nw * sizeof *dw);
    conv2d_backward(NULL, dw, NULL, c.R, c.in, c.w, B, C, H, W, F, K, stride, pad, c.ws);
    e = fixture_max_rel_err(dw, dw_r, nw);
    CHECK(e < 1e-5, "%s: dw with din = db = NULL, rel err %g", what, e);

    free(c.in), free(c.w), free(c.b), free(c.R), free(c.out), free(c.ws), free(ref);
    free(din), free(dw), free(db), free(din_r), free(dw_r), free(db_r);
    free(dw1), free(db1), free(din1);
}

/* conv2d_backward_part: din's channels [0, Cd) those of conv2d_backward
 * (bit for bit with K = 3 and AVX-512, where each output channel's sums
 * are its own in the direct kernel; to rounding where a GEMM with fewer
 * rows runs),
 * [Cd, C) zero, dw and db the same bits; Cd = 0 computes no din. */
static void test_conv_part(int B, int C, int H, int W, int F, int K, int pad, int Cd) {
    char what[160];
    snprintf(what, sizeof what, "conv part B%d C%d %dx%d F%d K%d p%d: din channels < %d", B, C, H, W, F, K, pad,
             Cd);
    int Ho = conv2d_out_size(H, K, 1, pad), Wo = conv2d_out_size(W, K, 1, pad);
    size_t nin = (size_t)B * C * H * W, nw = (size_t)F * C * K * K, nout = (size_t)B * F * Ho * Wo;
    size_t plane = (size_t)H * W;
    float *in = fixture_rand_floats(&rng, nin, -1, 1), *w = fixture_rand_floats(&rng, nw, -1, 1);
    float *dout = fixture_rand_floats(&rng, nout, -1, 1);
    float *ws = fixture_rand_floats(&rng, conv2d_workspace_floats(B, C, H, W, F, K, 1, pad), -9, 9);
    float *din = xaligned_floats(nin), *dw = xaligned_floats(nw), *db = xaligned_floats((size_t)F);
    float *pin = fixture_rand_floats(&rng, nin, -9, 9), *pw = xaligned_floats(nw), *pb = xaligned_floats((size_t)F);
    conv2d_backward(din, dw, db, dout, in, w, B, C, H, W, F, K, 1, pad, ws);
    conv2d_backward_part(pin, Cd, pw, pb, dout, in, w, B, C, H, W, F, K, 1, pad, ws);
    int same = 1, zero = 1;
    for (int i = 0; i < B; i++) {
        size_t o = (size_t)i * C * plane, n = (size_t)Cd * plane;
#ifdef __AVX512F__
        int direct = K == 3; /* the direct kernel: each channel's sums its own */
#else
        int direct = 0; /* GEMMs with fewer rows */
#endif
        same &= direct ? !memcmp(din + o, pin + o, n * sizeof *din) : fixture_max_rel_err(pin + o, din + o, n) < 1e-5;
        for (size_t j = n; j < (size_t)C * plane; j++) zero &= pin[o + j] == 0.0f;
    }
    CHECK(same && zero, "%s: the first channels' bits %d, the others zero %d", what, same, zero);
    CHECK(!memcmp(dw, pw, nw * sizeof *dw) && !memcmp(db, pb, (size_t)F * sizeof *db), "%s: dw and db the same bits",
          what);
    free(in), free(w), free(dout), free(ws), free(din), free(dw), free(db), free(pin), free(pw), free(pb);
}

/* ---- deconv2d --------------------------------------------------------------- */

/* deconv2d against the plain scatter loops: out[oh][ow] += in[ih][iw] w
 * at oh = ih stride - pad + kh; din and dw as their adjoints; dw and db
 * accumulate onto what they hold, din is written; dw summed over the
 * images transposed inside the kernel (equal to rounding). */
static void test_deconv(int B, int C, int H, int W, int F, int K, int stride, int pad) {
    int Ho = deconv2d_out_size(H, K, stride, pad), Wo = deconv2d_out_size(W, K, stride, pad);
    char what[160];
    snprintf(what, sizeof what, "deconv B%d C%d %dx%d F%d K%d s%d p%d", B, C, H, W, F, K, stride, pad);
    size_t nin = (size_t)B * C * H * W, nw = (size_t)C * F * K * K, nout = (size_t)B * F * Ho * Wo;
    float *in = fixture_rand_floats(&rng, nin, -1, 1), *w = fixture_rand_floats(&rng, nw, -1, 1);
    float *b = fixture_rand_floats(&rng, (size_t)F, -1, 1), *dout = fixture_rand_floats(&rng, nout, -1, 1);
    float *ws = fixture_rand_floats(&rng, deconv2d_workspace_floats(C, H, W, F, K, stride, pad), -9, 9);
    float *out = xaligned_floats(nout), *din = fixture_rand_floats(&rng, nin, -5, 5);
    float *dw = fixture_rand_floats(&rng, nw, -1, 1), *db = fixture_rand_floats(&rng, (size_t)F, -1, 1);
    double *ro = xmalloc(nout * sizeof *ro), *rdin = xmalloc(nin * sizeof *rdin), *rdw = xmalloc(nw * sizeof *rdw);
    double *rdb = xmalloc((size_t)F * sizeof *rdb);
    for (size_t j = 0; j < nw; j++) rdw[j] = dw[j];
    for (int f = 0; f < F; f++) rdb[f] = db[f];
    for (int i = 0; i < B; i++)
        for (int f = 0; f < F; f++)
            for (int p = 0; p < Ho * Wo; p++) {
                ro[((size_t)i * F + f) * Ho * Wo + p] = b[f];
                rdb[f] += dout[((size_t)i * F + f) * Ho * Wo + p];
            }
    memset(rdin, 0, nin * sizeof *rdin);
    for (int i = 0; i < B; i++)
        for (int c = 0; c < C; c++)
            for (int ih = 0; ih < H; ih++)
                for (int iw = 0; iw < W; iw++)
                    for (int f = 0; f < F; f++)
                        for (int kh = 0; kh < K; kh++)
                            for (int kw = 0; kw < K; kw++) {
                                int oh = ih * stride - pad + kh, ow = iw * stride - pad + kw;
                                if (oh < 0 || oh >= Ho || ow < 0 || ow >= Wo) continue;
                                size_t xi = (((size_t)i * C + c) * H + ih) * W + iw;
                                size_t oi = (((size_t)i * F + f) * Ho + oh) * Wo + ow;
                                size_t wi = (((size_t)c * F + f) * K + kh) * K + kw;
                                ro[oi] += (double)in[xi] * w[wi];
                                rdin[xi] += (double)dout[oi] * w[wi];
                                rdw[wi] += (double)dout[oi] * in[xi];
                            }
    deconv2d_forward(out, in, w, b, B, C, H, W, F, K, stride, pad, 0, ws);
    deconv2d_backward(din, dw, db, dout, NULL, in, w, B, C, H, W, F, K, stride, pad, ws);
    double eo = 0, ei = 0, ew = 0, eb = 0;
    for (size_t j = 0; j < nout; j++) eo = fmax(eo, fabs(out[j] - ro[j]) / (1 + fabs(ro[j])));
    for (size_t j = 0; j < nin; j++) ei = fmax(ei, fabs(din[j] - rdin[j]) / (1 + fabs(rdin[j])));
    for (size_t j = 0; j < nw; j++) ew = fmax(ew, fabs(dw[j] - rdw[j]) / (1 + fabs(rdw[j])));
    for (int f = 0; f < F; f++) eb = fmax(eb, fabs(db[f] - rdb[f]) / (1 + fabs(rdb[f])));
    CHECK(eo < 1e-5 && ei < 1e-5, "%s: forward and din vs the plain loops, rel err %g %g", what, eo, ei);
    CHECK(ew < 1e-5 && eb < 1e-5, "%s: dw and db accumulated vs the plain loops, rel err %g %g", what, ew, eb);
    free(in), free(w), free(b), free(dout), free(ws), free(out), free(din), free(dw), free(db);
    free(ro), free(rdin), free(rdw), free(rdb);
}

/* The 1 x 1 few-filter path (per-image dot products, their sums added in
 * image order): the same bits at 1 and 3 threads, forward and backward. */
static void test_conv_pointwise_threads(int B, int C, int H, int W, int F) {
    size_t HW = (size_t)H * W, nin = (size_t)B * C * HW, nout = (size_t)B * F * HW, nw = (size_t)F * C;
    float *in = fixture_rand_floats(&rng, nin, -1, 1), *w = fixture_rand_floats(&rng, nw, -1, 1);
    float *b = fixture_rand_floats(&rng, (size_t)F, -1, 1), *dout = fixture_rand_floats(&rng, nout, -1, 1);
    float *ws = xaligned_floats(conv2d_workspace_floats(B, C, H, W, F, 1, 1, 0));
    float *out[2], *din[2], *dw[2], *db[2];
    for (int r = 0; r < 2; r++) {
        out[r] = xaligned_floats(nout), din[r] = xaligned_floats(nin);
        dw[r] = xaligned_floats(nw), db[r] = xaligned_floats((size_t)F);
        parallel_init(r ? 3 : 1);
        conv2d_forward(out[r], in, w, b, B, C, H, W, F, 1, 1, 0, ws);
        conv2d_backward(din[r], dw[r], db[r], dout, in, w, B, C, H, W, F, 1, 1, 0, ws);
    }
    parallel_init(1);
    int same = !memcmp(out[0], out[1], nout * sizeof(float)) &&
               !memcmp(din[0], din[1], nin * sizeof(float)) && !memcmp(dw[0], dw[1], nw * sizeof(float)) &&
               !memcmp(db[0], db[1], (size_t)F * sizeof(float));
    CHECK(same, "conv 1x1 B%d C%d %dx%d F%d: the same bits at 1 and 3 threads", B, C, H, W, F);
    free(in), free(w), free(b), free(dout), free(ws);
    for (int r = 0; r < 2; r++) free(out[r]), free(din[r]), free(dw[r]), free(db[r]);
}

/* The 1 x 1 one-filter path (a mask head) against plain loops: the output
 * b + w_0 x_0 + w_1 x_1 + ... (in float, channel after channel) and din_c =
 * w_c dout bit for bit (the kernel's order), with and without the bias; dw
 * and db accumulated, to rounding of the double sums; without din too. */
static void test_conv_mask(int B, int C, int H, int W) {
    size_t HW = (size_t)H * W, nin = (size_t)B * C * HW, nout = (size_t)B * HW;
    float *in = fixture_rand_floats(&rng, nin, -1, 1), *w = fixture_rand_floats(&rng, (size_t)C, -1, 1);
    float *b = fixture_rand_floats(&rng, 1, -1, 1), *dout = fixture_rand_floats(&rng, nout, -1, 1);
    float *ws = fixture_rand_floats(&rng, conv2d_workspace_floats(B, C, H, W, 1, 1, 1, 0), -9, 9);
    float *out = xaligned_floats(nout), *ref = xaligned_floats(nout);
    float *din = fixture_rand_floats(&rng, nin, -5, 5), *rdin = xaligned_floats(nin);
    float *dw = fixture_rand_floats(&rng, (size_t)C, -1, 1), *db = fixture_rand_floats(&rng, 1, -1, 1);
    float *dw2 = xaligned_floats((size_t)C), *db2 = xaligned_floats(1);
    double *rdw = xmalloc((size_t)C * sizeof *rdw), rdb = db[0];
    for (int ch = 0; ch < C; ch++) rdw[ch] = dw[ch];
    for (int nb = 0; nb < 2; nb++) {
        conv2d_forward(out, in, w, nb ? NULL : b, B, C, H, W, 1, 1, 1, 0, ws);
        for (int i = 0; i < B; i++)
            for (size_t q = 0; q < HW; q++) {
                float s = nb ? 0.0f : b[0];
                for (int ch = 0; ch < C; ch++) { /* two statements: no FMA (clang's -ffp-contract=on) */
                    float t = w[ch] * in[((size_t)i * C + ch) * HW + q];
                    s += t;
                }
                ref[(size_t)i * HW + q] = s;
            }
        CHECK(!memcmp(out, ref, nout * sizeof *out), "conv 1x1 F1 B%d C%d %dx%d%s: forward bit for bit", B, C, H, W,
              nb ? " (no bias)" : "");
    }
    for (int i = 0; i < B; i++)
        for (int ch = 0; ch < C; ch++)
            for (size_t q = 0; q < HW; q++) {
                float d = dout[(size_t)i * HW + q], x = in[((size_t)i * C + ch) * HW + q];
                rdin[((size_t)i * C + ch) * HW + q] = w[ch] * d;
                rdw[ch] += (double)x * d;
                if (ch == 0) rdb += d;
            }
    conv2d_backward(din, dw, db, dout, in, w, B, C, H, W, 1, 1, 1, 0, ws);
    CHECK(!memcmp(din, rdin, nin * sizeof *din), "conv 1x1 F1 B%d C%d %dx%d: din bit for bit", B, C, H, W);
    double ew = 0, eb = fabs(db[0] - rdb) / (1 + fabs(rdb));
    for (int ch = 0; ch < C; ch++) ew = fmax(ew, fabs(dw[ch] - rdw[ch]) / (1 + fabs(rdw[ch])));
    CHECK(ew < 1e-5 && eb < 1e-5, "conv 1x1 F1 B%d C%d %dx%d: dw and db accumulated vs the plain loops, rel err %g %g",
          B, C, H, W, ew, eb);
    /* without din: the same dw and db bits (both from zero) */
    memset(dw, 0, (size_t)C * sizeof *dw), db[0] = 0;
    memset(dw2, 0, (size_t)C * sizeof *dw2), db2[0] = 0;
    conv2d_backward(din, dw, db, dout, in, w, B, C, H, W, 1, 1, 1, 0, ws);
    conv2d_backward(NULL, dw2, db2, dout, in, w, B, C, H, W, 1, 1, 1, 0, ws);
    CHECK(!memcmp(dw, dw2, (size_t)C * sizeof *dw) && db[0] == db2[0],
          "conv 1x1 F1 B%d C%d %dx%d: dw and db without din bit for bit as with it", B, C, H, W);
    free(in), free(w), free(b), free(dout), free(ws), free(out), free(ref), free(din), free(rdin);
    free(dw), free(db), free(dw2), free(db2), free(rdw);
}

/* Stride-1 "same" convolutions (the direct 3 x 3 weight gradient, the
 * input gradient as the flipped convolution, the GEMM path): the same bits
 * at 1 and 3 threads, forward and backward. */
static void test_conv_same_threads(int B, int C, int H, int W, int F, int K) {
    size_t HW = (size_t)H * W, nin = (size_t)B * C * HW, nout = (size_t)B * F * HW,
           nw = (size_t)F * C * K * K;
    float *in = fixture_rand_floats(&rng, nin, -1, 1), *w = fixture_rand_floats(&rng, nw, -1, 1);
    float *b = fixture_rand_floats(&rng, (size_t)F, -1, 1), *dout = fixture_rand_floats(&rng, nout, -1, 1);
    float *ws = xaligned_floats(conv2d_workspace_floats(B, C, H, W, F, K, 1, K / 2));
    float *out[2], *din[2], *dw[2], *db[2];
    for (int r = 0; r < 2; r++) {
        out[r] = xaligned_floats(nout), din[r] = xaligned_floats(nin);
        dw[r] = xaligned_floats(nw), db[r] = xaligned_floats((size_t)F);
        parallel_init(r ? 3 : 1);
        conv2d_forward(out[r], in, w, b, B, C, H, W, F, K, 1, K / 2, ws);
        conv2d_backward(din[r], dw[r], db[r], dout, in, w, B, C, H, W, F, K, 1, K / 2, ws);
    }
    parallel_init(1);
    int same = !memcmp(out[0], out[1], nout * sizeof(float)) &&
               !memcmp(din[0], din[1], nin * sizeof(float)) && !memcmp(dw[0], dw[1], nw * sizeof(float)) &&
               !memcmp(db[0], db[1], (size_t)F * sizeof(float));
    CHECK(same, "conv %dx%d same B%d C%d %dx%d F%d: the same bits at 1 and 3 threads", K, K, B, C, H, W, F);
    free(in), free(w), free(b), free(dout), free(ws);
    for (int r = 0; r < 2; r++) free(out[r]), free(din[r]), free(dw[r]), free(db[r]);
}

/* conv2d_im2col and conv2d_col2im against plain loops, bit for bit: the
 * columns are copies, and col2im adds each input pixel's taps in (kh, kw)
 * order onto din's value in both, whatever path runs (the masked blocks of
 * "same" convolutions with AVX-512, the row loops otherwise);
 * conv2d_col2im_write onto +0 (din garbage before, -0 among the columns). */
static void test_im2col_bits(int n, int C, int H, int W, int K, int stride, int pad) {
    int Ho = conv2d_out_size(H, K, stride, pad), Wo = conv2d_out_size(W, K, stride, pad);
    size_t HW = (size_t)H * W, HoWo = (size_t)Ho * Wo, N = (size_t)n * HoWo, nin = (size_t)n * C * HW;
    size_t ncol = (size_t)C * K * K * N;
    float *in = fixture_rand_floats(&rng, nin, -1, 1), *col = fixture_rand_floats(&rng, ncol, -9, 9);
    float *ref = xaligned_floats(ncol), *din = fixture_rand_floats(&rng, nin, -1, 1);
    float *din_r = xaligned_floats(nin), *dw = fixture_rand_floats(&rng, nin, -5, 5);
    float *dw_r = xcalloc(nin, sizeof *dw_r);
    memcpy(din_r, din, nin * sizeof *din);
    for (size_t j = 0; j < ncol; j += 5) col[j] = -0.0f;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < C; c++)
            for (int kh = 0; kh < K; kh++)
                for (int kw = 0; kw < K; kw++)
                    for (int oh = 0; oh < Ho; oh++)
                        for (int ow = 0; ow < Wo; ow++) {
                            int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
                            size_t j =
                                ((size_t)(c * K + kh) * K + kw) * N + (size_t)i * HoWo + (size_t)oh * Wo + ow;
                            int inside = ih >= 0 && ih < H && iw >= 0 && iw < W;
                            size_t x = ((size_t)i * C + c) * HW + (size_t)ih * W + iw;
                            ref[j] = inside ? in[x] : 0.0f;
                            if (inside) din_r[x] += col[j], dw_r[x] += col[j];
                        }
    conv2d_col2im(din, col, n, C, H, W, K, stride, pad);
    conv2d_col2im_write(dw, col, n, C, H, W, K, stride, pad);
    conv2d_im2col(col, in, n, C, H, W, K, stride, pad);
    CHECK(!memcmp(col, ref, ncol * sizeof *col), "im2col n%d C%d %dx%d K%d s%d p%d: the plain loops' bits", n,
          C, H, W, K, stride, pad);
    CHECK(!memcmp(din, din_r, nin * sizeof *din), "col2im n%d C%d %dx%d K%d s%d p%d: the plain loops' bits",
          n, C, H, W, K, stride, pad);
    CHECK(!memcmp(dw, dw_r, nin * sizeof *dw), "col2im_write n%d C%d %dx%d K%d s%d p%d: the plain loops' bits",
          n, C, H, W, K, stride, pad);
    free(in), free(col), free(ref), free(din), free(din_r), free(dw), free(dw_r);
}

/* ---- batch norm sums -------------------------------------------------------- */

/* batchnorm_sums and batchnorm_grad_sums (lanes of running sums, added
 * pairwise) against one running sum per plane in double, and that they add
 * to what s and g hold. */
static void test_bn_sums(int rows, int C, int HW) {
    size_t n = (size_t)rows * C * HW;
    float *x = fixture_rand_floats(&rng, n, 2, 4), *dy = fixture_rand_floats(&rng, n, -1, 1);
    float *mean = fixture_rand_floats(&rng, (size_t)C, 2.5f, 3.5f),
          *invstd = fixture_rand_floats(&rng, (size_t)C, 0.5f, 2);
    double *s = xcalloc(2 * (size_t)C, sizeof *s), *g = xcalloc(2 * (size_t)C, sizeof *g);
    double *sr = xcalloc(2 * (size_t)C, sizeof *sr), *gr = xcalloc(2 * (size_t)C, sizeof *gr);
    for (int c = 0; c < 2 * C; c++) s[c] = g[c] = sr[c] = gr[c] = c + 1.0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < HW; i++) {
                size_t o = ((size_t)r * C + c) * HW + i;
                sr[c] += x[o];
                sr[C + c] += (double)x[o] * x[o];
                gr[c] += dy[o];
                gr[C + c] += (double)dy[o] * ((x[o] - mean[c]) * invstd[c]);
            }
    batchnorm_sums(s, x, rows, C, HW);
    batchnorm_grad_sums(g, dy, x, mean, invstd, NULL, NULL, rows, C, HW);
    double es = 0, eg = 0;
    for (int c = 0; c < 2 * C; c++) {
        es = fmax(es, fabs(s[c] - sr[c]) / fmax(fabs(sr[c]), 1.0));
        eg = fmax(eg, fabs(g[c] - gr[c]) / fmax(fabs(gr[c]), 1.0));
    }
    CHECK(es < 1e-12, "batchnorm_sums rows %d C %d HW %d: rel err %g against one running sum", rows, C, HW,
          es);
    CHECK(eg < 1e-12, "batchnorm_grad_sums rows %d C %d HW %d: rel err %g against one running sum", rows, C,
          HW, eg);
    free(x), free(dy), free(mean), free(invstd), free(s), free(g), free(sr), free(gr);
}

/* The sums' exact order, as plain loops: per plane, SUM_LANES running sums
 * in double (value i into lane i mod SUM_LANES) added pairwise, or one running
 * sum below SUM_LANES values; dy cut to +0 where a fused ReLU's output y is
 * not > 0; planes added into s / g in row-major order. */
static double ref_lanes(const double *l) {
    double v[SUM_LANES];
    memcpy(v, l, sizeof v);
    for (int w = SUM_LANES / 2; w >= 1; w /= 2)
        for (int j = 0; j < w; j++) v[j] += v[j + w];
    return v[0];
}

static void ref_bn_plane(double *a, double *b, const float *dy, const float *y, const float *x, float mean,
                         float invstd, int n) {
    double la[SUM_LANES] = {0}, lb[SUM_LANES] = {0}, sa = 0, sb = 0;
    for (int i = 0; i < n; i++) {
        float d = dy[i];
        if (y && !(y[i] > 0.0f)) d = 0.0f;
        double u = d, v = (double)d * ((x[i] - mean) * invstd);
        if (n < SUM_LANES)
            sa += u, sb += v;
        else
            la[i % SUM_LANES] += u, lb[i % SUM_LANES] += v;
    }
    *a = n < SUM_LANES ? sa : ref_lanes(la);
    *b = n < SUM_LANES ? sb : ref_lanes(lb);
}

/* A value of x next to where the batch norm's output v = x sc + sh (sc =
 * invstd gamma, sh = beta - mean sc) crosses 0 at which the sign of v
 * depends on how it is rounded: v > 0 with an FMA and not without, or the
 * reverse. Most roots have none next to them: *beta is moved until there
 * is one. A fused ReLU's cut recomputed in the backward (BN_V) differs
 * there unless it rounds as the forward did. */
static float bn_rounding_x(float mean, float invstd, float gamma, float *beta) {
    for (int tries = 0; tries < 1000; tries++, *beta += 1e-3f) {
        float sc = invstd * gamma, sh = *beta - mean * sc, r = mean - *beta / sc, lo = r, hi = r;
        for (int j = 0; j < 16; j++) {
            lo = nextafterf(lo, -INFINITY), hi = nextafterf(hi, INFINITY);
            for (int side = 0; side < 2; side++) {
                float x = side ? hi : lo;
                volatile float p = x * sc; /* not contracted */
                if ((fmaf(x, sc, sh) > 0.0f) != (p + sh > 0.0f)) return x;
            }
        }
    }
    CHECK(0, "bn_rounding_x: no value whose sign depends on the rounding (mean %g, sc %g)", mean,
          invstd * gamma);
    return mean;
}

/* batchnorm_sums and batchnorm_grad_sums (with and without the fused
 * ReLU, whose cut the kernel takes from x, gamma and beta: here against the
 * batch norm's output y from batchnorm_apply without the ReLU, with exact
 * zeros in y (x = mean = 0.25 where beta = 0: exact with or without FMA
 * contraction, e.g. clang's default -ffp-contract=on), values of x where
 * the sign of y depends on the rounding (bn_rounding_x), negative values,
 * -0 in dy) bit for bit against ref_bn_plane's order. */
static void test_bn_sums_bits(int rows, int C, int HW) {
    size_t n = (size_t)rows * C * HW;
    float *x = fixture_rand_floats(&rng, n, -3, 3), *dy = fixture_rand_floats(&rng, n, -1, 1);
    for (size_t i = 0; i < n; i += 13) dy[i] = -0.0f;
    float *mean = fixture_rand_floats(&rng, (size_t)C, -0.5f, 0.5f),
          *invstd = fixture_rand_floats(&rng, (size_t)C, 0.5f, 2),
          *gamma = fixture_rand_floats(&rng, (size_t)C, -1.5f, 1.5f),
          *beta = fixture_rand_floats(&rng, (size_t)C, -0.5f, 0.5f), *y = xaligned_floats(n);
    beta[0] = 0.0f, mean[0] = 0.25f; /* mean sc exact */
    for (int c = 1; c < C; c++) {
        float xr = bn_rounding_x(mean[c], invstd[c], gamma[c], &beta[c]);
        for (int r = 0; r < rows; r++)
            for (int i = 1; i < HW; i += 3) x[((size_t)r * C + c) * HW + i] = xr;
    }
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < HW; i += 3) x[(size_t)r * C * HW + i] = mean[0]; /* y exactly +0 there */
    batchnorm_apply(y, x, mean, invstd, gamma, beta, rows, C, HW, 0);
    size_t zeros = 0;
    for (size_t i = 0; i < n; i++) zeros += y[i] == 0.0f;
    CHECK(zeros >= (size_t)rows * ((HW + 2) / 3), "bn sums bits: the fixture has zeros in y (%zu)", zeros);
    double *s = xcalloc(2 * (size_t)C, sizeof *s), *sr = xcalloc(2 * (size_t)C, sizeof *sr);
    double *g[2], *gr[2];
    for (int k = 0; k < 2; k++)
        g[k] = xcalloc(2 * (size_t)C, sizeof *g[k]), gr[k] = xcalloc(2 * (size_t)C, sizeof *gr[k]);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < C; c++) {
            size_t o = ((size_t)r * C + c) * HW;
            double a, b;
            ref_bn_plane(&a, &b, x + o, NULL, x + o, 0.0f, 1.0f, HW); /* sum x and x * x */
            sr[c] += a, sr[C + c] += b;
            for (int k = 0; k < 2; k++) {
                ref_bn_plane(&a, &b, dy + o, k ? y + o : NULL, x + o, mean[c], invstd[c], HW);
                gr[k][c] += a, gr[k][C + c] += b;
            }
        }
    batchnorm_sums(s, x, rows, C, HW);
    batchnorm_grad_sums(g[0], dy, x, mean, invstd, NULL, NULL, rows, C, HW);
    batchnorm_grad_sums(g[1], dy, x, mean, invstd, gamma, beta, rows, C, HW);
    CHECK(memcmp(s, sr, 2 * (size_t)C * sizeof *s) == 0,
          "batchnorm_sums rows %d C %d HW %d: bits of the lanes' order", rows, C, HW);
    for (int k = 0; k < 2; k++)
        CHECK(memcmp(g[k], gr[k], 2 * (size_t)C * sizeof *g[k]) == 0,
              "batchnorm_grad_sums rows %d C %d HW %d %s: bits of the lanes' order", rows, C, HW,
              k ? "relu" : "plain");
    free(x), free(dy), free(y), free(mean), free(invstd), free(gamma), free(beta), free(s), free(sr);
    for (int k = 0; k < 2; k++) free(g[k]), free(gr[k]);
}

/* The block batch norm + ReLU + 2x2 stride-2 max pooling (nn/batchnorm.h)
 * against the kernels of the three nodes one after the other
 * (batchnorm_apply with the ReLU, maxpool_forward; maxpool_backward,
 * relu_backward, batchnorm_grad_sums and batchnorm_backward_input without
 * the ReLU), bit for bit, at 1 and 3 threads: pooled output, argmax,
 * gradient sums, input gradient. x has ties after the ReLU (many
 * values below the mean), -0 and values where the ReLU's cut depends on
 * the rounding (bn_rounding_x); dy has -0. The fused batch norm + ReLU
 * (batchnorm_grad_sums and batchnorm_backward_input with beta) against the
 * same, without the pooling. */
static void test_bn_pool_block(int rows, int C, int H, int W) {
    int Ho = H / 2, Wo = W / 2, HW = H * W;
    size_t n = (size_t)rows * C * HW, np = (size_t)rows * C * Ho * Wo;
    float *x = fixture_rand_floats(&rng, n, -2, 2), *dyp = fixture_rand_floats(&rng, np, -1, 1);
    for (size_t i = 0; i < n; i += 5) x[i] = -0.0f;
    for (size_t i = 0; i < np; i += 7) dyp[i] = -0.0f;
    float *mean = fixture_rand_floats(&rng, (size_t)C, -0.5f, 0.5f),
          *invstd = fixture_rand_floats(&rng, (size_t)C, 0.5f, 2),
          *gamma = fixture_rand_floats(&rng, (size_t)C, -1.5f, 1.5f),
          *beta = fixture_rand_floats(&rng, (size_t)C, -0.5f, 0.5f);
    for (int c = 0; c < C; c++) { /* the fused ReLU's cut where it depends on the rounding */
        float xr = bn_rounding_x(mean[c], invstd[c], gamma[c], &beta[c]);
        for (size_t i = 2; i < n; i += 5)
            if ((int)(i / (size_t)HW % (size_t)C) == c) x[i] = xr;
    }
    double *gs = xmalloc(2 * (size_t)C * sizeof *gs);
    for (int c = 0; c < 2 * C; c++) gs[c] = 0.1 * (c - C) * rows * HW;
    /* the three kernels */
    float *yr = xaligned_floats(n), *pr = xaligned_floats(np), *dfull = xaligned_floats(n),
          *dxr = xaligned_floats(n);
    int32_t *ir = xmalloc(np * sizeof *ir);
    double *gr = xcalloc(2 * (size_t)C, sizeof *gr);
    parallel_init(1);
    batchnorm_apply(yr, x, mean, invstd, gamma, beta, rows, C, HW, 1);
    maxpool_forward(pr, ir, yr, rows, C, H, W, 2, 2);
    maxpool_backward(dfull, dyp, ir, rows, C, H, W, 2, 2);
    relu_backward(dfull, dfull, yr, n);
    batchnorm_grad_sums(gr, dfull, x, mean, invstd, NULL, NULL, rows, C, HW);
    batchnorm_backward_input(dxr, dfull, x, mean, invstd, gamma, NULL, gs, (double)rows * HW, rows, C, HW);
    float *p = xaligned_floats(np), *dx = xaligned_floats(n);
    int32_t *id = xmalloc(np * sizeof *id);
    double *g = xmalloc(2 * (size_t)C * sizeof *g);
    for (int T = 1; T <= 3; T += 2) {
        parallel_init(T);
        memset(p, 0x7f, np * sizeof *p), memset(dx, 0x7f, n * sizeof *dx), memset(id, 0x7f, np * sizeof *id);
        memset(g, 0, 2 * (size_t)C * sizeof *g);
        batchnorm_apply_pool(p, id, x, mean, invstd, gamma, beta, rows, C, H, W);
        batchnorm_grad_sums_pool(g, dyp, p, id, x, mean, invstd, rows, C, H, W);
        batchnorm_backward_input_pool(dx, dyp, p, id, x, mean, invstd, gamma, gs, (double)rows * HW, rows, C,
                                      H, W);
        CHECK(memcmp(p, pr, np * sizeof *p) == 0 && memcmp(id, ir, np * sizeof *id) == 0,
              "bn+relu+pool rows %d C %d %dx%d, %d threads: pooled output and argmax bit for bit", rows, C, H,
              W, T);
        CHECK(memcmp(g, gr, 2 * (size_t)C * sizeof *g) == 0,
              "bn+relu+pool rows %d C %d %dx%d, %d threads: gradient sums bit for bit", rows, C, H, W, T);
        CHECK(memcmp(dx, dxr, n * sizeof *dx) == 0,
              "bn+relu+pool rows %d C %d %dx%d, %d threads: input gradient bit for bit", rows, C, H, W, T);
    }
    /* batch norm + ReLU, no pooling: dy of the ReLU's output (yr) */
    float *dyf = fixture_rand_floats(&rng, n, -1, 1), *dcut = xaligned_floats(n);
    for (size_t i = 0; i < n; i += 7) dyf[i] = -0.0f;
    relu_backward(dcut, dyf, yr, n);
    memset(gr, 0, 2 * (size_t)C * sizeof *gr);
    batchnorm_grad_sums(gr, dcut, x, mean, invstd, NULL, NULL, rows, C, HW);
    batchnorm_backward_input(dxr, dcut, x, mean, invstd, gamma, NULL, gs, (double)rows * HW, rows, C, HW);
    for (int T = 1; T <= 3; T += 2) {
        parallel_init(T);
        memset(dx, 0x7f, n * sizeof *dx), memset(g, 0, 2 * (size_t)C * sizeof *g);
        batchnorm_grad_sums(g, dyf, x, mean, invstd, gamma, beta, rows, C, HW);
        batchnorm_backward_input(dx, dyf, x, mean, invstd, gamma, beta, gs, (double)rows * HW, rows, C, HW);
        CHECK(memcmp(g, gr, 2 * (size_t)C * sizeof *g) == 0 && memcmp(dx, dxr, n * sizeof *dx) == 0,
              "bn+relu rows %d C %d %dx%d, %d threads: gradient sums and input gradient bit for bit", rows, C,
              H, W, T);
    }
    free(dyf), free(dcut);
    parallel_init(1);
    free(x), free(dyp), free(mean), free(invstd), free(gamma), free(beta), free(gs), free(yr), free(pr);
    free(dfull), free(dxr), free(ir), free(gr), free(p), free(dx), free(id), free(g);
}

/* ---- maxpool ------------------------------------------------------------- */

typedef struct PoolCase {
    int B, C, H, W, size, stride, Ho, Wo;
    float *in, *out, *R;
    int32_t *idx;
} PoolCase;

static double pool_loss(void *ctx) {
    PoolCase *p = ctx;
    maxpool_forward(p->out, p->idx, p->in, p->B, p->C, p->H, p->W, p->size, p->stride);
    return fixture_dot(p->out, p->R, (size_t)p->B * p->C * p->Ho * p->Wo);
}

static void test_pool(int B, int C, int H, int W, int size, int stride) {
    PoolCase p = {
        B, C, H, W, size, stride, maxpool_out_size(H, size, stride), maxpool_out_size(W, size, stride),
        0, 0, 0, 0};
    char what[120];
    snprintf(what, sizeof what, "maxpool B%d C%d %dx%d size %d stride %d", B, C, H, W, size, stride);
    size_t nin = (size_t)B * C * H * W, nout = (size_t)B * C * p.Ho * p.Wo;
    /* distinct values 0.01 apart, so a 1e-3 step never changes an argmax */
    uint32_t *perm = xmalloc(nin * sizeof *perm);
    for (size_t i = 0; i < nin; i++) perm[i] = (uint32_t)i;
    rng_shuffle_u32(&rng, perm, nin);
    p.in = xaligned_floats(nin);
    for (size_t i = 0; i < nin; i++) p.in[i] = 0.01f * (float)perm[i] - 1.0f;
    p.out = xaligned_floats(nout);
    p.idx = xmalloc(nout * sizeof *p.idx);
    p.R = fixture_rand_floats(&rng, nout, -1, 1);
    pool_loss(&p);

    int bad = 0;
    for (size_t pl = 0; pl < (size_t)B * C; pl++)
        for (int oh = 0; oh < p.Ho; oh++)
            for (int ow = 0; ow < p.Wo; ow++) {
                float m = -INFINITY;
                int mi = -1;
                for (int kh = 0; kh < size; kh++)
                    for (int kw = 0; kw < size; kw++) {
                        int ih = oh * stride + kh, iw = ow * stride + kw;
                        float v = p.in[pl * H * W + (size_t)ih * W + iw];
                        if (v > m) m = v, mi = ih * W + iw;
                    }
                size_t o = (pl * p.Ho + oh) * p.Wo + ow;
                bad += p.out[o] != m || p.idx[o] != mi;
            }
    CHECK(bad == 0, "%s: %d outputs differ from the reference loops", what, bad);

    float *din = fixture_rand_floats(&rng, nin, -5, 5);
    maxpool_backward(din, p.R, p.idx, B, C, H, W, size, stride);
    double e = fixture_fd_error(pool_loss, &p, p.in, din, nin, 1e-3f, 400, &rng);
    CHECK(e < 1e-2, "%s: din vs finite differences, rel err %g", what, e);
    free(perm), free(p.in), free(p.out), free(p.idx), free(p.R), free(din);
}

static void test_pool_ties(void) {
    /* one 2x4 plane, two 2x2 windows: [1 3 | 5 5]
     *                                   [3 2 | 5 5] */
    float in[8] = {1, 3, 5, 5, 3, 2, 5, 5}, out[2], din[8], dout[2] = {10, 20};
    int32_t idx[2];
    maxpool_forward(out, idx, in, 1, 1, 2, 4, 2, 2);
    CHECK(out[0] == 3 && idx[0] == 1, "tie: first max in row-major order (got %d)", idx[0]);
    CHECK(out[1] == 5 && idx[1] == 2, "all equal: first element (got %d)", idx[1]);
    maxpool_backward(din, dout, idx, 1, 1, 2, 4, 2, 2);
    float want[8] = {0, 10, 20, 0, 0, 0, 0, 0};
    CHECK(memcmp(din, want, sizeof din) == 0, "tie backward goes to the first max only");

    /* -inf window keeps the first index; NaN wins (PyTorch propagates it) */
    float in2[8] = {-INFINITY, -INFINITY, 1, NAN, -INFINITY, -INFINITY, 7, 2};
    maxpool_forward(out, idx, in2, 1, 1, 2, 4, 2, 2);
    CHECK(isinf(out[0]) && out[0] < 0 && idx[0] == 0, "all -inf: index 0 (got %d)", idx[0]);
    CHECK(isnan(out[1]) && idx[1] == 3, "NaN propagates (got %g at %d)", out[1], idx[1]);

    /* overlapping windows (size 2, stride 1) sharing the max: gradients sum */
    float in4[9] = {0, 0, 0, 0, 9, 0, 0, 0, 0}, out4[4], din4[9], dout4[4] = {1, 2, 3, 4};
    int32_t idx4[4];
    maxpool_forward(out4, idx4, in4, 1, 1, 3, 3, 2, 1);
    maxpool_backward(din4, dout4, idx4, 1, 1, 3, 3, 2, 1);
    CHECK(din4[4] == 10.0f && din4[0] == 0.0f, "overlapping windows sum at the shared max");
}

/* 2x2 stride-2 pooling (sixteen outputs at a time) against a plain loop of
 * the rule, bit for bit: many ties (values from a small set), -0 and +0,
 * NaN (the last NaN of a window wins), -inf; widths around the 16-output
 * blocks and the plane's end, odd sizes (floor mode), one channel. */
static void test_pool2_bits(int B, int C, int H, int W) {
    int Ho = H / 2, Wo = W / 2;
    size_t nin = (size_t)B * C * H * W, nout = (size_t)B * C * Ho * Wo;
    float *in = xaligned_floats(nin), *out = xaligned_floats(nout), *ref = xaligned_floats(nout);
    int32_t *idx = xmalloc(nout * sizeof *idx), *iref = xmalloc(nout * sizeof *iref);
    const float vals[8] = {0.0f, -0.0f, 1.0f, -1.0f, 2.0f, NAN, -INFINITY, 0.5f};
    for (size_t i = 0; i < nin; i++) in[i] = vals[rng_below(&rng, 8)];
    for (size_t pl = 0; pl < (size_t)B * C; pl++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                int at[4] = {2 * oh * W + 2 * ow, 2 * oh * W + 2 * ow + 1, (2 * oh + 1) * W + 2 * ow,
                             (2 * oh + 1) * W + 2 * ow + 1};
                float m = in[pl * H * W + at[0]];
                int mi = at[0];
                for (int k = 1; k < 4; k++) {
                    float v = in[pl * H * W + at[k]];
                    if (v > m || isnan(v)) m = v, mi = at[k];
                }
                ref[(pl * Ho + oh) * Wo + ow] = m, iref[(pl * Ho + oh) * Wo + ow] = mi;
            }
    maxpool_forward(out, idx, in, B, C, H, W, 2, 2);
    CHECK(memcmp(out, ref, nout * sizeof *out) == 0 && memcmp(idx, iref, nout * sizeof *idx) == 0,
          "maxpool 2x2 B%d C%d %dx%d: outputs and argmax bit for bit as the plain loop", B, C, H, W);
    free(in), free(out), free(ref), free(idx), free(iref);
}

/* ---- relu, sigmoid -------------------------------------------------------- */

typedef struct ActCase {
    int sig;
    size_t n;
    float *in, *out, *R;
} ActCase;

static double act_loss(void *ctx) {
    ActCase *a = ctx;
    if (a->sig)
        sigmoid_forward(a->out, a->in, a->n);
    else
        relu_forward(a->out, a->in, a->n);
    return fixture_dot(a->out, a->R, a->n);
}

static void test_activation(int sig) {
    const char *what = sig ? "sigmoid" : "relu";
    size_t n = 300;
    ActCase a = {sig, n, fixture_rand_floats(&rng, n, -3, 3), xaligned_floats(n),
                 fixture_rand_floats(&rng, n, -1, 1)};
    for (size_t i = 0; i < n; i++) /* keep relu's kink out of the step's reach */
        if (fabsf(a.in[i]) < 0.05f) a.in[i] = 0.1f;
    act_loss(&a);
    float *din = xaligned_floats(n);
    if (sig)
        sigmoid_backward(din, a.R, a.out, n);
    else
        relu_backward(din, a.R, a.out, n);
    double e = fixture_fd_error(act_loss, &a, a.in, din, n, 1e-3f, n, &rng);
    CHECK(e < 2e-3, "%s: din vs finite differences, rel err %g", what, e);

    /* in place: forward out == in, backward din == dout */
    float *x = xaligned_floats(n), *g = xaligned_floats(n);
    memcpy(x, a.in, n * sizeof *x);
    memcpy(g, a.R, n * sizeof *g);
    if (sig) {
        sigmoid_forward(x, x, n);
        sigmoid_backward(g, g, x, n);
    } else {
        relu_forward(x, x, n);
        relu_backward(g, g, x, n);
    }
    CHECK(memcmp(x, a.out, n * sizeof *x) == 0, "%s: in-place forward", what);
    CHECK(memcmp(g, din, n * sizeof *g) == 0, "%s: in-place backward", what);
    free(a.in), free(a.out), free(a.R), free(din), free(x), free(g);
}

static void test_activation_extremes(void) {
    float in[6] = {-200, -90, -1e-30f, 0, 90, 200}, out[6];
    sigmoid_forward(out, in, 6);
    int ok = 1;
    for (int i = 0; i < 6; i++) ok &= isfinite(out[i]) && out[i] >= 0 && out[i] <= 1;
    CHECK(ok && out[0] == 0.0f && out[5] == 1.0f && out[3] == 0.5f, "sigmoid saturates cleanly: %g %g %g",
          out[0], out[3], out[5]);
    CHECK(fabs(out[1] - exp(-90.0)) < 1e-6 * exp(-90.0) + 1e-45, "sigmoid(-90) = %g", out[1]);
    float r[3] = {-1, 0, 2}, ro[3];
    relu_forward(ro, r, 3);
    CHECK(ro[0] == 0 && ro[1] == 0 && ro[2] == 2, "relu values");
}

/* ---- tanh, leaky_relu -------------------------------------------------------- */

typedef struct Act2Case {
    int leaky; /* 0: tanh */
    float slope;
    size_t n;
    float *in, *out, *R;
} Act2Case;

static double act2_loss(void *ctx) {
    Act2Case *a = ctx;
    if (a->leaky) leaky_relu_forward(a->out, a->in, a->n, a->slope);
    else tanh_forward(a->out, a->in, a->n);
    return fixture_dot(a->out, a->R, a->n);
}

static void act2_backward(const Act2Case *a, float *din, const float *dout, const float *out) {
    if (a->leaky) leaky_relu_backward(din, dout, out, a->n, a->slope);
    else tanh_backward(din, dout, out, a->n);
}

/* Finite differences, in-place forward and backward, values by hand. */
static void test_activation2(int leaky, float slope) {
    char what[48];
    snprintf(what, sizeof what, leaky ? "leaky_relu slope %g" : "tanh", slope);
    size_t n = 300;
    Act2Case a = {leaky, slope, n, fixture_rand_floats(&rng, n, -3, 3), xaligned_floats(n),
                  fixture_rand_floats(&rng, n, -1, 1)};
    for (size_t i = 0; i < n; i++) /* keep the kink out of the step's reach */
        if (fabsf(a.in[i]) < 0.05f) a.in[i] = 0.1f;
    act2_loss(&a);
    float *din = xaligned_floats(n);
    act2_backward(&a, din, a.R, a.out);
    double e = fixture_fd_error(act2_loss, &a, a.in, din, n, 1e-3f, n, &rng);
    CHECK(e < 2e-3, "%s: din vs finite differences, rel err %g", what, e);
    float *x = xaligned_floats(n), *g = xaligned_floats(n);
    memcpy(x, a.in, n * sizeof *x);
    memcpy(g, a.R, n * sizeof *g);
    if (leaky) leaky_relu_forward(x, x, n, slope);
    else tanh_forward(x, x, n);
    act2_backward(&a, g, g, x);
    CHECK(memcmp(x, a.out, n * sizeof *x) == 0 && memcmp(g, din, n * sizeof *g) == 0, "%s: in place", what);
    float v[4] = {-2, -0.5f, 0, 3}, o[4];
    if (leaky) {
        leaky_relu_forward(o, v, 4, slope);
        CHECK(o[0] == -2 * slope && o[1] == -0.5f * slope && o[2] == 0 && o[3] == 3, "%s values", what);
    } else {
        tanh_forward(o, v, 4);
        CHECK(fabsf(o[0] + 0.96402758f) < 1e-6f && o[2] == 0 && fabsf(o[3] - 0.99505475f) < 1e-6f, "tanh values");
    }
    free(a.in), free(a.out), free(a.R), free(din), free(x), free(g);
}

/* ---- linear -------------------------------------------------------------- */

typedef struct LinCase {
    int B, I, O;
    float *in, *w, *b, *out, *R;
} LinCase;

static double lin_loss(void *ctx) {
    LinCase *l = ctx;
    linear_forward(l->out, l->in, l->w, l->b, l->B, l->I, l->O);
    return fixture_dot(l->out, l->R, (size_t)l->B * l->O);
}

static void test_linear(int B, int I, int O) {
    char what[64];
    snprintf(what, sizeof what, "linear B%d %d->%d", B, I, O);
    size_t nin = (size_t)B * I, nw = (size_t)O * I, nout = (size_t)B * O;
    LinCase l = {B,
                 I,
                 O,
                 fixture_rand_floats(&rng, nin, -1, 1),
                 fixture_rand_floats(&rng, nw, -1, 1),
                 fixture_rand_floats(&rng, (size_t)O, -1, 1),
                 xaligned_floats(nout),
                 fixture_rand_floats(&rng, nout, -1, 1)};
    lin_loss(&l);
    float *ref = xaligned_floats(nout);
    for (int r = 0; r < B; r++)
        for (int o = 0; o < O; o++) {
            double s = l.b[o];
            for (int i = 0; i < I; i++) s += (double)l.in[(size_t)r * I + i] * l.w[(size_t)o * I + i];
            ref[(size_t)r * O + o] = (float)s;
        }
    double e = fixture_max_rel_err(l.out, ref, nout);
    CHECK(e < 1e-5, "%s: forward vs naive, rel err %g", what, e);
    linear_forward(l.out, l.in, l.w, NULL, B, I, O);
    for (int r = 0; r < B; r++)
        for (int o = 0; o < O; o++) ref[(size_t)r * O + o] -= l.b[o];
    e = fixture_max_rel_err(l.out, ref, nout);
    CHECK(e < 1e-5, "%s: forward without bias, rel err %g", what, e);

    float *din = fixture_rand_floats(&rng, nin, -5, 5), *dw = xaligned_floats(nw);
    float *db = xaligned_floats((size_t)O);
    linear_backward(din, dw, db, l.R, l.in, l.w, B, I, O);
    e = fixture_fd_error(lin_loss, &l, l.in, din, nin, 0.05f, 300, &rng);
    CHECK(e < 2e-3, "%s: din vs finite differences, rel err %g", what, e);
    e = fixture_fd_error(lin_loss, &l, l.w, dw, nw, 0.05f, 300, &rng);
    CHECK(e < 2e-3, "%s: dw vs finite differences, rel err %g", what, e);
    e = fixture_fd_error(lin_loss, &l, l.b, db, (size_t)O, 0.05f, 300, &rng);
    CHECK(e < 2e-3, "%s: db vs finite differences, rel err %g", what, e);

    float *dw2 = xaligned_floats(nw), *db2 = xaligned_floats((size_t)O);
    float *din2 = xaligned_floats(nin);
    for (size_t i = 0; i < nw; i++) dw2[i] = 2 * dw[i];
    for (int i = 0; i < O; i++) db2[i] = 2 * db[i];
    memcpy(din2, din, nin * sizeof *din);
    linear_backward(din, dw, db, l.R, l.in, l.w, B, I, O);
    CHECK(fixture_max_rel_err(dw, dw2, nw) < 1e-6, "%s: dw accumulates", what);
    CHECK(fixture_max_rel_err(db, db2, (size_t)O) < 1e-6, "%s: db accumulates", what);
    CHECK(fixture_max_rel_err(din, din2, nin) == 0.0, "%s: din is written, not added", what);
    linear_backward(NULL, dw, NULL, l.R, l.in, l.w, B, I, O);
    for (size_t i = 0; i < nw; i++) dw2[i] = 1.5f * dw2[i];
    CHECK(fixture_max_rel_err(dw, dw2, nw) < 1e-6, "%s: din = db = NULL still adds dw", what);
    free(l.in), free(l.w), free(l.b), free(l.out), free(l.R), free(ref);
    free(din), free(dw), free(db), free(dw2), free(db2), free(din2);
}

/* ---- l2norm -------------------------------------------------------------- */

typedef struct NormCase {
    int B, D;
    float *in, *out, *norms, *R;
} NormCase;

static double norm_loss(void *ctx) {
    NormCase *c = ctx;
    l2norm_forward(c->out, c->norms, c->in, c->B, c->D);
    return fixture_dot(c->out, c->R, (size_t)c->B * c->D);
}

static void test_l2norm(void) {
    int B = 5, D = 7;
    size_t n = (size_t)B * D;
    NormCase c = {B, D, NULL, NULL, NULL, NULL};
    c.in = fixture_rand_floats(&rng, n, -1, 1);
    c.out = xaligned_floats(n);
    c.norms = xaligned_floats((size_t)B);
    c.R = fixture_rand_floats(&rng, n, -1, 1);
    norm_loss(&c);
    int ok = 1;
    for (int r = 0; r < B; r++) ok &= fabs(fixture_dot(c.out + r * D, c.out + r * D, D) - 1) < 1e-6;
    CHECK(ok, "l2norm rows have unit norm");
    float *din = xaligned_floats(n);
    l2norm_backward(din, c.R, c.out, c.norms, B, D);
    double e = fixture_fd_error(norm_loss, &c, c.in, din, n, 1e-3f, n, &rng);
    CHECK(e < 5e-3, "l2norm: din vs finite differences, rel err %g", e);

    /* in place */
    float *x = xaligned_floats(n), *g = xaligned_floats(n), *nr = xaligned_floats((size_t)B);
    memcpy(x, c.in, n * sizeof *x);
    memcpy(g, c.R, n * sizeof *g);
    l2norm_forward(x, nr, x, B, D);
    l2norm_backward(g, g, x, nr, B, D);
    CHECK(memcmp(x, c.out, n * sizeof *x) == 0 && memcmp(g, din, n * sizeof *g) == 0, "l2norm in place");

    /* clamped rows: a zero row gives zeros and din = dout / eps (finite, as
     * autograd through clamp_min); a tiny row is linear: x / eps */
    memset(c.in, 0, D * sizeof *c.in);
    for (int j = 0; j < D; j++) c.in[D + j] = 1e-14f * (float)(j + 1);
    norm_loss(&c);
    l2norm_backward(din, c.R, c.out, c.norms, B, D);
    ok = 1;
    for (int j = 0; j < 2 * D; j++) ok &= isfinite(c.out[j]) && isfinite(din[j]);
    for (int j = 0; j < D; j++) ok &= c.out[j] == 0.0f;
    for (int j = 0; j < 2 * D; j++) ok &= fabs(din[j] - c.R[j] / 1e-12) <= 1e-5 * fabs(c.R[j] / 1e-12);
    for (int j = 0; j < D; j++) ok &= fabs(c.out[D + j] - 1e-2 * (j + 1)) < 1e-6;
    CHECK(ok, "l2norm clamped rows: finite, out = x/eps, din = dout/eps");
    free(c.in), free(c.out), free(c.norms), free(c.R), free(din), free(x), free(g), free(nr);
}

int main(void) {
    rng_seed(&rng, 1, RNG_TEST, 0);
    /* finite differences on small shapes */
    test_conv(2, 3, 7, 6, 4, 3, 1, 0, 1);  /* non-square */
    test_conv(2, 2, 8, 7, 3, 3, 2, 1, 1);  /* stride 2, pad 1 */
    test_conv(3, 2, 9, 9, 2, 5, 1, 2, 1);  /* K 5, pad 2 ("same") */
    test_conv(1, 3, 6, 5, 4, 1, 1, 0, 1);  /* 1x1, 4 filters: the per-pixel dot products */
    test_conv(3, 16, 9, 7, 1, 1, 1, 0, 1); /* 1x1, one filter (a mask head), planes not of 16 floats */
    test_conv(1, 1, 3, 5, 1, 1, 1, 0, 1);  /* 1x1, one filter, one channel, one image */
    test_conv(2, 9, 17, 3, 1, 1, 1, 0, 1); /* 1x1, one filter, 9 channels, 3 blocks and a part */
    test_conv(2, 5, 8, 8, 5, 1, 1, 0, 1);  /* 1x1, 5 filters: the GEMM */
    test_conv(2, 2, 10, 9, 3, 4, 3, 1, 1); /* K 4, stride 3, pad 1 */
    test_conv(2, 1, 5, 5, 2, 3, 2, 2, 1);  /* pad >= K - 1: border rows of zeros */
    /* the fmnist-small shapes with several chunks and a partial last one */
    test_conv(31, 1, 28, 28, 32, 5, 1, 0, 0);
    test_conv(20, 32, 12, 12, 64, 5, 1, 0, 0);
    /* "same" 3 x 3 convolutions (the co-segmentation network's) */
    test_conv(5, 7, 8, 8, 16, 3, 1, 1, 1);
    test_conv(9, 40, 16, 5, 24, 3, 1, 1, 0);
    test_conv(8, 16, 64, 64, 1, 1, 1, 0, 0); /* the co-segmentation mask head */
    /* stride-1 3 x 3 "same", 8k filters: the direct weight gradient, with
     * the input gradient as the flipped convolution (F < C) or the GEMM's
     * (F >= C); planes not of 16 floats, one row, one column, one pixel */
    test_conv(3, 9, 13, 11, 8, 3, 1, 1, 1);
    test_conv(2, 5, 4, 3, 16, 3, 1, 1, 1);
    test_conv(2, 17, 1, 9, 8, 3, 1, 1, 1);
    test_conv(2, 9, 7, 1, 8, 3, 1, 1, 1);
    test_conv(2, 3, 1, 1, 8, 3, 1, 1, 1);
    test_conv(3, 9, 64, 64, 8, 3, 1, 1, 0); /* co-segmentation's dec3 */
    test_conv(2, 20, 8, 8, 16, 3, 1, 1, 0); /* channels in three blocks */
    /* the flipped input gradient without the direct weight gradient */
    test_conv(2, 12, 7, 9, 4, 3, 1, 1, 1);  /* filters not a multiple of 8 */
    test_conv(2, 10, 5, 6, 3, 5, 1, 2, 1);  /* K 5 */
    /* the direct forward (3 x 3 same, at most 64 filters, 64 pixels or more) with a
     * group of filters not full */
    test_conv(2, 12, 9, 9, 5, 3, 1, 1, 1);
    test_conv(2, 8, 10, 10, 9, 3, 1, 1, 1);
    test_conv(1, 2, 1, 70, 16, 3, 1, 1, 1); /* one row */
    test_conv(2, 3, 70, 1, 8, 3, 1, 1, 1);  /* one column */
    test_conv(2, 5, 9, 8, 61, 3, 1, 1, 0);  /* 8 groups of filters, the last of 5 */
    /* more than 64 filters: direct where the packed weights fit in the
     * columns' space (and so the flipped input gradient of a conv with
     * more input channels, as co-segmentation's dec0), else the GEMM */
    test_conv(2, 6, 8, 8, 70, 3, 1, 1, 0);
    test_conv(2, 100, 8, 9, 16, 3, 1, 1, 0);
    test_conv(1, 64, 8, 8, 300, 3, 1, 1, 0);
    /* the flipped input gradient with F >= C on planes of 256 pixels or more
     * (with AVX-512): co-segmentation's enc2 and enc3 (fewer images), odd
     * sides, a partial group of filters, C = F */
    test_conv(2, 16, 32, 32, 32, 3, 1, 1, 0);
    test_conv(3, 32, 16, 16, 64, 3, 1, 1, 0);
    test_conv(2, 5, 17, 16, 8, 3, 1, 1, 1);
    test_conv(2, 3, 15, 19, 5, 3, 1, 1, 1);
    test_conv(2, 6, 16, 16, 6, 3, 1, 1, 1);
    test_conv(2, 4, 15, 17, 8, 3, 1, 1, 1); /* 255 pixels: the GEMM's input gradient */
    /* 4 x 4, stride 2, padding 1, even sides: the row-wise columns in conv2d's
     * own forward and backward (col2im writing din) */
    test_conv(2, 3, 8, 6, 5, 4, 2, 1, 1);
    test_conv(1, 2, 2, 46, 3, 4, 2, 1, 1);
    /* the input gradient of some channels only: co-segmentation's dec3 (9 -> 8
     * at 64 x 64, the image's channel not wanted; smaller batch), the
     * flipped path with the GEMM's forward (K 5), the col2im path (F >= C,
     * small plane), none of them */
    test_conv_part(2, 9, 64, 64, 8, 3, 1, 8);
    test_conv_part(2, 17, 9, 11, 8, 3, 1, 5);
    test_conv_part(2, 10, 7, 6, 3, 5, 2, 7);
    test_conv_part(2, 4, 5, 5, 8, 3, 1, 3);
    test_conv_part(2, 9, 8, 8, 8, 3, 1, 0);
    /* fewer filters for the flipped forward than its workspace was sized
     * for: the GEMM's chunk of 4 images (3 filters) instead of 3 (6),
     * whose columns would reach past the flipped weights */
    test_conv_part(4, 6, 35, 36, 4, 5, 2, 3);
    /* transposed convolutions: the co-segmentation decoder's doubling ones
     * (smaller batches), odd sides, stride 3, one image */
    test_deconv(3, 16, 8, 8, 8, 4, 2, 1);
    test_deconv(2, 64, 4, 4, 32, 4, 2, 1);
    test_deconv(2, 5, 7, 3, 3, 4, 2, 1);
    test_deconv(3, 3, 5, 4, 2, 3, 3, 0);
    test_deconv(1, 40, 3, 5, 1, 2, 1, 0); /* C > F K K */
    test_conv_same_threads(5, 9, 13, 11, 8, 3);
    test_conv_same_threads(4, 20, 8, 8, 16, 3);
    test_conv_same_threads(3, 5, 9, 7, 16, 3);
    test_conv_same_threads(3, 12, 7, 9, 4, 3);
    test_conv_same_threads(3, 5, 17, 16, 8, 3);
    test_conv_same_threads(3, 100, 8, 9, 16, 3);
    test_conv_same_threads(3, 8, 10, 10, 9, 3);
    test_conv_pointwise_threads(7, 16, 33, 31, 1);
    test_conv_pointwise_threads(1, 1, 5, 7, 1);  /* one image, one channel, a part block */
    test_conv_pointwise_threads(6, 8, 16, 16, 1); /* bn7's channels, whole blocks */
    test_conv_pointwise_threads(5, 9, 3, 3, 1);  /* a plane below one block */
    static const int mask_channels[] = {1, 3, 8, 9};
    for (int k = 0; k < 4; k++) { /* the 1 x 1 one-filter path: bits against plain loops */
        int C = mask_channels[k];
        test_conv_mask(1, C, 5, 7);
        test_conv_mask(3, C, 16, 16);
        test_conv_mask(2, C, 9, 21);
        test_conv_mask(2, C, 64, 64);
    }
    test_conv_pointwise_threads(5, 3, 8, 8, 3);
    test_im2col_bits(3, 5, 8, 8, 3, 1, 1);
    test_im2col_bits(2, 3, 16, 16, 3, 1, 1);
    test_im2col_bits(2, 2, 7, 13, 3, 1, 1); /* planes not a multiple of 16 floats */
    test_im2col_bits(1, 2, 1, 5, 3, 1, 1);  /* one row */
    test_im2col_bits(2, 2, 9, 6, 5, 1, 2);
    /* 4 x 4, stride 2, padding 1 on even sides: a doubling transposed convolution's columns */
    test_im2col_bits(2, 3, 32, 32, 4, 2, 1);
    test_im2col_bits(1, 2, 64, 64, 4, 2, 1);
    test_im2col_bits(2, 2, 6, 32, 4, 2, 1);
    test_im2col_bits(1, 2, 2, 96, 4, 2, 1);
    test_im2col_bits(1, 2, 16, 16, 4, 2, 1); /* rows of 8 */
    test_im2col_bits(2, 3, 10, 46, 4, 2, 1); /* rows of 23: a block of 7 */
    test_im2col_bits(1, 2, 2, 2, 4, 2, 1);   /* one output pixel */
    test_im2col_bits(1, 2, 9, 8, 4, 2, 1);   /* odd side: the row loops */
    test_im2col_bits(2, 3, 6, 5, 1, 1, 0);
    test_im2col_bits(1, 1, 64, 64, 3, 1, 1);
    test_im2col_bits(1, 1, 100, 100, 3, 1, 1); /* beyond the mask table: row loops */
    test_im2col_bits(2, 2, 8, 7, 3, 2, 1);     /* stride 2: row loops */

    test_bn_sums(3, 2, 1);
    test_bn_sums(3, 2, 15);
    test_bn_sums(3, 2, 16);
    test_bn_sums(2, 3, 37);
    test_bn_sums(4, 5, 64);
    test_bn_sums(2, 2, 4096);
    test_bn_sums_bits(3, 2, 1);
    test_bn_sums_bits(3, 2, 15);
    test_bn_sums_bits(2, 3, 16);
    test_bn_sums_bits(2, 3, 49); /* 7 x 7: three lanes' blocks and a tail of 1 */
    test_bn_sums_bits(2, 1, 196);
    test_bn_sums_bits(2, 4, 784);
    test_bn_sums_bits(1, 2, 1041); /* past the old 1024-float staging block */
    test_bn_pool_block(3, 4, 28, 28);
    test_bn_pool_block(5, 1, 7, 7);   /* odd: the last row and column in no window (gradient 0) */
    test_bn_pool_block(2, 3, 2, 2);
    test_bn_pool_block(3, 2, 9, 40);  /* odd height, two blocks of outputs a row */
    test_bn_pool_block(2, 2, 64, 64); /* BN_POOL_MAX_HW */

    test_pool(2, 3, 8, 6, 2, 2);
    test_pool(1, 2, 7, 9, 3, 2); /* overlapping windows */
    test_pool(2, 2, 7, 5, 2, 2); /* floor mode: last row/column dropped */
    test_pool_ties();
    test_pool2_bits(2, 3, 28, 28); /* 14 outputs a row: one short block, the plane's end copied */
    test_pool2_bits(3, 1, 7, 7);   /* floor mode, 3 outputs */
    test_pool2_bits(2, 2, 14, 14);
    test_pool2_bits(1, 2, 3, 3);   /* one output */
    test_pool2_bits(1, 1, 2, 2);
    test_pool2_bits(2, 2, 5, 64);  /* two whole blocks a row */
    test_pool2_bits(1, 3, 9, 67);  /* 33 outputs: two blocks and one, odd width */
    test_pool2_bits(1, 1, 40, 32); /* direct loads until the last row pair */

    test_activation(0);
    test_bn_pool_block(3, 2, 16, 16); /* co-segmentation's bn3 planes: t made in blocks of 16 */
    test_bn_pool_block(2, 3, 10, 48); /* three blocks a row */
    test_bn_pool_block(2, 3, 13, 4);  /* odd height, narrow */
    test_activation(1);
    test_activation_extremes();
    test_activation2(0, 0);
    test_activation2(1, 0.01f);
    test_activation2(1, 0.3f);

    test_linear(4, 9, 5);
    test_linear(7, 64, 1);
    test_linear(33, 100, 17);

    test_l2norm();
    return test_finish();
}
