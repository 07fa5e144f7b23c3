// Full-size SDXL refiner 1.0 (random weights, the published key list) against diffusers: see fullsize_sdxl.h.
// `make test-full`.
#define EASEL_FULLSIZE_SDXL_VARIANT "sdxl_refiner"
#include "full/fullsize_sdxl.h"

using namespace easel;
using namespace easel::testing::fullsize_sdxl;

TEST(FullSizeSDXLRefiner, IsDetectedAsTheRefiner) {
    const SDXLModel& m = Fixture::get().fp32();
    EXPECT_EQ(m.family, "sdxl");
    EXPECT_TRUE(m.refiner);
    EXPECT_EQ(m.info.weight_dtype, DType::F16);
    EXPECT_EQ(m.info.text_2.hidden_size, 1280);
    EXPECT_EQ(m.info.unet.cross_attention_dim, 1280);
    EXPECT_EQ(m.info.unet.block_out_channels, (std::vector<int>{384, 768, 1536, 1536}));
}

// StableDiffusionXLImg2ImgPipeline at strength 0.3 (one of 5 steps: the refiner's usual polish) and 0.8 (four).
TEST(FullSizeSDXLRefiner, Img2ImgMatchesReference) {
    for (const std::string name : {"refiner_img2img", "refiner_img2img_s08"}) {
        const nlohmann::json j = Fixture::get().params(name);
        GenerateParams p = easel::testing::sdxl_case_params(j);
        p.denoising_strength = j["strength"];
        add_init_image(name, p);
        expect_case(Fixture::get().fp32(), name, p);
    }
}

// The refiner's half of the ensemble of experts, from the full-size base's latent (sdxl_base_test.cpp checks that
// latent against the same reference run).
TEST(FullSizeSDXLRefiner, HandOffMatchesReference) {
    const std::string name = "refiner_handoff";
    const nlohmann::json j = Fixture::get().params(name);
    GenerateParams p = easel::testing::sdxl_case_params(j);
    p.init_latent = *Fixture::get().cases().find(name + ".init_latent");
    p.denoising_start = j["denoising_start"];
    expect_case(Fixture::get().fp32(), name, p);
}
