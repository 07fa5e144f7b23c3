// GenerateParams from a golden case's JSON (the "<name>.params" metadata the tools/reference scripts write):
// prompt, steps, cfg, seed, and when present negative, sampler and schedule; the size is the caller's. Also the
// goldens' init images and masks as the Images generate() takes, and the diffusers-mode scheduler of a case.
#pragma once

#include <cstdio>
#include <map>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/compare.h"
#include "io/weights.h"
#include "pipeline/generate.h"

namespace easel::testing {

// The tiny test model ("sd1" or "sdxl": tests/golden/data/pipeline_sd1 or pipeline_sdxl) and its spec's ModelInfo,
// read once (what LoRA and ControlNet files are matched against).
inline std::string tiny_model_folder(const std::string& model) {
    return std::string(EASEL_GOLDEN_DIR) + (model == "sdxl" ? "/pipeline_sdxl" : "/pipeline_sd1");
}
inline const ModelInfo& tiny_model_info(const std::string& model) {
    static std::map<std::string, ModelInfo> cache;
    auto it = cache.find(model);
    if (it == cache.end()) {
        auto s = load_model_spec(tiny_model_folder(model), LoadOptions{});
        EASEL_ASSERT(s.has_value(), s ? "" : s.error().to_string());
        it = cache.emplace(model, s->info).first;
    }
    return it->second;
}

inline GenerateParams case_params(const nlohmann::json& j, int side) {
    GenerateParams p;
    p.prompt = j["prompt"];
    if (j.contains("negative")) p.negative_prompt = j["negative"];
    p.steps = j["steps"];
    p.cfg_scale = j["cfg"];
    p.seed = j["seed"];
    p.width = p.height = side;
    if (j.contains("sampler")) p.sampler = parse_sampler_name(j["sampler"].get<std::string>()).value();
    if (j.contains("schedule")) p.schedule = parse_schedule_name(j["schedule"].get<std::string>()).value();
    return p;
}

// A golden init image, [1, 3, H, W] u8 (CHW), as an RGB Image.
inline Image image_from_golden(const Tensor& chw) {
    const int64_t h = chw.shape().dim(2), w = chw.shape().dim(3);
    Image img{int(w), int(h), 3, std::vector<uint8_t>(size_t(3 * h * w))};
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t i = 0; i < h * w; ++i) img.pixels[size_t(i * 3 + c)] = uint8_t(chw.item({0, c, i / w, i % w}));
    return img;
}

// A golden mask, [H, W] u8, as a one-channel Image.
inline Image mask_from_golden(const Tensor& mask) {
    const int64_t h = mask.shape().dim(0), w = mask.shape().dim(1);
    Image m{int(w), int(h), 1, std::vector<uint8_t>(size_t(h * w))};
    for (int64_t i = 0; i < h * w; ++i) m.pixels[size_t(i)] = uint8_t(mask.item({i / w, i % w}));
    return m;
}

// Diffusers mode for a case whose "scheduler" names a diffusers scheduler class the way the reference scripts do
// ("euler", "dpm++2m", ...; a "_karras" suffix = use_karras_sigmas).
inline void use_diffusers_scheduler(const nlohmann::json& j, GenerateParams& p) {
    p.schedule_from = ScheduleFrom::Diffusers;
    std::string sched = j["scheduler"];
    if (sched.size() > 7 && sched.compare(sched.size() - 7, 7, "_karras") == 0) {
        sched.resize(sched.size() - 7);
        p.schedule = ScheduleKind::Karras;
    }
    p.diffusers_scheduler = parse_diffusers_scheduler(sched).value();
}

// Our run of case `name` against its golden "<name>.latent" (within `latent_tol`) and "<name>.image" (the issue's
// bound: mean |diff| <= 1/255 and max |diff| <= 2/255, in 8-bit levels 1 and 2). `label` starts the printed lines.
inline void expect_matches_case(const GeneratedImage& got, const WeightSet& cases, const std::string& name,
                                const std::string& label, Tolerance latent_tol) {
    auto rl = compare(got.latent, *cases.find(name + ".latent"), latent_tol);
    std::printf("%-28s latent %s\n", label.c_str(), rl.summary().c_str());
    EXPECT_TRUE(rl.passed()) << rl.summary();
    const auto [mean, worst] = image_diff_levels(got.image, *cases.find(name + ".image"));
    std::printf("%-28s image mean |diff| %.4f levels, max %d levels (bounds 1 and 2)\n", label.c_str(), mean, worst);
    EXPECT_LE(mean, 1.0);
    EXPECT_LE(worst, 2);
}

// An SDXL case's request in diffusers mode (make_sdxl_goldens.py's params: prompt, prompt_2, negative, steps, cfg,
// seed, width, height, the size conditioning when set, the diffusers scheduler).
inline GenerateParams sdxl_case_params(const nlohmann::json& j) {
    GenerateParams p;
    p.prompt = j["prompt"];
    if (!j["prompt_2"].is_null()) p.prompt_2 = j["prompt_2"];
    if (!j["negative"].is_null()) p.negative_prompt = j["negative"];
    p.steps = j["steps"];
    p.cfg_scale = j["cfg"];
    p.seed = j["seed"];
    p.width = j["width"];
    p.height = j["height"];
    if (!j["original_size"].is_null()) {
        p.size_conditioning.original_height = j["original_size"][0];
        p.size_conditioning.original_width = j["original_size"][1];
    }
    if (!j["crops_coords_top_left"].is_null()) {
        p.size_conditioning.crop_top = j["crops_coords_top_left"][0];
        p.size_conditioning.crop_left = j["crops_coords_top_left"][1];
    }
    if (!j["target_size"].is_null()) {
        p.size_conditioning.target_height = j["target_size"][0];
        p.size_conditioning.target_width = j["target_size"][1];
    }
    use_diffusers_scheduler(j, p);
    return p;
}

// The request fields most scripts' params carry: prompt, negative, steps, cfg, seed, width, height.
inline GenerateParams sized_case_params(const nlohmann::json& j) {
    GenerateParams p;
    p.prompt = j["prompt"];
    p.negative_prompt = j["negative"];
    p.steps = j["steps"];
    p.cfg_scale = j["cfg"];
    p.seed = j["seed"];
    p.width = j["width"];
    p.height = j["height"];
    return p;
}

// A diffusers-mode case's request from the params the LoRA, LyCORIS and textual-inversion scripts write (the sized
// fields and the scheduler).
inline GenerateParams diffusers_case_params(const nlohmann::json& j) {
    GenerateParams p = sized_case_params(j);
    use_diffusers_scheduler(j, p);
    return p;
}

// A k-diffusion SDXL case's request (make_sdxl_kdiffusion_goldens.py's params: sampler and schedule names).
inline GenerateParams sdxl_kdiffusion_case_params(const nlohmann::json& j) {
    GenerateParams p = sized_case_params(j);
    p.sampler = parse_sampler_name(j["sampler"].get<std::string>()).value();
    p.schedule = parse_schedule_name(j["schedule"].get<std::string>()).value();
    return p;
}

// expect_matches_case for goldens whose "<name>.image" is [H, W, 3] u8 (the SDXL scripts' layout).
inline void expect_matches_hwc_case(const GeneratedImage& got, const WeightSet& cases, const std::string& name,
                                    const std::string& label, Tolerance latent_tol) {
    const Tensor* hwc = cases.find(name + ".image");
    const Tensor* latent = cases.find(name + ".latent");
    ASSERT_TRUE(hwc && latent) << name << ": no golden image or latent";
    Tensor chw = Tensor::empty({1, 3, hwc->size(0), hwc->size(1)});
    for (int64_t y = 0; y < hwc->size(0); ++y)
        for (int64_t x = 0; x < hwc->size(1); ++x)
            for (int64_t ch = 0; ch < 3; ++ch)
                chw.data<float>()[(ch * hwc->size(0) + y) * hwc->size(1) + x] = hwc->item({y, x, ch});
    WeightSet expect;
    ASSERT_TRUE(expect.add(name + ".latent", *latent));
    ASSERT_TRUE(expect.add(name + ".image", chw));
    expect_matches_case(got, expect, name, label, latent_tol);
}

}  // namespace easel::testing
