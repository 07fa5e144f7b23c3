// IP-Adapter (Ye et al. 2023; tencent-ailab/IP-Adapter, as diffusers v0.30.3 loads it): an image as a prompt.
// A CLIP image encoder's output becomes a few "image tokens" (the image projection), and every cross-attention
// of the UNet also attends over them through the adapter's own key and value projections (decoupled
// cross-attention: models/common/blocks.h ExtraKV). Parameters carry the original file's names:
//   image_proj.*                     the projection: ImageProjModel (proj, norm: 4 tokens from image_embeds) or
//                                    the Plus Resampler (latents, proj_in, layers.i.0 attention, layers.i.1
//                                    feed-forward, proj_out, norm_out: queries over the penultimate hidden states)
//   ip_adapter.{2k+1}.to_k_ip/to_v_ip   one pair per cross-attention block, in UNetConfig::cross_attention_blocks
//                                    order (diffusers' attn_processors order: down, up, mid)
//
//   EASEL_TRY_ASSIGN(IPAdapterConfig cfg, IPAdapterConfig::detect_from_weights(weights));
//   IPAdapter a = IPAdapter::declare(ParamScope(loader, ""), cfg);
//   Tensor tokens = a.project(ctx, image_embeds);          // [N, 4, cross_attention_dim]
//   std::vector<ExtraKV> kv = a.keys_values(ctx, tokens, /*scale=*/0.7f);   // one per cross-attention block
#pragma once

#include <string>
#include <vector>

#include "models/common/blocks.h"

namespace easel {

struct IPAdapterConfig {
    enum class Projection {
        Linear,     // ImageProjModel: Linear(image_embeds) -> tokens x cross, LayerNorm (ip-adapter_sd15, _sdxl)
        Resampler,  // the Plus adapters' perceiver Resampler over the penultimate hidden states
    };
    Projection projection = Projection::Linear;
    int64_t embed_dim = 0;            // what it reads: the encoder's projection_dim (Linear) or hidden size (Resampler)
    int64_t cross_attention_dim = 0;  // the UNet's context width
    int64_t tokens = 4;               // image tokens per image
    // Resampler: latent width, layers, heads of 64 (diffusers: heads = to_q rows / 64), feed-forward width.
    int64_t hidden = 0, depth = 0, heads = 0, dim_head = 64, ff_inner = 0;
    std::vector<int64_t> block_widths;  // each to_k_ip / to_v_ip's output width, in the file's order

    bool reads_penultimate() const { return projection == Projection::Resampler; }
    std::string kind_name() const;  // "IP-Adapter" or "IP-Adapter Plus"
    // From the original names (image_proj.*, ip_adapter.N.*; a .bin's nested dicts flattened with '.').
    // Errors name the key and the shapes.
    static Result<IPAdapterConfig> detect_from_weights(const WeightSet& w);
    std::string summary() const;
};

class IPAdapter {
public:
    static IPAdapter declare(const ParamScope& s, const IPAdapterConfig& cfg);

    // embeds: [N, embed_dim] (Linear) or [N, L, embed_dim] (Resampler) -> [N, tokens, cross_attention_dim]
    Tensor project(const Ctx& c, const Tensor& embeds) const;
    // tokens: [N, T, cross_attention_dim] (several images' tokens concatenated along T) -> what each
    // cross-attention block adds, keys and values [N, T, width], times `scale`.
    std::vector<ExtraKV> keys_values(const Ctx& c, const Tensor& tokens, float scale) const;

    const IPAdapterConfig& config() const { return cfg_; }

private:
    struct ResamplerLayer {
        LayerNorm norm1, norm2;  // the image features', the latents'
        Linear to_q, to_kv, to_out;
        LayerNorm ff_norm;
        Linear ff_in, ff_out;
    };
    IPAdapterConfig cfg_;
    // Linear
    Linear proj_;
    LayerNorm norm_;
    // Resampler
    Tensor latents_;  // [1, tokens, hidden] f32
    Linear proj_in_, proj_out_;
    LayerNorm norm_out_;
    std::vector<ResamplerLayer> layers_;
    std::vector<Linear> to_k_, to_v_;
};

}  // namespace easel
