// AVX-512 nearest 2x upsample: each 16-float input run becomes two 16-float runs with every value doubled
// (vpermps), stored to both output rows. Memory-bound: 4 bytes read, 16 written per input element.
#include <immintrin.h>

#include <algorithm>

#include "core/thread_pool.h"
#include "kernels/cpu/vmath_avx512.h"
#include "kernels/upsample.h"

namespace easel {

void upsample_nearest2x_f32_avx512(const float* x, float* y, size_t planes, size_t height, size_t width) {
    const size_t ow = 2 * width;
    const int64_t grain = std::max<int64_t>(1, 16384 / int64_t(width ? width : 1));
    parallel_for(int64_t(planes * height), [&](int64_t begin, int64_t end) {
        const __m512i lo_idx = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        const __m512i hi_idx = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
        for (int64_t row = begin; row < end; ++row) {
            // Input row `row` of the flattened [planes * height, width] maps to output rows 2*row, 2*row + 1.
            const float* xr = x + size_t(row) * width;
            float* y0 = y + size_t(row) * 2 * ow;
            float* y1 = y0 + ow;
            for (size_t w = 0; w < width; w += 16) {
                const size_t n = std::min<size_t>(16, width - w);
                const __m512 v = _mm512_maskz_loadu_ps(avx512::tail_mask(n), xr + w);
                const __m512 lo = _mm512_permutexvar_ps(lo_idx, v);
                const __m512 hi = _mm512_permutexvar_ps(hi_idx, v);
                const __mmask16 mlo = avx512::tail_mask(2 * n);
                const __mmask16 mhi = avx512::tail_mask(2 * n > 16 ? 2 * n - 16 : 0);
                _mm512_mask_storeu_ps(y0 + 2 * w, mlo, lo);
                _mm512_mask_storeu_ps(y1 + 2 * w, mlo, lo);
                _mm512_mask_storeu_ps(y0 + 2 * w + 16, mhi, hi);
                _mm512_mask_storeu_ps(y1 + 2 * w + 16, mhi, hi);
            }
        }
    }, grain);
}

}  // namespace easel
