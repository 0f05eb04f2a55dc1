/* mem_limit: see mem_limit.h. */
#include "mem_limit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first line of path as a whole number of bytes; 0 if absent or "max". */
static double file_bytes(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[64] = "";
    char *ok = fgets(line, sizeof line, f);
    fclose(f);
    char *end;
    double v = ok ? strtod(line, &end) : 0;
    return ok && end != line && v > 0 ? v : 0;
}

static double mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[128];
    double kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024;
}

/* The memory limit of this process's cgroup (v2 path from /proc/self/cgroup,
 * then v1); v1's "no limit" is a huge number, which min() ignores. */
static double cgroup_limit(void) {
    FILE *f = fopen("/proc/self/cgroup", "r");
    char line[512], path[600];
    double v = 0;
    if (f) {
        while (!v && fgets(line, sizeof line, f)) {
            if (strncmp(line, "0::", 3)) continue;
            line[strcspn(line, "\n")] = 0;
            snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", line + 3);
            v = file_bytes(path);
        }
        fclose(f);
    }
    if (!v) v = file_bytes("/sys/fs/cgroup/memory.max");
    if (!v) v = file_bytes("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    return v;
}

static double env_mb(const char *name) {
    const char *s = getenv(name);
    char *end;
    double v = s ? strtod(s, &end) : 0;
    return s && end != s && v > 0 ? v * 1048576.0 : 0;
}

double mem_limit_bytes(double max_memory_gb, int local_ranks, char *why, size_t n) {
    if (max_memory_gb > 0) {
        snprintf(why, n, "[run] max_memory = %g", max_memory_gb);
        return max_memory_gb * 1e9;
    }
    double best = 0;
    const char *src = "";
    double slurm = env_mb("SLURM_MEM_PER_NODE");
    const char *sname = "SLURM_MEM_PER_NODE";
    if (!slurm && env_mb("SLURM_MEM_PER_CPU") > 0 && getenv("SLURM_CPUS_ON_NODE")) {
        slurm = env_mb("SLURM_MEM_PER_CPU") * atof(getenv("SLURM_CPUS_ON_NODE"));
        sname = "SLURM_MEM_PER_CPU x SLURM_CPUS_ON_NODE";
    }
    struct {
        double v;
        const char *name;
    } c[3] = {
        {mem_available(), "MemAvailable"}, {cgroup_limit(), "the cgroup's memory limit"}, {slurm, sname}};
    for (int i = 0; i < 3; i++)
        if (c[i].v > 0 && (!best || c[i].v < best)) best = c[i].v, src = c[i].name;
    if (!best) {
        snprintf(why, n, "no memory figure found");
        return 0;
    }
    if (local_ranks < 1) local_ranks = 1;
    snprintf(why, n, "[run] max_memory = 0: %s %.2f GB / %d rank%s on the node", src, best / 1e9, local_ranks,
             local_ranks > 1 ? "s" : "");
    return best / local_ranks;
}
