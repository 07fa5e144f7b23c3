// Vector maths for the *_avx512.cpp kernels only (they are compiled with the AVX-512 flags; nothing else may
// include this). Everything has internal linkage, so no AVX-512 code can be merged into another ISA's file.
//
//   __m512 e = avx512::exp(x);            // ~1 ulp on [-87, 88]; 0 below -104, +inf above 88.73
//   __m512 y = avx512::silu(x);
//   __mmask16 m = avx512::tail_mask(n - i);
#pragma once

#include <immintrin.h>

#include <cstddef>

namespace easel::avx512 {
namespace {

inline __mmask16 tail_mask(size_t n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1u); }

// exp(x): n = round(x / ln2), r = x - n ln2 (ln2 split in two so n * hi is exact), exp(r) by the Cephes expf
// minimax polynomial on |r| <= ln2/2, then scalef multiplies by 2^n, which also gives correct overflow to inf
// and gradual underflow to 0. Clamping first keeps r small (and n exact) for any input; NaN propagates.
inline __m512 exp(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), _mm512_min_ps(_mm512_set1_ps(89.0f), x));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

// x * sigmoid(z) = x / (1 + exp(-z)), written with e = exp(-|z|) <= 1 so nothing overflows: for z < 0 it is
// x e / (1 + e), which keeps full relative precision far into the negative tail (down to the subnormals).
inline __m512 x_sigmoid_of(__m512 x, __m512 z) {
    const __m512 e = exp(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(z)));
    const __mmask16 neg = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 num = _mm512_mask_mul_ps(x, neg, x, e);
    return _mm512_div_ps(num, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

// x * sigmoid(k x); k x is rounded to float first, as torch computes it.
inline __m512 x_sigmoid(__m512 x, float k) { return x_sigmoid_of(x, _mm512_mul_ps(x, _mm512_set1_ps(k))); }

inline __m512 silu(__m512 x) { return x_sigmoid_of(x, x); }

// erfc(|x| / sqrt2) by the Chebyshev fit of Numerical Recipes (erfcc): t = 1 / (1 + z/2),
// erfc(z) = t exp(-z^2 + P(t)), fractional error below 1.2e-7 for every z >= 0. The exp argument is large
// (z^2 up to ~100 before erfc underflows) and its rounding would cost |arg| * 6e-8 relative, so z^2 is split
// exactly (fma) and the rounding of P - z^2 recovered (Fast2Sum); exp(s + c) ~ exp(s) (1 + c) for tiny c.
inline __m512 erfc_abs_over_sqrt2(__m512 ax) {
    // Past |x| = 14.5 the result underflows to 0 anyway; the clamp keeps x^2 (and its split) finite for inf.
    ax = _mm512_min_ps(_mm512_set1_ps(20.0f), ax);
    const __m512 z = _mm512_mul_ps(ax, _mm512_set1_ps(0.70710678118654752f));
    const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(z, _mm512_set1_ps(0.5f), _mm512_set1_ps(1.0f)));
    __m512 p = _mm512_set1_ps(0.17087277f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.82215223f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.48851587f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.13520398f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.27886807f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.18628806f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.09678418f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.37409196f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.00002368f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.26551223f));
    // z^2 = x^2 / 2 = hi + lo exactly (from x, not from the rounded z, whose error would be doubled)
    const __m512 x2 = _mm512_mul_ps(ax, ax);
    const __m512 hi = _mm512_mul_ps(x2, _mm512_set1_ps(0.5f));
    const __m512 lo = _mm512_mul_ps(_mm512_fmsub_ps(ax, ax, x2), _mm512_set1_ps(0.5f));
    const __m512 s = _mm512_sub_ps(p, hi);
    const __m512 err = _mm512_sub_ps(p, _mm512_add_ps(s, hi));    // (P - hi) - s
    const __m512 e = exp(s);
    return _mm512_mul_ps(t, _mm512_fmadd_ps(e, _mm512_sub_ps(err, lo), e));
}

// 0.5 x (1 + erf(x / sqrt2)) = 0.5 x erfc(-x / sqrt2). For x < 0 that erfc is evaluated directly (full
// relative precision in the tail); for x >= 0 as 2 - erfc(x / sqrt2).
inline __m512 gelu_erf(__m512 x) {
    const __m512 e = erfc_abs_over_sqrt2(_mm512_abs_ps(x));
    const __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ);
    const __m512 c = _mm512_mask_sub_ps(e, pos, _mm512_set1_ps(2.0f), e);
    return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), c);
}

// 0.5 x (1 + tanh(u)) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3): no cancellation for x << 0.
inline __m512 gelu_tanh(__m512 x) {
    const __m512 x2 = _mm512_mul_ps(x, x);
    const __m512 inner = _mm512_fmadd_ps(_mm512_mul_ps(x2, x), _mm512_set1_ps(0.044715f), x);
    return x_sigmoid_of(x, _mm512_mul_ps(inner, _mm512_set1_ps(2.0f * 0.79788456080286536f)));
}

}  // namespace
}  // namespace easel::avx512
