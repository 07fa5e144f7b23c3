// SD 1.x / 2.x / XL UNet (diffusers UNet2DConditionModel with CrossAttnDownBlock2D / DownBlock2D levels,
// UNetMidBlock2DCrossAttn, CrossAttnUpBlock2D / UpBlock2D), built from a UNetConfig; parameters carry
// diffusers' names under the scope given to declare(). Its first half (time embedding, conv_in, the down levels
// and the mid block) is UNetEncoder, which a ControlNet (models/unet/controlnet.h) copies.
//
//   ParamLoader loader(weights, Precision::F32);
//   UNet unet = UNet::declare(ParamScope(loader, "unet"), cfg);
//   EASEL_TRY(loader.finish("unet."));
//   Tensor eps = unet.forward(ctx, latents, /*timestep=*/999.0f, text_embeddings);   // [N, 4, h, w]
#pragma once

#include <optional>
#include <vector>

#include "models/common/blocks.h"
#include "models/unet/config.h"

namespace easel {

// SDXL's added conditioning (UNetConfig::has_added_conditioning): text_embeds [N, P] (the pooled text embedding)
// and time_ids [N, K] (original size, crop top-left, target size; or the refiner's aesthetic score),
// P + K * addition_time_embed_dim = addition_embed_input_dim.
struct AddedConditioning {
    Tensor text_embeds;
    Tensor time_ids;
};

// What a ControlNet adds to a UNet (diffusers down_block_additional_residuals / mid_block_additional_residual):
// one tensor per skip connection, in the order the down path makes them (conv_in's output first), and one for
// the mid block's output; each of the batch and shape of what it is added to.
struct ControlResiduals {
    std::vector<Tensor> down;
    Tensor mid;
};

// Time embedding, conv_in, down levels and mid block: the UNet's first half, and a ControlNet's body.
class UNetEncoder {
public:
    static UNetEncoder declare(const ParamScope& s, const UNetConfig& cfg);

    // The time embedding [N, 4 * C0] for `timestep` on every item (with the added embedding where the config
    // has one: `added` is then required).
    Tensor time_embedding(const Ctx& c, int64_t N, float timestep, const AddedConditioning* added) const;
    // conv_in (plus `residual`, fused: a ControlNet's control image embedding).
    Tensor conv_in(const Ctx& c, const Tensor& x, const Tensor* residual = nullptr) const { return conv_in_(c, x, residual); }
    // From conv_in's output h: the down levels, whose outputs (h first) are appended to `skips`, then the mid
    // block; returns the mid block's output. `down_extras` / `mid_extras`: empty, or one entry per transformer
    // block of the down levels / the mid block (see ExtraKV).
    Tensor down_and_mid(const Ctx& c, Tensor h, const Tensor& temb, const Tensor& context, std::vector<Tensor>& skips,
                        std::span<const BlockExtras> down_extras = {}, std::span<const BlockExtras> mid_extras = {}) const;
    // Transformer blocks in the down levels and in the mid block.
    size_t down_blocks() const;
    size_t mid_blocks() const;

    const UNetConfig& config() const { return cfg_; }

private:
    struct Level {
        std::vector<ResBlock> resnets;
        std::vector<SpatialTransformer> attentions;  // empty, or one per resnet
        std::optional<Conv2d> sampler;               // the stride-2 conv (all levels but the last)
    };
    UNetConfig cfg_;
    Linear time_linear_1, time_linear_2;
    std::optional<Linear> add_linear_1, add_linear_2;  // add_embedding (SDXL)
    Conv2d conv_in_;
    std::vector<Level> down_;
    std::vector<ResBlock> mid_resnets_;
    std::vector<SpatialTransformer> mid_attentions_;
};

class UNet {
public:
    static UNet declare(const ParamScope& s, const UNetConfig& cfg);

    using Added = AddedConditioning;
    // x: [N, in_channels, h, w], context: [N, Lc, cross_attention_dim] -> [N, out_channels, h, w].
    // `timestep` is the (possibly fractional) DDPM timestep for every batch item. `added` is required exactly
    // when the config has added conditioning (the caller's contract; SDXL's family always passes it).
    // `control`, when given, is added to the skip connections and the mid block's output (a ControlNet's
    // residuals: ControlNet::forward makes them to fit; a mismatch is the caller's bug). `extras`: empty, or
    // what each transformer block's cross-attention adds (IP-Adapter), one entry per block in
    // UNetConfig::cross_attention_blocks() order (down, up, mid).
    Tensor forward(const Ctx& c, const Tensor& x, float timestep, const Tensor& context, const Added* added = nullptr,
                   const ControlResiduals* control = nullptr, std::span<const BlockExtras> extras = {}) const;

    const UNetConfig& config() const { return enc_.config(); }

private:
    struct Level {
        std::vector<ResBlock> resnets;
        std::vector<SpatialTransformer> attentions;  // empty, or one per resnet
        std::optional<Conv2d> sampler;               // the upsampler's conv (all up levels but the last)
    };

    UNetEncoder enc_;
    Conv2d conv_out;
    GroupNorm conv_norm_out;
    std::vector<Level> up_;
};

}  // namespace easel
