#include "models/t5/config.h"

#include <fmt/format.h>

#include "io/keymap_config_doc.h"

namespace easel {
namespace {

constexpr int kMaxWidth = 1 << 16;
constexpr int kMaxLayers = 256;
constexpr int kMaxVocab = 1 << 22;

Error bad_config(std::string_view key, const std::string& what) {
    return Error::bad_file("text encoder config.json", fmt::format("{}: {}", key, what));
}

// The embedding table's name: transformers saves the shared table; encoder.embed_tokens is its tied alias.
const Tensor* embedding_of(const WeightSet& w, std::string_view prefix) {
    if (const Tensor* t = w.find(std::string(prefix) + "shared.weight")) return t;
    return w.find(std::string(prefix) + "encoder.embed_tokens.weight");
}

}  // namespace

Result<T5Config> T5Config::from_diffusers_json(const std::string& json_text) {
    EASEL_TRY_ASSIGN(ConfigNode doc, parse_json_config(json_text, "T5 config.json"));
    if (!doc.is_map()) return bad_config("(top)", "expected a JSON object");
    EASEL_TRY_ASSIGN(const std::string type, doc.get_string_or("model_type", "t5"));
    if (type != "t5" && type != "umt5")
        return Error::unsupported(fmt::format("model_type is '{}'; expected t5", type), "text encoder config.json");
    T5Config c;
    auto get_int = [&](const char* key, int fallback, int lo, int hi) -> Result<int> {
        EASEL_TRY_ASSIGN(std::optional<int64_t> v, doc.get_int(key));
        if (!v) return fallback;
        if (*v < lo || *v > hi) return bad_config(key, fmt::format("value {} out of range {}..{}", *v, lo, hi));
        return int(*v);
    };
    EASEL_TRY_ASSIGN(c.vocab_size, get_int("vocab_size", 32128, 1, kMaxVocab));
    EASEL_TRY_ASSIGN(c.d_model, get_int("d_model", 512, 1, kMaxWidth));
    EASEL_TRY_ASSIGN(c.d_kv, get_int("d_kv", 64, 1, kMaxWidth));
    EASEL_TRY_ASSIGN(c.num_heads, get_int("num_heads", 8, 1, kMaxWidth));
    EASEL_TRY_ASSIGN(c.d_ff, get_int("d_ff", 2048, 1, kMaxWidth * 8));
    EASEL_TRY_ASSIGN(c.num_layers, get_int("num_layers", 6, 1, kMaxLayers));
    EASEL_TRY_ASSIGN(c.num_buckets, get_int("relative_attention_num_buckets", 32, 2, 4096));
    EASEL_TRY_ASSIGN(c.max_distance, get_int("relative_attention_max_distance", 128, 1, 1 << 20));
    EASEL_TRY_ASSIGN(c.pad_token_id, get_int("pad_token_id", 0, 0, kMaxVocab));
    EASEL_TRY_ASSIGN(c.eos_token_id, get_int("eos_token_id", 1, 0, kMaxVocab));
    EASEL_TRY_ASSIGN(std::optional<double> eps, doc.get_double("layer_norm_epsilon"));
    c.layer_norm_eps = float(eps.value_or(1e-6));
    // transformers: "gated-gelu" means a gated feed-forward with gelu_new; "relu" the original T5's.
    EASEL_TRY_ASSIGN(const std::string ff, doc.get_string_or("feed_forward_proj", "relu"));
    if (ff == "gated-gelu") {
        c.gated = true;
        c.gelu = true;
    } else if (ff == "relu") {
        c.gated = false;
        c.gelu = false;
    } else {
        return Error::unsupported(fmt::format("feed_forward_proj is '{}'; easel knows gated-gelu (T5 v1.1) and relu", ff),
                                  "text encoder config.json");
    }
    if (type == "umt5") return Error::unsupported("a UMT5 encoder (per-layer position buckets)", "text encoder config.json");
    EASEL_TRY(c.validate());
    return c;
}

Result<T5Config> T5Config::detect_from_weights(const WeightSet& w, std::string_view prefix) {
    const std::string p(prefix);
    const Tensor* emb = embedding_of(w, prefix);
    if (!emb || emb->rank() != 2)
        return Error::bad_file(w.source, fmt::format("no T5 token embedding ({}shared.weight, 2-D)", p));
    T5Config c;
    c.vocab_size = int(emb->size(0));
    c.d_model = int(emb->size(1));
    const Tensor* bias = w.find(p + "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
    if (!bias || bias->rank() != 2)
        return Error::bad_file(w.source, fmt::format("no {}encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight "
                                                     "(2-D): not a T5 encoder", p));
    c.num_buckets = int(bias->size(0));
    c.num_heads = int(bias->size(1));
    const Tensor* q = w.find(p + "encoder.block.0.layer.0.SelfAttention.q.weight");
    if (!q || q->rank() != 2 || c.num_heads <= 0 || q->size(0) % c.num_heads != 0)
        return Error::bad_file(w.source, fmt::format("{}encoder.block.0.layer.0.SelfAttention.q.weight is missing or not "
                                                     "[heads x d_kv, d_model]", p));
    c.d_kv = int(q->size(0) / c.num_heads);
    c.num_layers = 0;
    while (c.num_layers < kMaxLayers &&
           w.contains(fmt::format("{}encoder.block.{}.layer.0.SelfAttention.q.weight", p, c.num_layers)))
        ++c.num_layers;
    const Tensor* wo = w.find(p + "encoder.block.0.layer.1.DenseReluDense.wo.weight");
    if (!wo || wo->rank() != 2)
        return Error::bad_file(w.source, fmt::format("no {}encoder.block.0.layer.1.DenseReluDense.wo.weight (2-D)", p));
    c.d_ff = int(wo->size(1));
    c.gated = w.contains(p + "encoder.block.0.layer.1.DenseReluDense.wi_0.weight");
    c.gelu = c.gated;
    EASEL_TRY(c.validate());
    return c;
}

Status T5Config::validate() const {
    auto bad = [](const std::string& what) { return Error::invalid_argument("T5 config: " + what); };
    if (vocab_size < 1 || d_model < 1 || d_kv < 1 || num_heads < 1 || d_ff < 1 || num_layers < 1)
        return bad(fmt::format("every width and count must be positive (vocab {}, d_model {}, d_kv {}, heads {}, d_ff {}, "
                               "layers {})", vocab_size, d_model, d_kv, num_heads, d_ff, num_layers));
    if (d_model > kMaxWidth || d_kv > kMaxWidth || num_heads > kMaxWidth || int64_t(d_kv) * num_heads > kMaxWidth * 4 ||
        d_ff > kMaxWidth * 8 || num_layers > kMaxLayers || vocab_size > kMaxVocab)
        return bad("a size beyond any T5 model");
    if (num_buckets < 2 || num_buckets > 4096 || max_distance < 1)
        return bad(fmt::format("{} position buckets up to distance {}", num_buckets, max_distance));
    if (!(layer_norm_eps > 0.0f && layer_norm_eps < 1.0f)) return bad(fmt::format("layer_norm_epsilon {}", layer_norm_eps));
    if (pad_token_id >= vocab_size || eos_token_id >= vocab_size)
        return bad(fmt::format("pad id {} / eos id {} outside the vocabulary of {}", pad_token_id, eos_token_id, vocab_size));
    return ok();
}

std::string T5Config::summary() const {
    return fmt::format("T5 encoder, {} layers, d_model {}, {} heads x {}, d_ff {}{}, vocab {}", num_layers, d_model, num_heads,
                       d_kv, d_ff, gated ? " gated-gelu" : " relu", vocab_size);
}

Status check_t5_agrees(const T5Config& w, const T5Config& f, const std::string& source) {
    auto differ = [&](const char* what, int a, int b) -> Status {
        if (a == b) return ok();
        return Error::bad_file(source, fmt::format("{} is {} but the weights have {}", what, b, a));
    };
    EASEL_TRY(differ("vocab_size", w.vocab_size, f.vocab_size));
    EASEL_TRY(differ("d_model", w.d_model, f.d_model));
    EASEL_TRY(differ("d_kv", w.d_kv, f.d_kv));
    EASEL_TRY(differ("num_heads", w.num_heads, f.num_heads));
    EASEL_TRY(differ("d_ff", w.d_ff, f.d_ff));
    EASEL_TRY(differ("num_layers", w.num_layers, f.num_layers));
    EASEL_TRY(differ("relative_attention_num_buckets", w.num_buckets, f.num_buckets));
    EASEL_TRY(differ("gated feed-forward (wi_0/wi_1)", int(w.gated), int(f.gated)));
    return ok();
}

}  // namespace easel
