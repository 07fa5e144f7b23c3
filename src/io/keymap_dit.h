// Single-file layouts of the diffusion transformers, renamed to diffusers' names (what the model folders use):
// Stability's SD3 / SD3.5 MMDiT (sd3_medium.safetensors, sd3.5_large.safetensors: model.diffusion_model.joint_blocks.*)
// and Black Forest Labs' Flux.1 (flux1-dev.safetensors: double_blocks.*, single_blocks.*). The rules are diffusers
// 0.30.3/0.31.0's single-file converters run backwards (tools/reference/make_sd3_key_lists.py proves them on the
// real key lists): fused q|k|v (and Flux's single-block q|k|v|mlp) rows split into views, no transposes, and the
// two [shift; scale] modulations that diffusers stores as [scale; shift] (SD3's last context block, both final
// layers) swapped into a copy.
//
//   EASEL_TRY_ASSIGN(WeightSet t, sd3_transformer_to_diffusers(std::move(w), "model.diffusion_model.", "transformer."));
//   EASEL_TRY_ASSIGN(WeightSet f, flux_transformer_to_diffusers(std::move(w), "", "transformer."));
#pragma once

#include <string_view>

#include "core/error.h"
#include "io/weights.h"

namespace easel {

// Every tensor under `from` is renamed to diffusers' under `to`; tensors outside `from` are kept as they are. A
// name under `from` that the layout does not have, or a fused tensor whose rows do not split evenly, is an error
// naming it.
Result<WeightSet> sd3_transformer_to_diffusers(WeightSet w, std::string_view from, std::string_view to);
Result<WeightSet> flux_transformer_to_diffusers(WeightSet w, std::string_view from, std::string_view to);

}  // namespace easel
