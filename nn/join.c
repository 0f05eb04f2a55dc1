/* join: see join.h. */
#include "join.h"

#include <string.h>

void concat_forward(float *out, const float *const *in, const size_t *size, int n, int rows) {
    size_t total = 0;
    for (int k = 0; k < n; k++) total += size[k];
    for (int r = 0; r < rows; r++) {
        float *o = out + (size_t)r * total;
        for (int k = 0; k < n; k++) {
            memcpy(o, in[k] + (size_t)r * size[k], size[k] * sizeof(float));
            o += size[k];
        }
    }
}

void concat_backward(float *const *din, const float *dout, const size_t *size, int n, int rows) {
    size_t total = 0;
    for (int k = 0; k < n; k++) total += size[k];
    for (int r = 0; r < rows; r++) {
        const float *g = dout + (size_t)r * total;
        for (int k = 0; k < n; k++) {
            if (din[k]) memcpy(din[k] + (size_t)r * size[k], g, size[k] * sizeof(float));
            g += size[k];
        }
    }
}

void add_forward(float *out, const float *const *in, int n, size_t count) {
    memcpy(out, in[0], count * sizeof(float));
    for (int k = 1; k < n; k++)
        for (size_t i = 0; i < count; i++) out[i] += in[k][i];
}

void difference_forward(float *out, const float *a, const float *b, size_t count) {
    for (size_t i = 0; i < count; i++) out[i] = a[i] - b[i];
}

void difference_backward(float *da, float *db, const float *dout, size_t count) {
    if (da) memcpy(da, dout, count * sizeof(float));
    if (db)
        for (size_t i = 0; i < count; i++) db[i] = -dout[i];
}

void absdiff_forward(float *out, const float *a, const float *b, size_t count) {
    for (size_t i = 0; i < count; i++) out[i] = a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
}

void absdiff_backward(float *da, float *db, const float *dout, const float *a, const float *b, size_t count) {
    for (size_t i = 0; i < count; i++) {
        float g = a[i] > b[i] ? dout[i] : a[i] < b[i] ? -dout[i] : 0.0f;
        if (da) da[i] = g;
        if (db) db[i] = -g;
    }
}
