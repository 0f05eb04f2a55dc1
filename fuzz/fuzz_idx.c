/* fuzz_idx: a pair of MNIST idx files, plain or gzip, through the importer's
 * reader (import_idx_load: headers, sizes against the files, labels, every
 * image, the end of each file and its gzip trailer). Input: a 2-byte
 * little-endian length L, then L bytes of the labels file, then the images
 * file. Properties: an accepted pair has at least one image, sides within
 * the limits and one label per image. */
#include "../io/image.h"
#include "../io/import.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t l = (size_t)data[0] | (size_t)data[1] << 8;
    if (l > size - 2) l = size - 2;
    static FuzzFile labels, images;
    fuzz_file_put(&labels, data + 2, l);
    fuzz_file_put(&images, data + 2 + l, size - 2 - l);
    IdxSet s;
    Err e = {{0}};
    if (import_idx_load(&s, images.path, labels.path, &e)) {
        fuzz_check_message(&e);
    } else {
        FUZZ_CHECK(s.n >= 1 && s.h >= 1 && s.w >= 1 && s.h <= IMAGE_MAX_SIDE && s.w <= IMAGE_MAX_SIDE &&
                       (uint64_t)s.h * s.w <= IMAGE_MAX_PIXELS && s.pixels && s.labels,
                   "accepted %u images of %ux%u", s.n, s.h, s.w);
        import_idx_free(&s);
    }
    return 0;
}
