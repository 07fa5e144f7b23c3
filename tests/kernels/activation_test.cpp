// Activation kernels: every SIMD variant against the double-precision reference, on tail sizes, SD's sizes,
// and extreme inputs (+-300, the exp overflow/underflow edges, infinities).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/compare.h"
#include "kernels/activation.h"
#include "kernels/ops_test_util.h"

using namespace easel;
using namespace easel::testing;

namespace {

enum class Act { Exp, Silu, QuickGelu, GeluErf, GeluTanh };

const char* act_name(Act a) {
    switch (a) {
        case Act::Exp: return "exp";
        case Act::Silu: return "silu";
        case Act::QuickGelu: return "quick_gelu";
        case Act::GeluErf: return "gelu_erf";
        case Act::GeluTanh: return "gelu_tanh";
    }
    return "?";
}

void run_act(Act a, const OpsVariant* v, const float* x, float* y, size_t n) {
    // v == nullptr: the reference.
    const Isa isa = v ? v->isa : Isa::Ref;
    const bool disp = v && v->dispatched;
    switch (a) {
        case Act::Exp: disp ? exp_f32(x, y, n) : exp_f32_variant(isa)(x, y, n); break;
        case Act::Silu: disp ? silu_f32(x, y, n) : silu_f32_variant(isa)(x, y, n); break;
        case Act::QuickGelu: disp ? quick_gelu_f32(x, y, n) : quick_gelu_f32_variant(isa)(x, y, n); break;
        case Act::GeluErf:
            disp ? gelu_f32(x, y, n, GeluApprox::None) : gelu_f32_variant(isa)(x, y, n, GeluApprox::None);
            break;
        case Act::GeluTanh:
            disp ? gelu_f32(x, y, n, GeluApprox::Tanh) : gelu_f32_variant(isa)(x, y, n, GeluApprox::Tanh);
            break;
    }
}

// Tolerances, relative to the double reference rounded once to float (1 ulp = 6e-8 relative). Measured on
// this machine (Xeon, avx2 and avx512 variants alike):
// exp: Cephes polynomial after range reduction: max_rel 1.2e-7; atol only for subnormal results.
// silu: exp(-|x|) and one divide: max_rel 2.4e-7 down to the subnormal range.
// quick_gelu: the exp argument 1.702x is rounded to float first, as torch does, which costs |arg| * 6e-8
//      relative: <= 1e-6 where |arg| <= 16, i.e. wherever |result| > 1e-6 |x|; below that atol takes over.
//      Measured max_rel 7.1e-7 (|x| <= 8).
// gelu_tanh: likewise, but the argument 2u = 2 sqrt(2/pi) (x + 0.044715 x^3) takes several roundings:
//      measured max_rel 5.5e-6 (|x| <= 8, at x ~ -6 where the result is ~1e-13 |x|).
// gelu_erf: erfc fit (1.2e-7) and exp, with x^2/2 and the exp argument carried exactly: see the measured line.
Tolerance act_tol(Act a) {
    switch (a) {
        case Act::Exp: return {.atol = 1e-43, .rtol = 3e-7};
        case Act::Silu: return {.atol = 1e-43, .rtol = 4e-7};
        case Act::QuickGelu: return {.atol = 1e-12, .rtol = 1e-6};
        case Act::GeluErf: return {.atol = 1e-43, .rtol = 6e-7};
        case Act::GeluTanh: return {.atol = 1e-12, .rtol = 8e-6};
    }
    return {};
}

struct ActCase {
    Act act;
    size_t n;
    float range;  // inputs uniform in [-range, range)
};

std::vector<float> inputs(const ActCase& c) {
    std::vector<float> x = random_floats(c.n, 1000 + c.n, -c.range, c.range);
    // Pin the interesting points into the first elements when there is room.
    const float inf = std::numeric_limits<float>::infinity();
    const std::vector<float> special = {0.0f,    -0.0f,  1e-30f, -1e-30f, 87.0f,  88.5f,  88.75f, 89.5f, -87.3f,
                                        -87.4f, -95.0f, -103.9f, -104.5f, -200.f, 300.0f, -300.0f, inf,   -inf};
    if (c.range >= 100.0f && x.size() >= special.size())
        for (size_t i = 0; i < special.size(); ++i) x[i] = special[i];
    return x;
}

class ActivationTest : public ::testing::TestWithParam<ActCase> {};

TEST_P(ActivationTest, MatchesReference) {
    if (ops_variants().empty()) GTEST_SKIP() << "no SIMD variant under EASEL_CPU_ISA=" << isa_name(isa_cap());
    const ActCase& c = GetParam();
    const std::vector<float> x = inputs(c);
    std::vector<float> expect(c.n), got(c.n);
    run_act(c.act, nullptr, x.data(), expect.data(), c.n);
    const std::string name = fmt::format("{}(f32,[{}],x~U(-{},{}))", act_name(c.act), c.n, c.range, c.range);
    for (const OpsVariant& v : ops_variants()) {
        std::fill(got.begin(), got.end(), std::nanf(""));
        run_act(c.act, &v, x.data(), got.data(), c.n);
        report(name, v, compare(got.data(), expect.data(), c.n, act_tol(c.act), {int64_t(c.n)}));
    }
}

TEST_P(ActivationTest, InPlaceMatchesOutOfPlace) {
    if (ops_variants().empty()) GTEST_SKIP() << "no SIMD variant under EASEL_CPU_ISA=" << isa_name(isa_cap());
    const ActCase& c = GetParam();
    const std::vector<float> x = inputs(c);
    for (const OpsVariant& v : ops_variants()) {
        std::vector<float> out(c.n), inplace = x;
        run_act(c.act, &v, x.data(), out.data(), c.n);
        run_act(c.act, &v, inplace.data(), inplace.data(), c.n);
        const CompareReport r = compare(inplace.data(), out.data(), c.n, {.atol = 0, .rtol = 0});
        EXPECT_TRUE(r.passed()) << act_name(c.act) << " in place [" << v.name << "] " << r.summary();
    }
}

std::vector<ActCase> act_cases() {
    std::vector<ActCase> cases;
    for (Act a : {Act::Exp, Act::Silu, Act::QuickGelu, Act::GeluErf, Act::GeluTanh}) {
        for (size_t n : {size_t(1), size_t(7), size_t(15), size_t(17), size_t(4097)}) cases.push_back({a, n, 8.0f});
        cases.push_back({a, 2 * 320 * 64 * 64, 8.0f});  // a UNet activation at 64x64
        cases.push_back({a, 100003, a == Act::Exp ? 110.0f : 300.0f});  // extremes, beyond exp's range
    }
    return cases;
}

std::string act_case_name(const ::testing::TestParamInfo<ActCase>& info) {
    return fmt::format("{}_n{}_range{}", act_name(info.param.act), info.param.n, int(info.param.range));
}

INSTANTIATE_TEST_SUITE_P(Ops, ActivationTest, ::testing::ValuesIn(act_cases()), act_case_name);

struct GegluCase {
    size_t rows, half;
    GeluApprox approx;
};

class GegluTest : public ::testing::TestWithParam<GegluCase> {};

TEST_P(GegluTest, MatchesReference) {
    if (ops_variants().empty()) GTEST_SKIP() << "no SIMD variant under EASEL_CPU_ISA=" << isa_name(isa_cap());
    const GegluCase& c = GetParam();
    const std::vector<float> x = random_floats(c.rows * 2 * c.half, 7 + c.half, -6.0f, 6.0f);
    std::vector<float> expect(c.rows * c.half), got(c.rows * c.half);
    geglu_f32_ref(x.data(), expect.data(), c.rows, c.half, c.approx);
    const std::string name = fmt::format("geglu(f32,[{},{}]->[{},{}],{})", c.rows, 2 * c.half, c.rows, c.half,
                                         c.approx == GeluApprox::Tanh ? "tanh" : "erf");
    // a * gelu(b): gelu's tolerance plus one more rounding.
    const Tolerance tol = c.approx == GeluApprox::Tanh ? Tolerance{.atol = 1e-11, .rtol = 9e-6}
                                                       : Tolerance{.atol = 1e-42, .rtol = 8e-7};
    for (const OpsVariant& v : ops_variants()) {
        std::fill(got.begin(), got.end(), std::nanf(""));
        if (v.dispatched) geglu_f32(x.data(), got.data(), c.rows, c.half, c.approx);
        else geglu_f32_variant(v.isa)(x.data(), got.data(), c.rows, c.half, c.approx);
        report(name, v, compare(got.data(), expect.data(), got.size(), tol, {int64_t(c.rows), int64_t(c.half)}));
    }
}

INSTANTIATE_TEST_SUITE_P(Ops, GegluTest,
                         ::testing::Values(GegluCase{1, 1, GeluApprox::None}, GegluCase{7, 17, GeluApprox::None},
                                           GegluCase{3, 15, GeluApprox::Tanh}, GegluCase{2, 4097, GeluApprox::None},
                                           GegluCase{4096, 1280, GeluApprox::None},  // SD1.x FF at 64x64
                                           GegluCase{77, 1280, GeluApprox::Tanh}),
                         [](const ::testing::TestParamInfo<GegluCase>& i) {
                             return fmt::format("rows{}_half{}_{}", i.param.rows, i.param.half,
                                                i.param.approx == GeluApprox::Tanh ? "tanh" : "erf");
                         });

// The reference's own properties, so the yardstick is checked too (these run under every ISA cap).
// Expected values: closed forms evaluated with Python's math module (erfc, tanh, exp) in double.
TEST(ActivationRef, KnownValues) {
    const std::vector<float> x = {0.0f, 1.0f, -1.0f, 3.0f, -300.0f, 300.0f};
    std::vector<float> y(x.size());
    gelu_f32_ref(x.data(), y.data(), x.size(), GeluApprox::None);
    EXPECT_EQ(y[0], 0.0f);
    EXPECT_FLOAT_EQ(y[1], 0.8413447460685429f);    // Phi(1)
    EXPECT_FLOAT_EQ(y[2], -0.15865525393145707f);  // -Phi(-1)
    EXPECT_FLOAT_EQ(y[3], 2.99595030590511f);      // 3 Phi(3)
    EXPECT_EQ(y[4], 0.0f);                         // -300 Phi(-300) underflows
    EXPECT_EQ(y[5], 300.0f);
    gelu_f32_ref(x.data(), y.data(), x.size(), GeluApprox::Tanh);
    EXPECT_FLOAT_EQ(y[1], 0.8411919906082768f);
    silu_f32_ref(x.data(), y.data(), x.size());
    EXPECT_FLOAT_EQ(y[1], 0.7310585786300049f);  // sigmoid(1)
    EXPECT_EQ(y[4], 0.0f);
    quick_gelu_f32_ref(x.data(), y.data(), x.size());
    EXPECT_FLOAT_EQ(y[1], 0.8457957659328212f);  // sigmoid(1.702)
}

}  // namespace
