// Diffusers folders: a pipeline saved by diffusers' save_pretrained (what the Hub serves), one subfolder per
// component listed in model_index.json, each with its config and weights.
//
//   EASEL_TRY_ASSIGN(DiffusersFolder f, open_diffusers_folder("stable-diffusion-v1-5"));
//   EASEL_TRY_ASSIGN(std::string unet_json, component_config(f, "unet"));            // config.json text
//   EASEL_TRY_ASSIGN(WeightSet unet, load_component_weights(f, "unet", "fp16"));     // fp16 if present
//   for (const DiffusersComponent& c : f.components) if (c.enabled) ...              // "vae", "tokenizer"...
//
// Weights of a component (<base> is diffusion_pytorch_model for diffusers models, model / pytorch_model for
// transformers ones), first match wins:
//   with variant V:  <base>.V.safetensors, <base>.safetensors.index.V.json (sharded), <base>.V.bin
//   then, or without a variant:  <base>.safetensors, <base>.safetensors.index.json, <base>.bin
//   without a variant and none of those: a variant file, fp16 first.
// A fallback is logged and recorded in the WeightSet's metadata ("easel.weights_note"). A sharded index maps
// each tensor to a shard file in the same folder; every shard is read and validated, each listed tensor must
// be in its shard, and a missing shard is an error naming it. Names from JSON never escape the folder: a
// component or shard name with a path separator or ".." is refused.
// JSON is parsed inside diffusers_folder.cpp only; configs are handed out as text for the *Config parsers.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "io/weights.h"

namespace easel {

struct DiffusersComponent {
    std::string name;        // "unet", "text_encoder_2", ...: the subfolder
    std::string library;     // "diffusers", "transformers"; empty when disabled
    std::string class_name;  // "UNet2DConditionModel", "CLIPTokenizer"; empty when disabled
    bool enabled = false;    // false for [null, null] entries (e.g. a removed safety_checker)
    bool on_disk = false;    // the subfolder exists
    std::string path;        // folder/name
};

struct DiffusersFolder {
    std::string path;
    std::string pipeline_class;     // model_index "_class_name", e.g. "StableDiffusionPipeline"
    std::string diffusers_version;  // "_diffusers_version"
    std::vector<DiffusersComponent> components;  // sorted by name
    // Other top-level entries (e.g. requires_safety_checker, _name_or_path) as JSON text: "false", "\"x\"".
    std::map<std::string, std::string> options;

    const DiffusersComponent* component(std::string_view name) const;
};

// Reads `path`/model_index.json and looks at each listed component's subfolder.
Result<DiffusersFolder> open_diffusers_folder(const std::string& path);

// The model_index.json part alone (fuzzing, tests): `text` is the file, `folder` is only recorded.
Result<DiffusersFolder> parse_model_index(std::string_view text, const std::string& folder);

// Text of a component's JSON file (config.json by default; scheduler_config.json for schedulers), checked to
// be a JSON object.
Result<std::string> component_config(const DiffusersFolder& folder, std::string_view component,
                                     std::string_view file = "config.json");

// Path of a file inside a component's folder, for non-weight files (tokenizer vocab.json, merges.txt...).
// Errors if the component is unknown or the file does not exist.
Result<std::string> component_file(const DiffusersFolder& folder, std::string_view component, std::string_view file);

// Which weight files load_component_weights would read, and why.
struct ComponentWeightFiles {
    std::vector<std::string> files;  // one, or every shard in index order
    std::string index_file;          // the *.index*.json when sharded, else empty
    std::string variant;             // the variant actually used ("" = none)
    std::string note;                // set when the requested variant was not what was found
};
Result<ComponentWeightFiles> find_component_weights(const DiffusersFolder& folder, std::string_view component,
                                                    std::string_view variant = {});

// Reads a component's weights (safetensors, sharded safetensors, or .bin through read_weights).
Result<WeightSet> load_component_weights(const DiffusersFolder& folder, std::string_view component,
                                         std::string_view variant = {});

// A sharded-weights index (*.safetensors.index.json): tensor name -> shard file name, validated (a JSON object
// with a "weight_map" object of strings, each a plain file name). `where` names the file in messages.
Result<std::map<std::string, std::string>> parse_weight_index(std::string_view text, const std::string& where);

}  // namespace easel
