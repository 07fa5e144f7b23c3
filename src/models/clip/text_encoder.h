// CLIP text encoder as transformers' CLIPTextModel (modeling_clip.py, 4.40) computes it: token + position
// embeddings, pre-LN transformer layers with causal self-attention, final LayerNorm. Parameters carry
// transformers' names ("text_model.encoder.layers.0.self_attn.q_proj.weight") under the declare() scope.
//
//   CLIPTextEncoder te = CLIPTextEncoder::declare(ParamScope(loader, "text_encoder"), cfg);
//   Tensor h = te.encode(ctx, ids, /*clip_skip=*/1);   // ids [N, 77] -> [N, 77, hidden]
//   CLIPTextEncoder::Output o = te.encode(ctx, ids, {.clip_skip = 2, .final_norm = false, .pooled = true});
//   // o.hidden: layer -2 as SDXL takes it; o.pooled: [N, projection_dim] (CLIPTextModelWithProjection's text_embeds)
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "models/clip/config.h"
#include "models/clip/layer.h"
#include "runtime/nn.h"

namespace easel {

class CLIPTextEncoder {
public:
    static CLIPTextEncoder declare(const ParamScope& s, const CLIPTextConfig& cfg);

    // ids: [N, L] token ids (L <= max_positions). clip_skip 1 = the last layer's output; k > 1 stops k-1
    // layers early. final_layer_norm is applied either way, as SD pipelines (AUTOMATIC1111, ComfyUI, diffusers'
    // clip_skip) do. Ids outside the vocabulary are a bug in the caller (the tokenizer never makes them).
    Tensor encode(const Ctx& c, const std::vector<std::vector<int32_t>>& ids, int clip_skip = 1) const;

    struct Options {
        int clip_skip = 1;        // which layer's output: 1 = the last, k = k-1 layers before it
        bool final_norm = true;   // apply final_layer_norm to that layer (SD 1/2: yes; SDXL's penultimate: no)
        bool pooled = false;      // also the pooled output (runs every layer)
        // Textual-inversion vectors per row: from `position`, the rows of `vectors` ([n, hidden]) replace the
        // token embeddings (position embeddings are still added), as many as fit (A1111's EmbeddingsWithFixes).
        struct Fix {
            int64_t position = 0;
            Tensor vectors;
        };
        std::vector<std::vector<Fix>> fixes;  // empty, or one list per row
    };
    struct Output {
        Tensor hidden;                 // [N, L, hidden]
        std::optional<Tensor> pooled;  // [N, projection_dim] with a projection, else [N, hidden]
    };
    // The pooled output is transformers' pooler_output: the final-normed last layer at each row's EOS (with
    // config eos_token_id 2, transformers' legacy rule: the first largest id; else the first id equal to
    // eos_token_id; a row without it pools at position 0, as transformers' argmax does), then text_projection where the model has one
    // (text_embeds).
    Output encode(const Ctx& c, const std::vector<std::vector<int32_t>>& ids, const Options& o) const;

    const CLIPTextConfig& config() const { return cfg_; }

private:
    CLIPTextConfig cfg_;
    Tensor token_embedding_;     // [V, D] f32
    Tensor position_embedding_;  // [P, D] f32
    std::vector<CLIPLayer> layers_;
    LayerNorm final_ln_;
    std::optional<Linear> projection_;  // text_projection (no bias), CLIPTextModelWithProjection
};

}  // namespace easel
