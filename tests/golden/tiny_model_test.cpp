// The embedded model (models/tiny, trained by tools/train/train_tiny.py) end to end:
//  - easel reproduces the PyTorch pipeline that trained it (diffusers' StableDiffusionPipeline, Euler, 20 steps,
//    CFG 6, fp32 on the fp16 weights; tools/train/export.py wrote tests/golden/data/tiny_reference.safetensors);
//  - the single file and the diffusers folder give the same image;
//  - it draws what held-out captions ask for (combinations training never saw, tools/train/heldout.json), as
//    judged by the image analysis of tools/train/data.py (tests/common/scene_analysis), and guidance matters:
//    with an empty prompt the same analysis scores near chance.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "common/compare.h"
#include "common/scene_analysis.h"
#include "io/safetensors.h"
#include "pipeline/families/sd.h"
#include "pipeline/generate.h"

using namespace easel;

namespace {
const std::string kFolder = std::string(EASEL_SOURCE_DIR) + "/models/tiny";
const std::string kSingle = kFolder + "/easel-tiny.safetensors";
const std::string kReference = std::string(EASEL_GOLDEN_DIR) + "/tiny_reference.safetensors";
const std::string kHeldOut = std::string(EASEL_SOURCE_DIR) + "/tools/train/heldout.json";

const SDModel& model() {
    static std::unique_ptr<SDModel> m = [] {
        auto r = load_sd_model(kFolder, LoadOptions{});
        EASEL_ASSERT(r.has_value(), r ? "" : r.error().to_string());
        return std::move(r).value();
    }();
    return *m;
}

struct Scene {
    std::string caption, colour, shape, size, position, background;
};

std::vector<Scene> held_out() {
    std::ifstream in(kHeldOut);
    EASEL_ASSERT(in.good(), "cannot read " + kHeldOut);
    const auto j = nlohmann::json::parse(in);
    std::vector<Scene> out;
    for (const auto& s : j["scenes"])
        out.push_back({s["caption"], s["colour"], s["shape"], s["size"], s["position"], s["background"]});
    return out;
}

struct Scores {
    int n = 0;
    std::map<std::string, int> hits;
    double frac(const std::string& k) const { return n ? double(hits.at(k)) / n : 0.0; }
};

// Generates every held-out scene with `seeds` seeds (prompt = its caption, or `prompt_override`) at the CLI's
// defaults (euler_a, 20 steps, the model's recommended CFG scale) or at guidance `cfg`, and scores the pictures
// against what the caption asked for.
Scores score_held_out(int seeds, const std::optional<std::string>& prompt_override, std::optional<double> cfg = {}) {
    Scores s;
    for (const char* k : {"colour", "shape", "size", "position", "background"}) s.hits[k] = 0;
    const std::vector<Scene> scenes = held_out();
    for (size_t i = 0; i < scenes.size(); ++i)
        for (int k = 0; k < seeds; ++k) {
            GenerateParams p;  // the defaults `easel generate -p ...` uses: euler_a, 20 steps
            p.cfg_scale = cfg.value_or(model().default_cfg_scale());
            p.prompt = prompt_override.value_or(scenes[i].caption);
            p.width = p.height = 32;
            p.seed = int64_t(1000 + 7 * i + k);
            auto r = generate(model(), p);
            EASEL_ASSERT(r.has_value(), r ? "" : r.error().to_string());
            const easel::testing::SceneAttributes a = easel::testing::analyse_scene((*r)[0].image);
            ++s.n;
            s.hits["colour"] += a.colour == scenes[i].colour;
            s.hits["shape"] += a.shape == scenes[i].shape;
            s.hits["size"] += a.size == scenes[i].size;
            s.hits["position"] += a.position == scenes[i].position;
            s.hits["background"] += a.background == scenes[i].background;
        }
    return s;
}

}  // namespace

TEST(TinyModel, MatchesThePyTorchPipelineThatTrainedIt) {
    auto ref = read_safetensors(kReference);
    ASSERT_TRUE(ref) << ref.error().to_string();
    const auto prompts = nlohmann::json::parse(ref->metadata.at("prompts"));
    const int steps = std::stoi(ref->metadata.at("steps"));
    const double cfg = std::stod(ref->metadata.at("guidance_scale"));
    ASSERT_GE(prompts.size(), 4u);
    for (const auto& pr : prompts) {
        const int i = pr["index"];
        GenerateParams p;
        p.prompt = pr["prompt"];
        p.seed = pr["seed"];
        p.steps = steps;
        p.cfg_scale = cfg;
        p.width = p.height = 32;
        p.schedule_from = ScheduleFrom::Diffusers;
        p.diffusers_scheduler = DiffusersScheduler::Euler;
        auto r = generate(model(), p);
        ASSERT_TRUE(r) << r.error().to_string();
        const std::string k = std::to_string(i);
        auto rl = easel::testing::compare((*r)[0].latent, *ref->find(k + ".latents_final"), {.atol = 1e-3, .rtol = 1e-3});
        std::printf("[%d] '%s' latent %s\n", i, p.prompt.c_str(), rl.summary().c_str());
        EXPECT_TRUE(rl.passed()) << rl.summary();
        // The image against the reference's float image in [0, 1]: the bound, mean |diff| <= 1/255.
        const Tensor& img = *ref->find(k + ".image");  // [1, 3, 32, 32] f32
        const Image& got = (*r)[0].image;
        double sum = 0, worst = 0;
        for (int64_t c = 0; c < 3; ++c)
            for (int64_t j = 0; j < 32 * 32; ++j) {
                const double d = std::abs(got.pixels[size_t(j * 3 + c)] / 255.0 - double(img.item({0, c, j / 32, j % 32})));
                sum += d;
                worst = std::max(worst, d);
            }
        const double mean = sum / (3 * 32 * 32);
        std::printf("[%d] image mean |diff| %.5f (bound %.5f), max %.5f\n", i, mean, 1.0 / 255, worst);
        EXPECT_LE(mean, 1.0 / 255);
    }
}

// Issue 5's quality bound for --precision fast (bf16 GEMM operands, f32 accumulation) on the embedded model: the
// image within PSNR 35 dB of fp32 mode for the same seed, at the CLI's defaults (euler_a, 20 steps, CFG 7).
TEST(TinyModel, FastModeStaysCloseToFp32) {
    LoadOptions o;
    o.precision = Precision::BF16;
    auto fast = load_sd_model(kFolder, o);
    ASSERT_TRUE(fast) << fast.error().to_string();
    const char* prompts[] = {"a large purple circle at the bottom on an orange background", "a small green triangle at the top, white background",
                             "blue background with a large yellow square on the left", "a white square on the right, black background"};
    for (int i = 0; i < 4; ++i) {
        GenerateParams p;
        p.prompt = prompts[i];
        p.seed = 100 + i;
        p.width = p.height = 32;
        auto a = generate(model(), p);
        auto b = generate(**fast, p);
        ASSERT_TRUE(a && b);
        const auto& pa = (*a)[0].image.pixels;
        const auto& pb = (*b)[0].image.pixels;
        ASSERT_EQ(pa.size(), pb.size());
        double se = 0;
        for (size_t k = 0; k < pa.size(); ++k) se += double(int(pa[k]) - int(pb[k])) * double(int(pa[k]) - int(pb[k]));
        const double mse = se / double(pa.size());
        const double psnr = mse == 0 ? 99.0 : 10.0 * std::log10(255.0 * 255.0 / mse);
        std::printf("fast vs fp32, '%s' seed %lld: PSNR %.1f dB\n", p.prompt.c_str(), static_cast<long long>(p.seed), psnr);
        EXPECT_GE(psnr, 35.0) << p.prompt;
        // The infotext says which precision ran (only bf16 is named: fp32 is A1111's own).
        EXPECT_NE((*b)[0].infotext.find("Precision: bf16"), std::string::npos) << (*b)[0].infotext;
        EXPECT_EQ((*a)[0].infotext.find("Precision:"), std::string::npos) << (*a)[0].infotext;
    }
}

TEST(TinyModel, SingleFileGivesTheSameImageAsTheFolder) {
    auto single = load_sd_model(kSingle, LoadOptions{});
    ASSERT_TRUE(single) << single.error().to_string();
    EXPECT_EQ((*single)->info.layout, CheckpointLayout::LdmSingleFile);
    GenerateParams p;
    p.prompt = "a small green triangle at the top, white background";
    p.width = p.height = 32;
    p.seed = 3;
    auto a = generate(**single, p);
    auto b = generate(model(), p);
    ASSERT_TRUE(a && b);
    EXPECT_EQ((*a)[0].image.pixels, (*b)[0].image.pixels);
}

// generate_once (what `easel generate` runs) gives generate()'s image while dropping the text encoder and the
// UNet as it goes; the spent model then refuses to generate, with a message that says why.
TEST(TinyModel, GenerateOnceGivesTheSameImageAndSpendsTheModel) {
    auto fresh = load_sd_model(kSingle, LoadOptions{});
    ASSERT_TRUE(fresh) << fresh.error().to_string();
    GenerateParams p;
    p.prompt = "a large purple circle at the bottom on an orange background";
    p.width = p.height = 32;
    p.seed = 11;
    p.batch_count = 2;  // the UNet must survive the first image
    auto once = generate_once(**fresh, p);
    auto plain = generate(model(), p);
    ASSERT_TRUE(once && plain) << (once ? plain.error().to_string() : once.error().to_string());
    ASSERT_EQ(once->size(), 2u);
    for (size_t i = 0; i < 2; ++i) EXPECT_EQ((*once)[i].image.pixels, (*plain)[i].image.pixels) << "image " << i;
    EXPECT_TRUE((*fresh)->spent);
    auto again = generate(**fresh, p);
    ASSERT_FALSE(again);
    EXPECT_NE(again.error().to_string().find("load it again"), std::string::npos) << again.error().to_string();
}

// The acceptance figures (issue 4): colour >= 90%, shape >= 80%, position >= 80%, background >= 90% over at
// least 100 caption/seed pairs of combinations training never saw, at the CLI's defaults: euler_a, 20 steps and the
// model's recommended CFG scale (3, chosen by tools/train/export.py on training-combination captions, never on
// these). The shipped model (2026-11-27) measured colour 100%, shape 81.2%, position 100%, background 100%.
TEST(TinyModel, DrawsWhatHeldOutCaptionsAsk) {
    ASSERT_TRUE(model().defaults.cfg_scale.has_value()) << "models/tiny/easel_defaults.json is missing";
    const auto t0 = std::chrono::steady_clock::now();
    const Scores s = score_held_out(2, std::nullopt);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("held-out captions, CFG %g, %d images (%.1f ms each): colour %.1f%%, shape %.1f%%, size %.1f%%, "
                "position %.1f%%, background %.1f%%\n",
                model().default_cfg_scale(), s.n, 1000 * secs / s.n, 100 * s.frac("colour"), 100 * s.frac("shape"),
                100 * s.frac("size"), 100 * s.frac("position"), 100 * s.frac("background"));
    ASSERT_GE(s.n, 100);
    EXPECT_GE(s.frac("colour"), 0.90);
    EXPECT_GE(s.frac("shape"), 0.80);
    EXPECT_GE(s.frac("position"), 0.80);
    EXPECT_GE(s.frac("background"), 0.90);
}

// At SD's usual CFG 7 (what a user gets with --cfg-scale 7) guidance pinches this small model's squares, which the
// fill-ratio analysis then reads as circles: shape is short of 80% there (measured 2026-11-27: 70.6%; the previous model 73.8%) and only
// guarded against regression; colour, position and background still meet the bounds.
TEST(TinyModel, AtCfg7StillDrawsColourPositionAndBackground) {
    const Scores s = score_held_out(2, std::nullopt, 7.0);
    std::printf("held-out captions, CFG 7, %d images: colour %.1f%%, shape %.1f%%, size %.1f%%, position %.1f%%, "
                "background %.1f%%\n",
                s.n, 100 * s.frac("colour"), 100 * s.frac("shape"), 100 * s.frac("size"), 100 * s.frac("position"),
                100 * s.frac("background"));
    EXPECT_GE(s.frac("colour"), 0.90);
    EXPECT_GE(s.frac("shape"), 0.65);
    EXPECT_GE(s.frac("position"), 0.80);
    EXPECT_GE(s.frac("background"), 0.90);
}

// Folder and single file carry the same recommended guidance (easel_defaults.json, easel.default_cfg_scale).
TEST(TinyModel, CarriesItsRecommendedGuidanceInBothForms) {
    auto single = load_sd_model(kSingle, LoadOptions{});
    ASSERT_TRUE(single) << single.error().to_string();
    ASSERT_TRUE(model().defaults.cfg_scale && (*single)->defaults.cfg_scale);
    EXPECT_EQ(*model().defaults.cfg_scale, *(*single)->defaults.cfg_scale);
    EXPECT_GT(*model().defaults.cfg_scale, 1.0) << "guidance must still act";
    EXPECT_LT(*model().defaults.cfg_scale, 7.0);
}

// With an empty prompt the model draws some scene from its training family; the analysis then agrees with the
// held-out captions about as often as chance (colour 1/8, shape 1/3, position 1/5, background 1/8 if the model
// picks uniformly). Far below the captioned scores: the text is what steers it.
TEST(TinyModel, GuidanceMatters) {
    const Scores s = score_held_out(1, std::string());
    std::printf("empty prompt, %d images: colour %.1f%%, shape %.1f%%, position %.1f%%, background %.1f%% "
                "(chance about 12.5, 33, 20, 12.5)\n",
                s.n, 100 * s.frac("colour"), 100 * s.frac("shape"), 100 * s.frac("position"), 100 * s.frac("background"));
    EXPECT_LE(s.frac("colour"), 0.35);
    EXPECT_LE(s.frac("background"), 0.35);
    EXPECT_LE(s.frac("position"), 0.45);
    EXPECT_LE(s.frac("shape"), 0.60);
}
