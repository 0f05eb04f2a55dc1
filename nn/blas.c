/* blas: see blas.h. */
#include "blas.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define REEXEC_GUARD "SIAMESE_BLAS_REEXEC"

/* Cores OpenBLAS falls back to when it does not know the CPU. */
static int is_fallback(const char *core) {
    static const char *const weak[] = {"prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "katmai"};
    for (size_t i = 0; i < sizeof weak / sizeof weak[0]; i++)
        if (!strcasecmp(core, weak[i])) return 1;
    return 0;
}

void blas_select_core(char **argv) {
    if (getenv("OPENBLAS_CORETYPE") || getenv(REEXEC_GUARD)) return;
    const char *core = openblas_get_corename();
    if (!core || !is_fallback(core)) return;
    const char *want = NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        want = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        want = "Haswell";
    if (!want) return;
    setenv("OPENBLAS_CORETYPE", want, 1);
    setenv(REEXEC_GUARD, "1", 1);
    /* The resolved path, not /proc/self/exe: the process keeps its name
     * ("siamese") for ps, pgrep and schedulers. */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        execv(self, argv);
    }
    /* exec failed: carry on with the slow kernels. */
    unsetenv("OPENBLAS_CORETYPE");
}

const char *blas_describe(void) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s, core %s%s", openblas_get_config(), openblas_get_corename(),
             getenv(REEXEC_GUARD) ? " (chosen by siamese: OpenBLAS does not know this CPU)" : "");
    return buf;
}
