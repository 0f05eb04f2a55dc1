/* fuzz_mot: the MOTChallenge text parsers. The first byte picks seqinfo.ini
 * or a det / gt / result box file; box files are parsed for a sequence of
 * 1920x1080 and 1..2048 frames (second byte). Properties: every parsed box
 * lies in its frame with a positive area, the per-frame index covers the
 * boxes in order, and formatting then parsing the boxes gives them back
 * (boxes at least 0.05 pixels wide and high: the writer keeps 2 decimals). */
#include <math.h>

#include "../io/mot.h"
#include "fuzz.h"

static void check_boxes(const MotBoxes *b, const MotSeqInfo *in) {
    FUZZ_CHECK(b->frames == in->frames && b->first[1] == 0 && b->first[in->frames + 1] == b->n,
               "frame index");
    for (int32_t f = 1; f <= in->frames; f++) {
        FUZZ_CHECK(b->first[f] <= b->first[f + 1], "frame %d index decreasing", f);
        for (size_t i = b->first[f]; i < b->first[f + 1]; i++) {
            const MotBox *x = &b->box[i];
            FUZZ_CHECK(x->frame == f, "box %zu of frame %d says frame %d", i, f, x->frame);
            FUZZ_CHECK(x->w > 0 && x->h > 0 && x->x >= 0 && x->y >= 0 && x->x + x->w <= in->width + 1e-3f &&
                           x->y + x->h <= in->height + 1e-3f,
                       "box %zu (%g,%g,%g,%g) outside %dx%d", i, x->x, x->y, x->w, x->h, in->width,
                       in->height);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    int what = data[0] % 4;
    const char *buf = (const char *)data + 2;
    size_t n = size - 2;
    Err e = {{0}};
    if (what == 0) {
        MotSeqInfo info;
        if (mot_parse_seqinfo(buf, n, "seqinfo.ini", &info, &e)) {
            fuzz_check_message(&e);
            return 0;
        }
        FUZZ_CHECK(info.frames >= 1 && info.frames <= MOT_MAX_FRAMES && info.width >= 1 &&
                       info.width <= MOT_MAX_SIDE && info.height >= 1 && info.height <= MOT_MAX_SIDE,
                   "seqinfo %d frames of %dx%d", info.frames, info.width, info.height);
        FUZZ_CHECK(memchr(info.name, 0, sizeof info.name) && !strchr(info.im_dir, '/'), "names");
        return 0;
    }
    MotKind kind = what == 1 ? MOT_DET : what == 2 ? MOT_GT : MOT_RES;
    MotSeqInfo info = {.frames = 1 + data[1] * 8, .width = 1920, .height = 1080, .frame_rate = 30};
    snprintf(info.name, sizeof info.name, "fuzz");
    MotBoxes b;
    if (mot_parse_boxes(buf, n, "boxes.txt", kind, &info, &b, &e)) {
        fuzz_check_message(&e);
        return 0;
    }
    check_boxes(&b, &info);
    /* The writer keeps two decimals: a box thinner than that cannot come
     * back, so the round trip is checked on the others. */
    for (size_t i = 0; i < b.n; i++)
        if (b.box[i].w < 0.05f || b.box[i].h < 0.05f) {
            mot_boxes_free(&b);
            return 0;
        }
    char *text;
    size_t len;
    mot_format_boxes(&b, kind, &text, &len);
    MotBoxes again;
    Err e2 = {{0}};
    FUZZ_CHECK(mot_parse_boxes(text, len, "formatted.txt", kind, &info, &again, &e2) == 0,
               "formatted boxes do not parse again: %s", e2.msg);
    FUZZ_CHECK(again.n == b.n, "%zu boxes formatted, %zu parsed back", b.n, again.n);
    for (size_t i = 0; i < b.n; i++)
        FUZZ_CHECK(again.box[i].frame == b.box[i].frame && again.box[i].id == b.box[i].id &&
                       fabsf(again.box[i].x - b.box[i].x) <= 1e-2f * (1 + fabsf(b.box[i].x)) &&
                       fabsf(again.box[i].w - b.box[i].w) <= 1e-2f * (1 + fabsf(b.box[i].w)),
                   "box %zu changed through format and parse", i);
    mot_boxes_free(&again);
    free(text);
    mot_boxes_free(&b);
    return 0;
}
