// LoRAs, LoHa and an SDXL embedding on full-size SD 1.5, SD 2.1 (768-v) and SDXL base against the reference
// (tools/reference/make_fullsize_lora_goldens.py: diffusers 0.30.3 with peft 0.12.0 for the LoRAs it reads, A1111's
// math restated for LoHa, load_textual_inversion for the embedding), in diffusers mode at 64x64. The checkpoints are
// the random full-size ones of the other full-size tests (random_checkpoint: make_fullsize_goldens.py's rule), written
// as fp16 single files, one model at a time, and loaded the way a user's file is, with the LoRAs merged at load.
//
// `make test-full` (label "full"): up to 7 GB of temporary disk and about 19 GB of memory for SDXL.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <map>

#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/golden.h"
#include "common/golden_case.h"
#include "common/random_checkpoint.h"
#include "common/scoped_path.h"
#include "io/keymap_key_list.h"
#include "io/safetensors.h"
#include "models/detect.h"
#include "pipeline/embeddings.h"
#include "pipeline/generate.h"
#include "pipeline/lora.h"

using namespace easel;
namespace fs = std::filesystem;

namespace {

const std::string kGolden = EASEL_GOLDEN_DIR;
constexpr easel::testing::Tolerance kLatentTol{.atol = 2e-3, .rtol = 2e-4};

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

const WeightSet& cases() { return easel::testing::golden_file("fullsize_lora_cases.safetensors"); }

std::string keys_of(const std::string& model) {
    return std::string(EASEL_TEST_DATA_DIR) + "/keys/" + (model == "sdxl" ? "sdxl_base" : model) + ".ldm.json.gz";
}

std::vector<std::string> cases_of(const std::string& model) {
    std::vector<std::string> names;
    for (const auto& [k, v] : cases().metadata) {
        if (k.size() < 8 || k.compare(k.size() - 7, 7, ".params") != 0 || !cases().contains(k.substr(0, k.size() - 7) + ".latent"))
            continue;
        if (nlohmann::json::parse(v)["model"] == model) names.push_back(k.substr(0, k.size() - 7));
    }
    return names;
}

// Every case of one model: the checkpoint rebuilt and written once, loaded per case with its LoRAs merged.
void run_model(const std::string& model) {
    const std::vector<std::string> names = cases_of(model);
    ASSERT_FALSE(names.empty()) << "no " << model << " cases in fullsize_lora_cases.safetensors";
    const auto t0 = std::chrono::steady_clock::now();
    const easel::testing::ScopedPath file{fs::temp_directory_path() / fmt::format("easel-fullsize-lora-{}-{}.safetensors", model, ::getpid())};
    {
        auto built = easel::testing::random_checkpoint(keys_of(model));
        ASSERT_TRUE(built) << built.error().to_string();
        ASSERT_TRUE(write_safetensors(file.path.string(), *built));
    }
    std::printf("%s: checkpoint written in %.1f s\n", model.c_str(), seconds_since(t0));
    LoadOptions base;
    base.precision = Precision::F32;
    if (model == "sd21") base.prediction = Prediction::V;  // 768-v: a single file cannot say
    auto spec = load_model_spec(file.path.string(), base);
    ASSERT_TRUE(spec) << spec.error().to_string();
    for (const std::string& name : names) {
        const nlohmann::json j = nlohmann::json::parse(cases().metadata.at(name + ".params"));
        LoadOptions o = base;
        for (const auto& l : j["loras"]) {
            auto f = read_lora(kGolden + "/lora/" + l["file"].get<std::string>(), spec->info);
            ASSERT_TRUE(f) << f.error().to_string();
            o.adapters.push_back(lora_adapter(*f, l["unet"].get<double>(), l["te"].get<double>()));
        }
        const auto tl = std::chrono::steady_clock::now();
        auto m = load_model(file.path.string(), o);
        ASSERT_TRUE(m) << m.error().to_string();
        std::printf("%s: loaded with %zu LoRA(s) in %.1f s\n", name.c_str(), o.adapters.size(), seconds_since(tl));
        GenerateParams p = easel::testing::diffusers_case_params(j);
        if (j.contains("embeddings_loaded") && !j["embeddings_loaded"].empty()) {
            auto set = std::make_shared<TextualInversions>();
            for (const std::string f : j["embeddings_loaded"]) {
                auto e = read_embedding(kGolden + "/lora/" + f);
                ASSERT_TRUE(e) << e.error().to_string();
                set->items.push_back(std::move(e).value());
            }
            p.embeddings = set;
        }
        const auto tg = std::chrono::steady_clock::now();
        auto out = generate(**m, p);
        ASSERT_TRUE(out) << out.error().to_string();
        std::printf("%s: generated in %.1f s\n", name.c_str(), seconds_since(tg));
        easel::testing::expect_matches_case((*out)[0], cases(), name, name, kLatentTol);
    }
}

}  // namespace

// The merged weights alone: each "fused.<tag>.<param>" is "base.<model>.<param>" with the file merged by the
// reference; the adapter applied to the base weight gives it within f32 rounding. The goldens hold rows [r0, r1) of
// each weight ("rows"; whole weights would be ~85 MB): a LoRA's or LoHa's row i depends on W's row i alone, so the
// base rows go into a weight of the full shape ("shapes"), the adapter runs on it, and those rows are compared.
TEST(FullsizeLora, MergedWeightsEqualTheReference) {
    int checked = 0;
    for (const auto& [key, value] : cases().metadata) {
        if (key.rfind("fused.", 0) != 0 || key.size() < 8 || key.compare(key.size() - 7, 7, ".params") != 0) continue;
        const std::string prefix = key.substr(0, key.size() - 7);
        const nlohmann::json j = nlohmann::json::parse(value);
        const std::string model = j["model"];
        // The model's layout from its key list (names and shapes, no data): what detection reads.
        static std::map<std::string, ModelInfo> infos;
        if (!infos.count(model)) {
            auto keys = read_key_list_file(keys_of(model));
            ASSERT_TRUE(keys) << keys.error().to_string();
            auto info = detect_model(*keys);
            ASSERT_TRUE(info) << info.error().to_string();
            infos[model] = *info;
        }
        auto f = read_lora(kGolden + "/lora/" + j["file"].get<std::string>(), infos[model]);
        ASSERT_TRUE(f) << f.error().to_string();
        auto adapter = lora_adapter(*f, j["unet"].get<double>(), j["te"].get<double>());
        const int64_t r0 = j["rows"][0], r1 = j["rows"][1];
        for (const std::string param : j["params"]) {
            ASSERT_TRUE(adapter->touches(param)) << prefix << " does not touch " << param;
            const Tensor base = easel::testing::golden_tensor(cases(), fmt::format("base.{}.{}", model, param)).to(DType::F32).contiguous();
            Tensor w = Tensor::zeros(Shape(j["shapes"][param].get<std::vector<int64_t>>()));
            const int64_t row = w.numel() / w.size(0);
            ASSERT_EQ(base.numel(), (r1 - r0) * row) << param;
            std::memcpy(w.data<float>() + r0 * row, base.data<float>(), size_t(base.nbytes()));
            auto st = adapter->apply(param, w);
            ASSERT_TRUE(st) << st.error().to_string();
            Tensor rows = Tensor::empty(base.shape());
            std::memcpy(rows.data<float>(), w.data<float>() + r0 * row, size_t(base.nbytes()));
            easel::testing::expect_close(rows, easel::testing::golden_tensor(cases(), prefix + "." + param),
                                         {.atol = 1e-5, .rtol = 1e-4}, prefix + "." + param);
            ++checked;
        }
    }
    std::printf("%d merged weights checked\n", checked);
    EXPECT_GT(checked, 0);
}

TEST(FullsizeLora, SD15) { run_model("sd15"); }
TEST(FullsizeLora, SD21) { run_model("sd21"); }
TEST(FullsizeLora, SDXL) { run_model("sdxl"); }
