// Blocks shared by the model folders (the UNet, the VAE, and the diffusion transformers to come), named and shaped
// as diffusers v0.30 names them (resnet.py ResnetBlock2D, attention_processor.py Attention, attention.py
// BasicTransformerBlock/FeedForward/GEGLU, transformers/transformer_2d.py Transformer2DModel). The VAE uses
// ResBlock (without a time embedding) and Attention. A model folder includes this, never another model's folder.
#pragma once

#include <optional>
#include <span>
#include <vector>

#include "runtime/nn.h"

namespace easel {

struct ResBlock {
    GroupNorm norm1, norm2;
    Conv2d conv1, conv2;
    std::optional<Linear> time_emb_proj;  // absent in the VAE
    std::optional<Conv2d> conv_shortcut;  // present only when in != out

    // temb_dim 0: no time embedding (the VAE's resnets).
    static ResBlock declare(const ParamScope& s, int64_t in, int64_t out, int64_t temb_dim, int groups, float eps);
    // x: [N, in, H, W], temb: [N, temb_dim] or undefined -> [N, out, H, W]
    Tensor forward(const Ctx& c, const Tensor& x, const Tensor& temb) const;
};

// Keys and values a cross-attention attends to besides its context: IP-Adapter's decoupled cross-attention
// (diffusers IPAdapterAttnProcessor2_0). The same queries attend over k and v ([B, T, dim], already projected by
// the adapter's to_k_ip / to_v_ip), and that result times `scale` is added to the context's before to_out; a
// scale of 0 skips it, as diffusers does.
struct ExtraKV {
    Tensor k, v;
    float scale = 1.0f;
};
// What one transformer block's cross-attention adds: one ExtraKV per adapter (empty: nothing).
using BlockExtras = std::vector<ExtraKV>;

// diffusers Attention (to_q, to_k, to_v, to_out.0). x: [B, L, dim], context: [B, Lc, context_dim].
struct Attention {
    Linear to_q, to_k, to_v, to_out;
    int num_heads = 1;

    static Attention declare(const ParamScope& s, int64_t dim, int64_t context_dim, int num_heads, bool qkv_bias);
    // context undefined: self-attention. With `residual`, returns attention(x) + residual (fused epilogue).
    // `extras` are added before to_out (see ExtraKV).
    Tensor forward(const Ctx& c, const Tensor& x, const Tensor& context, const Tensor* residual = nullptr,
                   const BlockExtras* extras = nullptr) const;
};

struct TransformerBlock {
    LayerNorm norm1, norm2, norm3;
    Attention attn1, attn2;
    Linear ff_in, ff_out;  // ff.net.0.proj (dim -> 2*inner, GEGLU), ff.net.2 (inner -> dim)

    static TransformerBlock declare(const ParamScope& s, int64_t dim, int64_t context_dim, int num_heads);
    // x: [B, L, dim] -> [B, L, dim]; `extras` go to the cross-attention (attn2).
    Tensor forward(const Ctx& c, const Tensor& x, const Tensor& context, const BlockExtras* extras = nullptr) const;
};

// Transformer2DModel: GroupNorm, proj_in (1x1 conv in SD 1.x, Linear in SD 2.x), blocks, proj_out, residual.
struct SpatialTransformer {
    GroupNorm norm;
    Linear proj_in, proj_out;
    bool linear_projection = false;
    std::vector<TransformerBlock> blocks;

    static SpatialTransformer declare(const ParamScope& s, int64_t channels, int64_t context_dim, int num_heads,
                                      int depth, int groups, bool linear_projection);
    // x: [N, C, H, W], context: [N, Lc, context_dim] -> [N, C, H, W]. `extras`: empty, or one entry per block.
    Tensor forward(const Ctx& c, const Tensor& x, const Tensor& context, std::span<const BlockExtras> extras = {}) const;
};

// [N, C, H, W] <-> [N, H*W, C]
Tensor nchw_to_nlc(const Ctx& c, const Tensor& x);
Tensor nlc_to_nchw(const Ctx& c, const Tensor& x, int64_t h, int64_t w);

}  // namespace easel
