// The tiny autoencoders people use for live previews: TAESD (SD 1.x/2.x), TAESDXL (SDXL), TAESD3 and TAEF1 (16
// latent channels), as diffusers v0.30 builds them (autoencoders/autoencoder_tiny.py AutoencoderTiny, vae.py
// EncoderTiny/DecoderTiny, unets/unet_2d_blocks.py AutoencoderTinyBlock). 64 channels throughout, ReLU, no norms:
// about 1/30 of the full decoder's work.
//
//   TinyAutoencoder taesd = TinyAutoencoder::declare(ParamScope(loader, ""), TAESDConfig{}, /*encoder=*/false);
//   Tensor rgb = taesd.decode(ctx, latent);   // the model's latent as the sampler holds it -> [N, 3, 8h, 8w] in [-1, 1]
#pragma once

#include <optional>
#include <vector>

#include "runtime/nn.h"

namespace easel {

struct TAESDConfig {
    int latent_channels = 4;                        // 16 for TAESD3 / TAEF1
    int64_t channels = 64;                          // encoder_block_out_channels / decoder_block_out_channels
    std::vector<int> encoder_blocks{1, 3, 3, 3};    // num_encoder_blocks
    std::vector<int> decoder_blocks{3, 3, 3, 1};    // num_decoder_blocks
    float latent_magnitude = 3.0f;                  // the decoder's soft clamp: tanh(z / 3) * 3
    Status validate() const;
};

// AutoencoderTinyBlock: conv3x3, ReLU, conv3x3, ReLU, conv3x3, plus the input, then ReLU (in == out: no skip conv).
struct TinyBlock {
    Conv2d conv0, conv1, conv2;
    static TinyBlock declare(const ParamScope& s, int64_t channels);
    // x: [N, C, H, W] -> [N, C, H, W]
    Tensor forward(const Ctx& c, const Tensor& x) const;
};

class TinyAutoencoder {
public:
    // Parameters "encoder.layers.{i}..." and "decoder.layers.{i}..." (diffusers' names; pipeline/preview.h maps
    // madebyollin's taesd_decoder/taesd_encoder files onto them).
    static TinyAutoencoder declare(const ParamScope& s, const TAESDConfig& cfg, bool with_encoder, bool with_decoder = true);

    // latent: [N, latent_channels, h, w] (model units: what a pipeline built on AutoencoderTiny hands it, whose
    // scaling factor is 1) -> [N, 3, 8h, 8w], about [-1, 1]. DecoderTiny: tanh(z / 3) * 3, the layers, * 2 - 1.
    Tensor decode(const Ctx& c, const Tensor& latent) const;
    // image: [N, 3, H, W] in [-1, 1] -> [N, latent_channels, H/8, W/8]. EncoderTiny: (x + 1) / 2, the layers.
    Tensor encode(const Ctx& c, const Tensor& image) const;

    const TAESDConfig& config() const { return cfg_; }
    bool has_encoder() const { return has_encoder_; }
    bool has_decoder() const { return has_decoder_; }

private:
    // One entry of an nn.Sequential: a conv (then ReLU where `relu`), a block, or an upsample (nearest, 2x).
    struct Layer {
        std::optional<Conv2d> conv;
        bool relu = false;
        std::optional<TinyBlock> block;
        bool upsample = false;
    };
    static Tensor run(const Ctx& c, const std::vector<Layer>& layers, Tensor x);

    TAESDConfig cfg_;
    bool has_encoder_ = false, has_decoder_ = false;
    std::vector<Layer> encoder_, decoder_;
};

}  // namespace easel
