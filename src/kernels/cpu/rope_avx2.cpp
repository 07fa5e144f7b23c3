// AVX2 rotary embedding: the AVX-512 algorithm (rope_avx512.cpp) with 4 pairs per vector.
#include <immintrin.h>

#include <algorithm>

#include "core/thread_pool.h"
#include "kernels/rope.h"

namespace easel {

void rope_f32_avx2(float* x, const float* cos, const float* sin, size_t rows, size_t heads, size_t head_dim) {
    const size_t half = head_dim / 2;
    const __m256i dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    parallel_for(int64_t(rows), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
            const float* cr = cos + size_t(r) * half;
            const float* sr = sin + size_t(r) * half;
            for (size_t h = 0; h < heads; ++h) {
                float* p = x + (size_t(r) * heads + h) * head_dim;
                size_t i = 0;
                for (; i + 4 <= half; i += 4) {
                    const __m256 c = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(cr + i)), dup);
                    const __m256 s = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(sr + i)), dup);
                    const __m256 v = _mm256_loadu_ps(p + 2 * i);
                    const __m256 swapped = _mm256_permute_ps(v, 0xB1);
                    _mm256_storeu_ps(p + 2 * i, _mm256_fmaddsub_ps(v, c, _mm256_mul_ps(swapped, s)));
                }
                for (; i < half; ++i) {
                    const float a = p[2 * i], b = p[2 * i + 1];
                    p[2 * i] = cr[i] * a - sr[i] * b;
                    p[2 * i + 1] = sr[i] * a + cr[i] * b;
                }
            }
        }
    }, std::max<int64_t>(1, 4096 / int64_t(heads * head_dim + 1)));
}

}  // namespace easel
