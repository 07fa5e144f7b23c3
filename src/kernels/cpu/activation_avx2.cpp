// AVX2 activations: as activation_avx512.cpp with 8 lanes; tails use maskload/maskstore.
#include <algorithm>

#include "core/thread_pool.h"
#include "kernels/activation.h"
#include "kernels/cpu/vmath_avx2.h"

namespace easel {
namespace {

constexpr int64_t kGrain = 16384;

template <class F>
void map(const float* x, float* y, size_t n, F f) {
    parallel_for(int64_t(n), [&](int64_t begin, int64_t end) {
        size_t i = size_t(begin);
        for (; i + 8 <= size_t(end); i += 8) _mm256_storeu_ps(y + i, f(_mm256_loadu_ps(x + i)));
        if (i < size_t(end)) {
            const __m256i m = avx2::tail_mask(size_t(end) - i);
            _mm256_maskstore_ps(y + i, m, f(_mm256_maskload_ps(x + i, m)));
        }
    }, kGrain);
}

}  // namespace

void exp_f32_avx2(const float* x, float* y, size_t n) {
    map(x, y, n, [](__m256 v) { return avx2::exp(v); });
}

void silu_f32_avx2(const float* x, float* y, size_t n) {
    map(x, y, n, [](__m256 v) { return avx2::silu(v); });
}

void quick_gelu_f32_avx2(const float* x, float* y, size_t n) {
    map(x, y, n, [](__m256 v) { return avx2::x_sigmoid(v, 1.702f); });
}

void gelu_f32_avx2(const float* x, float* y, size_t n, GeluApprox approx) {
    if (approx == GeluApprox::Tanh)
        map(x, y, n, [](__m256 v) { return avx2::gelu_tanh(v); });
    else
        map(x, y, n, [](__m256 v) { return avx2::gelu_erf(v); });
}

void geglu_f32_avx2(const float* x, float* y, size_t rows, size_t half, GeluApprox approx) {
    const bool tanh_form = approx == GeluApprox::Tanh;
    const int64_t grain = std::max<int64_t>(1, kGrain / int64_t(half ? half : 1));
    parallel_for(int64_t(rows), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
            const float* a = x + size_t(r) * 2 * half;
            const float* g = a + half;
            float* yr = y + size_t(r) * half;
            for (size_t j = 0; j < half; j += 8) {
                const __m256i m = avx2::tail_mask(half - j);
                const __m256 gv = _mm256_maskload_ps(g + j, m);
                const __m256 act = tanh_form ? avx2::gelu_tanh(gv) : avx2::gelu_erf(gv);
                _mm256_maskstore_ps(yr + j, m, _mm256_mul_ps(_mm256_maskload_ps(a + j, m), act));
            }
        }
    }, grain);
}

}  // namespace easel
