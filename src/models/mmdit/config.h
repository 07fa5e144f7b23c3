// MMDiTConfig: the shape of SD3's diffusion transformer as diffusers' SD3Transformer2DModel builds it (0.30).
// Defaults are SD3 medium's (stabilityai/stable-diffusion-3-medium-diffusers transformer/config.json): 24 joint
// blocks of 24 heads x 64 (1536 wide), 2x2 patches of a 16-channel latent, T5-wide context (4096) projected to
// 1536, a pooled CLIP-L + CLIP-G vector (2048), a 192x192 grid of fixed sin-cos position embeddings cropped to
// the image, sample_size 128 (1024 px).
//
//   EASEL_TRY_ASSIGN(MMDiTConfig c, MMDiTConfig::from_diffusers_json(read_text("transformer/config.json")));
//   EASEL_TRY_ASSIGN(MMDiTConfig d, MMDiTConfig::detect_from_weights(weights, "transformer."));
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "io/weights.h"

namespace easel {

struct MMDiTConfig {
    int sample_size = 128;            // latent side the model was trained at
    int patch_size = 2;
    int in_channels = 16;
    int out_channels = 16;
    int num_layers = 24;
    int head_dim = 64;                // diffusers attention_head_dim
    int num_heads = 24;               // diffusers num_attention_heads
    int joint_attention_dim = 4096;   // the context's width (T5's d_model)
    int caption_projection_dim = 1536;
    int pooled_projection_dim = 2048;
    int pos_embed_max_size = 192;     // the stored grid of position embeddings is this many patches a side
    // SD3.5 (diffusers 0.31): RMSNorm over each head of q and k (qk_norm "rms_norm": SD3.5 large, large-turbo and
    // medium), and the blocks with MMDiT-X's second, image-only self-attention (SD3.5 medium: 0..12).
    bool qk_norm = false;
    std::vector<int> dual_attention_layers;
    bool dual(int block) const;

    int inner_dim() const { return head_dim * num_heads; }

    // diffusers' keys; absent keys take SD3Transformer2DModel's defaults, as diffusers would.
    static Result<MMDiTConfig> from_diffusers_json(const std::string& json_text);
    // From diffusers-named tensors under `prefix`: widths, patch, channels, layers, the position grid; heads =
    // width / 64 (every SD3 model's head width), which a config overrides.
    static Result<MMDiTConfig> detect_from_weights(const WeightSet& w, std::string_view prefix);

    Status validate() const;
    std::string summary() const;
};

// A config file and the weights must agree on everything the shapes tell; `source` names the file.
Status check_mmdit_agrees(const MMDiTConfig& from_weights, const MMDiTConfig& from_file, const std::string& source);

}  // namespace easel
