// SD3's diffusion transformer (MMDiT) as diffusers' SD3Transformer2DModel (0.30; SD3.5's additions as 0.31 has them:
// per-head RMSNorm of q and k, and MMDiT-X's second, image-only self-attention in some blocks) computes it: 2x2 patches of the
// latent embedded and offset by a crop of the fixed sin-cos position grid; a conditioning vector = timestep MLP +
// pooled-text MLP; the context projected to the blocks' width; joint blocks in which image and context tokens
// each get adaLN-zero modulation (shift, scale, gate for attention and for the MLP) from that vector, attend
// together in one softmax over both, and keep their own output projections and MLPs (the last block updates the
// image tokens only); a final modulated LayerNorm and projection, unpatchified. Parameters carry diffusers' names
// under the declare() scope ("transformer_blocks.0.attn.to_q.weight").
//
//   MMDiT dit = MMDiT::declare(ParamScope(loader, "transformer"), cfg);
//   Tensor v = dit.forward(ctx, x, /*t=*/1000 * sigma, context, pooled);   // x [N, 16, h, w] -> [N, 16, h, w]
#pragma once

#include <optional>
#include <span>
#include <vector>

#include "models/mmdit/config.h"
#include "runtime/nn.h"

namespace easel {

class MMDiT {
public:
    static MMDiT declare(const ParamScope& s, const MMDiTConfig& cfg);
    // x: [N, in_channels, h, w] with h and w multiples of the patch and at most pos_embed_max_size patches;
    // t: the timestep (diffusers passes sigma * 1000); context: [N, L, joint_attention_dim]; pooled:
    // [N, pooled_projection_dim] -> [N, out_channels, h, w].
    // skip: indices of transformer blocks to leave out (skip-layer guidance; diffusers' skip_layers): both streams
    // pass them unchanged. Indices must be below num_blocks().
    Tensor forward(const Ctx& c, const Tensor& x, float t, const Tensor& context, const Tensor& pooled,
                   std::span<const int> skip = {}) const;
    int num_blocks() const { return int(blocks_.size()); }
    const MMDiTConfig& config() const { return cfg_; }
    bool loaded() const { return !blocks_.empty(); }

private:
    struct Stream {  // one side (image or context) of a joint block
        Linear ada;                  // adaLN: 6 x width (shift, scale, gate for attention and MLP; 9 with the second
                                     // attention's three), or 2 (scale, shift) on the last block's context side
        Linear q, k, v;
        std::optional<RMSNorm> norm_q, norm_k;  // SD3.5: over each head
        std::optional<Linear> out;   // attn.to_out.0 / attn.to_add_out (absent on the last block's context side)
        std::optional<Linear> ff1, ff2;
    };
    struct SelfAttention {  // MMDiT-X's attn2: image tokens alone
        Linear q, k, v, out;
        std::optional<RMSNorm> norm_q, norm_k;
    };
    struct Block {
        Stream x, ctx;
        std::optional<SelfAttention> attn2;
        bool context_pre_only = false;
    };

    MMDiTConfig cfg_;
    Conv2d patch_;
    Tensor pos_grid_;  // [M * M, width] f32
    Linear t_lin1_, t_lin2_, p_lin1_, p_lin2_;
    Linear context_embedder_;
    std::vector<Block> blocks_;
    Linear norm_out_, proj_out_;
};

}  // namespace easel
