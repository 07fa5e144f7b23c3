#include "models/detect.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace easel {
namespace {

// What kind of add-on file `w` is, from its tensor names ("" when none): LoRA / LyCORIS (kohya-ss, PEFT, LoHa,
// LoKr), textual-inversion embeddings, ControlNets, IP-Adapters and their image encoders. People pass them as
// models by mistake.
std::string add_on_kind(const WeightSet& w) {
    bool lora = false, lycoris = false, embedding = false, sdxl = false, controlnet = false, ip_adapter = false,
         image_encoder = false;
    for (const std::string& n : w.names()) {
        if (n.rfind("ip_adapter.", 0) == 0 || n.rfind("image_proj.", 0) == 0) ip_adapter = true;
        if (n.rfind("vision_model.", 0) == 0 || n == "visual_projection.weight") image_encoder = true;
        if (n.rfind("input_hint_block.", 0) == 0 || n.rfind("control_model.input_hint_block.", 0) == 0 ||
            n.rfind("controlnet_cond_embedding.", 0) == 0)
            controlnet = true;
        if (n.find(".lora_down.") != std::string::npos || n.find(".lora_up.") != std::string::npos ||
            n.find(".lora_A.") != std::string::npos || n.find(".lora_B.") != std::string::npos)
            lora = true;
        if (n.find(".hada_w") != std::string::npos || n.find(".lokr_w") != std::string::npos) lycoris = true;
        if (n == "emb_params" || n == "clip_l" || n == "clip_g" || n.rfind("string_to_param", 0) == 0) embedding = true;
        if (n.rfind("lora_te1_", 0) == 0 || n.rfind("lora_te2_", 0) == 0 || n == "clip_g") sdxl = true;
    }
    if (controlnet) return "a ControlNet (give it with --controlnet)";
    if (ip_adapter) return "an IP-Adapter (give it with --ip-adapter)";
    if (image_encoder) return "a CLIP image encoder (an IP-Adapter's: give it with --image-encoder)";
    const char* arch = sdxl ? "an SDXL " : "a ";
    if (lycoris) return fmt::format("{}LyCORIS (LoHa / LoKr) file", arch);
    if (lora) return fmt::format("{}LoRA file", arch);
    if (embedding) return fmt::format("{}textual-inversion embedding", arch);
    return "";
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

bool any_name(const WeightSet& w, auto pred) {
    for (const std::string& n : w.names())
        if (pred(std::string_view(n))) return true;
    return false;
}

bool has_prefix(const WeightSet& w, std::string_view p) {
    return any_name(w, [&](std::string_view n) { return starts_with(n, p); });
}

bool has_part(const WeightSet& w, std::string_view part) {
    return any_name(w, [&](std::string_view n) { return n.find(part) != std::string_view::npos; });
}

DType dominant_float_dtype(const WeightSet& w) {
    std::map<DType, int64_t> count;
    for (const std::string& n : w.names()) {
        const Tensor* t = w.find(n);
        if (dtype_is_float(t->dtype())) count[t->dtype()] += std::max<int64_t>(t->numel(), 1);
    }
    DType best = DType::F32;
    int64_t most = -1;
    for (const auto& [d, c] : count)
        if (c > most) { best = d; most = c; }
    return best;
}

// Structural fields must agree between what the weights show and what a config says; every disagreement is
// listed.
Status check_unet_agrees(const UNetConfig& w, const UNetConfig& c, const std::string& source) {
    std::vector<std::string> diffs;
    auto diff = [&](const char* what, auto a, auto b) {
        if (a != b) diffs.push_back(fmt::format("{}: weights {} vs config {}", what, a, b));
    };
    diff("in_channels", w.in_channels, c.in_channels);
    diff("out_channels", w.out_channels, c.out_channels);
    diff("block_out_channels", fmt::format("{}", w.block_out_channels), fmt::format("{}", c.block_out_channels));
    diff("layers_per_block", w.layers_per_block, c.layers_per_block);
    diff("down attention", fmt::format("{}", w.down_attention), fmt::format("{}", c.down_attention));
    diff("up attention", fmt::format("{}", w.up_attention), fmt::format("{}", c.up_attention));
    diff("cross_attention_dim", w.cross_attention_dim, c.cross_attention_dim);
    diff("use_linear_projection", w.use_linear_projection, c.use_linear_projection);
    std::vector<int> wd, cd;  // transformer depth only matters where there are transformers
    for (int l = 0; l < w.num_levels() && l < c.num_levels(); ++l)
        if (w.down_attention[size_t(l)]) {
            wd.push_back(w.transformer_depth[size_t(l)]);
            cd.push_back(c.transformer_depth[size_t(l)]);
        }
    diff("transformer depth", fmt::format("{}", wd), fmt::format("{}", cd));
    if (diffs.empty()) return ok();
    return Error::bad_file(source, fmt::format("the UNet config does not match the weights: {}", fmt::join(diffs, "; ")));
}

Status check_vae_agrees(const VAEConfig& w, const VAEConfig& c, const std::string& source) {
    std::vector<std::string> diffs;
    auto diff = [&](const char* what, auto a, auto b) {
        if (a != b) diffs.push_back(fmt::format("{}: weights {} vs config {}", what, a, b));
    };
    diff("in_channels", w.in_channels, c.in_channels);
    diff("out_channels", w.out_channels, c.out_channels);
    diff("latent_channels", w.latent_channels, c.latent_channels);
    diff("block_out_channels", fmt::format("{}", w.block_out_channels), fmt::format("{}", c.block_out_channels));
    diff("layers_per_block", w.layers_per_block, c.layers_per_block);
    diff("mid attention", w.mid_attention, c.mid_attention);
    if (diffs.empty()) return ok();
    return Error::bad_file(source, fmt::format("the VAE config does not match the weights: {}", fmt::join(diffs, "; ")));
}

Status check_text_agrees(const CLIPTextConfig& w, const CLIPTextConfig& c, const std::string& source) {
    std::vector<std::string> diffs;
    auto diff = [&](const char* what, auto a, auto b) {
        if (a != b) diffs.push_back(fmt::format("{}: weights {} vs config {}", what, a, b));
    };
    diff("vocab_size", w.vocab_size, c.vocab_size);
    diff("hidden_size", w.hidden_size, c.hidden_size);
    diff("intermediate_size", w.intermediate_size, c.intermediate_size);
    diff("max_positions", w.max_positions, c.max_positions);
    if (c.num_layers > w.num_layers)
        diffs.push_back(fmt::format("num_layers: weights hold {} but the config runs {}", w.num_layers, c.num_layers));
    if (diffs.empty()) return ok();
    return Error::bad_file(source, fmt::format("the text encoder config does not match the weights: {}", fmt::join(diffs, "; ")));
}

// Copies the non-structural fields (what shapes cannot tell) from a config.
void take_unet_settings(UNetConfig& dst, const UNetConfig& src) {
    dst.num_heads = src.num_heads;
    dst.norm_num_groups = src.norm_num_groups;
    dst.norm_eps = src.norm_eps;
    dst.upcast_attention = src.upcast_attention;
    dst.time_flip_sin_to_cos = src.time_flip_sin_to_cos;
    dst.time_freq_shift = src.time_freq_shift;
    dst.sample_size = src.sample_size;
    if (src.prediction != Prediction::Unknown) dst.prediction = src.prediction;
}

void take_text_settings(CLIPTextConfig& dst, const CLIPTextConfig& src) {
    dst.num_heads = src.num_heads;
    dst.hidden_act = src.hidden_act;
    dst.layer_norm_eps = src.layer_norm_eps;
    dst.num_layers = src.num_layers;  // may run fewer than stored (SD 2.x: 23 of 24)
    dst.bos_token_id = src.bos_token_id;
    dst.eos_token_id = src.eos_token_id;
    dst.pad_token_id = src.pad_token_id;
    if (src.has_projection) dst.projection_dim = src.projection_dim;
}

Result<Prediction> prediction_from_scheduler_json(const std::string& text) {
    EASEL_TRY_ASSIGN(ConfigNode cfg, parse_json_config(text, "scheduler_config.json"));
    EASEL_TRY_ASSIGN(const std::string p, cfg.get_string_or("prediction_type", "epsilon"));  // diffusers' default
    if (p == "epsilon") return Prediction::Epsilon;
    if (p == "v_prediction") return Prediction::V;
    return Error::unsupported(fmt::format("prediction_type '{}'; expected epsilon or v_prediction", p),
                              "scheduler_config.json");
}

// Stability's model-spec metadata (safetensors __metadata__), when present: modelspec.prediction_type
// ("epsilon"/"v") or an architecture id ending in "-v" (e.g. "stable-diffusion-v2-768-v").
std::optional<Prediction> prediction_from_metadata(const std::map<std::string, std::string>& md) {
    if (auto it = md.find("modelspec.prediction_type"); it != md.end()) {
        if (it->second == "epsilon" || it->second == "eps") return Prediction::Epsilon;
        if (it->second == "v" || it->second == "v_prediction") return Prediction::V;
    }
    if (auto it = md.find("modelspec.architecture"); it != md.end()) {
        const std::string& a = it->second;
        if (a.size() > 2 && a.compare(a.size() - 2, 2, "-v") == 0) return Prediction::V;
    }
    return std::nullopt;
}

}  // namespace

std::string_view family_name(ModelFamily f) {
    switch (f) {
        case ModelFamily::SD1: return "sd1";
        case ModelFamily::SD2: return "sd2";
        case ModelFamily::SDXL: return "sdxl";
        case ModelFamily::SD3: return "sd3";
        case ModelFamily::Flux: return "flux";
    }
    return "unknown";
}

std::string model_kind_name(const ModelInfo& info) {
    std::string s(family_name(info.family));
    if (info.inpainting) s += "-inpaint";
    return s;
}

std::string_view layout_name(CheckpointLayout l) {
    return l == CheckpointLayout::Diffusers ? "diffusers" : "ldm single file";
}

LdmUNetLayout ldm_layout_of(const UNetConfig& c) { return LdmUNetLayout{c.num_levels(), c.layers_per_block}; }

namespace {
// The diffusers config.json files that came with the model: structure checked against the weights, then the
// settings shapes cannot tell taken over.
Status apply_diffusers_configs(ModelInfo& info, const ModelConfigSources& sources, const std::string& src) {
    if (sources.unet_json && info.has_unet) {
        EASEL_TRY_ASSIGN(UNetConfig c, UNetConfig::from_diffusers_json(*sources.unet_json));
        EASEL_TRY(check_unet_agrees(info.unet, c, "unet config.json"));
        take_unet_settings(info.unet, c);
        info.unet.addition_time_embed_dim = c.addition_time_embed_dim;
        if (c.addition_embed_input_dim != info.unet.addition_embed_input_dim)
            return Error::bad_file(src, fmt::format("unet config.json: projection_class_embeddings_input_dim {} but "
                                                    "add_embedding.linear_1 takes {}", c.addition_embed_input_dim,
                                                    info.unet.addition_embed_input_dim));
        info.notes.push_back("UNet settings from unet/config.json");
    }
    if (sources.vae_json && info.has_vae) {
        EASEL_TRY_ASSIGN(VAEConfig c, VAEConfig::from_diffusers_json(*sources.vae_json));
        EASEL_TRY(check_vae_agrees(info.vae, c, "vae config.json"));
        info.vae.norm_num_groups = c.norm_num_groups;
        info.vae.scaling_factor = c.scaling_factor;
    }
    if (sources.text_encoder_json && info.has_text_encoder) {
        EASEL_TRY_ASSIGN(CLIPTextConfig c, CLIPTextConfig::from_diffusers_json(*sources.text_encoder_json));
        EASEL_TRY(check_text_agrees(info.text, c, "text_encoder config.json"));
        take_text_settings(info.text, c);
    }
    if (sources.text_encoder_2_json && info.has_text_encoder_2) {
        EASEL_TRY_ASSIGN(CLIPTextConfig c, CLIPTextConfig::from_diffusers_json(*sources.text_encoder_2_json));
        EASEL_TRY(check_text_agrees(info.text_2, c, "text_encoder_2 config.json"));
        take_text_settings(info.text_2, c);
    }
    return ok();
}

// The one place where the input width decides a capability: latent 4 + mask 1 + masked-image latent 4.
bool is_inpainting_unet(const UNetConfig& c) { return c.in_channels == 2 * c.out_channels + 1; }

// SDXL with diffusers names: unet.*, vae.*, text_encoder.* (CLIP ViT-L), text_encoder_2.* (OpenCLIP ViT-bigG
// with text_projection), with the folder's configs; a single file arrives here renamed (`layout` says which,
// `metadata` is the file's). Family defaults (diffusers' stabilityai/stable-diffusion-xl-base-1.0 configs): head
// width 64, linear projections, epsilon unless the file's modelspec says v, CLIP-L quick_gelu, bigG exact gelu.
Result<ModelInfo> detect_sdxl(const WeightSet& w, const ModelConfigSources& sources, CheckpointLayout layout,
                              const std::map<std::string, std::string>& metadata, DType weight_dtype) {
    const std::string& src = w.source;
    ModelInfo info;
    info.family = ModelFamily::SDXL;
    info.layout = layout;
    info.weight_dtype = weight_dtype;
    info.has_unet = w.contains("unet.conv_in.weight");
    info.has_vae = w.contains("vae.encoder.conv_in.weight") || w.contains("vae.decoder.conv_in.weight");
    info.has_text_encoder = w.contains("text_encoder.text_model.embeddings.token_embedding.weight");
    info.has_text_encoder_2 = w.contains("text_encoder_2.text_model.embeddings.token_embedding.weight");
    if (info.has_unet) {
        EASEL_TRY_ASSIGN(info.unet, UNetConfig::detect_from_weights(w, "unet."));
        if (!info.unet.has_added_conditioning())
            return Error::bad_file(src, "an SDXL folder whose UNet has no add_embedding (SDXL's size and pooled-text "
                                        "conditioning)");
        if (!set_head_dim(info.unet, 64)) info.unet.num_heads.assign(size_t(info.unet.num_levels()), 0);
        info.unet.prediction = Prediction::Epsilon;
        info.inpainting = is_inpainting_unet(info.unet);
    }
    if (info.has_vae) { EASEL_TRY_ASSIGN(info.vae, VAEConfig::detect_from_weights(w, "vae.")); }
    info.vae.scaling_factor = 0.13025f;  // SDXL's VAE (sdxl-vae config)
    if (info.has_text_encoder) { EASEL_TRY_ASSIGN(info.text, CLIPTextConfig::detect_from_weights(w, "text_encoder.")); }
    if (info.has_text_encoder_2) {
        EASEL_TRY_ASSIGN(info.text_2, CLIPTextConfig::detect_from_weights(w, "text_encoder_2."));
        info.text_2.hidden_act = CLIPActivation::Gelu;
    }
    info.notes.push_back("family defaults: SDXL (head dim 64, CLIP-L + OpenCLIP bigG penultimate layers, pooled bigG)");
    EASEL_TRY(apply_diffusers_configs(info, sources, src));
    if (info.has_unet) {
        if (sources.scheduler_json) {
            EASEL_TRY_ASSIGN(info.unet.prediction, prediction_from_scheduler_json(*sources.scheduler_json));
        } else if (auto p = prediction_from_metadata(metadata)) {
            info.unet.prediction = *p;
            info.notes.push_back("prediction type from the file's modelspec metadata");
        }
        EASEL_TRY(info.unet.validate());
    }
    if (info.has_vae) { EASEL_TRY(info.vae.validate()); }
    if (info.has_text_encoder) { EASEL_TRY(info.text.validate()); }
    if (info.has_text_encoder_2) { EASEL_TRY(info.text_2.validate()); }
    // The base cross-attends to both encoders' states side by side; the refiner to bigG's alone.
    if (info.has_unet && info.has_text_encoder_2) {
        const int text_width = info.text_2.hidden_size + (info.has_text_encoder ? info.text.hidden_size : 0);
        if (info.unet.cross_attention_dim != text_width)
            return Error::bad_file(src, fmt::format("the UNet cross-attends to {}-wide text states but the text encoders "
                                                    "give {}", info.unet.cross_attention_dim, text_width));
    }
    return info;
}
}  // namespace

Result<ModelInfo> detect_model(const WeightSet& w_in, const ModelConfigSources& sources) {
    const std::string& src = w_in.source;
    // Families we recognise but do not run: say so by name instead of failing on a missing tensor.
    if (has_part(w_in, "joint_blocks."))
        return Error::unsupported("this is an SD3 (MMDiT) checkpoint, which the sd3 family reads, not SD 1.x/2.x/SDXL's "
                                  "detection", src);
    if (has_part(w_in, "double_blocks."))
        return Error::unsupported("this is a Flux checkpoint, which the flux family reads, not SD 1.x/2.x/SDXL's detection", src);
    if (has_prefix(w_in, kSgmPrefix) || has_prefix(w_in, "model.diffusion_model.label_emb.")) {
        // An SDXL single file (Stability's sgm layout): renamed to diffusers names, then detected as a folder is.
        WeightSet renamed;
        EASEL_TRY_ASSIGN(renamed, ldm_to_diffusers(WeightSet(w_in), LdmKeymapOptions{}));
        renamed.source = src;
        return detect_sdxl(renamed, sources, CheckpointLayout::LdmSingleFile, w_in.metadata, dominant_float_dtype(w_in));
    }
    const bool ldm_names = has_prefix(w_in, kLdmUNetPrefix) || has_prefix(w_in, kLdmVAEPrefix) ||
                           has_prefix(w_in, "cond_stage_model.");
    if (!ldm_names && (has_prefix(w_in, "text_encoder_2.") || has_prefix(w_in, "unet.add_embedding.")))
        return detect_sdxl(w_in, sources, CheckpointLayout::Diffusers, w_in.metadata, dominant_float_dtype(w_in));
    if (has_prefix(w_in, "add_embedding."))
        return Error::unsupported("an SDXL UNet alone; load the whole diffusers folder", src);

    ModelInfo info;
    info.weight_dtype = dominant_float_dtype(w_in);

    // Bring everything to diffusers names (a copy of the set is a copy of views, not of data).
    WeightSet w;
    const bool ldm = has_prefix(w_in, kLdmUNetPrefix) || has_prefix(w_in, kLdmVAEPrefix) ||
                     has_prefix(w_in, "cond_stage_model.");
    bool open_clip = false;
    std::string unet_p = "unet.", vae_p = "vae.", text_p = "text_encoder.";
    if (ldm) {
        info.layout = CheckpointLayout::LdmSingleFile;
        open_clip = has_prefix(w_in, kLdmOpenCLIPPrefix);
        KeymapReport report;
        LdmKeymapOptions opt;
        opt.fail_on_unknown = true;
        if (open_clip) {
            // Keep every stored layer here; how many run is a config decision made below.
            int stored = 0;
            const std::string head = std::string(kLdmOpenCLIPPrefix) + "transformer.resblocks.";
            while (w_in.contains(fmt::format("{}{}.ln_1.weight", head, stored)) && stored < 1024) ++stored;
            opt.open_clip_layers = stored;
        }
        EASEL_TRY_ASSIGN(w, ldm_to_diffusers(WeightSet(w_in), opt, &report));
    } else {
        info.layout = CheckpointLayout::Diffusers;
        if (const std::string kind = add_on_kind(w_in); !kind.empty())
            return Error::invalid_argument(fmt::format("this is {}, an add-on for a model, not a model: pass a "
                                                       "checkpoint with -m", kind), src);
        w = w_in;
        // One component file without a folder prefix.
        if (!has_prefix(w, "unet.") && !has_prefix(w, "vae.") && !has_prefix(w, "text_encoder.")) {
            if (w.contains("conv_in.weight")) unet_p = "";
            else if (w.contains("encoder.conv_in.weight")) vae_p = "";
            else if (has_prefix(w, "text_model.")) text_p = "";
            else return Error::unsupported("no Stable Diffusion UNet, VAE or CLIP text encoder tensor names found "
                                           "(neither the LDM nor the diffusers layout)", src);
        }
    }
    info.has_unet = w.contains(unet_p + "conv_in.weight");
    info.has_vae = w.contains(vae_p + "encoder.conv_in.weight") || w.contains(vae_p + "decoder.conv_in.weight");
    info.has_text_encoder = w.contains(text_p + "text_model.embeddings.token_embedding.weight");
    if (info.has_unet && unet_p.empty()) { info.has_vae = false; info.has_text_encoder = false; }

    if (info.has_unet) { EASEL_TRY_ASSIGN(info.unet, UNetConfig::detect_from_weights(w, unet_p)); }
    if (info.has_vae) { EASEL_TRY_ASSIGN(info.vae, VAEConfig::detect_from_weights(w, vae_p)); }
    if (info.has_text_encoder) { EASEL_TRY_ASSIGN(info.text, CLIPTextConfig::detect_from_weights(w, text_p)); }

    // Family.
    bool sd2 = false;
    if (ldm && info.has_text_encoder) sd2 = open_clip;
    else if (info.has_unet) sd2 = info.unet.use_linear_projection;
    else if (info.has_text_encoder)
        return Error::unsupported("a text encoder alone does not say which SD family it belongs to; load it with its UNet", src);
    if (info.has_unet && info.has_text_encoder && info.unet.cross_attention_dim != info.text.hidden_size)
        return Error::bad_file(src, fmt::format("the UNet cross-attends to {}-wide text states but the text encoder is {} "
                                                "wide; the components do not belong together",
                                                info.unet.cross_attention_dim, info.text.hidden_size));
    int in_ch = info.has_unet ? info.unet.in_channels : 4;
    info.family = sd2 ? ModelFamily::SD2 : ModelFamily::SD1;
    info.inpainting = info.has_unet && is_inpainting_unet(info.unet);
    if (in_ch != 4 && !info.inpainting)
        return Error::unsupported(fmt::format("the UNet takes {} input channels; known are 4 (text-to-image) and 9 "
                                              "(inpainting); 8 is InstructPix2Pix, 5 depth-to-image", in_ch), src);

    // Family defaults for what the shapes cannot tell.
    if (sd2) {
        if (info.has_unet) {
            // ldm num_head_channels: 64 in every SD 2 yaml. A UNet whose widths are not multiples of 64 (a
            // tiny test model) needs its config; validate() below says so if none came.
            if (!set_head_dim(info.unet, 64)) info.unet.num_heads.assign(size_t(info.unet.num_levels()), 0);
            if (info.inpainting) {
                // The one published SD 2 inpainting model (512-inpainting-ema, stabilityai/stable-diffusion-2-
                // inpainting) predicts epsilon; its yaml and diffusers config say so, and diffusers' single-file
                // loader builds every 9-channel SD 2 UNet from that config (no upcast_attention).
                info.unet.upcast_attention = false;
                info.unet.prediction = Prediction::Epsilon;
                info.notes.push_back("SD 2 inpainting: epsilon prediction (stable-diffusion-2-inpainting's)");
            } else {
                // diffusers' single-file loader builds every other SD 2 UNet from stabilityai/stable-diffusion-2-1's
                // config, which sets upcast_attention.
                info.unet.upcast_attention = true;
                info.unet.prediction = Prediction::Unknown;
            }
        }
        if (info.has_text_encoder) {
            // OpenCLIP's activation; heads stay width/64 as detected (the same rule OpenCLIP uses). An LDM file
            // stores all 24 resblocks and SD 2 runs 23 ("penultimate"); a diffusers text_encoder stores only
            // the layers it runs.
            info.text.hidden_act = open_clip_vit_h14_text_config().hidden_act;
            if (ldm && open_clip) info.text.num_layers = std::max(info.text.num_layers - 1, 1);
        }
        info.notes.push_back("family defaults: SD 2.x (head dim 64, OpenCLIP gelu text encoder, penultimate layer)");
    } else {
        if (info.has_unet) { info.unet.num_heads.assign(size_t(info.unet.num_levels()), 8); info.unet.prediction = Prediction::Epsilon; }
        info.notes.push_back("family defaults: SD 1.x (8 heads, CLIP-L quick_gelu text encoder)");
    }

    // What travelled with the model overrides the family defaults; structure must agree with the weights.
    if (sources.ldm_yaml) {
        EASEL_TRY_ASSIGN(ConfigNode yaml, parse_yaml_subset(*sources.ldm_yaml, "model yaml"));
        if (info.has_unet) {
            EASEL_TRY_ASSIGN(UNetConfig c, UNetConfig::from_ldm_yaml(yaml));
            EASEL_TRY(check_unet_agrees(info.unet, c, "model yaml"));
            take_unet_settings(info.unet, c);
        }
        if (info.has_vae) {
            EASEL_TRY_ASSIGN(VAEConfig c, VAEConfig::from_ldm_yaml(yaml));
            EASEL_TRY(check_vae_agrees(info.vae, c, "model yaml"));
            info.vae.norm_num_groups = c.norm_num_groups;
            info.vae.scaling_factor = c.scaling_factor;
        }
        if (info.has_text_encoder) {
            EASEL_TRY_ASSIGN(CLIPTextConfig c, CLIPTextConfig::from_ldm_yaml(yaml));
            EASEL_TRY(check_text_agrees(info.text, c, "model yaml"));
            take_text_settings(info.text, c);
        }
        info.notes.push_back("settings from the model yaml");
    }
    EASEL_TRY(apply_diffusers_configs(info, sources, src));
    if (info.has_unet) {
        if (sources.scheduler_json) {
            EASEL_TRY_ASSIGN(info.unet.prediction, prediction_from_scheduler_json(*sources.scheduler_json));
        } else if (auto p = prediction_from_metadata(w_in.metadata)) {
            info.unet.prediction = *p;
            info.notes.push_back("prediction type from the file's modelspec metadata");
        }
        if (info.unet.prediction == Prediction::Unknown)
            info.notes.push_back("prediction type unknown: SD 2.x 512-base models predict epsilon and 768-v models "
                                 "predict v, from identical weights; pass it explicitly or put the model's yaml beside it");
        if (Status s = info.unet.validate(); !s) {
            const auto& h = info.unet.num_heads;
            const bool heads_unknown = std::find(h.begin(), h.end(), 0) != h.end();
            return Error(s.error().code(),
                         s.error().message() + (heads_unknown ? " (the weights alone do not tell this UNet's head "
                                                                "count; give its config.json or LDM yaml)" : ""),
                         src);
        }
    }
    if (info.has_vae) { EASEL_TRY(info.vae.validate()); }
    if (info.has_text_encoder) { EASEL_TRY(info.text.validate()); }
    return info;
}

}  // namespace easel
