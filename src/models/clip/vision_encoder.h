// CLIP image encoder as transformers' CLIPVisionModelWithProjection (modeling_clip.py, 4.40) computes it: a
// patch-embedding conv (no bias), the class token and position embeddings, pre_layrnorm, transformer layers
// without a mask; image_embeds = visual_projection(post_layernorm(class token of the last layer)). IP-Adapter
// takes image_embeds (the plain adapters) or the penultimate layer's hidden states (Plus: hidden_states[-2]).
// Parameters carry transformers' names (vision_model.*, visual_projection.weight) under the declare() scope.
//
//   CLIPVisionEncoder enc = CLIPVisionEncoder::declare(ParamScope(loader, ""), cfg);
//   auto o = enc.encode(ctx, pixels, {.image_embeds = true});   // pixels [N, 3, 224, 224], CLIP-normalised
//   Tensor e = *o.image_embeds;                                 // [N, projection_dim]
#pragma once

#include <optional>
#include <vector>

#include "models/clip/config.h"
#include "models/clip/layer.h"
#include "runtime/nn.h"

namespace easel {

class CLIPVisionEncoder {
public:
    static CLIPVisionEncoder declare(const ParamScope& s, const CLIPVisionConfig& cfg);

    struct Options {
        bool penultimate = false;   // the penultimate layer's output (hidden_states[-2])
        bool image_embeds = false;  // the projected class token (runs every layer)
    };
    struct Output {
        std::optional<Tensor> penultimate;   // [N, tokens, hidden]
        std::optional<Tensor> image_embeds;  // [N, projection_dim]
    };
    // pixels: [N, 3, image_size, image_size], already normalised (pipeline/ip_adapter.h prepares them). Layers
    // past the last one an output needs are not run.
    Output encode(const Ctx& c, const Tensor& pixels, const Options& o) const;

    const CLIPVisionConfig& config() const { return cfg_; }

private:
    CLIPVisionConfig cfg_;
    Conv2d patch_embedding_;
    Tensor class_embedding_;     // [D] f32
    Tensor position_embedding_;  // [tokens, D] f32
    LayerNorm pre_ln_, post_ln_;
    std::vector<CLIPLayer> layers_;
    Linear projection_;
};

}  // namespace easel
