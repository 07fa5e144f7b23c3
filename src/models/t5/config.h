// T5Config: the shape of a T5 v1.1 encoder as transformers' T5EncoderModel builds it (SD3's and Flux's
// text_encoder_3 / text_encoder_2: google/t5-v1_1-xxl, d_model 4096, 64 heads of 64, d_ff 10240, 24 layers,
// gated GELU (tanh), 32 relative-position buckets up to distance 128, RMS LayerNorm eps 1e-6).
//
//   EASEL_TRY_ASSIGN(T5Config c, T5Config::from_diffusers_json(read_text("text_encoder_3/config.json")));
//   EASEL_TRY_ASSIGN(T5Config d, T5Config::detect_from_weights(weights, "text_encoder_3."));
//   EASEL_TRY(check_t5_agrees(d, c, "config.json"));
#pragma once

#include <string>
#include <string_view>

#include "core/error.h"
#include "io/weights.h"

namespace easel {

struct T5Config {
    int vocab_size = 32128;
    int d_model = 4096;
    int d_kv = 64;                 // width of one head
    int num_heads = 64;
    int d_ff = 10240;
    int num_layers = 24;
    int num_buckets = 32;          // relative_attention_num_buckets
    int max_distance = 128;        // relative_attention_max_distance
    float layer_norm_eps = 1e-6f;
    bool gated = true;             // feed_forward_proj "gated-gelu" (v1.1): wo(gelu_tanh(wi_0 x) * wi_1 x)
    bool gelu = true;              // the activation: gelu_new (tanh) for "gated-gelu", else relu ("relu", T5 v1.0)
    int pad_token_id = 0, eos_token_id = 1;

    int inner_dim() const { return d_kv * num_heads; }

    // transformers' T5Config keys; absent keys take transformers' defaults (t5-small's), as transformers would.
    static Result<T5Config> from_diffusers_json(const std::string& json_text);
    // From transformers-named tensors under `prefix` ("text_encoder_3."): vocabulary and widths from
    // shared.weight (or encoder.embed_tokens.weight), heads and buckets from block 0's relative_attention_bias,
    // d_kv = q rows / heads, layers counted, gated from wi_0/wi_1. Distance and eps keep v1.1's defaults.
    static Result<T5Config> detect_from_weights(const WeightSet& w, std::string_view prefix);

    Status validate() const;
    std::string summary() const;
};

// A config file and the weights must agree on everything the shapes tell; `source` names the file.
Status check_t5_agrees(const T5Config& from_weights, const T5Config& from_file, const std::string& source);

}  // namespace easel
