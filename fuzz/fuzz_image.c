/* fuzz_image: image_decode (PGM P5/P2, PNG, JPEG) over any bytes, in grey
 * or colour (first byte), then a resize of what it decoded. Properties: a
 * decoded image has its claimed size and channel count within the limits;
 * a refused one leaves no memory and a one-line message. */
#include "../io/image.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int color = data[0] & 1;
    Image img;
    Err e = {{0}};
    if (image_decode(&img, "fuzz.img", data + 1, size - 1, color, &e)) {
        fuzz_check_message(&e);
        FUZZ_CHECK(img.pixels == NULL, "a refused image holds pixels");
        return 0;
    }
    FUZZ_CHECK(img.pixels && img.height >= 1 && img.width >= 1 && img.height <= IMAGE_MAX_SIDE &&
                   img.width <= IMAGE_MAX_SIDE && (uint64_t)img.height * img.width <= IMAGE_MAX_PIXELS,
               "decoded %ux%u", img.height, img.width);
    FUZZ_CHECK(img.channels == (color ? 3u : 1u), "channels %u in %s mode", img.channels,
               color ? "colour" : "grey");
    if (!color) { /* what the importer does next: --resize */
        uint8_t out[7 * 5];
        image_resize(out, 7, 5, img.pixels, img.height, img.width);
    }
    image_free(&img);
    return 0;
}
