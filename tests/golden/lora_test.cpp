// LoRA, LoCon and PEFT files on the tiny SD 1.x and SDXL models against diffusers 0.30.3's load_lora_weights with
// its PEFT backend (peft 0.12.0): the merged weights alone (diffusers' fuse_lora), then whole txt2img runs with
// one LoRA, two stacked, separate text-encoder and UNet multipliers, a negative multiplier, a text-encoder-only
// LoRA and LDM-named keys. Goldens and LoRA files: tools/reference/make_lora_goldens.py.
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

std::string model_folder(const std::string& model) {
    return std::string(EASEL_GOLDEN_DIR) + (model == "sdxl" ? "/pipeline_sdxl" : "/pipeline_sd1");
}

const ModelInfo& info_of(const std::string& model) {
    static std::map<std::string, ModelInfo> cache;
    auto it = cache.find(model);
    if (it == cache.end()) {
        auto s = load_model_spec(model_folder(model), LoadOptions{});
        EASEL_ASSERT(s.has_value(), s ? "" : s.error().to_string());
        it = cache.emplace(model, s->info).first;
    }
    return it->second;
}

std::shared_ptr<const LoraFile> lora_file(const std::string& file, const std::string& model) {
    auto f = read_lora(kLoraDir + "/" + file, info_of(model));
    if (!f) ADD_FAILURE() << f.error().to_string();
    return f ? *f : nullptr;
}

const WeightSet& cases() { return golden_file("lora_cases.safetensors"); }

std::vector<std::string> case_names() {
    std::vector<std::string> names;
    for (const auto& [k, v] : cases().metadata)
        if (k.size() > 7 && k.compare(k.size() - 7, 7, ".params") == 0 && cases().contains(k.substr(0, k.size() - 7) + ".latent"))
            names.push_back(k.substr(0, k.size() - 7));
    return names;
}

}  // namespace

// Each "fused.<tag>.<param>" golden is "base.<model>.<param>" with a LoRA merged by diffusers' fuse_lora at the
// multipliers its "fused.<tag>.params" names; the adapter applied to the base weight gives it within f32 rounding.
TEST(LoraGolden, MergedWeightsEqualDiffusersFuseLora) {
    int checked = 0;
    for (const auto& [key, value] : cases().metadata) {
        if (key.rfind("fused.", 0) != 0 || key.size() < 7 || key.compare(key.size() - 7, 7, ".params") != 0) continue;
        const std::string tag = key.substr(6, key.size() - 13);
        const nlohmann::json j = nlohmann::json::parse(value);
        const std::string model = j["model"];
        auto file = lora_file(j["file"], model);
        ASSERT_TRUE(file);
        auto adapter = lora_adapter(file, j["unet"].get<double>(), j["te"].get<double>());
        for (const std::string param : j["params"]) {
            ASSERT_TRUE(adapter->touches(param)) << tag << " does not touch " << param;
            const Tensor& base = easel::testing::golden_tensor(cases(), fmt::format("base.{}.{}", model, param));
            Tensor w = base.to(DType::F32).contiguous().clone();
            ASSERT_TRUE(adapter->apply(param, w));
            const std::string n = fmt::format("fused.{}.{}", tag, param);
            easel::testing::expect_close(w, easel::testing::golden_tensor(cases(), n), {.atol = 2e-6, .rtol = 2e-5}, n);
            // The golden differs from the base: the LoRA does something there.
            EXPECT_FALSE(easel::testing::compare(base, easel::testing::golden_tensor(cases(), n), {.atol = 1e-4}).passed()) << n;
            ++checked;
        }
    }
    std::printf("%d merged weights checked\n", checked);
    EXPECT_GT(checked, 0);
}

class LoraCase : public ::testing::TestWithParam<std::string> {};

TEST_P(LoraCase, MatchesDiffusers) {
    const std::string name = GetParam();
    const nlohmann::json j = nlohmann::json::parse(cases().metadata.at(name + ".params"));
    const std::string model = j["model"];
    LoadOptions o;
    std::string what;
    for (const auto& l : j["loras"]) {
        const std::string file = l["file"];
        auto f = lora_file(file, model);
        ASSERT_TRUE(f);
        o.adapters.push_back(lora_adapter(f, l["unet"].get<double>(), l["te"].get<double>()));
        what += fmt::format("{} unet {} te {}; ", file, l["unet"].get<double>(), l["te"].get<double>());
    }
    std::printf("%s: %s\n", name.c_str(), what.empty() ? "no LoRA" : what.c_str());
    auto m = load_model(model_folder(model), o);
    ASSERT_TRUE(m) << m.error().to_string();
    GenerateParams p;
    p.prompt = j["prompt"];
    p.negative_prompt = j["negative"];
    p.steps = j["steps"];
    p.cfg_scale = j["cfg"];
    p.seed = j["seed"];
    p.width = j["width"];
    p.height = j["height"];
    easel::testing::use_diffusers_scheduler(j, p);
    auto out = generate(**m, p);
    ASSERT_TRUE(out) << out.error().to_string();
    const easel::testing::Tolerance tol{.atol = 2e-3, .rtol = 2e-4};
    if (cases().find(name + ".image")->rank() == 3) easel::testing::expect_matches_hwc_case((*out)[0], cases(), name, name, tol);
    else easel::testing::expect_matches_case((*out)[0], cases(), name, name, tol);
}

INSTANTIATE_TEST_SUITE_P(Cases, LoraCase, ::testing::ValuesIn(case_names()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });
