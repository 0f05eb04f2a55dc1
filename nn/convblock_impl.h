/* convblock_impl: what nn/convblock.c (the geometry, the workspace, the
 * forward) and nn/convblock_bwd.c (the backward) share: the shape's
 * geometry and chunking (Geo), the workspace layout (Ws: shared blocks,
 * one block per thread, the backward's per-image slots) and the AVX-512
 * micro-kernels (convblock_tiles.h). Private to those two files. */
#ifndef SIAMESE_CONVBLOCK_IMPL_H
#define SIAMESE_CONVBLOCK_IMPL_H

#include <stddef.h>
#include <stdint.h>

#define CB_TARGET 32768      /* floats of conv output per forward chunk */
#define QB_TARGET 6144       /* floats of dconv per weight-gradient pixel block */
#define PMAX 24              /* largest pixel tile: slack rows after cb */
#define GROUP_TARGET 1048576 /* floats of the backward's per-image buffers per group */
#define PART_TARGET 2097152  /* floats of the backward's per-chunk weight gradients, at most */
#define CHUNKS_MIN 16        /* fewer image chunks than this: the backward splits the tiles */
#define CHUNKS_MAX 64
#define CHUNK_SEGS 4 /* by images: the chunks in this many runs, each added up on its own, then in order */

typedef struct Geo {
    int C, H, W, F, K, S, pool, nchw;
    int Ho, Wo, Hp, Wp;
    int R, T;  /* taps: R kernel rows of T = K*C contiguous input floats */
    size_t rs; /* input row stride, floats: W*C */
    size_t HWC, KKC, HoWo, HpWp;
    size_t nqi;  /* pixels per image in the pixel list (pool: 4 per window) */
    int nimg;    /* images per forward chunk, at most */
    int qb;      /* pixels per weight-gradient block */
    int patches; /* the weight gradient reads per-pixel patches (short tap runs) */
    int thr;     /* threads of the pool */
    int chunks;  /* backward by images: at most this many chunks of images (0: by tiles) */
    int grp;     /* by tiles: images per backward group (with threads, two groups' slots: one is read
                  * while the next is written) */
} Geo;

/* Workspace layout, floats. Pointer arrays are stored as pointers in the
 * float block (64-byte aligned, never read as floats). Shared by all
 * threads: pack, dwp, dbs, the backward's per-image slots (by tiles: a
 * group's; by images: one per thread) and the image chunks' partial
 * gradients; one block per thread: cb, tmp, pix, dinp. */
typedef struct Ws {
    float *pack; /* (KKC, F) wp or (F, KKC) wt */
    float *dwp;  /* (KKC, F) weight gradient, packed */
    double *dbs; /* (F) bias gradient sums */
    float *slot; /* by tiles: (2 with threads) grp x slot_floats; by images: thr x slot_floats */
    float *part; /* by images: part_bufs x part_floats */
    float *thr;  /* thr x thr_floats: per-thread blocks */
    size_t thr_floats, part_floats;
} Ws;

/* One thread's block. */
typedef struct ThreadWs {
    float *cb;          /* (nimg*nqi + PMAX, F) conv output of a forward chunk */
    float *tmp;         /* (HpWp + 1, F) NCHW <-> NHWC, then bias sums */
    const float **pix;  /* (nimg*nqi + PMAX) input pixel pointers */
    const float **dinp; /* (nqi + PMAX) input-gradient pixel pointers (written through) */
} ThreadWs;

/* One image's buffers in a backward group. */
typedef struct SlotWs {
    float *cb;         /* (nqi + PMAX, F) the conv output's gradient */
    const float **pix; /* (nqi + PMAX) input pixels, or their patches */
    float *patch;      /* (nqi + PMAX, KKC) if g->patches */
    float *dsum;       /* (F) the image's bias terms */
} SlotWs;

typedef struct Pack {
    const Geo *g;
    float *dst;
    const float *w;
} Pack;

/* The geometry of a shape, with the pool's thread count. */
Geo convblock_geo(int C, int H, int W, int F, int K, int S, int pool, int nchw);
/* Lays the workspace out from base (NULL: only counts); returns its floats. */
size_t convblock_ws_layout(Ws *w, float *base, const Geo *g);
ThreadWs convblock_thread_ws(const Ws *w, const Geo *g, int tid);
SlotWs convblock_slot_ws(const Ws *w, const Geo *g, int j);
/* Buffers of the backward's per-chunk partial gradients. */
int convblock_part_bufs(const Geo *g);
/* The input pixels of images [i0, i0 + n), see convblock.c. */
void convblock_pixel_list(const float **pix, const float *base, const Geo *g, int i0, int n);
/* Whether the AVX-512 kernels serve this shape (filters in whole vectors). */
int convblock_simd(const Geo *g);
/* Filters per chunk of the packing and unpacking loops. */
size_t convblock_filter_grain(const Geo *g);

#include "convblock_tiles.h"

#endif
