/* draw: see draw.h. */
#include "draw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

/* 5 x 7 glyphs: 7 rows, the 5 low bits of each, most significant bit left. */
static const struct {
    char c;
    uint8_t rows[7];
} font[] = {
    {'0', {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e}}, {'1', {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e}},
    {'2', {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f}}, {'3', {0x1e, 0x01, 0x01, 0x0e, 0x01, 0x01, 0x1e}},
    {'4', {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02}}, {'5', {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e}},
    {'6', {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e}}, {'7', {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e}}, {'9', {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c}},
    {'A', {0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}}, {'B', {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e}},
    {'C', {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e}}, {'D', {0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c}},
    {'E', {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f}}, {'F', {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10}},
    {'G', {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f}}, {'H', {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}},
    {'I', {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e}}, {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}}, {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f}},
    {'M', {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11}}, {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}}, {'P', {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10}},
    {'Q', {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d}}, {'R', {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11}},
    {'S', {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e}}, {'T', {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}}, {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a}}, {'X', {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04}}, {'Z', {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f}},
    {'-', {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00}}, {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c}},
    {':', {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00}}, {'#', {0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a}},
    {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}}, {'/', {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}},
    {'=', {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00}},
};

static const uint8_t *glyph(char c) {
    if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
    for (size_t i = 0; i < sizeof font / sizeof font[0]; i++)
        if (font[i].c == c) return font[i].rows;
    return NULL;
}

void draw_id_colour(uint8_t rgb[3], int32_t id) {
    /* hue steps of the golden angle: neighbouring ids get distant hues */
    double hue = fmod((double)(id < 0 ? 0 : id) * 0.618033988749895, 1.0) * 6.0;
    int sector = (int)hue;
    double f = hue - sector, v = 255, s = 0.85, p = v * (1 - s), q = v * (1 - s * f),
           t = v * (1 - s * (1 - f));
    double r, g, b;
    switch (sector % 6) {
    case 0:
        r = v, g = t, b = p;
        break;
    case 1:
        r = q, g = v, b = p;
        break;
    case 2:
        r = p, g = v, b = t;
        break;
    case 3:
        r = p, g = q, b = v;
        break;
    case 4:
        r = t, g = p, b = v;
        break;
    default:
        r = v, g = p, b = q;
        break;
    }
    rgb[0] = (uint8_t)lround(r), rgb[1] = (uint8_t)lround(g), rgb[2] = (uint8_t)lround(b);
}

void draw_fill(uint8_t *img, int h, int w, int x0, int y0, int x1, int y1, const uint8_t rgb[3]) {
    x0 = MAX(x0, 0), y0 = MAX(y0, 0), x1 = MIN(x1, w), y1 = MIN(y1, h);
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            uint8_t *p = img + 3 * ((size_t)y * w + x);
            p[0] = rgb[0], p[1] = rgb[1], p[2] = rgb[2];
        }
}

void draw_rect(uint8_t *img, int h, int w, int x0, int y0, int x1, int y1, int thick, const uint8_t rgb[3]) {
    if (x1 <= x0 || y1 <= y0) return;
    thick = MIN(thick, MIN(x1 - x0, y1 - y0));
    draw_fill(img, h, w, x0, y0, x1, y0 + thick, rgb);
    draw_fill(img, h, w, x0, y1 - thick, x1, y1, rgb);
    draw_fill(img, h, w, x0, y0, x0 + thick, y1, rgb);
    draw_fill(img, h, w, x1 - thick, y0, x1, y1, rgb);
}

int draw_text(uint8_t *img, int h, int w, int x, int y, const char *text, int scale, const uint8_t fg[3],
              const uint8_t bg[3]) {
    int n = 0;
    while (text[n]) n++;
    int tw = n * 6 * scale + scale, th = 9 * scale;
    draw_fill(img, h, w, x, y, x + tw, y + th, bg);
    for (int k = 0; k < n; k++) {
        const uint8_t *g = glyph(text[k]);
        if (!g) continue;
        int gx = x + scale + k * 6 * scale, gy = y + scale;
        for (int r = 0; r < 7; r++)
            for (int c = 0; c < 5; c++)
                if (g[r] >> (4 - c) & 1)
                    draw_fill(img, h, w, gx + c * scale, gy + r * scale, gx + (c + 1) * scale,
                              gy + (r + 1) * scale, fg);
    }
    return tw;
}

void draw_mot_boxes(uint8_t *img, int h, int w, const MotBox *box, int n, double zoom) {
    static const uint8_t black[3] = {0, 0, 0};
    int thick = MAX(1, (int)lround(zoom));
    for (int i = 0; i < n; i++) {
        const MotBox *b = &box[i];
        uint8_t col[3] = {255, 255, 255};
        if (b->id >= 0) draw_id_colour(col, b->id);
        int x0 = (int)lround(b->x * zoom), y0 = (int)lround(b->y * zoom);
        int x1 = (int)lround((b->x + b->w) * zoom), y1 = (int)lround((b->y + b->h) * zoom);
        draw_rect(img, h, w, x0, y0, x1, y1, thick, col);
        if (b->id < 0) continue;
        char label[16];
        snprintf(label, sizeof label, "%d", (int)b->id);
        int scale = MAX(1, (int)lround(zoom * 0.75)), ly = y0 - 9 * scale;
        if (ly < 0) ly = y0; /* no room above: inside the box */
        draw_text(img, h, w, x0, ly, label, scale, black, col);
    }
}

int draw_mot_frame(uint8_t **rgb, int *h, int *w, const MotSeq *s, const MotBoxes *b, int32_t f, int zoom,
                   Err *e) {
    char path[4200];
    mot_frame_path(s, f, path, sizeof path);
    Image img = {0};
    if (image_load_color(&img, path, 1, e)) return -1;
    int H = (int)img.height * zoom, W = (int)img.width * zoom;
    uint8_t *big = xmalloc((size_t)H * W * 3);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            memcpy(big + 3 * ((size_t)y * W + x),
                   img.pixels + 3 * ((size_t)(y / zoom) * img.width + x / zoom), 3);
    image_free(&img);
    if (f >= 1 && f <= b->frames)
        draw_mot_boxes(big, H, W, b->box + b->first[f], (int)(b->first[f + 1] - b->first[f]), zoom);
    *rgb = big, *h = H, *w = W;
    return 0;
}
