// Vector maths for the *_avx2.cpp kernels only (compiled with -mavx2 -mfma; nothing else may include this).
// Internal linkage throughout, so no AVX2 code can be merged into another ISA's file.
//
//   __m256 e = avx2::exp(x);              // ~1 ulp on [-87, 88]; 0 below -104, +inf above 88.73
//   avx2::exp_nonpositive(xs);            // __m256 xs[N], each x <= 0, in place (softmax), interleaved
//   __m256i m = avx2::tail_mask(n - i);   // for _mm256_maskload_ps / _mm256_maskstore_ps
#pragma once

#include <immintrin.h>

#include <cstddef>

namespace easel::avx2 {
namespace {

inline __m256i tail_mask(size_t n) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n > 8 ? 8 : n)), lanes);
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline float hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// exp(x) as in vmath_avx512.h (Cephes expf polynomial after n = round(x / ln2)). Without scalef, 2^n is
// built from two exponent-field halves, so n down to -150 underflows gradually and n = 128 can still
// overflow to inf exactly where exp does.
inline __m256 exp(__m256 x) {
    x = _mm256_max_ps(_mm256_set1_ps(-104.0f), _mm256_min_ps(_mm256_set1_ps(89.0f), x));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i n1 = _mm256_srai_epi32(ni, 1);
    const __m256i n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

// exp(x) for x <= 0 (a softmax's score minus its maximum), N vectors at a time: exp()'s polynomial with one
// exponent scale (2^n is a normal float for n >= -126). x below ln(2^-126) = -87.34 is clamped there, so
// exp(x) < FLT_MIN comes out as about 1.2e-38 instead of a denormal or 0 (invisible beside a softmax's largest
// weight, 1). NaN stays NaN. 16 vector operations per vector against exp()'s 24, and the N vectors' operations
// interleaved: one vector's operations form a chain of about 40 cycles of latency, and the out-of-order window
// holds about two such chains, so one vector at a time ran at about 20 cycles a vector on Zen 3.
template <int N>
inline void exp_nonpositive(__m256 (&x)[N]) {
    const __m256 magic = _mm256_set1_ps(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
    __m256 t[N], r[N], p[N];
#pragma GCC unroll 8
    for (int i = 0; i < N; ++i) {
        x[i] = _mm256_max_ps(_mm256_set1_ps(-87.33654f), x[i]);  // NaN: the second operand, x
        t[i] = _mm256_fmadd_ps(x[i], _mm256_set1_ps(1.44269504088896341f), magic);  // low bits: n = round(x / ln2)
    }
#pragma GCC unroll 8
    for (int i = 0; i < N; ++i) {
        const __m256 n = _mm256_sub_ps(t[i], magic);
        r[i] = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x[i]);
        r[i] = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r[i]);
    }
#pragma GCC unroll 8
    for (int i = 0; i < N; ++i) p[i] = _mm256_fmadd_ps(_mm256_set1_ps(1.9875691500e-4f), r[i], _mm256_set1_ps(1.3981999507e-3f));
#pragma GCC unroll 8
    for (int i = 0; i < N; ++i) p[i] = _mm256_fmadd_ps(p[i], r[i], _mm256_set1_ps(8.3334519073e-3f));
#pragma GCC unroll 8
    for (int i = 0; i < N; ++i) p[i] = _mm256_fmadd_ps(p[i], r[i], _mm256_set1_ps(4.1665795894e-2f));
#pragma GCC unroll 8
    for (int i = 0; i < N; ++i) p[i] = _mm256_fmadd_ps(p[i], r[i], _mm256_set1_ps(1.6666665459e-1f));
#pragma GCC unroll 8
    for (int i = 0; i < N; ++i) p[i] = _mm256_fmadd_ps(p[i], r[i], _mm256_set1_ps(5.0000001201e-1f));
#pragma GCC unroll 8
    for (int i = 0; i < N; ++i) p[i] = _mm256_fmadd_ps(p[i], _mm256_mul_ps(r[i], r[i]), _mm256_add_ps(r[i], _mm256_set1_ps(1.0f)));
#pragma GCC unroll 8
    for (int i = 0; i < N; ++i) {
        // t's low mantissa bits hold n (two's complement); shifted into the exponent field with the bias, the
        // magic number's own bits fall off the top.
        const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_castps_si256(t[i]), _mm256_set1_epi32(127)), 23);
        x[i] = _mm256_mul_ps(p[i], _mm256_castsi256_ps(e));
    }
}

// x * sigmoid(z) with e = exp(-|z|): no overflow, full relative precision in the tail (see vmath_avx512.h).
inline __m256 x_sigmoid_of(__m256 x, __m256 z) {
    const __m256 e = exp(_mm256_or_ps(z, _mm256_set1_ps(-0.0f)));  // exp(-|z|)
    const __m256 neg = _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_LT_OQ);
    const __m256 num = _mm256_blendv_ps(x, _mm256_mul_ps(x, e), neg);
    return _mm256_div_ps(num, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

inline __m256 x_sigmoid(__m256 x, float k) { return x_sigmoid_of(x, _mm256_mul_ps(x, _mm256_set1_ps(k))); }

inline __m256 silu(__m256 x) { return x_sigmoid_of(x, x); }

// erfc(|x| / sqrt2): Numerical Recipes' erfcc Chebyshev fit, fractional error below 1.2e-7, with the exp
// argument -z^2 + P(t) carried with its rounding error (see vmath_avx512.h).
inline __m256 erfc_abs_over_sqrt2(__m256 ax) {
    // Past |x| = 14.5 the result underflows to 0 anyway; the clamp keeps x^2 (and its split) finite for inf.
    ax = _mm256_min_ps(_mm256_set1_ps(20.0f), ax);
    const __m256 z = _mm256_mul_ps(ax, _mm256_set1_ps(0.70710678118654752f));
    const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(z, _mm256_set1_ps(0.5f), _mm256_set1_ps(1.0f)));
    __m256 p = _mm256_set1_ps(0.17087277f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.82215223f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.48851587f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.13520398f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.27886807f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.18628806f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.09678418f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.37409196f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.00002368f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.26551223f));
    // z^2 = x^2 / 2 = hi + lo exactly (from x, not from the rounded z, whose error would be doubled)
    const __m256 x2 = _mm256_mul_ps(ax, ax);
    const __m256 hi = _mm256_mul_ps(x2, _mm256_set1_ps(0.5f));
    const __m256 lo = _mm256_mul_ps(_mm256_fmsub_ps(ax, ax, x2), _mm256_set1_ps(0.5f));
    const __m256 s = _mm256_sub_ps(p, hi);
    const __m256 err = _mm256_sub_ps(p, _mm256_add_ps(s, hi));
    const __m256 e = exp(s);
    return _mm256_mul_ps(t, _mm256_fmadd_ps(e, _mm256_sub_ps(err, lo), e));
}

inline __m256 gelu_erf(__m256 x) {
    const __m256 e = erfc_abs_over_sqrt2(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), x));
    const __m256 pos = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ);
    const __m256 c = _mm256_blendv_ps(e, _mm256_sub_ps(_mm256_set1_ps(2.0f), e), pos);
    return _mm256_mul_ps(_mm256_mul_ps(x, _mm256_set1_ps(0.5f)), c);
}

inline __m256 gelu_tanh(__m256 x) {
    const __m256 x2 = _mm256_mul_ps(x, x);
    const __m256 inner = _mm256_fmadd_ps(_mm256_mul_ps(x2, x), _mm256_set1_ps(0.044715f), x);
    return x_sigmoid_of(x, _mm256_mul_ps(inner, _mm256_set1_ps(2.0f * 0.79788456080286536f)));
}

}  // namespace
}  // namespace easel::avx2
