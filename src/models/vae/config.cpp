#include "models/vae/config.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace easel {
namespace {

constexpr int kMaxLevels = 8;
constexpr int kMaxChannels = 1 << 16;
constexpr int kMaxLayersPerBlock = 16;

Error bad_config(const std::string& where, const std::string& msg) { return Error(ErrorCode::BadFile, msg, where); }

bool contains_prefix(const WeightSet& w, const std::string& p) {
    for (const std::string& n : w.names())
        if (n.compare(0, p.size(), p) == 0) return true;
    return false;
}

// Number of consecutive children head.0, head.1, ... that have at least one tensor.
int count_children(const WeightSet& w, const std::string& head, int limit) {
    int n = 0;
    while (n <= limit && contains_prefix(w, fmt::format("{}.{}.", head, n))) ++n;
    return n;
}

Result<const Tensor*> need(const WeightSet& w, const std::string& name, int rank) {
    const Tensor* t = w.find(name);
    if (!t) return Error::not_found("tensor is missing; it is needed to tell the VAE's shape", name);
    if (t->rank() != rank)
        return Error::bad_file(name, fmt::format("has shape {}, expected rank {}", t->shape().to_string(), rank));
    return t;
}

}  // namespace

Result<VAEConfig> VAEConfig::from_diffusers_json(const std::string& json_text) {
    EASEL_TRY_ASSIGN(ConfigNode cfg, parse_json_config(json_text, "vae config.json"));
    if (!cfg.is_map()) return bad_config("vae config.json", "expected a JSON object");
    VAEConfig c;
    EASEL_TRY_ASSIGN(const std::string cls, cfg.get_string_or("_class_name", "AutoencoderKL"));
    if (cls != "AutoencoderKL")
        return Error::unsupported(fmt::format("_class_name is '{}'; expected AutoencoderKL", cls), "vae config.json");
    for (const char* key : {"latents_mean", "latents_std"}) {
        const ConfigNode* n = cfg.get(key);
        if (n && !n->is_null())
            return Error::unsupported(fmt::format("{} is set: per-channel latent normalisation (Playground's VAEs)", key),
                                      "vae config.json");
    }
    if (const ConfigNode* n = cfg.get("shift_factor"); n && !n->is_null()) {
        EASEL_TRY_ASSIGN(std::optional<double> shift, cfg.get_double("shift_factor"));
        if (!shift || !std::isfinite(*shift) || std::fabs(*shift) > 100)
            return bad_config("shift_factor", "expected a number between -100 and 100");
        c.shift_factor = float(*shift);
    }
    EASEL_TRY_ASSIGN(const std::string act, cfg.get_string_or("act_fn", "silu"));
    if (act != "silu") return Error::unsupported(fmt::format("act_fn is '{}'; expected silu", act), "vae config.json");

    // AutoencoderKL's own defaults for absent keys: one 64-wide level, 1 layer per block.
    std::vector<int64_t> widths = {64};
    if (const ConfigNode* n = cfg.get("block_out_channels"); n && !n->is_null()) {
        EASEL_TRY_ASSIGN(widths, n->as_int_list("block_out_channels"));
    }
    if (widths.empty() || widths.size() > size_t(kMaxLevels))
        return bad_config("block_out_channels", fmt::format("has {} levels; expected 1..{}", widths.size(), kMaxLevels));
    c.block_out_channels.clear();
    for (int64_t x : widths) {
        if (x < 1 || x > kMaxChannels) return bad_config("block_out_channels", fmt::format("width {} out of range", x));
        c.block_out_channels.push_back(int(x));
    }
    for (const char* key : {"down_block_types", "up_block_types"}) {
        const ConfigNode* n = cfg.get(key);
        if (!n || n->is_null()) continue;
        if (!n->is_list() || n->items().size() != widths.size())
            return bad_config(key, fmt::format("expected {} block type names", widths.size()));
        const std::string want = key[0] == 'd' ? "DownEncoderBlock2D" : "UpDecoderBlock2D";
        for (const ConfigNode& t : n->items())
            if (t.scalar() != want)
                return Error::unsupported(fmt::format("block type '{}'; expected {}", t.scalar(), want),
                                          std::string("vae config.json: ") + key);
    }
    auto get_int = [&](const char* key, int fallback) -> Result<int> {
        EASEL_TRY_ASSIGN(std::optional<int64_t> v, cfg.get_int(key));
        if (!v) return fallback;
        if (*v < 0 || *v > kMaxChannels) return bad_config(key, fmt::format("value {} out of range", *v));
        return int(*v);
    };
    auto get_bool = [&](const char* key, bool fallback) -> Result<bool> {
        EASEL_TRY_ASSIGN(std::optional<bool> v, cfg.get_bool(key));
        return v.value_or(fallback);
    };
    EASEL_TRY_ASSIGN(c.in_channels, get_int("in_channels", 3));
    EASEL_TRY_ASSIGN(c.out_channels, get_int("out_channels", 3));
    EASEL_TRY_ASSIGN(c.latent_channels, get_int("latent_channels", 4));
    EASEL_TRY_ASSIGN(c.layers_per_block, get_int("layers_per_block", 1));
    EASEL_TRY_ASSIGN(c.norm_num_groups, get_int("norm_num_groups", 32));
    EASEL_TRY_ASSIGN(c.mid_attention, get_bool("mid_block_add_attention", true));
    EASEL_TRY_ASSIGN(c.use_quant_conv, get_bool("use_quant_conv", true));
    EASEL_TRY_ASSIGN(c.use_post_quant_conv, get_bool("use_post_quant_conv", true));
    EASEL_TRY_ASSIGN(std::optional<double> sf, cfg.get_double("scaling_factor"));
    c.scaling_factor = float(sf.value_or(0.18215));
    EASEL_TRY(c.validate());
    return c;
}

Result<VAEConfig> VAEConfig::from_ldm_yaml(const ConfigNode& root) {
    const ConfigNode* dd = root.path("model.params.first_stage_config.params.ddconfig");
    if (!dd || !dd->is_map())
        return Error::not_found("no model.params.first_stage_config.params.ddconfig mapping; is this an LDM model config?");
    VAEConfig c;
    auto req_int = [&](const char* key) -> Result<int> {
        EASEL_TRY_ASSIGN(std::optional<int64_t> v, dd->get_int(key));
        if (!v) return Error::not_found(fmt::format("first_stage_config ddconfig.{} is missing", key));
        if (*v < 0 || *v > kMaxChannels) return bad_config(key, fmt::format("value {} out of range", *v));
        return int(*v);
    };
    EASEL_TRY_ASSIGN(int ch, req_int("ch"));
    EASEL_TRY_ASSIGN(std::optional<std::vector<int64_t>> mult, dd->get_int_list("ch_mult"));
    if (!mult || mult->empty() || mult->size() > size_t(kMaxLevels))
        return bad_config("ch_mult", fmt::format("expected a list of 1..{} multipliers", kMaxLevels));
    c.block_out_channels.clear();
    for (int64_t m : *mult) {
        if (m < 1 || int64_t(ch) * m > kMaxChannels) return bad_config("ch_mult", "multiplier out of range");
        c.block_out_channels.push_back(int(ch * m));
    }
    EASEL_TRY_ASSIGN(c.layers_per_block, req_int("num_res_blocks"));
    EASEL_TRY_ASSIGN(c.in_channels, req_int("in_channels"));
    EASEL_TRY_ASSIGN(c.out_channels, req_int("out_ch"));
    EASEL_TRY_ASSIGN(c.latent_channels, req_int("z_channels"));
    // ldm's AutoencoderKL puts attention in levels listed in attn_resolutions (empty for SD); diffusers'
    // Encoder has no such blocks, so a non-empty list is a different model.
    EASEL_TRY_ASSIGN(std::optional<std::vector<int64_t>> attn, dd->get_int_list("attn_resolutions"));
    if (attn && !attn->empty())
        return Error::unsupported("first_stage_config ddconfig.attn_resolutions is not empty: attention inside VAE levels");
    const ConfigNode* params = root.path("model.params");
    EASEL_TRY_ASSIGN(std::optional<double> sf, params->get_double("scale_factor"));
    c.scaling_factor = float(sf.value_or(0.18215));  // ldm LatentDiffusion's default is 1.0 but every SD yaml sets it
    EASEL_TRY_ASSIGN(std::optional<int64_t> groups, dd->get_int("easel_norm_num_groups"));  // easel's own models
    if (groups) c.norm_num_groups = int(*groups);
    EASEL_TRY(c.validate());
    return c;
}

Result<VAEConfig> VAEConfig::detect_from_weights(const WeightSet& w, std::string_view prefix_sv) {
    const std::string p(prefix_sv);
    VAEConfig c;
    EASEL_TRY_ASSIGN(const Tensor* enc_in, need(w, p + "encoder.conv_in.weight", 4));
    EASEL_TRY_ASSIGN(const Tensor* dec_in, need(w, p + "decoder.conv_in.weight", 4));
    EASEL_TRY_ASSIGN(const Tensor* dec_out, need(w, p + "decoder.conv_out.weight", 4));
    c.in_channels = int(enc_in->size(1));
    c.latent_channels = int(dec_in->size(1));
    c.out_channels = int(dec_out->size(0));

    const int levels = count_children(w, p + "encoder.down_blocks", kMaxLevels);
    if (levels < 1 || levels > kMaxLevels)
        return Error::bad_file(p + "encoder.down_blocks", fmt::format("{} levels; expected 1..{}", levels, kMaxLevels));
    if (count_children(w, p + "decoder.up_blocks", kMaxLevels) != levels)
        return Error::bad_file(p + "decoder.up_blocks", "the decoder has a different number of levels than the encoder");
    c.block_out_channels.clear();
    for (int l = 0; l < levels; ++l) {
        const std::string block = fmt::format("{}encoder.down_blocks.{}.", p, l);
        EASEL_TRY_ASSIGN(const Tensor* conv1, need(w, block + "resnets.0.conv1.weight", 4));
        c.block_out_channels.push_back(int(conv1->size(0)));
        const int resnets = count_children(w, block + "resnets", kMaxLayersPerBlock);
        if (l == 0) c.layers_per_block = resnets;
        else if (resnets != c.layers_per_block)
            return Error::unsupported(fmt::format("level {} has {} resnets but level 0 has {}", l, resnets, c.layers_per_block),
                                      block + "resnets");
        if (contains_prefix(w, block + "downsamplers.0.") != (l + 1 < levels))
            return Error::bad_file(block + "downsamplers", "downsamplers must sit on every level but the last");
        const std::string up = fmt::format("{}decoder.up_blocks.{}.", p, l);
        if (count_children(w, up + "resnets", kMaxLayersPerBlock + 1) != c.layers_per_block + 1)
            return Error::bad_file(up + "resnets", fmt::format("expected layers_per_block + 1 = {} resnets",
                                                               c.layers_per_block + 1));
    }
    if (c.layers_per_block < 1 || c.layers_per_block > kMaxLayersPerBlock)
        return Error::bad_file(p + "encoder.down_blocks.0.resnets", fmt::format("{} resnets per level", c.layers_per_block));
    c.mid_attention = contains_prefix(w, p + "encoder.mid_block.attentions.0.");
    if (contains_prefix(w, p + "decoder.mid_block.attentions.0.") != c.mid_attention)
        return Error::bad_file(p + "decoder.mid_block", "encoder and decoder disagree on mid-block attention");
    c.use_quant_conv = w.contains(p + "quant_conv.weight");
    c.use_post_quant_conv = w.contains(p + "post_quant_conv.weight");
    return c;
}

Status VAEConfig::validate() const {
    auto bad = [](const std::string& msg) { return Error::invalid_argument("VAE config: " + msg); };
    const int levels = num_levels();
    if (levels < 1 || levels > kMaxLevels) return bad(fmt::format("{} levels; expected 1..{}", levels, kMaxLevels));
    if (in_channels < 1 || out_channels < 1 || latent_channels < 1 || in_channels > kMaxChannels ||
        out_channels > kMaxChannels || latent_channels > kMaxChannels)
        return bad(fmt::format("channels in {} out {} latent {} out of range", in_channels, out_channels, latent_channels));
    if (layers_per_block < 1 || layers_per_block > kMaxLayersPerBlock)
        return bad(fmt::format("layers_per_block {} out of range 1..{}", layers_per_block, kMaxLayersPerBlock));
    if (norm_num_groups < 1) return bad(fmt::format("norm_num_groups {} must be positive", norm_num_groups));
    if (!(norm_eps > 0.0f) || !std::isfinite(norm_eps)) return bad("norm_eps must be positive");
    if (!(scaling_factor > 0.0f) || !std::isfinite(scaling_factor))
        return bad(fmt::format("scaling_factor {} must be a positive number", scaling_factor));
    for (int ch : block_out_channels) {
        if (ch < 1 || ch > kMaxChannels) return bad(fmt::format("level width {} out of range", ch));
        if (ch % norm_num_groups != 0)
            return bad(fmt::format("level width {} is not a multiple of norm_num_groups {}", ch, norm_num_groups));
    }
    return ok();
}

std::string VAEConfig::summary() const {
    return fmt::format("in {} out {} latent {}, levels {}, {} res/level, mid attention {}, groups {}, scaling {:g}",
                       in_channels, out_channels, latent_channels, fmt::join(block_out_channels, "/"), layers_per_block,
                       mid_attention ? "yes" : "no", norm_num_groups, scaling_factor);
}

}  // namespace easel
