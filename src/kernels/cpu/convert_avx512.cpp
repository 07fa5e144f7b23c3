// AVX-512 half-to-f32: vcvtph2ps on 16 at a time for f16, a widening shift for bf16; the tail in scalar.
#include <immintrin.h>

#include "core/half.h"
#include "kernels/convert.h"

namespace easel {

void f16_to_f32_n_avx512(const uint16_t* in, int64_t n, float* out) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + i))));
    for (; i < n; ++i) out[i] = f16_to_f32(in[i]);
}

void bf16_to_f32_n_avx512(const uint16_t* in, int64_t n, float* out) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + i)));
        _mm512_storeu_si512(out + i, _mm512_slli_epi32(w, 16));
    }
    for (; i < n; ++i) out[i] = bf16_to_f32(in[i]);
}

}  // namespace easel
