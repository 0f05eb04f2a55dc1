/* appearance: a trained siamese network as the trackers' appearance model.
 * The detections' crops (cut from the frames like `import --format mot`
 * cuts ground truth, normalised as in training) are embedded frame by frame,
 * all crops of a frame in one forward pass; a pair's score is the Koch
 * head's logit when the network has one, else minus the Euclidean distance
 * of the two embeddings. A graph whose loss reads a pair-level node scores
 * pairs itself (early fusion: the two crops stacked as one input; or towers
 * joined by learned layers): the normalised crops are kept and the pairs
 * asked for run through the whole network, as many per forward pass as fit,
 * that node's output (a logit) being the score. */
#ifndef SIAMESE_APPEARANCE_H
#define SIAMESE_APPEARANCE_H

#include "../dist/evaluate.h"
#include "../io/mot.h"
#include "tracker.h"

enum { APP_MAX_MODELS = 8 }; /* networks in an ensemble */

typedef struct CnnAppearance {
    EvalModel em;
    EvalModel *more[APP_MAX_MODELS - 1]; /* an ensemble's further networks (nmore, each malloc'd) */
    int nmore;
    int dim[APP_MAX_MODELS]; /* each network's embedding size (concatenated in emb) */
    int C, H, W, D;          /* network input; embedding size (pairwise: C * H * W) */
    int pairwise;            /* the network scores pairs: emb holds the crops */
    size_t n;                /* detections embedded */
    float *emb;              /* (n, D): embeddings, or normalised crops */
    float *x;                /* pairwise: (max_batch, C * H * W) input rows */
    double embed_seconds;    /* reading frames, cropping and (towers) forward passes */
    double score_seconds;    /* pairwise: the forward passes over pairs */
    long frames, pairs;
} CnnAppearance;

/* Loads a checkpoint: a network with a per-image embedding (towers), or
 * one that scores pairs; or an ensemble, checkpoints separated by commas
 * (see cnn_appearance_add). 0 or -1 with e. */
int cnn_appearance_open(CnnAppearance *a, const char *checkpoint, Err *e);
/* The rest of open over a->em already loaded (a zeroed otherwise): checks
 * the network and chooses its scoring; frees a->em on error. 0 or -1 with e
 * naming checkpoint. */
int cnn_appearance_init(CnnAppearance *a, const char *checkpoint, Err *e);

/* Adds a further network (em: malloc'd and loaded; a owns it from now on,
 * frees it on error too) to the ensemble: every network must embed each image (no Koch
 * head, not scoring pairs) and take the same input shape. A pair's score
 * becomes minus the root mean over the networks of their squared embedding
 * distances: the embeddings are concatenated, each network's scaled by
 * 1/sqrt(networks). Before cnn_appearance_embed. 0 or -1 with e naming
 * name. */
int cnn_appearance_add(CnnAppearance *a, EvalModel *em, const char *name, Err *e);

/* Embeds every detection of det (the boxes of sequence s). 0 or -1 with e
 * (a frame that does not load, or frames with another channel count). */
int cnn_appearance_embed(CnnAppearance *a, const MotSeq *s, const MotBoxes *det, Err *e);

/* The Appearance the trackers call (ctx = the CnnAppearance). */
int cnn_appearance_score(void *ctx, const int *a, const int *b, int n, double *out, Err *e);

void cnn_appearance_close(CnnAppearance *a);

#endif
