// ControlNets against diffusers 0.30.3 (tools/reference/make_controlnet_goldens.py): random-weight ControlNets
// made from the tiny SD 1.x and SDXL UNets (ControlNetModel.from_unet, every weight redrawn), as a diffusers folder
// and in the original layout (with and without the control_model. prefix).
//  - Components: ControlNetModel.forward on fixed inputs (a non-square latent), its residuals and the control
//    image's embedding; guess mode's scales.
//  - Pipelines: StableDiffusion[XL]ControlNetPipeline with the Euler scheduler: one ControlNet, a guidance window,
//    guess mode, two at once, a control image of another size (diffusers' LANCZOS resize), no CFG.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/golden.h"
#include "common/golden_case.h"
#include "io/image.h"
#include "io/image_resize.h"
#include "io/model_file.h"
#include "pipeline/controlnet.h"
#include "pipeline/ip_adapter.h"
#include "pipeline/generate.h"
#include "pipeline/model.h"

using namespace easel;
using easel::testing::golden_file;
using easel::testing::golden_tensor;

namespace {

const std::string kData = std::string(EASEL_GOLDEN_DIR) + "/";
const char* const kGolden = "controlnet_cases.safetensors";

const ModelInfo& info_of(const std::string& model) { return easel::testing::tiny_model_info(model); }
std::string model_folder(const std::string& model) { return easel::testing::tiny_model_folder(model); }

std::vector<std::string> list_of(const char* key) {
    const auto j = nlohmann::json::parse(golden_file(kGolden).metadata.at(key));
    return j.get<std::vector<std::string>>();
}

}  // namespace

class ControlNetComponent : public ::testing::TestWithParam<std::string> {};

TEST_P(ControlNetComponent, MatchesDiffusers) {
    const std::string name = GetParam();
    const WeightSet& g = golden_file(kGolden);
    const nlohmann::json j = nlohmann::json::parse(g.metadata.at(name + ".component"));
    const std::string model = j["controlnet"].get<std::string>().rfind("sdxl", 0) == 0 ? "sdxl" : "sd1";
    auto net = load_controlnet(kData + j["file"].get<std::string>(), info_of(model), Precision::F32);
    ASSERT_TRUE(net) << net.error().to_string();
    BufferPool pool;
    Ctx c{&pool};
    const Tensor hint = (*net)->net.embed_condition(c, golden_tensor(g, name + ".controlnet_cond"));
    easel::testing::expect_close(hint, golden_tensor(g, name + ".cond_embedding"), {.atol = 1e-5, .rtol = 1e-4},
                                 name + ".cond_embedding");
    std::optional<AddedConditioning> added;
    if (g.contains(name + ".text_embeds"))
        added = AddedConditioning{golden_tensor(g, name + ".text_embeds"), golden_tensor(g, name + ".time_ids")};
    const ControlResiduals r = (*net)->net.forward(c, golden_tensor(g, name + ".sample"), j["timestep"].get<float>(),
                                                   golden_tensor(g, name + ".encoder_hidden_states"), hint,
                                                   added ? &*added : nullptr, j["conditioning_scale"].get<float>(),
                                                   j["guess_mode"].get<bool>());
    ASSERT_FALSE(r.down.empty());
    for (size_t i = 0; i < r.down.size(); ++i) {
        const std::string n = fmt::format("{}.down.{}", name, i);
        ASSERT_TRUE(g.contains(n)) << n << ": easel made more residuals than diffusers";
        easel::testing::expect_close(r.down[i], golden_tensor(g, n), {.atol = 1e-4, .rtol = 1e-4}, n);
    }
    EXPECT_FALSE(g.contains(fmt::format("{}.down.{}", name, r.down.size()))) << "diffusers made more residuals";
    easel::testing::expect_close(r.mid, golden_tensor(g, name + ".mid"), {.atol = 1e-4, .rtol = 1e-4}, name + ".mid");
}

INSTANTIATE_TEST_SUITE_P(Goldens, ControlNetComponent, ::testing::ValuesIn(list_of("components")),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// The same weights in three layouts load to the same network: the diffusers folder, the original layout with the
// control_model. prefix (sd1_a_ldm) and, for another ControlNet, without it (sd1_b_ldm, checked by its own case).
TEST(ControlNetFiles, OriginalLayoutEqualsTheDiffusersFolder) {
    const WeightSet& g = golden_file(kGolden);
    const std::string name = "cn_sd1_a";
    BufferPool pool;
    Ctx c{&pool};
    std::vector<Tensor> mids;
    for (const char* file : {"controlnet/sd1_a", "controlnet/sd1_a_ldm.safetensors"}) {
        auto net = load_controlnet(kData + file, info_of("sd1"), Precision::F32);
        ASSERT_TRUE(net) << net.error().to_string();
        const Tensor hint = (*net)->net.embed_condition(c, golden_tensor(g, name + ".controlnet_cond"));
        mids.push_back((*net)->net.forward(c, golden_tensor(g, name + ".sample"), 421.0f,
                                           golden_tensor(g, name + ".encoder_hidden_states"), hint, nullptr, 1.0f, false)
                           .mid.clone());
    }
    EXPECT_TRUE(easel::testing::compare(mids[0], mids[1], {.atol = 0, .rtol = 0}).passed());
}

TEST(ControlNetFiles, RefusesAControlNetOfAnotherFamily) {
    auto net = load_controlnet(kData + "controlnet/sdxl_a", info_of("sd1"), Precision::F32);
    ASSERT_FALSE(net);
    EXPECT_NE(net.error().message().find("does not fit the model"), std::string::npos) << net.error().to_string();
    auto unet = load_controlnet(kData + "pipeline_sd1/unet/diffusion_pytorch_model.safetensors", info_of("sd1"), Precision::F32);
    ASSERT_FALSE(unet);
    EXPECT_NE(unet.error().to_string().find("not a ControlNet"), std::string::npos) << unet.error().to_string();
}

// diffusers' control image preparation for an image of another size (49x35 -> 32x32): PIL's LANCZOS, / 255.
TEST(ControlNetImage, ResizedAsDiffusersResizesIt) {
    const WeightSet& g = golden_file(kGolden);
    auto img = read_image(kData + "controlnet/control_c.png");
    ASSERT_TRUE(img) << img.error().to_string();
    const Tensor t = prepare_control_image(*img, 32, 32);
    easel::testing::expect_close(t, golden_tensor(g, "sd1_cn_resize.control_input"), {.atol = 0, .rtol = 0},
                                 "sd1_cn_resize.control_input");
}

// A1111's "Resize and Fill": scaled to fit inside (49x35 -> 32x23 at 32x32: k = 32/49, round(35k) = 23), centred
// (rows 4..26), the rest the median colour of the image's border.
TEST(ControlNetImage, ResizeAndFillCentresOnTheBorderMedian) {
    auto img = read_image(kData + "controlnet/control_c.png");
    ASSERT_TRUE(img) << img.error().to_string();
    const Image rgb = to_rgb(*img);
    const Tensor t = prepare_control_image(*img, 32, 32, ControlResize::Fill);
    const Image inner = resize_pillow(rgb, 32, 23, ResampleFilter::Lanczos);
    for (int k = 0; k < 3; ++k) {
        std::vector<int> border;
        for (int x = 0; x < rgb.width; ++x) border.push_back(rgb.pixels[size_t(x) * 3 + size_t(k)]);
        for (int x = 0; x < rgb.width; ++x) border.push_back(rgb.pixels[(size_t(rgb.height - 1) * size_t(rgb.width) + size_t(x)) * 3 + size_t(k)]);
        for (int y = 0; y < rgb.height; ++y) border.push_back(rgb.pixels[size_t(y) * size_t(rgb.width) * 3 + size_t(k)]);
        for (int y = 0; y < rgb.height; ++y) border.push_back(rgb.pixels[(size_t(y) * size_t(rgb.width) + size_t(rgb.width - 1)) * 3 + size_t(k)]);
        std::sort(border.begin(), border.end());
        const int median = (border[border.size() / 2 - 1] + border[border.size() / 2]) / 2;  // an even count
        for (int y = 0; y < 32; ++y)
            for (int x = 0; x < 32; ++x) {
                const float got = t.data<float>()[(size_t(k) * 32 + size_t(y)) * 32 + size_t(x)];
                const int want = (y >= 4 && y < 27) ? inner.pixels[(size_t(y - 4) * 32 + size_t(x)) * 3 + size_t(k)] : median;
                ASSERT_EQ(got, float(want) / 255.0f) << "channel " << k << " at " << x << "," << y;
            }
    }
}

// The inpaint preprocessor (diffusers' make_inpaint_condition, A1111's inpaint_global_harmonious): the image in
// [0, 1], -1 where the mask is above 0.5; the mask from the unit, the image's alpha, or the generation's.
TEST(ControlNetImage, InpaintHintMarksTheMaskWithMinusOne) {
    auto init = read_image(kData + "controlnet/more_init_sd1.png");
    auto mask = read_image(kData + "controlnet/more_mask_sd1.png");
    ASSERT_TRUE(init && mask);
    const Tensor plain = prepare_control_image(*init, 32, 32);
    ControlUnit u{.image = *init, .preprocessor = {.module = "inpaint"}};
    auto no_mask = control_hint(u, 32, 32);
    ASSERT_FALSE(no_mask);
    EXPECT_NE(no_mask.error().to_string().find("needs a mask"), std::string::npos) << no_mask.error().to_string();
    auto from_generation = control_hint(u, 32, 32, *mask);
    ASSERT_TRUE(from_generation) << from_generation.error().to_string();
    int masked = 0;
    for (int64_t p = 0; p < 32 * 32; ++p) {
        const bool m = mask->pixels[size_t(p) * size_t(mask->channels)] > 127;  // at the output size: no resize
        masked += m;
        for (int64_t k = 0; k < 3; ++k)
            ASSERT_EQ(from_generation->data<float>()[k * 1024 + p], m ? -1.0f : plain.data<float>()[k * 1024 + p]) << p;
    }
    EXPECT_GT(masked, 50);
    EXPECT_LT(masked, 1000);
    u.mask = *mask;
    auto from_unit = control_hint(u, 32, 32);
    ASSERT_TRUE(from_unit);
    EXPECT_TRUE(easel::testing::compare(*from_unit, *from_generation, {.atol = 0, .rtol = 0}).passed());
    // The extension's canvas: transparent (alpha <= 127) is what is repainted.
    Image rgba = to_rgb(*init);
    rgba.channels = 4;
    rgba.pixels.clear();
    const Image rgb = to_rgb(*init);
    for (size_t p = 0; p < size_t(32 * 32); ++p) {
        for (size_t k = 0; k < 3; ++k) rgba.pixels.push_back(rgb.pixels[p * 3 + k]);
        rgba.pixels.push_back(mask->pixels[p * size_t(mask->channels)] > 127 ? 0 : 255);
    }
    auto from_alpha = control_hint({.image = rgba, .preprocessor = {.module = "inpaint_global_harmonious"}}, 32, 32);
    ASSERT_TRUE(from_alpha) << from_alpha.error().to_string();
    EXPECT_TRUE(easel::testing::compare(*from_alpha, *from_generation, {.atol = 0, .rtol = 0}).passed());
    EXPECT_FALSE(validate_preprocessor({.module = "inpaint_only"}));
}

class ControlNetCase : public ::testing::TestWithParam<std::string> {};

TEST_P(ControlNetCase, MatchesDiffusers) {
    const std::string name = GetParam();
    const WeightSet& cases = golden_file(kGolden);
    const nlohmann::json j = nlohmann::json::parse(cases.metadata.at(name + ".params"));
    const std::string model = j["model"];
    auto m = load_model(model_folder(model), LoadOptions{});
    ASSERT_TRUE(m) << m.error().to_string();
    GenerateParams p = easel::testing::diffusers_case_params(j);
    std::string what;
    for (const auto& u : j["controlnets"]) {
        auto net = load_controlnet(kData + u["file"].get<std::string>(), (*m)->info, Precision::F32);
        ASSERT_TRUE(net) << net.error().to_string();
        auto img = read_image(kData + u["image"].get<std::string>());
        ASSERT_TRUE(img) << img.error().to_string();
        p.control.push_back({.net = *net, .image = *img, .scale = u["scale"].get<double>(), .start = u["start"].get<double>(),
                             .end = u["end"].get<double>(),
                             .mode = j["guess_mode"].get<bool>() ? ControlMode::ControlNetMoreImportant : ControlMode::Balanced});
        what += fmt::format("{} x{} [{}, {}]; ", u["file"].get<std::string>(), u["scale"].get<double>(),
                            u["start"].get<double>(), u["end"].get<double>());
    }
    std::printf("%s: %s%s\n", name.c_str(), what.c_str(), j["guess_mode"].get<bool>() ? "guess mode" : "");
    auto out = generate(**m, p);
    ASSERT_TRUE(out) << out.error().to_string();
    EXPECT_NE((*out)[0].infotext.find("ControlNet 0: \"Module: none, Model: "), std::string::npos) << (*out)[0].infotext;
    const easel::testing::Tolerance tol{.atol = 2e-3, .rtol = 2e-4};
    if (cases.find(name + ".image")->rank() == 3) easel::testing::expect_matches_hwc_case((*out)[0], cases, name, name, tol);
    else easel::testing::expect_matches_case((*out)[0], cases, name, name, tol);
}

INSTANTIATE_TEST_SUITE_P(Goldens, ControlNetCase, ::testing::ValuesIn(list_of("cases")),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// ControlNets with the other tasks, against tools/reference/make_controlnet_more_goldens.py: diffusers'
// StableDiffusion[XL]ControlNetImg2ImgPipeline (the guidance window counted over the steps that run),
// StableDiffusionControlNetInpaintPipeline on the 4-channel UNet (latent blending), and a ControlNet with an
// IP-Adapter (StableDiffusionControlNetPipeline + load_ip_adapter: the ControlNet reads the text alone).
class ControlNetTaskCase : public ::testing::TestWithParam<std::string> {};

TEST_P(ControlNetTaskCase, MatchesDiffusers) {
    const std::string name = GetParam();
    const WeightSet& cases = golden_file("controlnet_more_cases.safetensors");
    const nlohmann::json j = nlohmann::json::parse(cases.metadata.at(name + ".params"));
    auto m = load_model(model_folder(j["model"]), LoadOptions{});
    ASSERT_TRUE(m) << m.error().to_string();
    GenerateParams p = easel::testing::diffusers_case_params(j);
    if (j["pipeline"] != "txt2img") {
        auto init = read_image(kData + j["init_image"].get<std::string>());
        ASSERT_TRUE(init) << init.error().to_string();
        p.init_image = *init;
        p.denoising_strength = j["strength"].get<double>();
    }
    if (j["pipeline"] == "inpaint") {
        auto mask = read_image(kData + j["mask"].get<std::string>());
        ASSERT_TRUE(mask) << mask.error().to_string();
        p.mask = *mask;
    }
    for (const auto& u : j["controlnets"]) {
        auto net = load_controlnet(kData + u["file"].get<std::string>(), (*m)->info, Precision::F32);
        ASSERT_TRUE(net) << net.error().to_string();
        auto img = read_image(kData + u["image"].get<std::string>());
        ASSERT_TRUE(img) << img.error().to_string();
        p.control.push_back({.net = *net, .image = *img, .scale = u["scale"].get<double>(), .start = u["start"].get<double>(),
                             .end = u["end"].get<double>()});
    }
    if (j.contains("adapters") && j["adapters"].is_array() && !j["adapters"].empty()) {
        auto enc = load_image_encoder(kData + j["image_encoder"].get<std::string>(), Precision::F32);
        ASSERT_TRUE(enc) << enc.error().to_string();
        for (const auto& a : j["adapters"]) {
            auto adapter = load_ip_adapter(kData + a["file"].get<std::string>(), (*m)->info, Precision::F32);
            ASSERT_TRUE(adapter) << adapter.error().to_string();
            IPAdapterUnit unit{.adapter = *adapter, .encoder = *enc, .scale = a["scale"].get<double>()};
            for (const auto& im : a["images"]) {
                auto img = read_image(kData + im.get<std::string>());
                ASSERT_TRUE(img) << img.error().to_string();
                unit.images.push_back(*img);
            }
            p.ip_adapters.push_back(std::move(unit));
        }
    }
    std::printf("%s: %s, %zu ControlNet(s), %zu IP-Adapter(s)\n", name.c_str(), j["pipeline"].get<std::string>().c_str(),
                p.control.size(), p.ip_adapters.size());
    auto out = generate(**m, p);
    ASSERT_TRUE(out) << out.error().to_string();
    const easel::testing::Tolerance tol{.atol = 2e-3, .rtol = 2e-4};
    if (cases.find(name + ".image")->rank() == 3) easel::testing::expect_matches_hwc_case((*out)[0], cases, name, name, tol);
    else easel::testing::expect_matches_case((*out)[0], cases, name, name, tol);
}

INSTANTIATE_TEST_SUITE_P(Goldens, ControlNetTaskCase,
                         ::testing::ValuesIn(nlohmann::json::parse(golden_file("controlnet_more_cases.safetensors").metadata.at("cases"))
                                                 .get<std::vector<std::string>>()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// AUTOMATIC1111's ControlNet extension in k-diffusion mode, restated by tools/reference/make_controlnet_a1111_goldens.py
// (the extension's rules on the tiny SD 1.x pipeline with k-diffusion's samplers): the guidance window as its
// step counter sees it (inclusive, the previous step for a step's first call, Heun's second call), "My prompt is
// more important" and "ControlNet is more important" (0.825^(12 - i) per residual; the latter on the prompt's half).
class ControlNetA1111Case : public ::testing::TestWithParam<std::string> {};

TEST_P(ControlNetA1111Case, MatchesTheExtensionsRules) {
    const std::string name = GetParam();
    const WeightSet& cases = golden_file("controlnet_a1111_cases.safetensors");
    const nlohmann::json j = nlohmann::json::parse(cases.metadata.at(name + ".params"));
    auto m = load_model(model_folder(j["model"]), LoadOptions{});
    ASSERT_TRUE(m) << m.error().to_string();
    GenerateParams p = easel::testing::case_params(j, j["width"].get<int>());
    for (const auto& u : j["controlnets"]) {
        auto net = load_controlnet(kData + u["file"].get<std::string>(), (*m)->info, Precision::F32);
        ASSERT_TRUE(net) << net.error().to_string();
        auto img = read_image(kData + u["image"].get<std::string>());
        ASSERT_TRUE(img) << img.error().to_string();
        const int mode = u["control_mode"].get<int>();
        p.control.push_back({.net = *net, .image = *img, .scale = u["scale"].get<double>(), .start = u["start"].get<double>(),
                             .end = u["end"].get<double>(),
                             .mode = mode == 0 ? ControlMode::Balanced
                                     : mode == 1 ? ControlMode::PromptMoreImportant : ControlMode::ControlNetMoreImportant});
    }
    std::printf("%s: %s, %s, window %g..%g, %d active model calls in the reference\n", name.c_str(),
                j["sampler"].get<std::string>().c_str(), j["control_mode_name"].get<std::string>().c_str(),
                j["start"].get<double>(), j["end"].get<double>(), j["active_calls"].get<int>());
    auto out = generate(**m, p);
    ASSERT_TRUE(out) << out.error().to_string();
    EXPECT_NE((*out)[0].infotext.find(fmt::format("Control Mode: {}", j["control_mode_name"].get<std::string>())),
              std::string::npos) << (*out)[0].infotext;
    easel::testing::expect_matches_case((*out)[0], cases, name, name, {.atol = 2e-3, .rtol = 2e-4});
}

INSTANTIATE_TEST_SUITE_P(Goldens, ControlNetA1111Case,
                         ::testing::ValuesIn(nlohmann::json::parse(golden_file("controlnet_a1111_cases.safetensors").metadata.at("cases"))
                                                 .get<std::vector<std::string>>()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });
