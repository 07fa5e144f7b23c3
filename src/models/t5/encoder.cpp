#include "models/t5/encoder.h"

#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "kernels/matmul.h"
#include "kernels/softmax.h"

namespace easel {

int t5_relative_position_bucket(int relative_position, int num_buckets, int max_distance) {
    int bucket = 0;
    num_buckets /= 2;
    if (relative_position > 0) bucket += num_buckets;
    const int n = std::abs(relative_position);
    const int max_exact = num_buckets / 2;
    if (n < max_exact) return bucket + n;
    // torch: max_exact + (log(n.float() / max_exact) / math.log(max_distance / max_exact) * (num_buckets -
    // max_exact)).to(long), each operation in float32 (the Python float scalar taken as float32).
    const float ratio = float(n) / float(max_exact);
    const float denom = float(std::log(double(max_distance) / double(max_exact)));
    const float scaled = (std::log(ratio) / denom) * float(num_buckets - max_exact);
    const int large = std::min(max_exact + int(scaled), num_buckets - 1);
    return bucket + large;
}

T5Encoder T5Encoder::declare(const ParamScope& s, const T5Config& cfg) {
    T5Encoder t;
    t.cfg_ = cfg;
    const int64_t d = cfg.d_model, inner = cfg.inner_dim();
    t.embedding_ = s.has("shared.weight") ? s.take_f32("shared.weight", {cfg.vocab_size, d})
                                          : s.take_f32("encoder.embed_tokens.weight", {cfg.vocab_size, d});
    if (s.has("encoder.embed_tokens.weight") && s.has("shared.weight")) (void)s.take_stored("encoder.embed_tokens.weight", {cfg.vocab_size, d});
    const ParamScope e = s / "encoder";
    t.rel_bias_ = e.take_f32("block.0.layer.0.SelfAttention.relative_attention_bias.weight", {cfg.num_buckets, cfg.num_heads});
    for (int i = 0; i < cfg.num_layers; ++i) {
        const ParamScope b = e / "block" / i;
        const ParamScope a = b / "layer" / 0 / "SelfAttention";
        const ParamScope f = b / "layer" / 1 / "DenseReluDense";
        Block blk;
        blk.ln_attn = RMSNorm::declare(b / "layer" / 0 / "layer_norm", d, cfg.layer_norm_eps);
        blk.q = Linear::declare(a / "q", d, inner, false);
        blk.k = Linear::declare(a / "k", d, inner, false);
        blk.v = Linear::declare(a / "v", d, inner, false);
        blk.o = Linear::declare(a / "o", inner, d, false);
        blk.ln_ff = RMSNorm::declare(b / "layer" / 1 / "layer_norm", d, cfg.layer_norm_eps);
        if (cfg.gated) {
            blk.wi_0 = Linear::declare(f / "wi_0", d, cfg.d_ff, false);
            blk.wi_1 = Linear::declare(f / "wi_1", d, cfg.d_ff, false);
        } else {
            blk.wi_0 = Linear::declare(f / "wi", d, cfg.d_ff, false);
        }
        blk.wo = Linear::declare(f / "wo", cfg.d_ff, d, false);
        t.blocks_.push_back(std::move(blk));
    }
    t.final_ln_ = RMSNorm::declare(e / "final_layer_norm", d, cfg.layer_norm_eps);
    return t;
}

Tensor T5Encoder::position_bias(int64_t L) const {
    const int64_t H = cfg_.num_heads;
    Tensor bias = Tensor::empty({H, L, L});
    float* b = bias.data<float>();
    const float* table = rel_bias_.data<float>();
    std::vector<int> bucket_of(size_t(2 * L - 1));
    for (int64_t r = -(L - 1); r <= L - 1; ++r)
        bucket_of[size_t(r + L - 1)] = t5_relative_position_bucket(int(r), cfg_.num_buckets, cfg_.max_distance);
    for (int64_t i = 0; i < L; ++i)
        for (int64_t j = 0; j < L; ++j) {
            const int bucket = bucket_of[size_t(j - i + L - 1)];
            for (int64_t h = 0; h < H; ++h) b[(h * L + i) * L + j] = table[bucket * H + h];
        }
    return bias;
}

Tensor T5Encoder::encode(const Ctx& c, const std::vector<std::vector<int32_t>>& ids) const {
    const int64_t N = int64_t(ids.size());
    EASEL_ASSERT(N > 0 && !ids[0].empty(), "T5Encoder::encode: no ids");
    const int64_t L = int64_t(ids[0].size()), D = cfg_.d_model, H = cfg_.num_heads, dk = cfg_.d_kv, inner = cfg_.inner_dim();
    Tensor x = c.empty({N, L, D});
    for (int64_t n = 0; n < N; ++n) {
        EASEL_ASSERT(int64_t(ids[size_t(n)].size()) == L, "T5Encoder::encode: rows of different lengths");
        for (int64_t i = 0; i < L; ++i) {
            const int32_t id = ids[size_t(n)][size_t(i)];
            EASEL_ASSERT(id >= 0 && id < cfg_.vocab_size, "T5Encoder::encode: id outside the vocabulary");
            std::memcpy(x.data<float>() + (n * L + i) * D, embedding_.data<float>() + int64_t(id) * D, size_t(D) * sizeof(float));
        }
    }
    const Tensor bias = position_bias(L);
    Tensor scores = c.empty({H, L, L});
    for (const Block& blk : blocks_) {
        const Tensor h = blk.ln_attn(c, x);
        const Tensor q = blk.q(c, h), k = blk.k(c, h), v = blk.v(c, h);
        Tensor att = c.empty({N, L, inner});
        for (int64_t n = 0; n < N; ++n) {
            // scores[h] = bias[h] + q_h k_hᵀ (unscaled), softmax over keys, times v_h.
            std::memcpy(scores.data<float>(), bias.data<float>(), size_t(H * L * L) * sizeof(float));
            const float* qn = q.data<float>() + n * L * inner;
            const float* kn = k.data<float>() + n * L * inner;
            const float* vn = v.data<float>() + n * L * inner;
            matmul_f32({.batch = H, .m = L, .n = L, .k = dk, .a = qn, .a_batch_stride = dk, .a_row_stride = inner,
                        .b = kn, .b_batch_stride = dk, .b_row_stride = 1, .b_col_stride = inner, .c = scores.data<float>(),
                        .accumulate = true});
            softmax_f32(scores.data<float>(), scores.data<float>(), size_t(H * L), size_t(L));
            matmul_f32({.batch = H, .m = L, .n = dk, .k = L, .a = scores.data<float>(), .a_batch_stride = L * L,
                        .a_row_stride = L, .b = vn, .b_batch_stride = dk, .b_row_stride = inner, .b_col_stride = 1,
                        .c = att.data<float>() + n * L * inner, .c_batch_stride = dk, .c_row_stride = inner});
        }
        x = blk.o(c, att, &x);
        const Tensor g = blk.ln_ff(c, x);
        Tensor a = blk.wi_0(c, g);
        if (cfg_.gated) {
            a = ops::gelu(c, a, /*tanh_approx=*/true);
            a = ops::mul(c, a, blk.wi_1(c, g));
        } else {
            float* p = a.data<float>();
            for (int64_t i = 0; i < a.numel(); ++i) p[i] = std::max(p[i], 0.0f);
        }
        x = blk.wo(c, a, &x);
    }
    return final_ln_(c, x);
}

}  // namespace easel
