// A ControlNet on full-size SDXL base 1.0 against the reference (tools/reference/
// make_fullsize_controlnet_sdxl_goldens.py: diffusers 0.30.3's StableDiffusionXLControlNetPipeline in diffusers mode
// at 64x64). The SDXL counterpart of controlnet_sd21_test.cpp. Both networks are random with the real key layouts
// (random_checkpoint: make_fullsize_goldens.py's rule over tests/data/keys/sdxl_base.ldm.json.gz, as
// fullsize_sdxl.h builds the base, and over controlnet_sdxl.json.gz; the ControlNet's zero convs times the
// reference's gain), written in fp16 and loaded the way a user's files are: the base as a single file, the ControlNet
// as a diffusers folder (config.json from the golden's metadata "controlnet_config" + diffusion_pytorch_model.
// safetensors in diffusers' ControlNetModel names), the form diffusers/controlnet-canny-sdxl-1.0 and most SDXL
// ControlNets are published in.
//
// fullsize_cn_sdxl_guess (guess mode at 0.7 with the window 0..0.5) has an empty negative prompt: in diffusers mode
// easel takes it as diffusers' negative_prompt=None, zeroed by SDXL's force_zeros_for_empty_prompt; the reference
// script passes None for it (before session 22 it passed "", which diffusers encodes, and the case differed).
//
// `make test-full` (label "full"): about 9.5 GB of temporary disk (the base 7.0 GB, the ControlNet 2.5 GB, fp16) and
// about 20 GB of memory (the fp32 SDXL base and the fp32 ControlNet, 5 GB).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

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

const WeightSet& cases() { return easel::testing::golden_file("fullsize_controlnet_sdxl_cases.safetensors"); }

// A key list's random checkpoint as an fp16 file (tests/common/random_checkpoint.h), with the reference's gain.
void write_random(const std::string& keys, const fs::path& to, double gain = 1.0, const std::vector<std::string>& scaled = {}) {
    const Status st = easel::testing::write_random_checkpoint(std::string(EASEL_TEST_DATA_DIR) + "/" + keys, to.string(), gain, scaled);
    ASSERT_TRUE(st) << st.error().to_string();
}

}  // namespace

TEST(FullsizeControlNetSDXL, MatchesDiffusers) {
    const nlohmann::json names = nlohmann::json::parse(cases().metadata.at("cases"));
    ASSERT_FALSE(names.empty());
    ASSERT_EQ(cases().metadata.at("controlnet_format"), "diffusers");
    const auto t0 = std::chrono::steady_clock::now();
    const easel::testing::ScopedPath model{fs::temp_directory_path() / fmt::format("easel-fullsize-cn-sdxl-base-{}.safetensors", ::getpid())};
    const easel::testing::ScopedPath net_dir{fs::temp_directory_path() / fmt::format("easel-fullsize-cn-sdxl-{}", ::getpid())};
    // The base model's key list, the same for every case.
    const nlohmann::json first = nlohmann::json::parse(cases().metadata.at(names[0].get<std::string>() + ".params"));
    const std::string base_keys = first["keys"].get<std::string>();
    ASSERT_EQ(base_keys, "keys/sdxl_base.ldm.json.gz");
    ASSERT_EQ(first.value("prediction", std::string("epsilon")), "epsilon");
    write_random(base_keys, model.path);
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    std::string net_keys;
    double gain = 1.0;
    for (const std::string name : names) {
        const nlohmann::json j = nlohmann::json::parse(cases().metadata.at(name + ".params"));
        ASSERT_EQ(j["controlnets"].size(), 1u) << name;
        ASSERT_EQ(j["keys"].get<std::string>(), base_keys) << name;
        ASSERT_EQ(j["controlnets"][0].value("format", std::string()), "diffusers") << name;
        net_keys = j["controlnets"][0]["file"];
        gain = j["controlnets"][0].value("gain", 1.0);
    }
    // The ControlNet as a diffusers folder: config.json (ControlNetModel.from_unet(SDXL base's UNet)'s config, as
    // the reference built it) and diffusion_pytorch_model.safetensors.
    fs::create_directories(net_dir.path);
    {
        std::ofstream cfg(net_dir.path / "config.json");
        cfg << cases().metadata.at("controlnet_config");
        ASSERT_TRUE(cfg.good());
    }
    write_random(net_keys, net_dir.path / "diffusion_pytorch_model.safetensors", gain,
                 {"controlnet_down_blocks.", "controlnet_mid_block."});
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    std::printf("checkpoints written in %.1f s\n", seconds_since(t0));
    LoadOptions o;
    o.precision = Precision::F32;
    auto m = load_model(model.path.string(), o);
    ASSERT_TRUE(m) << m.error().to_string();
    EXPECT_EQ((*m)->info.family, ModelFamily::SDXL);
    const auto tl = std::chrono::steady_clock::now();
    auto net = load_controlnet(net_dir.path.string(), (*m)->info, Precision::F32);
    ASSERT_TRUE(net) << net.error().to_string();
    std::printf("SDXL ControlNet (diffusers folder) loaded in %.1f s\n", seconds_since(tl));
    for (const std::string name : names) {
        const nlohmann::json j = nlohmann::json::parse(cases().metadata.at(name + ".params"));
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
        easel::testing::expect_matches_case((*out)[0], cases(), name, name, {.atol = 2e-3, .rtol = 2e-4});
    }
}
