// fp32 FMA peak loop, AVX-512 (see peak.h). 16 independent chains x 16 lanes x 2 FLOP per trip (2 pipes x latency 4-5 needs >= 10).
#include <immintrin.h>

#include "peak.h"

namespace easel::bench {

double peak_loop_fp32_avx512(int64_t iters) {
    __m512 acc[16];
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(float(i) * 1e-3f);
    const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-4f);
    for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 16
        for (int i = 0; i < 16; ++i) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
    }
    __m512 s = acc[0];
    for (int i = 1; i < 16; ++i) s = _mm512_add_ps(s, acc[i]);
    // Stored, not _mm512_reduce_add_ps: g++ 12 flags its internal _mm256_undefined_pd as uninitialized.
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, s);
    volatile float sink = lanes[0] + lanes[15];
    (void)sink;
    return double(iters) * 16 * 16 * 2;
}

}  // namespace easel::bench
