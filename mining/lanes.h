/* lanes: sixteen float / int32 lanes as GCC / Clang vector types, for the
 * miners' arg-min / arg-max scans. Written as plain C arrays of lanes, GCC
 * unrolls such scans into sixteen scalar chains; as vector types they stay
 * in vector registers (AVX-512, or two / four narrower registers elsewhere).
 * Comparisons give LaneI masks of -1 / 0; lane_select picks by mask. */
#ifndef SIAMESE_MINING_LANES_H
#define SIAMESE_MINING_LANES_H

#include <stdint.h>

typedef float LaneF __attribute__((vector_size(64)));
typedef int32_t LaneI __attribute__((vector_size(64)));

/* mask ? a : b, lane by lane (mask lanes are -1 or 0). */
static inline LaneF lane_select_f(LaneI mask, LaneF a, LaneF b) {
    return (LaneF)(((LaneI)a & mask) | ((LaneI)b & ~mask));
}

static inline LaneI lane_select_i(LaneI mask, LaneI a, LaneI b) { return (a & mask) | (b & ~mask); }

#endif
