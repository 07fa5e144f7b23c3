// fp32 FMA peak loop, AVX2 (see peak.h). 12 independent chains x 8 lanes x 2 FLOP per trip.
#include <immintrin.h>

#include "peak.h"

namespace easel::bench {

double peak_loop_fp32_avx2(int64_t iters) {
    __m256 acc[12];
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(float(i) * 1e-3f);
    const __m256 x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-4f);
    for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
    }
    __m256 s = acc[0];
    for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, s);
    volatile float sink = lanes[0] + lanes[7];
    (void)sink;
    return double(iters) * 12 * 8 * 2;
}

}  // namespace easel::bench
