/* import_source: the list of an import's samples (internal to io/import*.c).
 * A Source holds every sample's label, and for folder layouts its path,
 * before anything is written: the split is decided on the list. Folder and
 * Omniglot trees are listed here (several roots, excluded groups); the idx
 * reader in import.c fills the same list. */
#ifndef SIAMESE_IMPORT_SOURCE_H
#define SIAMESE_IMPORT_SOURCE_H

#include <stdint.h>
#include <zlib.h>

#include "../nn/util.h"

typedef struct Source {
    uint64_t n;
    int32_t *labels;   /* n */
    char **paths;      /* n, folder layouts; NULL for idx */
    uint32_t *name_at; /* n, folder layouts: a sample's name is paths[i] + name_at[i] (its own root's) */
    uint64_t cap;
    uint32_t classes;
    char **names; /* classes */
    /* idx: the images file, positioned at the next image */
    gzFile gz;
    const char *images;
    uint32_t h, w;
    size_t root_len; /* folder layouts: the root being listed + '/' */
    /* --exclude-groups: the names, and which were found */
    char **exclude;
    uint8_t *excluded;
    size_t nexclude;
} Source;

void source_free(Source *s);
/* Appends a sample (path owned by s; NULL for idx) of label. */
void source_add(Source *s, char *path, int32_t label);
void source_class(Source *s, const char *name);
/* Lists the classes and files of roots (NULL after the last; omniglot:
 * alphabet/character/ files, else class/ files), leaving out the groups of
 * the comma-separated exclude list ("koch": IMPORT_KOCH_GROUPS) or NULL. */
int source_folder(Source *s, const char *const *roots, int omniglot, const char *exclude, Err *e);
/* The name of sample i: its path under its root, or FILE#INDEX for idx. */
const char *source_name(const Source *s, uint64_t i, char *buf, size_t cap);
/* Every name valid before anything is written, with room for "@rotNNN"
 * when rotations > 1. */
int check_names(const Source *s, uint32_t rotations, int mirror, Err *e);

#endif
