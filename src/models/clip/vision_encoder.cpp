#include "models/clip/vision_encoder.h"

#include <algorithm>
#include <cstring>

#include "models/common/blocks.h"

namespace easel {

CLIPVisionEncoder CLIPVisionEncoder::declare(const ParamScope& s0, const CLIPVisionConfig& cfg) {
    CLIPVisionEncoder e;
    e.cfg_ = cfg;
    const ParamScope s = s0 / "vision_model";
    const int64_t D = cfg.hidden_size, F = cfg.intermediate_size;
    e.patch_embedding_ = Conv2d::declare(s / "embeddings" / "patch_embedding", cfg.num_channels, D,
                                         {.kernel = cfg.patch_size, .stride = cfg.patch_size, .padding = 0},
                                         /*bias=*/false);
    e.class_embedding_ = s.take_f32("embeddings.class_embedding", {D});
    e.position_embedding_ = s.take_f32("embeddings.position_embedding.weight", {cfg.tokens(), D});
    e.pre_ln_ = LayerNorm::declare(s / "pre_layrnorm", D, cfg.layer_norm_eps);  // transformers' spelling
    for (int i = 0; i < cfg.num_layers; ++i)
        e.layers_.push_back(CLIPLayer::declare(s / "encoder" / "layers" / i, D, F, cfg.layer_norm_eps));
    e.post_ln_ = LayerNorm::declare(s / "post_layernorm", D, cfg.layer_norm_eps);
    e.projection_ = Linear::declare(s0 / "visual_projection", D, cfg.projection_dim, /*bias=*/false);
    return e;
}

CLIPVisionEncoder::Output CLIPVisionEncoder::encode(const Ctx& c, const Tensor& pixels, const Options& o) const {
    const int64_t N = pixels.size(0), D = cfg_.hidden_size, T = cfg_.tokens();
    EASEL_ASSERT(pixels.rank() == 4 && pixels.size(1) == cfg_.num_channels && pixels.size(2) == cfg_.image_size &&
                     pixels.size(3) == cfg_.image_size,
                 "CLIPVisionEncoder: pixels of another size than the encoder's");
    // CLIPVisionEmbeddings: [class, patches...] + positions.
    const Tensor patches = nchw_to_nlc(c, patch_embedding_(c, pixels));  // [N, T - 1, D]
    Tensor x = c.empty({N, T, D});
    const float* pp = patches.data<float>();
    const float* cls = class_embedding_.data<float>();
    const float* pos = position_embedding_.data<float>();
    float* xp = x.data<float>();
    for (int64_t n = 0; n < N; ++n)
        for (int64_t t = 0; t < T; ++t) {
            const float* src = t == 0 ? cls : pp + (n * (T - 1) + t - 1) * D;
            float* dst = xp + (n * T + t) * D;
            for (int64_t d = 0; d < D; ++d) dst[d] = src[d] + pos[t * D + d];
        }
    x = pre_ln_(c, x);
    Output out;
    const int L = cfg_.num_layers;
    const int run = o.image_embeds ? L : o.penultimate ? L - 1 : 0;
    // hidden_states[-2] is the embeddings' output for a one-layer tower.
    if (o.penultimate && L == 1) out.penultimate = x.contiguous().clone();
    for (int i = 0; i < run; ++i) {
        x = layers_[size_t(i)].forward(c, x, cfg_.num_heads, cfg_.hidden_act, /*causal=*/false);
        if (o.penultimate && i == L - 2) out.penultimate = x.contiguous().clone();
    }
    if (o.image_embeds) {
        Tensor pooled = c.empty({N, D});
        const Tensor xc = x.contiguous();
        for (int64_t n = 0; n < N; ++n)
            std::memcpy(pooled.data<float>() + n * D, xc.data<float>() + n * T * D, size_t(D) * sizeof(float));
        out.image_embeds = projection_(c, post_ln_(c, pooled));
    }
    return out;
}

}  // namespace easel
