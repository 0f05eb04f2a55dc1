/* Tests of the mask overlays (io/image.c) against ones worked out by hand:
 * tinted inside, outlined on the mask's border and at the image edge,
 * untouched outside; grey and colour input. The enlarged overlay of a
 * predicted and a true mask: the fill where predicted, the true mask's
 * outline one output pixel thick around the true region (no seam between
 * two true pixels), at the image edge too. */
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

static void test_overlay_masks(void) {
    enum { H = 3, W = 3, S = 3 };
    uint8_t img[3 * H * W], pred[H * W] = {0}, truth[H * W] = {0}, out[H * S * W * S * 3];
    for (int i = 0; i < 3 * H * W; i++) img[i] = (uint8_t)(7 * i + 3);
    pred[0] = pred[4] = 1;                           /* (0, 0) and (1, 1) */
    truth[4] = truth[5] = truth[7] = truth[8] = 255; /* rows 1-2, columns 1-2: a 2 x 2 block in the corner */
    const uint8_t pc[3] = {250, 10, 10}, tc[3] = {20, 230, 30};
    const float a = 0.5f;
    for (int ch = 1; ch <= 3; ch += 2) {
        image_overlay_masks(out, img, ch, pred, truth, H, W, S, pc, tc, a);
        int bad = 0;
        for (int Y = 0; Y < H * S; Y++)
            for (int X = 0; X < W * S; X++) {
                int i = (Y / S) * W + X / S;
                /* the true region covers output rows and columns 3..8; its
                 * outline is 2 output pixels thick, also at the image edge */
                int inside = Y >= 3 && X >= 3;
                int outline = inside && (Y <= 4 || Y >= 7 || X <= 4 || X >= 7);
                for (int c = 0; c < 3; c++) {
                    int v = img[(ch == 3 ? c * H * W : 0) + i], want = v;
                    if (outline)
                        want = tc[c];
                    else if (i == 0 || i == 4)
                        want = (int)lrintf(0.5f * v + 0.5f * pc[c]);
                    bad += out[3 * (Y * W * S + X) + c] != want;
                }
            }
        CHECK(bad == 0, "predicted and true masks on a %s image, 3x: %d bytes differ from the hand-made one",
              ch == 1 ? "grey" : "colour", bad);
    }
    image_overlay_masks(out, img, 1, pred, truth, H, W, 1, pc, tc, a);
    int bad = 0;
    for (int i = 0; i < H * W; i++)
        for (int c = 0; c < 3; c++)
            bad += out[3 * i + c] != (truth[i] ? tc[c]
                                      : i == 0 ? lrintf(0.5f * img[0] + 0.5f * pc[c])
                                               : img[i]);
    CHECK(bad == 0, "scale 1: every true pixel is outline, the predicted one filled (%d bytes differ)", bad);
}

int main(void) {
    test_overlay();
    test_overlay_masks();
    return test_finish();
}
