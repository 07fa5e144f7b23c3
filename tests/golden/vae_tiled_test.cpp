// Tiled VAE decoding and encoding against diffusers' AutoencoderKL.enable_tiling()
// (tools/reference/make_vae_tiling_goldens.py) on the embedded model's VAE: a 14x20 latent in 8-latent tiles and a
// 56x80 image in 32-pixel tiles, partial tiles at the bottom and right.
#include <gtest/gtest.h>

#include <algorithm>

#include "common/compare.h"
#include "core/allocator.h"
#include "io/safetensors.h"
#include "pipeline/families/sd.h"
#include "runtime/ops.h"

using namespace easel;

namespace {

TEST(VaeTiled, MatchesDiffusersTiledDecode) {
    auto ref = read_safetensors(std::string(EASEL_GOLDEN_DIR) + "/vae_tiled.safetensors");
    ASSERT_TRUE(ref) << ref.error().to_string();
    auto m = load_sd_model(std::string(EASEL_SOURCE_DIR) + "/models/tiny", LoadOptions{});
    ASSERT_TRUE(m) << m.error().to_string();
    const Tensor z = ref->find("z")->to(DType::F32);
    BufferPool pool;
    Ctx c{&pool};
    const Tensor tiled = (*m)->vae.decode_tiled(c, z, 8);
    ASSERT_EQ(tiled.shape(), ref->find("tiled")->shape());
    const auto r = easel::testing::compare(tiled, ref->find("tiled")->to(DType::F32), {.atol = 2e-4, .rtol = 1e-3});
    std::printf("tiled decode vs diffusers: %s\n", r.summary().c_str());
    EXPECT_TRUE(r.passed()) << r.summary();
    // The ordinary decode of the same latent still matches diffusers' ordinary decode, and the seams are where
    // the two differ (so the test would notice tiling being skipped).
    const Tensor full = (*m)->vae.decode(c, z);
    const auto rf = easel::testing::compare(full, ref->find("full")->to(DType::F32), {.atol = 2e-4, .rtol = 1e-3});
    std::printf("full decode vs diffusers:  %s\n", rf.summary().c_str());
    EXPECT_TRUE(rf.passed()) << rf.summary();
    const auto differ = easel::testing::compare(tiled, full, {.atol = 1e-2, .rtol = 0});
    EXPECT_FALSE(differ.passed()) << "tiled and whole decodes agree everywhere: tiling did not happen";
    // A latent that fits in one tile is decoded whole.
    const Tensor small = z.slice(2, 0, 8).slice(3, 0, 8).contiguous();
    EXPECT_TRUE(easel::testing::compare((*m)->vae.decode_tiled(c, small, 8), (*m)->vae.decode(c, small), {}).passed());
}

TEST(VaeTiled, MatchesDiffusersTiledEncode) {
    auto ref = read_safetensors(std::string(EASEL_GOLDEN_DIR) + "/vae_tiled.safetensors");
    ASSERT_TRUE(ref) << ref.error().to_string();
    ASSERT_NE(ref->find("enc_mean"), nullptr) << "regenerate with tools/reference/make_vae_tiling_goldens.py";
    auto m = load_sd_model(std::string(EASEL_SOURCE_DIR) + "/models/tiny", LoadOptions{});
    ASSERT_TRUE(m) << m.error().to_string();
    const Tensor x = ref->find("x")->to(DType::F32);
    BufferPool pool;
    Ctx c{&pool};
    auto [mean, logvar] = (*m)->vae.encode_moments_tiled(c, x, 32);
    ASSERT_EQ(mean.shape(), ref->find("enc_mean")->shape());
    const auto rm = easel::testing::compare(mean, ref->find("enc_mean")->to(DType::F32), {.atol = 2e-4, .rtol = 1e-3});
    std::printf("tiled encode mean vs diffusers:   %s\n", rm.summary().c_str());
    EXPECT_TRUE(rm.passed()) << rm.summary();
    Tensor clamped = logvar.contiguous().clone();  // DiagonalGaussianDistribution clamps to [-30, 20]
    for (int64_t i = 0; i < clamped.numel(); ++i)
        clamped.data<float>()[i] = std::clamp(clamped.data<float>()[i], -30.0f, 20.0f);
    const auto rl = easel::testing::compare(clamped, ref->find("enc_logvar")->to(DType::F32), {.atol = 2e-4, .rtol = 1e-3});
    std::printf("tiled encode logvar vs diffusers: %s\n", rl.summary().c_str());
    EXPECT_TRUE(rl.passed()) << rl.summary();
    // The ordinary encoder matches diffusers' too, and differs from the tiled one at the seams.
    const Tensor full = (*m)->vae.encode_moments(c, x).first;
    const auto rf = easel::testing::compare(full, ref->find("enc_full_mean")->to(DType::F32), {.atol = 2e-4, .rtol = 1e-3});
    std::printf("whole encode mean vs diffusers:   %s\n", rf.summary().c_str());
    EXPECT_TRUE(rf.passed()) << rf.summary();
    EXPECT_FALSE(easel::testing::compare(mean, full, {.atol = 1e-2, .rtol = 0}).passed())
        << "tiled and whole encodes agree everywhere: tiling did not happen";
    // An image no larger than one tile is encoded whole.
    const Tensor small = x.slice(2, 0, 32).slice(3, 0, 32).contiguous();
    EXPECT_TRUE(easel::testing::compare((*m)->vae.encode_moments_tiled(c, small, 32).first,
                                        (*m)->vae.encode_moments(c, small).first, {})
                    .passed());
}

}  // namespace
