/* test_mem_limit: the memory a rank may plan for (dist/mem_limit.c):
 * [run] max_memory taken as it is; by default the smallest of MemAvailable
 * (read here from /proc/meminfo), the cgroup limit and SLURM's figures
 * (set here through the environment), divided by the ranks on the node. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../dist/mem_limit.h"
#include "test.h"

static double meminfo_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[128];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb * 1024;
}

int main(void) {
    char why[160];
    unsetenv("SLURM_MEM_PER_NODE");
    unsetenv("SLURM_MEM_PER_CPU");
    unsetenv("SLURM_CPUS_ON_NODE");
    CHECK(mem_limit_bytes(2.5, 4, why, sizeof why) == 2.5e9 && !strcmp(why, "[run] max_memory = 2.5"),
          "max_memory 2.5 GB, whatever the ranks: %s", why);
    double avail = meminfo_available(), one = mem_limit_bytes(0, 1, why, sizeof why);
    /* MemAvailable moves while others run: within 10 %, and never above it by more. */
    CHECK(avail > 0 && one > 0 && one <= avail * 1.1, "default <= MemAvailable: %.0f vs %.0f (%s)", one,
          avail, why);
    double two = mem_limit_bytes(0, 2, why, sizeof why);
    CHECK(two > 0 && two <= one * 0.55 && strstr(why, "/ 2 ranks on the node"),
          "2 ranks: half: %.0f vs %.0f (%s)", two, one, why);
    setenv("SLURM_MEM_PER_NODE", "100", 1); /* MB, as SLURM gives it */
    double s = mem_limit_bytes(0, 4, why, sizeof why);
    CHECK(s == 100 * 1048576.0 / 4 &&
              !strcmp(why, "[run] max_memory = 0: SLURM_MEM_PER_NODE 0.10 GB / 4 ranks on the node"),
          "SLURM_MEM_PER_NODE=100, 4 ranks: %.0f (%s)", s, why);
    unsetenv("SLURM_MEM_PER_NODE");
    setenv("SLURM_MEM_PER_CPU", "10", 1);
    setenv("SLURM_CPUS_ON_NODE", "3", 1);
    s = mem_limit_bytes(0, 1, why, sizeof why);
    CHECK(s == 30 * 1048576.0 && strstr(why, "SLURM_MEM_PER_CPU x SLURM_CPUS_ON_NODE"),
          "10 MB x 3 CPUs: %.0f (%s)", s, why);
    setenv("SLURM_MEM_PER_CPU", "x", 1);
    s = mem_limit_bytes(0, 1, why, sizeof why);
    CHECK(s > 30 * 1048576.0 && !strstr(why, "SLURM"), "a malformed SLURM figure is ignored: %.0f (%s)", s,
          why);
    return test_finish();
}
