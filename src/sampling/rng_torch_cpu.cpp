#include "sampling/rng_torch_cpu.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>

namespace easel {

// Every float operation below is its own statement on purpose: torch's results depend on each rounding, and
// one statement per operation keeps a compiler that contracts a*b+c into an FMA (clang's default
// -ffp-contract=on) from changing a single bit.

namespace {

uint32_t bits_of(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
float float_of(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// The Cephes-derived single-precision log that torch's AVX2 normal kernel uses (avx_mathfun.h, log256_ps),
// one lane at a time. Coefficients are the decimal constants of that file rounded to float, as its
// `static const float[8]` tables do.
float cephes_logf(float x) {
    const bool invalid = x <= 0.0f;  // _CMP_LE_OS: false for NaN
    const float min_norm_pos = float_of(0x00800000u);
    // _mm256_max_ps(x, m) returns m when x is NaN (the second operand wins when either is NaN).
    x = (x > min_norm_pos) ? x : min_norm_pos;

    int32_t imm0 = int32_t(bits_of(x) >> 23);
    x = float_of((bits_of(x) & ~0x7f800000u) | bits_of(0.5f));  // mantissa in [0.5, 1)
    imm0 = imm0 - 0x7f;
    float e = float(imm0);
    e = e + 1.0f;

    const bool below = x < float(0.707106781186547524);  // cephes_SQRTHF
    const float tmp_x = below ? x : 0.0f;
    x = x - 1.0f;
    e = e - (below ? 1.0f : 0.0f);
    x = x + tmp_x;

    const float z = x * x;
    float y = float(7.0376836292E-2);
    y = std::fma(y, x, float(-1.1514610310E-1));
    y = std::fma(y, x, float(1.1676998740E-1));
    y = std::fma(y, x, float(-1.2420140846E-1));
    y = std::fma(y, x, float(1.4249322787E-1));
    y = std::fma(y, x, float(-1.6668057665E-1));
    y = std::fma(y, x, float(2.0000714765E-1));
    y = std::fma(y, x, float(-2.4999993993E-1));
    y = std::fma(y, x, float(3.3333331174E-1));
    y = y * x;
    const float e_q1 = e * float(-2.12194440e-4);  // cephes_log_q1
    y = std::fma(y, z, e_q1);
    const float half_z = z * 0.5f;  // exact
    y = y - half_z;
    x = x + y;
    x = std::fma(e, 0.693359375f, x);  // cephes_log_q2
    if (invalid) return std::numeric_limits<float>::quiet_NaN();
    return x;
}

// sincos256_ps of avx_mathfun.h, one lane: Cephes sinf/cosf with a 3-part Cody-Waite reduction by pi/4.
void cephes_sincosf(float x, float* s, float* c) {
    uint32_t sign_sin = bits_of(x) & 0x80000000u;
    x = std::fabs(x);

    float y = x * float(1.27323954473516);  // 4/pi
    // cvttps truncates, and gives INT32_MIN for NaN or out-of-range values (a C++ cast would be undefined).
    int32_t j = (y < 2147483648.0f) ? int32_t(y) : std::numeric_limits<int32_t>::min();
    j = (j + 1) & ~1;
    y = float(j);

    const uint32_t swap_sign_sin = uint32_t(j & 4) << 29;
    const bool poly_mask = (j & 2) == 0;  // true: the sine is the odd polynomial

    x = std::fma(y, float(-0.78515625), x);
    x = std::fma(y, float(-2.4187564849853515625e-4), x);
    x = std::fma(y, float(-3.77489497744594108e-8), x);

    const uint32_t sign_cos = (~(uint32_t(j) - 2u) & 4u) << 29;  // unsigned: wraps like the SIMD integer ops
    sign_sin ^= swap_sign_sin;

    const float z = x * x;
    float yc = float(2.443315711809948E-005);
    yc = std::fma(yc, z, float(-1.388731625493765E-003));
    yc = std::fma(yc, z, float(4.166664568298827E-002));
    yc = yc * z;
    const float half_z = z * 0.5f;  // exact
    yc = std::fma(yc, z, -half_z);
    yc = yc + 1.0f;

    float ys = float(-1.9515295891E-4);
    ys = std::fma(ys, z, float(8.3321608736E-3));
    ys = std::fma(ys, z, float(-1.6666654611E-1));
    ys = ys * z;
    ys = std::fma(ys, x, x);

    // The lane-select arithmetic of the original, kept literally (it matters only for signed zeros).
    const float ysin2 = poly_mask ? ys : 0.0f;
    const float ysin1 = poly_mask ? 0.0f : yc;
    ys = ys - ysin2;
    yc = yc - ysin1;
    const float sin_v = ysin1 + ysin2;
    const float cos_v = yc + ys;
    *s = float_of(bits_of(sin_v) ^ sign_sin);
    *c = float_of(bits_of(cos_v) ^ sign_cos);
}

void normal_fill_16_avx2(float* data) {
    const float two_pi = float(2.0 * std::numbers::pi);
    for (int j = 0; j < 8; ++j) {
        const float u1 = 1.0f - data[j];
        const float u2 = data[j + 8];
        const float lg = cephes_logf(u1);
        const float m2lg = -2.0f * lg;
        const float radius = std::sqrt(m2lg);
        const float theta = two_pi * u2;
        float sin_t, cos_t;
        cephes_sincosf(theta, &sin_t, &cos_t);
        const float n1 = radius * cos_t;
        const float n2 = radius * sin_t;
        // torch stores fma(n, std, mean) with std = 1, mean = 0: exactly n + 0 (which turns -0 into +0).
        data[j] = n1 + 0.0f;
        data[j + 8] = n2 + 0.0f;
    }
}

void normal_fill_16_scalar(float* data) {
    for (int j = 0; j < 8; ++j) {
        const float u1 = 1.0f - data[j];
        const float u2 = data[j + 8];
        const float lg = std::log(u1);
        const float m2lg = -2.0f * lg;
        const float radius = std::sqrt(m2lg);
        // torch: `const float theta = 2.0f * c10::pi<double> * u2;` is a double product rounded to float.
        const float theta = float(2.0 * std::numbers::pi * double(u2));
        const float c = std::cos(theta);
        const float s = std::sin(theta);
        const float n1 = radius * c;
        const float n2 = radius * s;
        data[j] = n1 + 0.0f;
        data[j + 8] = n2 + 0.0f;
    }
}

}  // namespace

void torch_normal_fill_16(float* data, TorchNormalKernel kernel) {
    if (kernel == TorchNormalKernel::Avx2)
        normal_fill_16_avx2(data);
    else
        normal_fill_16_scalar(data);
}

TorchCpuGenerator::TorchCpuGenerator(uint64_t seed, TorchCpuRngOptions options) : options_(options) {
    manual_seed(seed);
}

void TorchCpuGenerator::manual_seed(uint64_t seed) {
    seed_ = seed;
    // torch's mt19937 keeps the full seed for initial_seed() but initialises its state from the low 32 bits,
    // exactly as std::mt19937 does.
    engine_.seed(static_cast<std::mt19937::result_type>(seed & 0xffffffffu));
    next_double_normal_.reset();
}

uint32_t TorchCpuGenerator::random() { return static_cast<uint32_t>(engine_()); }

uint64_t TorchCpuGenerator::random64() {
    const uint64_t hi = random();
    const uint64_t lo = random();
    return (hi << 32) | lo;
}

float TorchCpuGenerator::uniform_f32() {
    const uint32_t v = random() & ((1u << 24) - 1);
    return float(v) * 0x1p-24f;  // exact
}

double TorchCpuGenerator::uniform_f64() {
    const uint64_t v = random64() & ((uint64_t(1) << 53) - 1);
    return double(v) * 0x1p-53;  // exact
}

double TorchCpuGenerator::normal_f64() {
    if (next_double_normal_) {
        const double v = *next_double_normal_;
        next_double_normal_.reset();
        return v;
    }
    const double u1 = uniform_f64();
    const double u2 = uniform_f64();
    const double lg = options_.small_log == TorchSmallNormalLog::Log1p ? std::log1p(-u2) : std::log(1.0 - u2);
    const double r = std::sqrt(-2.0 * lg);
    const double theta = 2.0 * std::numbers::pi * u1;
    next_double_normal_ = r * std::sin(theta);
    return r * std::cos(theta);
}

void TorchCpuGenerator::randn(float* out, int64_t n) {
    if (n <= 0) return;
    if (n < 16) {
        // normal_distribution<double>(0, 1): value * 1 + 0, then rounded to float.
        for (int64_t i = 0; i < n; ++i) out[i] = float(normal_f64());
        return;
    }
    for (int64_t i = 0; i < n; ++i) out[i] = uniform_f32();
    for (int64_t i = 0; i + 16 <= n; i += 16) torch_normal_fill_16(out + i, options_.kernel);
    if (n % 16 != 0) {
        // torch recomputes the last 16 values from 16 fresh uniforms (overlapping the last full block).
        float* tail = out + n - 16;
        for (int i = 0; i < 16; ++i) tail[i] = uniform_f32();
        torch_normal_fill_16(tail, options_.kernel);
    }
}

Tensor TorchCpuGenerator::randn(const Shape& shape) {
    Tensor t = Tensor::empty(shape, DType::F32);
    randn(t.data<float>(), t.numel());
    return t;
}

}  // namespace easel
