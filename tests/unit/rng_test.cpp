// Properties of the torch CPU and Philox generators that hold independently of the goldens (those are in
// tests/golden/rng_torch_test.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "sampling/noise.h"
#include "sampling/rng_philox.h"
#include "sampling/rng_torch_cpu.h"

using namespace easel;

TEST(TorchCpuRng, EngineIsStandardMt19937) {
    // The C++ standard fixes the 10000th output of mt19937 with seed 5489 at 4123659995.
    TorchCpuGenerator g(5489);
    uint32_t v = 0;
    for (int i = 0; i < 10000; ++i) v = g.random();
    EXPECT_EQ(v, 4123659995u);
}

TEST(TorchCpuRng, OnlyLow32SeedBitsMatterAndNegativeSeedsWrap) {
    TorchCpuGenerator a(7), b((uint64_t(1) << 32) + 7);
    for (int i = 0; i < 100; ++i) ASSERT_EQ(a.random(), b.random());
    EXPECT_EQ(TorchCpuGenerator::seed_from_int64(-1), ~uint64_t(0));
    EXPECT_EQ(b.initial_seed(), (uint64_t(1) << 32) + 7);  // the full seed is kept, as torch's initial_seed()
}

TEST(TorchCpuRng, Random64TakesHighWordFirstAndUniformsUseTheLowBits) {
    TorchCpuGenerator a(3), b(3);
    const uint64_t hi = a.random(), lo = a.random();
    EXPECT_EQ(b.random64(), (hi << 32) | lo);
    TorchCpuGenerator c(3), d(3);
    EXPECT_EQ(c.uniform_f32(), float(d.random() & 0xffffff) / 16777216.0f);
}

TEST(TorchCpuRng, TailRecomputesLastSixteenFromFreshUniforms) {
    // randn(17): 17 uniforms, block [0,16) transformed, then 16 fresh uniforms replace [1,17). So element 0
    // equals randn(16)[0] and elements [1,17) are the block [0,16) of a generator advanced by 17 draws.
    TorchCpuGenerator a(11), b(11), c(11);
    std::vector<float> x17(17), x16(16), y(16);
    a.randn(x17.data(), 17);
    b.randn(x16.data(), 16);
    EXPECT_EQ(std::memcmp(&x17[0], &x16[0], 4), 0);
    for (int i = 0; i < 17; ++i) (void)c.uniform_f32();
    for (int i = 0; i < 16; ++i) y[size_t(i)] = c.uniform_f32();
    torch_normal_fill_16(y.data(), TorchNormalKernel::Avx2);
    EXPECT_EQ(std::memcmp(&x17[1], y.data(), 16 * 4), 0);
}

TEST(TorchCpuRng, SmallDrawsShareTheCachedSecondNormal) {
    // randn(1) twice uses one Box-Muller pair (cos then the cached sin); manual_seed drops the cache.
    TorchCpuGenerator a(5), b(5);
    std::vector<float> two(2);
    a.randn(two.data(), 2);
    float x0, x1;
    b.randn(&x0, 1);
    b.randn(&x1, 1);
    EXPECT_EQ(two[0], x0);
    EXPECT_EQ(two[1], x1);
    b.manual_seed(5);
    float y0;
    b.randn(&y0, 1);
    EXPECT_EQ(y0, x0);
}

TEST(TorchCpuRng, LooksStandardNormal) {
    // Loose moments over 2^16 draws (sampling error of the mean ~0.004): catches a wrong transform, not bits.
    TorchCpuGenerator g(123);
    Tensor t = g.randn({1, 4, 128, 128});
    const float* p = t.data<float>();
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < t.numel(); ++i) {
        ASSERT_TRUE(std::isfinite(p[i]));
        s += p[i];
        s2 += double(p[i]) * p[i];
    }
    const double mean = s / double(t.numel()), var = s2 / double(t.numel()) - mean * mean;
    EXPECT_NEAR(mean, 0.0, 0.02);
    EXPECT_NEAR(var, 1.0, 0.03);
}

TEST(TorchCpuRng, Avx2AndScalarKernelsAgreeToFloatRounding) {
    // The two torch kernels compute the same Box-Muller with different float maths: equal to ~1e-6.
    TorchCpuGenerator a(9, {TorchNormalKernel::Avx2}), b(9, {TorchNormalKernel::Scalar});
    Tensor x = a.randn({4096}), y = b.randn({4096});
    double max_abs = 0;
    for (int64_t i = 0; i < 4096; ++i)
        max_abs = std::max(max_abs, double(std::fabs(x.data<float>()[i] - y.data<float>()[i])));
    EXPECT_LT(max_abs, 2e-5);
}

TEST(Philox, KnownAnswerVectors) {
    // Random123's published known-answer tests for philox4x32 with 10 rounds (kat_vectors).
    using A4 = std::array<uint32_t, 4>;
    EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}), (A4{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
    EXPECT_EQ(philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}),
              (A4{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
    EXPECT_EQ(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
              (A4{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(Philox, EachDrawAdvancesTheOffsetAndIsElementwise) {
    PhiloxGenerator g(42);
    Tensor a = g.randn({100});
    EXPECT_EQ(g.offset(), 1u);
    Tensor b = g.randn({10});
    PhiloxGenerator h(42, 1);
    Tensor c = h.randn({20});
    // Element i depends only on (seed, offset, i): a shorter draw is a prefix of a longer one.
    EXPECT_EQ(std::memcmp(b.data<float>(), c.data<float>(), 10 * 4), 0);
    EXPECT_NE(std::memcmp(a.data<float>(), c.data<float>(), 10 * 4), 0);
}

TEST(PerSampleNoise, EachItemContinuesItsOwnGenerator) {
    // A1111 / diffusers batches: item i of every draw comes from generator i, as separate [1, ...] draws.
    TorchCpuGenerator g0(10), g1(11), r0(10), r1(11);
    TorchCpuNoise n0(g0), n1(g1);
    PerSampleNoise batch({&n0, &n1});
    const Tensor like = Tensor::empty({2, 4, 3, 3});
    for (int draw = 0; draw < 3; ++draw) {
        Tensor b = batch.randn_like(like);
        Tensor e0 = r0.randn({1, 4, 3, 3}), e1 = r1.randn({1, 4, 3, 3});
        EXPECT_EQ(std::memcmp(b.data<float>(), e0.data<float>(), 36 * 4), 0) << draw;
        EXPECT_EQ(std::memcmp(b.data<float>() + 36, e1.data<float>(), 36 * 4), 0) << draw;
    }
}
