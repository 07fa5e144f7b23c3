// AVX2 GroupNorm and LayerNorm: the algorithm of norm_avx512.cpp with 8 lanes.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"
#include "kernels/cpu/vmath_avx2.h"
#include "kernels/norm.h"

namespace easel {
namespace {

constexpr size_t kFold = 1024;  // float partial sums folded into double every kFold elements

// sum(x - center), or sum((x - center)^2) when Squares. Centring on a value near the mean keeps the float
// partial sums at the scale of the spread, not of the mean (data with |mean| >> std loses no digits).
template <bool Squares>
double run_sum(const float* x, size_t n, float center) {
    const __m256 c = _mm256_set1_ps(center);
    double total = 0.0;
    for (size_t base = 0; base < n; base += kFold) {
        const size_t len = std::min(kFold, n - base);
        const float* p = x + base;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        auto term = [&](__m256 v) {
            const __m256 d = _mm256_sub_ps(v, c);
            if constexpr (Squares) return _mm256_mul_ps(d, d);
            else return d;
        };
        size_t i = 0;
        for (; i + 32 <= len; i += 32) {
            a0 = _mm256_add_ps(a0, term(_mm256_loadu_ps(p + i)));
            a1 = _mm256_add_ps(a1, term(_mm256_loadu_ps(p + i + 8)));
            a2 = _mm256_add_ps(a2, term(_mm256_loadu_ps(p + i + 16)));
            a3 = _mm256_add_ps(a3, term(_mm256_loadu_ps(p + i + 24)));
        }
        for (; i < len; i += 8) {
            const __m256i m = avx2::tail_mask(len - i);
            // Zero the masked-off lanes of the term (the squared form of a zero load is center^2, not 0).
            a0 = _mm256_add_ps(a0, _mm256_and_ps(_mm256_castsi256_ps(m), term(_mm256_maskload_ps(p + i, m))));
        }
        total += double(avx2::hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3))));
    }
    return total;
}

// Mean (as float hi + lo, so that x - mean loses nothing for data far from 0) and 1/sqrt(var + eps), variance
// biased as torch's. First pass centred on x[0], second on the float mean.
struct RunStats {
    float mean_hi, mean_lo, rstd;
};

RunStats run_stats(const float* x, size_t n, float eps) {
    const double mean = double(x[0]) + run_sum<false>(x, n, x[0]) / double(n);
    RunStats r;
    r.mean_hi = float(mean);
    r.mean_lo = float(mean - double(r.mean_hi));
    const double off = double(r.mean_lo);
    const double var = run_sum<true>(x, n, r.mean_hi) / double(n) - off * off;  // E[(x-c)^2] - (mean-c)^2
    r.rstd = float(1.0 / std::sqrt(std::max(var, 0.0) + double(eps)));
    return r;
}

// y = ((x - mean_hi) - mean_lo) * a + b over one channel, optionally followed by SiLU (see norm_avx512.cpp).
void normalize_channel(const float* x, float* y, size_t n, const RunStats& st, float a, float b, bool fuse_silu) {
    const __m256 mh = _mm256_set1_ps(st.mean_hi), ml = _mm256_set1_ps(st.mean_lo);
    const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mh), ml), va, vb);
        if (fuse_silu) v = avx2::silu(v);
        _mm256_storeu_ps(y + i, v);
    }
    if (i < n) {
        const __m256i m = avx2::tail_mask(n - i);
        __m256 v = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), mh), ml), va, vb);
        if (fuse_silu) v = avx2::silu(v);
        _mm256_maskstore_ps(y + i, m, v);
    }
}

}  // namespace

void group_norm_f32_avx2(const float* x, const float* gamma, const float* beta, float* y, const GroupNormShape& s) {
    const size_t cpg = size_t(s.channels / s.groups);
    const size_t hw = size_t(s.spatial);
    const size_t group_len = cpg * hw;
    parallel_for(s.batch * s.groups, [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) {
            const size_t g = size_t(task % s.groups);
            const float* xg = x + size_t(task) * group_len;
            float* yg = y + size_t(task) * group_len;
            const RunStats st = run_stats(xg, group_len, s.eps);
            for (size_t c = 0; c < cpg; ++c) {
                const size_t ch = g * cpg + c;
                normalize_channel(xg + c * hw, yg + c * hw, hw, st, st.rstd * (gamma ? gamma[ch] : 1.0f),
                                  beta ? beta[ch] : 0.0f, s.fuse_silu);
            }
        }
    });
}

void layer_norm_f32_avx2(const float* x, const float* gamma, const float* beta, float* y, size_t rows, size_t dim,
                         float eps) {
    const int64_t grain = std::max<int64_t>(1, 8192 / int64_t(dim));
    parallel_for(int64_t(rows), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
            const float* xr = x + size_t(r) * dim;
            float* yr = y + size_t(r) * dim;
            const RunStats st = run_stats(xr, dim, eps);
            const __m256 mh = _mm256_set1_ps(st.mean_hi), ml = _mm256_set1_ps(st.mean_lo);
            const __m256 vr = _mm256_set1_ps(st.rstd);
            for (size_t i = 0; i < dim; i += 8) {
                const __m256i m = avx2::tail_mask(dim - i);
                const __m256 d = _mm256_sub_ps(_mm256_sub_ps(_mm256_maskload_ps(xr + i, m), mh), ml);
                __m256 v = _mm256_mul_ps(d, vr);
                if (gamma) v = _mm256_mul_ps(v, _mm256_maskload_ps(gamma + i, m));
                if (beta) v = _mm256_add_ps(v, _mm256_maskload_ps(beta + i, m));
                _mm256_maskstore_ps(yr + i, m, v);
            }
        }
    }, grain);
}

void rms_norm_f32_avx2(const float* x, const float* gamma, float* y, size_t rows, size_t dim, float eps) {
    const int64_t grain = std::max<int64_t>(1, 8192 / int64_t(dim));
    parallel_for(int64_t(rows), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
            const float* xr = x + size_t(r) * dim;
            float* yr = y + size_t(r) * dim;
            const double ms = run_sum<true>(xr, dim, 0.0f) / double(dim);
            const __m256 vr = _mm256_set1_ps(float(1.0 / std::sqrt(ms + double(eps))));
            for (size_t i = 0; i < dim; i += 8) {
                const __m256i m = avx2::tail_mask(dim - i);
                __m256 v = _mm256_mul_ps(_mm256_maskload_ps(xr + i, m), vr);
                if (gamma) v = _mm256_mul_ps(v, _mm256_maskload_ps(gamma + i, m));
                _mm256_maskstore_ps(yr + i, m, v);
            }
        }
    }, grain);
}

}  // namespace easel
