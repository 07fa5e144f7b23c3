// IP-Adapters on full-size SD 1.5 against the reference (tools/reference/make_fullsize_ip_adapter_goldens.py:
// diffusers 0.30.3's load_ip_adapter on StableDiffusionPipeline in diffusers mode at 64x64, the reference image
// through CLIPImageProcessor at 224). Every network is random with the real key layouts (random_checkpoint over
// tests/data/keys/: sd15.ldm, clip_vit_h14_vision (OpenCLIP ViT-H/14 as h94/IP-Adapter's models/image_encoder),
// ip_adapter_sd15 and ip_adapter_plus_sd15, with the reference's power-of-two gains), written as fp16 files and
// loaded the way a user's files are: the encoder as a folder with its config.json, the adapters as single files.
//
// `make test-full` (label "full"): about 4 GB of temporary disk.
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
#include "pipeline/generate.h"
#include "pipeline/ip_adapter.h"

using namespace easel;
namespace fs = std::filesystem;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

const WeightSet& cases() { return easel::testing::golden_file("fullsize_ip_adapter_cases.safetensors"); }

// A key list's random checkpoint as an fp16 file (tests/common/random_checkpoint.h), with the reference's gain.
void write_random(const std::string& keys, const fs::path& to, double gain = 1.0, const std::vector<std::string>& scaled = {}) {
    const Status st = easel::testing::write_random_checkpoint(std::string(EASEL_TEST_DATA_DIR) + "/" + keys, to.string(), gain, scaled);
    ASSERT_TRUE(st) << st.error().to_string();
}

}  // namespace

TEST(FullsizeIPAdapter, MatchesDiffusers) {
    const nlohmann::json names = nlohmann::json::parse(cases().metadata.at("cases"));
    ASSERT_FALSE(names.empty());
    const auto t0 = std::chrono::steady_clock::now();
    const std::string tag = fmt::format("easel-fullsize-ip-{}", ::getpid());
    const easel::testing::ScopedPath model{fs::temp_directory_path() / (tag + "-sd15.safetensors")};
    const easel::testing::ScopedPath encoder{fs::temp_directory_path() / (tag + "-image_encoder")};
    write_random("keys/sd15.ldm.json.gz", model.path);
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    // The image encoder: a folder as h94/IP-Adapter ships it (config.json + model.safetensors).
    const nlohmann::json first = nlohmann::json::parse(cases().metadata.at(names[0].get<std::string>() + ".params"));
    const nlohmann::json& enc = first["image_encoder"];
    fs::create_directories(encoder.path);
    {
        std::ofstream cfg(encoder.path / "config.json");
        cfg << cases().metadata.at("image_encoder_config");
    }
    write_random(enc["file"], encoder.path / "model.safetensors", enc["embed_gain"].get<double>(),
                 enc["embed_gain_applies_to"].get<std::vector<std::string>>());
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    std::printf("SD 1.5 and the image encoder written in %.1f s\n", seconds_since(t0));
    LoadOptions o;
    o.precision = Precision::F32;
    auto m = load_model(model.path.string(), o);
    ASSERT_TRUE(m) << m.error().to_string();
    const auto te = std::chrono::steady_clock::now();
    auto image_encoder = load_image_encoder(encoder.path.string(), Precision::F32);
    ASSERT_TRUE(image_encoder) << image_encoder.error().to_string();
    std::printf("image encoder (%s) loaded in %.1f s\n", (*image_encoder)->config.summary().c_str(), seconds_since(te));

    // The preprocessing and the encoder's outputs first: they are what every case starts from.
    auto ref = read_image(std::string(EASEL_GOLDEN_DIR) + "/ip_adapter/fullsize_ref.png");
    ASSERT_TRUE(ref) << ref.error().to_string();
    const Tensor pixels = prepare_clip_image(*ref, 224);
    easel::testing::expect_close(pixels, easel::testing::golden_tensor(cases(), "pre.fullsize_ref"), {.atol = 0, .rtol = 0},
                                 "pre.fullsize_ref");
    BufferPool pool;
    Ctx c{&pool};
    const auto tv = std::chrono::steady_clock::now();
    const auto vis = (*image_encoder)->encoder.encode(c, pixels, {.penultimate = true, .image_embeds = true});
    std::printf("ViT-H/14 on one image in %.2f s\n", seconds_since(tv));
    easel::testing::expect_close(*vis.image_embeds, easel::testing::golden_tensor(cases(), "vis.image_embeds"),
                                 {.atol = 1e-4, .rtol = 1e-3}, "vis.image_embeds");
    easel::testing::expect_close(*vis.penultimate, easel::testing::golden_tensor(cases(), "vis.penultimate"),
                                 {.atol = 1e-4, .rtol = 1e-3}, "vis.penultimate");

    for (const std::string name : names) {
        const nlohmann::json j = nlohmann::json::parse(cases().metadata.at(name + ".params"));
        ASSERT_EQ(j["adapters"].size(), 1u) << name;
        const auto& a = j["adapters"][0];
        const easel::testing::ScopedPath file{fs::temp_directory_path() / fmt::format("{}-{}.safetensors", tag, a["name"].get<std::string>())};
        write_random(a["file"], file.path, a["gain"].get<double>(), {"ip_adapter."});
        ASSERT_FALSE(::testing::Test::HasFatalFailure());
        auto adapter = load_ip_adapter(file.path.string(), (*m)->info, Precision::F32);
        ASSERT_TRUE(adapter) << adapter.error().to_string();
        std::printf("%s: %s\n", name.c_str(), (*adapter)->config.summary().c_str());
        const Tensor in = (*adapter)->config.reads_penultimate() ? *vis.penultimate : *vis.image_embeds;
        const std::string proj = "proj." + a["name"].get<std::string>();
        easel::testing::expect_close((*adapter)->adapter.project(c, in), easel::testing::golden_tensor(cases(), proj),
                                     {.atol = 1e-4, .rtol = 1e-3}, proj);
        GenerateParams p = easel::testing::diffusers_case_params(j);
        IPAdapterUnit unit{.adapter = *adapter, .encoder = *image_encoder, .scale = a["scale"].get<double>()};
        for (const auto& im : a["images"]) {
            auto img = read_image(std::string(EASEL_GOLDEN_DIR) + "/" + im.get<std::string>());
            ASSERT_TRUE(img) << img.error().to_string();
            unit.images.push_back(*img);
        }
        p.ip_adapters.push_back(std::move(unit));
        const auto tg = std::chrono::steady_clock::now();
        auto out = generate(**m, p);
        ASSERT_TRUE(out) << out.error().to_string();
        std::printf("%s: generated in %.1f s\n", name.c_str(), seconds_since(tg));
        easel::testing::expect_matches_case((*out)[0], cases(), name, name, {.atol = 2e-3, .rtol = 2e-4});
    }
}
