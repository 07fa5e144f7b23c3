// Softmax: every SIMD variant against the double-precision reference; tails, attention-like rows, logits of
// +-1e4 (only the max-subtracted form survives them), -inf entries and all -inf rows.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/compare.h"
#include "kernels/ops_test_util.h"
#include "kernels/softmax.h"

using namespace easel;
using namespace easel::testing;

namespace {

struct SoftmaxCase {
    size_t rows, dim;
    float range;  // logits uniform in [-range, range)
};

class SoftmaxTest : public ::testing::TestWithParam<SoftmaxCase> {};

TEST_P(SoftmaxTest, MatchesReference) {
    if (ops_variants().empty()) GTEST_SKIP() << "no SIMD variant under EASEL_CPU_ISA=" << isa_name(isa_cap());
    const SoftmaxCase& c = GetParam();
    const size_t total = c.rows * c.dim;
    std::vector<float> x = random_floats(total, 31 + total, -c.range, c.range);
    // Row 1 (if any) gets -inf entries (masked logits), row 2 is all -inf (NaN in torch and here).
    const float inf = std::numeric_limits<float>::infinity();
    if (c.rows > 1)
        for (size_t j = 0; j < c.dim; j += 3) x[c.dim + j] = -inf;
    if (c.rows > 2 && c.dim > 1)
        for (size_t j = 0; j < c.dim; ++j) x[2 * c.dim + j] = -inf;
    std::vector<float> expect(total), got(total);
    softmax_f32_ref(x.data(), expect.data(), c.rows, c.dim);
    const std::string name = fmt::format("softmax(f32,[{},{}],x~U(-{:g},{:g}))", c.rows, c.dim, c.range, c.range);
    // exp (~1 ulp), a float sum and one multiply by 1/sum, but exp's argument x - max is rounded to float first
    // (as torch does), which costs |x - max| * 6e-8 relative: measured max_rel 2.2e-6 for logits in [-20, 20]
    // (|x - max| up to 40), 1.4e-6 in [-10, 10]. atol for results that underflow (logits 1e4 apart).
    const Tolerance tol{.atol = 1e-37, .rtol = 3e-6};
    for (const OpsVariant& v : ops_variants()) {
        std::fill(got.begin(), got.end(), 12345.0f);
        if (v.dispatched) softmax_f32(x.data(), got.data(), c.rows, c.dim);
        else softmax_f32_variant(v.isa)(x.data(), got.data(), c.rows, c.dim);
        report(name, v, compare(got.data(), expect.data(), total, tol, {int64_t(c.rows), int64_t(c.dim)}));
        // In place gives the same bits.
        std::vector<float> inplace = x;
        if (v.dispatched) softmax_f32(inplace.data(), inplace.data(), c.rows, c.dim);
        else softmax_f32_variant(v.isa)(inplace.data(), inplace.data(), c.rows, c.dim);
        EXPECT_TRUE(compare(inplace, got, {}).passed()) << name << " in place [" << v.name << "]";
    }
}

INSTANTIATE_TEST_SUITE_P(Ops, SoftmaxTest,
                         ::testing::Values(SoftmaxCase{1, 1, 5}, SoftmaxCase{3, 7, 5}, SoftmaxCase{5, 15, 5},
                                           SoftmaxCase{4, 17, 5}, SoftmaxCase{3, 4097, 20},
                                           SoftmaxCase{4096, 77, 10},  // cross-attention scores, 64x64
                                           SoftmaxCase{64, 4096, 10},  // self-attention rows
                                           SoftmaxCase{17, 1000, 1e4f}, SoftmaxCase{5, 33, 1e4f}),
                         [](const ::testing::TestParamInfo<SoftmaxCase>& i) {
                             return fmt::format("rows{}_dim{}_range{}", i.param.rows, i.param.dim, int(i.param.range));
                         });

TEST(SoftmaxRef, Properties) {
    // Equal logits give a uniform row, whatever their size; a +1e4 outlier takes all the mass.
    const std::vector<float> x = {1e4f, 1e4f, 1e4f, 1e4f, -1e4f, 1e4f, -1e4f, -1e4f};
    std::vector<float> y(8);
    softmax_f32_ref(x.data(), y.data(), 2, 4);
    for (int j = 0; j < 4; ++j) EXPECT_EQ(y[size_t(j)], 0.25f);
    EXPECT_EQ(y[4], 0.0f);
    EXPECT_EQ(y[5], 1.0f);
}

}  // namespace
