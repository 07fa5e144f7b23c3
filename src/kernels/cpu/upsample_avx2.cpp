// AVX2 nearest 2x upsample: unpack + lane permute doubles 8 floats into 16, stored to both output rows.
#include <immintrin.h>

#include <algorithm>

#include "core/thread_pool.h"
#include "kernels/upsample.h"

namespace easel {

void upsample_nearest2x_f32_avx2(const float* x, float* y, size_t planes, size_t height, size_t width) {
    const size_t ow = 2 * width;
    const int64_t grain = std::max<int64_t>(1, 16384 / int64_t(width ? width : 1));
    parallel_for(int64_t(planes * height), [&](int64_t begin, int64_t end) {
        for (int64_t row = begin; row < end; ++row) {
            const float* xr = x + size_t(row) * width;
            float* y0 = y + size_t(row) * 2 * ow;
            float* y1 = y0 + ow;
            size_t w = 0;
            for (; w + 8 <= width; w += 8) {
                const __m256 v = _mm256_loadu_ps(xr + w);
                const __m256 lo = _mm256_unpacklo_ps(v, v);  // x0 x0 x1 x1 | x4 x4 x5 x5
                const __m256 hi = _mm256_unpackhi_ps(v, v);  // x2 x2 x3 x3 | x6 x6 x7 x7
                const __m256 first = _mm256_permute2f128_ps(lo, hi, 0x20);
                const __m256 second = _mm256_permute2f128_ps(lo, hi, 0x31);
                _mm256_storeu_ps(y0 + 2 * w, first);
                _mm256_storeu_ps(y0 + 2 * w + 8, second);
                _mm256_storeu_ps(y1 + 2 * w, first);
                _mm256_storeu_ps(y1 + 2 * w + 8, second);
            }
            for (; w < width; ++w) y0[2 * w] = y0[2 * w + 1] = y1[2 * w] = y1[2 * w + 1] = xr[w];
        }
    }, grain);
}

}  // namespace easel
