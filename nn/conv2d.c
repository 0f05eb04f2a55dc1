/* conv2d: im2col + sgemm over chunks of images. For a chunk of n images the
 * column buffer is col (C*K*K, n*Ho*Wo), column j = (image i, output pixel p)
 * with j = i*Ho*Wo + p, so one GEMM per chunk does all n images:
 *   forward   tmp (F, n*HoWo) = w (F, CKK) x col
 *   backward  dw (F, CKK)    += tmp x col^T      (tmp = dout regrouped)
 *             dcol (CKK, N)   = w^T x tmp, then col2im into din.
 * tmp holds the (F, n, HoWo) ordering the GEMM needs; copying to and from
 * NCHW costs 1/CKK of the GEMM. Chunks follow each other (dw sums them in
 * order); inside a chunk the pool splits im2col, col2im and the copies by
 * parts of the images, the bias sums by filter, and each GEMM into nn/blas's fixed
 * blocks: the same bits for any thread count. Stride-1 "same" convolutions
 * build and scatter the columns plane by plane in masked AVX-512 blocks
 * (the same bits as the row loops, which small maps made a third of the
 * layer's time). A 1 x 1 convolution with at most CONV2D_POINTWISE_MAX_F
 * filters skips all this (below). */
#include "conv2d.h"

#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "parallel.h"
#include "util.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

/* Images per chunk: keep col + tmp near CONV2D_WS_TARGET floats. */
static int conv2d_chunk(int B, int C, int F, int K, int Ho, int Wo) {
    size_t per_image = ((size_t)C * K * K + (size_t)F) * (size_t)Ho * (size_t)Wo;
    size_t nb = CONV2D_WS_TARGET / (per_image ? per_image : 1);
    if (nb < 1) nb = 1;
    if (nb > (size_t)B) nb = (size_t)B;
    return (int)nb;
}

/* A 1 x 1 convolution with few filters (a mask head: one output channel)
 * runs as per-pixel dot products over the channels, image by image: its GEMM
 * would have F rows, and the column copy would cost as much as the GEMM. */
#define CONV2D_POINTWISE_MAX_F 4
static int pointwise(int F, int K, int stride, int pad) {
    return K == 1 && stride == 1 && pad == 0 && F <= CONV2D_POINTWISE_MAX_F;
}

/* A stride-1 "same" convolution with fewer filters than input channels
 * takes its input gradient as the forward convolution of dout with the
 * flipped, transposed weights (F channels in, C filters): the columns of
 * dout (F*K*K rows) instead of dcol (C*K*K, N) = w^T x dout, a GEMM with
 * only F terms per output whose C*K*K rows col2im then adds up. The sums
 * run in another order than the col2im path's: equal to rounding. With
 * AVX-512 a 3 x 3 one with at least as many filters also does, on planes of
 * FLIP_MIN_HW pixels or more, when the flipped convolution runs direct (at
 * most FW3_MAX_F filters): co-segmentation's enc2 (16 -> 32 at 32 x 32)
 * din 7.1 -> 5.1 ms, enc3 (32 -> 64 at 16 x 16) 6.9 -> 5.3 (kernels alone,
 * loaded machine); at 8 x 8 (enc4, 64 -> 64) the GEMM's is faster. */
#define FW3_MAX_F 64
#define FLIP_MIN_HW 256
#define SAME_MASKS_MAX 4096 /* the masks of the plane blocks (below) */
static int din_as_conv(int C, int F, int K, int stride, int pad, int H, int W) {
    if (stride != 1 || K < 3 || K % 2 != 1 || pad != K / 2) return 0;
#ifdef __AVX512F__
    long HW = (long)H * W;
    if (K == 3 && C <= FW3_MAX_F && HW >= FLIP_MIN_HW && 9 * ((HW + 15) / 16) <= SAME_MASKS_MAX) return 1;
#else
    (void)H, (void)W;
#endif
    return F < C;
}

static size_t conv2d_ws(int B, int C, int H, int W, int F, int K, int stride, int pad) {
    int Ho = conv2d_out_size(H, K, stride, pad), Wo = conv2d_out_size(W, K, stride, pad);
    ASSERT(Ho > 0 && Wo > 0);
    size_t nb = (size_t)conv2d_chunk(B, C, F, K, Ho, Wo);
    return nb * ((size_t)C * K * K + (size_t)F) * (size_t)Ho * (size_t)Wo;
}

size_t conv2d_workspace_floats(int B, int C, int H, int W, int F, int K, int stride, int pad) {
    ASSERT(B > 0 && C > 0 && F > 0 && K > 0 && stride > 0 && pad >= 0);
    if (pointwise(F, K, stride, pad)) return 2 * (size_t)B * F * (C + 1); /* per-image sums, in double */
    size_t n = conv2d_ws(B, C, H, W, F, K, stride, pad);
    if (din_as_conv(C, F, K, stride, pad, H, W)) /* and the flipped weights after the larger one */
        n = MAX(n, conv2d_ws(B, F, H, W, C, K, stride, pad)) + (size_t)F * C * K * K;
    return n;
}

/* Range [lo, hi) of output columns ow whose input column ow*stride-pad+kw
 * lies inside [0, W). */
static void conv2d_valid_range(int *lo, int *hi, int W, int Wo, int kw, int stride, int pad) {
    int a = pad - kw; /* ow*stride >= a */
    int l = a > 0 ? (a + stride - 1) / stride : 0;
    int b = W - 1 + pad - kw; /* ow*stride <= b */
    int h = b < 0 ? 0 : b / stride + 1;
    if (h > Wo) h = Wo;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* Stride 1 with Ho, Wo = H, W ("same" padding): with AVX-512 the planes are
 * read and written in blocks of 16 floats, each tap's row of col being the
 * input plane shifted by off = (kh - pad) W + kw - pad. The mask table says
 * which lanes of block q have both ends inside the plane for tap t
 * (mask[t nq + q]): one masked load and store per block for im2col (K - 1 =
 * 2 pad here, so tap t's col2im mask is tap K K - 1 - t's); for col2im, each
 * block of din gets its taps' masked loads added in tap order, in a
 * register, from its value (zero), as the row loops add them: the same bits.
 * The table is built once per call of the layer (SameMasks); NULL: the row
 * loops. */
typedef struct SameMasks {
    uint16_t m[SAME_MASKS_MAX];
} SameMasks;

/* The table for this geometry into *sm; NULL where the row loops run. */
static const uint16_t *same_masks(SameMasks *sm, int H, int W, int K, int stride, int pad) {
#ifdef __AVX512F__
    int HW = H * W, nq = (HW + 15) / 16;
    if (stride != 1 || 2 * pad != K - 1 || (size_t)K * K * nq > SAME_MASKS_MAX) return NULL;
    for (int t = 0; t < K * K; t++) {
        int dh = t / K - pad, dw = t % K - pad;
        uint16_t *m = sm->m + t * nq;
        memset(m, 0, (size_t)nq * sizeof *m);
        for (int oh = MAX(0, -dh); oh < MIN(H, H - dh); oh++)
            for (int ow = MAX(0, -dw); ow < MIN(W, W - dw); ow++) {
                int p = oh * W + ow;
                m[p / 16] |= (uint16_t)(1u << (p % 16));
            }
    }
    return sm->m;
#else
    (void)sm, (void)H, (void)W, (void)K, (void)stride, (void)pad;
    return NULL;
#endif
}

#ifdef __AVX512F__
/* d (H W) = tap t of plane (H W); lanes outside the plane are zero. */
static void im2col_same(float *d, const float *plane, const uint16_t *mask, int HW, ptrdiff_t off) {
    int nq = (HW + 15) / 16;
    for (int q = 0; q < nq; q++) {
        __m512 v = _mm512_maskz_loadu_ps(mask[q], plane + off + 16 * q);
        if (16 * q + 16 <= HW)
            _mm512_storeu_ps(d + 16 * q, v);
        else
            _mm512_mask_storeu_ps(d + 16 * q, (__mmask16)((1u << (HW - 16 * q)) - 1), v);
    }
}

/* plane (H W) += col2im of its K K taps, the rows tap[t] (H W) of col;
 * write: plane = (as if zeroed first). */
static void col2im_same(float *plane, const float *const *tap, const uint16_t *mask, int H, int W, int K,
                        int pad, int write) {
    int HW = H * W, nq = (HW + 15) / 16;
    for (int q = 0; q < nq; q++) {
        __mmask16 tail = 16 * q + 16 <= HW ? 0xffff : (__mmask16)((1u << (HW - 16 * q)) - 1);
        __m512 acc = write ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(tail, plane + 16 * q);
        for (int t = 0; t < K * K; t++) {
            __mmask16 m = mask[(K * K - 1 - t) * nq + q]; /* p - off inside: the mirrored tap's mask */
            if (!m) continue;
            ptrdiff_t off = (ptrdiff_t)(t / K - pad) * W + t % K - pad; /* din p <- col p - off */
            acc = _mm512_mask_add_ps(acc, m, acc, _mm512_maskz_loadu_ps(m, tap[t] + 16 * q - off));
        }
        _mm512_mask_storeu_ps(plane + 16 * q, tail, acc);
    }
}
#endif

/* The geometry of a 4 x 4, stride-2, padding-1 transposed convolution
 * doubling the side (nn/deconv2d's columns: this H x W is its output, Ho x
 * Wo its input): with AVX-512 its columns are built and scattered back row
 * by row of the plane, in blocks of 16 output columns (masked at a row's
 * end), the even and odd pixels of a row split apart (or woven together)
 * by two permutes.
 * Tap (kh, kw) of output pixel (oh, ow) reads pixel (2 oh - 1 + kh, 2 ow -
 * 1 + kw): even columns take kw 1 (ow) and 3 (ow - 1), odd ones kw 0 (ow +
 * 1) and 2 (ow); col2im adds a pixel's taps in (kh, kw) order onto its
 * value, masked where a tap falls outside, as the row loops do: the same
 * bits. */
#ifdef __AVX512F__
static int up2_geometry(int H, int W, int K, int stride, int pad, int Ho, int Wo) {
    return K == 4 && stride == 2 && pad == 1 && H == 2 * Ho && W == 2 * Wo;
}

static const int up2_even[16] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
static const int up2_lo[16] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};

/* Lanes [0, n) of 16 (n <= 16; n <= 0: none). */
static __mmask16 up2_lanes(int n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
}

/* col rows (kw = 0..3, stride N) of output row oh from input row x (2 Wo),
 * or zeros (x NULL). */
static void im2col_up2_row(float *const *row, const float *x, int Wo) {
    if (!x) {
        for (int kw = 0; kw < 4; kw++) memset(row[kw], 0, (size_t)Wo * sizeof(float));
        return;
    }
    __m512i ie = _mm512_loadu_si512(up2_even), io = _mm512_add_epi32(ie, _mm512_set1_epi32(1));
    for (int j0 = 0; j0 < Wo; j0 += 16) {
        int r = MIN(16, Wo - j0);
        __mmask16 m = up2_lanes(r);
        __m512 a = _mm512_maskz_loadu_ps(up2_lanes(2 * r), x + 2 * j0);
        __m512 b = _mm512_maskz_loadu_ps(up2_lanes(2 * r - 16), x + 2 * j0 + 16);
        __m512 e = _mm512_permutex2var_ps(a, ie, b), o = _mm512_permutex2var_ps(a, io, b);
        _mm512_mask_storeu_ps(row[1] + j0, m, e);                                      /* x[2 ow] */
        _mm512_mask_storeu_ps(row[2] + j0, m, o);                                      /* x[2 ow + 1] */
        _mm512_mask_storeu_ps(row[3] + j0 - 1, j0 ? m : m & 0xfffe, e);                /* x[2 ow + 2] */
        _mm512_mask_storeu_ps(row[0] + j0 + 1, j0 + r < Wo ? m : up2_lanes(r - 1), o); /* x[2 ow - 1] */
    }
    row[3][Wo - 1] = 0.0f, row[0][0] = 0.0f;
}

/* Plane row ih (2 Wo) of din += its taps: tap[kh][kw] the col rows of
 * output row oh(kh) (NULL outside); write: from zero. */
static void col2im_up2_row(float *d, const float *const (*tap)[4], int Wo, int write) {
    __m512i ie = _mm512_loadu_si512(up2_even), io = _mm512_add_epi32(ie, _mm512_set1_epi32(1));
    __m512i il = _mm512_loadu_si512(up2_lo), ih = _mm512_add_epi32(il, _mm512_set1_epi32(8));
    for (int j0 = 0; j0 < Wo; j0 += 16) {
        int r = MIN(16, Wo - j0);
        __mmask16 m = up2_lanes(r), ma = up2_lanes(2 * r), mb = up2_lanes(2 * r - 16);
        __m512 e = _mm512_setzero_ps(), o = _mm512_setzero_ps();
        if (!write) {
            __m512 a = _mm512_maskz_loadu_ps(ma, d + 2 * j0), b = _mm512_maskz_loadu_ps(mb, d + 2 * j0 + 16);
            e = _mm512_permutex2var_ps(a, ie, b), o = _mm512_permutex2var_ps(a, io, b);
        }
        __mmask16 m3 = j0 ? m : m & 0xfffe, m0 = j0 + r < Wo ? m : up2_lanes(r - 1);
        for (int k = 0; k < 2; k++) {
            const float *const *t = tap[k];
            if (!t[0]) continue;
            e = _mm512_add_ps(e, _mm512_maskz_loadu_ps(m, t[1] + j0));
            e = _mm512_mask_add_ps(e, m3, e, _mm512_maskz_loadu_ps(m3, t[3] + j0 - 1));
            o = _mm512_mask_add_ps(o, m0, o, _mm512_maskz_loadu_ps(m0, t[0] + j0 + 1));
            o = _mm512_add_ps(o, _mm512_maskz_loadu_ps(m, t[2] + j0));
        }
        _mm512_mask_storeu_ps(d + 2 * j0, ma, _mm512_permutex2var_ps(e, il, o));
        _mm512_mask_storeu_ps(d + 2 * j0 + 16, mb, _mm512_permutex2var_ps(e, ih, o));
    }
}

static void im2col_up2(float *col, const float *in, int i0, int i1, int n, int C, int Ho, int Wo) {
    size_t HoWo = (size_t)Ho * Wo, N = (size_t)n * HoWo, HW = 4 * HoWo;
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < 4; kh++)
            for (int i = i0; i < i1; i++)
                for (int oh = 0; oh < Ho; oh++) {
                    float *row[4];
                    for (int kw = 0; kw < 4; kw++)
                        row[kw] =
                            col + ((size_t)(c * 4 + kh) * 4 + kw) * N + (size_t)i * HoWo + (size_t)oh * Wo;
                    int y = 2 * oh - 1 + kh;
                    im2col_up2_row(
                        row, y >= 0 && y < 2 * Ho ? in + ((size_t)i * C + c) * HW + (size_t)y * 2 * Wo : NULL,
                        Wo);
                }
}

static void col2im_up2(float *din, const float *col, int i0, int i1, int n, int C, int Ho, int Wo,
                       int write) {
    size_t HoWo = (size_t)Ho * Wo, N = (size_t)n * HoWo, HW = 4 * HoWo;
    for (int i = i0; i < i1; i++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < 2 * Ho; y++) {
                const float *tap[2][4];
                int kh0 = (y + 1) & 1;
                for (int k = 0; k < 2; k++) {
                    int kh = kh0 + 2 * k, oh = (y + 1 - kh) / 2;
                    for (int kw = 0; kw < 4; kw++)
                        tap[k][kw] = oh >= 0 && oh < Ho ? col + ((size_t)(c * 4 + kh) * 4 + kw) * N +
                                                              (size_t)i * HoWo + (size_t)oh * Wo
                                                        : NULL;
                }
                col2im_up2_row(din + ((size_t)i * C + c) * HW + (size_t)y * 2 * Wo,
                               (const float *const(*)[4])tap, Wo, write);
            }
}
#endif

/* Columns of images [i0, i1) of col (C*K*K, n*Ho*Wo) from in (n, C, H, W). */
static void im2col(float *col, const float *in, int i0, int i1, int n, int C, int H, int W, int K, int stride,
                   int pad, int Ho, int Wo, const uint16_t *mask) {
    size_t HoWo = (size_t)Ho * Wo, N = (size_t)n * HoWo, HW = (size_t)H * W;
#ifdef __AVX512F__
    if (up2_geometry(H, W, K, stride, pad, Ho, Wo)) {
        im2col_up2(col, in, i0, i1, n, C, Ho, Wo);
        return;
    }
    if (mask) {
        int nq = ((int)HW + 15) / 16;
        for (int c = 0; c < C; c++)
            for (int t = 0; t < K * K; t++) {
                float *row = col + ((size_t)c * K * K + t) * N;
                ptrdiff_t off = (ptrdiff_t)(t / K - pad) * W + t % K - pad;
                for (int i = i0; i < i1; i++)
                    im2col_same(row + (size_t)i * HoWo, in + ((size_t)i * C + c) * HW, mask + t * nq, (int)HW,
                                off);
            }
        return;
    }
#else
    (void)mask; /* always NULL without AVX-512 */
#endif
    for (int c = 0; c < C; c++) {
        for (int kh = 0; kh < K; kh++) {
            for (int kw = 0; kw < K; kw++) {
                float *row = col + ((size_t)(c * K + kh) * K + kw) * N;
                int lo, hi;
                conv2d_valid_range(&lo, &hi, W, Wo, kw, stride, pad);
                for (int i = i0; i < i1; i++) {
                    const float *plane = in + ((size_t)i * C + c) * HW;
                    for (int oh = 0; oh < Ho; oh++) {
                        float *d = row + (size_t)i * HoWo + (size_t)oh * Wo;
                        int ih = oh * stride - pad + kh;
                        if (ih < 0 || ih >= H || lo >= hi) {
                            memset(d, 0, (size_t)Wo * sizeof *d);
                            continue;
                        }
                        const float *src = plane + (size_t)ih * W + kw - pad;
                        for (int ow = 0; ow < lo; ow++) d[ow] = 0.0f;
                        if (stride == 1) {
                            memcpy(d + lo, src + lo, (size_t)(hi - lo) * sizeof *d);
                        } else {
                            for (int ow = lo; ow < hi; ow++) d[ow] = src[ow * stride];
                        }
                        for (int ow = hi; ow < Wo; ow++) d[ow] = 0.0f;
                    }
                }
            }
        }
    }
}

/* din images [i0, i1) (of n, C, H, W) += col2im(col); write: = (the images
 * zeroed first). */
static void col2im(float *din, const float *col, int i0, int i1, int n, int C, int H, int W, int K,
                   int stride, int pad, int Ho, int Wo, const uint16_t *mask, int write) {
    size_t HoWo = (size_t)Ho * Wo, N = (size_t)n * HoWo, HW = (size_t)H * W;
#ifdef __AVX512F__
    const float *tap[SAME_MASKS_MAX];
    if (up2_geometry(H, W, K, stride, pad, Ho, Wo)) {
        col2im_up2(din, col, i0, i1, n, C, Ho, Wo, write);
        return;
    }
    if (mask) {
        for (int i = i0; i < i1; i++)
            for (int c = 0; c < C; c++) {
                for (int t = 0; t < K * K; t++) tap[t] = col + ((size_t)c * K * K + t) * N + (size_t)i * HoWo;
                col2im_same(din + ((size_t)i * C + c) * HW, tap, mask, H, W, K, pad, write);
            }
        return;
    }
#else
    (void)mask;
#endif
    if (write) memset(din + (size_t)i0 * C * HW, 0, (size_t)(i1 - i0) * C * HW * sizeof *din);
    for (int i = i0; i < i1; i++) {
        for (int c = 0; c < C; c++) {
            float *plane = din + ((size_t)i * C + c) * HW;
            for (int kh = 0; kh < K; kh++) {
                for (int kw = 0; kw < K; kw++) {
                    const float *row = col + ((size_t)(c * K + kh) * K + kw) * N + (size_t)i * HoWo;
                    int lo, hi;
                    conv2d_valid_range(&lo, &hi, W, Wo, kw, stride, pad);
                    if (lo >= hi) continue;
                    for (int oh = 0; oh < Ho; oh++) {
                        int ih = oh * stride - pad + kh;
                        if (ih < 0 || ih >= H) continue;
                        const float *s = row + (size_t)oh * Wo;
                        float *d = plane + (size_t)ih * W + kw - pad;
                        if (stride == 1) {
                            for (int ow = lo; ow < hi; ow++) d[ow] += s[ow];
                        } else {
                            for (int ow = lo; ow < hi; ow++) d[ow * stride] += s[ow];
                        }
                    }
                }
            }
        }
    }
}

/* One chunk's state; the steps below are chunks of parallel_run: parts of
 * the chunk's images (at most 4 per thread; one thread: one part, the plain
 * loop) or filters. */
typedef struct Conv {
    float *out, *din, *db, *col, *tmp;
    const float *in, *b, *dout;
    const uint16_t *mask; /* same_masks, or NULL */
    int b0, n, parts, C, H, W, F, K, stride, pad, Ho, Wo, Fs; /* Fs: out's channels per image */
} Conv;

/* Part k of the chunk's images: [*i0, *i1). */
static void images_of(const Conv *c, int k, int *i0, int *i1) {
    size_t lo, hi;
    parallel_split((size_t)c->n, c->parts, k, &lo, &hi);
    *i0 = (int)lo, *i1 = (int)hi;
}

static void im2col_images(void *p, int k, int tid) {
    (void)tid;
    const Conv *c = p;
    int i0, i1;
    images_of(c, k, &i0, &i1);
    im2col(c->col, c->in + (size_t)c->b0 * c->C * c->H * c->W, i0, i1, c->n, c->C, c->H, c->W, c->K,
           c->stride, c->pad, c->Ho, c->Wo, c->mask);
}

/* out images b0 + i = tmp's columns of image i + bias */
static void bias_images(void *p, int k, int tid) {
    (void)tid;
    const Conv *c = p;
    size_t HoWo = (size_t)c->Ho * c->Wo, N = (size_t)c->n * HoWo;
    int i0, i1;
    images_of(c, k, &i0, &i1);
    for (int i = i0; i < i1; i++)
        for (int f = 0; f < c->F; f++) {
            const float *s = c->tmp + (size_t)f * N + (size_t)i * HoWo;
            float *d = c->out + ((size_t)(c->b0 + i) * c->Fs + f) * HoWo;
            float bias = c->b ? c->b[f] : 0.0f;
            for (size_t q = 0; q < HoWo; q++) d[q] = s[q] + bias;
        }
}

/* tmp row f (F, n*HoWo) <- dout (n, F, HoWo); db[f] += its sum (sum_floats). */
static void regroup_filter(void *p, int f, int tid) {
    (void)tid;
    const Conv *c = p;
    size_t HoWo = (size_t)c->Ho * c->Wo, N = (size_t)c->n * HoWo;
    float *t = c->tmp + (size_t)f * N;
    for (int i = 0; i < c->n; i++)
        memcpy(t + (size_t)i * HoWo, c->dout + ((size_t)(c->b0 + i) * c->F + f) * HoWo, HoWo * sizeof *t);
    if (c->db) c->db[f] += (float)sum_floats(t, N);
}

static void col2im_images(void *p, int k, int tid) {
    (void)tid;
    const Conv *c = p;
    size_t CHW = (size_t)c->C * c->H * c->W;
    float *d = c->din + (size_t)c->b0 * CHW;
    int i0, i1;
    images_of(c, k, &i0, &i1);
    col2im(d, c->col, i0, i1, c->n, c->C, c->H, c->W, c->K, c->stride, c->pad, c->Ho, c->Wo, c->mask, 1);
}

/* The geometry, the workspace (col, then tmp) and the images per chunk. */
static Conv conv_ctx(int B, int C, int H, int W, int F, int K, int stride, int pad, float *ws, int *nb,
                     SameMasks *sm) {
    Conv c;
    memset(&c, 0, sizeof c);
    c.C = C, c.H = H, c.W = W, c.F = F, c.Fs = F, c.K = K, c.stride = stride, c.pad = pad;
    c.Ho = conv2d_out_size(H, K, stride, pad), c.Wo = conv2d_out_size(W, K, stride, pad);
    ASSERT(c.Ho > 0 && c.Wo > 0);
    *nb = conv2d_chunk(B, C, F, K, c.Ho, c.Wo);
    c.col = ws;
    c.tmp = ws + (size_t)*nb * C * K * K * c.Ho * c.Wo;
    c.mask = same_masks(sm, H, W, K, stride, pad);
    return c;
}

/* ---- 1 x 1, few filters: per-pixel dot products ------------------------ */

typedef struct Pointwise {
    float *out, *din;
    double *part; /* (B, F, C + 1): image i's <in_c, dout_f>, then its sum of dout_f */
    const float *in, *w, *b, *dout;
    int C, F;
    size_t HW;
} Pointwise;

/* out image i, filter f = b_f + sum_c w_fc in_c, channel after channel
 * (GEMM adds in another order: equal to rounding). */
static void pointwise_fwd_image(void *p, int i, int tid) {
    (void)tid;
    const Pointwise *c = p;
    size_t HW = c->HW;
    const float *x = c->in + (size_t)i * c->C * HW;
    for (int f = 0; f < c->F; f++) {
        float *o = c->out + ((size_t)i * c->F + f) * HW;
        const float *wf = c->w + (size_t)f * c->C;
        float bias = c->b ? c->b[f] : 0.0f;
        for (size_t q = 0; q < HW; q++) o[q] = bias;
        for (int ch = 0; ch < c->C; ch++) {
            const float *xc = x + (size_t)ch * HW;
            float wc = wf[ch];
            for (size_t q = 0; q < HW; q++) o[q] += wc * xc[q];
        }
    }
}

#define PW_LANES 16
/* <a, b> over n floats: PW_LANES float lanes, added in double. */
static double pointwise_dot(const float *a, const float *b, size_t n) {
    float l[PW_LANES] = {0};
    size_t q = 0;
    for (; q + PW_LANES <= n; q += PW_LANES)
        for (int j = 0; j < PW_LANES; j++) l[j] += a[q + j] * b[q + j];
    double s = 0;
    for (; q < n; q++) s += (double)a[q] * b[q];
    for (int j = 0; j < PW_LANES; j++) s += l[j];
    return s;
}

/* Image i: din_c = sum_f w_fc dout_f (written), and its dw, db sums into part. */
static void pointwise_bwd_image(void *p, int i, int tid) {
    (void)tid;
    const Pointwise *c = p;
    size_t HW = c->HW;
    const float *x = c->in + (size_t)i * c->C * HW, *d = c->dout + (size_t)i * c->F * HW;
    double *part = c->part + (size_t)i * c->F * (c->C + 1);
    for (int f = 0; f < c->F; f++) {
        const float *df = d + (size_t)f * HW;
        for (int ch = 0; ch < c->C; ch++)
            part[f * (c->C + 1) + ch] = pointwise_dot(x + (size_t)ch * HW, df, HW);
        part[f * (c->C + 1) + c->C] = sum_floats(df, HW);
    }
    if (!c->din) return;
    for (int ch = 0; ch < c->C; ch++) {
        float *g = c->din + ((size_t)i * c->C + ch) * HW;
        for (int f = 0; f < c->F; f++) {
            const float *df = d + (size_t)f * HW;
            float wc = c->w[(size_t)f * c->C + ch];
            if (f == 0)
                for (size_t q = 0; q < HW; q++) g[q] = wc * df[q];
            else
                for (size_t q = 0; q < HW; q++) g[q] += wc * df[q];
        }
    }
}

#ifdef __AVX512F__
/* One filter (a mask head) with AVX-512: the forward keeps a block of 16
 * pixels' sum in a register over the channels (no pass over the output per
 * channel), the backward takes each channel's dot product and writes its
 * input gradient in one pass over dout. The same operations in the same
 * order as the loops above: the same bits (where a compiler contracts
 * those loops' a * b + c into an FMA, as clang does by default, they
 * differ; the intrinsics are not contracted). Where din's plane is 64-byte
 * aligned it is written with streaming stores (no read of its lines first:
 * co-segmentation's mask, 8 channels of 64 x 64, backward 1.37 -> 0.83 ms
 * a step of 64 images; bn7's backward, which reads din next, 0.1-0.3 ms
 * slower; shared machine). */
static void pointwise1_fwd_image(void *p, int i, int tid) {
    (void)tid;
    const Pointwise *c = p;
    size_t HW = c->HW, q = 0;
    const float *x = c->in + (size_t)i * c->C * HW;
    float *o = c->out + (size_t)i * HW;
    __m512 bias = _mm512_set1_ps(c->b ? c->b[0] : 0.0f);
    for (; q + 16 <= HW; q += 16) {
        __m512 s = bias;
        for (int ch = 0; ch < c->C; ch++)
            s = _mm512_add_ps(s, _mm512_mul_ps(_mm512_set1_ps(c->w[ch]), _mm512_loadu_ps(x + (size_t)ch * HW + q)));
        _mm512_storeu_ps(o + q, s);
    }
    if (q < HW) {
        __mmask16 m = (__mmask16)((1u << (HW - q)) - 1);
        __m512 s = bias;
        for (int ch = 0; ch < c->C; ch++)
            s = _mm512_add_ps(
                s, _mm512_mul_ps(_mm512_set1_ps(c->w[ch]), _mm512_maskz_loadu_ps(m, x + (size_t)ch * HW + q)));
        _mm512_mask_storeu_ps(o + q, m, s);
    }
}

/* part[ch] = pointwise_dot(x_c, dout) (16 float lanes, the tail and then
 * the lanes added in double), din_c = w_c dout, part[C] = sum_floats(dout). */
static void pointwise1_bwd_image(void *p, int i, int tid) {
    (void)tid;
    const Pointwise *c = p;
    size_t HW = c->HW, nb = HW / 16 * 16;
    const float *x = c->in + (size_t)i * c->C * HW, *d = c->dout + (size_t)i * HW;
    double *part = c->part + (size_t)i * (c->C + 1);
    for (int ch = 0; ch < c->C; ch++) {
        const float *xc = x + (size_t)ch * HW;
        float *g = c->din ? c->din + ((size_t)i * c->C + ch) * HW : NULL;
        __m512 wc = _mm512_set1_ps(c->w[ch]), l = _mm512_setzero_ps();
        if (g && ((uintptr_t)g & 63) == 0) /* streaming stores */
            for (size_t q = 0; q < nb; q += 16) {
                __m512 dq = _mm512_loadu_ps(d + q);
                l = _mm512_add_ps(l, _mm512_mul_ps(_mm512_loadu_ps(xc + q), dq));
                _mm512_stream_ps(g + q, _mm512_mul_ps(wc, dq));
            }
        else if (g)
            for (size_t q = 0; q < nb; q += 16) {
                __m512 dq = _mm512_loadu_ps(d + q);
                l = _mm512_add_ps(l, _mm512_mul_ps(_mm512_loadu_ps(xc + q), dq));
                _mm512_storeu_ps(g + q, _mm512_mul_ps(wc, dq));
            }
        else
            for (size_t q = 0; q < nb; q += 16)
                l = _mm512_add_ps(l, _mm512_mul_ps(_mm512_loadu_ps(xc + q), _mm512_loadu_ps(d + q)));
        double s = 0;
        for (size_t q = nb; q < HW; q++) {
            s += (double)xc[q] * d[q];
            if (g) g[q] = c->w[ch] * d[q];
        }
        float lanes[16];
        _mm512_storeu_ps(lanes, l);
        for (int j = 0; j < 16; j++) s += lanes[j];
        part[ch] = s;
    }
    part[c->C] = sum_floats(d, HW);
    _mm_sfence();
}
#endif

/* ---- 3 x 3 "same", few filters: direct forward ------------------------- */

/* With AVX-512, a stride-1 3 x 3 convolution with padding 1, at most
 * FW3_MAX_F filters and a plane of at least 64 pixels runs direct, one chunk
 * per image: per group of 8 filters and 3 blocks of 16 pixels of the flat
 * plane, 8 x 3 sums in registers start from the bias and take, tap after
 * tap and channel after channel (a tap's shift and masks fixed over the
 * channels), the masked load of the plane shifted as im2col_same's times
 * the weight (broadcast). The GEMM would have F rows and the columns cost
 * as much as it. The weights are packed (groups, 9, C, 8),
 * zero past the last filter, at the start of the workspace: 9 C (F + 7) / 8
 * * 8 floats, at most 9 C 64, within the columns' 9 C H W (H W >= 64),
 * and below the flipped weights of conv2d_din_flipped's call; with more
 * filters, where they fit in the chunk's columns and tmp. */

#ifdef __AVX512F__
static int fwd_direct(int B, int C, int H, int W, int F, int Fs, int K, int stride, int pad) {
    int nq = (H * W + 15) / 16;
    if (K != 3 || stride != 1 || pad != 1 || H * W < 64 || 9 * nq > SAME_MASKS_MAX) return 0;
    /* more filters where the packed weights still fit in the columns' space
     * (dec0's flipped input gradient: 290 filters, 11.5 -> 10.6 ms), that of
     * Fs filters (conv2d_forward_into) */
    return F <= FW3_MAX_F || (size_t)9 * C * ((F + 7) / 8 * 8) <= conv2d_ws(B, C, H, W, Fs, K, stride, pad);
}

typedef struct Fw3 {
    float *out;
    const float *in, *wp, *b;
    const uint16_t *mask;
    int C, H, W, F, Fs; /* Fs: the output's channels per image (F, or more: a part of din) */
} Fw3;

/* Image i, filters [8 g, 8 g + nf), blocks [q0, q0 + NB) of the plane
 * (NB a constant after inlining: the sums stay in registers). */
static inline __attribute__((always_inline)) void fw3_step(const Fw3 *d, int i, int g, int nf, int q0,
                                                           const int NB) {
    int C = d->C, W = d->W, HW = d->H * W, nq = (HW + 15) / 16;
    const float *x = d->in + (size_t)i * C * HW;
    __m512 acc[8][3];
    for (int f = 0; f < 8; f++) {
        __m512 bv = _mm512_set1_ps(d->b && f < nf ? d->b[8 * g + f] : 0.0f);
        for (int j = 0; j < NB; j++) acc[f][j] = bv;
    }
    for (int t = 0; t < 9; t++) {
        const uint16_t *m = d->mask + (size_t)t * nq + q0;
        __mmask16 mt[3];
        for (int j = 0; j < NB; j++) mt[j] = m[j];
        const float *xc = x + 16 * q0 + (ptrdiff_t)(t / 3 - 1) * W + t % 3 - 1;
        const float *wc = d->wp + ((size_t)g * 9 + t) * C * 8;
        for (int c = 0; c < C; c++, xc += HW, wc += 8) {
            __m512 a[3];
            for (int j = 0; j < NB; j++) a[j] = _mm512_maskz_loadu_ps(mt[j], xc + 16 * j);
            for (int f = 0; f < 8; f++) {
                __m512 wv = _mm512_set1_ps(wc[f]);
                for (int j = 0; j < NB; j++) acc[f][j] = _mm512_fmadd_ps(wv, a[j], acc[f][j]);
            }
        }
    }
    __mmask16 mj[3];
    for (int j = 0; j < NB; j++) {
        int q = q0 + j;
        mj[j] = 16 * q + 16 <= HW ? (__mmask16)0xFFFF : (__mmask16)((1u << (HW - 16 * q)) - 1);
    }
#pragma GCC unroll 8
    for (int f = 0; f < 8; f++) {
        if (f >= nf) break;
        float *o = d->out + ((size_t)i * d->Fs + 8 * g + f) * HW + 16 * q0;
        for (int j = 0; j < NB; j++) _mm512_mask_storeu_ps(o + 16 * j, mj[j], acc[f][j]);
    }
}

static void fw3_image(void *p, int i, int tid) {
    (void)tid;
    const Fw3 *d = p;
    int nq = (d->H * d->W + 15) / 16;
    for (int g = 0; g * 8 < d->F; g++) {
        int nf = MIN(8, d->F - 8 * g), q0 = 0;
        for (; q0 + 3 <= nq; q0 += 3) fw3_step(d, i, g, nf, q0, 3);
        if (nq - q0 == 2) fw3_step(d, i, g, nf, q0, 2);
        if (nq - q0 == 1) fw3_step(d, i, g, nf, q0, 1);
    }
}
#endif

/* conv2d_forward into out images of Fs >= F channels (the first F written),
 * within the workspace of Fs filters (conv2d_din_flipped's, sized for all
 * of din's channels): the GEMM's chunk is the one of Fs filters (with
 * fewer filters it could hold more images, and its columns reach past
 * that workspace). */
static void conv2d_forward_into(float *out, int Fs, const float *in, const float *w, const float *b, int B, int C,
                                int H, int W, int F, int K, int stride, int pad, float *ws) {
    if (pointwise(F, K, stride, pad)) {
        ASSERT(Fs == F);
        (void)ws;
        Pointwise c = {out, NULL, NULL, in, w, b, NULL, C, F, (size_t)H * W};
#ifdef __AVX512F__
        if (F == 1) {
            parallel_run(B, pointwise1_fwd_image, &c);
            return;
        }
#endif
        parallel_run(B, pointwise_fwd_image, &c);
        return;
    }
    int nb;
    SameMasks sm;
#ifdef __AVX512F__
    if (fwd_direct(B, C, H, W, F, Fs, K, stride, pad)) {
        float *wp = ws;
        int ng = (F + 7) / 8;
        for (int g = 0; g < ng; g++)
            for (int ch = 0; ch < C; ch++)
                for (int t = 0; t < 9; t++)
                    for (int f = 0; f < 8; f++)
                        wp[(((size_t)g * 9 + t) * C + ch) * 8 + f] =
                            8 * g + f < F ? w[((size_t)(8 * g + f) * C + ch) * 9 + t] : 0.0f;
        Fw3 d = {out, in, wp, b, same_masks(&sm, H, W, K, stride, pad), C, H, W, F, Fs};
        parallel_run(B, fw3_image, &d);
        return;
    }
#endif
    Conv c = conv_ctx(B, C, H, W, Fs, K, stride, pad, ws, &nb, &sm);
    c.F = F, c.out = out, c.in = in, c.b = b;
    size_t HoWo = (size_t)c.Ho * c.Wo, CKK = (size_t)C * K * K;
    for (c.b0 = 0; c.b0 < B; c.b0 += nb) {
        c.n = MIN(nb, B - c.b0);
        size_t N = (size_t)c.n * HoWo;
        c.parts = MIN(c.n, 4 * parallel_threads());
        parallel_run(c.parts, im2col_images, &c);
        blas_sgemm(0, 0, F, (int)N, (int)CKK, 1.0f, w, (int)CKK, c.col, (int)N, 0.0f, c.tmp, (int)N);
        parallel_run(c.parts, bias_images, &c);
    }
}

void conv2d_forward(float *out, const float *in, const float *w, const float *b, int B, int C, int H, int W,
                    int F, int K, int stride, int pad, float *ws) {
    conv2d_forward_into(out, F, in, w, b, B, C, H, W, F, K, stride, pad, ws);
}

/* ---- 3 x 3 "same", filters in groups of 8: direct weight gradient ----- */

/* With AVX-512, a stride-1 3 x 3 convolution with padding 1 and a multiple
 * of 8 filters takes its weight gradient without columns: one chunk per
 * (input channel c, group of 8 filters) runs over the images and the plane's
 * blocks of 16 pixels, each tap's input block one masked load of the plane
 * shifted as im2col_same's, and keeps 8 x 3 sums (a row of taps) in
 * registers; each image's sums are added to the chunk's 8 x 9 vector sums,
 * which are reduced at the end (a fixed order: the same bits for any
 * thread count; another order than the GEMM's, equal to rounding). The
 * bias gradient is each filter's sum over the images in double. Unlike
 * the GEMM path, it needs no columns of the input and no copy of them into
 * OpenBLAS's panels (at 64 x 64 with 8 filters those were most of it). */
#define DW3_G 8
/* With more filters the GEMM's weight gradient is as fast (co-segmentation's
 * 64-filter layers at 8 x 8 and 16 x 16: about 5 % slower direct). */
#define DW3_MAX_F 32

static int dw_direct(int H, int W, int F, int K, int stride, int pad) {
#ifdef __AVX512F__
    int nq = (H * W + 15) / 16;
    return K == 3 && stride == 1 && pad == 1 && F % DW3_G == 0 && F <= DW3_MAX_F && 9 * nq <= SAME_MASKS_MAX;
#else
    (void)H, (void)W, (void)F, (void)K, (void)stride, (void)pad;
    return 0;
#endif
}

#ifdef __AVX512F__
typedef struct Dw3 {
    float *dw, *db;
    const float *in, *dout;
    const uint16_t *mask;
    int B, C, H, W, F;
} Dw3;

/* Input channels per chunk: a chunk reads each image's 8 dout planes once
 * for all its channels. */
#define DW3_CB 8

/* Chunk u: filters [f0, f0 + 8) and the channels of block u % nb (the
 * channels cut into nb blocks of at most DW3_CB; each channel's sums are
 * its own, so the cut changes no bit). */
static void dw3_chunk(void *p, int u, int tid) {
    (void)tid;
    const Dw3 *d = p;
    int nb = (d->C + DW3_CB - 1) / DW3_CB, f0 = u / nb * DW3_G, b = u % nb;
    int c0 = (int)((long)b * d->C / nb), c1 = (int)((long)(b + 1) * d->C / nb);
    int W = d->W, HW = d->H * W, nq = (HW + 15) / 16;
    __m512 tot[DW3_CB][DW3_G][9];
    for (int c = 0; c < c1 - c0; c++)
        for (int f = 0; f < DW3_G; f++)
            for (int t = 0; t < 9; t++) tot[c][f][t] = _mm512_setzero_ps();
    for (int i = 0; i < d->B; i++) {
        const float *g = d->dout + ((size_t)i * d->F + f0) * HW;
        for (int c = c0; c < c1; c++) {
            const float *x = d->in + ((size_t)i * d->C + c) * HW;
            for (int kh = 0; kh < 3; kh++) {
                __m512 acc[DW3_G][3];
                for (int f = 0; f < DW3_G; f++) acc[f][0] = acc[f][1] = acc[f][2] = _mm512_setzero_ps();
                const uint16_t *m0 = d->mask + (size_t)(3 * kh) * nq;
                ptrdiff_t off = (ptrdiff_t)(kh - 1) * W - 1;
                for (int q = 0; q < nq; q++) {
                    __m512 a0 = _mm512_maskz_loadu_ps(m0[q], x + off + 16 * q);
                    __m512 a1 = _mm512_maskz_loadu_ps(m0[nq + q], x + off + 1 + 16 * q);
                    __m512 a2 = _mm512_maskz_loadu_ps(m0[2 * nq + q], x + off + 2 + 16 * q);
                    __mmask16 mq =
                        16 * q + 16 <= HW ? (__mmask16)0xFFFF : (__mmask16)((1u << (HW - 16 * q)) - 1);
                    for (int f = 0; f < DW3_G; f++) {
                        __m512 gv = _mm512_maskz_loadu_ps(mq, g + (size_t)f * HW + 16 * q);
                        acc[f][0] = _mm512_fmadd_ps(gv, a0, acc[f][0]);
                        acc[f][1] = _mm512_fmadd_ps(gv, a1, acc[f][1]);
                        acc[f][2] = _mm512_fmadd_ps(gv, a2, acc[f][2]);
                    }
                }
                __m512(*tc)[9] = tot[c - c0];
                for (int f = 0; f < DW3_G; f++)
                    for (int kw = 0; kw < 3; kw++)
                        tc[f][3 * kh + kw] = _mm512_add_ps(tc[f][3 * kh + kw], acc[f][kw]);
            }
        }
    }
    for (int c = c0; c < c1; c++)
        for (int f = 0; f < DW3_G; f++)
            for (int t = 0; t < 9; t++)
                d->dw[((size_t)(f0 + f) * d->C + c) * 9 + t] += _mm512_reduce_add_ps(tot[c - c0][f][t]);
}

/* db[f] += the sum of dout's plane f over the images (in double, image order). */
static void dw3_bias(void *p, int f, int tid) {
    (void)tid;
    const Dw3 *d = p;
    size_t HW = (size_t)d->H * d->W;
    double s = 0.0;
    for (int i = 0; i < d->B; i++) s += sum_floats(d->dout + ((size_t)i * d->F + f) * HW, HW);
    d->db[f] += (float)s;
}
#endif

/* din channels [0, Cd) = conv(dout, wt) (din_as_conv), wt (Cd, F, K, K) the
 * weights transposed and flipped, in ws after the larger of the two
 * convolutions' workspaces. */
static void conv2d_din_flipped(float *din, int Cd, const float *dout, const float *w, int B, int C, int H, int W,
                               int F, int K, int pad, float *ws) {
    size_t KK = (size_t)K * K;
    float *wt = ws + MAX(conv2d_ws(B, C, H, W, F, K, 1, pad), conv2d_ws(B, F, H, W, C, K, 1, pad));
    for (int f = 0; f < F; f++)
        for (int ch = 0; ch < Cd; ch++)
            for (size_t t = 0; t < KK; t++)
                wt[((size_t)ch * F + f) * KK + KK - 1 - t] = w[((size_t)f * C + ch) * KK + t];
    conv2d_forward_into(din, C, dout, wt, NULL, B, F, H, W, Cd, K, 1, pad, ws);
}

static void conv2d_backward_all(float *din, int Cd, float *dw, float *db, const float *dout, const float *in,
                                const float *w, int B, int C, int H, int W, int F, int K, int stride, int pad,
                                float *ws);

void conv2d_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                     int B, int C, int H, int W, int F, int K, int stride, int pad, float *ws) {
    conv2d_backward_part(din, C, dw, db, dout, in, w, B, C, H, W, F, K, stride, pad, ws);
}

void conv2d_backward_part(float *din, int Cd, float *dw, float *db, const float *dout, const float *in,
                          const float *w, int B, int C, int H, int W, int F, int K, int stride, int pad, float *ws) {
    ASSERT(Cd >= 0 && Cd <= C);
    conv2d_backward_all(Cd ? din : NULL, Cd, dw, db, dout, in, w, B, C, H, W, F, K, stride, pad, ws);
    if (din && Cd < C) /* the channels nobody reads: zero (the GEMM's path computed them) */
        for (int i = 0; i < B; i++)
            memset(din + ((size_t)i * C + Cd) * H * W, 0, (size_t)(C - Cd) * H * W * sizeof *din);
}

/* din's channels [0, Cd) at least (the flipped path: only those). */
static void conv2d_backward_all(float *din, int Cd, float *dw, float *db, const float *dout, const float *in,
                                const float *w, int B, int C, int H, int W, int F, int K, int stride, int pad,
                                float *ws) {
    if (pointwise(F, K, stride, pad)) {
        /* images in parallel; their sums added in image order: the same bits for any thread count */
        ASSERT(((uintptr_t)ws & 7) == 0);
        Pointwise c = {NULL, din, (double *)(void *)ws, in, w, NULL, dout, C, F, (size_t)H * W};
#ifdef __AVX512F__
        parallel_run(B, F == 1 ? pointwise1_bwd_image : pointwise_bwd_image, &c);
#else
        parallel_run(B, pointwise_bwd_image, &c);
#endif
        for (int f = 0; f < F; f++) {
            for (int ch = 0; ch <= C; ch++) {
                double s = 0;
                for (int i = 0; i < B; i++) s += c.part[((size_t)i * F + f) * (C + 1) + ch];
                if (ch < C)
                    dw[(size_t)f * C + ch] += (float)s;
                else if (db)
                    db[f] += (float)s;
            }
        }
        return;
    }
    int nb;
    SameMasks sm;
    int flip = din && din_as_conv(C, F, K, stride, pad, H, W), direct = dw_direct(H, W, F, K, stride, pad);
#ifdef __AVX512F__
    if (direct) {
        Dw3 d = {dw, db, in, dout, same_masks(&sm, H, W, K, stride, pad), B, C, H, W, F};
        parallel_run((F / DW3_G) * ((C + DW3_CB - 1) / DW3_CB), dw3_chunk, &d);
        if (db) parallel_run(F, dw3_bias, &d);
    }
#endif
    Conv c = conv_ctx(B, C, H, W, F, K, stride, pad, ws, &nb, &sm);
    c.din = flip ? NULL : din, c.db = direct ? NULL : db, c.in = in, c.dout = dout;
    size_t HoWo = (size_t)c.Ho * c.Wo, CKK = (size_t)C * K * K;
    for (c.b0 = 0; c.b0 < B && (!direct || c.din); c.b0 += nb) {
        c.n = MIN(nb, B - c.b0);
        size_t N = (size_t)c.n * HoWo;
        parallel_run(F, regroup_filter, &c);
        c.parts = MIN(c.n, 4 * parallel_threads());
        if (!direct) {
            parallel_run(c.parts, im2col_images, &c);
            blas_sgemm(0, 1, F, (int)CKK, (int)N, 1.0f, c.tmp, (int)N, c.col, (int)N, 1.0f, dw, (int)CKK);
        }
        if (c.din) {
            /* col is free again: dcol (CKK, N) = w^T x tmp */
            blas_sgemm(1, 0, (int)CKK, (int)N, F, 1.0f, w, (int)CKK, c.tmp, (int)N, 0.0f, c.col, (int)N);
            parallel_run(c.parts, col2im_images, &c);
        }
    }
    if (flip) conv2d_din_flipped(din, Cd, dout, w, B, C, H, W, F, K, pad, ws);
}

/* ---- reference loops ---------------------------------------------------- */

void conv2d_forward_naive(float *out, const float *in, const float *w, const float *b, int B, int C, int H,
                          int W, int F, int K, int stride, int pad) {
    int Ho = conv2d_out_size(H, K, stride, pad), Wo = conv2d_out_size(W, K, stride, pad);
    for (int n = 0; n < B; n++)
        for (int f = 0; f < F; f++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    double acc = b ? b[f] : 0.0;
                    for (int c = 0; c < C; c++)
                        for (int kh = 0; kh < K; kh++)
                            for (int kw = 0; kw < K; kw++) {
                                int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                acc += (double)in[(((size_t)n * C + c) * H + ih) * W + iw] *
                                       w[(((size_t)f * C + c) * K + kh) * K + kw];
                            }
                    out[(((size_t)n * F + f) * Ho + oh) * Wo + ow] = (float)acc;
                }
}

void conv2d_backward_naive(float *din, float *dw, float *db, const float *dout, const float *in,
                           const float *w, int B, int C, int H, int W, int F, int K, int stride, int pad) {
    int Ho = conv2d_out_size(H, K, stride, pad), Wo = conv2d_out_size(W, K, stride, pad);
    size_t nin = (size_t)B * C * H * W, nw = (size_t)F * C * K * K;
    double *gin = xcalloc(nin, sizeof *gin), *gw = xcalloc(nw, sizeof *gw);
    double *gb = xcalloc((size_t)F, sizeof *gb);
    for (int n = 0; n < B; n++)
        for (int f = 0; f < F; f++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    double g = dout[(((size_t)n * F + f) * Ho + oh) * Wo + ow];
                    gb[f] += g;
                    for (int c = 0; c < C; c++)
                        for (int kh = 0; kh < K; kh++)
                            for (int kw = 0; kw < K; kw++) {
                                int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                size_t ii = (((size_t)n * C + c) * H + ih) * W + iw;
                                size_t wi = (((size_t)f * C + c) * K + kh) * K + kw;
                                gin[ii] += g * w[wi];
                                gw[wi] += g * in[ii];
                            }
                }
    if (din)
        for (size_t i = 0; i < nin; i++) din[i] = (float)gin[i];
    for (size_t i = 0; i < nw; i++) dw[i] += (float)gw[i];
    if (db)
        for (int f = 0; f < F; f++) db[f] += (float)gb[f];
    free(gin);
    free(gw);
    free(gb);
}

/* ---- the column layout, for transposed convolution (nn/deconv2d) ------- */

void conv2d_im2col(float *col, const float *in, int n, int C, int H, int W, int K, int stride, int pad) {
    SameMasks sm;
    im2col(col, in, 0, n, n, C, H, W, K, stride, pad, conv2d_out_size(H, K, stride, pad),
           conv2d_out_size(W, K, stride, pad), same_masks(&sm, H, W, K, stride, pad));
}

void conv2d_col2im(float *din, const float *col, int n, int C, int H, int W, int K, int stride, int pad) {
    SameMasks sm;
    col2im(din, col, 0, n, n, C, H, W, K, stride, pad, conv2d_out_size(H, K, stride, pad),
           conv2d_out_size(W, K, stride, pad), same_masks(&sm, H, W, K, stride, pad), 0);
}

void conv2d_col2im_write(float *din, const float *col, int n, int C, int H, int W, int K, int stride, int pad) {
    SameMasks sm;
    col2im(din, col, 0, n, n, C, H, W, K, stride, pad, conv2d_out_size(H, K, stride, pad),
           conv2d_out_size(W, K, stride, pad), same_masks(&sm, H, W, K, stride, pad), 1);
}
