/* bench_layers: times conv2d forward and backward (im2col + sgemm) and the
 * fully connected layers at fmnist-small's shapes, batch 256 by default, and
 * prints milliseconds and GFLOP/s per layer (best of the repetitions). A
 * baseline for later optimisation; run with OPENBLAS_NUM_THREADS=1 for the
 * single-core figure. Usage: bench_layers [batch] [reps] */
#include <stdio.h>
#include <stdlib.h>

#include "../nn/conv2d.h"
#include "../nn/linear.h"
#include "../nn/blas.h"
#include "../nn/util.h"

static float *rand_floats(Rng *r, size_t n) {
    float *p = xaligned_floats(n);
    for (size_t i = 0; i < n; i++) p[i] = rng_uniform(r) - 0.5f;
    return p;
}

static void bench_conv(const char *name, int B, int C, int H, int W, int F, int K, int stride, int pad,
                       int need_din, int reps, Rng *r) {
    int Ho = conv2d_out_size(H, K, stride, pad), Wo = conv2d_out_size(W, K, stride, pad);
    size_t nin = (size_t)B * C * H * W, nout = (size_t)B * F * Ho * Wo;
    size_t nw = (size_t)F * C * K * K;
    size_t nws = conv2d_workspace_floats(B, C, H, W, F, K, stride, pad);
    float *in = rand_floats(r, nin), *w = rand_floats(r, nw), *b = rand_floats(r, F);
    float *out = xaligned_floats(nout), *dout = rand_floats(r, nout);
    float *din = need_din ? xaligned_floats(nin) : NULL;
    float *dw = xaligned_floats(nw), *db = xaligned_floats(F), *ws = xaligned_floats(nws);
    double gemm = 2.0 * B * F * (double)C * K * K * Ho * Wo; /* one GEMM's flops */
    double tf = 1e30, tb = 1e30;
    for (int i = 0; i < reps; i++) {
        double t0 = now_seconds();
        conv2d_forward(out, in, w, b, B, C, H, W, F, K, stride, pad, ws);
        double t1 = now_seconds();
        conv2d_backward(din, dw, db, dout, in, w, B, C, H, W, F, K, stride, pad, ws);
        double t2 = now_seconds();
        if (t1 - t0 < tf) tf = t1 - t0;
        if (t2 - t1 < tb) tb = t2 - t1;
    }
    double fb = gemm * (need_din ? 2 : 1);
    printf("%-6s B%-4d C%-3d %3dx%-3d F%-3d K%d  ws %6.2f MB  fwd %7.2f ms %6.1f GFLOP/s  "
           "bwd%s %7.2f ms %6.1f GFLOP/s  total %6.1f GFLOP/s\n",
           name, B, C, H, W, F, K, nws * 4.0 / 1e6, tf * 1e3, gemm / tf / 1e9, need_din ? "" : "(no din)",
           tb * 1e3, fb / tb / 1e9, (gemm + fb) / (tf + tb) / 1e9);
    free(in), free(w), free(b), free(out), free(dout), free(din), free(dw), free(db), free(ws);
}

static void bench_linear(const char *name, int B, int Nin, int Nout, int reps, Rng *r) {
    float *in = rand_floats(r, (size_t)B * Nin), *w = rand_floats(r, (size_t)Nout * Nin);
    float *b = rand_floats(r, Nout), *out = xaligned_floats((size_t)B * Nout);
    float *dout = rand_floats(r, (size_t)B * Nout), *din = xaligned_floats((size_t)B * Nin);
    float *dw = xaligned_floats((size_t)Nout * Nin), *db = xaligned_floats(Nout);
    double gemm = 2.0 * B * (double)Nin * Nout, tf = 1e30, tb = 1e30;
    for (int i = 0; i < reps; i++) {
        double t0 = now_seconds();
        linear_forward(out, in, w, b, B, Nin, Nout);
        double t1 = now_seconds();
        linear_backward(din, dw, db, dout, in, w, B, Nin, Nout);
        double t2 = now_seconds();
        if (t1 - t0 < tf) tf = t1 - t0;
        if (t2 - t1 < tb) tb = t2 - t1;
    }
    printf("%-6s B%-4d %4d -> %-4d  fwd %7.3f ms %6.1f GFLOP/s  bwd %7.3f ms %6.1f GFLOP/s\n", name, B, Nin,
           Nout, tf * 1e3, gemm / tf / 1e9, tb * 1e3, 2 * gemm / tb / 1e9);
    free(in), free(w), free(b), free(out), free(dout), free(din), free(dw), free(db);
}

int main(int argc, char **argv) {
    blas_select_core(argv); /* the OpenBLAS kernels siamese runs with */
    long B = 256, reps = 10;
    if ((argc > 1 && parse_long(argv[1], 1, 1 << 16, &B)) ||
        (argc > 2 && parse_long(argv[2], 1, 100000, &reps)))
        FATAL("usage: bench_layers [batch 1..65536] [reps]");
    const char *th = getenv("OPENBLAS_NUM_THREADS");
    printf("bench_layers: batch %ld, best of %ld, OPENBLAS_NUM_THREADS=%s\n", B, reps, th ? th : "(unset)");
    Rng r;
    rng_seed(&r, 1, RNG_TEST, 99);
    bench_conv("conv1", (int)B, 1, 28, 28, 32, 5, 1, 0, 0, (int)reps, &r);
    bench_conv("conv2", (int)B, 32, 12, 12, 64, 5, 1, 0, 1, (int)reps, &r);
    bench_linear("fc1", (int)B, 1024, 256, (int)reps, &r);
    bench_linear("fc2", (int)B, 256, 64, (int)reps, &r);
    return 0;
}
