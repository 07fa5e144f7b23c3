#include "models/unet/config.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace easel {
namespace {

// Upper bounds that no SD-family UNet comes near; they keep a hostile config from asking for absurd memory
// or loops before any weight is read.
constexpr int kMaxLevels = 8;
constexpr int kMaxChannels = 1 << 16;
constexpr int kMaxLayersPerBlock = 16;
constexpr int kMaxTransformerDepth = 64;

Error bad_config(const std::string& where, const std::string& msg) { return Error(ErrorCode::BadFile, msg, where); }

Error unsupported_key(std::string_view key, const std::string& value, std::string_view why) {
    return Error::unsupported(fmt::format("{} = {}: {}; easel runs SD 1.x/2.x UNets only", key, value, why),
                              "unet config.json");
}

// diffusers allows a scalar (same for every level) or a per-level tuple for several keys.
Result<std::vector<int>> per_level(const ConfigNode& cfg, std::string_view key, int levels, int fallback) {
    const ConfigNode* n = cfg.get(key);
    if (!n || n->is_null()) return std::vector<int>(size_t(levels), fallback);
    EASEL_TRY_ASSIGN(std::vector<int64_t> v, n->as_int_list(key));
    if (n->is_scalar()) v.assign(size_t(levels), v[0]);
    if (int(v.size()) != levels)
        return bad_config(std::string(key), fmt::format("has {} entries but the UNet has {} levels", v.size(), levels));
    std::vector<int> out;
    for (int64_t x : v) {
        if (x < 1 || x > kMaxChannels) return bad_config(std::string(key), fmt::format("value {} is out of range", x));
        out.push_back(int(x));
    }
    return out;
}

// A key whose every per-level value must be equal, because our blocks take one value (layers_per_block,
// cross_attention_dim): diffusers also accepts per-level tuples for SDXL-era models.
Result<int> uniform(const ConfigNode& cfg, std::string_view key, int levels, int fallback) {
    EASEL_TRY_ASSIGN(std::vector<int> v, per_level(cfg, key, levels, fallback));
    for (int x : v)
        if (x != v[0])
            return unsupported_key(key, fmt::format("{}", v), "different values per level");
    return v.empty() ? fallback : v[0];
}

bool contains_prefix(const WeightSet& w, const std::string& p) {
    for (const std::string& n : w.names())
        if (n.compare(0, p.size(), p) == 0) return true;
    return false;
}

// Indices present after `head` (e.g. "unet.down_blocks.") in any name: {0, 1, 2, 3}.
std::vector<int> child_indices(const WeightSet& w, const std::string& head) {
    std::vector<int> out;
    for (const std::string& n : w.names()) {
        if (n.compare(0, head.size(), head) != 0) continue;
        int64_t v = 0;
        size_t i = head.size();
        const size_t start = i;
        while (i < n.size() && n[i] >= '0' && n[i] <= '9' && i - start < 6) v = v * 10 + (n[i++] - '0');
        if (i == start || i >= n.size() || n[i] != '.') continue;
        if (std::find(out.begin(), out.end(), int(v)) == out.end()) out.push_back(int(v));
    }
    std::sort(out.begin(), out.end());
    return out;
}

// Indices must be exactly 0..n-1; returns n, or an error naming the gap.
Result<int> dense_count(const std::vector<int>& idx, const std::string& what) {
    for (size_t i = 0; i < idx.size(); ++i)
        if (idx[i] != int(i))
            return Error::bad_file(what, fmt::format("indices {} are not 0..{} (a block is missing)", idx, idx.size() - 1));
    return int(idx.size());
}

Result<const Tensor*> need(const WeightSet& w, const std::string& name, int rank) {
    const Tensor* t = w.find(name);
    if (!t) return Error::not_found("tensor is missing; it is needed to tell the UNet's shape", name);
    if (t->rank() != rank)
        return Error::bad_file(name, fmt::format("has shape {}, expected rank {}", t->shape().to_string(), rank));
    return t;
}

}  // namespace

std::string_view prediction_name(Prediction p) {
    switch (p) {
        case Prediction::Unknown: return "unknown";
        case Prediction::Epsilon: return "epsilon";
        case Prediction::V: return "v";
        case Prediction::Flow: return "flow";
    }
    return "unknown";
}

Status set_head_dim(UNetConfig& c, int head_dim) {
    if (head_dim < 1) return Error::invalid_argument(fmt::format("head dim must be positive, got {}", head_dim));
    c.num_heads.clear();
    for (int ch : c.block_out_channels) {
        if (ch % head_dim != 0)
            return Error::invalid_argument(
                fmt::format("level width {} is not a multiple of the head dim {}", ch, head_dim));
        c.num_heads.push_back(ch / head_dim);
    }
    return ok();
}

Result<UNetConfig> UNetConfig::from_diffusers_json(const std::string& json_text, std::string_view class_name) {
    EASEL_TRY_ASSIGN(ConfigNode cfg, parse_json_config(json_text, "unet config.json"));
    if (!cfg.is_map()) return bad_config("unet config.json", "expected a JSON object");
    UNetConfig c;

    EASEL_TRY_ASSIGN(const std::string cls, cfg.get_string_or("_class_name", std::string(class_name)));
    if (cls != class_name)
        return Error::unsupported(fmt::format("_class_name is '{}'; expected {}", cls, class_name), "unet config.json");
    // A ControlNet (ControlNetModel) is the UNet's first half: no up blocks, and a mid block with or without
    // attention.
    const bool controlnet = class_name == "ControlNetModel";

    // Keys outside SD 1.x/2.x: present with a non-default value means a model we would run wrongly.
    struct Default { const char* key; const char* value; const char* why; };
    static const Default kMustBeDefault[] = {
        {"class_embed_type", "null", "class embeddings (upscaler / unCLIP)"},
        {"num_class_embeds", "null", "class embeddings"},
        {"encoder_hid_dim", "null", "an extra text projection"},
        {"encoder_hid_dim_type", "null", "an extra text projection"},
        {"time_cond_proj_dim", "null", "guidance embedding (LCM)"},
        {"time_embedding_type", "positional", "a different timestep embedding"},
        {"time_embedding_dim", "null", "a custom timestep embedding width"},
        {"time_embedding_act_fn", "null", "an extra timestep activation"},
        {"timestep_post_act", "null", "an extra timestep activation"},
        {"resnet_time_scale_shift", "default", "scale-shift timestep conditioning"},
        {"resnet_skip_time_act", "false", "a different resnet"},
        {"resnet_out_scale_factor", "1", "a different resnet"},
        {"dual_cross_attention", "false", "dual cross-attention"},
        {"only_cross_attention", "false", "cross-attention-only transformers"},
        {"mid_block_only_cross_attention", "null", "cross-attention-only mid block"},
        {"cross_attention_norm", "null", "normalised cross-attention context"},
        {"attention_type", "default", "gated attention (GLIGEN)"},
        {"center_input_sample", "false", "input centring"},
        {"act_fn", "silu", "a different activation"},
        {"conv_in_kernel", "3", "a different conv_in"},
        {"conv_out_kernel", "3", "a different conv_out"},
        {"downsample_padding", "1", "different downsampler padding"},
        {"mid_block_scale_factor", "1", "a scaled mid block"},
        {"mid_block_type", "UNetMidBlock2DCrossAttn", "a different mid block"},
        {"class_embeddings_concat", "false", "class embeddings"},
        {"reverse_transformer_layers_per_block", "null", "asymmetric transformer depth"},
    };
    // SDXL's added conditioning is the one kind easel runs.
    if (const ConfigNode* n = cfg.get("addition_embed_type"); n && !n->is_null()) {
        if (!n->is_scalar() || n->scalar() != "text_time")
            return unsupported_key("addition_embed_type", n->is_scalar() ? n->scalar() : "[...]",
                                   "added conditioning other than SDXL's text_time (Kandinsky...)");
        EASEL_TRY_ASSIGN(std::optional<int64_t> td, cfg.get_int("addition_time_embed_dim"));
        EASEL_TRY_ASSIGN(std::optional<int64_t> in, cfg.get_int("projection_class_embeddings_input_dim"));
        if (!td || !in || *td < 2 || *td > kMaxChannels || *td % 2 != 0 || *in <= *td || *in > 16 * kMaxChannels)
            return bad_config("addition_time_embed_dim / projection_class_embeddings_input_dim",
                              "text_time needs an even addition_time_embed_dim and a larger input width");
        c.addition_time_embed_dim = int(*td);
        c.addition_embed_input_dim = int(*in);
    }
    for (const Default& d : kMustBeDefault) {
        const ConfigNode* n = cfg.get(d.key);
        if (!n || (controlnet && std::string_view(d.key) == "mid_block_type")) continue;
        std::string v = n->is_null() ? "null" : n->is_scalar() ? n->scalar() : "[...]";
        if (v == "1.0") v = "1";
        if (v == "False") v = "false";
        if (v != d.value) return unsupported_key(d.key, v, d.why);
    }

    if (const ConfigNode* n = cfg.get("block_out_channels"); n && !n->is_null()) {
        EASEL_TRY_ASSIGN(std::vector<int64_t> v, n->as_int_list("block_out_channels"));
        if (v.empty() || v.size() > size_t(kMaxLevels))
            return bad_config("block_out_channels", fmt::format("has {} levels; expected 1..{}", v.size(), kMaxLevels));
        c.block_out_channels.clear();
        for (int64_t x : v) {
            if (x < 1 || x > kMaxChannels) return bad_config("block_out_channels", fmt::format("width {} is out of range", x));
            c.block_out_channels.push_back(int(x));
        }
    }
    const int levels = c.num_levels();

    // Block types decide which levels have transformers. diffusers' defaults are SD's.
    auto read_types = [&](const char* key, const char* with_attn, const char* without,
                          std::vector<bool> fallback) -> Result<std::vector<bool>> {
        const ConfigNode* n = cfg.get(key);
        if (!n || n->is_null()) {
            if (int(fallback.size()) != levels)
                return bad_config(key, fmt::format("missing, and diffusers' default has 4 entries but the UNet has {} levels", levels));
            return fallback;
        }
        if (!n->is_list() || int(n->items().size()) != levels)
            return bad_config(key, fmt::format("expected a list of {} block type names", levels));
        std::vector<bool> out;
        for (const ConfigNode& t : n->items()) {
            if (t.scalar() == with_attn) out.push_back(true);
            else if (t.scalar() == without) out.push_back(false);
            else return Error::unsupported(fmt::format("block type '{}' is not {} or {}", t.scalar(), with_attn, without),
                                           std::string("unet config.json: ") + key);
        }
        return out;
    };
    EASEL_TRY_ASSIGN(c.down_attention, read_types("down_block_types", "CrossAttnDownBlock2D", "DownBlock2D",
                                                  {true, true, true, false}));
    if (controlnet) {
        c.up_attention.assign(c.down_attention.rbegin(), c.down_attention.rend());
        EASEL_TRY_ASSIGN(const std::string mid, cfg.get_string_or("mid_block_type", "UNetMidBlock2DCrossAttn"));
        if (mid != "UNetMidBlock2DCrossAttn" && mid != "UNetMidBlock2D")
            return unsupported_key("mid_block_type", mid, "a different mid block");
        c.mid_attention = mid == "UNetMidBlock2DCrossAttn";
    } else {
        EASEL_TRY_ASSIGN(c.up_attention, read_types("up_block_types", "CrossAttnUpBlock2D", "UpBlock2D",
                                                    {false, true, true, true}));
        c.mid_attention = true;  // mid_block_type was checked above to be UNetMidBlock2DCrossAttn
    }

    EASEL_TRY_ASSIGN(c.layers_per_block, uniform(cfg, "layers_per_block", levels, 2));
    // Foreign key: diffusers' `attention_head_dim` holds the number of heads per level for this model class
    // (a historical misnomer, diffusers issue 2011); `num_attention_heads`, when set, takes precedence.
    const char* heads_key = cfg.get("num_attention_heads") && !cfg.get("num_attention_heads")->is_null()
                                ? "num_attention_heads" : "attention_head_dim";
    EASEL_TRY_ASSIGN(c.num_heads, per_level(cfg, heads_key, levels, 8));
    EASEL_TRY_ASSIGN(c.transformer_depth, per_level(cfg, "transformer_layers_per_block", levels, 1));
    EASEL_TRY_ASSIGN(c.cross_attention_dim, uniform(cfg, "cross_attention_dim", levels, 1280));

    auto get_int = [&](const char* key, int fallback) -> Result<int> {
        EASEL_TRY_ASSIGN(std::optional<int64_t> v, cfg.get_int(key));
        if (!v) return fallback;
        if (*v < 0 || *v > kMaxChannels) return bad_config(key, fmt::format("value {} is out of range", *v));
        return int(*v);
    };
    auto get_bool = [&](const char* key, bool fallback) -> Result<bool> {
        EASEL_TRY_ASSIGN(std::optional<bool> v, cfg.get_bool(key));
        return v.value_or(fallback);
    };
    EASEL_TRY_ASSIGN(c.in_channels, get_int("in_channels", 4));
    EASEL_TRY_ASSIGN(c.out_channels, get_int("out_channels", 4));
    EASEL_TRY_ASSIGN(c.sample_size, get_int("sample_size", c.sample_size));
    EASEL_TRY_ASSIGN(c.norm_num_groups, get_int("norm_num_groups", 32));
    EASEL_TRY_ASSIGN(c.use_linear_projection, get_bool("use_linear_projection", false));
    EASEL_TRY_ASSIGN(c.upcast_attention, get_bool("upcast_attention", false));
    EASEL_TRY_ASSIGN(c.time_flip_sin_to_cos, get_bool("flip_sin_to_cos", true));
    EASEL_TRY_ASSIGN(c.time_freq_shift, get_int("freq_shift", 0));
    EASEL_TRY_ASSIGN(std::optional<double> eps, cfg.get_double("norm_eps"));
    c.norm_eps = float(eps.value_or(1e-5));
    // diffusers keeps the prediction type in scheduler_config.json, not here.
    c.prediction = Prediction::Unknown;
    EASEL_TRY(c.validate());
    return c;
}

Result<UNetConfig> UNetConfig::from_ldm_yaml(const ConfigNode& root) {
    const ConfigNode* p = root.path("model.params.unet_config.params");
    if (!p) p = root.path("model.params.network_config.params");
    if (!p || !p->is_map())
        return Error::not_found("no model.params.unet_config.params mapping; is this an LDM model config?");
    UNetConfig c;
    auto req_int = [&](const char* key) -> Result<int> {
        EASEL_TRY_ASSIGN(std::optional<int64_t> v, p->get_int(key));
        if (!v) return Error::not_found(fmt::format("unet_config.params.{} is missing", key));
        if (*v < 0 || *v > kMaxChannels) return bad_config(key, fmt::format("value {} is out of range", *v));
        return int(*v);
    };
    if (p->get("num_classes"))
        return Error::unsupported("unet_config.params.num_classes is set: class/ADM conditioning (SDXL, upscaler) "
                                  "is not an SD 1.x/2.x UNet");
    EASEL_TRY_ASSIGN(std::optional<bool> spatial, p->get_bool("use_spatial_transformer"));
    if (spatial && !*spatial)
        return Error::unsupported("unet_config.params.use_spatial_transformer is false: not a text-conditioned UNet");

    EASEL_TRY_ASSIGN(int model_channels, req_int("model_channels"));
    EASEL_TRY_ASSIGN(std::optional<std::vector<int64_t>> mult, p->get_int_list("channel_mult"));
    if (!mult || mult->empty() || mult->size() > size_t(kMaxLevels))
        return bad_config("channel_mult", fmt::format("expected a list of 1..{} multipliers", kMaxLevels));
    c.block_out_channels.clear();
    for (int64_t m : *mult) {
        if (m < 1 || int64_t(model_channels) * m > kMaxChannels) return bad_config("channel_mult", "multiplier out of range");
        c.block_out_channels.push_back(int(model_channels * m));
    }
    const int levels = c.num_levels();
    EASEL_TRY_ASSIGN(c.layers_per_block, req_int("num_res_blocks"));
    EASEL_TRY_ASSIGN(c.in_channels, req_int("in_channels"));
    EASEL_TRY_ASSIGN(c.out_channels, req_int("out_channels"));
    EASEL_TRY_ASSIGN(std::optional<int64_t> image_size, p->get_int("image_size"));
    if (image_size) c.sample_size = int(std::clamp<int64_t>(*image_size, 0, kMaxChannels));

    // openaimodel.UNetModel: `ds` starts at 1 and doubles after every level but the last; a level has
    // transformers when its ds is listed in attention_resolutions. The up path mirrors it; the middle block
    // always has one.
    EASEL_TRY_ASSIGN(std::optional<std::vector<int64_t>> attn_res, p->get_int_list("attention_resolutions"));
    c.down_attention.assign(size_t(levels), false);
    int64_t ds = 1;
    for (int l = 0; l < levels; ++l) {
        if (attn_res) c.down_attention[size_t(l)] = std::find(attn_res->begin(), attn_res->end(), ds) != attn_res->end();
        if (l + 1 < levels) ds *= 2;
    }
    c.up_attention.assign(c.down_attention.rbegin(), c.down_attention.rend());
    c.mid_attention = true;

    // Heads: num_head_channels (SD 2.x: 64) fixes the head width; otherwise num_heads (SD 1.x: 8) the count.
    EASEL_TRY_ASSIGN(std::optional<int64_t> head_channels, p->get_int("num_head_channels"));
    EASEL_TRY_ASSIGN(std::optional<int64_t> heads, p->get_int("num_heads"));
    if (head_channels && *head_channels > 0) {
        if (*head_channels > kMaxChannels) return bad_config("num_head_channels", "out of range");
        EASEL_TRY(set_head_dim(c, int(*head_channels)));
    } else if (heads && *heads > 0 && *heads <= kMaxChannels) {
        c.num_heads.assign(size_t(levels), int(*heads));
    } else {
        return bad_config("unet_config.params", "neither num_heads nor num_head_channels is a positive number");
    }

    if (const ConfigNode* td = p->get("transformer_depth"); td && !td->is_null()) {
        EASEL_TRY_ASSIGN(std::vector<int64_t> v, td->as_int_list("transformer_depth"));
        if (td->is_scalar()) v.assign(size_t(levels), v[0]);
        if (int(v.size()) != levels) return bad_config("transformer_depth", "needs one value per level");
        c.transformer_depth.clear();
        for (int64_t x : v) {
            if (x < 0 || x > kMaxTransformerDepth) return bad_config("transformer_depth", "value out of range");
            c.transformer_depth.push_back(int(std::max<int64_t>(x, 1)));
        }
    } else {
        c.transformer_depth.assign(size_t(levels), 1);
    }
    if (const ConfigNode* cd = p->get("context_dim"); cd && !cd->is_null()) {
        EASEL_TRY_ASSIGN(std::vector<int64_t> v, cd->as_int_list("context_dim"));
        if (v.empty() || v[0] < 1 || v[0] > kMaxChannels) return bad_config("context_dim", "out of range");
        c.cross_attention_dim = int(v[0]);
    } else {
        return Error::not_found("unet_config.params.context_dim is missing (not a text-conditioned UNet?)");
    }
    EASEL_TRY_ASSIGN(std::optional<bool> linear, p->get_bool("use_linear_in_transformer"));
    c.use_linear_projection = linear.value_or(false);
    // ldm's normalization() is GroupNorm(32, ch) with torch's default eps; not configurable in the yaml.
    c.norm_num_groups = 32;
    c.norm_eps = 1e-5f;

    const ConfigNode* model_params = root.path("model.params");
    EASEL_TRY_ASSIGN(const std::string param, model_params->get_string_or("parameterization", "eps"));  // ldm's default
    if (param == "eps") c.prediction = Prediction::Epsilon;
    else if (param == "v") c.prediction = Prediction::V;
    else return Error::unsupported(fmt::format("model.params.parameterization is '{}'; expected eps or v", param));
    // easel's own models carry what LDM's yaml has no key for (tools/train/export.py writes these).
    EASEL_TRY_ASSIGN(std::optional<int64_t> groups, p->get_int("easel_norm_num_groups"));
    if (groups) c.norm_num_groups = int(*groups);
    EASEL_TRY_ASSIGN(std::optional<double> eps, p->get_double("easel_norm_eps"));
    if (eps) c.norm_eps = float(*eps);
    EASEL_TRY(c.validate());
    return c;
}

Result<UNetConfig> UNetConfig::detect_from_weights(const WeightSet& w, std::string_view prefix_sv, bool encoder_only) {
    const std::string prefix(prefix_sv);
    UNetConfig c;
    if (contains_prefix(w, prefix + "class_embedding."))
        return Error::unsupported("the UNet has class embeddings (an upscaler or unCLIP), not an SD 1.x/2.x/XL UNet",
                                  prefix + "class_embedding");
    if (const Tensor* add = w.find(prefix + "add_embedding.linear_1.weight")) {
        // SDXL: linear_1 is [time_embed_dim, pooled + ids * 256]. The sinusoid width is not in the shapes; SDXL's
        // 256 until a config says otherwise.
        if (add->rank() != 2) return Error::bad_file(prefix + "add_embedding.linear_1.weight", "expected a matrix");
        c.addition_embed_input_dim = int(add->size(1));
        c.addition_time_embed_dim = 256;
    }

    EASEL_TRY_ASSIGN(const Tensor* conv_in, need(w, prefix + "conv_in.weight", 4));
    c.in_channels = int(conv_in->size(1));
    c.out_channels = c.in_channels;
    if (!encoder_only) {
        EASEL_TRY_ASSIGN(const Tensor* conv_out, need(w, prefix + "conv_out.weight", 4));
        c.out_channels = int(conv_out->size(0));
    }

    EASEL_TRY_ASSIGN(const int levels, dense_count(child_indices(w, prefix + "down_blocks."), prefix + "down_blocks"));
    if (levels < 1 || levels > kMaxLevels)
        return Error::bad_file(prefix + "down_blocks", fmt::format("{} levels; expected 1..{}", levels, kMaxLevels));
    if (!encoder_only) {
        EASEL_TRY_ASSIGN(const int up_levels, dense_count(child_indices(w, prefix + "up_blocks."), prefix + "up_blocks"));
        if (up_levels != levels)
            return Error::bad_file(prefix + "up_blocks", fmt::format("{} up blocks but {} down blocks", up_levels, levels));
    }

    c.block_out_channels.clear();
    c.down_attention.clear();
    c.up_attention.clear();
    c.transformer_depth.clear();
    bool any_attention = false;
    // Reads one transformer (down_blocks.i.attentions.0 etc.): depth, projection kind, cross-attention width.
    auto read_transformer = [&](const std::string& at, int& depth) -> Status {
        EASEL_TRY_ASSIGN(depth, dense_count(child_indices(w, at + "transformer_blocks."), at + "transformer_blocks"));
        if (depth < 1 || depth > kMaxTransformerDepth)
            return Error::bad_file(at + "transformer_blocks", fmt::format("{} blocks; expected 1..{}", depth, kMaxTransformerDepth));
        const Tensor* proj_in = w.find(at + "proj_in.weight");
        if (!proj_in) return Error::not_found("tensor is missing", at + "proj_in.weight");
        if (proj_in->rank() != 2 && proj_in->rank() != 4)
            return Error::bad_file(at + "proj_in.weight", fmt::format("shape {}; expected [C, C] or [C, C, 1, 1]",
                                                                       proj_in->shape().to_string()));
        const bool linear = proj_in->rank() == 2;
        EASEL_TRY_ASSIGN(const Tensor* to_k, need(w, at + "transformer_blocks.0.attn2.to_k.weight", 2));
        if (!any_attention) {
            c.use_linear_projection = linear;
            c.cross_attention_dim = int(to_k->size(1));
            any_attention = true;
        } else if (linear != c.use_linear_projection || to_k->size(1) != c.cross_attention_dim) {
            return Error::unsupported("transformers differ in projection kind or cross-attention width between levels",
                                      at + "proj_in.weight");
        }
        return ok();
    };

    for (int l = 0; l < levels; ++l) {
        const std::string block = fmt::format("{}down_blocks.{}.", prefix, l);
        EASEL_TRY_ASSIGN(const Tensor* conv1, need(w, block + "resnets.0.conv1.weight", 4));
        c.block_out_channels.push_back(int(conv1->size(0)));
        EASEL_TRY_ASSIGN(const int resnets, dense_count(child_indices(w, block + "resnets."), block + "resnets"));
        if (l == 0) c.layers_per_block = resnets;
        else if (resnets != c.layers_per_block)
            return Error::unsupported(fmt::format("level {} has {} resnets but level 0 has {}", l, resnets,
                                                  c.layers_per_block), block + "resnets");
        const std::vector<int> attn = child_indices(w, block + "attentions.");
        c.down_attention.push_back(!attn.empty());
        int depth = 1;
        if (!attn.empty()) {
            EASEL_TRY_ASSIGN(const int n_attn, dense_count(attn, block + "attentions"));
            if (n_attn != resnets)
                return Error::bad_file(block + "attentions", fmt::format("{} transformers for {} resnets", n_attn, resnets));
            EASEL_TRY(read_transformer(block + "attentions.0.", depth));
        }
        c.transformer_depth.push_back(depth);
        const bool has_down = contains_prefix(w, block + "downsamplers.0.");
        if (has_down != (l + 1 < levels))
            return Error::bad_file(block + "downsamplers", has_down ? "the last level has a downsampler"
                                                                     : "a downsampler is missing");
    }
    if (c.layers_per_block < 1 || c.layers_per_block > kMaxLayersPerBlock)
        return Error::bad_file(prefix + "down_blocks.0.resnets", fmt::format("{} resnets per level", c.layers_per_block));

    if (encoder_only) c.up_attention.assign(c.down_attention.rbegin(), c.down_attention.rend());
    for (int i = 0; i < (encoder_only ? 0 : levels); ++i) {
        const std::string block = fmt::format("{}up_blocks.{}.", prefix, i);
        EASEL_TRY_ASSIGN(const int resnets, dense_count(child_indices(w, block + "resnets."), block + "resnets"));
        if (resnets != c.layers_per_block + 1)
            return Error::bad_file(block + "resnets", fmt::format("{} resnets; an up block has layers_per_block + 1 = {}",
                                                                  resnets, c.layers_per_block + 1));
        const bool has_attn = !child_indices(w, block + "attentions.").empty();
        c.up_attention.push_back(has_attn);
        if (has_attn) {
            int depth = 1;
            EASEL_TRY(read_transformer(block + "attentions.0.", depth));
            if (depth != c.transformer_depth[size_t(levels - 1 - i)])
                return Error::unsupported("up and down transformers of one level differ in depth", block + "attentions.0");
        }
    }
    c.mid_attention = contains_prefix(w, prefix + "mid_block.attentions.0.");
    if (!contains_prefix(w, prefix + "mid_block.resnets.0."))
        return Error::not_found("the UNet has no mid block", prefix + "mid_block.resnets.0");
    if (c.mid_attention) {
        // The mid block takes the last level's depth (diffusers: transformer_layers_per_block[-1]); where that
        // level has no transformers of its own (SD 1.x/2.x, the SDXL refiner), the mid block alone says it.
        int depth = 1;
        EASEL_TRY(read_transformer(prefix + "mid_block.attentions.0.", depth));
        const size_t last = size_t(levels - 1);
        if (!c.down_attention[last] && !c.up_attention[0]) c.transformer_depth[last] = depth;
        else if (depth != c.transformer_depth[last])
            return Error::unsupported(fmt::format("the mid block has {} transformer blocks but the last level {}", depth,
                                                  c.transformer_depth[last]),
                                      prefix + "mid_block.attentions.0");
    }
    // Not in the shapes: keep the SD 1.x family defaults (8 heads) and let detect_model() decide.
    c.num_heads.assign(size_t(levels), 8);
    c.prediction = Prediction::Unknown;
    return c;
}

Status UNetConfig::validate() const {
    const int levels = num_levels();
    auto bad = [](const std::string& msg) { return Error::invalid_argument("UNet config: " + msg); };
    if (levels < 1 || levels > kMaxLevels) return bad(fmt::format("{} levels; expected 1..{}", levels, kMaxLevels));
    if (int(down_attention.size()) != levels || int(up_attention.size()) != levels || int(num_heads.size()) != levels ||
        int(transformer_depth.size()) != levels)
        return bad(fmt::format("per-level lists must all have {} entries (down_attention {}, up_attention {}, "
                               "num_heads {}, transformer_depth {})", levels, down_attention.size(),
                               up_attention.size(), num_heads.size(), transformer_depth.size()));
    if (in_channels < 1 || in_channels > kMaxChannels || out_channels < 1 || out_channels > kMaxChannels)
        return bad(fmt::format("in_channels {} / out_channels {} out of range", in_channels, out_channels));
    if (layers_per_block < 1 || layers_per_block > kMaxLayersPerBlock)
        return bad(fmt::format("layers_per_block {} out of range 1..{}", layers_per_block, kMaxLayersPerBlock));
    if (cross_attention_dim < 1 || cross_attention_dim > kMaxChannels)
        return bad(fmt::format("cross_attention_dim {} out of range", cross_attention_dim));
    if (norm_num_groups < 1) return bad(fmt::format("norm_num_groups {} must be positive", norm_num_groups));
    if (!(norm_eps > 0.0f) || !std::isfinite(norm_eps)) return bad(fmt::format("norm_eps {} must be positive", norm_eps));
    auto check_groups = [&](int ch, const std::string& what) -> Status {
        if (ch % norm_num_groups != 0)
            return bad(fmt::format("{} has {} channels, not a multiple of norm_num_groups {}", what, ch, norm_num_groups));
        return ok();
    };
    for (int l = 0; l < levels; ++l) {
        const int ch = block_out_channels[size_t(l)];
        if (ch < 1 || ch > kMaxChannels) return bad(fmt::format("level {} width {} out of range", l, ch));
        EASEL_TRY(check_groups(ch, fmt::format("level {}", l)));
        if (transformer_depth[size_t(l)] < 1 || transformer_depth[size_t(l)] > kMaxTransformerDepth)
            return bad(fmt::format("level {} transformer depth {} out of range", l, transformer_depth[size_t(l)]));
        const bool attn = down_attention[size_t(l)] || up_attention[size_t(levels - 1 - l)] ||
                          (mid_attention && l == levels - 1);
        const int heads = num_heads[size_t(l)];
        if (attn && (heads < 1 || ch % heads != 0))
            return bad(fmt::format("level {}: {} channels cannot be split into {} heads", l, ch, heads));
    }
    if (addition_embed_input_dim > 0 &&
        (addition_time_embed_dim < 2 || addition_time_embed_dim % 2 != 0 || addition_embed_input_dim <= addition_time_embed_dim))
        return bad(fmt::format("added conditioning: input width {} with {}-wide id sinusoids", addition_embed_input_dim,
                               addition_time_embed_dim));
    // Up resnets take concatenations of level widths; with every width a multiple of the groups, so are they.
    return ok();
}

std::vector<int64_t> UNetConfig::cross_attention_blocks() const {
    std::vector<int64_t> r;
    const int L = num_levels();
    auto level = [&](int lv, int transformers) {
        for (int j = 0; j < transformers; ++j)
            for (int d = 0; d < transformer_depth[size_t(lv)]; ++d) r.push_back(block_out_channels[size_t(lv)]);
    };
    for (int i = 0; i < L; ++i)
        if (down_attention[size_t(i)]) level(i, layers_per_block);
    for (int i = 0; i < L; ++i)
        if (up_attention[size_t(i)]) level(L - 1 - i, layers_per_block + 1);
    if (mid_attention) level(L - 1, 1);
    return r;
}

std::string UNetConfig::summary() const {
    std::string attn;
    for (bool a : down_attention) attn += a ? '1' : '0';
    return fmt::format("in {} out {}, levels {}, {} res/level, attention {}{}, heads {}, depth {}, cross-attn {}, "
                       "{} proj, groups {} eps {:g}, prediction {}{}",
                       in_channels, out_channels, fmt::join(block_out_channels, "/"), layers_per_block, attn,
                       mid_attention ? "+mid" : "", fmt::join(num_heads, "/"), fmt::join(transformer_depth, "/"),
                       cross_attention_dim, use_linear_projection ? "linear" : "conv", norm_num_groups, norm_eps,
                       prediction_name(prediction), upcast_attention ? ", upcast attention" : "") +
           (addition_embed_input_dim > 0 ? fmt::format(", added conditioning {} ({}-wide id sinusoids)",
                                                       addition_embed_input_dim, addition_time_embed_dim)
                                         : std::string());
}

}  // namespace easel
