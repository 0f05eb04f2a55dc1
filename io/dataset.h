/* dataset: the on-disk LMDB dataset format, its writer and its validating
 * reader. One LMDB environment (a directory) per dataset with named
 * sub-databases meta, samples, by_class, classes and the optional names,
 * pairs, triplets (masks live in the sample records). Readers open read-only and without locks, so many ranks
 * can read one dataset at once; a writer builds a new dataset in a temporary
 * directory and renames it when complete. No sampling policy here (sampler.h). */
#ifndef SIAMESE_DATASET_H
#define SIAMESE_DATASET_H

#include <stdint.h>
#include <stdio.h>

#include "../nn/util.h"

#define DS_FORMAT_NAME "siamese-mpi-dataset"
#define DS_FORMAT_VERSION 2 /* 2: sample names, per-channel mean/std; 1 is still read */
#define DS_MAX_CLASSES (1 << 24) /* 16777216: labels fit a float exactly too */
#define DS_MAX_CHANNELS 16 /* channels of a sample (1 grey, 3 colour) */
#define DS_MAX_NAME 1024   /* bytes of a sample name */

/* Meta `masks`: 0 none; DS_MASKS_OBJECT: 0 background, else the object of
 * the sample's label; DS_MASKS_CLASS: per-pixel classes of every object,
 * 0 background, c + 1 for class c (<= classes; the reader checks). */
enum { DS_MASKS_NONE = 0, DS_MASKS_OBJECT = 1, DS_MASKS_CLASS = 2 };
#define DS_MAX_MASK_CLASSES 255 /* classes of a dataset with class masks (a byte holds class + 1) */

typedef struct DsMeta {
    uint32_t version;               /* DS_FORMAT_VERSION */
    uint64_t count;                 /* samples, ids 0..count-1 */
    uint32_t channels, height, width;
    uint32_t classes;               /* labels are 0..classes-1 */
    float mean, std;                /* of pixel/255 over all samples and channels */
    float channel_mean[DS_MAX_CHANNELS],
        channel_std[DS_MAX_CHANNELS]; /* per channel (version 1: = mean, std) */
    int compressed;                 /* records zlib-compressed */
    int has_masks;                  /* optional per-sample uint8 mask (H x W): DS_MASKS_OBJECT or DS_MASKS_CLASS */
    int has_names;                  /* every sample has a unique name (version 2) */
    uint64_t npairs, ntriplets;     /* 0 when the sub-database is absent */
    char source[256];               /* free text: where it came from */
} DsMeta;

typedef struct Dataset Dataset;   /* an open environment (read-only) */
typedef struct DsReader DsReader; /* one per thread: holds a read transaction */

/* Opens PATH read-only and validates meta and the class index (loaded into
 * memory: 8 bytes per sample, about 32 + the name per class; by_class and
 * classes must hold one record per class before anything is allocated for
 * them). Returns 0, or -1 with e naming the path and the fault. */
int ds_open(Dataset **out, const char *path, Err *e);
/* ds_open, refusing (before allocating it) a class index of more than limit
 * bytes (limit <= 0: none); why says where the limit comes from, for the
 * message ("[run] max_memory = 2"). */
int ds_open_within(Dataset **out, const char *path, double limit, const char *why, Err *e);
void ds_close(Dataset *ds);
const DsMeta *ds_meta(const Dataset *ds);
const char *ds_path(const Dataset *ds);

/* Class index, from by_class: the sample ids of one label (ascending), owned
 * by the Dataset. ds_labels: label of every sample id (count entries). */
const uint32_t *ds_class_ids(const Dataset *ds, uint32_t label, uint32_t *n);
const int32_t *ds_labels(const Dataset *ds);
/* Class name ("Alphabet/character01", "s12", "3"); never NULL. */
const char *ds_class_name(const Dataset *ds, uint32_t label);
/* Bytes of a class name's group: the part before the first '/' (the Omniglot
 * alphabet), or the whole name when it has no '/'. */
size_t ds_group_len(const char *class_name);
/* The groups of the dataset's classes, numbered in byte-wise order of their
 * names: of_label[c] (classes entries) gets class c's group in [0, n), and,
 * if names is not NULL, *names the n group names (malloc'd, each and the
 * array; free with ds_groups_free). Returns n (>= 1 when classes >= 1). */
int ds_groups(const Dataset *ds, int32_t *of_label, char ***names);
/* The same over a bare list of C class names (the importer's, before a
 * dataset exists). */
int names_groups(const char *const *names, uint32_t C, int32_t *of_label, char ***group_names);
void ds_groups_free(char **names, int n);

/* Sample names (format version 2, meta has_names): the importer's name of
 * each source sample ("Alphabet/character01/0975_14.png", "train-images-idx3-
 * ubyte.gz#17", "class/file.png"): UTF-8, 1..DS_MAX_NAME bytes, no control
 * characters (bytes below 0x20 and 0x7f), unique within the dataset.
 * ds_load_names reads and validates all of them into memory (once; later
 * calls return at once) and indexes them for ds_find_sample; 0 (also when the
 * dataset has no names), or -1 with e naming the record at fault. */
int ds_load_names(Dataset *ds, Err *e);
/* The checks of ds_load_names without keeping the names: memory bounded
 * whatever their number (uniqueness through temporary files in $TMPDIR, or
 * /tmp, of 16 bytes per name). For `siamese inspect --verify`. */
int ds_verify_names(Dataset *ds, Err *e);
/* Name of sample id after ds_load_names; NULL when the dataset has none. */
const char *ds_sample_name(const Dataset *ds, uint64_t id);
/* The id of the sample called name[0..len), or -1 (also without names). */
int64_t ds_find_sample(const Dataset *ds, const char *name, size_t len);
/* NULL if s[0..n) is a valid sample name, else why not ("empty", ...). */
const char *ds_name_fault(const char *s, size_t n);

/* A reader is used by one thread at a time. */
int ds_reader_open(Dataset *ds, DsReader **out, Err *e);
void ds_reader_close(DsReader *r);
/* Reads and validates sample `id`: pixels gets channels*height*width bytes,
 * *label its label; mask (may be NULL) gets height*width bytes if the dataset
 * has masks. On a bad record: -1 with e naming the key and the fault. */
int ds_read(DsReader *r, uint64_t id, uint8_t *pixels, int32_t *label, uint8_t *mask, Err *e);
/* The record decoder behind ds_read, for records met elsewhere (tests, the
 * fuzz harness): decodes and validates the n bytes of samples record `id`
 * as a dataset of meta m would hold it (want_label >= 0: the label the class
 * index gives it). One per thread; ds_decoder_new allocates once. */
typedef struct DsDecoder DsDecoder;
DsDecoder *ds_decoder_new(const DsMeta *m, const char *path);
void ds_decoder_free(DsDecoder *d);
int ds_decode(DsDecoder *d, uint64_t id, const uint8_t *rec, size_t n, int32_t want_label, uint8_t *pixels,
              int32_t *label, uint8_t *mask, Err *e);
/* Record i of the pairs / triplets sub-databases, validated (ids < count). */
int ds_read_pair(DsReader *r, uint64_t i, uint32_t *a, uint32_t *b, int *same, Err *e);
int ds_read_triplet(DsReader *r, uint64_t i, uint32_t t[3], Err *e);
/* Every record of the pairs sub-database at once (npairs entries each, in
 * record order), validated as ds_read_pair does; for samplers that index
 * the pairs. 0, or -1 with e naming the record. */
int ds_load_pairs(const Dataset *ds, uint32_t *a, uint32_t *b, uint8_t *same, Err *e);

/* Writer. ds_writer_create refuses an existing final path (names it and says
 * to remove it or pick another --out), builds in "<path>.tmp-<pid>" and only
 * ds_writer_finish renames it into place. Samples get ids in add order. */
typedef struct DsWriter DsWriter;
typedef struct DsWriterSpec {
    uint32_t channels, height, width;
    uint32_t classes;
    int compress;
    int has_masks; /* DS_MASKS_* (any other non-zero: DS_MASKS_OBJECT) */
    const char *source;
    const char *const *class_names; /* classes entries, or NULL for "0".."n-1" */
} DsWriterSpec;
int ds_writer_create(DsWriter **out, const char *path, const DsWriterSpec *spec, Err *e);
/* Adds one sample: pixels (C, H, W), mask (H, W) when the spec has masks.
 * ds_writer_add_named also gives the sample's name (refused when invalid; a
 * name used twice makes ds_writer_finish fail naming both samples, checked
 * there without holding the names): a dataset has names when its samples are all added with
 * ds_writer_add_named (name not NULL), none when all with ds_writer_add;
 * mixing the two is refused. */
int ds_writer_add(DsWriter *w, const uint8_t *pixels, int32_t label, const uint8_t *mask, Err *e);
int ds_writer_add_named(DsWriter *w, const uint8_t *pixels, int32_t label, const uint8_t *mask,
                        const char *name, Err *e);
/* The pairs sub-database of the new dataset, written with it by
 * ds_writer_finish: record i is (a[i], b[i], same), same = 1 when the two
 * labels are equal. Call after the last ds_writer_add; ids must differ and
 * name added samples (else -1 with e). A later call replaces the pairs. */
int ds_writer_set_pairs(DsWriter *w, const uint32_t *a, const uint32_t *b, uint64_t n, Err *e);
/* Checks that no two names are the same, writes meta (mean/std computed
 * over the samples) and by_class, commits, renames. On failure the
 * temporary directory is removed. Frees w. */
int ds_writer_finish(DsWriter *w, Err *e);
/* Removes the temporary directory; frees w. */
void ds_writer_abort(DsWriter *w);
/* Finishes n writers together (a train and a test split): every one is
 * committed before any is renamed into place, and if any step fails all are
 * removed, so either every dataset appears or none does. Frees them all. */
int ds_writer_finish_all(DsWriter **w, int n, Err *e);
/* Samples added so far. */
uint64_t ds_writer_count(const DsWriter *w);

/* Adds (replacing) the pairs or triplets sub-database of an existing dataset
 * in one LMDB transaction: either all records land or none do. */
int ds_write_pairs(const char *path, const uint32_t *a, const uint32_t *b, const uint8_t *same,
                   uint64_t n, Err *e);
int ds_write_triplets(const char *path, const uint32_t *t /* (n, 3) */, uint64_t n, Err *e);

#endif
