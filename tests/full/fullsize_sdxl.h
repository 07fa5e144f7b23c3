// Full-size SDXL base / refiner against the reference (included by sdxl_base_test.cpp and sdxl_refiner_test.cpp,
// which define EASEL_FULLSIZE_SDXL_VARIANT "sdxl_base" or "sdxl_refiner"), without shipping weights: the checkpoint
// is a pure function of the published tensor list (tests/data/keys/<variant>.ldm.json.gz, Stability's sgm names
// of sd_xl_base_1.0 / sd_xl_refiner_1.0) and torch's CPU generator, rebuilt here bit for bit by random_checkpoint
// (make_fullsize_goldens.py's rule), written as an fp16 single file and loaded the way a user's file is. The
// reference (tools/reference/make_fullsize_sdxl_goldens.py) ran diffusers' single-file converters on the same values
// and the pipelines at 64x64 and 96x64: full-size networks, small latents.
//
// `make test-full` runs these (label "full"), not `make test`: 7 GB of temporary disk (21 GB with the fp32 folder),
// up to 19 GB of memory (one model at a time) and 4 to 7 minutes each.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>

#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/golden_case.h"
#include "common/random_checkpoint.h"
#include "io/safetensors.h"
#include "pipeline/families/sdxl.h"
#include "pipeline/generate.h"

namespace easel::testing::fullsize_sdxl {

namespace fs = std::filesystem;

inline const std::string kVariant = EASEL_FULLSIZE_SDXL_VARIANT;
inline const std::string kKeys = std::string(EASEL_TEST_DATA_DIR) + "/keys/" + kVariant + ".ldm.json.gz";
inline const std::string kCases = std::string(EASEL_GOLDEN_DIR) + "/fullsize_" + kVariant + "_cases.safetensors";

// fp32 through a full-size UNet (2.6 B parameters) at tiny latents: the full-size SD bounds.
constexpr Tolerance kLatentTol{.atol = 2e-3, .rtol = 2e-4};

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The random checkpoint as an fp16 single file (built once per test binary, removed at exit), the reference's cases,
// and the model loaded from the file at fp32; release() drops the model for a test that needs the memory.
class Fixture {
public:
    static Fixture& get() {
        static Fixture f;
        return f;
    }
    const std::string& path() const { return path_; }
    const WeightSet& cases() const { return cases_; }
    nlohmann::json params(const std::string& name) const {
        EASEL_ASSERT(cases_.metadata.count(name + ".params"), name + ": not in " + kCases);
        return nlohmann::json::parse(cases_.metadata.at(name + ".params"));
    }
    const SDXLModel& fp32() {
        if (!fp32_) {
            const auto t0 = std::chrono::steady_clock::now();
            LoadOptions o;
            o.precision = Precision::F32;
            auto m = load_sdxl_model(path_, o);
            EASEL_ASSERT(m.has_value(), m ? "" : m.error().to_string());
            fp32_ = std::move(m).value();
            std::printf("loaded in %.1f s: %s\n", seconds_since(t0), fp32_->describe().c_str());
        }
        return *fp32_;
    }
    void release() { fp32_.reset(); }
    ~Fixture() {
        fp32_.reset();
        std::error_code ec;
        if (!path_.empty()) fs::remove(path_, ec);
    }

private:
    Fixture() {
        const auto t0 = std::chrono::steady_clock::now();
        auto built = random_checkpoint(kKeys);
        EASEL_ASSERT(built.has_value(), built ? "" : built.error().to_string());
        std::printf("generated %zu tensors in %.1f s\n", built->size(), seconds_since(t0));
        path_ = (fs::temp_directory_path() / fmt::format("easel-fullsize-{}-{}.safetensors", kVariant, ::getpid())).string();
        auto st = write_safetensors(path_, *built);
        EASEL_ASSERT(st.has_value(), st ? "" : st.error().to_string());
        std::printf("wrote %s (%.2f GB) after %.1f s\n", path_.c_str(), double(fs::file_size(path_)) / 1e9, seconds_since(t0));
        auto c = read_safetensors(kCases);
        EASEL_ASSERT(c.has_value(), c ? "" : c.error().to_string());
        cases_ = std::move(c).value();
    }
    std::string path_;
    WeightSet cases_;
    std::unique_ptr<SDXLModel> fp32_;
};

// Our run of `p` on `m` against case `name` (latent within kLatentTol; image within 1 level mean, 2 max).
inline void expect_case(const Model& m, const std::string& name, const GenerateParams& p, const std::string& label = "") {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = generate(m, p);
    ASSERT_TRUE(r) << r.error().to_string();
    std::printf("%-28s generated in %.1f s\n", name.c_str(), seconds_since(t0));
    expect_matches_hwc_case((*r)[0], Fixture::get().cases(), name, label.empty() ? name : label, kLatentTol);
}

// The case's init image ("<name>.init", [1, 3, H, W] u8) when it has one.
inline void add_init_image(const std::string& name, GenerateParams& p) {
    const WeightSet& c = Fixture::get().cases();
    if (const Tensor* init = c.find(name + ".init")) p.init_image = image_from_golden(*init);
    if (const Tensor* mask = c.find(name + ".mask")) p.mask = mask_from_golden(*mask);
}

// PSNR in dB between two 8-bit images of one size.
inline double psnr(const Image& a, const Image& b) {
    double se = 0;
    for (size_t i = 0; i < a.pixels.size(); ++i) {
        const double d = double(int(a.pixels[i]) - int(b.pixels[i]));
        se += d * d;
    }
    const double mse = se / double(a.pixels.size());
    return mse == 0 ? 99.0 : 10.0 * std::log10(255.0 * 255.0 / mse);
}

}  // namespace easel::testing::fullsize_sdxl
