/* draw: boxes and short labels drawn onto an 8-bit RGB image buffer
 * (interleaved, row-major), for pictures of tracks and detections. A built-in
 * 5 x 7 pixel font covers digits, upper-case letters and a few signs; text is
 * drawn on a filled background so it reads over any picture. Everything is
 * clipped to the image. */
#ifndef SIAMESE_DRAW_H
#define SIAMESE_DRAW_H

#include <stdint.h>

#include "mot.h"

/* A colour for track id `id`: distinct, saturated hues for nearby ids. */
void draw_id_colour(uint8_t rgb[3], int32_t id);

/* Rectangle outline covering pixels x0..x1-1, y0..y1-1 (half-open), `thick`
 * pixels wide, drawn inwards. */
void draw_rect(uint8_t *img /* (h, w, 3) */, int h, int w, int x0, int y0, int x1, int y1, int thick,
               const uint8_t rgb[3]);

/* Filled rectangle, half-open like draw_rect. */
void draw_fill(uint8_t *img, int h, int w, int x0, int y0, int x1, int y1, const uint8_t rgb[3]);

/* Text with its top-left corner at (x, y), each font pixel `scale` x `scale`
 * image pixels, on a filled background of colour bg; characters the font
 * lacks are drawn as blanks. Returns the width drawn in pixels. */
int draw_text(uint8_t *img, int h, int w, int x, int y, const char *text, int scale, const uint8_t fg[3],
              const uint8_t bg[3]);

/* The boxes of one frame (a MotBoxes' frame slice) with their ids above
 * them (ids < 0 are drawn without a label), in the id's colour; box
 * coordinates are multiplied by `zoom` (the image is the frame enlarged by
 * zoom). */
void draw_mot_boxes(uint8_t *img, int h, int w, const MotBox *box, int n, double zoom);
/* Frame f (1..frames) of sequence s enlarged `zoom` times (nearest pixel)
 * as RGB, with b's boxes of that frame drawn by draw_mot_boxes: *rgb
 * malloc'd (*h, *w, 3). 0, or -1 with e naming the frame's file. */
int draw_mot_frame(uint8_t **rgb, int *h, int *w, const MotSeq *s, const MotBoxes *b, int32_t f, int zoom,
                   Err *e);

#endif
