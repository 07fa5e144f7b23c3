// VAEConfig: the shape of SD's AutoencoderKL (diffusers Encoder/Decoder with DownEncoderBlock2D /
// UpDecoderBlock2D levels and a single-head mid attention). Defaults are SD 1.5's (and SD 2.x's: the same VAE).
//
//   EASEL_TRY_ASSIGN(VAEConfig c, VAEConfig::from_diffusers_json(read_text("vae/config.json")));
//   EASEL_TRY_ASSIGN(VAEConfig d, VAEConfig::detect_from_weights(weights, "vae."));   // names+shapes only
//   d.scaling_factor = c.scaling_factor;   // not in the shapes
//   EASEL_TRY(d.validate());
//   latent = encoder_mean * d.scaling_factor;
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "io/keymap_config_doc.h"
#include "io/weights.h"

namespace easel {

struct VAEConfig {
    int in_channels = 3;   // image channels
    int out_channels = 3;
    int latent_channels = 4;
    std::vector<int> block_out_channels = {128, 256, 512, 512};  // encoder level order; the decoder mirrors it
    int layers_per_block = 2;      // encoder resnets per level; the decoder has one more per level
    int norm_num_groups = 32;
    float norm_eps = 1e-6f;        // fixed in diffusers' Encoder/Decoder (and ldm's Normalize), not a config key
    bool mid_attention = true;     // diffusers `mid_block_add_attention`
    float shift_factor = 0.0f;     // model latent = (VAE latent - shift) * scaling (SD3: 0.0609, Flux); diffusers' key
    bool use_quant_conv = true;    // 1x1 conv on the encoder's moments [2*latent, 2*latent]
    bool use_post_quant_conv = true;
    // Latents the UNet sees are encoder means times this (diffusers `scaling_factor`, ldm `scale_factor`).
    float scaling_factor = 0.18215f;

    int num_levels() const { return int(block_out_channels.size()); }
    // Pixels per latent per side: 2^(levels-1) (8 for SD).
    int downscale() const { return 1 << (num_levels() - 1); }

    // Keys diffusers' AutoencoderKL takes; absent keys take its defaults. latents_mean/std and shift_factor
    // (SDXL playground, SD3) are refused as Unsupported.
    static Result<VAEConfig> from_diffusers_json(const std::string& json_text);
    // `model.params.first_stage_config.params.ddconfig` and `model.params.scale_factor` of an LDM yaml.
    static Result<VAEConfig> from_ldm_yaml(const ConfigNode& root);
    // From diffusers-named tensors under `prefix` ("vae."): channels, levels, layers per level, latent
    // channels, whether mid attention and quant convs exist. Norm groups and scaling factor keep their SD
    // defaults (the shapes cannot tell them).
    static Result<VAEConfig> detect_from_weights(const WeightSet& w, std::string_view prefix);

    Status validate() const;
    std::string summary() const;
};

}  // namespace easel
