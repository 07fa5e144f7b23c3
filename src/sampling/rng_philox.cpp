#include "sampling/rng_philox.h"

#include <cmath>

namespace easel {

namespace {

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;  // golden ratio
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;  // sqrt(3) - 1

// 2^-32 and 2^-32 * 2pi as rng_philox.py writes them: decimal literals rounded to float32 and then used in
// double arithmetic (numpy promotes uint32 * float32 to float64).
constexpr double kInv32 = double(2.3283064e-10f);
constexpr double kInv32TwoPi = double(float(2.3283064e-10 * 6.2831855));

}  // namespace

std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> c, std::array<uint32_t, 2> key) {
    for (int round = 0; round < 10; ++round) {
        const uint64_t p0 = uint64_t(c[0]) * kPhiloxM0;
        const uint64_t p1 = uint64_t(c[2]) * kPhiloxM1;
        c = {uint32_t(p1 >> 32) ^ c[1] ^ key[0], uint32_t(p1), uint32_t(p0 >> 32) ^ c[3] ^ key[1], uint32_t(p0)};
        key[0] += kPhiloxW0;
        key[1] += kPhiloxW1;
    }
    return c;
}

void PhiloxGenerator::randn(float* out, int64_t n) {
    EASEL_ASSERT(n >= 0 && uint64_t(n) <= (uint64_t(1) << 32), "philox randn: at most 2^32 values per draw");
    const std::array<uint32_t, 2> key = {uint32_t(seed_), uint32_t(seed_ >> 32)};
    for (int64_t i = 0; i < n; ++i) {
        const auto r = philox4x32_10({uint32_t(offset_), 0u, uint32_t(i), 0u}, key);
        const double u = double(r[0]) * kInv32 + kInv32 / 2;  // (0, 1): never 0, so the log is finite
        const double v = double(r[1]) * kInv32TwoPi + kInv32TwoPi / 2;
        const double s = std::sqrt(-2.0 * std::log(u));
        out[i] = float(s * std::sin(v));
    }
    offset_ += 1;
}

Tensor PhiloxGenerator::randn(const Shape& shape) {
    Tensor t = Tensor::empty(shape, DType::F32);
    randn(t.data<float>(), t.numel());
    return t;
}

}  // namespace easel
