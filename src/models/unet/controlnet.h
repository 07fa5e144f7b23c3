// ControlNet (diffusers ControlNetModel; lllyasviel's cldm.ControlNet): a trained copy of a UNet's first half
// that also reads a control image (edges, a pose, depth...) and returns residuals for the UNet's skip
// connections and mid block (UNet::forward's `control`). Parameters carry diffusers' names:
// controlnet_cond_embedding.{conv_in, blocks.i, conv_out}, the UNetEncoder's, controlnet_down_blocks.i and
// controlnet_mid_block.
//
//   ControlNet net = ControlNet::declare(ParamScope(loader, "controlnet"), cfg);
//   Tensor hint = net.embed_condition(ctx, image);                      // once per image: [N, C0, h, w]
//   ControlResiduals r = net.forward(ctx, x, t, context, hint, nullptr, /*scale=*/1.0f, /*guess_mode=*/false);
//   Tensor eps = unet.forward(ctx, x, t, context, nullptr, &r);
#pragma once

#include <string>
#include <vector>

#include "models/unet/unet.h"

namespace easel {

struct ControlNetConfig {
    UNetConfig unet;                  // the copied half (in_channels: the latent's)
    int conditioning_channels = 3;    // of the control image
    // conditioning_embedding_out_channels: the control image's encoder, one stride-2 step between entries, so
    // that it ends at the latent's size (SD: 16, 32, 96, 256 for 8x).
    std::vector<int> embedding_channels = {16, 32, 96, 256};
    bool global_pool = false;         // global_pool_conditions (the "shuffle" ControlNet): residuals averaged over h, w
    bool bgr = false;                 // controlnet_conditioning_channel_order "bgr": the image's channels flipped

    int downscale() const { return 1 << std::max<int>(0, int(embedding_channels.size()) - 1); }
    // Reads diffusers' ControlNetModel config.json.
    static Result<ControlNetConfig> from_diffusers_json(const std::string& json_text);
    // From diffusers-named tensors under `prefix`: the UNet half (UNetConfig::detect_from_weights, encoder only)
    // and the control encoder's widths. Heads, norm groups and eps are not in the shapes: SD's defaults until
    // the caller sets them (then validate()).
    static Result<ControlNetConfig> detect_from_weights(const WeightSet& w, std::string_view prefix);
    Status validate() const;
};

class ControlNet {
public:
    static ControlNet declare(const ParamScope& s, const ControlNetConfig& cfg);

    // The control image [N, conditioning_channels, H, W], values in [0, 1], H and W the latent's times
    // downscale() -> its embedding [N, C0, H / downscale, W / downscale]. It does not depend on the step: a
    // sampler computes it once per image.
    Tensor embed_condition(const Ctx& c, const Tensor& image) const;
    // x: the UNet's input at this step ([N, in_channels, h, w]), hint: embed_condition()'s ([N, ...]), and
    // what the UNet gets (timestep, context, SDXL's added conditioning) -> the residuals times `scale`; with
    // `guess_mode`, scaled from 0.1 at conv_in's skip up to 1 at the mid block (diffusers: logspace(-1, 0)).
    ControlResiduals forward(const Ctx& c, const Tensor& x, float timestep, const Tensor& context, const Tensor& hint,
                             const AddedConditioning* added, float scale, bool guess_mode) const;

    const ControlNetConfig& config() const { return cfg_; }

private:
    ControlNetConfig cfg_;
    UNetEncoder enc_;
    Conv2d hint_in_, hint_out_;
    std::vector<Conv2d> hint_blocks_;
    std::vector<Conv2d> zero_convs_;  // controlnet_down_blocks, one per skip
    Conv2d mid_out_;                  // controlnet_mid_block
};

}  // namespace easel
