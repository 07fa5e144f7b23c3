// ControlNet preprocessors that need no model, as AUTOMATIC1111's ControlNet extension names them: what turns
// an uploaded picture into the control map a ControlNet reads (edges for canny, ...). "none" passes the image as
// it is. Each runs at the image's own size (the extension first resizes to its "processor_res", 512 by default;
// diffusers' examples run cv2.Canny on the image as given, as easel does).
//
//   EASEL_TRY_ASSIGN(Image edges, run_preprocessor({.module = "canny", .threshold_a = 100, .threshold_b = 200}, photo));
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/image.h"

namespace easel {

struct PreprocessorSpec {
    std::string module = "none";
    // The extension's two sliders; unset: the module's defaults (canny: low 100, high 200).
    std::optional<double> threshold_a, threshold_b;
};

// The modules run here, in the extension's names.
std::vector<std::string> preprocessor_modules();
// A module's sliders as the extension's /controlnet/module_list describes them (its module_detail): threshold_a
// first, then threshold_b.
struct PreprocessorSlider {
    std::string name;
    double value, min, max, step;
};
std::vector<PreprocessorSlider> preprocessor_slider_info(const std::string& module);
// Checks the module and its thresholds (canny: 1..255 each, as the extension's sliders) before any work.
Status validate_preprocessor(const PreprocessorSpec& spec);
// The control map: RGB. Not for the inpaint module, whose map is not an image (pipeline/controlnet.h control_hint).
Result<Image> run_preprocessor(const PreprocessorSpec& spec, const Image& image);
// The inpaint module ("inpaint", "inpaint_global_harmonious"): masked pixels become -1.
bool is_inpaint_preprocessor(const PreprocessorSpec& spec);
// The infotext's "Module" ("none" for "None") and, for modules with sliders, ", Threshold A: 100, Threshold B: 200"
// (the extension writes them after the weight), else "".
std::string preprocessor_name(const PreprocessorSpec& spec);
std::string preprocessor_sliders(const PreprocessorSpec& spec);

}  // namespace easel
