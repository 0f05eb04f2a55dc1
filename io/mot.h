/* mot: the MOTChallenge sequence layout. A sequence directory holds
 * seqinfo.ini, frames in img1/ (000001.jpg ...), det/det.txt and (for
 * training sequences) gt/gt.txt; tracker results use the det/gt line format.
 * The text parsers are pure functions over a buffer (mot_parse_seqinfo,
 * mot_parse_boxes), so they can be fuzzed; the rest reads files and calls
 * them. Boxes are held 0-based (file x 1 is pixel column 0) and clipped to
 * the frame [0, width] x [0, height]; writing adds the 1 back. */
#ifndef SIAMESE_MOT_H
#define SIAMESE_MOT_H

#include <stddef.h>
#include <stdint.h>

#include "../nn/util.h"

#define MOT_MAX_FRAMES 10000000 /* seqLength limit */
#define MOT_MAX_SIDE 65535

typedef struct MotSeqInfo {
    char name[128];  /* [Sequence] name (default: the directory's name) */
    char im_dir[64]; /* imDir (default img1) */
    char im_ext[16]; /* imExt with its dot (default .jpg) */
    int32_t frames;  /* seqLength */
    int32_t width, height;
    double frame_rate; /* frameRate (default 30) */
} MotSeqInfo;

/* The three line formats. DET: frame,-1,x,y,w,h,score[,...] (score 1 when
 * absent). GT: MOT16/17 (9 columns): frame,id,x,y,w,h,flag,class,visibility;
 * MOT15 (10 columns, or 7-8): frame,id,x,y,w,h,flag[,world x,y,z] with class 1
 * and visibility 1; 6 columns: flag 1. RES: frame,id,x,y,w,h[,score,...].
 * Every line of a file has the column count of its first line. */
typedef enum { MOT_DET, MOT_GT, MOT_RES } MotKind;

typedef struct MotBox {
    int32_t frame;    /* 1-based */
    int32_t id;       /* track id (-1 in det files) */
    float x, y, w, h; /* 0-based, clipped to the frame */
    float score;      /* det/res confidence; 1 in gt */
    float vis;        /* gt visibility in [0, 1]; 1 elsewhere */
    int32_t cls;      /* gt class (1 = pedestrian); 1 elsewhere */
    int32_t flag;     /* gt: 0 = ignore (zero-marked); 1 elsewhere */
} MotBox;

/* Boxes sorted by frame (file order within a frame); frame f's boxes are
 * box[first[f] .. first[f + 1]) for f in 1..frames. */
typedef struct MotBoxes {
    MotBox *box;
    size_t n;
    int32_t frames;
    size_t *first; /* frames + 2 entries */
} MotBoxes;

/* Parses a seqinfo.ini held in buf (n bytes, need not be NUL-terminated).
 * Requires [Sequence] seqLength, imWidth, imHeight; the rest has defaults.
 * path names the file in errors ("path:line: ..."). 0 or -1 with e. */
int mot_parse_seqinfo(const char *buf, size_t n, const char *path, MotSeqInfo *info, Err *e);

/* Parses det/gt/result lines held in buf for a sequence of info's size and
 * length. One-line errors name path and line: a malformed line, a frame
 * outside 1..frames, a box with no area or wholly outside the frame, a
 * negative gt/res id, an id twice in one frame (gt/res), a column count
 * unlike the first line's. Boxes crossing the border are clipped. Blank lines
 * are skipped. 0 (out owns its arrays; mot_boxes_free) or -1 with e. */
int mot_parse_boxes(const char *buf, size_t n, const char *path, MotKind kind, const MotSeqInfo *info,
                    MotBoxes *out, Err *e);

void mot_boxes_free(MotBoxes *b);

/* Builds b from n boxes in any order (copied, stably sorted by frame) for a
 * sequence of `frames` frames; every box's frame must be in 1..frames. */
void mot_boxes_build(MotBoxes *b, const MotBox *box, size_t n, int32_t frames);

/* Writes boxes as MOTChallenge lines (1-based): RES and DET as
 * frame,id,x,y,w,h,score,-1,-1,-1; GT as the 9-column MOT16 layout. The
 * text is malloc'd into *text (NUL-terminated), its length in *len. */
void mot_format_boxes(const MotBoxes *b, MotKind kind, char **text, size_t *len);

/* The same into a file, atomically. 0 or -1 with e naming path. */
int mot_write_boxes(const char *path, const MotBoxes *b, MotKind kind, Err *e);

/* A sequence directory. Without seqinfo.ini (MOT15), the length is the
 * number of consecutive frames 000001.jpg (or .png) ... in img1/ and the size
 * that of the first frame. */
typedef struct MotSeq {
    char *dir;
    MotSeqInfo info;
} MotSeq;

int mot_seq_open(MotSeq *s, const char *dir, Err *e);
void mot_seq_close(MotSeq *s);

/* Reads dir/det/det.txt (DET) or dir/gt/gt.txt (GT). 0 or -1 with e. */
int mot_seq_boxes(const MotSeq *s, MotKind kind, MotBoxes *out, Err *e);

/* Reads a box file at path for the sequence info. 0 or -1 with e. */
int mot_read_boxes(const char *path, MotKind kind, const MotSeqInfo *info, MotBoxes *out, Err *e);

/* The path of frame f (1-based) into buf (cap bytes). */
void mot_frame_path(const MotSeq *s, int32_t f, char *buf, size_t cap);

/* Crops box b from img (grey or interleaved RGB, the frame the box is in)
 * into out (img->channels planes of oh x ow) by area averaging: the pixels
 * the box touches (x from floor(x) to ceil(x + w), clipped to the image, at
 * least one). */
struct Image;
void mot_crop(uint8_t *out /* (C, oh, ow) */, const struct Image *img, const MotBox *b, int oh, int ow);

/* Intersection over union of two boxes; 0 when either has no area. */
double mot_iou(const MotBox *a, const MotBox *b);

#endif
