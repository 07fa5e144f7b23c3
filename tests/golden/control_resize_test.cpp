// Control maps fitted to the generation's size as AUTOMATIC1111's ControlNet extension fits them (k-diffusion mode),
// and the OpenCV 4.6 resizes it uses, against Debian's python3-opencv (tools/reference/make_control_resize_goldens.py,
// the extension's detectmap_proc / high_quality_resize restated; and make_preprocessor_goldens.py's resize-with-pad):
// one-pixel edges (NMS, Otsu, thinning), thick binary maps, few-colour maps (nearest), images (area, cubic, and
// area's linear mode when one side grows), in Just Resize, Crop and Resize, Resize and Fill. Every pixel equal.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "common/golden.h"
#include "io/image.h"
#include "io/image_resize.h"
#include "pipeline/control_resize.h"

using namespace easel;
using easel::testing::golden_file;

namespace {

const char* const kGolden = "control_resize_cases.safetensors";

nlohmann::json meta(const std::string& key) { return nlohmann::json::parse(golden_file(kGolden).metadata.at(key)); }

// A uint8 [H, W, C] golden tensor as an image.
Image image_of(const Tensor& t) {
    const Tensor c = t.contiguous();
    Image img{int(c.size(1)), int(c.size(0)), int(c.size(2)), {}};
    img.pixels.assign(c.data<uint8_t>(), c.data<uint8_t>() + c.numel());
    return img;
}

// Values (of every channel) where `got` differs from the golden tensor; its shape must match.
int64_t differing(const Image& got, const Tensor& want) {
    EXPECT_EQ(got.height, want.size(0));
    EXPECT_EQ(got.width, want.size(1));
    const Tensor w = want.contiguous();
    if (int64_t(got.pixels.size()) != w.numel()) return w.numel();
    int64_t n = 0;
    for (int64_t i = 0; i < w.numel(); ++i) n += got.pixels[size_t(i)] != w.data<uint8_t>()[i];
    return n;
}

Image map_named(const std::string& key) { return image_of(*golden_file(kGolden).find("map." + key)); }

}  // namespace

class ControlMapFit : public ::testing::TestWithParam<std::string> {};

TEST_P(ControlMapFit, EqualsTheExtension) {
    const std::string name = GetParam();
    const nlohmann::json j = meta(name + ".params");
    const std::string mode = j["mode"];
    const ControlResize resize = mode == "Just Resize" ? ControlResize::Stretch
                                 : mode == "Crop and Resize" ? ControlResize::Crop : ControlResize::Fill;
    const Image map = map_named(j["map"]);
    const Image got = fit_control_map_a1111(map, j["width"].get<int>(), j["height"].get<int>(), resize);
    const int64_t diff = differing(got, *golden_file(kGolden).find(name + ".output"));
    std::printf("%-36s %dx%d -> %dx%d (%s): %lld of %zu values differ\n", name.c_str(), map.width, map.height, got.width,
                got.height, j.value("interpolation", "").c_str(), (long long)diff, got.pixels.size());
    EXPECT_EQ(diff, 0);
}

INSTANTIATE_TEST_SUITE_P(Goldens, ControlMapFit, ::testing::ValuesIn(meta("cases").get<std::vector<std::string>>()),
                         [](const ::testing::TestParamInfo<std::string>& i) {
                             std::string s = i.param;
                             for (char& ch : s)
                                 if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                             return s;
                         });

TEST(OpenCVResize, CubicAndNearestEqualOpenCV) {
    for (const std::string& name : meta("resizes").get<std::vector<std::string>>()) {
        const nlohmann::json j = meta(name + ".params");
        const Image map = map_named(j["map"]);
        const int w = j["width"], h = j["height"];
        const Image got = name.rfind("cubic.", 0) == 0 ? resize_cubic_opencv(map, w, h) : resize_nearest_opencv(map, w, h);
        const int64_t diff = differing(got, *golden_file(kGolden).find(name + ".output"));
        std::printf("%-36s %lld of %zu values differ\n", name.c_str(), (long long)diff, got.pixels.size());
        EXPECT_EQ(diff, 0) << name;
    }
}

// make_preprocessor_goldens.py's resize-with-pad: the image resized with INTER_CUBIC (growing) or INTER_AREA
// (shrinking) to the target size, before the pad.
TEST(OpenCVResize, ResizeWithPadEqualsOpenCV) {
    const char* const pre = "preprocessor_cases.safetensors";
    const WeightSet& cases = golden_file(pre);
    const auto names = nlohmann::json::parse(cases.metadata.at("cases"))["resize_with_pad"].get<std::vector<std::string>>();
    ASSERT_FALSE(names.empty());
    for (const std::string& name : names) {
        const nlohmann::json j = nlohmann::json::parse(cases.metadata.at(name + ".params"));
        auto img = read_image(std::string(EASEL_GOLDEN_DIR) + "/preprocessors/" + j["image"].get<std::string>() + ".png");
        ASSERT_TRUE(img) << img.error().to_string();
        const int w = j["W_target"], h = j["H_target"];
        const Image got = j["interpolation"] == "INTER_CUBIC" ? resize_cubic_opencv(*img, w, h) : resize_area_opencv(*img, w, h);
        const Tensor padded = cases.find(name)->contiguous();
        Image want{w, h, 3, std::vector<uint8_t>(size_t(w) * size_t(h) * 3)};
        for (int y = 0; y < h; ++y)
            std::copy_n(padded.data<uint8_t>() + int64_t(y) * padded.size(1) * 3, size_t(w) * 3, &want.pixels[size_t(y) * size_t(w) * 3]);
        int64_t diff = 0;
        for (size_t i = 0; i < want.pixels.size(); ++i) diff += got.pixels[i] != want.pixels[i];
        std::printf("%-44s %s %dx%d -> %dx%d: %lld values differ\n", name.c_str(), j["interpolation"].get<std::string>().c_str(),
                    img->width, img->height, w, h, (long long)diff);
        EXPECT_EQ(diff, 0) << name;
    }
}
