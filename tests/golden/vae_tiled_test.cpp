// Tiled VAE decoding against diffusers' AutoencoderKL.enable_tiling() (tools/reference/make_vae_tiling_goldens.py)
// on the embedded model's VAE: a 14x20 latent in 8-latent tiles, partial tiles at the bottom and right.
#include <gtest/gtest.h>

#include "common/compare.h"
#include "core/allocator.h"
#include "io/safetensors.h"
#include "pipeline/sd_model.h"
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

}  // namespace
