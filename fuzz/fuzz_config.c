/* fuzz_config: the INI experiment file through its schema. The input is the
 * config text up to the first NUL byte, then NUL-separated --set
 * assignments ("section.key=value"). Properties: a config that parses and
 * takes its overrides prints a canonical text that parses back to the same
 * text and the same topology (what rank 0 broadcasts and checkpoints
 * store); every refusal is one line. */
#include "../io/config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = xmalloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    static Config c, again; /* large: not on the stack */
    Err e = {{0}};
    if (config_parse_text(&c, text, "fuzz.ini", &e)) {
        fuzz_check_message(&e);
        free(text);
        return 0;
    }
    size_t at = strlen(text) + 1;
    while (at < size) { /* the --set assignments */
        const char *set = text + at;
        if (config_set(&c, set, &e)) {
            fuzz_check_message(&e);
            free(text);
            return 0;
        }
        at += strlen(set) + 1;
    }
    if (config_validate(&c, &e)) fuzz_check_message(&e);
    char *canon = config_to_text(&c);
    Err e2 = {{0}};
    FUZZ_CHECK(config_parse_text(&again, canon, "canonical", &e2) == 0,
               "canonical text does not parse: %s\n%s", e2.msg, canon);
    char *canon2 = config_to_text(&again);
    FUZZ_CHECK(!strcmp(canon, canon2), "canonical text changes when parsed again:\n%s\n----\n%s", canon,
               canon2);
    FUZZ_CHECK(config_same_topology(&c, &again, &e2) == 0, "topology changes when parsed again: %s", e2.msg);
    free(canon);
    free(canon2);
    free(text);
    return 0;
}
