// SD 1.x / 2.x UNet (diffusers UNet2DConditionModel with CrossAttnDownBlock2D / DownBlock2D levels,
// UNetMidBlock2DCrossAttn, CrossAttnUpBlock2D / UpBlock2D), built from a UNetConfig; parameters carry
// diffusers' names under the scope given to declare().
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

class UNet {
public:
    static UNet declare(const ParamScope& s, const UNetConfig& cfg);

    // SDXL's added conditioning (UNetConfig::has_added_conditioning): text_embeds [N, P] (the pooled text
    // embedding) and time_ids [N, K] (original size, crop top-left, target size; or the refiner's aesthetic
    // score), P + K * addition_time_embed_dim = addition_embed_input_dim.
    struct Added {
        Tensor text_embeds;
        Tensor time_ids;
    };
    // x: [N, in_channels, h, w], context: [N, Lc, cross_attention_dim] -> [N, out_channels, h, w].
    // `timestep` is the (possibly fractional) DDPM timestep for every batch item. `added` is required exactly
    // when the config has added conditioning (the caller's contract; SDXL's family always passes it).
    Tensor forward(const Ctx& c, const Tensor& x, float timestep, const Tensor& context, const Added* added = nullptr) const;

    const UNetConfig& config() const { return cfg_; }

private:
    struct Level {
        std::vector<ResBlock> resnets;
        std::vector<SpatialTransformer> attentions;  // empty, or one per resnet
        std::optional<Conv2d> sampler;               // downsampler (down levels) or upsampler conv (up levels)
    };

    UNetConfig cfg_;
    Linear time_linear_1, time_linear_2;
    std::optional<Linear> add_linear_1, add_linear_2;  // add_embedding (SDXL)
    Conv2d conv_in, conv_out;
    GroupNorm conv_norm_out;
    std::vector<Level> down_, up_;
    std::vector<ResBlock> mid_resnets_;
    std::vector<SpatialTransformer> mid_attentions_;
};

}  // namespace easel
