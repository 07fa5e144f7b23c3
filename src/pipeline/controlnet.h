// ControlNets at sampling time: files read and matched to the model they steer, control images prepared as the
// reference prepares them, and the residuals each model call gets (DenoiserHooks::control).
//
//   EASEL_TRY_ASSIGN(auto net, load_controlnet("control_v11p_sd15_canny.safetensors", model->info, Precision::F32));
//   p.control.push_back({.net = net, .image = edges, .scale = 0.8});
//   EASEL_TRY_ASSIGN(auto images, generate(*model, p));
//
// Files: a diffusers ControlNetModel folder (config.json + diffusion_pytorch_model[.fp16].safetensors or .bin),
// or one file (.safetensors, .pth/.ckpt through the safe pickle reader) in diffusers' names or in the original
// ControlNet layout (lllyasviel's cldm: control_model.input_hint_block.*, zero_convs.*, middle_block_out.*, the
// UNet half in LDM names; with or without the control_model. prefix). Semantics are diffusers v0.30.3's
// StableDiffusion[XL]ControlNetPipeline: the control image resized to the output size with Pillow's LANCZOS and
// scaled to [0, 1]; residuals times the scale, in guess mode from 0.1 to 1 and only for the prompt's half of the
// batch; a unit acts at step i of N unless i/N < start or (i+1)/N > end; several units' residuals summed.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/image.h"
#include "models/detect.h"
#include "models/unet/controlnet.h"
#include "pipeline/control_preprocess.h"
#include "pipeline/control_resize.h"
#include "pipeline/interfaces.h"

namespace easel {

struct ControlNetFile {
    std::string path;
    std::string name;  // the file or folder name without extension
    ControlNetConfig config;
    ControlNet net;
};

// Reads a ControlNet and checks it fits a model described by `base`: the same UNet widths, levels, resnets
// per level and cross-attention width, and SDXL's added conditioning exactly when the model has it. Errors name
// the file and what differs ("a ControlNet for SDXL (cross-attention width 2048) given to an SD 1.x model (768)").
Result<std::shared_ptr<const ControlNetFile>> load_controlnet(const std::string& path, const ModelInfo& base,
                                                              Precision precision);

// The same from weights already read (`config_text`: the folder's config.json, or empty: read off the tensors and
// the model's own heads); `weights_path` names them in messages. For tests and fuzzing.
Result<std::shared_ptr<const ControlNetFile>> controlnet_from_weights(WeightSet&& weights, std::string config_text,
                                                                      const ModelInfo& base, Precision precision,
                                                                      const std::string& weights_path);

// The original layout's names (control_model. prefix optional) renamed to diffusers' ControlNetModel names;
// a set already in diffusers names is returned as it is. Exposed for tests and fuzzing.
Result<WeightSet> controlnet_to_diffusers(WeightSet&& w);

// A1111's control modes. In k-diffusion mode as the extension applies them (residual i of the ControlNet's
// outputs, down first and the mid block's last, times weight x 0.825^(12 - i) in the two "important" modes; with
// "ControlNet is more important" only on the prompt's half of CFG). In diffusers mode ControlNetMoreImportant is
// diffusers' guess_mode (scales logspace(-1, 0), the ControlNet fed the prompt's half only) and
// PromptMoreImportant has no counterpart (refused).
enum class ControlMode { Balanced, PromptMoreImportant, ControlNetMoreImportant };
std::string_view control_mode_name(ControlMode m);  // "Balanced", "My prompt is more important", ...

// One ControlNet with its control image and settings (A1111's "ControlNet unit").
struct ControlUnit {
    std::shared_ptr<const ControlNetFile> net;
    Image image;              // RGB(A) or gray, any size: fitted to the output size when it differs
    double scale = 1.0;       // controlnet_conditioning_scale (A1111's Weight)
    double start = 0.0;       // control_guidance_start: fraction of the steps before it acts
    double end = 1.0;         // control_guidance_end: fraction of the steps after which it stops
    ControlMode mode = ControlMode::Balanced;
    // How an image of another shape becomes the output's (pipeline/control_resize.h).
    ControlResize resize = ControlResize::Stretch;
    // What makes the control map from `image` (canny, ...; "none": the image is the map), run once before sampling.
    PreprocessorSpec preprocessor;
    // The inpaint preprocessor's mask (white = repaint); unset: the image's alpha (transparent = repaint, as the
    // extension's canvas), else the generation's inpainting mask.
    std::optional<Image> mask;
};

// Checks units before any work: a network, an image, finite scale, 0 <= start < end <= 1.
Status validate_control(const std::vector<ControlUnit>& units);

// The control image as the pipeline feeds it: RGB, [1, 3, height, width] in [0, 1], fitted to width x height
// when its size differs. `a1111` (k-diffusion mode): as AUTOMATIC1111's ControlNet extension fits it
// (fit_control_map_a1111). Otherwise with Pillow's LANCZOS, as diffusers resizes (see ControlResize; Fill as the
// extension's OUTER_FIT: the image scaled by min(W/w, H/h) to round(w * k) x round(h * k), placed at
// ((W - w') / 2, (H - h') / 2) on border_median_colour).
Tensor prepare_control_image(const Image& image, int width, int height, ControlResize resize = ControlResize::Stretch,
                             bool a1111 = false);

// What a server checks before it queues a job: the file's layout and config read (no weights loaded) and its
// fit with the model, as load_controlnet checks them.
Result<ControlNetConfig> check_controlnet(const std::string& path, const ModelInfo& base);

// The ControlNets of a folder (A1111's models/ControlNet): files (.safetensors, .pth, .pt, .ckpt, .bin) by their
// name without extension and diffusers folders (a config.json inside) by their name, sorted.
std::vector<std::pair<std::string, std::string>> list_controlnets(const std::string& dir);
// The names of list_controlnets, each once (a .bin and a .safetensors of one name are one entry).
std::vector<std::string> list_controlnet_names(const std::string& dir);
// A ControlNet folder beside the model, or beside its folder ("ControlNet", as A1111's models/ControlNet); "" if none.
std::string default_controlnet_dir(const std::string& model_path);
// The file or folder `name` names in `dir`: A1111's "name [hash]" form is matched by its name; of several files
// of that name, the .safetensors one. Errors: none or several others match, or the name holds a path.
Result<std::string> find_controlnet(const std::string& dir, const std::string& name);

// The residuals for each model call of one image: `sigmas` is the run's schedule (steps + 1 values), from which
// a call's step is found (the last sigma >= its own). Each unit's control image embedding is computed once per
// batch size. Returns an empty function for no units.
// The control tensor of one unit, [1, 3, height, width]: its preprocessor's map, resized (prepare_control_image).
// The inpaint module (A1111's inpaint / inpaint_global_harmonious, diffusers' make_inpaint_condition): the image in
// [0, 1] with every pixel the mask marks (above 0.5 after the same resize) set to -1; its mask is the unit's, or
// the image's alpha (transparent, alpha <= 127, marks), or `generation_mask`; it is resized with Pillow's LANCZOS
// in both modes. `a1111`: maps of the other modules fitted as the extension fits them (prepare_control_image).
Result<Tensor> control_hint(const ControlUnit& unit, int width, int height, const std::optional<Image>& generation_mask = {},
                            bool a1111 = false);

// Runs each unit's preprocessor first (its errors are returned). `a1111`: AUTOMATIC1111's semantics (k-diffusion
// mode): its guidance window (pipeline/guidance.h in_guidance_window) and the control modes as the extension
// weights them. Otherwise diffusers' (its control_guidance_start / end per step; guess mode).
using ControlFn = std::function<Result<std::vector<Tensor>>(const Ctx& c, const Tensor& x_in, float t,
                                                            const Conditioning& cond, float sigma)>;
Result<ControlFn> make_control_fn(const std::vector<ControlUnit>& units, int width, int height, std::vector<float> sigmas,
                                  const std::optional<Image>& generation_mask = {}, bool a1111 = false);

// DiffusionInputs::control as the UNet takes it (the last tensor is the mid block's); null for none.
// Errors: a count that does not fit a UNet of `cfg` (skips + 1).
Result<std::optional<ControlResiduals>> control_residuals(const std::vector<Tensor>& control, const UNetConfig& cfg);

}  // namespace easel
