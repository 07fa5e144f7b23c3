// SD's AutoencoderKL (diffusers autoencoder_kl.py + vae.py Encoder/Decoder, v0.30), built from a VAEConfig.
//
//   VAE vae = VAE::declare(ParamScope(loader, "vae"), cfg);
//   Tensor img = vae.decode(ctx, latents);        // latents [N, 4, h, w] (already / scaling_factor) -> [N, 3, 8h, 8w] in [-1, 1]
//   Tensor mean = vae.encode_mean(ctx, image);    // image [N, 3, H, W] in [-1, 1] -> [N, 4, H/8, W/8]
#pragma once

#include <optional>
#include <vector>

#include "models/common/blocks.h"
#include "models/vae/config.h"

namespace easel {

// diffusers Attention as the VAE's mid block uses it: a GroupNorm first, one head as wide as the channels,
// biases on q/k/v, and a residual connection. x: [N, C, H, W] -> [N, C, H, W].
struct VAEAttention {
    GroupNorm group_norm;
    Linear to_q, to_k, to_v, to_out;

    static VAEAttention declare(const ParamScope& s, int64_t channels, int groups, float eps);
    Tensor forward(const Ctx& c, const Tensor& x) const;
};

class VAE {
public:
    // `with_encoder` false skips the encoder's parameters (txt2img needs only the decoder).
    static VAE declare(const ParamScope& s, const VAEConfig& cfg, bool with_encoder = true);

    // z: [N, latent_channels, h, w], already divided by the scaling factor -> [N, out_channels, h*f, w*f]
    Tensor decode(const Ctx& c, const Tensor& z) const;
    // diffusers' tiled decoding (AutoencoderKL.enable_tiling, v0.30): tiles of tile_latent latents (the VAE's
    // sample_size / 8 there: 64 for SD 1.5) stepping by 3/4 of a tile, each decoded alone, then blended linearly
    // over a quarter tile with its (already blended) upper and left neighbours. Memory is that of one tile; the
    // result differs from decode() near the seams. A z no larger than one tile is decoded whole.
    Tensor decode_tiled(const Ctx& c, const Tensor& z, int tile_latent) const;
    // x: [N, in_channels, H, W] in [-1, 1] -> (mean, logvar), each [N, latent_channels, H/f, W/f] (unscaled)
    std::pair<Tensor, Tensor> encode_moments(const Ctx& c, const Tensor& x) const;
    // diffusers' tiled encoding (AutoencoderKL.enable_tiling, v0.30 tiled_encode): image tiles of tile_sample
    // pixels (the VAE's sample_size there: 512 for SD 1.5) stepping by 3/4 of a tile, each encoded alone, and
    // the moments blended over a quarter of a latent tile as decode_tiled() blends pixels. An image no larger
    // than one tile is encoded whole.
    std::pair<Tensor, Tensor> encode_moments_tiled(const Ctx& c, const Tensor& x, int tile_sample) const;

    const VAEConfig& config() const { return cfg_; }
    bool has_encoder() const { return has_encoder_; }

private:
    Tensor encode_raw(const Ctx& c, const Tensor& x) const;  // [N, 2 * latent_channels, h, w]: mean, logvar
    std::pair<Tensor, Tensor> split_moments(const Tensor& h) const;
    struct Level {
        std::vector<ResBlock> resnets;
        std::optional<Conv2d> sampler;
    };
    struct Mid {
        std::vector<ResBlock> resnets;
        std::optional<VAEAttention> attention;
        Tensor forward(const Ctx& c, const Tensor& x) const;
    };

    VAEConfig cfg_;
    bool has_encoder_ = false;
    // Encoder
    Conv2d enc_conv_in_, enc_conv_out_;
    std::vector<Level> enc_down_;
    Mid enc_mid_;
    GroupNorm enc_norm_out_;
    std::optional<Conv2d> quant_conv_;
    // Decoder
    std::optional<Conv2d> post_quant_conv_;
    Conv2d dec_conv_in_, dec_conv_out_;
    Mid dec_mid_;
    std::vector<Level> dec_up_;
    GroupNorm dec_norm_out_;
};

}  // namespace easel
