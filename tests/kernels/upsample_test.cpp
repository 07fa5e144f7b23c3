// Nearest 2x upsample: pure data movement, so every variant must match the reference exactly.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/compare.h"
#include "kernels/ops_test_util.h"
#include "kernels/upsample.h"

using namespace easel;
using namespace easel::testing;

namespace {

struct UpCase {
    size_t n, c, h, w;
};

class UpsampleTest : public ::testing::TestWithParam<UpCase> {};

TEST_P(UpsampleTest, MatchesReferenceExactly) {
    if (ops_variants().empty()) GTEST_SKIP() << "no SIMD variant under EASEL_CPU_ISA=" << isa_name(isa_cap());
    const UpCase& c = GetParam();
    const size_t planes = c.n * c.c;
    const std::vector<float> x = random_floats(planes * c.h * c.w, 81 + c.w);
    std::vector<float> expect(planes * 4 * c.h * c.w), got(expect.size());
    upsample_nearest2x_f32_ref(x.data(), expect.data(), planes, c.h, c.w);
    const std::string name = fmt::format("upsample_nearest2x(f32,[{},{},{},{}])", c.n, c.c, c.h, c.w);
    for (const OpsVariant& v : ops_variants()) {
        std::fill(got.begin(), got.end(), std::nanf(""));
        if (v.dispatched) upsample_nearest2x_f32(x.data(), got.data(), planes, c.h, c.w);
        else upsample_nearest2x_f32_variant(v.isa)(x.data(), got.data(), planes, c.h, c.w);
        report(name, v, compare(got.data(), expect.data(), got.size(), {},
                                {int64_t(c.n), int64_t(c.c), int64_t(2 * c.h), int64_t(2 * c.w)}));
    }
}

INSTANTIATE_TEST_SUITE_P(Ops, UpsampleTest,
                         ::testing::Values(UpCase{1, 1, 1, 1}, UpCase{1, 3, 7, 15}, UpCase{2, 2, 17, 17},
                                           UpCase{1, 1, 3, 4097}, UpCase{1, 5, 9, 33},
                                           UpCase{2, 1280, 8, 8},    // UNet up block 0 -> 16x16
                                           UpCase{2, 640, 32, 32},   // -> 64x64
                                           UpCase{1, 512, 64, 64}),  // VAE decoder
                         [](const ::testing::TestParamInfo<UpCase>& i) {
                             return fmt::format("n{}_c{}_h{}_w{}", i.param.n, i.param.c, i.param.h, i.param.w);
                         });

TEST(UpsampleRef, KnownValues) {
    const std::vector<float> x = {1, 2, 3, 4, 5, 6};  // [1, 1, 2, 3]
    std::vector<float> y(24);
    upsample_nearest2x_f32_ref(x.data(), y.data(), 1, 2, 3);
    EXPECT_EQ(y, (std::vector<float>{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 4, 4, 5, 5, 6, 6}));
}

}  // namespace
