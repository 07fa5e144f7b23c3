#include "io/keymap_ldm.h"

#include <limits>

#include <algorithm>
#include <set>

#include <fmt/format.h>

namespace easel {
namespace {

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// A non-negative decimal index of at most 6 digits ("0", "11"); nullopt for anything else.
std::optional<int> parse_index(std::string_view s) {
    if (s.empty() || s.size() > 6) return std::nullopt;
    int v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + (c - '0');
    }
    return v;
}

// Splits "a.b.c" at its first dot: {"a", "b.c"}; rest is empty when there is no dot.
std::pair<std::string_view, std::string_view> split_first(std::string_view s) {
    const size_t dot = s.find('.');
    if (dot == std::string_view::npos) return {s, {}};
    return {s.substr(0, dot), s.substr(dot + 1)};
}

// ldm ResBlock (openaimodel.ResBlock) parameter -> diffusers ResnetBlock2D parameter. `rest` is e.g.
// "in_layers.2.weight". The ldm Sequential indices are the positions of the layers that hold weights.
std::optional<std::string> unet_resnet_param(std::string_view rest) {
    static const std::pair<std::string_view, std::string_view> kMap[] = {
        {"in_layers.0.", "norm1."},   {"in_layers.2.", "conv1."},        {"out_layers.0.", "norm2."},
        {"out_layers.3.", "conv2."},  {"emb_layers.1.", "time_emb_proj."}, {"skip_connection.", "conv_shortcut."},
    };
    for (const auto& [from, to] : kMap)
        if (starts_with(rest, from)) {
            const std::string_view leaf = rest.substr(from.size());
            if (leaf == "weight" || leaf == "bias") return std::string(to) + std::string(leaf);
        }
    return std::nullopt;
}

// ldm SpatialTransformer parameters already carry diffusers' Transformer2DModel names (norm, proj_in,
// transformer_blocks.N.{attn1,attn2,ff,norm1..3}, proj_out); only the block prefix changes. The leaf is not
// checked here: the model's loader reports a name it does not declare.
std::optional<std::string> unet_attention_param(std::string_view rest) {
    if (rest.empty()) return std::nullopt;
    return std::string(rest);
}

std::optional<std::string> weight_or_bias(std::string_view leaf, std::string_view to) {
    if (leaf == "weight" || leaf == "bias") return std::string(to) + std::string(leaf);
    return std::nullopt;
}

// ldm VAE ResnetBlock -> diffusers ResnetBlock2D: same names but nin_shortcut.
std::optional<std::string> vae_resnet_param(std::string_view rest) {
    auto [layer, leaf] = split_first(rest);
    if (leaf != "weight" && leaf != "bias") return std::nullopt;
    if (layer == "norm1" || layer == "conv1" || layer == "norm2" || layer == "conv2")
        return std::string(layer) + "." + std::string(leaf);
    if (layer == "nin_shortcut") return "conv_shortcut." + std::string(leaf);
    return std::nullopt;
}

// ldm AttnBlock (q, k, v, proj_out as 1x1 convs) -> diffusers Attention (to_q, to_k, to_v, to_out.0 linears).
std::optional<std::string> vae_attention_param(std::string_view rest) {
    auto [layer, leaf] = split_first(rest);
    if (leaf != "weight" && leaf != "bias") return std::nullopt;
    static const std::pair<std::string_view, std::string_view> kMap[] = {
        {"norm", "group_norm."}, {"q", "to_q."}, {"k", "to_k."}, {"v", "to_v."}, {"proj_out", "to_out.0."}};
    for (const auto& [from, to] : kMap)
        if (layer == from) return std::string(to) + std::string(leaf);
    return std::nullopt;
}

// encoder/decoder "mid.block_1.*", "mid.attn_1.*" -> "mid_block.resnets.0.*", "mid_block.attentions.0.*".
std::optional<std::string> vae_mid_param(std::string_view rest) {
    auto [part, tail] = split_first(rest);
    if (part == "block_1") { auto r = vae_resnet_param(tail); if (r) return "mid_block.resnets.0." + *r; }
    if (part == "block_2") { auto r = vae_resnet_param(tail); if (r) return "mid_block.resnets.1." + *r; }
    if (part == "attn_1") { auto r = vae_attention_param(tail); if (r) return "mid_block.attentions.0." + *r; }
    return std::nullopt;
}

// OpenCLIP resblock parameter -> transformers CLIPEncoderLayer parameter (the fused in_proj is handled by the
// caller). `rest` is e.g. "ln_1.weight".
std::optional<std::string> open_clip_layer_param(std::string_view rest) {
    static const std::pair<std::string_view, std::string_view> kMap[] = {
        {"ln_1.", "layer_norm1."}, {"ln_2.", "layer_norm2."}, {"attn.out_proj.", "self_attn.out_proj."},
        {"mlp.c_fc.", "mlp.fc1."}, {"mlp.c_proj.", "mlp.fc2."},
    };
    for (const auto& [from, to] : kMap)
        if (starts_with(rest, from)) return weight_or_bias(rest.substr(from.size()), to);
    return std::nullopt;
}

// Stored resblocks of an OpenCLIP text tower under `prefix`: 1 + the largest N in "transformer.resblocks.N.".
int open_clip_stored_layers(const WeightSet& w, std::string_view prefix) {
    const std::string head = std::string(prefix) + "transformer.resblocks.";
    int n = 0;
    for (const std::string& name : w.names()) {
        if (!starts_with(name, head)) continue;
        auto [idx, rest] = split_first(std::string_view(name).substr(head.size()));
        if (auto i = parse_index(idx)) n = std::max(n, *i + 1);
    }
    return n;
}

std::string list_names(const std::vector<std::string>& names) {
    // The report keeps every name; the message shows enough to act on without flooding a terminal.
    constexpr size_t kShown = 64;
    std::string out;
    for (size_t i = 0; i < names.size() && i < kShown; ++i) out += (i ? ", " : "") + names[i];
    if (names.size() > kShown) out += fmt::format(", ... and {} more", names.size() - kShown);
    return out;
}

}  // namespace

bool is_known_ldm_extra(std::string_view name) {
    // Training-time state that LDM checkpoints carry next to the weights:
    //  - model_ema.*: the EMA copy of the UNet (names flattened, e.g. model_ema.diffusion_modelout0weight),
    //    plus model_ema.decay / model_ema.num_updates. "-emaonly" files already hold the EMA weights in
    //    model.diffusion_model.*.
    //  - first_stage_model.loss.*: the autoencoder's training loss (LPIPS, discriminator).
    //  - the diffusion schedule buffers of ldm's DDPM class, recomputed by our schedulers.
    //  - cond_stage_model.transformer.text_model.embeddings.position_ids: a buffer, not a weight.
    static const std::string_view kPrefixes[] = {"model_ema.", "first_stage_model.loss."};
    for (std::string_view p : kPrefixes)
        if (starts_with(name, p)) return true;
    static const std::set<std::string_view> kExact = {
        "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
        "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
        "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
        "logvar", "lvlb_weights", "cond_stage_model.transformer.text_model.embeddings.position_ids",
        "conditioner.embedders.0.transformer.text_model.embeddings.position_ids",
    };
    return kExact.count(name) != 0;
}

std::optional<std::string> ldm_unet_name_to_diffusers(std::string_view name, const LdmUNetLayout& layout) {
    const int per_level = layout.layers_per_block + 1;  // resnets (+ a downsampler, or the up block's extra resnet)
    const int levels = layout.num_levels;
    if (levels < 1 || layout.layers_per_block < 1) return std::nullopt;
    static const std::pair<std::string_view, std::string_view> kFixed[] = {
        {"time_embed.0.", "time_embedding.linear_1."}, {"time_embed.2.", "time_embedding.linear_2."},
        {"label_emb.0.0.", "add_embedding.linear_1."}, {"label_emb.0.2.", "add_embedding.linear_2."},  // SDXL
        {"input_blocks.0.0.", "conv_in."},             {"out.0.", "conv_norm_out."},
        {"out.2.", "conv_out."},
    };
    for (const auto& [from, to] : kFixed)
        if (starts_with(name, from)) return weight_or_bias(name.substr(from.size()), to);

    auto [group, after_group] = split_first(name);
    auto [idx_text, after_idx] = split_first(after_group);
    const std::optional<int> idx = parse_index(idx_text);
    if (!idx) return std::nullopt;
    if (group == "middle_block") {
        // middle_block.0/2 are ResBlocks, .1 the SpatialTransformer.
        if (*idx == 0 || *idx == 2) {
            auto r = unet_resnet_param(after_idx);
            if (r) return fmt::format("mid_block.resnets.{}.{}", *idx / 2, *r);
        } else if (*idx == 1) {
            auto r = unet_attention_param(after_idx);
            if (r) return "mid_block.attentions.0." + *r;
        }
        return std::nullopt;
    }
    auto [sub_text, rest] = split_first(after_idx);
    const std::optional<int> sub = parse_index(sub_text);
    if (!sub) return std::nullopt;

    if (group == "input_blocks") {
        // input_blocks.0 is conv_in; then per level: layers_per_block resnets(+transformers), then a downsampler
        // on every level but the last.
        if (*idx < 1) return std::nullopt;
        const int level = (*idx - 1) / per_level;
        const int j = (*idx - 1) % per_level;
        if (level >= levels) return std::nullopt;
        if (j == layout.layers_per_block) {
            if (level + 1 >= levels || *sub != 0 || !starts_with(rest, "op.")) return std::nullopt;
            return weight_or_bias(rest.substr(3), fmt::format("down_blocks.{}.downsamplers.0.conv.", level));
        }
        if (*sub == 0) {
            auto r = unet_resnet_param(rest);
            if (r) return fmt::format("down_blocks.{}.resnets.{}.{}", level, j, *r);
        } else if (*sub == 1) {
            auto r = unet_attention_param(rest);
            if (r) return fmt::format("down_blocks.{}.attentions.{}.{}", level, j, *r);
        }
        return std::nullopt;
    }
    if (group == "output_blocks") {
        // Per up block: layers_per_block + 1 resnets(+transformers); the last of them also holds the upsampler,
        // at sub index 1 without a transformer, 2 with one (diffusers: "output_blocks.i.1.conv" / ".2.conv").
        const int block = *idx / per_level;
        const int j = *idx % per_level;
        if (block >= levels) return std::nullopt;
        const bool upsampler_slot = j == layout.layers_per_block && block + 1 < levels;
        if (*sub == 0) {
            auto r = unet_resnet_param(rest);
            if (r) return fmt::format("up_blocks.{}.resnets.{}.{}", block, j, *r);
            return std::nullopt;
        }
        if (upsampler_slot && (*sub == 1 || *sub == 2) && starts_with(rest, "conv."))
            return weight_or_bias(rest.substr(5), fmt::format("up_blocks.{}.upsamplers.0.conv.", block));
        if (*sub == 1) {
            auto r = unet_attention_param(rest);
            if (r) return fmt::format("up_blocks.{}.attentions.{}.{}", block, j, *r);
        }
        return std::nullopt;
    }
    return std::nullopt;
}

std::optional<std::string> ldm_vae_name_to_diffusers(std::string_view name, int num_levels) {
    static const std::pair<std::string_view, std::string_view> kFixed[] = {
        {"encoder.conv_in.", "encoder.conv_in."},   {"encoder.conv_out.", "encoder.conv_out."},
        {"encoder.norm_out.", "encoder.conv_norm_out."}, {"decoder.conv_in.", "decoder.conv_in."},
        {"decoder.conv_out.", "decoder.conv_out."}, {"decoder.norm_out.", "decoder.conv_norm_out."},
        {"quant_conv.", "quant_conv."},             {"post_quant_conv.", "post_quant_conv."},
    };
    for (const auto& [from, to] : kFixed)
        if (starts_with(name, from)) return weight_or_bias(name.substr(from.size()), to);

    auto [coder, after_coder] = split_first(name);
    if (coder != "encoder" && coder != "decoder") return std::nullopt;
    const std::string head(coder);
    auto [part, after_part] = split_first(after_coder);
    if (part == "mid") {
        auto r = vae_mid_param(after_part);
        if (r) return head + "." + *r;
        return std::nullopt;
    }
    // encoder.down.I.{block.J.*, downsample.conv.*}; decoder.up.I.{block.J.*, upsample.conv.*} where ldm's
    // decoder counts levels from the lowest resolution up: up.I is diffusers' up_blocks.(levels-1-I).
    const bool enc = coder == "encoder";
    if (part != (enc ? "down" : "up")) return std::nullopt;
    auto [idx_text, after_idx] = split_first(after_part);
    const std::optional<int> level = parse_index(idx_text);
    if (!level || *level >= num_levels) return std::nullopt;
    const int block = enc ? *level : num_levels - 1 - *level;
    const std::string blocks = fmt::format("{}.{}_blocks.{}.", head, enc ? "down" : "up", block);
    auto [kind, after_kind] = split_first(after_idx);
    if (kind == "block") {
        auto [j_text, param] = split_first(after_kind);
        const std::optional<int> j = parse_index(j_text);
        auto r = vae_resnet_param(param);
        if (j && r) return blocks + fmt::format("resnets.{}.", *j) + *r;
        return std::nullopt;
    }
    const std::string_view sampler = enc ? "downsample" : "upsample";
    if (kind == sampler && starts_with(after_kind, "conv.")) {
        // Encoder: every level but the last downsamples. Decoder: every ldm level but 0 upsamples.
        if (enc ? *level + 1 >= num_levels : *level == 0) return std::nullopt;
        return weight_or_bias(after_kind.substr(5), blocks + (enc ? "downsamplers.0.conv." : "upsamplers.0.conv."));
    }
    return std::nullopt;
}

Result<LdmUNetLayout> infer_ldm_unet_layout(const WeightSet& w, std::string_view prefix) {
    int max_in = -1, max_out = -1, first_down = -1;
    const std::string in_head = std::string(prefix) + "input_blocks.";
    const std::string out_head = std::string(prefix) + "output_blocks.";
    for (const std::string& name : w.names()) {
        std::string_view n = name;
        if (starts_with(n, in_head)) {
            auto [idx, rest] = split_first(n.substr(in_head.size()));
            const auto i = parse_index(idx);
            if (!i) continue;
            max_in = std::max(max_in, *i);
            if (starts_with(rest, "0.op.") && (first_down < 0 || *i < first_down)) first_down = *i;
        } else if (starts_with(n, out_head)) {
            auto [idx, rest] = split_first(n.substr(out_head.size()));
            if (const auto i = parse_index(idx)) max_out = std::max(max_out, *i);
        }
    }
    const std::string where = std::string(prefix) + "input_blocks";
    if (max_in < 1 || max_out < 0)
        return Error::not_found("no UNet input_blocks/output_blocks in the LDM layout", where);
    LdmUNetLayout l;
    // Without a downsampler there is one level holding every input block.
    l.layers_per_block = first_down > 0 ? first_down - 1 : max_in;
    const int per_level = l.layers_per_block + 1;
    if (l.layers_per_block < 1 || (max_in + 1) % per_level != 0 || (max_out + 1) % per_level != 0 ||
        (max_in + 1) != (max_out + 1))
        return Error::bad_file(where, fmt::format("input blocks 0..{}, output blocks 0..{} and the first downsampler at "
                                                  "input_blocks.{} fit no UNet layout", max_in, max_out, first_down));
    l.num_levels = (max_in + 1) / per_level;
    return l;
}

Result<int> infer_ldm_vae_levels(const WeightSet& w, std::string_view prefix) {
    const std::string head = std::string(prefix) + "encoder.down.";
    int levels = 0;
    for (const std::string& name : w.names()) {
        if (!starts_with(name, head)) continue;
        auto [idx, rest] = split_first(std::string_view(name).substr(head.size()));
        if (const auto i = parse_index(idx)) levels = std::max(levels, *i + 1);
    }
    if (levels == 0) return Error::not_found("no VAE encoder.down blocks in the LDM layout", std::string(prefix) + "encoder.down");
    return levels;
}

Result<WeightSet> ldm_to_diffusers(WeightSet&& ldm, const LdmKeymapOptions& options, KeymapReport* report) {
    KeymapReport local;
    KeymapReport& rep = report ? *report : local;
    WeightSet out;
    out.source = ldm.source;
    out.metadata = ldm.metadata;

    // Other families in the same single-file layout: name them instead of listing hundreds of unknown keys.
    for (const std::string& n : ldm.names()) {
        const char* family = nullptr;
        if (n.find("joint_blocks.") != std::string::npos) family = "SD3";
        else if (n.find("double_blocks.") != std::string::npos) family = "Flux";
        if (family)
            return Error::unsupported(fmt::format("this is a {} checkpoint (tensor '{}'); easel runs SD 1.x, 2.x and SDXL for now",
                                                  family, n), ldm.source);
    }

    bool has_unet = false, has_vae = false, has_clip = false, has_open_clip = false, has_sgm_refiner = false;
    for (const std::string& n : ldm.names()) {
        has_unet |= starts_with(n, kLdmUNetPrefix);
        has_vae |= starts_with(n, kLdmVAEPrefix) && !starts_with(n, "first_stage_model.loss.");
        has_clip |= starts_with(n, kLdmCLIPPrefix) && !is_known_ldm_extra(n);
        has_open_clip |= starts_with(n, kLdmOpenCLIPPrefix);
        has_sgm_refiner |= starts_with(n, kSgmRefinerOpenCLIPPrefix);
    }
    // SDXL's bigG: embedders.1 of the base, embedders.0 of the refiner (whose embedders.0 is no CLIP-L).
    const std::string_view sgm_open_clip = has_sgm_refiner ? kSgmRefinerOpenCLIPPrefix : kSgmOpenCLIPPrefix;
    if (has_clip && has_open_clip)
        return Error::bad_file(ldm.source, "holds both an OpenAI CLIP (cond_stage_model.transformer.*) and an OpenCLIP "
                                           "(cond_stage_model.model.*) text encoder; expected one");

    LdmUNetLayout unet_layout;
    if (has_unet) {
        if (options.unet) unet_layout = *options.unet;
        else { EASEL_TRY_ASSIGN(unet_layout, infer_ldm_unet_layout(ldm)); }
    }
    int vae_levels = 0;
    if (has_vae) {
        if (options.vae_levels) vae_levels = *options.vae_levels;
        else { EASEL_TRY_ASSIGN(vae_levels, infer_ldm_vae_levels(ldm)); }
    }
    const int open_clip_stored = has_open_clip ? open_clip_stored_layers(ldm, kLdmOpenCLIPPrefix) : 0;
    const int open_clip_kept = options.open_clip_layers ? *options.open_clip_layers : std::max(open_clip_stored - 1, 0);

    std::vector<std::string> shape_errors;
    auto add = [&](std::string name, Tensor t) -> Status { return out.add(std::move(name), std::move(t)); };

    for (const std::string& name : ldm.names()) {
        const Tensor& t = *ldm.find(name);
        const std::string_view n = name;
        if (is_known_ldm_extra(n)) { rep.ignored.push_back(name); continue; }

        if (starts_with(n, kLdmUNetPrefix)) {
            if (auto d = ldm_unet_name_to_diffusers(n.substr(kLdmUNetPrefix.size()), unet_layout)) {
                EASEL_TRY(add("unet." + *d, t));
                continue;
            }
        } else if (starts_with(n, kLdmVAEPrefix)) {
            if (auto d = ldm_vae_name_to_diffusers(n.substr(kLdmVAEPrefix.size()), vae_levels)) {
                Tensor v = t;
                // Mid attention q/k/v/proj_out are 1x1 convs in ldm, linears in diffusers: [C, C, 1, 1] -> [C, C]
                // as a view (older files: [C, C, 1]).
                const bool attn_weight = d->find("mid_block.attentions.0.to_") != std::string::npos &&
                                         d->size() > 7 && d->compare(d->size() - 7, 7, ".weight") == 0;
                if (attn_weight) {
                    if (v.rank() == 4 && v.size(2) == 1 && v.size(3) == 1) v = v.select(3, 0).select(2, 0);
                    else if (v.rank() == 3 && v.size(2) == 1) v = v.select(2, 0);
                    else if (v.rank() != 2)
                        shape_errors.push_back(fmt::format("{} has shape {}; expected [C, C, 1, 1] or [C, C]", name,
                                                           v.shape().to_string()));
                }
                EASEL_TRY(add("vae." + *d, v));
                continue;
            }
        } else if (starts_with(n, kLdmCLIPPrefix)) {
            // transformers' CLIPTextModel names, one level down: text_model.*
            const std::string_view rest = n.substr(kLdmCLIPPrefix.size());
            if (starts_with(rest, "text_model.")) {
                EASEL_TRY(add("text_encoder." + std::string(rest), t));
                continue;
            }
        } else if (starts_with(n, kSgmCLIPPrefix)) {
            const std::string_view rest = n.substr(kSgmCLIPPrefix.size());
            if (starts_with(rest, "text_model.")) {
                EASEL_TRY(add("text_encoder." + std::string(rest), t));
                continue;
            }
        } else if (starts_with(n, kLdmOpenCLIPPrefix) || starts_with(n, sgm_open_clip)) {
            // SD 2.x's OpenCLIP-H runs all stored layers but the last and has no use for the projection; SDXL's
            // bigG keeps every layer (its pooled output comes from the last) and its projection.
            const bool sdxl = starts_with(n, sgm_open_clip);
            const std::string_view rest = n.substr(sdxl ? sgm_open_clip.size() : kLdmOpenCLIPPrefix.size());
            const std::string component = sdxl ? "text_encoder_2." : "text_encoder.";
            const int kept = sdxl ? std::numeric_limits<int>::max() : open_clip_kept;
            static const std::pair<std::string_view, std::string_view> kFixed[] = {
                {"positional_embedding", "text_model.embeddings.position_embedding.weight"},
                {"token_embedding.weight", "text_model.embeddings.token_embedding.weight"},
                {"ln_final.weight", "text_model.final_layer_norm.weight"},
                {"ln_final.bias", "text_model.final_layer_norm.bias"},
            };
            bool done = false;
            for (const auto& [from, to] : kFixed)
                if (rest == from) {
                    EASEL_TRY(add(component + std::string(to), t));
                    done = true;
                }
            if (done) continue;
            if (sdxl && rest == "text_projection") {
                // open_clip: pooled @ text_projection ([width, embed]); transformers: Linear weight [embed, width].
                if (t.rank() != 2) {
                    shape_errors.push_back(fmt::format("{} has shape {}; expected [width, embed]", name, t.shape().to_string()));
                    continue;
                }
                EASEL_TRY(add(component + "text_projection.weight", t.transpose(0, 1)));
                continue;
            }
            // The contrastive head is not used for SD 2 conditioning (diffusers' SD 2 text_encoder has none);
            // visual.* is the image tower, attn_mask a buffer.
            if (rest == "text_projection" || rest == "logit_scale" || rest == "attn_mask" || starts_with(rest, "visual.")) {
                rep.ignored.push_back(name);
                continue;
            }
            if (starts_with(rest, "transformer.resblocks.")) {
                auto [idx_text, param] = split_first(rest.substr(22));
                if (const auto layer = parse_index(idx_text)) {
                    if (*layer >= kept) { rep.ignored.push_back(name); continue; }
                    const std::string head = fmt::format("{}text_model.encoder.layers.{}.", component, *layer);
                    if (param == "attn.in_proj_weight" || param == "attn.in_proj_bias") {
                        // Fused [3D, D] / [3D]: rows 0..D are q, D..2D k, 2D..3D v (torch MultiheadAttention).
                        const bool is_w = param == "attn.in_proj_weight";
                        const int64_t rows = t.rank() >= 1 ? t.size(0) : 0;
                        const int64_t d = rows / 3;
                        if (t.rank() != (is_w ? 2 : 1) || rows % 3 != 0 || d == 0 || (is_w && t.size(1) != d)) {
                            shape_errors.push_back(fmt::format("{} has shape {}; expected {}", name, t.shape().to_string(),
                                                               is_w ? "[3*D, D]" : "[3*D]"));
                            continue;
                        }
                        const char* names[3] = {"q_proj", "k_proj", "v_proj"};
                        for (int k = 0; k < 3; ++k)
                            EASEL_TRY(add(head + fmt::format("self_attn.{}.{}", names[k], is_w ? "weight" : "bias"),
                                          t.slice(0, k * d, (k + 1) * d)));
                        continue;
                    }
                    if (auto p = open_clip_layer_param(param)) {
                        EASEL_TRY(add(head + *p, t));
                        continue;
                    }
                }
            }
        }
        rep.unknown.push_back(name);
    }

    if (!shape_errors.empty())
        return Error::bad_file(ldm.source, fmt::format("{} tensor(s) have shapes the LDM layout does not allow: {}",
                                                       shape_errors.size(), list_names(shape_errors)));
    if (!rep.unknown.empty() && options.fail_on_unknown)
        return Error::bad_file(ldm.source, fmt::format("{} tensor name(s) match no part of the SD 1.x/2.x/XL LDM layout: {}",
                                                       rep.unknown.size(), list_names(rep.unknown)));
    ldm = WeightSet();  // the tensors live on as views in `out`
    return out;
}

}  // namespace easel
