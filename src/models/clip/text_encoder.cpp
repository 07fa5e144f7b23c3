#include "models/clip/text_encoder.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace easel {

CLIPTextEncoder CLIPTextEncoder::declare(const ParamScope& s0, const CLIPTextConfig& cfg) {
    CLIPTextEncoder e;
    e.cfg_ = cfg;
    const ParamScope s = s0 / "text_model";
    const int64_t D = cfg.hidden_size, F = cfg.intermediate_size;
    e.token_embedding_ = s.take_f32("embeddings.token_embedding.weight", {cfg.vocab_size, D});
    e.position_embedding_ = s.take_f32("embeddings.position_embedding.weight", {cfg.max_positions, D});
    for (int i = 0; i < cfg.num_layers; ++i)
        e.layers_.push_back(CLIPLayer::declare(s / "encoder" / "layers" / i, D, F, cfg.layer_norm_eps));
    e.final_ln_ = LayerNorm::declare(s / "final_layer_norm", D, cfg.layer_norm_eps);
    if (cfg.has_projection) e.projection_ = Linear::declare(s0 / "text_projection", D, cfg.projection_dim, /*bias=*/false);
    return e;
}

Tensor CLIPTextEncoder::encode(const Ctx& c, const std::vector<std::vector<int32_t>>& ids, int clip_skip) const {
    return encode(c, ids, Options{.clip_skip = clip_skip}).hidden;
}

CLIPTextEncoder::Output CLIPTextEncoder::encode(const Ctx& c, const std::vector<std::vector<int32_t>>& ids,
                                                const Options& o) const {
    const int64_t N = int64_t(ids.size());
    EASEL_ASSERT(N > 0, "CLIPTextEncoder::encode: no sequences");
    const int64_t L = int64_t(ids[0].size()), D = cfg_.hidden_size;
    EASEL_ASSERT(L <= cfg_.max_positions, "CLIPTextEncoder::encode: sequence longer than the position table");
    Tensor x = c.empty({N, L, D});
    float* xp = x.data<float>();
    const float* tok = token_embedding_.data<float>();
    const float* pos = position_embedding_.data<float>();
    for (int64_t n = 0; n < N; ++n) {
        EASEL_ASSERT(int64_t(ids[size_t(n)].size()) == L, "CLIPTextEncoder::encode: sequences differ in length");
        for (int64_t t = 0; t < L; ++t) {
            const int32_t id = ids[size_t(n)][size_t(t)];
            EASEL_ASSERT(id >= 0 && id < cfg_.vocab_size, fmt::format("token id {} outside the vocabulary", id));
            float* row = xp + (n * L + t) * D;
            for (int64_t d = 0; d < D; ++d) row[d] = tok[int64_t(id) * D + d] + pos[t * D + d];
        }
        if (size_t(n) >= o.fixes.size()) continue;
        for (const Options::Fix& f : o.fixes[size_t(n)]) {
            const Tensor v = f.vectors.to(DType::F32).contiguous();
            EASEL_ASSERT(v.rank() == 2 && v.size(1) == D, "CLIPTextEncoder::encode: embedding vectors of the wrong width");
            const int64_t count = std::min(v.size(0), L - f.position);
            for (int64_t k = 0; k < count; ++k) {
                const int64_t t = f.position + k;
                float* row = xp + (n * L + t) * D;
                for (int64_t d = 0; d < D; ++d) row[d] = v.data<float>()[k * D + d] + pos[t * D + d];
            }
        }
    }
    // The chosen layer's output; with pooled, the remaining layers run on for the pooled output.
    const int chosen = std::max(1, cfg_.num_layers - std::max(0, o.clip_skip - 1));
    const int run = o.pooled ? cfg_.num_layers : chosen;
    Output out;
    for (int i = 0; i < run; ++i) {
        x = layers_[size_t(i)].forward(c, x, cfg_.num_heads, cfg_.hidden_act, /*causal=*/true);
        if (i + 1 == chosen) out.hidden = o.final_norm ? final_ln_(c, x) : x.contiguous().clone();
    }
    if (!o.pooled) return out;
    const Tensor last = run == chosen && o.final_norm ? out.hidden : final_ln_(c, x);
    Tensor pooled = Tensor::empty({N, D});
    for (int64_t n = 0; n < N; ++n) {
        const std::vector<int32_t>& r = ids[size_t(n)];
        int64_t at = 0;  // transformers' argmax over a row without EOS: position 0
        if (cfg_.eos_token_id == 2) {
            at = std::max_element(r.begin(), r.end()) - r.begin();  // first of the largest
        } else {
            auto it = std::find(r.begin(), r.end(), cfg_.eos_token_id);
            if (it != r.end()) at = it - r.begin();
        }
        std::memcpy(pooled.data<float>() + n * D, last.data<float>() + (n * L + at) * D, size_t(D) * sizeof(float));
    }
    out.pooled = projection_ ? (*projection_)(c, pooled) : pooled;
    return out;
}

}  // namespace easel
