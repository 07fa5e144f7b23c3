// detect_model: which model a weight file holds, in which layout, and the configs to build it with — from
// tensor names and shapes only (no data is read), plus whatever config travelled with the model.
//
//   EASEL_TRY_ASSIGN(WeightSet w, read_safetensors(path));
//   ModelConfigSources src;  src.ldm_yaml = read_text_if_exists(replace_ext(path, ".yaml"));
//   EASEL_TRY_ASSIGN(ModelInfo info, detect_model(w, src));
//   fmt::print("{} ({}), {}\n  unet: {}\n", model_kind_name(info), layout_name(info.layout),
//              dtype_name(info.weight_dtype), info.unet.summary());
//
// Rules (each on names or shapes the layouts define, never on a bare width):
//  - SD3 / Flux: joint_blocks.* / double_blocks.* (MMDiT transformers) -> recognised, Unsupported.
//  - SDXL: text_encoder_2.* or unet.add_embedding.* (diffusers) -> SDXL, with both text encoders' configs;
//    conditioner.embedders.* or label_emb.* (LDM single files) -> recognised, Unsupported for now.
//  - SD 2.x vs 1.x: an OpenCLIP text encoder (cond_stage_model.model.*) is SD 2.x, an OpenAI CLIP one
//    (cond_stage_model.transformer.*) SD 1.x. In the diffusers layout both encoders look alike, so the UNet
//    decides: linear proj_in/proj_out (ldm `use_linear_in_transformer`, introduced with SD 2) is SD 2.x,
//    1x1-conv projections SD 1.x. The UNet's cross-attention width must equal the text encoder's hidden size.
//  - Inpainting: the UNet takes 9 input channels (latent 4 + mask 1 + masked-image latent 4).
// Shapes cannot tell heads, norm groups/eps, upcast, scaling factor or the prediction type. They come from,
// in order: the config that travels with the model (diffusers config.json, LDM yaml, safetensors
// `modelspec.*` metadata), then the family's defaults. SD 2.x's prediction type stays Unknown unless a config
// says it (512-base predicts epsilon, 768-v predicts v, from identical tensors); the caller must then ask.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "io/keymap_ldm.h"
#include "io/weights.h"
#include "models/clip/config.h"
#include "models/unet/config.h"
#include "models/vae/config.h"

namespace easel {

// The architecture family; what a model can do besides txt2img is a capability field of ModelInfo (inpainting).
enum class ModelFamily { SD1, SD2, SDXL, SD3, Flux };
enum class CheckpointLayout { LdmSingleFile, Diffusers };

std::string_view family_name(ModelFamily f);      // "sd1", "sd2", "sdxl", "sd3", "flux"
std::string_view layout_name(CheckpointLayout l);  // "ldm single file", "diffusers"

// Config texts that came with the model; any may be absent. Reading files is the caller's job.
struct ModelConfigSources {
    std::optional<std::string> unet_json;          // unet/config.json
    std::optional<std::string> vae_json;           // vae/config.json
    std::optional<std::string> text_encoder_json;  // text_encoder/config.json
    std::optional<std::string> text_encoder_2_json;  // text_encoder_2/config.json (SDXL)
    std::optional<std::string> scheduler_json;     // scheduler/scheduler_config.json (prediction_type)
    std::optional<std::string> ldm_yaml;           // the .yaml beside a single-file checkpoint
};

struct ModelInfo {
    ModelFamily family = ModelFamily::SD1;
    CheckpointLayout layout = CheckpointLayout::LdmSingleFile;
    DType weight_dtype = DType::F32;  // the float dtype holding most parameters
    bool has_unet = false, has_vae = false, has_text_encoder = false;
    // An inpainting model: its UNet takes the mask and the masked image's latent besides the latent (9 channels).
    bool inpainting = false;
    UNetConfig unet;
    VAEConfig vae;
    CLIPTextConfig text;
    // SDXL's second text encoder (OpenCLIP ViT-bigG with its projection); absent for SD 1.x/2.x.
    bool has_text_encoder_2 = false;
    CLIPTextConfig text_2;
    // Where the non-structural fields came from, and anything the user should know ("prediction type
    // unknown: ..."), one line each, for `easel info`.
    std::vector<std::string> notes;
};

// The family with its capability, as `easel info` and the detection fixtures write it: "sd1", "sd2-inpaint", ...
std::string model_kind_name(const ModelInfo& info);

// `w` in either layout: LDM single file (model.diffusion_model.*, ...), a merged diffusers set
// (unet.*, vae.*, text_encoder.*), or one diffusers component file without a prefix.
Result<ModelInfo> detect_model(const WeightSet& w, const ModelConfigSources& sources = {});

// The layout a UNet config implies for the LDM rename (src/io/keymap_ldm.h).
LdmUNetLayout ldm_layout_of(const UNetConfig& c);

}  // namespace easel
