// The T5 encoder as transformers' T5EncoderModel (modeling_t5.py, 4.40) computes it: token embeddings (not
// scaled), then per block x += SelfAttention(RMSNorm(x)) and x += FF(RMSNorm(x)), then a final RMSNorm. The
// attention is unscaled (T5 folds 1/sqrt(d) into its weights) and adds a learned bias per head and relative
// position bucket, computed once by block 0 and shared by every block; no attention mask (SD3 and Flux run the
// padded prompt as it is). The v1.1 feed-forward is wo(gelu_tanh(wi_0 x) * wi_1 x). Parameters carry
// transformers' names under the declare() scope ("encoder.block.0.layer.0.SelfAttention.q.weight").
//
//   T5Encoder t5 = T5Encoder::declare(ParamScope(loader, "text_encoder_3"), cfg);
//   Tensor h = t5.encode(ctx, {ids});             // ids [N][L] -> [N, L, d_model]
#pragma once

#include <cstdint>
#include <vector>

#include "models/t5/config.h"
#include "runtime/nn.h"

namespace easel {

// transformers' T5Attention._relative_position_bucket(relative_position = key - query, bidirectional=True), in
// float32 as torch computes it (log, divide, multiply, truncate).
int t5_relative_position_bucket(int relative_position, int num_buckets, int max_distance);

class T5Encoder {
public:
    static T5Encoder declare(const ParamScope& s, const T5Config& cfg);
    // ids: N rows of equal length L (ids < vocab_size; the tokenizer's are) -> [N, L, d_model].
    Tensor encode(const Ctx& c, const std::vector<std::vector<int32_t>>& ids) const;
    const T5Config& config() const { return cfg_; }
    bool loaded() const { return !blocks_.empty(); }

private:
    struct Block {
        RMSNorm ln_attn, ln_ff;
        Linear q, k, v, o;
        Linear wi_0, wi_1, wo;  // wi_1 unused when not gated (wi_0 is then "wi")
    };
    // [heads, L, L] bias for a sequence of length L.
    Tensor position_bias(int64_t L) const;

    T5Config cfg_;
    Tensor embedding_;  // [vocab, d_model] f32
    Tensor rel_bias_;   // [buckets, heads] f32
    std::vector<Block> blocks_;
    RMSNorm final_ln_;
};

}  // namespace easel
