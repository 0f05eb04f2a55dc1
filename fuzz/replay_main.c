/* replay_main: runs a fuzz harness over files without libFuzzer (the
 * project's compiler, no sanitizers unless SANITIZE=1): every argument is a
 * file or a directory of files, each given to LLVMFuzzerTestOneInput once.
 * tests/e2e_fuzz_replay.sh runs it over fuzz/corpus/ so that an input that
 * once crashed a decoder keeps being tried by every `make test`. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static long replayed;

static void replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) FATAL("%s: cannot open", path);
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) buf = xrealloc(buf, cap = cap ? 2 * cap : 4096);
        size_t k = fread(buf + n, 1, cap - n, f);
        if (k == 0) break;
        n += k;
    }
    fclose(f);
    /* A copy of exactly n bytes, so reading past the input is caught (ASan). */
    uint8_t *exact = xmalloc(n ? n : 1);
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    replayed++;
}

static void replay(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) FATAL("%s: no such file or directory", path);
    if (!S_ISDIR(st.st_mode)) {
        replay_file(path);
        return;
    }
    struct dirent **names;
    int k = scandir(path, &names, NULL, alphasort);
    if (k < 0) FATAL("%s: cannot list", path);
    for (int i = 0; i < k; i++) {
        if (names[i]->d_name[0] != '.') {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", path, names[i]->d_name);
            replay(p);
        }
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) replay(argv[i]);
    printf("replayed %ld inputs\n", replayed);
    return 0;
}
