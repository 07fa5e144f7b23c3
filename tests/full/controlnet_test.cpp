// ControlNets on full-size SD 1.5 and SD 2.1 (768-v) against the reference (tools/reference/
// make_fullsize_controlnet_goldens.py and make_fullsize_controlnet_sd21_goldens.py: diffusers 0.30.3's
// StableDiffusionControlNetPipeline in diffusers mode at 64x64). Both networks are random with the real key layouts
// (random_checkpoint: make_fullsize_goldens.py's rule over tests/data/keys/sd15.ldm.json.gz / sd21.ldm.json.gz and
// controlnet_sd15.ldm.json.gz / controlnet_sd21.ldm.json.gz; the ControlNet's zero convs times the reference's gain),
// written as fp16 single files and loaded the way a user's files are: the ControlNet in the original cldm layout
// (control_v11p_sd15_*; for SD 2.1 the community's cldm_v21.yaml files), with the "control_model." prefix. A single
// file cannot say that SD 2.1 768 predicts velocity: that model is loaded with LoadOptions.prediction from the cases'
// params ("v"), as a user passes --prediction v.
//
// `make test-full` (label "full"): about 3.3 GB of temporary disk at a time.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/golden.h"
#include "common/golden_case.h"
#include "common/random_checkpoint.h"
#include "common/scoped_path.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "pipeline/controlnet.h"
#include "pipeline/generate.h"

using namespace easel;
namespace fs = std::filesystem;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A key list's random checkpoint as an fp16 file (tests/common/random_checkpoint.h), with the reference's gain.
void write_random(const std::string& keys, const fs::path& to, double gain = 1.0, const std::vector<std::string>& scaled = {}) {
    const Status st = easel::testing::write_random_checkpoint(std::string(EASEL_TEST_DATA_DIR) + "/" + keys, to.string(), gain, scaled);
    ASSERT_TRUE(st) << st.error().to_string();
}

// Every case of `golden` on the base model of `base_keys` (its prediction and family as the cases' params say).
void check_controlnet_cases(const std::string& golden, const std::string& base_keys, ModelFamily family) {
    const WeightSet& cases = easel::testing::golden_file(golden);
    const nlohmann::json names = nlohmann::json::parse(cases.metadata.at("cases"));
    ASSERT_FALSE(names.empty());
    const auto t0 = std::chrono::steady_clock::now();
    const easel::testing::ScopedPath model{fs::temp_directory_path() / fmt::format("easel-fullsize-cn-base-{}.safetensors", ::getpid())};
    const easel::testing::ScopedPath net_file{fs::temp_directory_path() / fmt::format("easel-fullsize-cn-{}.safetensors", ::getpid())};
    // The base model's prediction type, the same for every case.
    const nlohmann::json first = nlohmann::json::parse(cases.metadata.at(names[0].get<std::string>() + ".params"));
    const std::string prediction = first.value("prediction", std::string("epsilon"));
    write_random(base_keys, model.path);
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    std::string net_keys;
    double gain = 1.0;
    for (const std::string name : names) {
        const nlohmann::json j = nlohmann::json::parse(cases.metadata.at(name + ".params"));
        ASSERT_EQ(j["controlnets"].size(), 1u) << name;
        ASSERT_EQ(j.value("keys", base_keys), base_keys) << name;
        ASSERT_EQ(j.value("prediction", std::string("epsilon")), prediction) << name;
        net_keys = j["controlnets"][0]["file"];
        gain = j["controlnets"][0].value("gain", 1.0);
    }
    write_random(net_keys, net_file.path, gain, {"control_model.zero_convs.", "control_model.middle_block_out."});
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    std::printf("checkpoints written in %.1f s\n", seconds_since(t0));
    LoadOptions o;
    o.precision = Precision::F32;
    if (prediction == "v") o.prediction = Prediction::V;  // 768-v: a single file cannot say (fullsize_sd21_test.cpp)
    auto m = load_model(model.path.string(), o);
    ASSERT_TRUE(m) << m.error().to_string();
    EXPECT_EQ((*m)->info.family, family);
    EXPECT_EQ((*m)->info.unet.prediction, prediction == "v" ? Prediction::V : Prediction::Epsilon);
    const auto tl = std::chrono::steady_clock::now();
    auto net = load_controlnet(net_file.path.string(), (*m)->info, Precision::F32);
    ASSERT_TRUE(net) << net.error().to_string();
    std::printf("ControlNet (original layout) loaded in %.1f s\n", seconds_since(tl));
    for (const std::string name : names) {
        const nlohmann::json j = nlohmann::json::parse(cases.metadata.at(name + ".params"));
        GenerateParams p = easel::testing::diffusers_case_params(j);
        const auto& u = j["controlnets"][0];
        auto img = read_image(std::string(EASEL_GOLDEN_DIR) + "/" + u["image"].get<std::string>());
        ASSERT_TRUE(img) << img.error().to_string();
        p.control.push_back({.net = *net, .image = *img, .scale = u["scale"].get<double>(), .start = u["start"].get<double>(),
                             .end = u["end"].get<double>(),
                             .mode = j["guess_mode"].get<bool>() ? ControlMode::ControlNetMoreImportant : ControlMode::Balanced});
        const auto tg = std::chrono::steady_clock::now();
        auto out = generate(**m, p);
        ASSERT_TRUE(out) << out.error().to_string();
        std::printf("%s: generated in %.1f s\n", name.c_str(), seconds_since(tg));
        easel::testing::expect_matches_case((*out)[0], cases, name, name, {.atol = 2e-3, .rtol = 2e-4});
    }
}

}  // namespace

TEST(FullsizeControlNet, MatchesDiffusers) {
    check_controlnet_cases("fullsize_controlnet_cases.safetensors", "keys/sd15.ldm.json.gz", ModelFamily::SD1);
}

TEST(FullsizeControlNetSD21, MatchesDiffusers) {
    check_controlnet_cases("fullsize_controlnet_sd21_cases.safetensors", "keys/sd21.ldm.json.gz", ModelFamily::SD2);
}
