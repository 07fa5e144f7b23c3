// Renames an original-LDM single-file checkpoint (v1-5-pruned-emaonly.safetensors, SD 2.x .ckpt...) to
// diffusers state-dict names, which is what our models declare (STYLE.md section 4). Names and views only:
// no tensor data is read or copied. The result holds every component under its diffusers folder name:
//
//   model.diffusion_model.*                     -> unet.*            (UNet2DConditionModel names)
//   first_stage_model.*                         -> vae.*             (AutoencoderKL names)
//   cond_stage_model.transformer.text_model.*   -> text_encoder.text_model.*  (SD 1.x, OpenAI CLIP-L)
//   cond_stage_model.model.*                    -> text_encoder.text_model.*  (SD 2.x, OpenCLIP-H; fused
//                                                  in_proj split into q/k/v slices, last layer dropped)
// and SDXL's (Stability's generative-models "sgm" layout of sd_xl_base_1.0.safetensors):
//   model.diffusion_model.label_emb.0.{0,2}.*   -> unet.add_embedding.linear_{1,2}.*
//   conditioner.embedders.0.transformer.*       -> text_encoder.*    (CLIP-L, transformers names)
//   conditioner.embedders.1.model.*             -> text_encoder_2.*  (OpenCLIP bigG: every layer kept, and
//   (the refiner: conditioner.embedders.0.model.*)                    text_projection [width, embed], used as
//                                                                     x @ P, becomes the Linear weight P^T)
//
//   EASEL_TRY_ASSIGN(WeightSet ldm, read_safetensors("v1-5-pruned-emaonly.safetensors"));
//   KeymapReport report;
//   EASEL_TRY_ASSIGN(WeightSet w, ldm_to_diffusers(std::move(ldm), LdmKeymapOptions{}, &report));
//   const Tensor* t = w.find("unet.down_blocks.0.resnets.0.conv1.weight");
//   // report.ignored: EMA copies, schedule buffers, position_ids... ; report.unknown: nothing matched them
//
// The UNet's index arithmetic (input_blocks.N -> down_blocks.L.resnets.J) depends on the number of levels and
// resnets per level; both come from LdmUNetLayout, filled from a UNetConfig or read off the names
// (infer_ldm_unet_layout). Facts ported from diffusers v0.30.3 loaders/single_file_utils.py
// (convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint,
// convert_open_clip_checkpoint) and checked against it by tests/data/keys (tools/reference/make_key_lists.py).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "io/weights.h"

namespace easel {

// Component prefixes of the original LDM layout.
inline constexpr std::string_view kLdmUNetPrefix = "model.diffusion_model.";
inline constexpr std::string_view kLdmVAEPrefix = "first_stage_model.";
inline constexpr std::string_view kLdmCLIPPrefix = "cond_stage_model.transformer.";  // then text_model.*
inline constexpr std::string_view kLdmOpenCLIPPrefix = "cond_stage_model.model.";
inline constexpr std::string_view kSgmPrefix = "conditioner.embedders.";                     // SDXL
inline constexpr std::string_view kSgmCLIPPrefix = "conditioner.embedders.0.transformer.";   // then text_model.*
inline constexpr std::string_view kSgmOpenCLIPPrefix = "conditioner.embedders.1.model.";     // base: bigG
inline constexpr std::string_view kSgmRefinerOpenCLIPPrefix = "conditioner.embedders.0.model.";  // refiner: bigG

struct LdmUNetLayout {
    int num_levels = 4;        // UNetConfig::num_levels()
    int layers_per_block = 2;  // UNetConfig::layers_per_block
};

// Reads the layout off the names under `prefix`: input_blocks.(layers_per_block+1).0.op is the first
// downsampler, and the input/output block counts are num_levels*(layers_per_block+1). Fails when the names
// are inconsistent with any layout.
Result<LdmUNetLayout> infer_ldm_unet_layout(const WeightSet& w, std::string_view prefix = kLdmUNetPrefix);
// Number of VAE levels: encoder.down.N blocks under `prefix`.
Result<int> infer_ldm_vae_levels(const WeightSet& w, std::string_view prefix = kLdmVAEPrefix);

// Name maps, one component each; the name is given without its component prefix. nullopt: no rule matches.
std::optional<std::string> ldm_unet_name_to_diffusers(std::string_view name, const LdmUNetLayout& layout);
std::optional<std::string> ldm_vae_name_to_diffusers(std::string_view name, int num_levels);

struct LdmKeymapOptions {
    // Layouts; left empty they are read off the names (infer_ldm_unet_layout / infer_ldm_vae_levels).
    std::optional<LdmUNetLayout> unet;
    std::optional<int> vae_levels;
    // OpenCLIP text tower: how many resblocks to keep. Empty: all stored but the last, SD 2.x's "penultimate"
    // (what diffusers' SD 2 text_encoder with num_hidden_layers 23 holds).
    std::optional<int> open_clip_layers;
    // Unknown names fail the conversion (listing all of them) unless this is false; they are always reported.
    bool fail_on_unknown = true;
};

struct KeymapReport {
    std::vector<std::string> ignored;  // known extras dropped quietly: EMA copies, schedule buffers, ...
    std::vector<std::string> unknown;  // names no rule matched, in file order
};

// Consumes `ldm` (its tensors become views in the result). `report` may be null.
Result<WeightSet> ldm_to_diffusers(WeightSet&& ldm, const LdmKeymapOptions& options = {},
                                   KeymapReport* report = nullptr);

// True for names that are known not to be weights of the three models (see the .cpp for the list).
bool is_known_ldm_extra(std::string_view name);

}  // namespace easel
