// AVX-512 activations. Each is a few dozen vector ops per 16 elements (exp ~ 12, erfc ~ 25 with a divide):
// compute-bound at these sizes, so the arrays are split across the thread pool.
#include <algorithm>

#include "core/thread_pool.h"
#include "kernels/activation.h"
#include "kernels/cpu/vmath_avx512.h"

namespace easel {
namespace {

constexpr int64_t kGrain = 16384;  // elements per task: ~10 us of work, far above the claim overhead

// y[i] = f(x[i]) over [0, n), masked tail; parallel over contiguous chunks.
template <class F>
void map(const float* x, float* y, size_t n, F f) {
    parallel_for(int64_t(n), [&](int64_t begin, int64_t end) {
        size_t i = size_t(begin);
        for (; i + 16 <= size_t(end); i += 16) _mm512_storeu_ps(y + i, f(_mm512_loadu_ps(x + i)));
        if (i < size_t(end)) {
            const __mmask16 m = avx512::tail_mask(size_t(end) - i);
            _mm512_mask_storeu_ps(y + i, m, f(_mm512_maskz_loadu_ps(m, x + i)));
        }
    }, kGrain);
}

}  // namespace

void exp_f32_avx512(const float* x, float* y, size_t n) {
    map(x, y, n, [](__m512 v) { return avx512::exp(v); });
}

void silu_f32_avx512(const float* x, float* y, size_t n) {
    map(x, y, n, [](__m512 v) { return avx512::silu(v); });
}

void quick_gelu_f32_avx512(const float* x, float* y, size_t n) {
    map(x, y, n, [](__m512 v) { return avx512::x_sigmoid(v, 1.702f); });
}

void gelu_f32_avx512(const float* x, float* y, size_t n, GeluApprox approx) {
    if (approx == GeluApprox::Tanh)
        map(x, y, n, [](__m512 v) { return avx512::gelu_tanh(v); });
    else
        map(x, y, n, [](__m512 v) { return avx512::gelu_erf(v); });
}

void geglu_f32_avx512(const float* x, float* y, size_t rows, size_t half, GeluApprox approx) {
    const bool tanh_form = approx == GeluApprox::Tanh;
    const int64_t grain = std::max<int64_t>(1, kGrain / int64_t(half ? half : 1));
    parallel_for(int64_t(rows), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
            const float* a = x + size_t(r) * 2 * half;
            const float* g = a + half;
            float* yr = y + size_t(r) * half;
            for (size_t j = 0; j < half; j += 16) {
                const __mmask16 m = avx512::tail_mask(half - j);
                const __m512 gv = _mm512_maskz_loadu_ps(m, g + j);
                const __m512 act = tanh_form ? avx512::gelu_tanh(gv) : avx512::gelu_erf(gv);
                _mm512_mask_storeu_ps(yr + j, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, a + j), act));
            }
        }
    }, grain);
}

}  // namespace easel
