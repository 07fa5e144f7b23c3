// AVX-512 rotary embedding: 8 pairs per vector; cos/sin duplicated to both lanes of a pair, the pair swapped
// within the vector, and fmaddsub gives c a - s b on even lanes and c b + s a on odd ones.
#include <immintrin.h>

#include <algorithm>

#include "core/thread_pool.h"
#include "kernels/rope.h"

namespace easel {

void rope_f32_avx512(float* x, const float* cos, const float* sin, size_t rows, size_t heads, size_t head_dim) {
    const size_t half = head_dim / 2;
    const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    parallel_for(int64_t(rows), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
            const float* cr = cos + size_t(r) * half;
            const float* sr = sin + size_t(r) * half;
            for (size_t h = 0; h < heads; ++h) {
                float* p = x + (size_t(r) * heads + h) * head_dim;
                size_t i = 0;
                for (; i + 8 <= half; i += 8) {
                    const __m512 c = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_loadu_ps(cr + i)));
                    const __m512 s = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_loadu_ps(sr + i)));
                    const __m512 v = _mm512_loadu_ps(p + 2 * i);
                    const __m512 swapped = _mm512_permute_ps(v, 0xB1);  // (b, a) in each pair
                    // even lanes: c a - s b; odd lanes: c b + s a
                    _mm512_storeu_ps(p + 2 * i, _mm512_fmaddsub_ps(v, c, _mm512_mul_ps(swapped, s)));
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
