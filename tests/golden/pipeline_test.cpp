// Whole txt2img / img2img runs against the k-diffusion reference loop (AUTOMATIC1111's semantics) on a tiny
// random-weight SD 1.x-shaped model stored as a diffusers folder with fp16 weights.
// Goldens: tools/reference/make_pipeline_goldens.py (see its docstring for the exact reference loop).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "common/compare.h"
#include "common/golden.h"
#include "common/golden_case.h"
#include "io/safetensors.h"
#include "pipeline/families/sd.h"
#include "pipeline/generate.h"
#include "pipeline/mask.h"

using namespace easel;
using easel::testing::image_from_golden;
using easel::testing::mask_from_golden;

namespace {
const std::string kFolder = std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd1";
const std::string kCases = std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd1_cases.safetensors";

struct Fixture {
    std::unique_ptr<SDModel> model;
    WeightSet cases;
};

Fixture& fixture() {
    static Fixture f = [] {
        Fixture x;
        LoadOptions o;
        auto m = load_sd_model(kFolder, o);
        EASEL_ASSERT(m.has_value(), m ? "" : m.error().to_string());
        x.model = std::move(m).value();
        auto c = read_safetensors(kCases);
        EASEL_ASSERT(c.has_value(), c ? "" : c.error().to_string());
        x.cases = std::move(c).value();
        return x;
    }();
    return f;
}

// A golden file of cases, read once per path.
const WeightSet& golden_cases(const std::string& file) { return easel::testing::golden_file(file); }

// The tiny 9-channel inpainting model (tools/reference/make_inpaint_goldens.py).
const SDModel& inpaint_model() {
    static std::unique_ptr<SDModel> m = [] {
        auto r = load_sd_model(std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd1_inpaint", LoadOptions{});
        EASEL_ASSERT(r.has_value(), r ? "" : r.error().to_string());
        return std::move(r).value();
    }();
    return *m;
}

// Our run of case `name` against its golden latent and image (easel::testing::expect_matches_case). The latent:
// fp32 with a different summation order through ~10-20 UNet calls; the random model amplifies differences (latent
// std ~15-27), so the bound is relative: rtol 1e-4 plus atol 1e-3.
void expect_matches_case(const GeneratedImage& got, const WeightSet& cases, const std::string& name,
                         const std::string& label) {
    easel::testing::expect_matches_case(got, cases, name, label, {.atol = 1e-3, .rtol = 1e-4});
}

class PipelineGolden : public ::testing::TestWithParam<std::string> {};
}  // namespace

TEST_P(PipelineGolden, MatchesKDiffusionReference) {
    Fixture& f = fixture();
    const std::string name = GetParam();
    const auto j = nlohmann::json::parse(f.cases.metadata.at(name + ".params"));
    GenerateParams p = easel::testing::case_params(j, 32);
    if (!j["strength"].is_null()) {
        const Tensor& init = *f.cases.find("init_image");  // [1, 3, 32, 32] u8
        p.init_image = image_from_golden(init);
        p.denoising_strength = j["strength"];
    }
    auto out = generate(*f.model, p);
    ASSERT_TRUE(out) << out.error().to_string();
    ASSERT_EQ(out->size(), 1u);
    expect_matches_case((*out)[0], f.cases, name, name);
}

INSTANTIATE_TEST_SUITE_P(SD1Tiny, PipelineGolden,
                         ::testing::Values("euler", "euler_a", "dpmpp2m_karras", "heun", "dpmpp2m_sde_karras", "lms",
                                           "img2img_euler_a"));

// Diffusers mode: StableDiffusionPipeline (and StableDiffusionImg2ImgPipeline for img2img_*) with each scheduler
// class built from the folder's scheduler_config.json (tools/reference/make_pipeline_diffusers_goldens.py). Same
// bounds as above.
class PipelineDiffusersGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(PipelineDiffusersGolden, MatchesStableDiffusionPipeline) {
    Fixture& f = fixture();
    const WeightSet& cases = golden_cases("pipeline_sd1_diffusers_cases.safetensors");
    const std::string name = GetParam();
    const auto j = nlohmann::json::parse(cases.metadata.at(name + ".params"));
    GenerateParams p = easel::testing::case_params(j, 32);
    easel::testing::use_diffusers_scheduler(j, p);
    if (j.contains("strength")) {  // StableDiffusionImg2ImgPipeline on the file's init image
        const Tensor& init = *cases.find("init_image");  // [1, 3, 32, 32] u8
        p.init_image = image_from_golden(init);
        p.denoising_strength = j["strength"];
    }
    auto out = generate(*f.model, p);
    ASSERT_TRUE(out) << out.error().to_string();
    expect_matches_case((*out)[0], cases, name, "diffusers " + name);
}

INSTANTIATE_TEST_SUITE_P(SD1Tiny, PipelineDiffusersGolden,
                         ::testing::Values("euler", "euler_a", "heun", "lms", "dpmpp2m", "dpmpp2m_karras", "ddim", "pndm",
                                           "unipc", "unipc_4", "unipc_karras", "lcm", "lcm_7", "img2img_euler",
                                           "img2img_euler_a", "img2img_heun", "img2img_lms", "img2img_dpmpp2m",
                                           "img2img_ddim", "img2img_unipc", "img2img_lcm"));

// What diffusers-mode img2img refuses, with messages that say why.
TEST(PipelineDiffusersImg2Img, RefusesPndmAndEmptySchedules) {
    Fixture& f = fixture();
    GenerateParams p;
    p.prompt = "a cat";
    p.width = p.height = 32;
    p.steps = 10;
    p.schedule_from = ScheduleFrom::Diffusers;
    p.init_image = Image{32, 32, 3, std::vector<uint8_t>(32 * 32 * 3, 128)};
    p.denoising_strength = 0.5;
    p.diffusers_scheduler = DiffusersScheduler::Pndm;
    auto r = generate(*f.model, p);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().to_string().find("pndm"), std::string::npos) << r.error().to_string();
    p.diffusers_scheduler = DiffusersScheduler::Euler;
    p.denoising_strength = 0.05;  // int(10 * 0.05) = 0 steps
    r = generate(*f.model, p);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().to_string().find("no step"), std::string::npos) << r.error().to_string();
    p.denoising_strength = 1.0;  // the whole schedule: runs
    EXPECT_TRUE(generate(*f.model, p)) << "strength 1 in diffusers mode";
}

// --precision fast (bf16 weights and activations in every GEMM, f32 accumulation) must stay within
// PSNR >= 35 dB of the fp32 image for the same seed (the bound).
TEST(PipelineFastMode, StaysCloseToFp32) {
    LoadOptions o;
    o.precision = Precision::BF16;
    auto fast = load_sd_model(kFolder, o);
    ASSERT_TRUE(fast) << fast.error().to_string();
    Fixture& f = fixture();
    for (SamplerKind k : {SamplerKind::Euler, SamplerKind::DpmPP2M}) {
        GenerateParams p;
        p.prompt = "a red circle on a blue background";
        p.width = p.height = 32;
        p.steps = 12;
        p.seed = 11;
        p.sampler = k;
        auto a = generate(*f.model, p);
        auto b = generate(**fast, p);
        ASSERT_TRUE(a && b);
        double se = 0;
        const auto& pa = (*a)[0].image.pixels;
        const auto& pb = (*b)[0].image.pixels;
        for (size_t i = 0; i < pa.size(); ++i) se += double(int(pa[i]) - int(pb[i])) * double(int(pa[i]) - int(pb[i]));
        const double mse = se / double(pa.size());
        const double psnr = mse == 0 ? 99.0 : 10.0 * std::log10(255.0 * 255.0 / mse);
        std::printf("fast vs fp32 (%s): PSNR %.2f dB\n", sampler_name(k), psnr);
        EXPECT_GE(psnr, 35.0);
    }
}

// The same weights as an original-LDM single file with its yaml beside it (renamed by src/io/keymap_ldm, configs
// from the yaml): the image must be the reference's too.
TEST(PipelineSingleFile, LdmLayoutGivesTheSameImage) {
    LoadOptions o;
    o.vocab_path = kFolder + "/tokenizer";
    auto single = load_sd_model(std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd1_single/tiny-sd1.safetensors", o);
    ASSERT_TRUE(single) << single.error().to_string();
    EXPECT_EQ((*single)->info.layout, CheckpointLayout::LdmSingleFile);
    Fixture& f = fixture();
    GenerateParams p;
    p.prompt = "a red circle on a blue background";
    p.width = p.height = 32;
    p.steps = 12;
    p.seed = 42;
    p.sampler = SamplerKind::Euler;
    auto a = generate(**single, p);
    ASSERT_TRUE(a) << a.error().to_string();
    auto r = easel::testing::compare((*a)[0].latent, *f.cases.find("euler.latent"), {.atol = 1e-3, .rtol = 1e-4});
    std::printf("single file euler latent %s\n", r.summary().c_str());
    EXPECT_TRUE(r.passed()) << r.summary();
    // easel's own single files carry their tokenizer in the safetensors metadata (tools/train/export.py):
    // without --vocab that one is used, and the run is the same.
    auto own = load_sd_model(std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd1_single/tiny-sd1.safetensors", LoadOptions{});
    ASSERT_TRUE(own) << own.error().to_string();
    auto b = generate(**own, p);
    ASSERT_TRUE(b) << b.error().to_string();
    EXPECT_EQ((*b)[0].image.pixels, (*a)[0].image.pixels);

    // A vocabulary larger than the text encoder's embedding (CLIP's 49408 tokens for this model's 591 rows) is
    // refused at load, naming both sizes, instead of reaching the encoder with ids it has no rows for.
    LoadOptions clip_vocab;
    clip_vocab.vocab_path = EASEL_CLIP_VOCAB_GZ;
    auto refused = load_sd_model(std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd1_single/tiny-sd1.safetensors", clip_vocab);
    ASSERT_FALSE(refused);
    const std::string msg = refused.error().to_string();
    EXPECT_NE(msg.find("ids up to 49407"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--vocab"), std::string::npos) << msg;
}

// A single file that carries no tokenizer, as every SD checkpoint people download: without --vocab it gets the
// built-in CLIP vocabulary and generates. The tiny single file, its tokenizer metadata dropped and its token
// embedding widened to CLIP's 49408 rows (the first 591 as they were; its yaml says so), stands in for one.
TEST(PipelineSingleFile, NoTokenizerGetsTheBuiltInVocabulary) {
    const std::string src = std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd1_single/tiny-sd1";
    auto w = read_safetensors(src + ".safetensors");
    ASSERT_TRUE(w) << w.error().to_string();
    WeightSet out;
    const std::string emb_name = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight";
    for (const auto& name : w->names()) {
        const Tensor& t = *w->find(name);
        if (name != emb_name) {
            ASSERT_TRUE(out.add(name, t));
            continue;
        }
        ASSERT_TRUE(t.is_contiguous());
        Tensor wide = Tensor::zeros({49408, t.shape()[1]}, t.dtype());
        std::memcpy(wide.raw(), t.raw(), t.nbytes());
        ASSERT_TRUE(out.add(name, wide));
    }
    out.metadata = w->metadata;
    out.metadata.erase("easel.tokenizer.vocab_json");
    out.metadata.erase("easel.tokenizer.merges_txt");
    const std::filesystem::path dir = std::filesystem::temp_directory_path() / fmt::format("easel-novocab-{}", ::getpid());
    std::filesystem::create_directories(dir);
    ASSERT_TRUE(write_safetensors((dir / "m.safetensors").string(), out));
    std::ifstream yaml_in(src + ".yaml");
    std::string yaml((std::istreambuf_iterator<char>(yaml_in)), std::istreambuf_iterator<char>());
    const size_t at = yaml.find("vocab_size: 591");
    ASSERT_NE(at, std::string::npos);
    yaml.replace(at, 15, "vocab_size: 49408");
    std::ofstream(dir / "m.yaml") << yaml;

    ::unsetenv("EASEL_VOCAB");
    auto m = load_sd_model((dir / "m.safetensors").string(), LoadOptions{});
    ASSERT_TRUE(m) << m.error().to_string();
    const std::string described = (*m)->describe();
    EXPECT_NE(described.find("tokenizer: built-in CLIP vocabulary"), std::string::npos) << described;
    EXPECT_EQ((*m)->tokenizer.vocab_size(), 49408u);
    auto ins = inspect_model((dir / "m.safetensors").string());
    ASSERT_TRUE(ins) << ins.error().to_string();
    EXPECT_NE(ins->tokenizer.find("built-in"), std::string::npos) << ins->tokenizer;
    GenerateParams p;
    p.prompt = "a photo of a cat";
    p.width = p.height = 32;
    p.steps = 2;
    p.seed = 1;
    auto g = generate(**m, p);
    ASSERT_TRUE(g) << g.error().to_string();
    EXPECT_EQ((*g)[0].image.width, 32);
    std::filesystem::remove_all(dir);
}

// Inpainting in AUTOMATIC1111's semantics (tools/reference/make_inpaint_goldens.py has the steps): latent blending
// with an ordinary model, and a 9-channel inpainting model that also sees the mask and the masked picture.
class InpaintGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(InpaintGolden, MatchesReference) {
    const WeightSet& cases = golden_cases("inpaint_cases.safetensors");
    const std::string name = GetParam();
    const auto j = nlohmann::json::parse(cases.metadata.at(name + ".params"));
    const SDModel& model = j["model"] == "inpaint" ? inpaint_model() : *fixture().model;
    if (j["model"] == "inpaint") {
        EXPECT_EQ(model.info.unet.in_channels, 9);
        EXPECT_EQ(model.info.family, ModelFamily::SD1);
        EXPECT_TRUE(model.inpainting);
    }
    GenerateParams p = easel::testing::case_params(j, 32);
    p.denoising_strength = j["strength"];
    p.mask_blur = std::stoi(cases.metadata.at("mask_blur"));
    const Tensor& init = *cases.find("init_image");  // [1, 3, 32, 32] u8
    p.init_image = image_from_golden(init);
    p.mask = mask_from_golden(*cases.find("mask"));  // [32, 32] u8
    auto out = generate(model, p);
    ASSERT_TRUE(out) << out.error().to_string();
    expect_matches_case((*out)[0], cases, name, "inpaint " + name);
}

INSTANTIATE_TEST_SUITE_P(SD1Tiny, InpaintGolden,
                         ::testing::Values("blend_euler_a", "blend_dpmpp2m", "inpaint9_euler_a", "inpaint9_euler"));

// The other "Masked content" choices and "Only masked" (tools/reference/make_inpaint_more_goldens.py): fill,
// latent noise, latent nothing on the 32x32 input; only masked on 48x40 inputs inpainted at 32x32, once with a box
// that outgrows the picture (resize mode 2's bands) and once with the 9-channel model and fill.
class InpaintMoreGolden : public ::testing::TestWithParam<std::string> {};

TEST(InpaintMoreGolden, FillIsPillowsBitForBit) {
    const WeightSet& cases = golden_cases("inpaint_more_cases.safetensors");
    const Image init = image_from_golden(*cases.find("square.init_image"));
    const Image blurred = blur_mask(mask_from_golden(*cases.find("square.mask")), 4);
    const Image want = image_from_golden(*cases.find("square.fill"));
    const Image got = fill_masked_area(init, blurred);
    const auto [mean, worst] = easel::testing::image_diff_levels(got, *cases.find("square.fill"));
    std::printf("fill (A1111 masking.fill on Pillow): mean |diff| %.4f levels, max %d (bound 0)\n", mean, worst);
    EXPECT_EQ(worst, 0);
    EXPECT_EQ(got.pixels.size(), want.pixels.size());
}

TEST_P(InpaintMoreGolden, MatchesReference) {
    const WeightSet& cases = golden_cases("inpaint_more_cases.safetensors");
    const std::string name = GetParam();
    const auto j = nlohmann::json::parse(cases.metadata.at(name + ".params"));
    const SDModel& model = j["model"] == "inpaint" ? inpaint_model() : *fixture().model;
    GenerateParams p = easel::testing::case_params(j, 32);
    p.denoising_strength = j["strength"];
    p.mask_blur = std::stoi(cases.metadata.at("mask_blur"));
    const std::string input = j["input"];
    p.init_image = image_from_golden(*cases.find(input + ".init_image"));
    p.mask = mask_from_golden(*cases.find(input + ".mask"));
    p.masked_content = MaskedContent(j["inpainting_fill"].get<int>());
    if (!j["padding"].is_null()) {
        p.inpaint_only_masked = true;
        p.inpaint_padding = j["padding"];
    }
    auto out = generate(model, p);
    ASSERT_TRUE(out) << out.error().to_string();
    EXPECT_EQ((*out)[0].image.width, p.init_image->width);
    EXPECT_EQ((*out)[0].image.height, p.init_image->height);
    expect_matches_case((*out)[0], cases, name, "inpaint " + name);
    if (p.inpaint_only_masked) {
        const std::string& info = (*out)[0].infotext;
        EXPECT_NE(info.find("Inpaint area: Only masked"), std::string::npos) << info;
    }
}

INSTANTIATE_TEST_SUITE_P(SD1Tiny, InpaintMoreGolden,
                         ::testing::Values("fill_euler_a", "latent_noise_euler", "latent_nothing_dpmpp2m",
                                           "only_masked_euler_a", "only_masked_fill_inpaint9"));

// Inpainting in diffusers mode: StableDiffusionInpaintPipeline (tools/reference/make_inpaint_diffusers_goldens.py),
// with the ordinary model (blend_*: the original re-noised to the next timestep outside the mask after every step)
// and the 9-channel one (inpaint9_*), strength 1 (pure noise start) and below. The mask is a grey (blurred) one,
// binarised at 0.5 by diffusers. Same bounds as above.
class InpaintDiffusersGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(InpaintDiffusersGolden, MatchesStableDiffusionInpaintPipeline) {
    const WeightSet& cases = golden_cases("inpaint_diffusers_cases.safetensors");
    const std::string name = GetParam();
    const auto j = nlohmann::json::parse(cases.metadata.at(name + ".params"));
    const SDModel& model = j["model"] == "inpaint" ? inpaint_model() : *fixture().model;
    GenerateParams p = easel::testing::case_params(j, 32);
    p.schedule_from = ScheduleFrom::Diffusers;
    p.diffusers_scheduler = parse_diffusers_scheduler(std::string(j["scheduler"])).value();
    p.denoising_strength = j["strength"];
    const Tensor& init = *cases.find("init_image");  // [1, 3, 32, 32] u8
    p.init_image = image_from_golden(init);
    p.mask = mask_from_golden(*cases.find("mask"));  // [32, 32] u8, grey levels
    auto out = generate(model, p);
    ASSERT_TRUE(out) << out.error().to_string();
    expect_matches_case((*out)[0], cases, name, "diffusers inpaint " + name);
}

INSTANTIATE_TEST_SUITE_P(SD1Tiny, InpaintDiffusersGolden,
                         ::testing::Values("blend_euler", "blend_euler_a", "blend_dpmpp2m", "blend_ddim", "blend_lms",
                                           "inpaint9_euler", "inpaint9_euler_a", "inpaint9_dpmpp2m", "inpaint9_ddim"));

// diffusers reads a mask with Pillow's convert("L"), which ignores alpha (A1111 uses a non-opaque alpha instead):
// the golden's grey mask as RGBA with a fully transparent alpha channel must give the golden image.
TEST(InpaintDiffusers, MaskAlphaIsIgnored) {
    const WeightSet* c = &golden_cases("inpaint_diffusers_cases.safetensors");
    const auto j = nlohmann::json::parse(c->metadata.at("blend_euler.params"));
    GenerateParams p = easel::testing::case_params(j, 32);
    p.schedule_from = ScheduleFrom::Diffusers;
    p.diffusers_scheduler = parse_diffusers_scheduler(std::string(j["scheduler"])).value();
    p.denoising_strength = j["strength"];
    p.init_image = image_from_golden(*c->find("init_image"));
    const Tensor& mask = *c->find("mask");
    Image m{32, 32, 4, std::vector<uint8_t>(32 * 32 * 4)};
    for (int64_t i = 0; i < 32 * 32; ++i)
        for (int64_t ch = 0; ch < 3; ++ch) m.pixels[size_t(i * 4 + ch)] = uint8_t(mask.item({i / 32, i % 32}));
    p.mask = m;  // alpha 0 everywhere
    auto out = generate(*fixture().model, p);
    ASSERT_TRUE(out) << out.error().to_string();
    const auto [mean, worst] = easel::testing::image_diff_levels((*out)[0].image, *c->find("blend_euler.image"));
    std::printf("diffusers inpaint, RGBA mask: image mean |diff| %.4f levels, max %d levels\n", mean, worst);
    EXPECT_LE(mean, 1.0);
    EXPECT_LE(worst, 2);
}

// What diffusers-mode inpainting refuses, by name: samplers whose blending we cannot place (heun, pndm) and those
// without inpainting goldens (unipc, lcm).
TEST(InpaintDiffusers, RefusesHeunPndmUniPCAndLcm) {
    Fixture& f = fixture();
    GenerateParams p;
    p.prompt = "x";
    p.width = p.height = 32;
    p.steps = 10;
    p.schedule_from = ScheduleFrom::Diffusers;
    p.init_image = Image{32, 32, 3, std::vector<uint8_t>(32 * 32 * 3, 100)};
    p.mask = Image{32, 32, 1, std::vector<uint8_t>(32 * 32, 255)};
    for (auto [k, word] : {std::pair{DiffusersScheduler::Heun, "heun"}, std::pair{DiffusersScheduler::Pndm, "pndm"},
                           std::pair{DiffusersScheduler::UniPC, "unipc"}, std::pair{DiffusersScheduler::Lcm, "lcm"}}) {
        p.diffusers_scheduler = k;
        auto r = generate(*f.model, p);
        ASSERT_FALSE(r);
        std::printf("%s\n", r.error().to_string().c_str());
        EXPECT_NE(r.error().to_string().find(word), std::string::npos) << r.error().to_string();
        EXPECT_NE(r.error().to_string().find("inpainting"), std::string::npos) << r.error().to_string();
    }
}

TEST(Inpaint, RejectsBadMasks) {
    Fixture& f = fixture();
    GenerateParams p;
    p.prompt = "x";
    p.width = p.height = 32;
    p.mask = Image{32, 32, 1, std::vector<uint8_t>(32 * 32, 255)};
    auto r = generate(*f.model, p);  // no init image
    ASSERT_FALSE(r);
    std::printf("%s\n", r.error().to_string().c_str());
    p.init_image = Image{32, 32, 3, std::vector<uint8_t>(32 * 32 * 3, 0)};
    p.mask = Image{16, 32, 1, std::vector<uint8_t>(16 * 32, 255)};
    r = generate(*f.model, p);
    ASSERT_FALSE(r);
    std::printf("%s\n", r.error().to_string().c_str());
    EXPECT_NE(r.error().to_string().find("16x32"), std::string::npos);
}
