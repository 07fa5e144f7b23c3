// Flux.1's transformer as diffusers' FluxTransformer2DModel (0.30) computes it: packed latent tokens and the T5
// context embedded to the blocks' width; a conditioning vector = timestep MLP (+ guidance MLP for dev) + pooled
// CLIP MLP; double-stream blocks (image and context each modulated by adaLN-zero, attending jointly with
// per-head RMS-normed q and k and 3-axis RoPE, context tokens first), then single-stream blocks over the joined
// sequence (one modulation; attention and a tanh-GELU MLP side by side, fused into one output projection); a
// final modulated LayerNorm of the image tokens and a projection back to packed latent channels. Parameters carry
// diffusers' names under the declare() scope ("transformer_blocks.0.attn.norm_q.weight").
//
//   FluxTransformer f = FluxTransformer::declare(ParamScope(loader, "transformer"), cfg);
//   Tensor v = f.forward(ctx, packed, /*t=*/1000 * sigma, /*guidance=*/3.5f, context, pooled, img_ids, txt_ids);
#pragma once

#include <array>
#include <optional>
#include <vector>

#include "models/common/dit.h"
#include "models/flux/config.h"
#include "runtime/nn.h"

namespace easel {

// The RoPE tables of `ids` ([n][3] positions, one row per token): cos and sin [n, head_dim / 2], axis 0's pairs
// first, each angle pos / theta^(2k / axis_dim) computed in double and rounded once (diffusers' rope() in float64).
void flux_rope_tables(const std::vector<std::array<float, 3>>& ids, const std::vector<int>& axes, int theta,
                      std::vector<float>& cos, std::vector<float>& sin);

// Flux's latent packing (FluxPipeline._pack_latents): [N, C, h, w] -> [N, (h/2)(w/2), 4C], each token a 2x2
// patch in (c, dy, dx) order; and its inverse.
Tensor flux_pack(const Tensor& latent);
Tensor flux_unpack(const Tensor& packed, int64_t h, int64_t w);
// FluxPipeline._prepare_latent_image_ids: (0, row, column) per packed token of an h x w latent.
std::vector<std::array<float, 3>> flux_image_ids(int64_t h, int64_t w);

class FluxTransformer {
public:
    static FluxTransformer declare(const ParamScope& s, const FluxConfig& cfg);
    // x: [N, T, in_channels] packed latent; t: the timestep the scheduler lists (sigma * 1000; the pipeline's
    // t / 1000 is multiplied by 1000 again inside, in float32, as diffusers does); guidance: the guidance scale
    // (needed exactly when the model embeds it); context [N, L, joint]; pooled [N, pooled]; ids one row per token.
    Tensor forward(const Ctx& c, const Tensor& x, float t, std::optional<float> guidance, const Tensor& context,
                   const Tensor& pooled, const std::vector<std::array<float, 3>>& img_ids,
                   const std::vector<std::array<float, 3>>& txt_ids) const;
    const FluxConfig& config() const { return cfg_; }
    bool loaded() const { return x_embedder_.out > 0; }

private:
    struct QKNorm {
        RMSNorm q, k;
    };
    struct DoubleBlock {
        Linear ada_x, ada_c;
        Linear q, k, v, cq, ck, cv, out, add_out;
        QKNorm norm, norm_added;
        GeluFeedForward ff, ff_context;
    };
    struct SingleBlock {
        Linear ada;
        Linear q, k, v, proj_mlp, proj_out;
        QKNorm norm;
    };

    FluxConfig cfg_;
    Linear x_embedder_, context_embedder_;
    Linear t_lin1_, t_lin2_, g_lin1_, g_lin2_, p_lin1_, p_lin2_;
    std::vector<DoubleBlock> double_;
    std::vector<SingleBlock> single_;
    Linear norm_out_, proj_out_;
};

}  // namespace easel
