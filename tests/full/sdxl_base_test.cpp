// Full-size SDXL base 1.0 (random weights, the published key list) against diffusers and k-diffusion: see
// fullsize_sdxl.h. `make test-full`.
#define EASEL_FULLSIZE_SDXL_VARIANT "sdxl_base"
#include "full/fullsize_sdxl.h"

#include <fstream>

#include "common/clip_vocab_files.h"
#include "common/scoped_path.h"
#include "io/keymap_ldm.h"

using namespace easel;
using namespace easel::testing::fullsize_sdxl;

namespace {

GenerateParams diffusers_case(const std::string& name) {
    const nlohmann::json j = Fixture::get().params(name);
    GenerateParams p = easel::testing::sdxl_case_params(j);
    if (j.contains("strength")) p.denoising_strength = j["strength"];
    add_init_image(name, p);
    return p;
}

// `w` as an fp32 safetensors file (floating-point tensors widened exactly), written one tensor at a time: the
// base UNet in fp32 is 10.3 GB, and write_safetensors would hold it twice in memory.
void write_f32_safetensors(const std::string& path, const WeightSet& w) {
    nlohmann::json header = {{"__metadata__", {{"format", "pt"}}}};
    uint64_t offset = 0;
    auto out_dtype = [](const Tensor& t) { return t.dtype() == DType::F16 ? DType::F32 : t.dtype(); };
    for (const std::string& n : w.names()) {
        const Tensor& t = *w.find(n);
        const uint64_t bytes = uint64_t(t.numel()) * dtype_size(out_dtype(t));
        const std::vector<int64_t> shape = t.shape().to_vector();
        header[n] = {{"dtype", out_dtype(t) == DType::F32 ? "F32" : out_dtype(t) == DType::I64 ? "I64" : "?"},
                     {"shape", shape}, {"data_offsets", {offset, offset + bytes}}};
        ASSERT_NE(header[n]["dtype"], "?") << n << ": " << dtype_name(t.dtype());
        offset += bytes;
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    std::ofstream f(path, std::ios::binary);
    const uint64_t n = text.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << text;
    for (const std::string& name : w.names()) {
        const Tensor& t = *w.find(name);
        const Tensor c = (t.dtype() == DType::F16 ? t.to(DType::F32) : t).contiguous();
        f.write(static_cast<const char*>(c.raw()), std::streamsize(c.nbytes()));
    }
    ASSERT_TRUE(f.good()) << path;
}

}  // namespace

TEST(FullSizeSDXLBase, IsDetectedAsTheBase) {
    const SDXLModel& m = Fixture::get().fp32();
    EXPECT_EQ(m.family, "sdxl");
    EXPECT_FALSE(m.refiner);
    EXPECT_FALSE(m.inpainting);
    EXPECT_EQ(m.info.weight_dtype, DType::F16);
    EXPECT_EQ(m.info.text.hidden_size, 768);
    EXPECT_EQ(m.info.text_2.hidden_size, 1280);
    EXPECT_EQ(m.info.text_2.num_layers, 32);
    EXPECT_EQ(m.info.text_2.projection_dim, 1280);
    EXPECT_EQ(m.info.unet.cross_attention_dim, 2048);
    EXPECT_EQ(m.info.unet.block_out_channels, (std::vector<int>{320, 640, 1280}));
    EXPECT_FLOAT_EQ(m.latent.scaling_factor, 0.13025f);
}

class FullSizeSDXLBaseDiffusers : public ::testing::TestWithParam<std::string> {};

TEST_P(FullSizeSDXLBaseDiffusers, MatchesReference) {
    expect_case(Fixture::get().fp32(), GetParam(), diffusers_case(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(RandomWeights, FullSizeSDXLBaseDiffusers,
                         ::testing::Values("diffusers_euler", "diffusers_dpmpp2m_96x64", "diffusers_img2img",
                                           "diffusers_inpaint_blend"));

class FullSizeSDXLBaseKDiffusion : public ::testing::TestWithParam<std::string> {};

TEST_P(FullSizeSDXLBaseKDiffusion, MatchesReference) {
    expect_case(Fixture::get().fp32(), GetParam(), easel::testing::sdxl_kdiffusion_case_params(Fixture::get().params(GetParam())));
}

INSTANTIATE_TEST_SUITE_P(RandomWeights, FullSizeSDXLBaseKDiffusion,
                         ::testing::Values("kd_euler_a", "kd_dpmpp2m_karras_zero_neg"));

// The base's half of the ensemble of experts: it stops at denoising_end and hands over its latent undecoded (the
// refiner's half: sdxl_refiner_test.cpp, from this latent).
TEST(FullSizeSDXLBase, HandOffLatentMatchesReference) {
    const std::string name = "handoff_base";
    const nlohmann::json j = Fixture::get().params(name);
    GenerateParams p = easel::testing::sdxl_case_params(j);
    p.denoising_end = j["denoising_end"];
    p.decode = false;
    auto r = generate(Fixture::get().fp32(), p);
    ASSERT_TRUE(r) << r.error().to_string();
    auto rc = easel::testing::compare((*r)[0].latent, *Fixture::get().cases().find(name + ".latent"), kLatentTol);
    std::printf("%-28s latent %s\n", name.c_str(), rc.summary().c_str());
    EXPECT_TRUE(rc.passed()) << rc.summary();
}

// --precision fast on the full-size network: PSNR >= 35 dB against fp32 (the reference's fp32 image, which the fp32
// run matches within 1 level) for a txt2img and a k-diffusion case. Loaded after the fp32 model is dropped.
TEST(FullSizeSDXLBase, FastStaysCloseToFp32) {
    Fixture::get().release();
    LoadOptions o;
    o.precision = Precision::BF16;
    auto fast = load_sdxl_model(Fixture::get().path(), o);
    ASSERT_TRUE(fast) << fast.error().to_string();
    for (const std::string name : {"diffusers_euler", "kd_euler_a"}) {
        const nlohmann::json j = Fixture::get().params(name);
        const GenerateParams p = j.contains("sampler") ? easel::testing::sdxl_kdiffusion_case_params(j) : diffusers_case(name);
        auto r = generate(**fast, p);
        ASSERT_TRUE(r) << r.error().to_string();
        Image want = (*r)[0].image;
        const Tensor& hwc = *Fixture::get().cases().find(name + ".image");
        for (size_t i = 0; i < want.pixels.size(); ++i) want.pixels[i] = uint8_t(hwc.data<uint8_t>()[i]);
        const double db = psnr((*r)[0].image, want);
        std::printf("%-28s fast vs fp32: PSNR %.2f dB (bound 35)\n", name.c_str(), db);
        EXPECT_GE(db, 35.0);
    }
}

// The same checkpoint as a diffusers folder with fp32 weights (the layout of stabilityai/stable-diffusion-xl-base-1.0:
// model_index.json, unet/ vae/ text_encoder/ text_encoder_2/ with config.json and fp32 safetensors, tokenizer/ and
// tokenizer_2/, scheduler/): configs from tests/data/keys/sdxl_base.expect.json (the reference's), weights renamed by
// easel's sgm -> diffusers map. Same values, so the reference's images.
TEST(FullSizeSDXLBase, Fp32DiffusersFolderMatchesReference) {
    Fixture::get().release();
    const fs::path dir = fs::temp_directory_path() / fmt::format("easel-fullsize-sdxl-folder-{}", ::getpid());
    const easel::testing::ScopedPath remove{dir};
    std::ifstream ein(std::string(EASEL_TEST_DATA_DIR) + "/keys/sdxl_base.expect.json");
    const auto expect = nlohmann::json::parse(ein);
    {
        auto file = read_safetensors(Fixture::get().path());
        ASSERT_TRUE(file) << file.error().to_string();
        auto renamed = ldm_to_diffusers(std::move(file).value());  // fp16 views; widened one tensor at a time below
        ASSERT_TRUE(renamed) << renamed.error().to_string();
        const std::pair<const char*, const char*> comps[] = {{"unet", "diffusion_pytorch_model.safetensors"},
                                                              {"vae", "diffusion_pytorch_model.safetensors"},
                                                              {"text_encoder", "model.safetensors"},
                                                              {"text_encoder_2", "model.safetensors"}};
        for (const auto& [comp, file_name] : comps) {
            const WeightSet part = easel::testing::component_weights(*renamed, comp);
            ASSERT_GT(part.size(), 0u) << comp;
            fs::create_directories(dir / comp);
            write_f32_safetensors((dir / comp / file_name).string(), part);
            std::ofstream(dir / comp / "config.json") << expect[std::string(comp) + "_config"].dump(1);
        }
    }
    fs::create_directories(dir / "scheduler");
    std::ofstream(dir / "scheduler" / "scheduler_config.json") << Fixture::get().cases().metadata.at("scheduler_config");
    for (const char* tok : {"tokenizer", "tokenizer_2"}) {
        auto st = easel::testing::write_clip_tokenizer_folder(EASEL_CLIP_VOCAB_GZ, (dir / tok).string());
        ASSERT_TRUE(st) << st.error().to_string();
    }
    std::ofstream(dir / "model_index.json")
        << nlohmann::json{{"_class_name", "StableDiffusionXLPipeline"}, {"_diffusers_version", "0.30.3"},
                          {"force_zeros_for_empty_prompt", true}, {"feature_extractor", {nullptr, nullptr}},
                          {"image_encoder", {nullptr, nullptr}}, {"scheduler", {"diffusers", "EulerDiscreteScheduler"}},
                          {"text_encoder", {"transformers", "CLIPTextModel"}},
                          {"text_encoder_2", {"transformers", "CLIPTextModelWithProjection"}},
                          {"tokenizer", {"transformers", "CLIPTokenizer"}}, {"tokenizer_2", {"transformers", "CLIPTokenizer"}},
                          {"unet", {"diffusers", "UNet2DConditionModel"}}, {"vae", {"diffusers", "AutoencoderKL"}}}
               .dump(1);
    LoadOptions o;
    o.precision = Precision::F32;
    auto m = load_sdxl_model(dir.string(), o);
    ASSERT_TRUE(m) << m.error().to_string();
    EXPECT_EQ((*m)->info.layout, CheckpointLayout::Diffusers);
    EXPECT_EQ((*m)->info.weight_dtype, DType::F32);
    for (const std::string name : {"diffusers_euler", "kd_euler_a"}) {
        const nlohmann::json j = Fixture::get().params(name);
        const GenerateParams p = j.contains("sampler") ? easel::testing::sdxl_kdiffusion_case_params(j) : diffusers_case(name);
        expect_case(**m, name, p, "fp32 folder " + name);
    }
}
