#include "compare.h"

#include <cmath>

#include <fmt/format.h>

namespace easel::testing {

std::string CompareReport::summary() const {
    if (shape_mismatch) return "shape mismatch: " + shape_message;
    std::string where = std::to_string(max_abs_index);
    if (!shape.empty()) {
        std::vector<int64_t> idx(shape.size());
        size_t rem = max_abs_index;
        for (size_t i = shape.size(); i-- > 0;) {
            idx[i] = int64_t(rem % size_t(shape[i] ? shape[i] : 1));
            rem /= size_t(shape[i] ? shape[i] : 1);
        }
        where = "[";
        for (size_t i = 0; i < idx.size(); ++i) where += (i ? "," : "") + std::to_string(idx[i]);
        where += "]";
    }
    return fmt::format("max_abs={:.3g} at {}  max_rel={:.3g}  nmse={:.3g}  used {:.0f}%  failures={}/{}{}  "
                       "(atol={:g} rtol={:g})",
                       max_abs, where, max_rel, nmse, used * 100.0, failures, n,
                       nonfinite ? fmt::format(" nonfinite={}", nonfinite) : std::string(), tol.atol, tol.rtol);
}

CompareReport compare(const float* got, const float* ref, size_t n, Tolerance tol, const std::vector<int64_t>& shape) {
    CompareReport r;
    r.n = n;
    r.tol = tol;
    r.shape = shape;
    double err2 = 0.0, ref2 = 0.0;
    for (size_t i = 0; i < n; ++i) {
        const double g = got[i], e = ref[i];
        if (!std::isfinite(g) || !std::isfinite(e)) {
            const bool same = (std::isnan(g) && std::isnan(e)) || g == e;
            if (!same) {
                ++r.failures;
                if (std::isfinite(e)) ++r.nonfinite;
            }
            continue;
        }
        const double d = std::fabs(g - e);
        const double bound = tol.atol + tol.rtol * std::fabs(e);
        if (d > r.max_abs) {
            r.max_abs = d;
            r.max_abs_index = i;
        }
        if (e != 0.0) r.max_rel = std::max(r.max_rel, d / std::fabs(e));
        const double u = bound > 0 ? d / bound : (d > 0 ? INFINITY : 0.0);
        r.used = std::max(r.used, u);
        if (d > bound) ++r.failures;
        err2 += d * d;
        ref2 += e * e;
    }
    r.nmse = ref2 > 0 ? err2 / ref2 : err2;
    return r;
}

CompareReport compare(const std::vector<float>& got, const std::vector<float>& ref, Tolerance tol) {
    if (got.size() != ref.size()) {
        CompareReport r;
        r.shape_mismatch = true;
        r.shape_message = fmt::format("got {} elements, expected {}", got.size(), ref.size());
        return r;
    }
    return compare(got.data(), ref.data(), got.size(), tol);
}

CompareReport compare(const Tensor& got, const Tensor& ref, Tolerance tol) {
    if (got.shape() != ref.shape()) {
        CompareReport r;
        r.shape_mismatch = true;
        r.shape_message = "got " + got.shape().to_string() + ", expected " + ref.shape().to_string();
        return r;
    }
    const std::vector<float> g = got.to_floats(), e = ref.to_floats();
    return compare(g.data(), e.data(), g.size(), tol, got.shape().to_vector());
}

std::vector<float> random_floats(size_t n, uint64_t seed, float lo, float hi) {
    std::vector<float> v(n);
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    for (size_t i = 0; i < n; ++i) {
        // splitmix64
        s += 0x9E3779B97F4A7C15ull;
        uint64_t z = s;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        const double u = double(z >> 11) * (1.0 / 9007199254740992.0);
        v[i] = float(lo + (hi - lo) * u);
    }
    return v;
}

Tensor random_tensor(const Shape& shape, uint64_t seed, float lo, float hi) {
    return Tensor::from_floats(shape, random_floats(size_t(shape.numel()), seed, lo, hi));
}

ImageDiff image_diff_levels(const Image& got, const Tensor& ref) {
    const int64_t H = ref.size(2), W = ref.size(3);
    EASEL_ASSERT(got.width == W && got.height == H && got.channels == 3, "image and reference sizes differ");
    double sum = 0;
    ImageDiff d;
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t i = 0; i < H * W; ++i) {
            const int e = std::abs(int(got.pixels[size_t(i * 3 + c)]) - int(ref.item({0, c, i / W, i % W})));
            sum += e;
            d.max = std::max(d.max, e);
        }
    d.mean = sum / double(3 * H * W);
    return d;
}

}  // namespace easel::testing
