// bf16 dot-product peak loop, AVX512-BF16 (see peak.h). 16 independent vdpbf16ps chains x 16 lanes x 4 FLOP (2 pipes x latency 6 needs >= 12).
#include <immintrin.h>

#include "peak.h"

namespace easel::bench {

double peak_loop_bf16_avx512bf16(int64_t iters) {
    __m512 acc[16];
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(float(i) * 1e-3f);
    const __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(2e-3f));
    const __m512bh y = _mm512_cvtne2ps_pbh(_mm512_set1_ps(3e-3f), _mm512_set1_ps(1e-3f));
    for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 16
        for (int i = 0; i < 16; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
    }
    __m512 s = acc[0];
    for (int i = 1; i < 16; ++i) s = _mm512_add_ps(s, acc[i]);
    // Stored, not _mm512_reduce_add_ps: g++ 12 flags its internal _mm256_undefined_pd as uninitialized.
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, s);
    volatile float sink = lanes[0] + lanes[15];
    (void)sink;
    return double(iters) * 16 * 16 * 4;
}

}  // namespace easel::bench
