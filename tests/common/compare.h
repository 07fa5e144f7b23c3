// Whole-tensor comparison with a stated tolerance (STYLE.md section 6).
//
//   CompareReport r = compare(got, expect, {.atol = 1e-6, .rtol = 1e-5});
//   EXPECT_TRUE(r.passed()) << r.summary();
//   // max_abs=2.1e-07 at [1,40,7]  max_rel=3.0e-06  nmse=4e-14  used 26%  (atol=1e-06 rtol=1e-05, n=4928)
//
// An element passes if |got - ref| <= atol + rtol * |ref|. NaN or Inf where the reference is finite fails.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/image.h"

namespace easel::testing {

struct Tolerance {
    double atol = 0.0;
    double rtol = 0.0;
};

struct CompareReport {
    size_t n = 0;
    size_t failures = 0;
    size_t nonfinite = 0;  // NaN/Inf in got where ref is finite
    double max_abs = 0.0;
    size_t max_abs_index = 0;
    double max_rel = 0.0;
    double nmse = 0.0;        // sum (got-ref)^2 / sum ref^2
    double used = 0.0;        // max over elements of |got-ref| / (atol + rtol*|ref|)
    Tolerance tol;
    std::vector<int64_t> shape;  // for printing the max-error position
    bool shape_mismatch = false;
    std::string shape_message;

    bool passed() const { return !shape_mismatch && failures == 0 && nonfinite == 0; }
    std::string summary() const;
};

CompareReport compare(const float* got, const float* ref, size_t n, Tolerance tol,
                      const std::vector<int64_t>& shape = {});
CompareReport compare(const std::vector<float>& got, const std::vector<float>& ref, Tolerance tol);
// Converts both to f32 (any dtype, any strides) and compares; shapes must match.
CompareReport compare(const Tensor& got, const Tensor& ref, Tolerance tol);

// An RGB image against a [1, 3, H, W] uint8 reference, in 8-bit levels: mean and max |difference|.
struct ImageDiff {
    double mean = 0;
    int max = 0;
};
ImageDiff image_diff_levels(const Image& got, const Tensor& ref_u8);

// Deterministic pseudo-random test data (not torch's RNG): uniform in [lo, hi).
std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f);
Tensor random_tensor(const Shape& shape, uint64_t seed, float lo = -1.0f, float hi = 1.0f);

}  // namespace easel::testing
