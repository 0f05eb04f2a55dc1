/* mem_limit: how much memory one rank may plan for ([run] max_memory), so
 * the trainer can compare what a config implies with it before allocating
 * anything. By default the smallest of the machine's available memory
 * (MemAvailable), the cgroup's limit (v2 memory.max, v1
 * memory.limit_in_bytes) and SLURM's (SLURM_MEM_PER_NODE, or
 * SLURM_MEM_PER_CPU x SLURM_CPUS_ON_NODE), divided by the ranks on the node. */
#ifndef SIAMESE_DIST_MEM_LIMIT_H
#define SIAMESE_DIST_MEM_LIMIT_H

#include <stddef.h>

/* Bytes a rank may use: max_memory_gb x 1e9 if > 0, else the default above
 * with local_ranks ranks on the node. why (n bytes) says where the figure
 * comes from, for messages ("[run] max_memory = 2", "MemAvailable 23.1 GB
 * / 2 ranks on the node"). 0 if nothing is known (no limit). */
double mem_limit_bytes(double max_memory_gb, int local_ranks, char *why, size_t n);

#endif
