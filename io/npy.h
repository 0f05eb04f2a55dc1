/* npy: NumPy .npy files (format version 1.0) for exported embeddings and
 * labels: float32 (N, D) and int32 (N) arrays, little-endian, C order.
 * Writes are atomic (io/atomic_file). The reader is small and strict, for
 * tests and tools: it accepts '<f4' / '<i4' arrays of up to NPY_MAX_DIMS
 * dimensions in C order, version 1.0 or 2.0, and nothing else.
 *
 * Layout: "\x93NUMPY", u8 major (1), u8 minor (0), u16 LE header length H,
 * then H bytes of header text, e.g.
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 * padded with spaces and ended by '\n' so that 10 + H is a multiple of 64;
 * then the data. Little-endian hosts only (checked at compile time). */
#ifndef SIAMESE_NPY_H
#define SIAMESE_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "../nn/util.h"

#define NPY_MAX_DIMS 4

/* data: (rows, cols) float32; rows, cols >= 0. 0, or -1 with e naming path
 * (a file already at path is then untouched). */
int npy_write_f32(const char *path, const float *data, int64_t rows, int64_t cols, Err *e);

/* data: (n) int32; n >= 0. Errors as npy_write_f32. */
int npy_write_i32(const char *path, const int32_t *data, int64_t n, Err *e);

typedef struct NpyArray {
    char dtype; /* 'f' = '<f4', 'i' = '<i4' */
    int ndim;   /* 0 .. NPY_MAX_DIMS */
    int64_t shape[NPY_MAX_DIMS];
    size_t count; /* product of the shape */
    void *data;   /* (count) float or int32_t, malloc'd */
} NpyArray;

/* Reads and validates path (magic, version, header dict, dtype, order, size
 * of the data). On success *a owns data (npy_free); on failure *a is zeroed
 * and e names the file and the fault. */
int npy_read(NpyArray *a, const char *path, Err *e);
void npy_free(NpyArray *a);

#endif
