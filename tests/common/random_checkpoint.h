// Random-weight checkpoints with the exact real key layouts, without shipping weights: every tensor is a pure
// function of its index in a published key list (tests/data/keys/<variant>.ldm.json.gz) and torch's CPU
// generator, the rule of tools/reference/make_fullsize_goldens.py, rounded to fp16. Used by the full-size parity
// tests and by the end-to-end benchmark (tools/bench/e2e).
//
//   EASEL_TRY_ASSIGN(WeightSet w, random_checkpoint(keys_path));   // ~1.1 G parameters for SD 1.5
//   EASEL_TRY(write_safetensors("/tmp/sd15-random-fp16.safetensors", w));
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/weights.h"

namespace easel::testing {

// make_fullsize_goldens.py's weight(i, name, shape) in the same float32 arithmetic, as fp16 (position_ids: i64).
Tensor random_checkpoint_weight(size_t index, const std::string& name, const Shape& shape);

// Every tensor of a key list, in its order; the floating-point ones as `dtype`: F16, or F32 holding the same
// fp16-rounded values exactly (what an fp32 export of the same checkpoint holds).
Result<WeightSet> random_checkpoint(const std::string& key_list_path, DType dtype = DType::F16);

// A key list's random checkpoint written as an fp16 .safetensors file; the tensors whose names start with one of
// `scaled` multiplied by `gain` (the reference scripts' gains: powers of two, so exact in fp16). Errors: the list,
// the write, or `scaled` given and no tensor under it.
Status write_random_checkpoint(const std::string& key_list_path, const std::string& out, double gain = 1.0,
                               const std::vector<std::string>& scaled = {});

// One component of a checkpoint in diffusers names ("unet", "vae", "text_encoder", ...): its tensors without the
// "<component>." prefix, as the folder's file for it holds them (metadata format "pt"); empty when it has none.
WeightSet component_weights(const WeightSet& diffusers_names, const std::string& component);

}  // namespace easel::testing
