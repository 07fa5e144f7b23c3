#include "models/mmdit/config.h"

#include <algorithm>

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

Result<MMDiTConfig> MMDiTConfig::from_diffusers_json(const std::string& json_text) {
    EASEL_TRY_ASSIGN(ConfigNode doc, parse_json_config(json_text, "transformer config.json"));
    if (!doc.is_map()) return bad_config("(top)", "expected a JSON object");
    EASEL_TRY_ASSIGN(const std::string cls, doc.get_string_or("_class_name", "SD3Transformer2DModel"));
    if (cls != "SD3Transformer2DModel")
        return Error::unsupported(fmt::format("_class_name is '{}'; expected SD3Transformer2DModel", cls),
                                  "transformer config.json");
    MMDiTConfig c;
    auto get_int = [&](const char* key, int fallback, int lo, int hi) -> Result<int> {
        EASEL_TRY_ASSIGN(std::optional<int64_t> v, doc.get_int(key));
        if (!v) return fallback;
        if (*v < lo || *v > hi) return bad_config(key, fmt::format("value {} out of range {}..{}", *v, lo, hi));
        return int(*v);
    };
    // SD3Transformer2DModel's own defaults for absent keys (diffusers 0.30).
    EASEL_TRY_ASSIGN(c.sample_size, get_int("sample_size", 128, 1, 1 << 14));
    EASEL_TRY_ASSIGN(c.patch_size, get_int("patch_size", 2, 1, 64));
    EASEL_TRY_ASSIGN(c.in_channels, get_int("in_channels", 16, 1, 4096));
    EASEL_TRY_ASSIGN(c.out_channels, get_int("out_channels", c.in_channels, 1, 4096));
    EASEL_TRY_ASSIGN(c.num_layers, get_int("num_layers", 18, 1, kMaxLayers));
    EASEL_TRY_ASSIGN(c.head_dim, get_int("attention_head_dim", 64, 1, kMaxWidth));
    EASEL_TRY_ASSIGN(c.num_heads, get_int("num_attention_heads", 18, 1, kMaxWidth));
    EASEL_TRY_ASSIGN(c.joint_attention_dim, get_int("joint_attention_dim", 4096, 1, kMaxWidth));
    EASEL_TRY_ASSIGN(c.caption_projection_dim, get_int("caption_projection_dim", 1152, 1, kMaxWidth));
    EASEL_TRY_ASSIGN(c.pooled_projection_dim, get_int("pooled_projection_dim", 2048, 1, kMaxWidth));
    EASEL_TRY_ASSIGN(c.pos_embed_max_size, get_int("pos_embed_max_size", 96, 1, 1 << 12));
    // SD3.5's additions (diffusers 0.31).
    if (const ConfigNode* n = doc.get("qk_norm"); n && !n->is_null()) {
        EASEL_TRY_ASSIGN(const std::string qk, doc.get_string_or("qk_norm", ""));
        if (qk != "rms_norm")
            return Error::unsupported(fmt::format("qk_norm '{}': SD3.5 uses rms_norm, the one easel runs", qk),
                                      "transformer config.json");
        c.qk_norm = true;
    }
    if (const ConfigNode* n = doc.get("dual_attention_layers"); n && !n->is_null()) {
        EASEL_TRY_ASSIGN(std::vector<int64_t> layers, n->as_int_list("dual_attention_layers"));
        for (int64_t l : layers) {
            if (l < 0 || l >= c.num_layers)
                return bad_config("dual_attention_layers", fmt::format("block {} outside 0..{}", l, c.num_layers - 1));
            c.dual_attention_layers.push_back(int(l));
        }
    }
    EASEL_TRY(c.validate());
    return c;
}

Result<MMDiTConfig> MMDiTConfig::detect_from_weights(const WeightSet& w, std::string_view prefix) {
    const std::string p(prefix);
    auto need = [&](const std::string& name, int dims) -> Result<const Tensor*> {
        const Tensor* t = w.find(p + name);
        if (!t || t->rank() != dims)
            return Error::bad_file(w.source, fmt::format("no {}{} ({}-D): not an SD3 transformer", p, name, dims));
        return t;
    };
    MMDiTConfig c;
    EASEL_TRY_ASSIGN(const Tensor* proj, need("pos_embed.proj.weight", 4));
    const int inner = int(proj->size(0));
    c.in_channels = int(proj->size(1));
    c.patch_size = int(proj->size(2));
    if (proj->size(3) != proj->size(2)) return Error::bad_file(w.source, "pos_embed.proj.weight: patches are not square");
    EASEL_TRY_ASSIGN(const Tensor* grid, need("pos_embed.pos_embed", 3));
    const int64_t cells = grid->size(1);
    int side = 0;
    while (int64_t(side + 1) * (side + 1) <= cells) ++side;
    if (int64_t(side) * side != cells || grid->size(2) != inner)
        return Error::bad_file(w.source, fmt::format("pos_embed.pos_embed is [{}, {}, {}]: expected a square grid of {}-wide "
                                                     "embeddings", grid->size(0), cells, grid->size(2), inner));
    c.pos_embed_max_size = side;
    EASEL_TRY_ASSIGN(const Tensor* out, need("proj_out.weight", 2));
    const int64_t pp = int64_t(c.patch_size) * c.patch_size;
    if (pp <= 0 || out->size(0) % pp != 0)
        return Error::bad_file(w.source, "proj_out.weight rows are not a multiple of the patch area");
    c.out_channels = int(out->size(0) / pp);
    EASEL_TRY_ASSIGN(const Tensor* ctx, need("context_embedder.weight", 2));
    c.caption_projection_dim = int(ctx->size(0));
    c.joint_attention_dim = int(ctx->size(1));
    EASEL_TRY_ASSIGN(const Tensor* pooled, need("time_text_embed.text_embedder.linear_1.weight", 2));
    c.pooled_projection_dim = int(pooled->size(1));
    c.num_layers = 0;
    while (c.num_layers < kMaxLayers && w.contains(fmt::format("{}transformer_blocks.{}.norm1.linear.weight", p, c.num_layers)))
        ++c.num_layers;
    c.qk_norm = w.contains(p + "transformer_blocks.0.attn.norm_q.weight");
    for (int i = 0; i < c.num_layers; ++i)
        if (w.contains(fmt::format("{}transformer_blocks.{}.attn2.to_q.weight", p, i))) c.dual_attention_layers.push_back(i);
    c.head_dim = 64;
    c.num_heads = inner % 64 == 0 ? inner / 64 : 1;
    if (inner % 64 != 0) c.head_dim = inner;
    c.sample_size = 128;
    EASEL_TRY(c.validate());
    return c;
}

bool MMDiTConfig::dual(int block) const {
    return std::find(dual_attention_layers.begin(), dual_attention_layers.end(), block) != dual_attention_layers.end();
}

Status MMDiTConfig::validate() const {
    auto bad = [](const std::string& what) { return Error::invalid_argument("SD3 transformer config: " + what); };
    if (patch_size < 1 || in_channels < 1 || out_channels < 1 || num_layers < 1 || head_dim < 1 || num_heads < 1 ||
        joint_attention_dim < 1 || pooled_projection_dim < 1 || pos_embed_max_size < 1 || sample_size < 1)
        return bad("every size must be positive");
    if (int64_t(head_dim) * num_heads > kMaxWidth) return bad("wider than any SD3 model");
    if (caption_projection_dim != inner_dim())
        return bad(fmt::format("caption_projection_dim {} differs from the blocks' width {} x {} (the joint attention "
                               "projects the context at the blocks' width)", caption_projection_dim, num_heads, head_dim));
    return ok();
}

std::string MMDiTConfig::summary() const {
    return fmt::format("MMDiT, {} joint blocks, {} heads x {}, patch {}, {} -> {} channels, context {}, pooled {}, "
                       "position grid {}, sample {}{}{}", num_layers, num_heads, head_dim, patch_size, in_channels,
                       out_channels, joint_attention_dim, pooled_projection_dim, pos_embed_max_size, sample_size,
                       qk_norm ? ", qk RMSNorm (SD3.5)" : "",
                       dual_attention_layers.empty() ? std::string()
                                                     : fmt::format(", dual attention in {} blocks (MMDiT-X)",
                                                                   dual_attention_layers.size()));
}

Status check_mmdit_agrees(const MMDiTConfig& w, const MMDiTConfig& f, const std::string& source) {
    auto differ = [&](const char* what, int a, int b) -> Status {
        if (a == b) return ok();
        return Error::bad_file(source, fmt::format("{} is {} but the weights have {}", what, b, a));
    };
    EASEL_TRY(differ("patch_size", w.patch_size, f.patch_size));
    EASEL_TRY(differ("in_channels", w.in_channels, f.in_channels));
    EASEL_TRY(differ("out_channels", w.out_channels, f.out_channels));
    EASEL_TRY(differ("num_layers", w.num_layers, f.num_layers));
    EASEL_TRY(differ("the width (num_attention_heads x attention_head_dim)", w.inner_dim(), f.inner_dim()));
    EASEL_TRY(differ("joint_attention_dim", w.joint_attention_dim, f.joint_attention_dim));
    EASEL_TRY(differ("caption_projection_dim", w.caption_projection_dim, f.caption_projection_dim));
    EASEL_TRY(differ("pooled_projection_dim", w.pooled_projection_dim, f.pooled_projection_dim));
    EASEL_TRY(differ("pos_embed_max_size", w.pos_embed_max_size, f.pos_embed_max_size));
    EASEL_TRY(differ("qk_norm (norm_q weights)", int(w.qk_norm), int(f.qk_norm)));
    if (w.dual_attention_layers != f.dual_attention_layers)
        return Error::bad_file(source, fmt::format("dual_attention_layers {} but the weights have attn2 in blocks {}",
                                                   f.dual_attention_layers, w.dual_attention_layers));
    return ok();
}

}  // namespace easel
