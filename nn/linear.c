/* linear: three GEMMs. */
#include "linear.h"

#include <cblas.h>
#include <stddef.h>

void linear_forward(float *out, const float *in, const float *w, const float *b, int B, int Nin, int Nout) {
    float beta = 0.0f;
    if (b) {
        for (int r = 0; r < B; r++)
            for (int o = 0; o < Nout; o++) out[(size_t)r * Nout + o] = b[o];
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, Nout, Nin, 1.0f, in, Nin, w, Nin, beta, out,
                Nout);
}

void linear_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                     int B, int Nin, int Nout) {
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, Nin, Nout, 1.0f, dout, Nout, w, Nin, 0.0f,
                    din, Nin);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Nout, Nin, B, 1.0f, dout, Nout, in, Nin, 1.0f, dw,
                Nin);
    if (db) {
        for (int o = 0; o < Nout; o++) {
            double acc = 0.0;
            for (int r = 0; r < B; r++) acc += dout[(size_t)r * Nout + o];
            db[o] += (float)acc;
        }
    }
}
