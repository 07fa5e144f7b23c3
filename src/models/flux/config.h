// FluxConfig: the shape of Flux.1's transformer as diffusers' FluxTransformer2DModel builds it (0.30). Defaults
// are FLUX.1-dev's (black-forest-labs/FLUX.1-dev transformer/config.json): 19 double-stream and 38 single-stream
// blocks of 24 heads x 128 (3072 wide), 2x2-packed 16-channel latents (64 in), T5 context 4096, CLIP-L pooled
// 768, a guidance embedding (dev; schnell has none), 3-axis RoPE of 16 + 56 + 56 over (0, row, column) ids.
//
//   EASEL_TRY_ASSIGN(FluxConfig c, FluxConfig::from_diffusers_json(read_text("transformer/config.json")));
//   EASEL_TRY_ASSIGN(FluxConfig d, FluxConfig::detect_from_weights(weights, "transformer."));
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "io/weights.h"

namespace easel {

struct FluxConfig {
    int in_channels = 64;            // packed: latent channels x 2 x 2
    int num_layers = 19;             // double-stream blocks
    int num_single_layers = 38;      // single-stream blocks
    int head_dim = 128;              // diffusers attention_head_dim
    int num_heads = 24;
    int joint_attention_dim = 4096;  // T5's width
    int pooled_projection_dim = 768; // CLIP-L's pooled output
    bool guidance_embeds = true;     // dev: a guidance-scale embedding; schnell: none
    std::vector<int> axes_dims_rope = {16, 56, 56};  // per id axis; sums to head_dim
    int rope_theta = 10000;
    int mlp_ratio = 4;

    int inner_dim() const { return head_dim * num_heads; }
    int latent_channels() const { return in_channels / 4; }

    static Result<FluxConfig> from_diffusers_json(const std::string& json_text);
    // From diffusers-named tensors under `prefix`: widths, block counts, guidance; heads = width / 128 (every
    // Flux.1 model's head width), the RoPE axes Flux.1's, both of which a config overrides.
    static Result<FluxConfig> detect_from_weights(const WeightSet& w, std::string_view prefix);

    Status validate() const;
    std::string summary() const;
};

Status check_flux_agrees(const FluxConfig& from_weights, const FluxConfig& from_file, const std::string& source);

}  // namespace easel
