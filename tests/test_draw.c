/* test_draw: the RGB drawing helpers against pixels worked out by hand: a
 * rectangle's outline and clipping, a glyph of the 5 x 7 font at scale 1 and
 * 2, labelled boxes, and distinct colours for nearby track ids. */
#include <stdlib.h>
#include <string.h>

#include "../io/draw.h"
#include "test.h"

enum { H = 24, W = 32 };
static uint8_t img[H * W * 3];

static int is(int x, int y, const uint8_t c[3]) {
    const uint8_t *p = img + 3 * (y * W + x);
    return p[0] == c[0] && p[1] == c[1] && p[2] == c[2];
}

static int count(const uint8_t c[3]) {
    int n = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) n += is(x, y, c);
    return n;
}

int main(void) {
    const uint8_t red[3] = {255, 0, 0}, blk[3] = {0, 0, 0}, wht[3] = {255, 255, 255};
    memset(img, 0, sizeof img);
    /* 6 x 4 outline, 1 px: 2 * 6 + 2 * 2 = 16 pixels, the inside untouched */
    draw_rect(img, H, W, 2, 3, 8, 7, 1, red);
    CHECK(count(red) == 16 && is(2, 3, red) && is(7, 6, red) && !is(3, 4, red) && !is(8, 3, red),
          "outline: %d pixels", count(red));
    /* 2 px thick 6 x 6 at (20, 10): 36 - 2 x 2 inside = 32 */
    memset(img, 0, sizeof img);
    draw_rect(img, H, W, 20, 10, 26, 16, 2, red);
    CHECK(count(red) == 32 && !is(22, 12, red) && is(21, 11, red), "thick outline: %d", count(red));
    /* clipping: a box hanging over the corner draws only inside */
    memset(img, 0, sizeof img);
    draw_fill(img, H, W, -5, -5, 3, 2, red);
    CHECK(count(red) == 3 * 2, "clipped fill: %d", count(red));
    /* "1": 00100 01100 00100 00100 00100 00100 01110 = 10 pixels, on a
     * 7 x 9 background (1 px margin; the glyph at (x + 1, y + 1)) */
    memset(img, 0, sizeof img);
    int tw = draw_text(img, H, W, 0, 0, "1", 1, wht, red);
    CHECK(tw == 7 && count(wht) == 10 && count(red) == 7 * 9 - 10, "glyph 1: width %d, %d ink", tw,
          count(wht));
    CHECK(is(3, 1, wht) && is(2, 2, wht) && is(3, 2, wht) && is(2, 7, wht) && is(4, 7, wht) && !is(1, 1, wht),
          "glyph 1 pixels");
    memset(img, 0, sizeof img);
    draw_text(img, H, W, 0, 0, "1", 2, wht, red);
    CHECK(count(wht) == 40, "scale 2: 4 x the ink (%d)", count(wht));
    /* lower case maps to upper case; unknown characters are blank */
    memset(img, 0, sizeof img);
    draw_text(img, H, W, 0, 0, "a~", 1, wht, red);
    int a_ink = count(wht);
    memset(img, 0, sizeof img);
    draw_text(img, H, W, 0, 0, "A ", 1, wht, red);
    CHECK(a_ink == count(wht) && a_ink == 18, "a = A (%d ink), ~ blank", a_ink);
    /* a labelled box: the id's colour outline and its label above */
    memset(img, 0, sizeof img);
    MotBox b = {.frame = 1, .id = 7, .x = 4, .y = 12, .w = 10, .h = 8};
    draw_mot_boxes(img, H, W, &b, 1, 1.0);
    uint8_t c7[3];
    draw_id_colour(c7, 7);
    CHECK(is(4, 12, c7) && is(13, 19, c7) && is(4, 3, c7) && is(5, 4, blk), "box and label of id 7");
    /* colours of ids 1..12 are pairwise far apart (some channel differs by 40) */
    int close = 0;
    for (int i = 1; i <= 12; i++)
        for (int j = i + 1; j <= 12; j++) {
            uint8_t a[3], c[3];
            draw_id_colour(a, i), draw_id_colour(c, j);
            int d = 0;
            for (int k = 0; k < 3; k++) d = MAX(d, abs((int)a[k] - (int)c[k]));
            close += d < 40;
        }
    CHECK(close == 0, "%d pairs of ids 1..12 with close colours", close);
    return test_finish();
}
