/* lanes: sixteen float / int32 lanes as GCC / Clang vector types, for the
 * miners' arg-min / arg-max scans. Written as plain C arrays of lanes, GCC
 * unrolls such scans into sixteen scalar chains; as vector types they stay
 * in vector registers (AVX-512, or two / four narrower registers elsewhere).
 * Comparisons give LaneI masks of -1 / 0; LANE_SELECT_* pick by mask. They
 * are macros, not functions: a function taking or returning a 64-byte vector
 * has a different ABI with and without AVX-512 (GCC warns, -Werror fails). */
#ifndef SIAMESE_MINING_LANES_H
#define SIAMESE_MINING_LANES_H

#include <stdint.h>

typedef float LaneF __attribute__((vector_size(64)));
typedef int32_t LaneI __attribute__((vector_size(64)));

/* mask ? a : b, lane by lane (mask lanes are -1 or 0). */
#define LANE_SELECT_F(mask, a, b) ((LaneF)(((LaneI)(a) & (mask)) | ((LaneI)(b) & ~(mask))))
#define LANE_SELECT_I(mask, a, b) (((a) & (mask)) | ((b) & ~(mask)))

#endif
