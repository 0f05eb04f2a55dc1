/* Tests of the mask overlay (io/image.c) against one worked out by hand:
 * tinted inside, outlined on the mask's border and at the image edge,
 * untouched outside; grey and colour input. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../io/image.h"
#include "test.h"

static void test_overlay(void) {
    enum { H = 5, W = 6 };
    uint8_t img[3 * H * W], mask[H * W] = {0}, out[H * W * 3];
    for (int i = 0; i < H * W; i++) img[i] = (uint8_t)(10 + 5 * i);
    for (int i = 0; i < H * W; i++) img[H * W + i] = 100, img[2 * H * W + i] = 200;
    /* a 3x3 block at rows 1-3, columns 1-3, and the pixel (0, 5) on the edge */
    for (int y = 1; y <= 3; y++)
        for (int x = 1; x <= 3; x++) mask[y * W + x] = 1;
    mask[5] = 7;
    const uint8_t col[3] = {255, 0, 40};
    const float a = 0.25f;
    for (int ch = 1; ch <= 3; ch += 2) {
        image_overlay_mask(out, img, ch, mask, H, W, col, a);
        int bad = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int i = y * W + x;
                for (int c = 0; c < 3; c++) {
                    int v = img[(ch == 3 ? c * H * W : 0) + i], want = v;
                    if (y == 2 && x == 2) /* the only inner pixel: tinted */
                        want = (int)lrintf(0.75f * v + 0.25f * col[c]);
                    else if (mask[i]) /* border of the block, and the edge pixel */
                        want = col[c];
                    bad += out[3 * i + c] != want;
                }
            }
        CHECK(bad == 0, "overlay of a %s image: %d bytes differ from the hand-made one",
              ch == 1 ? "grey" : "colour", bad);
    }
}

int main(void) {
    test_overlay();
    return test_finish();
}
