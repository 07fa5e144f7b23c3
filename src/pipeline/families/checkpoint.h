// Reading a checkpoint for any family: a diffusers folder (model_index.json and its components' weights and
// configs) or a single file (.safetensors, .ckpt/.pt, .gguf; LDM names renamed to diffusers'), detected
// (models/detect.h) on the names and shapes as stored. No weight data is read: tensors are views of mappings.
//
//   EASEL_TRY_ASSIGN(Checkpoint ck, read_checkpoint("models/sd_xl_base_1.0"));
//   if (ck.info.family == ModelFamily::SDXL) ...   // a family's claim
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "io/diffusers_folder.h"
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

// A diffusers folder of a transformer family (SD3, Flux): the listed components' weights as one set, each under
// "<name>.". Required ones must be listed in model_index.json and on disk; optional ones may be absent or null
// (a pipeline saved without T5). `what` names the family in messages ("an SD3 folder").
struct ComponentSet {
    DiffusersFolder folder;  // empty for a single file
    WeightSet weights;
    std::vector<std::string> present;
    // A single file's component configs (easel's metadata keys easel.config.<component>, as easel's own single
    // files carry them); a folder's come from its files.
    std::map<std::string, std::string> configs;
    // Where a single file's components came from (the file, or a component file or folder), for messages.
    std::map<std::string, std::string> sources;
    bool has(std::string_view name) const;
    // The component's config.json (or `file`) text, if it has one.
    std::optional<std::string> config(std::string_view component, std::string_view file = "config.json") const;
    // path/name when that folder exists (tokenizers), else "".
    std::string subfolder(std::string_view name) const;
};
Result<ComponentSet> read_component_set(const std::string& path, const std::vector<std::string>& required,
                                        const std::vector<std::string>& optional, const std::string& variant,
                                        const std::string& what);

// A single-file SD3 / Flux checkpoint and the component files beside it (LoadOptions::component_files), as one
// set in diffusers' names: "transformer." (Stability's model.diffusion_model.* or BFL's names, renamed),
// "vae." (first_stage_model.* / vae.* / BFL's ae names in LDM layout, renamed), the text encoders in transformers'
// names (Stability's text_encoders.clip_l/clip_g/t5xxl.transformer.*, or files): SD3: CLIP-L text_encoder, CLIP-G
// text_encoder_2, T5 text_encoder_3; Flux: CLIP-L text_encoder, T5 text_encoder_2. Two CLIP files are told apart
// by width (L is the narrower). A tensor nothing claims, or two sources for one component, is an error.
enum class DiTFamily { SD3, Flux };
Result<ComponentSet> read_dit_single_file(const std::string& path, DiTFamily family, const LoadOptions& options);

// The autoencoder's config of a component set: from the "vae." tensors, with norm groups, scaling and shift from its
// config (a folder's vae/config.json, a single file's metadata or a --vae folder's config.json), else the given
// family values. A single file's autoencoder whose config gives other scaling or shift values is refused as another
// model's (`family` names the model in the message).
Result<VAEConfig> component_vae_config(const ComponentSet& f, const std::string& path, float scaling, float shift,
                                       std::string_view family);

// A CLIP text encoder's config of a component set: from its tensors under "<component>.", with what only its config
// says (heads, activation, eps, layers run, token ids); the config must agree with the weights' widths.
Result<CLIPTextConfig> component_clip_config(const ComponentSet& f, const std::string& component, const std::string& path);

// A FlowMatchEulerDiscreteScheduler scheduler_config.json: the shift, and diffusers' dynamic shifting when it is on
// (Flux's). Refuses other classes and training schedules other than 1000 steps, naming `source`.
struct FlowSchedulerConfig {
    double shift = 1.0;
    std::optional<DynamicShift> dynamic;
};
// A note for `easel info` on the quantized tensors of `w` (GGUF blocks, fp8), counted per component and type:
// "quantized, multiplied as stored: transformer 494 q4_K + 10 q4_1; text_encoder_2 169 q8_0"; empty when none.
std::string quantized_weights_note(const WeightSet& w);

Result<FlowSchedulerConfig> parse_flow_scheduler_config(std::string_view json, const std::string& source);

// The registry claim of a transformer family: a diffusers folder `is_mine` says is one, or a single file with a
// tensor whose name contains `single_file_part` ("joint_blocks.", "double_blocks."). Unreadable or foreign input
// is not claimed (the other families report it).
Family::Claim claim_dit(const std::string& path, bool (*is_mine)(const DiffusersFolder&), std::string_view single_file_part);

// What every UNet + KL-VAE family (SD 1.x/2.x, SDXL) fills the same way from its detected configs: the channel
// check (the UNet takes the latent alone, or for inpainting models the latent, the mask and the masked image's
// latent), the latent format, the inpainting capability, the DDPM model sampling with the UNet's prediction, and
// whether the VAE encoder loads (inpainting models always need it: their txt2img encodes a grey picture).
Status fill_unet_vae_spec(ModelSpec& m, const ModelInfo& info, const LoadOptions& options, const std::string& path);

// The registry entry of a family that reads its files with read_checkpoint: it claims what `is_mine` says of
// the detected ModelInfo (otherwise it names what was detected, for the "no family takes it" message).
template <class M>
Family checkpoint_family(std::string name, bool (*is_mine)(const ModelInfo&),
                         Result<std::unique_ptr<M>> (*load)(const std::string&, const LoadOptions&),
                         Result<ModelSpec> (*load_spec)(const std::string&, const LoadOptions&)) {
    Family f;
    f.name = std::move(name);
    f.claim = [is_mine](const std::string& path) -> Result<Family::Claim> {
        EASEL_TRY_ASSIGN(Checkpoint ck, read_checkpoint(path));
        Family::Claim c;
        c.mine = is_mine(ck.info);
        if (!c.mine) c.what = "a " + model_kind_name(ck.info) + " model";
        return c;
    };
    f.load = [load](const std::string& path, const LoadOptions& o) -> Result<std::unique_ptr<Model>> {
        EASEL_TRY_ASSIGN(std::unique_ptr<M> m, load(path, o));
        return std::unique_ptr<Model>(std::move(m));
    };
    f.load_spec = load_spec;
    return f;
}

}  // namespace easel
