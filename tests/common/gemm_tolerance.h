// The tolerance of a fast GEMM path (linear, conv2d as a GEMM) against its double-accumulating scalar reference
// on the same operand values. The fast path sums K products in f32, in blocks, in another order; for terms of
// random sign the accumulated rounding grows like sqrt(K) * eps * (size of the partial sums), so both bounds are
// scaled by sqrt(K) * eps_f32 and atol by the rms of the reference output:
//     atol = 2 * sqrt(K) * eps * rms(ref),  rtol = 2 * sqrt(K) * eps.
// BF16 mode against the exact f32 reference adds the bf16 rounding of both operands (2^-9 relative each):
//     atol = rms(ref) / 64,  rtol = 1 / 64.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/compare.h"

namespace easel::testing {

constexpr double kEpsF32 = 1.1920928955078125e-07;

inline double rms(const std::vector<float>& v) {
    double s = 0;
    for (float x : v) s += double(x) * x;
    return v.empty() ? 0.0 : std::sqrt(s / double(v.size()));
}

inline Tolerance f32_accumulation_tolerance(int64_t k, const std::vector<float>& ref) {
    const double r = 2.0 * std::sqrt(double(std::max<int64_t>(k, 1))) * kEpsF32;
    return {r * rms(ref), r};
}

inline Tolerance bf16_vs_exact_tolerance(const std::vector<float>& ref) { return {rms(ref) / 64.0, 1.0 / 64.0}; }

}  // namespace easel::testing
