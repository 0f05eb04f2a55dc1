/* test_mot: the MOTChallenge readers and writers of io/mot.c against values
 * worked out by hand: seqinfo.ini keys and errors, det/gt/result lines in the
 * MOT15 and MOT16/17 layouts, clipping at the frame border, every one-line
 * error (malformed line, frame past the sequence, no area, wholly outside,
 * column count, duplicate id), a write/read round trip, sequences with and
 * without seqinfo.ini, and IoU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../io/image.h"
#include "../io/mot.h"
#include "fixture_files.h"
#include "test.h"

static const MotSeqInfo info = {
    .name = "t", .im_dir = "img1", .im_ext = ".png", .frames = 10, .width = 100, .height = 80};

static int parse(const char *text, MotKind kind, MotBoxes *b, Err *e) {
    return mot_parse_boxes(text, strlen(text), "x/det.txt", kind, &info, b, e);
}

static void expect_err(const char *text, MotKind kind, const char *want, const char *label) {
    MotBoxes b;
    Err e = {""};
    int rc = parse(text, kind, &b, &e);
    CHECK(rc == -1 && strstr(e.msg, want) && strstr(e.msg, "x/det.txt:") && !strchr(e.msg, '\n'),
          "%s: want '%s', got: %s", label, want, rc ? e.msg : "success");
    if (!rc) mot_boxes_free(&b);
}

static void test_seqinfo(void) {
    const char *ok = "[Sequence]\nname=MOT16-02\nimDir=img1\nframeRate=30\nseqLength=600\nimWidth=1920\n"
                     "imHeight=1080\nimExt=.jpg\n";
    MotSeqInfo in;
    Err e = {""};
    CHECK(mot_parse_seqinfo(ok, strlen(ok), "s.ini", &in, &e) == 0 && in.frames == 600 && in.width == 1920 &&
              in.height == 1080 && !strcmp(in.name, "MOT16-02") && !strcmp(in.im_ext, ".jpg") &&
              in.frame_rate == 30,
          "seqinfo: %s", e.msg);
    const char *min = "[Sequence]\r\nseqLength=5\r\nimWidth=64\r\nimHeight=48\r\n";
    CHECK(mot_parse_seqinfo(min, strlen(min), "s.ini", &in, &e) == 0 && in.frames == 5 &&
              !strcmp(in.im_dir, "img1") && !strcmp(in.im_ext, ".jpg"),
          "seqinfo defaults, CRLF: %s", e.msg);
    struct {
        const char *text, *want;
    } bad[] = {
        {"[Sequence]\nseqLength=5\nimWidth=64\n", "imHeight"},
        {"[Sequence]\nseqLength=five\nimWidth=64\nimHeight=48\n", "seqLength"},
        {"[Sequence]\nseqLength=0\nimWidth=64\nimHeight=48\n", "seqLength"},
        {"[Sequence]\nseqLength=5\nimWidth=70000\nimHeight=48\n", "imWidth"},
        {"[Sequence]\nseqLength=5\nimWidth=64\nimHeight=48\nimDir=../x\n", "imDir"},
        {"[Sequence]\nseqLength=5\nno equals sign\n", "s.ini:3"},
        {"[Other]\nseqLength=5\nimWidth=64\nimHeight=48\n", "seqLength"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = mot_parse_seqinfo(bad[i].text, strlen(bad[i].text), "s.ini", &in, &e);
        CHECK(rc == -1 && strstr(e.msg, bad[i].want) && strstr(e.msg, "s.ini"), "bad seqinfo %zu: %s", i,
              rc ? e.msg : "success");
    }
}

static void test_det_lines(void) {
    /* frames out of order, a blank line, spaces and CRLF; the second box
     * crosses the left border (x 1-based -9 -> 0-based -10, clipped to 0,
     * width 30 - 10 = 20) and the fourth the bottom-right corner. */
    const char *t = "2,-1,11,21,30,40,0.9,-1,-1,-1\n"
                    "1,-1,-9,5,30,10,0.5,-1,-1,-1\r\n"
                    "\n"
                    " 2 , -1 , 1 , 1 , 5 , 5 , 0.25 , -1 , -1 , -1 \n"
                    "10,-1,91,71,20,20,1,-1,-1,-1";
    MotBoxes b;
    Err e = {""};
    CHECK(parse(t, MOT_DET, &b, &e) == 0, "det: %s", e.msg);
    if (e.msg[0]) return;
    CHECK(b.n == 4 && b.frames == 10 && b.first[1] == 0 && b.first[2] == 1 && b.first[3] == 3 &&
              b.first[10] == 3 && b.first[11] == 4,
          "det: frame index");
    CHECK(b.box[0].frame == 1 && b.box[0].x == 0 && b.box[0].w == 20 && b.box[0].y == 4 && b.box[0].h == 10 &&
              b.box[0].score == 0.5f && b.box[0].id == -1,
          "det: left border clipped: %g %g %g %g", b.box[0].x, b.box[0].y, b.box[0].w, b.box[0].h);
    CHECK(b.box[1].x == 10 && b.box[1].y == 20 && b.box[1].w == 30 && b.box[1].h == 40 &&
              b.box[1].score == 0.9f,
          "det: file order kept within frame 2");
    CHECK(b.box[2].x == 0 && b.box[2].w == 5 && b.box[2].score == 0.25f, "det: spaces around numbers");
    CHECK(b.box[3].x == 90 && b.box[3].w == 10 && b.box[3].y == 70 && b.box[3].h == 10,
          "det: bottom-right clipped to 100x80: %g %g %g %g", b.box[3].x, b.box[3].y, b.box[3].w, b.box[3].h);
    mot_boxes_free(&b);
    CHECK(parse("3,-1,1,1,5,5\n", MOT_DET, &b, &e) == 0 && b.box[0].score == 1, "det without score: 1");
    mot_boxes_free(&b);
    CHECK(parse("", MOT_DET, &b, &e) == 0 && b.n == 0 && b.first[11] == 0, "empty file");
    mot_boxes_free(&b);
}

static void test_gt_layouts(void) {
    MotBoxes b;
    Err e = {""};
    const char *m16 = "1,3,1,1,10,20,1,1,0.75\n1,4,11,1,10,20,0,7,1\n";
    CHECK(parse(m16, MOT_GT, &b, &e) == 0 && b.n == 2, "MOT16 gt: %s", e.msg);
    if (b.n == 2)
        CHECK(b.box[0].id == 3 && b.box[0].flag == 1 && b.box[0].cls == 1 && b.box[0].vis == 0.75f &&
                  b.box[1].flag == 0 && b.box[1].cls == 7 && b.box[1].vis == 1,
              "MOT16 gt: flag, class, visibility");
    mot_boxes_free(&b);
    const char *m15 = "1,3,1,1,10,20,1,-1,-1,-1\n2,3,1,1,10,20,0,-1,-1,-1\n";
    CHECK(parse(m15, MOT_GT, &b, &e) == 0 && b.n == 2, "MOT15 gt: %s", e.msg);
    if (b.n == 2)
        CHECK(b.box[0].flag == 1 && b.box[0].cls == 1 && b.box[0].vis == 1 && b.box[1].flag == 0 &&
                  b.box[1].cls == 1,
              "MOT15 gt: flag from column 7, class 1, visibility 1");
    mot_boxes_free(&b);
    CHECK(parse("1,3,1,1,10,20\n", MOT_GT, &b, &e) == 0 && b.box[0].flag == 1, "6-column gt");
    mot_boxes_free(&b);
    CHECK(parse("1,7,1,1,10,20,0.6,-1,-1,-1\n", MOT_RES, &b, &e) == 0 && b.box[0].id == 7 &&
              b.box[0].score == 0.6f,
          "result line");
    mot_boxes_free(&b);
}

static void test_errors(void) {
    expect_err("1,-1,1,1,10,10,1\n1,-1,a,1,10,10,1\n", MOT_DET, "x/det.txt:2: malformed", "not a number");
    expect_err("1,-1,1,1,10\n", MOT_DET, ":1: malformed", "5 columns");
    expect_err("1;-1;1;1;10;10\n", MOT_DET, ":1: malformed", "semicolons");
    expect_err("1,-1,1,1,10,10,1\n\n11,-1,1,1,10,10,1\n", MOT_DET, ":3: frame 11 is outside", "frame past");
    expect_err("0,-1,1,1,10,10,1\n", MOT_DET, ":1: frame 0", "frame 0");
    expect_err("1.5,-1,1,1,10,10,1\n", MOT_DET, ":1: frame and id must be integers", "fractional frame");
    expect_err("1,-1,1,1,0,10,1\n", MOT_DET, ":1: box has no area", "zero width");
    expect_err("1,-1,1,1,10,-3,1\n", MOT_DET, ":1: box has no area", "negative height");
    expect_err("1,-1,101,1,10,10,1\n", MOT_DET, ":1: box (101,1,10,10) lies wholly outside",
               "right of frame");
    expect_err("1,-1,-20,1,21,10,1\n", MOT_DET, ":1: box (-20,1,21,10) lies wholly outside",
               "touches x=0 only");
    expect_err("1,-1,1,1,1e-50,10,1\n", MOT_DET, ":1: box (1,1,1e-50,10) has no area inside the 100x80 frame in single",
               "width positive in double, zero in float (fuzz_mot)");
    expect_err("1,-1,1,1,10,10,1\n1,-1,1,1,10,10\n", MOT_DET,
               ":2: 6 columns, but the file's first line has 7", "column count");
    expect_err("1,2,1,1,10,10,1,1,1\n2,2,1,1,10,10,1,1,1\n2,2,5,5,10,10,1,1,1\n", MOT_GT,
               ":3: id 2 appears twice in frame 2 (also line 2)", "duplicate id");
    expect_err("1,-2,1,1,10,10\n", MOT_RES, ":1: result id -2 is negative", "negative id");
    expect_err("1,2,1,1,10,10,1,1,1.5\n", MOT_GT, ":1: visibility 1.5", "visibility > 1");
    expect_err("1,2,1,1,10,10,1,0,1\n", MOT_GT, ":1: class 0", "class 0");
    expect_err("1,-1,1,1,10,10,nan\n", MOT_DET, ":1: malformed", "nan");
    MotBoxes b;
    Err e = {""};
    CHECK(mot_parse_boxes("1,-1,1,1,10,10,1\0\n", 18, "x/det.txt", MOT_DET, &info, &b, &e) == -1 &&
              strstr(e.msg, "NUL"),
          "NUL byte: %s", e.msg);
}

static void test_roundtrip(void) {
    MotBox in[3] = {
        {.frame = 4,
         .id = 9,
         .x = 10.25f,
         .y = 3.5f,
         .w = 20,
         .h = 30.75f,
         .score = 0.5f,
         .vis = 0.5f,
         .cls = 1,
         .flag = 1},
        {.frame = 2, .id = 1, .x = 0, .y = 0, .w = 100, .h = 80, .score = 1, .vis = 1, .cls = 7, .flag = 0},
        {.frame = 4,
         .id = 3,
         .x = 50,
         .y = 40,
         .w = 1.5f,
         .h = 2.5f,
         .score = 0.125f,
         .vis = 0.25f,
         .cls = 1,
         .flag = 1},
    };
    MotBoxes b, r;
    mot_boxes_build(&b, in, 3, 10);
    CHECK(b.box[0].frame == 2 && b.box[1].id == 9 && b.box[2].id == 3, "build sorts by frame, stably");
    Err e = {""};
    for (int kind = MOT_GT; kind <= MOT_RES; kind++) {
        char *t;
        size_t n;
        mot_format_boxes(&b, (MotKind)kind, &t, &n);
        CHECK(n == strlen(t) && parse(t, (MotKind)kind, &r, &e) == 0 && r.n == 3, "round trip %d: %s", kind,
              e.msg);
        int same = r.n == 3;
        for (size_t i = 0; same && i < 3; i++) {
            const MotBox *x = &b.box[i], *y = &r.box[i];
            same = x->frame == y->frame && x->id == y->id && x->x == y->x && x->y == y->y && x->w == y->w &&
                   x->h == y->h &&
                   (kind == MOT_GT ? x->flag == y->flag && x->cls == y->cls && x->vis == y->vis
                                   : x->score == y->score);
        }
        CHECK(same, "round trip %d: equal boxes", kind);
        if (kind == MOT_RES) CHECK(!strncmp(t, "2,1,1.00,1.00,100.00,80.00,1.0000,-1,-1,-1\n", 43), "%s", t);
        free(t);
        mot_boxes_free(&r);
    }
    CHECK(mot_write_boxes(fixture_path("res.txt"), &b, MOT_RES, &e) == 0 &&
              mot_read_boxes(fixture_path("res.txt"), MOT_RES, &info, &r, &e) == 0 && r.n == 3,
          "write and read a result file: %s", e.msg);
    mot_boxes_free(&r);
    CHECK(mot_read_boxes(fixture_path("none.txt"), MOT_RES, &info, &r, &e) == -1 && strstr(e.msg, "none.txt"),
          "missing file: %s", e.msg);
    mot_boxes_free(&b);
}

static void test_sequences(void) {
    Err e = {""};
    uint8_t px[6 * 8] = {0};
    char p[256];
    /* a MOT15-style sequence: no seqinfo.ini, 3 PNG frames of 6x8 */
    mkdir(fixture_path("s15"), 0755);
    mkdir(fixture_path("s15/img1"), 0755);
    mkdir(fixture_path("s15/det"), 0755);
    for (int f = 1; f <= 3; f++) {
        snprintf(p, sizeof p, "s15/img1/%06d.png", f);
        CHECK(image_write_png(fixture_path(p), px, 6, 8, 1, &e) == 0, "%s", e.msg);
    }
    fixture_write_file(fixture_path("s15/det/det.txt"), "3,-1,1,1,4,4,1\n", 15);
    MotSeq s;
    CHECK(mot_seq_open(&s, fixture_path("s15/"), &e) == 0 && s.info.frames == 3 && s.info.width == 8 &&
              s.info.height == 6 && !strcmp(s.info.name, "s15") && !strcmp(s.info.im_ext, ".png"),
          "MOT15 sequence inferred: %s", e.msg);
    mot_frame_path(&s, 2, p, sizeof p);
    CHECK(strstr(p, "s15/img1/000002.png") != NULL, "frame path %s", p);
    MotBoxes b;
    CHECK(mot_seq_boxes(&s, MOT_DET, &b, &e) == 0 && b.n == 1 && b.box[0].frame == 3, "det.txt: %s", e.msg);
    mot_boxes_free(&b);
    CHECK(mot_seq_boxes(&s, MOT_GT, &b, &e) == -1 && strstr(e.msg, "gt/gt.txt"), "no gt: %s", e.msg);
    mot_seq_close(&s);
    /* with seqinfo.ini */
    const char *ini = "[Sequence]\nname=abc\nseqLength=2\nimWidth=8\nimHeight=6\nimExt=.png\n";
    fixture_write_file(fixture_path("s15/seqinfo.ini"), ini, strlen(ini));
    CHECK(mot_seq_open(&s, fixture_path("s15"), &e) == 0 && s.info.frames == 2 && !strcmp(s.info.name, "abc"),
          "seqinfo.ini read: %s", e.msg);
    CHECK(mot_seq_boxes(&s, MOT_DET, &b, &e) == -1 && strstr(e.msg, "det.txt:1: frame 3 is outside"),
          "det frame past seqLength: %s", e.msg);
    mot_seq_close(&s);
    CHECK(mot_seq_open(&s, fixture_path("nothing"), &e) == -1 && strstr(e.msg, "nothing"), "%s", e.msg);
    mkdir(fixture_path("empty"), 0755);
    CHECK(mot_seq_open(&s, fixture_path("empty"), &e) == -1 && strstr(e.msg, "seqinfo.ini"), "%s", e.msg);
}

static void test_iou(void) {
    MotBox a = {.x = 0, .y = 0, .w = 10, .h = 10}, b = {.x = 5, .y = 0, .w = 10, .h = 10};
    MotBox c = {.x = 10, .y = 0, .w = 5, .h = 5}, d = {.x = 2, .y = 2, .w = 4, .h = 4};
    CHECK_CLOSE(mot_iou(&a, &b), 50.0 / 150.0, 1e-12, "half overlap");
    CHECK(mot_iou(&a, &c) == 0, "touching boxes");
    CHECK_CLOSE(mot_iou(&a, &d), 16.0 / 100.0, 1e-12, "inside");
    CHECK_CLOSE(mot_iou(&a, &a), 1.0, 1e-12, "self");
}

int main(void) {
    fixture_dir_create("mot");
    test_seqinfo();
    test_det_lines();
    test_gt_layouts();
    test_errors();
    test_roundtrip();
    test_sequences();
    test_iou();
    fixture_rm_tree(fixture_dir());
    return test_finish();
}
