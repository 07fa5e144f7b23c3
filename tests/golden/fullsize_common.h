// Full-size SD 1.5 / SD 2.1 against the reference (included by fullsize_sd15_test.cpp, fullsize_sd21_test.cpp,
// fullsize_sd15_inpaint_test.cpp and fullsize_sd2_inpaint_test.cpp, which define EASEL_FULLSIZE_VARIANT, "sd15",
// "sd21", "sd15_inpaint" or "sd2_inpaint", EASEL_FULLSIZE_V_PREDICTION and, for the 9-channel variants,
// EASEL_FULLSIZE_INPAINT), without shipping
// weights: the checkpoint is a pure function of the published tensor list (tests/data/keys/<variant>.ldm.json.gz) and
// torch's CPU generator, rebuilt here bit for bit with TorchCpuGenerator (the rule is in
// tools/reference/make_fullsize_goldens.py), written as an fp16 LDM single file like
// v1-5-pruned-emaonly.safetensors, and loaded the way a user's file is. The reference ran diffusers' own
// single-file converters on the same values and k-diffusion's loop at 64x64 (latent 8x8).
//
// Costs about 2 GB of temporary disk and 7 GB of memory; set EASEL_SKIP_FULLSIZE=1 to skip on small machines.
#pragma once

#ifndef EASEL_FULLSIZE_INPAINT
#define EASEL_FULLSIZE_INPAINT false
#endif

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/clip_vocab_files.h"
#include "common/compare.h"
#include "common/golden_case.h"
#include "common/random_checkpoint.h"
#include "common/scoped_path.h"
#include "io/keymap_ldm.h"
#include "io/safetensors.h"
#include "models/detect.h"
#include "pipeline/families/sd.h"
#include "pipeline/generate.h"

using namespace easel;
namespace fs = std::filesystem;

namespace {

const std::string kVariant = EASEL_FULLSIZE_VARIANT;
const std::string kKeys = std::string(EASEL_TEST_DATA_DIR) + "/keys/" + kVariant + ".ldm.json.gz";
const std::string kCases = std::string(EASEL_GOLDEN_DIR) + "/fullsize_" + kVariant + "_cases.safetensors";

// Latent bound of every full-size case: fp32 through a full-size UNet (the image bound is the issue's).
constexpr easel::testing::Tolerance kLatentTol{.atol = 2e-3, .rtol = 2e-4};

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A single file cannot say whether it predicts noise or velocity: users pass --prediction (or a yaml). It carries no
// tokenizer either: it gets the built-in CLIP vocabulary, as a user's does without --vocab.
LoadOptions load_options(Precision precision) {
    LoadOptions o;
    o.precision = precision;
    if (EASEL_FULLSIZE_V_PREDICTION) o.prediction = Prediction::V;
    return o;
}

struct FullSize {
    std::string path;
    std::unique_ptr<SDModel> fp32;
    WeightSet cases;
};

FullSize* g_created = nullptr;  // for the clean-up, without building the fixture just to delete it

FullSize* fixture() {
    static std::unique_ptr<FullSize> f = []() -> std::unique_ptr<FullSize> {
        if (std::getenv("EASEL_SKIP_FULLSIZE")) return nullptr;
        auto x = std::make_unique<FullSize>();
        const auto t0 = std::chrono::steady_clock::now();
        auto built = easel::testing::random_checkpoint(kKeys);
        EASEL_ASSERT(built.has_value(), built ? "" : built.error().to_string());
        WeightSet w = std::move(built).value();
        std::printf("generated %zu tensors in %.1f s\n", w.size(), seconds_since(t0));
        x->path = (fs::temp_directory_path() / fmt::format("easel-fullsize-{}-{}.safetensors", kVariant, ::getpid())).string();
        auto st = write_safetensors(x->path, w);
        EASEL_ASSERT(st.has_value(), st ? "" : st.error().to_string());
        w = WeightSet();
        std::printf("wrote %s (%.2f GB) after %.1f s\n", x->path.c_str(), double(fs::file_size(x->path)) / 1e9, seconds_since(t0));
        auto m = load_sd_model(x->path, load_options(Precision::F32));
        EASEL_ASSERT(m.has_value(), m ? "" : m.error().to_string());
        x->fp32 = std::move(m).value();
        std::printf("loaded after %.1f s: %s\n", seconds_since(t0), x->fp32->describe().c_str());
        auto c = read_safetensors(kCases);
        EASEL_ASSERT(c.has_value(), c ? "" : c.error().to_string());
        x->cases = std::move(c).value();
        g_created = x.get();
        return x;
    }();
    return f.get();
}

// The fixture's fp16 single file read back: the tensors random_checkpoint() builds, without the minute it takes to
// generate them again. With F32, the floating-point ones widened (exactly: what an fp32 export of the file holds).
[[maybe_unused]] Result<WeightSet> reread_checkpoint(const FullSize& f, DType dtype) {  // unused by the 9-channel tests
    EASEL_TRY_ASSIGN(WeightSet w, read_safetensors(f.path));
    if (dtype == DType::F16) return w;
    WeightSet out;
    for (const std::string& n : w.names()) {
        const Tensor& t = *w.find(n);
        EASEL_TRY(out.add(n, t.dtype() == DType::F16 ? t.to(dtype) : t));
    }
    return out;
}

struct Cleanup : ::testing::Environment {
    void TearDown() override {
        if (FullSize* f = g_created; f && !f->path.empty()) {
            std::error_code ec;
            fs::remove(f->path, ec);
        }
    }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new Cleanup);

}  // namespace

#if !EASEL_FULLSIZE_INPAINT
class FullSizeCase : public ::testing::TestWithParam<std::string> {};

TEST_P(FullSizeCase, Fp16SingleFileMatchesReference) {
    FullSize* f = fixture();
    if (!f) GTEST_SKIP() << "EASEL_SKIP_FULLSIZE is set";
    const std::string name = GetParam();
    ASSERT_TRUE(f->cases.metadata.count(name + ".params")) << name << ": not in " << kCases;
    const auto j = nlohmann::json::parse(f->cases.metadata.at(name + ".params"));
    EXPECT_EQ(f->fp32->info.family, kVariant == "sd15" ? ModelFamily::SD1 : ModelFamily::SD2);
    EXPECT_EQ(f->fp32->info.weight_dtype, DType::F16);
    EXPECT_EQ(f->fp32->info.unet.prediction, EASEL_FULLSIZE_V_PREDICTION ? Prediction::V : Prediction::Epsilon);

    // The text conditioning, A1111 emphasis and mean restoration included (stored for CASES only, 236 KB each).
    if (const Tensor* want = f->cases.find(name + ".cond")) {
        BufferPool pool;
        Ctx c{&pool};
        auto cond = encode_prompt(c, *f->fp32, j["prompt"], 1);
        ASSERT_TRUE(cond) << cond.error().to_string();
        auto rc = easel::testing::compare(*cond, *want, {.atol = 2e-4, .rtol = 1e-4});
        std::printf("%-16s cond   %s\n", name.c_str(), rc.summary().c_str());
        EXPECT_TRUE(rc.passed()) << rc.summary();
    }

    GenerateParams p = easel::testing::case_params(j, 64);
    const auto t0 = std::chrono::steady_clock::now();
    auto out = generate(*f->fp32, p);
    ASSERT_TRUE(out) << out.error().to_string();
    std::printf("%-16s generated in %.1f s\n", name.c_str(), seconds_since(t0));
    easel::testing::expect_matches_case((*out)[0], f->cases, name, name, kLatentTol);
}

// make_fullsize_goldens.py's CASES, SAMPLER_CASES (every other k-diffusion sampler, each on another schedule) and,
// for SD 1.5, AYS_CASES.
#if EASEL_FULLSIZE_V_PREDICTION
#define EASEL_FULLSIZE_AYS_CASES
#else
#define EASEL_FULLSIZE_AYS_CASES , "euler_ays"
#endif
INSTANTIATE_TEST_SUITE_P(RandomWeights, FullSizeCase,
                         ::testing::Values("euler_a", "dpmpp2m_karras", "heun_exponential", "dpm2_karras",
                                           "lms_sgm_uniform", "dpmpp2m_sde_karras", "dpmpp_sde_simple",
                                           "ddim_ddim_uniform", "lcm_sgm_uniform" EASEL_FULLSIZE_AYS_CASES));
#endif

// img2img, inpainting with this ordinary model (latent blending, A1111's semantics) and diffusers mode (each
// scheduler class through StableDiffusionPipeline / StableDiffusionImg2ImgPipeline) on the full-size network:
// make_fullsize_goldens.py's IMG2IMG_CASES, INPAINT_CASES and DIFFUSERS_CASES. Same bounds as above.
class FullSizeModeCase : public ::testing::TestWithParam<std::string> {};

TEST_P(FullSizeModeCase, Fp16SingleFileMatchesReference) {
    FullSize* f = fixture();
    if (!f) GTEST_SKIP() << "EASEL_SKIP_FULLSIZE is set";
    const std::string name = GetParam();
    ASSERT_TRUE(f->cases.metadata.count(name + ".params")) << name << ": not in " << kCases;
    const auto j = nlohmann::json::parse(f->cases.metadata.at(name + ".params"));
    GenerateParams p = easel::testing::case_params(j, 64);
    if (j.value("mode", "") == "diffusers") easel::testing::use_diffusers_scheduler(j, p);
    if (j.contains("strength")) {
        p.init_image = easel::testing::image_from_golden(*f->cases.find("init_image"));  // [1, 3, 64, 64] u8
        p.denoising_strength = j["strength"];
    }
    if (name.find("inpaint") != std::string::npos) {
        // A1111's mode blurs the mask itself (mask_blur); diffusers' pipeline was given the blurred mask.
        const bool diffusers = p.schedule_from == ScheduleFrom::Diffusers;
        p.mask = easel::testing::mask_from_golden(*f->cases.find(diffusers ? "mask_blurred" : "mask"));  // [64, 64] u8
        p.mask_blur = std::stoi(f->cases.metadata.at("mask_blur"));
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto out = generate(*f->fp32, p);
    ASSERT_TRUE(out) << out.error().to_string();
    std::printf("%-26s generated in %.1f s\n", name.c_str(), seconds_since(t0));
    easel::testing::expect_matches_case((*out)[0], f->cases, name, name, kLatentTol);
}

#if EASEL_FULLSIZE_INPAINT
TEST(FullSizeInpaint, IsDetectedAsANineChannelModel) {
    FullSize* f = fixture();
    if (!f) GTEST_SKIP() << "EASEL_SKIP_FULLSIZE is set";
    EXPECT_EQ(f->fp32->info.family, kVariant == "sd15_inpaint" ? ModelFamily::SD1 : ModelFamily::SD2);
    EXPECT_TRUE(f->fp32->info.inpainting);
    EXPECT_TRUE(f->fp32->inpainting);
    EXPECT_EQ(f->fp32->info.unet.in_channels, 9);
}

INSTANTIATE_TEST_SUITE_P(RandomWeights, FullSizeModeCase,
                         ::testing::Values("inpaint9_euler_a", "inpaint9_euler", "diffusers_inpaint9_euler",
                                           "diffusers_inpaint9_dpmpp2m"));
#else
INSTANTIATE_TEST_SUITE_P(RandomWeights, FullSizeModeCase,
                         ::testing::Values("img2img_euler", "inpaint_blend_euler_a", "diffusers_euler", "diffusers_euler_a",
                                           "diffusers_heun", "diffusers_lms", "diffusers_dpmpp2m",
                                           "diffusers_dpmpp2m_karras", "diffusers_ddim", "diffusers_pndm",
                                           "diffusers_unipc", "diffusers_lcm", "diffusers_img2img_euler",
                                           "diffusers_img2img_dpmpp2m"));
#endif

#if !EASEL_FULLSIZE_INPAINT
// The same checkpoint exported with fp32 weights (v1-5-pruned.safetensors-style, 4+ GB): same values, so the same
// image as the fp16 file, within the reference's bounds (and, in practice, bit for bit).
TEST(FullSizeFp32Weights, MatchReference) {
    FullSize* f = fixture();
    if (!f) GTEST_SKIP() << "EASEL_SKIP_FULLSIZE is set";
    const std::string path =
        (fs::temp_directory_path() / fmt::format("easel-fullsize-{}-fp32-{}.safetensors", kVariant, ::getpid())).string();
    const easel::testing::ScopedPath remove{path};
    {
        auto built = reread_checkpoint(*f, DType::F32);
        ASSERT_TRUE(built) << built.error().to_string();
        auto st = write_safetensors(path, *built);
        ASSERT_TRUE(st) << st.error().to_string();
    }
    std::printf("wrote %s (%.2f GB)\n", path.c_str(), double(fs::file_size(path)) / 1e9);
    auto m = load_sd_model(path, load_options(Precision::F32));
    ASSERT_TRUE(m) << m.error().to_string();
    EXPECT_EQ((*m)->info.weight_dtype, DType::F32);
    const std::string name = "euler_a";
    const auto j = nlohmann::json::parse(f->cases.metadata.at(name + ".params"));
    const GenerateParams p = easel::testing::case_params(j, 64);
    auto out = generate(**m, p);
    ASSERT_TRUE(out) << out.error().to_string();
    easel::testing::expect_matches_case((*out)[0], f->cases, name, "fp32 weights " + name, kLatentTol);
    auto fp16 = generate(*f->fp32, p);
    ASSERT_TRUE(fp16) << fp16.error().to_string();
    std::printf("fp32 weights vs the fp16 file: images %s\n",
                (*fp16)[0].image.pixels == (*out)[0].image.pixels ? "identical" : "differ");
}
#endif

#if !EASEL_FULLSIZE_INPAINT
// The same checkpoint as a diffusers folder, laid out the way save_pretrained writes one and the Hub serves it:
// model_index.json; unet/, vae/ and text_encoder/ with config.json and fp16 weights (diffusion_pytorch_model.fp16.
// safetensors, model.fp16.safetensors: the "fp16" variant, as SD 1.5's and 2.1's repositories ship them);
// tokenizer/ with vocab.json + merges.txt; scheduler/scheduler_config.json. The configs are the reference's
// (tests/data/keys/<variant>.expect.json, written by make_key_lists.py from diffusers' own conversion); the
// weights are the single file's, renamed by easel's LDM -> diffusers map, which tests/unit/keymap_ldm_test.cpp
// holds to the reference's diffusers names and shapes. Loading the folder must give the reference's image.
TEST(FullSizeDiffusersFolder, MatchesReference) {
    FullSize* f = fixture();
    if (!f) GTEST_SKIP() << "EASEL_SKIP_FULLSIZE is set";
    const fs::path dir = fs::temp_directory_path() / fmt::format("easel-fullsize-{}-folder-{}", kVariant, ::getpid());
    const easel::testing::ScopedPath remove{dir};
    std::ifstream ein(std::string(EASEL_TEST_DATA_DIR) + "/keys/" + kVariant + ".expect.json");
    const auto expect = nlohmann::json::parse(ein);
    {
        auto built = reread_checkpoint(*f, DType::F16);
        ASSERT_TRUE(built) << built.error().to_string();
        auto ucfg = UNetConfig::from_diffusers_json(expect["unet_config"].dump());
        ASSERT_TRUE(ucfg) << ucfg.error().to_string();
        LdmKeymapOptions opt;
        opt.unet = ldm_layout_of(*ucfg);
        opt.vae_levels = int(expect["vae_config"]["block_out_channels"].size());
        auto renamed = ldm_to_diffusers(std::move(built).value(), opt);
        ASSERT_TRUE(renamed) << renamed.error().to_string();
        const std::pair<const char*, const char*> comps[] = {{"unet", "diffusion_pytorch_model.fp16.safetensors"},
                                                              {"vae", "diffusion_pytorch_model.fp16.safetensors"},
                                                              {"text_encoder", "model.fp16.safetensors"}};
        for (const auto& [comp, file] : comps) {
            const WeightSet part = easel::testing::component_weights(*renamed, comp);
            ASSERT_GT(part.size(), 0u) << comp;
            fs::create_directories(dir / comp);
            auto st = write_safetensors((dir / comp / file).string(), part);
            ASSERT_TRUE(st) << st.error().to_string();
            std::ofstream(dir / comp / "config.json") << expect[std::string(comp) + "_config"].dump(1);
        }
    }
    const bool v = EASEL_FULLSIZE_V_PREDICTION;
    fs::create_directories(dir / "scheduler");  // the config the reference's diffusers cases ran with
    std::ofstream(dir / "scheduler" / "scheduler_config.json") << f->cases.metadata.at("scheduler_config");
    auto tok = easel::testing::write_clip_tokenizer_folder(EASEL_CLIP_VOCAB_GZ, (dir / "tokenizer").string());
    ASSERT_TRUE(tok) << tok.error().to_string();
    std::ofstream(dir / "model_index.json")
        << nlohmann::json{{"_class_name", "StableDiffusionPipeline"}, {"_diffusers_version", "0.30.3"},
                          {"feature_extractor", {nullptr, nullptr}}, {"safety_checker", {nullptr, nullptr}},
                          {"requires_safety_checker", false}, {"scheduler", {"diffusers", "PNDMScheduler"}},
                          {"text_encoder", {"transformers", "CLIPTextModel"}}, {"tokenizer", {"transformers", "CLIPTokenizer"}},
                          {"unet", {"diffusers", "UNet2DConditionModel"}}, {"vae", {"diffusers", "AutoencoderKL"}}}
               .dump(1);

    LoadOptions o;  // no --vocab and no --prediction: the folder says both
    auto m = load_sd_model(dir.string(), o);
    ASSERT_TRUE(m) << m.error().to_string();
    EXPECT_EQ((*m)->info.layout, CheckpointLayout::Diffusers);
    EXPECT_EQ((*m)->info.weight_dtype, DType::F16);
    EXPECT_EQ((*m)->info.unet.prediction, v ? Prediction::V : Prediction::Epsilon);
    std::printf("diffusers folder: %s\n", (*m)->describe().c_str());
    for (const std::string name : {"euler_a", "dpmpp2m_karras"}) {
        const auto j = nlohmann::json::parse(f->cases.metadata.at(name + ".params"));
        auto out = generate(**m, easel::testing::case_params(j, 64));
        ASSERT_TRUE(out) << out.error().to_string();
        easel::testing::expect_matches_case((*out)[0], f->cases, name, "diffusers folder " + name, kLatentTol);
    }
}
#endif

// --precision fast on the full-size network: PSNR >= 35 dB against fp32 for the same seed (issue 3's bound).
TEST(FullSizeFast, StaysCloseToFp32) {
    FullSize* f = fixture();
    if (!f) GTEST_SKIP() << "EASEL_SKIP_FULLSIZE is set";
    auto fast = load_sd_model(f->path, load_options(Precision::BF16));
    ASSERT_TRUE(fast) << fast.error().to_string();
    GenerateParams p;
    p.prompt = "a photo of a cat";
    p.width = p.height = 64;
    p.steps = 6;
    p.seed = 5;
    p.sampler = SamplerKind::DpmPP2M;
    auto a = generate(*f->fp32, p);
    auto b = generate(**fast, p);
    ASSERT_TRUE(a && b);
    double se = 0;
    const auto& pa = (*a)[0].image.pixels;
    const auto& pb = (*b)[0].image.pixels;
    for (size_t i = 0; i < pa.size(); ++i) se += double(int(pa[i]) - int(pb[i])) * double(int(pa[i]) - int(pb[i]));
    const double mse = se / double(pa.size());
    const double psnr = mse == 0 ? 99.0 : 10.0 * std::log10(255.0 * 255.0 / mse);
    std::printf("full-size fast vs fp32: PSNR %.2f dB (bound 35)\n", psnr);
    EXPECT_GE(psnr, 35.0);
}
