/* linear: three GEMMs (nn/blas: blocks fixed by the shape, run on the
 * pool), the bias rows and the bias gradient's column sums split over rows
 * and columns. */
#include "linear.h"

#include <stddef.h>

#include "blas.h"
#include "parallel.h"

typedef struct Lin {
    float *out, *db;
    const float *b, *dout;
    int B, Nout;
} Lin;

static void bias_rows(void *p, size_t lo, size_t hi) {
    const Lin *l = p;
    for (size_t r = lo; r < hi; r++)
        for (int o = 0; o < l->Nout; o++) l->out[r * l->Nout + o] = l->b[o];
}

/* db[o] += sum over rows of dout[r][o], in double, rows in order. */
static void bias_grad(void *p, size_t lo, size_t hi) {
    const Lin *l = p;
    for (size_t o = lo; o < hi; o++) {
        double acc = 0.0;
        for (int r = 0; r < l->B; r++) acc += l->dout[(size_t)r * l->Nout + o];
        l->db[o] += (float)acc;
    }
}

static size_t grain(int n) { return MAX((size_t)1, PARALLEL_GRAIN / (size_t)(n > 0 ? n : 1)); }

void linear_forward(float *out, const float *in, const float *w, const float *b, int B, int Nin, int Nout) {
    float beta = 0.0f;
    if (b) {
        Lin l = {out, NULL, b, NULL, B, Nout};
        parallel_for((size_t)B, grain(Nout), bias_rows, &l);
        beta = 1.0f;
    }
    blas_sgemm(0, 1, B, Nout, Nin, 1.0f, in, Nin, w, Nin, beta, out, Nout);
}

void linear_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                     int B, int Nin, int Nout) {
    if (din) blas_sgemm(0, 0, B, Nin, Nout, 1.0f, dout, Nout, w, Nin, 0.0f, din, Nin);
    blas_sgemm(1, 0, Nout, Nin, B, 1.0f, dout, Nout, in, Nin, 1.0f, dw, Nin);
    if (db) {
        Lin l = {NULL, db, NULL, dout, B, Nout};
        parallel_for((size_t)Nout, grain(B), bias_grad, &l);
    }
}
