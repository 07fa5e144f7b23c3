// AVX-512 GroupNorm and LayerNorm. Two passes for the statistics (mean, then squared deviations, as the
// reference does; one-pass sum/sum-of-squares loses digits when |mean| >> std) and one to normalise.
// A GroupNorm group of SD's UNet at 64x64 is 10 channels x 4096 = 160 KiB, so passes 2 and 3 read from L2:
// ~3 reads + 1 write of the tensor per call, memory/L2-bound (~40 MB for [2,320,64,64]).
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"
#include "kernels/cpu/vmath_avx512.h"
#include "kernels/norm.h"

namespace easel {
namespace {

// Partial sums are kept in float lanes for at most 1024 elements, then folded into double, so the rounding
// error does not grow with the run length (a group can hold 40960+ values).
constexpr size_t kFold = 1024;

// sum(x - center), or sum((x - center)^2) when Squares. Centring on a value near the mean keeps the float
// partial sums at the scale of the spread, not of the mean (data with |mean| >> std loses no digits).
template <bool Squares>
double run_sum(const float* x, size_t n, float center) {
    const __m512 c = _mm512_set1_ps(center);
    double total = 0.0;
    for (size_t base = 0; base < n; base += kFold) {
        const size_t len = std::min(kFold, n - base);
        const float* p = x + base;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
        auto term = [&](__m512 v) {
            const __m512 d = _mm512_sub_ps(v, c);
            if constexpr (Squares) return _mm512_mul_ps(d, d);
            else return d;
        };
        size_t i = 0;
        for (; i + 64 <= len; i += 64) {
            a0 = _mm512_add_ps(a0, term(_mm512_loadu_ps(p + i)));
            a1 = _mm512_add_ps(a1, term(_mm512_loadu_ps(p + i + 16)));
            a2 = _mm512_add_ps(a2, term(_mm512_loadu_ps(p + i + 32)));
            a3 = _mm512_add_ps(a3, term(_mm512_loadu_ps(p + i + 48)));
        }
        for (; i < len; i += 16) {
            const __mmask16 m = avx512::tail_mask(len - i);
            // Masked-off lanes must add 0, also for the squared form: zero the term, not the load.
            a0 = _mm512_add_ps(a0, _mm512_maskz_mov_ps(m, term(_mm512_maskz_loadu_ps(m, p + i))));
        }
        total += double(_mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3))));
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

// y = ((x - mean_hi) - mean_lo) * a + b over one channel, optionally followed by SiLU. Subtracting the mean
// before scaling matters: x * a + (b - mean * a) cancels badly when a = rstd is large (a near-constant group).
void normalize_channel(const float* x, float* y, size_t n, const RunStats& st, float a, float b, bool fuse_silu) {
    const __m512 mh = _mm512_set1_ps(st.mean_hi), ml = _mm512_set1_ps(st.mean_lo);
    const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = avx512::tail_mask(n - i);
        const __m512 d = _mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mh), ml);
        __m512 v = _mm512_fmadd_ps(d, va, vb);
        if (fuse_silu) v = avx512::silu(v);
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

}  // namespace

void group_norm_f32_avx512(const float* x, const float* gamma, const float* beta, float* y,
                           const GroupNormShape& s) {
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

void layer_norm_f32_avx512(const float* x, const float* gamma, const float* beta, float* y, size_t rows,
                           size_t dim, float eps) {
    const int64_t grain = std::max<int64_t>(1, 8192 / int64_t(dim));
    parallel_for(int64_t(rows), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
            const float* xr = x + size_t(r) * dim;
            float* yr = y + size_t(r) * dim;
            const RunStats st = run_stats(xr, dim, eps);
            const __m512 mh = _mm512_set1_ps(st.mean_hi), ml = _mm512_set1_ps(st.mean_lo);
            const __m512 vr = _mm512_set1_ps(st.rstd);
            for (size_t i = 0; i < dim; i += 16) {
                const __mmask16 m = avx512::tail_mask(dim - i);
                const __m512 d = _mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, xr + i), mh), ml);
                __m512 v = _mm512_mul_ps(d, vr);
                if (gamma) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, gamma + i));
                if (beta) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, beta + i));
                _mm512_mask_storeu_ps(yr + i, m, v);
            }
        }
    }, grain);
}

void rms_norm_f32_avx512(const float* x, const float* gamma, float* y, size_t rows, size_t dim, float eps) {
    const int64_t grain = std::max<int64_t>(1, 8192 / int64_t(dim));
    parallel_for(int64_t(rows), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
            const float* xr = x + size_t(r) * dim;
            float* yr = y + size_t(r) * dim;
            const double ms = run_sum<true>(xr, dim, 0.0f) / double(dim);
            const __m512 vr = _mm512_set1_ps(float(1.0 / std::sqrt(ms + double(eps))));
            for (size_t i = 0; i < dim; i += 16) {
                const __mmask16 m = avx512::tail_mask(dim - i);
                __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, xr + i), vr);
                if (gamma) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, gamma + i));
                _mm512_mask_storeu_ps(yr + i, m, v);
            }
        }
    }, grain);
}

}  // namespace easel
