#include "pipeline/control_preprocess.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "io/image_filters.h"
#include "io/image_resize.h"

namespace easel {

namespace {

struct Module {
    const char* name;
    int sliders;                   // how many of threshold_a, threshold_b it reads
    double a, b;                   // their defaults
    double lo, hi, step;           // their range and step
    const char* a_name = nullptr;  // their names in the extension's UI
    const char* b_name = nullptr;
    bool resolution = false;       // runs at the extension's processor_res (resize_image_with_pad)
};

constexpr Module kModules[] = {
    {"none", 0, 0, 0, 0, 0, 0},
    {"canny", 2, 100, 200, 1, 255, 1, "Canny Low Threshold", "Canny High Threshold", true},
    {"invert", 0, 0, 0, 0, 0, 0},
    {"threshold", 1, 127, 0, 0, 255, 1, "Binarization Threshold", nullptr, true},
    {"tile_resample", 1, 1, 0, 1, 8, 0.01, "Down Sampling Rate"},
    {"scribble_xdog", 1, 32, 0, 1, 64, 1, "XDoG Threshold", nullptr, true},
    {"inpaint", 0, 0, 0, 0, 0, 0},
    {"inpaint_global_harmonious", 0, 0, 0, 0, 0, 0},
};

// The shorter side resized to `res` (OpenCV's cubic when growing, area otherwise), the rest to round(side x k).
Result<Image> resize_to_resolution(const Image& rgb, int res) {
    const double k = double(res) / double(std::min(rgb.width, rgb.height));
    const double w = std::nearbyint(rgb.width * k), h = std::nearbyint(rgb.height * k);
    if (!(w <= kMaxImageSide && h <= kMaxImageSide))
        return Error::invalid_argument(fmt::format("resolution {} would make the {}x{} image {}x{}; at most {} on a side",
                                                   res, rgb.width, rgb.height, w, h, kMaxImageSide), "resolution");
    return k > 1 ? resize_cubic_opencv(rgb, int(w), int(h)) : resize_area_opencv(rgb, int(w), int(h));
}

// Repeats the last row and column up to multiples of 64 (np.pad mode "edge").
Image pad_to_64(const Image& x) {
    const int W = (x.width + 63) / 64 * 64, H = (x.height + 63) / 64 * 64;
    Image r{W, H, x.channels, std::vector<uint8_t>(size_t(W) * size_t(H) * size_t(x.channels))};
    const size_t cn = size_t(x.channels);
    for (int y = 0; y < H; ++y)
        for (int i = 0; i < W; ++i)
            std::copy_n(&x.pixels[(size_t(std::min(y, x.height - 1)) * size_t(x.width) + size_t(std::min(i, x.width - 1))) * cn], cn,
                        &r.pixels[(size_t(y) * size_t(W) + size_t(i)) * cn]);
    return r;
}

const Module* find_module(const std::string& name) {
    for (const Module& m : kModules)
        if (name == m.name) return &m;
    return nullptr;
}

}  // namespace

std::vector<std::string> preprocessor_modules() {
    std::vector<std::string> r;
    for (const Module& m : kModules) r.push_back(m.name);
    return r;
}

Status validate_preprocessor(const PreprocessorSpec& s) {
    const Module* m = find_module(s.module == "None" ? "none" : s.module);
    if (s.module.rfind("inpaint_only", 0) == 0)
        return Error::unsupported(fmt::format("preprocessor '{}' blends latents and pixels as the extension does; easel "
                                              "has 'inpaint' (inpaint_global_harmonious): with an inpainting job (a mask) "
                                              "it is the same ControlNet input, blended by easel's own inpainting",
                                              s.module), "module");
    if (!m) {
        std::string all;
        for (const Module& k : kModules) all += fmt::format("{}{}", all.empty() ? "" : ", ", k.name);
        return Error::unsupported(fmt::format("preprocessor '{}' is not available in easel (it has {}); make the control "
                                              "map yourself and give it with 'none'", s.module, all), "module");
    }
    if (s.resolution < 0 || s.resolution > kMaxPreprocessorResolution)
        return Error::invalid_argument(fmt::format("must be between 0 (the image's own size) and {}, got {}",
                                                   kMaxPreprocessorResolution, s.resolution), "resolution");
    int i = 0;
    for (const auto& [v, name] : {std::pair{s.threshold_a, "threshold_a"}, std::pair{s.threshold_b, "threshold_b"}})
        if (i++ < m->sliders && v && !(*v >= m->lo && *v <= m->hi))
            return Error::invalid_argument(fmt::format("{}'s threshold must be between {} and {}, got {}", m->name, m->lo,
                                                       m->hi, *v), name);
    return ok();
}

Result<Image> run_preprocessor(const PreprocessorSpec& s, const Image& image) {
    EASEL_TRY(validate_preprocessor(s));
    const Module* m = find_module(s.module == "None" ? "none" : s.module);
    const std::string name = m->name;
    if (name == "none") return to_rgb(image);
    if (m->resolution && s.resolution > 0) {
        // The extension's resize_image_with_pad: the module runs on the resized image padded to multiples of 64.
        EASEL_TRY_ASSIGN(const Image resized, resize_to_resolution(to_rgb(image), s.resolution));
        PreprocessorSpec own = s;
        own.resolution = 0;
        EASEL_TRY_ASSIGN(const Image map, run_preprocessor(own, pad_to_64(resized)));
        return crop_image(map, 0, 0, resized.width, resized.height);
    }
    if (name == "canny") return to_rgb(canny(to_rgb(image), s.threshold_a.value_or(m->a), s.threshold_b.value_or(m->b)));
    if (name == "invert") return invert(to_rgb(image));
    if (is_inpaint_preprocessor(s))
        return Error::internal("the inpaint preprocessor's map is made by control_hint (pipeline/controlnet.h)");
    if (name == "tile_resample") {
        // The extension: below 1.1 the image as it is; else INTER_AREA to int(w / rate) x int(h / rate).
        const double rate = s.threshold_a.value_or(m->a);
        const Image rgb = to_rgb(image);
        if (rate < 1.1) return rgb;
        const int w = std::max(1, int(double(rgb.width) / rate)), h = std::max(1, int(double(rgb.height) / rate));
        return resize_area_opencv(rgb, w, h);
    }
    if (name == "scribble_xdog") return scribble_xdog(to_rgb(image), int(std::floor(s.threshold_a.value_or(m->a))));
    if (name == "threshold") return threshold(to_rgb(image), int(std::floor(s.threshold_a.value_or(m->a))));
    return Error::internal("preprocessor without an implementation: " + name);
}

std::vector<PreprocessorSlider> preprocessor_slider_info(const std::string& module) {
    const Module* m = find_module(module);
    std::vector<PreprocessorSlider> r;
    if (!m) return r;
    if (m->sliders >= 1) r.push_back({m->a_name, m->a, m->lo, m->hi, m->step});
    if (m->sliders >= 2) r.push_back({m->b_name, m->b, m->lo, m->hi, m->step});
    return r;
}

bool preprocessor_reads_resolution(const std::string& module) {
    const Module* m = find_module(module);
    return m && m->resolution;
}

int extension_resolution(const std::string& module, std::optional<double> processor_res) {
    if (!preprocessor_reads_resolution(module)) return 0;
    return processor_res && *processor_res >= 64 && *processor_res <= kMaxPreprocessorResolution ? int(*processor_res) : 512;
}

int pixel_perfect_resolution(int image_w, int image_h, int width, int height, bool fill) {
    const double k0 = double(height) / double(image_h), k1 = double(width) / double(image_w);
    return int(std::nearbyint((fill ? std::min(k0, k1) : std::max(k0, k1)) * double(std::min(image_h, image_w))));
}

bool is_inpaint_preprocessor(const PreprocessorSpec& s) {
    return s.module == "inpaint" || s.module == "inpaint_global_harmonious";
}

std::string preprocessor_name(const PreprocessorSpec& s) { return s.module == "None" ? "none" : s.module; }

std::string preprocessor_sliders(const PreprocessorSpec& s) {
    const Module* m = find_module(preprocessor_name(s));
    if (!m || m->sliders == 0) return "";
    const std::string res = m->resolution && s.resolution > 0 ? fmt::format(", Processor Res: {}", s.resolution) : "";
    if (m->sliders == 1) return fmt::format("{}, Threshold A: {}", res, s.threshold_a.value_or(m->a));
    return fmt::format("{}, Threshold A: {}, Threshold B: {}", res, s.threshold_a.value_or(m->a), s.threshold_b.value_or(m->b));
}

}  // namespace easel
