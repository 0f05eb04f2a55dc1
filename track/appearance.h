/* appearance: a trained siamese network as the trackers' appearance model.
 * The detections' crops (cut from the frames like `import --format mot`
 * cuts ground truth, normalised as in training) are embedded frame by frame,
 * all crops of a frame in one forward pass; a pair's score is the Koch
 * head's logit when the network has one, else minus the Euclidean distance
 * of the two embeddings. */
#ifndef SIAMESE_APPEARANCE_H
#define SIAMESE_APPEARANCE_H

#include "../dist/evaluate.h"
#include "../io/mot.h"
#include "tracker.h"

typedef struct CnnAppearance {
    EvalModel em;
    int C, H, W, D;       /* network input and embedding size */
    size_t n;             /* detections embedded */
    float *emb;           /* (n, D) */
    double embed_seconds; /* reading frames, cropping and forward passes */
    long frames;
} CnnAppearance;

/* Loads a checkpoint of a one-image network (towers). 0 or -1 with e. */
int cnn_appearance_open(CnnAppearance *a, const char *checkpoint, Err *e);

/* Embeds every detection of det (the boxes of sequence s). 0 or -1 with e
 * (a frame that does not load, or frames with another channel count). */
int cnn_appearance_embed(CnnAppearance *a, const MotSeq *s, const MotBoxes *det, Err *e);

/* The Appearance the trackers call (ctx = the CnnAppearance). */
int cnn_appearance_score(void *ctx, const int *a, const int *b, int n, double *out, Err *e);

void cnn_appearance_close(CnnAppearance *a);

#endif
