// Sinusoidal timestep embedding against values printed by diffusers' get_timestep_embedding (v0.30.3 code,
// run under torch 1.13.1 on CPU) with SD's settings:
//   get_timestep_embedding(torch.tensor([0., 1., 999., 500.5, 261.]), 320, flip_sin_to_cos=True,
//                          downscale_freq_shift=0)[row, col]
// torch's float32 exp is not correctly rounded: 16 of the 160 frequencies differ from ours by 1 ulp, which
// moves sin/cos of t * freq by up to 5.9e-5 at t = 999 (measured over all 1600 values). Tolerance 1e-4 abs.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/embedding.h"

using namespace easel;

namespace {

TEST(TimestepEmbedding, MatchesDiffusers) {
    const std::vector<float> t = {0.0f, 1.0f, 999.0f, 500.5f, 261.0f};
    const TimestepEmbeddingParams p{.dim = 320, .flip_sin_to_cos = true, .downscale_freq_shift = 0.0f};
    std::vector<float> out(t.size() * 320);
    timestep_embedding_f32(t.data(), t.size(), out.data(), p);
    struct Expect {
        int row, col;
        float value;
    };
    const Expect expect[] = {
        {0, 0, 1.0f},           {0, 160, 0.0f},          {1, 0, 0.5403023362159729f}, {1, 1, 0.586503803730011f},
        {1, 159, 1.0f},         {1, 160, 0.8414709568023682f}, {1, 161, 0.8099464774131775f},
        {1, 319, 0.00010592537000775337f},                {2, 0, 0.9996498227119446f}, {2, 1, 0.8026775121688843f},
        {2, 80, -0.8444698452949524f}, {2, 160, -0.02646075189113617f}, {2, 200, -0.5899291038513184f},
        {2, 319, 0.1056220605969429f}, {3, 5, -0.09811200946569443f},  {3, 165, -0.9951753616333008f},
        {4, 10, -0.6342431902885437f}, {4, 170, 0.7731335759162903f},
    };
    for (const Expect& e : expect)
        EXPECT_NEAR(out[size_t(e.row * 320 + e.col)], e.value, 1e-4) << "t=" << t[size_t(e.row)] << " col " << e.col;
}

TEST(TimestepEmbedding, LayoutAndPadding) {
    // t = 0: every argument is 0, so the cos half is 1 and the sin half 0; flip decides which comes first.
    const float t0 = 0.0f;
    std::vector<float> out(7);
    timestep_embedding_f32(&t0, 1, out.data(), {.dim = 7, .flip_sin_to_cos = false, .downscale_freq_shift = 1.0f});
    EXPECT_EQ(out, (std::vector<float>{0, 0, 0, 1, 1, 1, 0}));  // [sin x3, cos x3, zero pad]
    timestep_embedding_f32(&t0, 1, out.data(), {.dim = 7, .flip_sin_to_cos = true, .downscale_freq_shift = 1.0f});
    EXPECT_EQ(out, (std::vector<float>{1, 1, 1, 0, 0, 0, 0}));

    // Frequency i is max_period^(-i / (half - shift)): with shift 1 the last one is exactly 1/max_period.
    const float t = 1000.0f;
    std::vector<float> e(8);
    timestep_embedding_f32(&t, 1, e.data(), {.dim = 8, .flip_sin_to_cos = false, .downscale_freq_shift = 1.0f});
    EXPECT_NEAR(e[0], std::sin(1000.0), 1e-4);  // freq 1
    EXPECT_NEAR(e[3], std::sin(0.1), 1e-6);     // freq 1e-4
    EXPECT_NEAR(e[7], std::cos(0.1), 1e-6);
}

}  // namespace
