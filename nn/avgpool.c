/* avgpool: see avgpool.h. Sums in double, so the mean of a large map does
 * not depend on its order. */
#include "avgpool.h"

#include <stddef.h>

void avgpool_forward(float *out, const float *in, int rows, int C, int HW) {
    for (size_t pl = 0; pl < (size_t)rows * C; pl++) {
        const float *p = in + pl * HW;
        double s = 0;
        for (int i = 0; i < HW; i++) s += p[i];
        out[pl] = (float)(s / HW);
    }
}

void avgpool_backward(float *din, const float *dout, int rows, int C, int HW) {
    for (size_t pl = 0; pl < (size_t)rows * C; pl++) {
        float g = dout[pl] / (float)HW;
        for (int i = 0; i < HW; i++) din[pl * HW + i] = g;
    }
}
