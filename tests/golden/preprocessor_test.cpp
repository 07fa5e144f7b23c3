// ControlNet preprocessors against OpenCV 4.6 (Debian's python3-opencv) as AUTOMATIC1111's ControlNet extension
// calls it (tools/reference/make_preprocessor_goldens.py): canny on the 3-channel image at several thresholds and
// with the L2 gradient, invert. Images of odd sizes, smooth, hard-edged, noisy, flat and with 1-pixel lines.
#include <gtest/gtest.h>

#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/golden.h"
#include "io/image.h"
#include "io/image_filters.h"
#include "pipeline/control_preprocess.h"

using namespace easel;
using easel::testing::golden_file;

namespace {

const char* const kGolden = "preprocessor_cases.safetensors";

nlohmann::json meta(const std::string& key) { return nlohmann::json::parse(golden_file(kGolden).metadata.at(key)); }
std::vector<std::string> cases_of(const char* op) { return meta("cases")[op].get<std::vector<std::string>>(); }

Image input(const std::string& name) {
    auto img = read_image(std::string(EASEL_GOLDEN_DIR) + "/preprocessors/" + name + ".png");
    EXPECT_TRUE(img) << img.error().to_string();
    return img ? *img : Image{};
}

// Pixels (of every channel) where `got` differs from the golden uint8 tensor of the same layout.
int64_t differing(const Image& got, const Tensor& want) {
    const Tensor w = want.contiguous();
    EXPECT_EQ(int64_t(got.pixels.size()), w.numel());
    if (int64_t(got.pixels.size()) != w.numel()) return w.numel();
    int64_t n = 0;
    for (int64_t i = 0; i < w.numel(); ++i) n += got.pixels[size_t(i)] != w.data<uint8_t>()[i];
    return n;
}

}  // namespace

class Canny : public ::testing::TestWithParam<std::string> {};

// The bound is 0.1% of pixels; easel's port gives OpenCV's map exactly, which the test holds it to.
TEST_P(Canny, EqualsOpenCV) {
    const std::string name = GetParam();
    const nlohmann::json j = meta(name + ".params");
    const Image img = input(j["image"].get<std::string>());
    const Image edges = canny(img, j["low"].get<double>(), j["high"].get<double>(), j["L2gradient"].get<bool>());
    const Tensor* want = golden_file(kGolden).find(name);
    ASSERT_TRUE(want);
    const int64_t diff = differing(edges, *want);
    int64_t on = 0;
    for (uint8_t v : edges.pixels) on += v != 0;
    std::printf("%-44s %lld of %lld pixels differ; %lld edge pixels\n", name.c_str(), (long long)diff,
                (long long)edges.pixels.size(), (long long)on);
    EXPECT_EQ(diff, 0);
}

INSTANTIATE_TEST_SUITE_P(Goldens, Canny, ::testing::ValuesIn(cases_of("canny_raw")),
                         [](const ::testing::TestParamInfo<std::string>& i) {
                             std::string s = i.param.substr(10);
                             for (char& ch : s)
                                 if (ch == '.') ch = '_';
                             return s;
                         });

// The extension's whole canny at its processor_res: the image resized so its shorter side is `res` (OpenCV's cubic
// or area), padded to multiples of 64 by edge repetition, canny, the pad cut off.
TEST(Preprocessors, CannyAtTheExtensionsResolution) {
    const auto names = cases_of("canny_a1111");
    ASSERT_FALSE(names.empty());
    for (const std::string& name : names) {
        const nlohmann::json j = meta(name + ".params");
        PreprocessorSpec spec{.module = "canny", .threshold_a = j["low"].get<double>(), .threshold_b = j["high"].get<double>(),
                              .resolution = j["res"].get<int>()};
        auto map = run_preprocessor(spec, input(j["image"].get<std::string>()));
        ASSERT_TRUE(map) << map.error().to_string();
        const Tensor* want = golden_file(kGolden).find(name);
        ASSERT_TRUE(want);
        ASSERT_EQ(map->height, want->size(0)) << name;
        ASSERT_EQ(map->width, want->size(1)) << name;
        Image gray{map->width, map->height, 1, std::vector<uint8_t>(size_t(map->width) * size_t(map->height))};
        for (size_t p = 0; p < gray.pixels.size(); ++p) gray.pixels[p] = map->pixels[p * 3];
        const int64_t diff = differing(gray, *want);
        std::printf("%-44s res %d (%s) -> %dx%d: %lld pixels differ\n", name.c_str(), spec.resolution,
                    j["interpolation"].get<std::string>().c_str(), map->width, map->height, (long long)diff);
        EXPECT_EQ(diff, 0) << name;
    }
    PreprocessorSpec huge{.module = "canny", .resolution = 2048};
    Image thin{2, 400, 3, std::vector<uint8_t>(2 * 400 * 3, 128)};  // would become 2048 x 409600
    auto refused = run_preprocessor(huge, thin);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message().find("at most 16384 on a side"), std::string::npos) << refused.error().to_string();
    auto too_fine = run_preprocessor({.module = "canny", .resolution = 4096}, thin);
    ASSERT_FALSE(too_fine);
    EXPECT_NE(too_fine.error().message().find("between 0 (the image's own size) and 2048"), std::string::npos)
        << too_fine.error().to_string();
    EXPECT_EQ(pixel_perfect_resolution(150, 113, 512, 512, false), 512);  // max(512 / 113, 512 / 150) x 113
    EXPECT_EQ(pixel_perfect_resolution(150, 113, 512, 512, true), 386);   // min: 512 / 150 x 113 = 385.7
}

TEST(Preprocessors, InvertEqualsTheExtension) {
    for (const std::string& name : cases_of("invert")) {
        const nlohmann::json j = meta(name + ".params");
        auto out = run_preprocessor({.module = "invert"}, input(j["image"].get<std::string>()));
        ASSERT_TRUE(out) << out.error().to_string();
        EXPECT_EQ(differing(*out, *golden_file(kGolden).find(name)), 0) << name;
    }
}

TEST(Preprocessors, ThresholdEqualsTheExtension) {
    for (const std::string& name : cases_of("threshold")) {
        const nlohmann::json j = meta(name + ".params");
        auto out = run_preprocessor({.module = "threshold", .threshold_a = j["thr"].get<double>()},
                                    input(j["image"].get<std::string>()));
        ASSERT_TRUE(out) << out.error().to_string();
        EXPECT_EQ(differing(*out, *golden_file(kGolden).find(name)), 0) << name;
    }
}

// tile_resample: OpenCV's INTER_AREA (fractional and whole-number scales), or the image itself below 1.1.
TEST(Preprocessors, TileResampleEqualsTheExtension) {
    for (const std::string& name : cases_of("tile_resample")) {
        const nlohmann::json j = meta(name + ".params");
        auto out = run_preprocessor({.module = "tile_resample", .threshold_a = j["rate"].get<double>()},
                                    input(j["image"].get<std::string>()));
        ASSERT_TRUE(out) << out.error().to_string();
        const Tensor* want = golden_file(kGolden).find(name);
        ASSERT_EQ(out->height, want->size(0)) << name;
        ASSERT_EQ(out->width, want->size(1)) << name;
        const int64_t diff = differing(*out, *want);
        std::printf("%-44s %dx%d, %lld values differ\n", name.c_str(), out->width, out->height, (long long)diff);
        EXPECT_EQ(diff, 0) << name;
    }
}

// scribble_xdog: the blurs are float sums, perhaps in another order than OpenCV's SIMD filters, so a value at the
// edge of an 8-bit step could land on the other side: held to the 0.1% of pixels (none differ on these).
TEST(Preprocessors, ScribbleXdogMatchesTheExtension) {
    for (const std::string& name : cases_of("scribble_xdog")) {
        const nlohmann::json j = meta(name + ".params");
        auto out = run_preprocessor({.module = "scribble_xdog", .threshold_a = j["thr"].get<double>()},
                                    input(j["image"].get<std::string>()));
        ASSERT_TRUE(out) << out.error().to_string();
        const int64_t diff = differing(*out, *golden_file(kGolden).find(name)) / 3;
        const int64_t pixels = int64_t(out->width) * out->height;
        int64_t on = 0;
        for (size_t p = 0; p < size_t(pixels); ++p) on += out->pixels[p * 3] != 0;
        std::printf("%-44s %lld of %lld pixels differ; %lld white\n", name.c_str(), (long long)diff, (long long)pixels,
                    (long long)on);
        EXPECT_LE(diff * 1000, pixels) << name;
    }
}

// The canny module: 3 identical channels (the extension's GRAY2RGB), the thresholds checked first.
TEST(Preprocessors, CannyModuleAndItsErrors) {
    const Image img = input("shapes_150x113");
    auto out = run_preprocessor({.module = "canny"}, img);
    ASSERT_TRUE(out) << out.error().to_string();
    ASSERT_EQ(out->channels, 3);
    const Image gray = canny(img, 100, 200);
    for (size_t p = 0; p < gray.pixels.size(); ++p)
        ASSERT_TRUE(out->pixels[p * 3] == gray.pixels[p] && out->pixels[p * 3 + 2] == gray.pixels[p]) << p;
    EXPECT_EQ(preprocessor_sliders({.module = "canny", .threshold_a = 50}), ", Threshold A: 50, Threshold B: 200");
    EXPECT_EQ(preprocessor_sliders({.module = "invert"}), "");
    auto bad = run_preprocessor({.module = "canny", .threshold_b = 300}, img);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().to_string().find("between 1 and 255"), std::string::npos) << bad.error().to_string();
    auto unknown = run_preprocessor({.module = "openpose"}, img);
    ASSERT_FALSE(unknown);
    EXPECT_NE(unknown.error().to_string().find("'openpose' is not available"), std::string::npos) << unknown.error().to_string();
}
