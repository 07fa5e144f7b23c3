// LoRA-family files on the tiny SD 1.x and SDXL models: the merged weights alone, then whole txt2img runs with one
// file, two stacked, separate text-encoder and UNet multipliers, a negative multiplier, a text-encoder-only file.
//  - lora_cases: LoRA, LoCon and PEFT files (kohya-ss names in diffusers and LDM naming, diffusers' own formats)
//    against diffusers 0.30.3's load_lora_weights with its PEFT backend (peft 0.12.0) and fuse_lora
//    (tools/reference/make_lora_goldens.py).
//  - lycoris_cases: LoHa, LoKr (with CP cores), LoCon with lora_mid, full `diff` files and DoRA, which diffusers
//    does not read, against AUTOMATIC1111 v1.10's Lora extension restated (tools/reference/make_lycoris_goldens.py).
#include <gtest/gtest.h>

#include <cstdio>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/golden.h"
#include "common/golden_case.h"
#include "pipeline/generate.h"
#include "pipeline/lora.h"
#include "pipeline/model.h"

using namespace easel;
using easel::testing::golden_file;

namespace {

const std::string kLoraDir = std::string(EASEL_GOLDEN_DIR) + "/lora";

const ModelInfo& info_of(const std::string& model) { return easel::testing::tiny_model_info(model); }
std::string model_folder(const std::string& model) { return easel::testing::tiny_model_folder(model); }

std::shared_ptr<const LoraFile> lora_file(const std::string& file, const std::string& model) {
    auto f = read_lora(kLoraDir + "/" + file, info_of(model));
    if (!f) ADD_FAILURE() << f.error().to_string();
    return f ? *f : nullptr;
}

const char* const kGoldens[] = {"lora_cases.safetensors", "lycoris_cases.safetensors"};

// "<golden file>/<case>" for every case of both files.
std::vector<std::string> case_names() {
    std::vector<std::string> names;
    for (const char* file : kGoldens) {
        const WeightSet& g = golden_file(file);
        for (const auto& [k, v] : g.metadata)
            if (k.size() > 7 && k.compare(k.size() - 7, 7, ".params") == 0 && g.contains(k.substr(0, k.size() - 7) + ".latent"))
                names.push_back(std::string(file) + "/" + k.substr(0, k.size() - 7));
    }
    return names;
}

// The adapters a JSON list [{file, unet, te}] names, in order.
std::vector<std::shared_ptr<const WeightAdapter>> adapters_of(const nlohmann::json& loras, const std::string& model) {
    std::vector<std::shared_ptr<const WeightAdapter>> out;
    for (const auto& l : loras) {
        auto f = lora_file(l["file"], model);
        if (f) out.push_back(lora_adapter(f, l["unet"].get<double>(), l["te"].get<double>()));
    }
    return out;
}

}  // namespace

// Each "fused.<tag>.<param>" golden is "base.<model>.<param>" with a file merged by the reference at the
// multipliers its "fused.<tag>.params" names ("fused_stack.<tag>": several files, {model, loras, params}); the
// adapters applied to the base weight give it within f32 rounding.
TEST(LoraGolden, MergedWeightsEqualTheReference) {
    int checked = 0;
    for (const char* file : kGoldens) {
        const WeightSet& g = golden_file(file);
        for (const auto& [key, value] : g.metadata) {
            const bool stack = key.rfind("fused_stack.", 0) == 0;
            if ((!stack && key.rfind("fused.", 0) != 0) || key.size() < 7 || key.compare(key.size() - 7, 7, ".params") != 0)
                continue;
            const std::string prefix = key.substr(0, key.size() - 7);  // "fused.<tag>"
            const nlohmann::json j = nlohmann::json::parse(value);
            const std::string model = j["model"];
            const auto adapters = stack ? adapters_of(j["loras"], model)
                                        : adapters_of(nlohmann::json::array({{{"file", j["file"]}, {"unet", j["unet"]}, {"te", j["te"]}}}), model);
            ASSERT_FALSE(adapters.empty()) << prefix;
            for (const std::string param : j["params"]) {
                const Tensor& base = easel::testing::golden_tensor(g, fmt::format("base.{}.{}", model, param));
                Tensor w = base.to(DType::F32).contiguous().clone();
                bool touched = false;
                for (const auto& a : adapters) {
                    if (!a->touches(param)) continue;
                    touched = true;
                    auto st = a->apply(param, w);
                    ASSERT_TRUE(st) << st.error().to_string();
                }
                ASSERT_TRUE(touched) << prefix << " does not touch " << param;
                const std::string n = prefix + "." + param;
                easel::testing::expect_close(w, easel::testing::golden_tensor(g, n), {.atol = 2e-6, .rtol = 2e-5}, n);
                // The golden differs from the base: the file does something there.
                EXPECT_FALSE(easel::testing::compare(base, easel::testing::golden_tensor(g, n), {.atol = 1e-4}).passed()) << n;
                ++checked;
            }
        }
    }
    std::printf("%d merged weights checked\n", checked);
    EXPECT_GT(checked, 0);
}

class LoraCase : public ::testing::TestWithParam<std::string> {};

TEST_P(LoraCase, MatchesDiffusers) {
    const std::string golden = GetParam().substr(0, GetParam().find('/')), name = GetParam().substr(GetParam().find('/') + 1);
    const WeightSet& cases = golden_file(golden);
    const nlohmann::json j = nlohmann::json::parse(cases.metadata.at(name + ".params"));
    const std::string model = j["model"];
    LoadOptions o;
    o.adapters = adapters_of(j["loras"], model);
    ASSERT_EQ(o.adapters.size(), j["loras"].size());
    std::string what;
    for (const auto& l : j["loras"]) what += fmt::format("{} unet {} te {}; ", l["file"].get<std::string>(), l["unet"].get<double>(), l["te"].get<double>());
    std::printf("%s: %s\n", name.c_str(), what.empty() ? "no LoRA" : what.c_str());
    auto m = load_model(model_folder(model), o);
    ASSERT_TRUE(m) << m.error().to_string();
    GenerateParams p = easel::testing::diffusers_case_params(j);
    auto out = generate(**m, p);
    ASSERT_TRUE(out) << out.error().to_string();
    const easel::testing::Tolerance tol{.atol = 2e-3, .rtol = 2e-4};
    if (cases.find(name + ".image")->rank() == 3) easel::testing::expect_matches_hwc_case((*out)[0], cases, name, name, tol);
    else easel::testing::expect_matches_case((*out)[0], cases, name, name, tol);
}

INSTANTIATE_TEST_SUITE_P(Cases, LoraCase, ::testing::ValuesIn(case_names()),
                         [](const ::testing::TestParamInfo<std::string>& i) {
                             std::string n = i.param.substr(0, i.param.find('_')) + "_" + i.param.substr(i.param.find('/') + 1);
                             return n;  // "lora_sd1_kohya", "lycoris_sd1_loha"
                         });

// Fast precision (bf16 compute) with LoRAs: the fp32 reference's image (diffusers) within the fast-mode bound the
// base model is held to (PipelineFastMode: PSNR >= 35 dB against fp32), for a LoRA, LoCon, LoHa and DoRA.
TEST(LoraGolden, FastModeStaysWithinTheFastBound) {
    for (const auto& [golden, name] : {std::pair{"lora_cases.safetensors", "sd1_stacked"}, std::pair{"lora_cases.safetensors", "sdxl_kohya"},
                                       std::pair{"lycoris_cases.safetensors", "sd1_stacked"}}) {
        const WeightSet& cases = golden_file(golden);
        const nlohmann::json j = nlohmann::json::parse(cases.metadata.at(std::string(name) + ".params"));
        const std::string model = j["model"];
        LoadOptions o;
        o.precision = Precision::BF16;
        o.adapters = adapters_of(j["loras"], model);
        auto m = load_model(model_folder(model), o);
        ASSERT_TRUE(m) << m.error().to_string();
        GenerateParams p = easel::testing::diffusers_case_params(j);
        auto out = generate(**m, p);
        ASSERT_TRUE(out) << out.error().to_string();
        const Tensor& ref = *cases.find(std::string(name) + ".image");  // [1, 3, H, W] u8
        const Image& img = (*out)[0].image;
        double se = 0;
        const int64_t h = ref.size(2), w = ref.size(3);
        for (int64_t c = 0; c < 3; ++c)
            for (int64_t i = 0; i < h * w; ++i) {
                const double d = double(img.pixels[size_t(i * 3 + c)]) - ref.item({0, c, i / w, i % w});
                se += d * d;
            }
        const double mse = se / double(3 * h * w);
        const double psnr = mse == 0 ? 99.0 : 10.0 * std::log10(255.0 * 255.0 / mse);
        std::printf("fast with LoRAs (%s %s): PSNR %.2f dB against the fp32 reference\n", golden, name, psnr);
        EXPECT_GE(psnr, 35.0);
    }
}
