// ControlNet preprocessors that need no model, as AUTOMATIC1111's ControlNet extension names them: what turns
// an uploaded picture into the control map a ControlNet reads (edges for canny, ...). "none" passes the image as
// it is. Each runs at the image's own size (diffusers' examples run cv2.Canny on the image as given), or, given a
// resolution, as the extension runs it at its "processor_res" (512 by default).
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
    // The extension's "processor_res", for the modules that read it (canny, threshold, scribble_xdog): the image is
    // first resized so its shorter side is this long (round(side x k), half to even; OpenCV's INTER_CUBIC when it
    // grows, else INTER_AREA), padded to multiples of 64 by repeating its last row and column, the module run on
    // that, and the pad cut off: the map has the resized size. 0: the image's own size. At most
    // kMaxPreprocessorResolution (the extension's slider's maximum), and the resized image at most kMaxImageSide on
    // each side.
    int resolution = 0;
};
constexpr int kMaxPreprocessorResolution = 2048;

// Whether a module reads PreprocessorSpec::resolution.
bool preprocessor_reads_resolution(const std::string& module);
// The resolution the extension runs `module` at for a client's processor_res: its slider's 64..2048, anything else
// (the extension's -1, or none) its default, 512; 0 for a module that reads no resolution.
int extension_resolution(const std::string& module, std::optional<double> processor_res);
// The extension's "pixel perfect" resolution for an image of image_w x image_h and a generation of width x height:
// round(min(H, W) x k) (half to even), k = min(height / H, width / W) for "Resize and Fill", else the max.
int pixel_perfect_resolution(int image_w, int image_h, int width, int height, bool fill);

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
// (the extension writes them after the weight; ", Processor Res: 512" first when a resolution is set), else "".
std::string preprocessor_name(const PreprocessorSpec& spec);
std::string preprocessor_sliders(const PreprocessorSpec& spec);

}  // namespace easel
