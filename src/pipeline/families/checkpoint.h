// Reading a checkpoint for any family: a diffusers folder (model_index.json and its components' weights and
// configs) or a single file (.safetensors, .ckpt/.pt, .gguf; LDM names renamed to diffusers'), detected
// (models/detect.h) on the names and shapes as stored. No weight data is read: tensors are views of mappings.
//
//   EASEL_TRY_ASSIGN(Checkpoint ck, read_checkpoint("models/sd_xl_base_1.0"));
//   if (ck.info.family == ModelFamily::SDXL) ...   // a family's claim
#pragma once

#include <map>
#include <string>
#include <vector>

#include "models/detect.h"
#include "pipeline/model.h"

namespace easel {

struct Checkpoint {
    WeightSet weights;  // diffusers names: unet.*, vae.*, text_encoder.*, text_encoder_2.*
    ModelInfo info;     // detected on the weights as the file holds them (layout, family, configs)
    ModelConfigSources sources;
    std::string tokenizer_dir;    // diffusers tokenizer/ folder, if any
    std::string tokenizer_2_dir;  // tokenizer_2/ (SDXL)
    std::map<std::string, std::string> pipeline_options;  // model_index.json's other entries, as JSON text
    ModelDefaults defaults;
    std::vector<std::string> notes;
};

Result<Checkpoint> read_checkpoint(const std::string& path);

}  // namespace easel
