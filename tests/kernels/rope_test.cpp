// The rotary-embedding kernel: every SIMD variant against the reference, and the reference against the
// rotation it defines (norm-preserving, angle 0 = identity, angle pi/2 maps (a, b) to (-b, a)).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/compare.h"
#include "kernels/ops_test_util.h"
#include "kernels/rope.h"

using namespace easel;
using namespace easel::testing;

namespace {

struct RopeCase {
    size_t rows, heads, head_dim;
};

class RopeTest : public ::testing::TestWithParam<RopeCase> {};

}  // namespace

TEST_P(RopeTest, MatchesReference) {
    if (ops_variants().empty()) GTEST_SKIP() << "no SIMD variant under EASEL_CPU_ISA=" << isa_name(isa_cap());
    const RopeCase& c = GetParam();
    const size_t n = c.rows * c.heads * c.head_dim, half = c.head_dim / 2;
    const std::vector<float> x = random_floats(n, 41 + n, -3.0f, 3.0f);
    std::vector<float> cs(c.rows * half), sn(c.rows * half);
    const std::vector<float> angle = random_floats(c.rows * half, 42, -40.0f, 40.0f);
    for (size_t i = 0; i < angle.size(); ++i) cs[i] = std::cos(angle[i]), sn[i] = std::sin(angle[i]);
    std::vector<float> expect = x;
    rope_f32_ref(expect.data(), cs.data(), sn.data(), c.rows, c.heads, c.head_dim);
    const std::string name = fmt::format("rope(f32,[{},{},{}])", c.rows, c.heads, c.head_dim);
    // fmaddsub rounds c a - s b once where the reference rounds each product: a few ulp of |x| <= ~4.
    const Tolerance tol{.atol = 2e-6, .rtol = 1e-6};
    for (const OpsVariant& v : ops_variants()) {
        std::vector<float> got = x;
        if (v.dispatched) rope_f32(got.data(), cs.data(), sn.data(), c.rows, c.heads, c.head_dim);
        else rope_f32_variant(v.isa)(got.data(), cs.data(), sn.data(), c.rows, c.heads, c.head_dim);
        report(name, v, compare(got.data(), expect.data(), n, tol, {int64_t(c.rows), int64_t(c.heads * c.head_dim)}));
    }
}

INSTANTIATE_TEST_SUITE_P(Ops, RopeTest,
                         ::testing::Values(RopeCase{1, 1, 2}, RopeCase{3, 2, 6}, RopeCase{5, 3, 18}, RopeCase{7, 2, 16},
                                           RopeCase{64, 24, 128},  // Flux: 24 heads of 128
                                           RopeCase{33, 2, 34}),
                         [](const ::testing::TestParamInfo<RopeCase>& i) {
                             return fmt::format("rows{}_heads{}_dim{}", i.param.rows, i.param.heads, i.param.head_dim);
                         });

TEST(RopeRef, IsTheRotationItDefines) {
    std::vector<float> x = {3.0f, 4.0f, 1.0f, -2.0f};
    const std::vector<float> c = {1.0f, 0.0f}, s = {0.0f, 1.0f};
    rope_f32_ref(x.data(), c.data(), s.data(), 1, 1, 4);
    EXPECT_EQ(x[0], 3.0f);  // angle 0
    EXPECT_EQ(x[1], 4.0f);
    EXPECT_EQ(x[2], 2.0f);  // angle pi/2: (a, b) -> (-b, a)
    EXPECT_EQ(x[3], 1.0f);
    std::vector<float> y = random_floats(8, 3, -1.0f, 1.0f);
    const float n0 = std::hypot(y[0], y[1]);
    const std::vector<float> c2 = {std::cos(0.7f), std::cos(2.0f), std::cos(-1.0f), std::cos(5.0f)};
    const std::vector<float> s2 = {std::sin(0.7f), std::sin(2.0f), std::sin(-1.0f), std::sin(5.0f)};
    rope_f32_ref(y.data(), c2.data(), s2.data(), 1, 1, 8);
    EXPECT_NEAR(std::hypot(y[0], y[1]), n0, 1e-6);
}
