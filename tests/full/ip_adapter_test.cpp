// IP-Adapters on full-size SD 1.5 and SDXL base against the reference (tools/reference/
// make_fullsize_ip_adapter_goldens.py and make_fullsize_ip_adapter_sdxl_goldens.py: diffusers 0.30.3's
// load_ip_adapter on StableDiffusion[XL]Pipeline in diffusers mode at 64x64, the reference image through
// CLIPImageProcessor at 224). Every network is random with the real key layouts (random_checkpoint over
// tests/data/keys/: sd15.ldm / sdxl_base.ldm; clip_vit_h14_vision (OpenCLIP ViT-H/14 as h94/IP-Adapter's
// models/image_encoder) and clip_vit_bigg14_vision (ViT-bigG/14, its sdxl_models/image_encoder); ip_adapter_sd15,
// ip_adapter_plus_sd15, ip_adapter_sdxl, ip_adapter_sdxl_vit_h, ip_adapter_plus_sdxl_vit_h; with the reference's
// power-of-two gains), written as fp16 files and loaded the way a user's files are: each encoder as a folder with its
// config.json, the adapters as single files.
//
// `make test-full` (label "full"): SD 1.5 about 4 GB of temporary disk; SDXL about 12 GB (the base 7.0 GB, bigG
// 3.7 GB, ViT-H 1.3 GB) and about 14 GB of memory.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>

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

// A key list's random checkpoint as an fp16 file (tests/common/random_checkpoint.h), with the reference's gain.
void write_random(const std::string& keys, const fs::path& to, double gain = 1.0, const std::vector<std::string>& scaled = {}) {
    const Status st = easel::testing::write_random_checkpoint(std::string(EASEL_TEST_DATA_DIR) + "/" + keys, to.string(), gain, scaled);
    ASSERT_TRUE(st) << st.error().to_string();
}

// One golden file's cases. The SD 1.5 file has one encoder (metadata image_encoder_config, tensors vis.*); the SDXL
// file names each case's encoder (image_encoder.name; image_encoder_config.<name>, vis.<name>.*).
void run_cases(const std::string& golden, const std::string& tag) {
    const WeightSet& cases = easel::testing::golden_file(golden);
    const nlohmann::json names = nlohmann::json::parse(cases.metadata.at("cases"));
    ASSERT_FALSE(names.empty());
    const auto t0 = std::chrono::steady_clock::now();
    const nlohmann::json first = nlohmann::json::parse(cases.metadata.at(names[0].get<std::string>() + ".params"));
    const std::string base_keys = first["keys"].get<std::string>();
    const easel::testing::ScopedPath model{fs::temp_directory_path() / (tag + "-base.safetensors")};
    write_random(base_keys, model.path);
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    std::printf("%s written in %.1f s\n", base_keys.c_str(), seconds_since(t0));
    LoadOptions o;
    o.precision = Precision::F32;
    auto m = load_model(model.path.string(), o);
    ASSERT_TRUE(m) << m.error().to_string();

    // The preprocessing first: what every case starts from.
    auto ref = read_image(std::string(EASEL_GOLDEN_DIR) + "/ip_adapter/fullsize_ref.png");
    ASSERT_TRUE(ref) << ref.error().to_string();
    const Tensor pixels = prepare_clip_image(*ref, 224);
    easel::testing::expect_close(pixels, easel::testing::golden_tensor(cases, "pre.fullsize_ref"), {.atol = 0, .rtol = 0},
                                 "pre.fullsize_ref");
    BufferPool pool;
    Ctx c{&pool};

    // The encoder of the current case (one at a time: ViT-bigG alone is 7.4 GB in fp32) and its outputs, checked
    // against the reference's once, when it is loaded.
    std::string enc_name = "-";
    std::shared_ptr<const ImageEncoderFile> image_encoder;
    std::optional<easel::testing::ScopedPath> enc_dir;
    Tensor image_embeds, penultimate;
    for (const std::string name : names) {
        const nlohmann::json j = nlohmann::json::parse(cases.metadata.at(name + ".params"));
        ASSERT_EQ(j["keys"].get<std::string>(), base_keys) << name;
        const nlohmann::json& enc = j["image_encoder"];
        const std::string want_enc = enc.value("name", std::string());
        if (want_enc != enc_name) {
            image_encoder.reset();
            enc_dir.reset();
            enc_name = want_enc;
            const std::string sfx = enc_name.empty() ? "" : "." + enc_name;
            // The image encoder: a folder as h94/IP-Adapter ships it (config.json + model.safetensors).
            enc_dir.emplace(fs::temp_directory_path() / (tag + "-image_encoder" + sfx));
            fs::create_directories(enc_dir->path);
            {
                std::ofstream cfg(enc_dir->path / "config.json");
                cfg << cases.metadata.at("image_encoder_config" + sfx);
            }
            const auto tw = std::chrono::steady_clock::now();
            write_random(enc["file"], enc_dir->path / "model.safetensors", enc["embed_gain"].get<double>(),
                         enc["embed_gain_applies_to"].get<std::vector<std::string>>());
            ASSERT_FALSE(::testing::Test::HasFatalFailure());
            auto loaded = load_image_encoder(enc_dir->path.string(), Precision::F32);
            ASSERT_TRUE(loaded) << loaded.error().to_string();
            image_encoder = *loaded;
            std::printf("image encoder %s (%s) written and loaded in %.1f s\n", enc["file"].get<std::string>().c_str(),
                        image_encoder->config.summary().c_str(), seconds_since(tw));
            const auto tv = std::chrono::steady_clock::now();
            const auto vis = image_encoder->encoder.encode(c, pixels, {.penultimate = true, .image_embeds = true});
            std::printf("  on one image in %.2f s\n", seconds_since(tv));
            image_embeds = *vis.image_embeds;
            penultimate = *vis.penultimate;
            easel::testing::expect_close(image_embeds, easel::testing::golden_tensor(cases, "vis" + sfx + ".image_embeds"),
                                         {.atol = 1e-4, .rtol = 1e-3}, "vis" + sfx + ".image_embeds");
            easel::testing::expect_close(penultimate, easel::testing::golden_tensor(cases, "vis" + sfx + ".penultimate"),
                                         {.atol = 1e-4, .rtol = 1e-3}, "vis" + sfx + ".penultimate");
        }
        ASSERT_EQ(j["adapters"].size(), 1u) << name;
        const auto& a = j["adapters"][0];
        const easel::testing::ScopedPath file{fs::temp_directory_path() / fmt::format("{}-{}.safetensors", tag, a["name"].get<std::string>())};
        write_random(a["file"], file.path, a["gain"].get<double>(), {"ip_adapter."});
        ASSERT_FALSE(::testing::Test::HasFatalFailure());
        auto adapter = load_ip_adapter(file.path.string(), (*m)->info, Precision::F32);
        ASSERT_TRUE(adapter) << adapter.error().to_string();
        std::printf("%s: %s\n", name.c_str(), (*adapter)->config.summary().c_str());
        const Tensor in = (*adapter)->config.reads_penultimate() ? penultimate : image_embeds;
        const std::string proj = "proj." + a["name"].get<std::string>();
        easel::testing::expect_close((*adapter)->adapter.project(c, in), easel::testing::golden_tensor(cases, proj),
                                     {.atol = 1e-4, .rtol = 1e-3}, proj);
        GenerateParams p = easel::testing::diffusers_case_params(j);
        IPAdapterUnit unit{.adapter = *adapter, .encoder = image_encoder, .scale = a["scale"].get<double>()};
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
        easel::testing::expect_matches_case((*out)[0], cases, name, name, {.atol = 2e-3, .rtol = 2e-4});
    }
}

}  // namespace

TEST(FullsizeIPAdapter, MatchesDiffusers) {
    run_cases("fullsize_ip_adapter_cases.safetensors", fmt::format("easel-fullsize-ip-{}", ::getpid()));
}

TEST(FullsizeIPAdapterSDXL, MatchesDiffusers) {
    run_cases("fullsize_ip_adapter_sdxl_cases.safetensors", fmt::format("easel-fullsize-ip-sdxl-{}", ::getpid()));
}
