// AVX2 softmax: softmax_avx512.cpp with 8 lanes.
#include <immintrin.h>

#include <algorithm>
#include <limits>

#include "core/thread_pool.h"
#include "kernels/cpu/vmath_avx2.h"
#include "kernels/softmax.h"

namespace easel {

void softmax_f32_avx2(const float* x, float* y, size_t rows, size_t dim) {
    if (dim == 0) return;
    const int64_t grain = std::max<int64_t>(1, 8192 / int64_t(dim));
    const float neg_inf = -std::numeric_limits<float>::infinity();
    parallel_for(int64_t(rows), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
            const float* xr = x + size_t(r) * dim;
            float* yr = y + size_t(r) * dim;
            __m256 vmax = _mm256_set1_ps(neg_inf);
            for (size_t i = 0; i < dim; i += 8) {
                const __m256i m = avx2::tail_mask(dim - i);
                // Masked-off lanes read as -inf so they never win the max.
                const __m256 v = _mm256_blendv_ps(_mm256_set1_ps(neg_inf), _mm256_maskload_ps(xr + i, m),
                                                  _mm256_castsi256_ps(m));
                vmax = _mm256_max_ps(vmax, v);
            }
            const __m256 mx = _mm256_set1_ps(avx2::hmax(vmax));
            __m256 vsum = _mm256_setzero_ps();
            for (size_t i = 0; i < dim; i += 8) {
                const __m256i m = avx2::tail_mask(dim - i);
                const __m256 e = avx2::exp(_mm256_sub_ps(_mm256_maskload_ps(xr + i, m), mx));
                vsum = _mm256_add_ps(vsum, _mm256_and_ps(_mm256_castsi256_ps(m), e));
                _mm256_maskstore_ps(yr + i, m, e);
            }
            const __m256 inv = _mm256_set1_ps(1.0f / avx2::hsum(vsum));
            for (size_t i = 0; i < dim; i += 8) {
                const __m256i m = avx2::tail_mask(dim - i);
                _mm256_maskstore_ps(yr + i, m, _mm256_mul_ps(_mm256_maskload_ps(yr + i, m), inv));
            }
        }
    }, grain);
}

}  // namespace easel
