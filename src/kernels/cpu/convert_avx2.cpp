// AVX2 half-to-f32: F16C's vcvtph2ps for f16 (8 at a time), a widening shift for bf16; the tail in scalar.
#include <immintrin.h>

#include "core/half.h"
#include "kernels/convert.h"

namespace easel {

void f16_to_f32_n_avx2(const uint16_t* in, int64_t n, float* out) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i + 8));
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(a));
        _mm256_storeu_ps(out + i + 8, _mm256_cvtph_ps(b));
    }
    for (; i < n; ++i) out[i] = f16_to_f32(in[i]);
}

void bf16_to_f32_n_avx2(const uint16_t* in, int64_t n, float* out) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_slli_epi32(w, 16));
    }
    for (; i < n; ++i) out[i] = bf16_to_f32(in[i]);
}

}  // namespace easel
