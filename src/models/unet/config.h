// UNetConfig: everything that decides the shape of an SD 1.x / 2.x / XL UNet (diffusers' UNet2DConditionModel with
// CrossAttnDownBlock2D/DownBlock2D levels, a UNetMidBlock2DCrossAttn and, for SDXL, the "text_time" added
// conditioning). Defaults are SD 1.5's.
//
//   EASEL_TRY_ASSIGN(UNetConfig c, UNetConfig::from_diffusers_json(read_text("unet/config.json")));
//   EASEL_TRY_ASSIGN(UNetConfig d, UNetConfig::detect_from_weights(weights, "unet."));  // names+shapes only
//   d.num_heads = c.num_heads;     // what shapes cannot tell comes from the config that travels with the model
//   EASEL_TRY(d.validate());
//   int heads_at_level_2 = d.num_heads[2];
//
// Levels are counted in down order (level 0 is the full-resolution one); up_blocks.i is level L-1-i.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "io/keymap_config_doc.h"
#include "io/weights.h"

namespace easel {

// What the UNet output means. Not detectable from weights: SD 2.x 512-base predicts noise, 768-v predicts
// velocity, with identical tensors. It comes from scheduler_config.json, an LDM yaml or a flag.
enum class Prediction { Unknown, Epsilon, V, Flow };  // Flow: a rectified-flow velocity (SD3, Flux)
std::string_view prediction_name(Prediction p);  // "unknown", "epsilon", "v"

struct UNetConfig {
    int in_channels = 4;    // 9 for inpainting UNets: latent 4 + mask 1 + masked-image latent 4
    int out_channels = 4;
    int sample_size = 64;   // latent side the model was trained at (64 for 512 px); informational
    std::vector<int> block_out_channels = {320, 640, 1280, 1280};  // one per level
    int layers_per_block = 2;                                       // resnets per down level (up: +1)
    // Per level, in down order: does the level have transformers (CrossAttn*Block2D)?
    std::vector<bool> down_attention = {true, true, true, false};
    // Per up block, in up_blocks order (up_blocks.0 is the lowest resolution).
    std::vector<bool> up_attention = {false, true, true, true};
    bool mid_attention = true;  // UNetMidBlock2DCrossAttn (a resnet, a transformer, a resnet)
    // Attention heads per level (down order). The mid block uses the last level's count, up_blocks.i uses
    // level L-1-i's. SD 1.x: 8 everywhere; SD 2.x: channels / 64 (5, 10, 20, 20).
    std::vector<int> num_heads = {8, 8, 8, 8};
    std::vector<int> transformer_depth = {1, 1, 1, 1};  // BasicTransformerBlocks per transformer, per level
    int cross_attention_dim = 768;                      // width of the text encoder's hidden states
    bool use_linear_projection = false;                 // proj_in/proj_out: Linear (SD 2.x) vs 1x1 Conv (SD 1.x)
    int norm_num_groups = 32;
    float norm_eps = 1e-5f;
    bool upcast_attention = false;  // SD 2.1 sets it: softmax(QK^T) computed in f32 even for f16 weights
    // Sinusoidal timestep embedding (diffusers Timesteps): SD uses flip_sin_to_cos=True, freq_shift=0.
    bool time_flip_sin_to_cos = true;
    int time_freq_shift = 0;
    // SDXL's added conditioning (diffusers addition_embed_type "text_time"): each extra id (original size, crop,
    // target size or aesthetic score) becomes a sinusoid of addition_time_embed_dim (256), concatenated after the
    // pooled text embedding into add_embedding's input of addition_embed_input_dim (diffusers
    // projection_class_embeddings_input_dim: 2816 for the base = 1280 + 6 * 256). 0: none (SD 1.x/2.x).
    int addition_time_embed_dim = 0;
    int addition_embed_input_dim = 0;
    Prediction prediction = Prediction::Epsilon;

    int num_levels() const { return int(block_out_channels.size()); }
    // Each latent side must be a multiple of this: every level but the last halves it, and the up path must
    // meet the skip connections at the same size (SD: 8, so 512 px is a 64 latent).
    int latent_multiple() const { return 1 << std::max(0, num_levels() - 1); }
    int time_embed_dim() const { return block_out_channels.empty() ? 0 : 4 * block_out_channels[0]; }
    int head_dim(int level) const { return block_out_channels[size_t(level)] / num_heads[size_t(level)]; }
    bool has_added_conditioning() const { return addition_embed_input_dim > 0; }
    // The width of each transformer block's cross-attention, in diffusers' attn_processors order (the down
    // levels, then the up levels, then the mid block; blocks in order within each): the order IP-Adapter files
    // number their layers in (ip_adapter.1, .3, ...).
    std::vector<int64_t> cross_attention_blocks() const;

    // Reads diffusers' unet/config.json. Keys it lacks take diffusers' own defaults (not SD 1.5's), because
    // that is how diffusers reads the same file. Features outside SD 1.x/2.x/XL (class embeddings, other added
    // conditioning, dual cross-attention...) are refused with ErrorCode::Unsupported.
    // `class_name` "ControlNetModel" reads a ControlNet's config.json: its UNet half (up blocks mirror the down
    // ones; the mid block may lack attention); its own keys are ControlNetConfig's (models/unet/controlnet.h).
    static Result<UNetConfig> from_diffusers_json(const std::string& json_text,
                                                  std::string_view class_name = "UNet2DConditionModel");
    // Reads `model.params.unet_config.params` (and `parameterization`) of an LDM yaml (v1-inference.yaml,
    // v2-inference-v.yaml...), as AUTOMATIC1111 and diffusers' single-file loader read them.
    static Result<UNetConfig> from_ldm_yaml(const ConfigNode& root);
    // From diffusers-named tensors under `prefix` (e.g. "unet."): channels, levels, layers per block, which
    // levels have attention, transformer depth, linear vs conv projections, cross-attention width, in/out
    // channels. Heads, norm groups, eps, upcast and prediction type are not in the shapes; they keep the
    // SD 1.x family defaults here, and detect_model() replaces them by what the model's config or family says.
    // `encoder_only`: the tensors are a ControlNet's (no conv_out, no up blocks; up_attention mirrors down).
    static Result<UNetConfig> detect_from_weights(const WeightSet& w, std::string_view prefix, bool encoder_only = false);

    Status validate() const;
    // One line for `easel info`: "levels 320/640/1280/1280, 2 res/level, attn 1110, heads 8/8/8/8, ..."
    std::string summary() const;
};

// SD 2.x (OpenCLIP-H text encoder, `use_linear_in_transformer`) fixes the head width at 64 rather than the
// head count: this fills num_heads = channels / head_dim for every level. Fails when a level's channel count
// is not a multiple of head_dim.
Status set_head_dim(UNetConfig& c, int head_dim);

}  // namespace easel
