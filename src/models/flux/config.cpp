#include "models/flux/config.h"

#include <numeric>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "io/keymap_config_doc.h"

namespace easel {
namespace {

constexpr int kMaxWidth = 1 << 16;
constexpr int kMaxLayers = 512;

Error bad_config(std::string_view key, const std::string& what) {
    return Error::bad_file("transformer config.json", fmt::format("{}: {}", key, what));
}

}  // namespace

Result<FluxConfig> FluxConfig::from_diffusers_json(const std::string& json_text) {
    EASEL_TRY_ASSIGN(ConfigNode doc, parse_json_config(json_text, "transformer config.json"));
    if (!doc.is_map()) return bad_config("(top)", "expected a JSON object");
    EASEL_TRY_ASSIGN(const std::string cls, doc.get_string_or("_class_name", "FluxTransformer2DModel"));
    if (cls != "FluxTransformer2DModel")
        return Error::unsupported(fmt::format("_class_name is '{}'; expected FluxTransformer2DModel", cls),
                                  "transformer config.json");
    FluxConfig c;
    auto get_int = [&](const char* key, int fallback, int lo, int hi) -> Result<int> {
        EASEL_TRY_ASSIGN(std::optional<int64_t> v, doc.get_int(key));
        if (!v) return fallback;
        if (*v < lo || *v > hi) return bad_config(key, fmt::format("value {} out of range {}..{}", *v, lo, hi));
        return int(*v);
    };
    EASEL_TRY_ASSIGN(const int patch, get_int("patch_size", 1, 1, 64));
    if (patch != 1) return Error::unsupported(fmt::format("patch_size {}: Flux.1 packs 2x2 outside the transformer (patch 1)", patch),
                                              "transformer config.json");
    EASEL_TRY_ASSIGN(c.in_channels, get_int("in_channels", 64, 4, 4096));
    EASEL_TRY_ASSIGN(c.num_layers, get_int("num_layers", 19, 0, kMaxLayers));
    EASEL_TRY_ASSIGN(c.num_single_layers, get_int("num_single_layers", 38, 0, kMaxLayers));
    EASEL_TRY_ASSIGN(c.head_dim, get_int("attention_head_dim", 128, 2, kMaxWidth));
    EASEL_TRY_ASSIGN(c.num_heads, get_int("num_attention_heads", 24, 1, kMaxWidth));
    EASEL_TRY_ASSIGN(c.joint_attention_dim, get_int("joint_attention_dim", 4096, 1, kMaxWidth));
    EASEL_TRY_ASSIGN(c.pooled_projection_dim, get_int("pooled_projection_dim", 768, 1, kMaxWidth));
    EASEL_TRY_ASSIGN(std::optional<bool> g, doc.get_bool("guidance_embeds"));
    c.guidance_embeds = g.value_or(false);
    if (const ConfigNode* n = doc.get("axes_dims_rope"); n && !n->is_null()) {
        EASEL_TRY_ASSIGN(std::vector<int64_t> axes, n->as_int_list("axes_dims_rope"));
        c.axes_dims_rope.clear();
        for (int64_t a : axes) {
            if (a < 2 || a > kMaxWidth || a % 2 != 0) return bad_config("axes_dims_rope", "each axis must be an even width");
            c.axes_dims_rope.push_back(int(a));
        }
    }
    EASEL_TRY(c.validate());
    return c;
}

Result<FluxConfig> FluxConfig::detect_from_weights(const WeightSet& w, std::string_view prefix) {
    const std::string p(prefix);
    auto need = [&](const std::string& name) -> Result<const Tensor*> {
        const Tensor* t = w.find(p + name);
        if (!t || t->rank() != 2) return Error::bad_file(w.source, fmt::format("no {}{} (2-D): not a Flux transformer", p, name));
        return t;
    };
    FluxConfig c;
    EASEL_TRY_ASSIGN(const Tensor* x, need("x_embedder.weight"));
    const int inner = int(x->size(0));
    c.in_channels = int(x->size(1));
    EASEL_TRY_ASSIGN(const Tensor* ctx, need("context_embedder.weight"));
    c.joint_attention_dim = int(ctx->size(1));
    EASEL_TRY_ASSIGN(const Tensor* pooled, need("time_text_embed.text_embedder.linear_1.weight"));
    c.pooled_projection_dim = int(pooled->size(1));
    c.guidance_embeds = w.contains(p + "time_text_embed.guidance_embedder.linear_1.weight");
    c.num_layers = 0;
    while (c.num_layers < kMaxLayers && w.contains(fmt::format("{}transformer_blocks.{}.norm1.linear.weight", p, c.num_layers)))
        ++c.num_layers;
    c.num_single_layers = 0;
    while (c.num_single_layers < kMaxLayers &&
           w.contains(fmt::format("{}single_transformer_blocks.{}.norm.linear.weight", p, c.num_single_layers)))
        ++c.num_single_layers;
    // Head width from the q norm's weight (RMSNorm over one head).
    const Tensor* nq = w.find(p + (c.num_layers > 0 ? "transformer_blocks.0.attn.norm_q.weight"
                                                    : "single_transformer_blocks.0.attn.norm_q.weight"));
    if (!nq || nq->rank() != 1 || nq->size(0) < 2 || inner % nq->size(0) != 0)
        return Error::bad_file(w.source, "no attention q norm of one head's width: not a Flux transformer");
    c.head_dim = int(nq->size(0));
    c.num_heads = inner / c.head_dim;
    if (c.head_dim != 128) {
        // Flux.1's RoPE split (16, 56, 56) is for 128-wide heads; another width needs its config.json, which
        // the loader then requires (validate() refuses an empty split).
        c.axes_dims_rope.clear();
        return c;
    }
    EASEL_TRY(c.validate());
    return c;
}

Status FluxConfig::validate() const {
    auto bad = [](const std::string& what) { return Error::invalid_argument("Flux transformer config: " + what); };
    if (in_channels < 4 || in_channels % 4 != 0) return bad(fmt::format("in_channels {} is not 4 x latent channels", in_channels));
    if (num_layers + num_single_layers < 1) return bad("no blocks");
    if (head_dim < 2 || num_heads < 1 || int64_t(head_dim) * num_heads > kMaxWidth) return bad("head width or count out of range");
    if (joint_attention_dim < 1 || pooled_projection_dim < 1) return bad("context or pooled width out of range");
    const int sum = std::accumulate(axes_dims_rope.begin(), axes_dims_rope.end(), 0);
    if (axes_dims_rope.size() != 3 || sum != head_dim)
        return bad(fmt::format("axes_dims_rope {} must be 3 even widths summing to the head width {}", axes_dims_rope, head_dim));
    for (int a : axes_dims_rope)
        if (a < 2 || a % 2 != 0) return bad(fmt::format("axes_dims_rope {}: each axis must be even", axes_dims_rope));
    return ok();
}

std::string FluxConfig::summary() const {
    return fmt::format("Flux, {} double + {} single blocks, {} heads x {}, in {}, context {}, pooled {}, guidance {}, rope {}",
                       num_layers, num_single_layers, num_heads, head_dim, in_channels, joint_attention_dim,
                       pooled_projection_dim, guidance_embeds ? "embedded" : "none", axes_dims_rope);
}

Status check_flux_agrees(const FluxConfig& w, const FluxConfig& f, const std::string& source) {
    auto differ = [&](const char* what, int a, int b) -> Status {
        if (a == b) return ok();
        return Error::bad_file(source, fmt::format("{} is {} but the weights have {}", what, b, a));
    };
    EASEL_TRY(differ("in_channels", w.in_channels, f.in_channels));
    EASEL_TRY(differ("num_layers", w.num_layers, f.num_layers));
    EASEL_TRY(differ("num_single_layers", w.num_single_layers, f.num_single_layers));
    EASEL_TRY(differ("the width (num_attention_heads x attention_head_dim)", w.inner_dim(), f.inner_dim()));
    EASEL_TRY(differ("joint_attention_dim", w.joint_attention_dim, f.joint_attention_dim));
    EASEL_TRY(differ("pooled_projection_dim", w.pooled_projection_dim, f.pooled_projection_dim));
    EASEL_TRY(differ("guidance_embeds", int(w.guidance_embeds), int(f.guidance_embeds)));
    EASEL_TRY(differ("attention_head_dim", w.head_dim, f.head_dim));
    return ok();
}

}  // namespace easel
