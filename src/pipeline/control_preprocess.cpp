#include "pipeline/control_preprocess.h"

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
};

constexpr Module kModules[] = {
    {"none", 0, 0, 0, 0, 0, 0},
    {"canny", 2, 100, 200, 1, 255, 1, "Canny Low Threshold", "Canny High Threshold"},
    {"invert", 0, 0, 0, 0, 0, 0},
    {"threshold", 1, 127, 0, 0, 255, 1, "Binarization Threshold"},
    {"tile_resample", 1, 1, 0, 1, 8, 0.01, "Down Sampling Rate"},
    {"scribble_xdog", 1, 32, 0, 1, 64, 1, "XDoG Threshold"},
    {"inpaint", 0, 0, 0, 0, 0, 0},
    {"inpaint_global_harmonious", 0, 0, 0, 0, 0, 0},
};

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

bool is_inpaint_preprocessor(const PreprocessorSpec& s) {
    return s.module == "inpaint" || s.module == "inpaint_global_harmonious";
}

std::string preprocessor_name(const PreprocessorSpec& s) { return s.module == "None" ? "none" : s.module; }

std::string preprocessor_sliders(const PreprocessorSpec& s) {
    const Module* m = find_module(preprocessor_name(s));
    if (!m || m->sliders == 0) return "";
    if (m->sliders == 1) return fmt::format(", Threshold A: {}", s.threshold_a.value_or(m->a));
    return fmt::format(", Threshold A: {}, Threshold B: {}", s.threshold_a.value_or(m->a), s.threshold_b.value_or(m->b));
}

}  // namespace easel
