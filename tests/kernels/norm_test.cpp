// GroupNorm and LayerNorm: every SIMD variant against the double-precision two-pass reference, on tails,
// SD's shapes (UNet: 32 groups eps 1e-5, VAE: eps 1e-6) and inputs with a large mean (which one-pass
// sum / sum-of-squares statistics would get wrong).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/compare.h"
#include "kernels/norm.h"
#include "kernels/ops_test_util.h"

using namespace easel;
using namespace easel::testing;

namespace {

struct GroupNormCase {
    int64_t n, c, hw, groups;
    float eps;
    bool silu;
    bool affine;
    float offset;  // added to every input: tests the variance of data with |mean| >> std
};

class GroupNormTest : public ::testing::TestWithParam<GroupNormCase> {};

TEST_P(GroupNormTest, MatchesReference) {
    if (ops_variants().empty()) GTEST_SKIP() << "no SIMD variant under EASEL_CPU_ISA=" << isa_name(isa_cap());
    const GroupNormCase& c = GetParam();
    const size_t total = size_t(c.n * c.c * c.hw);
    std::vector<float> x = random_floats(total, 11 + total, -1.0f, 1.0f);
    for (float& v : x) v += c.offset;
    const std::vector<float> gamma = random_floats(size_t(c.c), 12, 0.5f, 1.5f);
    const std::vector<float> beta = random_floats(size_t(c.c), 13, -0.5f, 0.5f);
    const float* g = c.affine ? gamma.data() : nullptr;
    const float* b = c.affine ? beta.data() : nullptr;
    const GroupNormShape s{.batch = c.n, .channels = c.c, .spatial = c.hw, .groups = c.groups, .eps = c.eps,
                           .fuse_silu = c.silu};
    std::vector<float> expect(total), got(total);
    group_norm_f32_ref(x.data(), g, b, expect.data(), s);
    const std::string name = fmt::format("group_norm(f32,[{},{},{}],g={},eps={:g}{}{}{})", c.n, c.c, c.hw, c.groups,
                                         c.eps, c.silu ? ",silu" : "", c.affine ? "" : ",no_affine",
                                         c.offset != 0 ? fmt::format(",mean={:g}", c.offset) : "");
    // Outputs are O(1): centred float partial sums folded into double every 1024 values, the mean carried as
    // float hi + lo, then (x - mean) * a + b. Measured max_abs 4.8e-7 (incl. mean 100 and one-value groups).
    const Tolerance tol{.atol = 1e-6, .rtol = 1e-6};
    for (const OpsVariant& v : ops_variants()) {
        std::fill(got.begin(), got.end(), std::nanf(""));
        if (v.dispatched) group_norm_f32(x.data(), g, b, got.data(), s);
        else group_norm_f32_variant(v.isa)(x.data(), g, b, got.data(), s);
        report(name, v, compare(got.data(), expect.data(), total, tol, {c.n, c.c, c.hw}));
    }
}

INSTANTIATE_TEST_SUITE_P(
    Ops, GroupNormTest,
    ::testing::Values(GroupNormCase{1, 1, 1, 1, 1e-5f, false, true, 0},  // one value: var 0, y = beta
                      GroupNormCase{1, 7, 15, 7, 1e-5f, false, true, 0},
                      GroupNormCase{2, 6, 17, 3, 1e-5f, true, true, 0},
                      GroupNormCase{1, 4, 4097, 2, 1e-6f, true, false, 0},
                      GroupNormCase{3, 34, 15, 17, 1e-5f, false, false, 0},
                      GroupNormCase{1, 320, 64 * 64, 32, 1e-5f, false, true, 0},  // UNet, 64x64
                      GroupNormCase{2, 320, 64 * 64, 32, 1e-5f, true, true, 0},   // ResBlock norm + SiLU
                      GroupNormCase{1, 512, 32 * 32, 32, 1e-6f, true, true, 0},   // VAE decoder
                      GroupNormCase{2, 1280, 8 * 8, 32, 1e-5f, true, true, 0},
                      GroupNormCase{1, 64, 1025, 32, 1e-5f, false, true, 100.0f}),
    [](const ::testing::TestParamInfo<GroupNormCase>& i) {
        const GroupNormCase& c = i.param;
        return fmt::format("n{}_c{}_hw{}_g{}_eps{}{}{}{}", c.n, c.c, c.hw, c.groups, c.eps < 5e-6f ? "1e6" : "1e5",
                           c.silu ? "_silu" : "", c.affine ? "" : "_noaffine", c.offset != 0 ? "_offset" : "");
    });

struct LayerNormCase {
    size_t rows, dim;
    bool affine;
    float offset;
};

class LayerNormTest : public ::testing::TestWithParam<LayerNormCase> {};

TEST_P(LayerNormTest, MatchesReference) {
    if (ops_variants().empty()) GTEST_SKIP() << "no SIMD variant under EASEL_CPU_ISA=" << isa_name(isa_cap());
    const LayerNormCase& c = GetParam();
    const size_t total = c.rows * c.dim;
    std::vector<float> x = random_floats(total, 21 + total, -2.0f, 2.0f);
    for (float& v : x) v += c.offset;
    const std::vector<float> gamma = random_floats(c.dim, 22, 0.5f, 1.5f);
    const std::vector<float> beta = random_floats(c.dim, 23, -0.5f, 0.5f);
    const float* g = c.affine ? gamma.data() : nullptr;
    const float* b = c.affine ? beta.data() : nullptr;
    std::vector<float> expect(total), got(total);
    layer_norm_f32_ref(x.data(), g, b, expect.data(), c.rows, c.dim, 1e-5f);
    const std::string name = fmt::format("layer_norm(f32,[{},{}],eps=1e-5{}{})", c.rows, c.dim,
                                         c.affine ? "" : ",no_affine", c.offset != 0 ? ",mean=100" : "");
    // As GroupNorm, with gamma and beta per element: measured max_abs 7.2e-7 ([8192, 320]), 4.8e-7 (mean 100).
    const Tolerance tol{.atol = 1e-6, .rtol = 1e-6};
    for (const OpsVariant& v : ops_variants()) {
        std::fill(got.begin(), got.end(), std::nanf(""));
        if (v.dispatched) layer_norm_f32(x.data(), g, b, got.data(), c.rows, c.dim, 1e-5f);
        else layer_norm_f32_variant(v.isa)(x.data(), g, b, got.data(), c.rows, c.dim, 1e-5f);
        report(name, v, compare(got.data(), expect.data(), total, tol, {int64_t(c.rows), int64_t(c.dim)}));
    }
}

INSTANTIATE_TEST_SUITE_P(Ops, LayerNormTest,
                         ::testing::Values(LayerNormCase{1, 1, true, 0}, LayerNormCase{7, 17, true, 0},
                                           LayerNormCase{15, 7, false, 0}, LayerNormCase{3, 4097, true, 0},
                                           LayerNormCase{77, 768, true, 0},     // CLIP ViT-L text
                                           LayerNormCase{8192, 320, true, 0},   // UNet transformer, 64x64 x 2
                                           LayerNormCase{512, 1280, true, 100.0f}),
                         [](const ::testing::TestParamInfo<LayerNormCase>& i) {
                             return fmt::format("rows{}_dim{}{}{}", i.param.rows, i.param.dim,
                                                i.param.affine ? "" : "_noaffine", i.param.offset != 0 ? "_offset" : "");
                         });

struct RmsNormCase {
    size_t rows, dim;
    bool affine;
};

class RmsNormTest : public ::testing::TestWithParam<RmsNormCase> {};

TEST_P(RmsNormTest, MatchesReference) {
    if (ops_variants().empty()) GTEST_SKIP() << "no SIMD variant under EASEL_CPU_ISA=" << isa_name(isa_cap());
    const RmsNormCase& c = GetParam();
    const size_t total = c.rows * c.dim;
    const std::vector<float> x = random_floats(total, 31 + total, -2.0f, 2.0f);
    const std::vector<float> gamma = random_floats(c.dim, 32, 0.5f, 1.5f);
    const float* g = c.affine ? gamma.data() : nullptr;
    std::vector<float> expect(total), got(total);
    rms_norm_f32_ref(x.data(), g, expect.data(), c.rows, c.dim, 1e-6f);
    const std::string name = fmt::format("rms_norm(f32,[{},{}],eps=1e-6{})", c.rows, c.dim, c.affine ? "" : ",no_affine");
    // One multiply by a float rstd and one by gamma, against the double reference: a few ulp of |y| <= ~3.
    const Tolerance tol{.atol = 1e-6, .rtol = 1e-6};
    for (const OpsVariant& v : ops_variants()) {
        std::fill(got.begin(), got.end(), std::nanf(""));
        if (v.dispatched) rms_norm_f32(x.data(), g, got.data(), c.rows, c.dim, 1e-6f);
        else rms_norm_f32_variant(v.isa)(x.data(), g, got.data(), c.rows, c.dim, 1e-6f);
        report(name, v, compare(got.data(), expect.data(), total, tol, {int64_t(c.rows), int64_t(c.dim)}));
    }
}

INSTANTIATE_TEST_SUITE_P(Ops, RmsNormTest,
                         ::testing::Values(RmsNormCase{1, 1, true}, RmsNormCase{7, 17, true}, RmsNormCase{15, 7, false},
                                           RmsNormCase{3, 4097, true},
                                           RmsNormCase{256, 4096, true},  // T5-XXL, 256 tokens
                                           RmsNormCase{64, 96, false}),
                         [](const ::testing::TestParamInfo<RmsNormCase>& i) {
                             return fmt::format("rows{}_dim{}{}", i.param.rows, i.param.dim, i.param.affine ? "" : "_noaffine");
                         });

// RMSNorm's reference: rows of a constant c come out as c / sqrt(c^2 + eps) * gamma; zeros stay zeros.
TEST(RmsNormRef, Definition) {
    const std::vector<float> x = {3.0f, 3.0f, 3.0f, 3.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    const std::vector<float> gamma = {1.0f, 2.0f, 0.5f, -1.0f};
    std::vector<float> y(8);
    rms_norm_f32_ref(x.data(), gamma.data(), y.data(), 2, 4, 1e-6f);
    const double r = 3.0 / std::sqrt(9.0 + 1e-6);
    for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(y[size_t(i)], float(r * gamma[size_t(i)]));
    for (int i = 4; i < 8; ++i) EXPECT_EQ(y[size_t(i)], 0.0f);
}

// The reference itself: normalised groups have mean 0 and variance var/(var+eps) (here var = 1/3 for U(-1,1)).
TEST(GroupNormRef, NormalisedStatistics) {
    const GroupNormShape s{.batch = 1, .channels = 4, .spatial = 4096, .groups = 2, .eps = 1e-5f};
    const std::vector<float> x = random_floats(4 * 4096, 5, -1.0f, 1.0f);
    std::vector<float> y(x.size());
    group_norm_f32_ref(x.data(), nullptr, nullptr, y.data(), s);
    for (int g = 0; g < 2; ++g) {
        double sum = 0, sq = 0;
        for (size_t i = size_t(g) * 8192; i < size_t(g + 1) * 8192; ++i) sum += y[i], sq += double(y[i]) * y[i];
        EXPECT_NEAR(sum / 8192, 0.0, 1e-6);
        EXPECT_NEAR(sq / 8192, 1.0, 1e-4);  // var/(var+eps) = 1 - 3e-5
    }
    // Constant input: variance 0, so y = beta exactly.
    const std::vector<float> ones(8, 3.0f), beta = {0.25f, -0.5f};
    std::vector<float> out(8);
    layer_norm_f32_ref(ones.data(), nullptr, nullptr, out.data(), 4, 2, 1e-5f);
    for (float v : out) EXPECT_EQ(v, 0.0f);
    layer_norm_f32_ref(ones.data(), nullptr, beta.data(), out.data(), 4, 2, 1e-5f);
    EXPECT_EQ(out[0], 0.25f);
    EXPECT_EQ(out[1], -0.5f);
}

}  // namespace
