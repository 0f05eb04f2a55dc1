/* bench_convblock: times nn/convblock (fused conv2d + bias + ReLU + 2x2
 * max pool, NHWC) at fmnist-small's two shapes, batch 256 by default:
 * forward, backward without the input gradient and with it, best and
 * median of the repetitions in thread CPU time, GFLOP/s of the GEMM work.
 * Usage:
 *   bench_convblock [batch] [reps] [layer: 0 both, 1 conv1, 2 conv2] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../nn/convblock.h"
#include "../nn/util.h"

/* Thread CPU time: robust against other processes sharing the core. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void bench(const char *name, int B, int C, int H, int W, int F, int K, int nchw, int reps, Rng *r) {
    int Ho = H - K + 1, Wo = W - K + 1, Hp = Ho / 2, Wp = Wo / 2;
    size_t nin = (size_t)B * C * H * W, nout = (size_t)B * F * Hp * Wp, nw = (size_t)F * C * K * K;
    float *in = xaligned_floats(nin), *w = xaligned_floats(nw), *b = xaligned_floats(F);
    for (size_t i = 0; i < nin; i++) in[i] = rng_uniform(r) - 0.3f;
    for (size_t i = 0; i < nw; i++) w[i] = 0.1f * (rng_uniform(r) - 0.5f);
    float *out = xaligned_floats(nout), *dout = xaligned_floats(nout), *din = xaligned_floats(nin);
    for (size_t i = 0; i < nout; i++) dout[i] = rng_uniform(r) - 0.5f;
    float *dw = xaligned_floats(nw), *db = xaligned_floats(F);
    uint8_t *arg = xmalloc(nout);
    float *ws = xaligned_floats(convblock_workspace_floats(C, H, W, F, K, 1, 1));
    double *t = xcalloc((size_t)3 * reps, sizeof *t);
    for (int i = 0; i < reps; i++) {
        double t0 = cpu_now();
        convblock_forward(out, arg, in, w, b, B, C, H, W, F, K, 1, 1, nchw, ws);
        double t1 = cpu_now();
        convblock_backward(NULL, dw, db, dout, out, arg, in, w, B, C, H, W, F, K, 1, 1, nchw, ws);
        double t2 = cpu_now();
        convblock_backward(din, dw, db, dout, out, arg, in, w, B, C, H, W, F, K, 1, 1, nchw, ws);
        double t3 = cpu_now();
        t[i] = t1 - t0, t[reps + i] = t2 - t1, t[2 * reps + i] = t3 - t2;
    }
    double gemm = 2.0 * B * (double)nw * Ho * Wo;
    const char *what[3] = {"forward", "backward dw", "backward dw+din"};
    double mult[3] = {1, 1, 2};
    for (int k = 0; k < 3; k++) {
        qsort(t + k * reps, (size_t)reps, sizeof *t, cmp_double);
        double best = t[k * reps], med = t[k * reps + reps / 2];
        printf("%-6s B%d C%d %dx%d F%d K%d  %-16s best %7.3f ms %6.1f GFLOP/s   median %7.3f ms %6.1f GFLOP/s\n",
               name, B, C, H, W, F, K, what[k], best * 1e3, mult[k] * gemm / best / 1e9, med * 1e3,
               mult[k] * gemm / med / 1e9);
    }
    free(in), free(w), free(b), free(out), free(dout), free(din), free(dw), free(db), free(arg), free(ws), free(t);
}

int main(int argc, char **argv) {
    long B = 256, reps = 10, which = 0;
    if ((argc > 1 && parse_long(argv[1], 1, 1 << 16, &B)) || (argc > 2 && parse_long(argv[2], 1, 100000, &reps)) ||
        (argc > 3 && parse_long(argv[3], 0, 2, &which)))
        FATAL("usage: bench_convblock [batch 1..65536] [reps] [layer 0..2]");
    Rng r;
    rng_seed(&r, 1, RNG_TEST, 5);
    if (which != 2) bench("conv1", (int)B, 1, 28, 28, 32, 5, 0, (int)reps, &r);
    if (which != 1) bench("conv2", (int)B, 32, 12, 12, 64, 5, 1, (int)reps, &r);
    return 0;
}
