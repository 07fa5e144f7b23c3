// IP-Adapter against diffusers 0.30.3 and transformers 4.40 (tools/reference/make_ip_adapter_goldens.py): a tiny
// random CLIPVisionModelWithProjection (gelu, and a quick_gelu twin), IP-Adapter and IP-Adapter Plus files in the
// original h94 layout (.safetensors, and the Plus one also as a .bin of nested dicts) for the tiny SD 1.x and
// SDXL UNets.
//  - CLIPImageProcessor: shortest-side BICUBIC resize, centre crop, CLIP normalisation (RGB, RGBA, gray).
//  - The image encoder's image_embeds and penultimate hidden states; the projections (plain, Plus resampler).
//  - Pipelines: one adapter, Plus with two images, two adapters at once, no CFG, SDXL.
#include <gtest/gtest.h>

#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/golden.h"
#include "common/golden_case.h"
#include "io/image.h"
#include "io/model_file.h"
#include "pipeline/generate.h"
#include "pipeline/ip_adapter.h"
#include "pipeline/model.h"

using namespace easel;
using easel::testing::golden_file;
using easel::testing::golden_tensor;

namespace {

const std::string kData = std::string(EASEL_GOLDEN_DIR) + "/";
const char* const kGolden = "ip_adapter_cases.safetensors";

nlohmann::json meta(const std::string& key) { return nlohmann::json::parse(golden_file(kGolden).metadata.at(key)); }

std::vector<std::string> list_of(const char* key) { return meta(key).get<std::vector<std::string>>(); }

Image image_at(const std::string& rel) {
    auto img = read_image(kData + rel);
    EXPECT_TRUE(img) << img.error().to_string();
    return img ? *img : Image{};
}

std::shared_ptr<const ImageEncoderFile> encoder_at(const std::string& rel) {
    auto e = load_image_encoder(kData + rel, Precision::F32);
    EXPECT_TRUE(e) << e.error().to_string();
    return e ? *e : nullptr;
}

}  // namespace

class IPAdapterPreprocess : public ::testing::TestWithParam<std::string> {};

// transformers' CLIPImageProcessor, bit for bit.
TEST_P(IPAdapterPreprocess, MatchesCLIPImageProcessor) {
    const std::string name = "pre." + GetParam();
    const nlohmann::json j = meta(name + ".params");
    const Image img = image_at(j["image"].get<std::string>());
    const Tensor t = prepare_clip_image(img, j["size"].get<int>());
    easel::testing::expect_close(t, golden_tensor(golden_file(kGolden), name), {.atol = 0, .rtol = 0}, name);
}

INSTANTIATE_TEST_SUITE_P(Goldens, IPAdapterPreprocess, ::testing::ValuesIn(list_of("pre")),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

class IPAdapterVision : public ::testing::TestWithParam<std::string> {};

TEST_P(IPAdapterVision, MatchesCLIPVisionModelWithProjection) {
    const std::string name = GetParam();  // vis.<encoder>
    const WeightSet& g = golden_file(kGolden);
    const nlohmann::json j = meta(name + ".params");
    auto enc = encoder_at(j["encoder"].get<std::string>());
    ASSERT_TRUE(enc);
    EXPECT_EQ(clip_activation_name(enc->config.hidden_act), j["hidden_act"].get<std::string>());
    BufferPool pool;
    Ctx c{&pool};
    const auto o = enc->encoder.encode(c, golden_tensor(g, name + ".pixel_values"), {.penultimate = true, .image_embeds = true});
    const easel::testing::Tolerance tol{.atol = 1e-4, .rtol = 1e-4};
    easel::testing::expect_close(*o.penultimate, golden_tensor(g, name + ".penultimate"), tol, name + ".penultimate");
    easel::testing::expect_close(*o.image_embeds, golden_tensor(g, name + ".image_embeds"), tol, name + ".image_embeds");
    easel::testing::expect_close(enc->zeros_penultimate(c), golden_tensor(g, name + ".zeros_penultimate"), tol,
                                 name + ".zeros_penultimate");
    // The penultimate states alone (the Plus adapters' input) run one layer less and give the same.
    const auto p = enc->encoder.encode(c, golden_tensor(g, name + ".pixel_values"), {.penultimate = true});
    EXPECT_FALSE(p.image_embeds);
    easel::testing::expect_close(*p.penultimate, *o.penultimate, {.atol = 0, .rtol = 0}, name + ".penultimate alone");
}

INSTANTIATE_TEST_SUITE_P(Goldens, IPAdapterVision, ::testing::ValuesIn(list_of("vis")),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param.substr(4); });

class IPAdapterProjection : public ::testing::TestWithParam<std::string> {};

// The image projection of each file (every form of it) on the encoder's outputs and on the negative's input.
TEST_P(IPAdapterProjection, MatchesDiffusers) {
    const std::string name = GetParam();  // proj.<adapter>
    const WeightSet& g = golden_file(kGolden);
    const nlohmann::json j = meta(name + ".params");
    const ModelInfo& base = easel::testing::tiny_model_info(j["model"].get<std::string>());
    std::vector<std::string> files;
    if (j.contains("files")) files = j["files"].get<std::vector<std::string>>();
    else files.push_back(j["file"].get<std::string>());
    BufferPool pool;
    Ctx c{&pool};
    for (const std::string& f : files) {
        auto a = load_ip_adapter(kData + f, base, Precision::F32);
        ASSERT_TRUE(a) << a.error().to_string();
        std::printf("%s: %s\n", f.c_str(), (*a)->config.summary().c_str());
        const easel::testing::Tolerance tol{.atol = 1e-4, .rtol = 1e-4};
        easel::testing::expect_close((*a)->adapter.project(c, golden_tensor(g, name + ".input")), golden_tensor(g, name),
                                     tol, name + " " + f);
        // Plus: the encoder's output for zeros (a tensor of the file); plain: zero image embeddings.
        const std::string neg_in = j.contains("negative_input") ? j["negative_input"].get<std::string>() : "";
        Tensor negative_input;
        if (g.contains(neg_in)) {
            negative_input = golden_tensor(g, neg_in);
        } else {
            negative_input = Tensor::empty({1, (*a)->config.embed_dim});
            std::fill_n(negative_input.data<float>(), negative_input.numel(), 0.0f);
        }
        easel::testing::expect_close((*a)->adapter.project(c, negative_input), golden_tensor(g, name + ".negative"), tol,
                                     name + ".negative " + f);
    }
}

INSTANTIATE_TEST_SUITE_P(Goldens, IPAdapterProjection, ::testing::ValuesIn(list_of("proj")),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param.substr(5); });

TEST(IPAdapterFiles, RefusesAnAdapterOfAnotherFamilyAndTheWrongEncoder) {
    auto a = load_ip_adapter(kData + "ip_adapter/sdxl_plain.safetensors", easel::testing::tiny_model_info("sd1"),
                             Precision::F32);
    ASSERT_FALSE(a);
    EXPECT_NE(a.error().message().find("does not fit the model"), std::string::npos) << a.error().to_string();
    auto e = load_image_encoder(kData + "ip_adapter/sd1_plain.safetensors", Precision::F32);
    ASSERT_FALSE(e);
    EXPECT_NE(e.error().to_string().find("not its image encoder"), std::string::npos) << e.error().to_string();
    auto plus = load_ip_adapter(kData + "ip_adapter/sd1_plus.bin", easel::testing::tiny_model_info("sd1"), Precision::F32);
    ASSERT_TRUE(plus) << plus.error().to_string();
    // The Plus adapter reads 48-wide hidden states; this encoder gives them, but its 24-wide projection is what
    // a plain adapter reads: swapped, the sizes say which encoder is needed.
    CLIPVisionConfig other = encoder_at("ip_adapter/image_encoder")->config;
    other.hidden_size = 64;
    const Status st = check_encoder_fits((*plus)->config, other, "unit");
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message().find("reads hidden states 48 wide"), std::string::npos) << st.error().to_string();
    EXPECT_EQ(find_image_encoder(kData + "ip_adapter/sd1_plus.bin", (*plus)->config),
              kData + "ip_adapter/image_encoder");
}

class IPAdapterCase : public ::testing::TestWithParam<std::string> {};

TEST_P(IPAdapterCase, MatchesDiffusers) {
    const std::string name = GetParam();
    const WeightSet& cases = golden_file(kGolden);
    const nlohmann::json j = meta(name + ".params");
    const std::string model = j["model"];
    auto m = load_model(easel::testing::tiny_model_folder(model), LoadOptions{});
    ASSERT_TRUE(m) << m.error().to_string();
    GenerateParams p = easel::testing::diffusers_case_params(j);
    const auto enc = encoder_at(j["image_encoder"].get<std::string>());
    ASSERT_TRUE(enc);
    ASSERT_EQ(enc->config.image_size, j["feature_extractor"]["size"].get<int>());
    std::string what;
    for (const auto& u : j["adapters"]) {
        auto a = load_ip_adapter(kData + u["file"].get<std::string>(), (*m)->info, Precision::F32);
        ASSERT_TRUE(a) << a.error().to_string();
        IPAdapterUnit unit{.adapter = *a, .encoder = enc, .scale = u["scale"].get<double>()};
        for (const auto& im : u["images"]) unit.images.push_back(image_at(im.get<std::string>()));
        p.ip_adapters.push_back(std::move(unit));
        what += fmt::format("{} x{} ({} images); ", u["file"].get<std::string>(), u["scale"].get<double>(), u["images"].size());
    }
    std::printf("%s: %s\n", name.c_str(), what.c_str());
    auto out = generate(**m, p);
    ASSERT_TRUE(out) << out.error().to_string();
    EXPECT_NE((*out)[0].infotext.find("ControlNet 0: \"Module: ip-adapter_clip (image_encoder), Model: "), std::string::npos)
        << (*out)[0].infotext;
    const easel::testing::Tolerance tol{.atol = 2e-3, .rtol = 2e-4};
    if (cases.find(name + ".image")->rank() == 3) easel::testing::expect_matches_hwc_case((*out)[0], cases, name, name, tol);
    else easel::testing::expect_matches_case((*out)[0], cases, name, name, tol);
}

INSTANTIATE_TEST_SUITE_P(Goldens, IPAdapterCase, ::testing::ValuesIn(list_of("cases")),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// Guidance windows (tools/reference/make_ip_adapter_window_goldens.py): an adapter that acts in part of the steps
// only. k-diffusion cases restate AUTOMATIC1111's ControlNet extension (its IP-Adapter units read the ControlNet
// window's step counter: inclusive, a step's first call sees the step before, Heun's second call its own step);
// diffusers cases switch the scale in a step-end callback by diffusers' ControlNet rule. Each adapter its own window.
class IPAdapterWindowCase : public ::testing::TestWithParam<std::string> {};

TEST_P(IPAdapterWindowCase, MatchesTheReference) {
    const std::string name = GetParam();
    const char* const file = "ip_adapter_window_cases.safetensors";
    const WeightSet& cases = golden_file(file);
    const nlohmann::json j = nlohmann::json::parse(cases.metadata.at(name + ".params"));
    auto m = load_model(easel::testing::tiny_model_folder(j["model"]), LoadOptions{});
    ASSERT_TRUE(m) << m.error().to_string();
    const bool a1111 = j["mode"] == "a1111";
    GenerateParams p = a1111 ? easel::testing::case_params(j, j["width"].get<int>()) : easel::testing::diffusers_case_params(j);
    const auto enc = encoder_at(j["image_encoder"].get<std::string>());
    ASSERT_TRUE(enc);
    std::string what;
    for (const auto& u : j["adapters"]) {
        auto a = load_ip_adapter(kData + u["file"].get<std::string>(), (*m)->info, Precision::F32);
        ASSERT_TRUE(a) << a.error().to_string();
        IPAdapterUnit unit{.adapter = *a, .encoder = enc, .scale = u["scale"].get<double>(), .start = u["start"].get<double>(),
                           .end = u["end"].get<double>()};
        for (const auto& im : u["images"]) unit.images.push_back(image_at(im.get<std::string>()));
        what += fmt::format("{} x{} on {}..{}; ", u["adapter"].get<std::string>(), unit.scale, unit.start, unit.end);
        p.ip_adapters.push_back(std::move(unit));
    }
    std::printf("%s (%s): %s%.2f levels from the full window in the reference\n", name.c_str(), a1111 ? "A1111" : "diffusers",
                what.c_str(), j["mean_abs_image_diff_vs_full_window"].get<double>());
    auto out = generate(**m, p);
    ASSERT_TRUE(out) << out.error().to_string();
    const auto& last = j["adapters"].back();
    EXPECT_NE((*out)[0].infotext.find(fmt::format("Guidance Start: {}, Guidance End: {}\"", last["start"].get<double>(),
                                                  last["end"].get<double>())), std::string::npos)
        << (*out)[0].infotext;
    easel::testing::expect_matches_case((*out)[0], cases, name, name, {.atol = 2e-3, .rtol = 2e-4});
}

INSTANTIATE_TEST_SUITE_P(Goldens, IPAdapterWindowCase,
                         ::testing::ValuesIn(nlohmann::json::parse(golden_file("ip_adapter_window_cases.safetensors").metadata.at("cases"))
                                                 .get<std::vector<std::string>>()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

TEST(IPAdapterFiles, RefusesAnEmptyGuidanceWindow) {
    auto m = load_model(easel::testing::tiny_model_folder("sd1"), LoadOptions{});
    ASSERT_TRUE(m) << m.error().to_string();
    auto a = load_ip_adapter(kData + "ip_adapter/sd1_plain.safetensors", (*m)->info, Precision::F32);
    ASSERT_TRUE(a) << a.error().to_string();
    const auto enc = encoder_at("ip_adapter/image_encoder");
    for (const auto& [start, end] : {std::pair{0.5, 0.5}, {-0.1, 1.0}, {0.0, 1.5}, {0.8, 0.2}}) {
        const Status st = validate_ip_adapters({{.adapter = *a, .encoder = enc, .images = {image_at("ip_adapter/ip_ref_a.png")},
                                                 .start = start, .end = end}});
        ASSERT_FALSE(st) << start << ".." << end;
        EXPECT_NE(st.error().message().find("expected 0 <= start < end <= 1"), std::string::npos) << st.error().to_string();
    }
}
