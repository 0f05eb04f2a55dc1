/* fuzz_record: one record of a dataset's samples sub-database through the
 * record decoder of every reader (ds_decode: header, flags, shape, label,
 * lengths, inflate, CRC). Input: 4 bytes choosing the dataset it belongs to
 * (channels 1..4, height and width 1..64, classes 1..16, compressed and
 * masks flags (object or class masks), the label the class index gives it),
 * then the record. Properties: an accepted record carries a label below
 * classes, equal to the class index's, a class mask of values up to
 * classes, and decodes the same a second time (the decoder's inflate state
 * is reused). */
#include "../io/dataset.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    DsMeta m;
    memset(&m, 0, sizeof m);
    m.channels = 1 + (data[0] & 3);
    m.height = 1 + (data[1] & 63);
    m.width = 1 + (data[2] & 63);
    m.classes = 1 + (data[3] & 15);
    m.compressed = (data[0] >> 2) & 1;
    m.has_masks = (data[0] >> 3) & 1 ? 1 + ((data[0] >> 5) & 1) : 0; /* 2: class masks */
    int32_t want = (data[0] >> 4) & 1 ? -1 : (int32_t)(data[3] >> 4) % (int32_t)m.classes;
    DsDecoder *d = ds_decoder_new(&m, "fuzz.lmdb");
    size_t npix = (size_t)m.channels * m.height * m.width, hw = (size_t)m.height * m.width;
    uint8_t *px = xmalloc(npix), *mask = xmalloc(hw), *px2 = xmalloc(npix);
    int32_t label = -1, label2 = -1;
    Err e = {{0}};
    if (ds_decode(d, 7, data + 4, size - 4, want, px, &label, mask, &e)) {
        fuzz_check_message(&e);
    } else {
        FUZZ_CHECK(label >= 0 && (uint32_t)label < m.classes && (want < 0 || label == want), "label %d",
                   label);
        for (size_t i = 0; m.has_masks == DS_MASKS_CLASS && i < hw; i++)
            FUZZ_CHECK(mask[i] <= m.classes, "class mask value %u above classes %u", mask[i], m.classes);
        FUZZ_CHECK(ds_decode(d, 7, data + 4, size - 4, want, px2, &label2, NULL, &e) == 0 &&
                       label2 == label && !memcmp(px, px2, npix),
                   "a second decode differs: %s", e.msg);
    }
    free(px);
    free(px2);
    free(mask);
    ds_decoder_free(d);
    return 0;
}
