#include "models/clip/config.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace easel {
namespace {

constexpr int kMaxWidth = 1 << 16;
constexpr int kMaxLayers = 256;
constexpr int kMaxVocab = 1 << 24;
constexpr int kMaxPositions = 1 << 16;
// Both CLIP text towers SD uses fix the attention head width (see the header).
constexpr int kCLIPHeadWidth = 64;

Error bad_config(const std::string& where, const std::string& msg) { return Error(ErrorCode::BadFile, msg, where); }

bool contains_prefix(const WeightSet& w, const std::string& p) {
    for (const std::string& n : w.names())
        if (n.compare(0, p.size(), p) == 0) return true;
    return false;
}

Result<const Tensor*> need(const WeightSet& w, const std::string& name, int rank) {
    const Tensor* t = w.find(name);
    if (!t) return Error::not_found("tensor is missing; it is needed to tell the text encoder's shape", name);
    if (t->rank() != rank)
        return Error::bad_file(name, fmt::format("has shape {}, expected rank {}", t->shape().to_string(), rank));
    return t;
}

}  // namespace

std::string_view clip_activation_name(CLIPActivation a) { return a == CLIPActivation::Gelu ? "gelu" : "quick_gelu"; }

CLIPTextConfig open_clip_vit_h14_text_config() {
    CLIPTextConfig c;
    c.hidden_size = 1024;
    c.intermediate_size = 4096;
    c.num_heads = 16;
    c.num_layers = 23;
    c.hidden_act = CLIPActivation::Gelu;
    c.projection_dim = 512;
    return c;
}

Result<CLIPTextConfig> CLIPTextConfig::from_diffusers_json(const std::string& json_text) {
    EASEL_TRY_ASSIGN(ConfigNode doc, parse_json_config(json_text, "text_encoder config.json"));
    if (!doc.is_map()) return bad_config("text_encoder config.json", "expected a JSON object");
    const ConfigNode* cfg = &doc;
    if (const ConfigNode* t = doc.get("text_config"); t && t->is_map()) cfg = t;
    EASEL_TRY_ASSIGN(const std::string type, cfg->get_string_or("model_type", "clip_text_model"));
    if (type != "clip_text_model" && type != "clip")
        return Error::unsupported(fmt::format("model_type is '{}'; expected clip_text_model", type),
                                  "text_encoder config.json");
    CLIPTextConfig c;
    auto get_int = [&](const char* key, int fallback, int lo, int hi) -> Result<int> {
        EASEL_TRY_ASSIGN(std::optional<int64_t> v, cfg->get_int(key));
        if (!v) return fallback;
        if (*v < lo || *v > hi) return bad_config(key, fmt::format("value {} out of range {}..{}", *v, lo, hi));
        return int(*v);
    };
    // transformers CLIPTextConfig defaults (its ViT-B/32 text tower) for absent keys.
    EASEL_TRY_ASSIGN(c.vocab_size, get_int("vocab_size", 49408, 1, kMaxVocab));
    EASEL_TRY_ASSIGN(c.hidden_size, get_int("hidden_size", 512, 1, kMaxWidth));
    EASEL_TRY_ASSIGN(c.intermediate_size, get_int("intermediate_size", 2048, 1, kMaxWidth * 8));
    EASEL_TRY_ASSIGN(c.num_layers, get_int("num_hidden_layers", 12, 1, kMaxLayers));
    EASEL_TRY_ASSIGN(c.num_heads, get_int("num_attention_heads", 8, 1, kMaxWidth));
    EASEL_TRY_ASSIGN(c.max_positions, get_int("max_position_embeddings", 77, 1, kMaxPositions));
    EASEL_TRY_ASSIGN(c.projection_dim, get_int("projection_dim", 512, 1, kMaxWidth));
    EASEL_TRY_ASSIGN(c.bos_token_id, get_int("bos_token_id", 49406, 0, kMaxVocab));
    EASEL_TRY_ASSIGN(c.eos_token_id, get_int("eos_token_id", 49407, 0, kMaxVocab));
    EASEL_TRY_ASSIGN(c.pad_token_id, get_int("pad_token_id", 1, 0, kMaxVocab));
    EASEL_TRY_ASSIGN(std::optional<double> eps, cfg->get_double("layer_norm_eps"));
    c.layer_norm_eps = float(eps.value_or(1e-5));
    EASEL_TRY_ASSIGN(const std::string act, cfg->get_string_or("hidden_act", "quick_gelu"));
    if (act == "quick_gelu") c.hidden_act = CLIPActivation::QuickGelu;
    else if (act == "gelu") c.hidden_act = CLIPActivation::Gelu;
    else return Error::unsupported(fmt::format("hidden_act is '{}'; expected quick_gelu or gelu", act), "text_encoder config.json");
    // The projection exists only in CLIPTextModelWithProjection; its config looks the same, so the weights
    // decide (detect_from_weights). The architectures list says it when present.
    c.has_projection = false;
    if (const ConfigNode* arch = doc.get("architectures"); arch && arch->is_list())
        for (const ConfigNode& a : arch->items())
            if (a.scalar() == "CLIPTextModelWithProjection") c.has_projection = true;
    EASEL_TRY(c.validate());
    return c;
}

Result<CLIPTextConfig> CLIPTextConfig::from_ldm_yaml(const ConfigNode& root) {
    const ConfigNode* cond = root.path("model.params.cond_stage_config");
    if (!cond || !cond->is_map()) return Error::not_found("no model.params.cond_stage_config mapping in the LDM config");
    EASEL_TRY_ASSIGN(const std::string t, cond->get_string_or("target", ""));
    const ConfigNode* params = cond->get("params");
    auto param_string = [&](const char* key, const char* fallback) -> Result<std::string> {
        if (!params || !params->is_map()) return std::string(fallback);
        return params->get_string_or(key, fallback);
    };
    if (t == "ldm.modules.encoders.modules.FrozenCLIPEmbedder") {
        EASEL_TRY_ASSIGN(const std::string layer, param_string("layer", "last"));
        if (layer != "last")
            return Error::unsupported(fmt::format("FrozenCLIPEmbedder layer '{}'; only 'last' is known", layer));
        CLIPTextConfig c;  // SD 1.x: transformers' openai/clip-vit-large-patch14 text tower
        // easel's own models describe their (smaller) text tower with transformers' keys, which LDM's yaml
        // has no place for (tools/train/export.py writes them).
        const ConfigNode* e = params && params->is_map() ? params->get("easel_text_config") : nullptr;
        if (e && e->is_map()) {
            auto set_int = [&](const char* key, int& field) -> Status {
                EASEL_TRY_ASSIGN(std::optional<int64_t> v, e->get_int(key));
                if (v) {
                    if (*v < 0 || *v > kMaxVocab) return bad_config(key, fmt::format("value {} out of range", *v));
                    field = int(*v);
                }
                return ok();
            };
            EASEL_TRY(set_int("vocab_size", c.vocab_size));
            EASEL_TRY(set_int("hidden_size", c.hidden_size));
            EASEL_TRY(set_int("intermediate_size", c.intermediate_size));
            EASEL_TRY(set_int("num_hidden_layers", c.num_layers));
            EASEL_TRY(set_int("num_attention_heads", c.num_heads));
            EASEL_TRY(set_int("max_position_embeddings", c.max_positions));
            EASEL_TRY(set_int("bos_token_id", c.bos_token_id));
            EASEL_TRY(set_int("eos_token_id", c.eos_token_id));
            EASEL_TRY(set_int("pad_token_id", c.pad_token_id));
            EASEL_TRY_ASSIGN(std::optional<double> eps, e->get_double("layer_norm_eps"));
            if (eps) c.layer_norm_eps = float(*eps);
            EASEL_TRY_ASSIGN(const std::string act, e->get_string_or("hidden_act", "quick_gelu"));
            if (act == "quick_gelu") c.hidden_act = CLIPActivation::QuickGelu;
            else if (act == "gelu") c.hidden_act = CLIPActivation::Gelu;
            else return bad_config("hidden_act", fmt::format("'{}' is not quick_gelu or gelu", act));
        }
        return c;
    }
    if (t == "ldm.modules.encoders.modules.FrozenOpenCLIPEmbedder") {
        EASEL_TRY_ASSIGN(const std::string arch, param_string("arch", "ViT-H-14"));
        if (arch != "ViT-H-14")
            return Error::unsupported(fmt::format("OpenCLIP arch '{}'; only ViT-H-14 (SD 2.x) is known", arch));
        // ldm's FrozenOpenCLIPEmbedder defaults to layer "last" (all 24 resblocks); SD 2 yamls say "penultimate".
        EASEL_TRY_ASSIGN(const std::string layer, param_string("layer", "last"));
        CLIPTextConfig c = open_clip_vit_h14_text_config();
        if (layer == "last") c.num_layers = 24;
        else if (layer == "penultimate") c.num_layers = 23;
        else return Error::unsupported(fmt::format("FrozenOpenCLIPEmbedder layer '{}'; expected last or penultimate", layer));
        return c;
    }
    return Error::unsupported(fmt::format("cond_stage_config target '{}' is not a CLIP text encoder SD 1.x/2.x uses", t));
}

Result<CLIPTextConfig> CLIPTextConfig::detect_from_weights(const WeightSet& w, std::string_view prefix_sv) {
    const std::string p(prefix_sv);
    CLIPTextConfig c;
    EASEL_TRY_ASSIGN(const Tensor* tok, need(w, p + "text_model.embeddings.token_embedding.weight", 2));
    EASEL_TRY_ASSIGN(const Tensor* pos, need(w, p + "text_model.embeddings.position_embedding.weight", 2));
    EASEL_TRY_ASSIGN(const Tensor* fc1, need(w, p + "text_model.encoder.layers.0.mlp.fc1.weight", 2));
    if (tok->size(0) < 1 || tok->size(0) > kMaxVocab || tok->size(1) < 1 || tok->size(1) > kMaxWidth)
        return Error::bad_file(p + "text_model.embeddings.token_embedding.weight",
                               fmt::format("shape {} is out of range", tok->shape().to_string()));
    c.vocab_size = int(tok->size(0));
    c.hidden_size = int(tok->size(1));
    if (pos->size(1) != c.hidden_size || pos->size(0) < 1 || pos->size(0) > kMaxPositions)
        return Error::bad_file(p + "text_model.embeddings.position_embedding.weight",
                               fmt::format("shape {}; expected [positions, {}]", pos->shape().to_string(), c.hidden_size));
    c.max_positions = int(pos->size(0));
    if (fc1->size(1) != c.hidden_size || fc1->size(0) < 1 || fc1->size(0) > int64_t(kMaxWidth) * 8)
        return Error::bad_file(p + "text_model.encoder.layers.0.mlp.fc1.weight",
                               fmt::format("shape {}; expected [intermediate, {}]", fc1->shape().to_string(), c.hidden_size));
    c.intermediate_size = int(fc1->size(0));
    int layers = 0;
    while (layers <= kMaxLayers && contains_prefix(w, fmt::format("{}text_model.encoder.layers.{}.", p, layers))) ++layers;
    if (layers > kMaxLayers) return Error::bad_file(p + "text_model.encoder.layers", "more layers than any CLIP has");
    c.num_layers = layers;
    // A width that is not a multiple of 64 (a tiny or custom model) cannot be a standard CLIP tower: the head
    // count must then come from the model's config; 0 makes validate() say so if none does.
    c.num_heads = c.hidden_size % kCLIPHeadWidth == 0 ? c.hidden_size / kCLIPHeadWidth : 0;
    if (const Tensor* proj = w.find(p + "text_projection.weight")) {
        if (proj->rank() != 2 || proj->size(1) != c.hidden_size)
            return Error::bad_file(p + "text_projection.weight",
                                   fmt::format("shape {}; expected [projection_dim, {}]", proj->shape().to_string(), c.hidden_size));
        c.has_projection = true;
        c.projection_dim = int(proj->size(0));
    } else {
        c.has_projection = false;
        c.projection_dim = c.hidden_size;
    }
    return c;
}

Status CLIPTextConfig::validate() const {
    auto bad = [](const std::string& msg) { return Error::invalid_argument("CLIP text config: " + msg); };
    if (vocab_size < 1 || vocab_size > kMaxVocab) return bad(fmt::format("vocab_size {} out of range", vocab_size));
    if (hidden_size < 1 || hidden_size > kMaxWidth) return bad(fmt::format("hidden_size {} out of range", hidden_size));
    if (intermediate_size < 1 || intermediate_size > kMaxWidth * 8)
        return bad(fmt::format("intermediate_size {} out of range", intermediate_size));
    if (num_layers < 1 || num_layers > kMaxLayers) return bad(fmt::format("num_layers {} out of range", num_layers));
    if (num_heads < 1 || hidden_size % num_heads != 0)
        return bad(fmt::format("hidden_size {} cannot be split into {} heads", hidden_size, num_heads));
    if (max_positions < 1 || max_positions > kMaxPositions) return bad(fmt::format("max_positions {} out of range", max_positions));
    if (!(layer_norm_eps > 0.0f) || !std::isfinite(layer_norm_eps)) return bad("layer_norm_eps must be positive");
    if (has_projection && (projection_dim < 1 || projection_dim > kMaxWidth))
        return bad(fmt::format("projection_dim {} out of range", projection_dim));
    return ok();
}

std::string CLIPTextConfig::summary() const {
    return fmt::format("hidden {}, mlp {}, {} layers, {} heads, {}, eps {:g}, vocab {}, positions {}{}", hidden_size,
                       intermediate_size, num_layers, num_heads, clip_activation_name(hidden_act), layer_norm_eps,
                       vocab_size, max_positions,
                       has_projection ? fmt::format(", projection {}", projection_dim) : std::string());
}

Result<CLIPVisionConfig> CLIPVisionConfig::from_json(const std::string& json_text, const std::string& where) {
    EASEL_TRY_ASSIGN(ConfigNode doc, parse_json_config(json_text, where));
    if (!doc.is_map()) return bad_config(where, "expected a JSON object");
    const ConfigNode* cfg = &doc;
    if (const ConfigNode* t = doc.get("vision_config"); t && t->is_map()) cfg = t;
    EASEL_TRY_ASSIGN(const std::string type, cfg->get_string_or("model_type", "clip_vision_model"));
    if (type != "clip_vision_model" && type != "clip")
        return Error::unsupported(fmt::format("model_type is '{}'; expected clip_vision_model (a CLIP image encoder)", type),
                                  where);
    CLIPVisionConfig c;
    auto get_int = [&](const char* key, int fallback, int lo, int hi) -> Result<int> {
        EASEL_TRY_ASSIGN(std::optional<int64_t> v, cfg->get_int(key));
        if (!v) return fallback;
        if (*v < lo || *v > hi) return bad_config(where, fmt::format("{}: value {} out of range {}..{}", key, *v, lo, hi));
        return int(*v);
    };
    // transformers CLIPVisionConfig defaults for absent keys.
    EASEL_TRY_ASSIGN(c.hidden_size, get_int("hidden_size", 768, 1, kMaxWidth));
    EASEL_TRY_ASSIGN(c.intermediate_size, get_int("intermediate_size", 3072, 1, kMaxWidth * 8));
    EASEL_TRY_ASSIGN(c.num_layers, get_int("num_hidden_layers", 12, 1, kMaxLayers));
    EASEL_TRY_ASSIGN(c.num_heads, get_int("num_attention_heads", 12, 1, kMaxWidth));
    EASEL_TRY_ASSIGN(c.image_size, get_int("image_size", 224, 1, 4096));
    EASEL_TRY_ASSIGN(c.patch_size, get_int("patch_size", 32, 1, 4096));
    EASEL_TRY_ASSIGN(c.num_channels, get_int("num_channels", 3, 1, 4));
    EASEL_TRY_ASSIGN(c.projection_dim, get_int("projection_dim", 512, 1, kMaxWidth));
    EASEL_TRY_ASSIGN(std::optional<double> eps, cfg->get_double("layer_norm_eps"));
    c.layer_norm_eps = float(eps.value_or(1e-5));
    EASEL_TRY_ASSIGN(const std::string act, cfg->get_string_or("hidden_act", "quick_gelu"));
    if (act == "quick_gelu") c.hidden_act = CLIPActivation::QuickGelu;
    else if (act == "gelu") c.hidden_act = CLIPActivation::Gelu;
    else return Error::unsupported(fmt::format("hidden_act is '{}'; expected quick_gelu or gelu", act), where);
    // A full CLIPConfig keeps the projection width at its top level.
    if (cfg != &doc) {
        EASEL_TRY_ASSIGN(std::optional<int64_t> pd, doc.get_int("projection_dim"));
        if (pd) c.projection_dim = int(std::clamp<int64_t>(*pd, 0, kMaxWidth + 1));  // validate() names a bad one
    }
    EASEL_TRY(c.validate());
    return c;
}

Result<CLIPVisionConfig> CLIPVisionConfig::detect_from_weights(const WeightSet& w, std::string_view prefix_sv) {
    const std::string p(prefix_sv);
    const std::string v = p + "vision_model.";
    auto need_shape = [&](const std::string& name, int rank) -> Result<const Tensor*> {
        const Tensor* t = w.find(name);
        if (!t) return Error::not_found("tensor is missing; a CLIP image encoder has it", name);
        if (t->rank() != rank)
            return Error::bad_file(name, fmt::format("has shape {}, expected rank {}", t->shape().to_string(), rank));
        return t;
    };
    CLIPVisionConfig c;
    EASEL_TRY_ASSIGN(const Tensor* patch, need_shape(v + "embeddings.patch_embedding.weight", 4));
    EASEL_TRY_ASSIGN(const Tensor* pos, need_shape(v + "embeddings.position_embedding.weight", 2));
    EASEL_TRY_ASSIGN(const Tensor* fc1, need_shape(v + "encoder.layers.0.mlp.fc1.weight", 2));
    EASEL_TRY_ASSIGN(const Tensor* proj, need_shape(p + "visual_projection.weight", 2));
    c.hidden_size = int(std::min<int64_t>(patch->size(0), kMaxWidth + 1));
    c.num_channels = int(std::min<int64_t>(patch->size(1), 5));
    c.patch_size = int(std::min<int64_t>(patch->size(2), 4097));
    if (patch->size(2) != patch->size(3) || c.hidden_size > kMaxWidth || c.num_channels > 4 || c.patch_size > 4096)
        return Error::bad_file(v + "embeddings.patch_embedding.weight",
                               fmt::format("shape {}; expected [hidden, 3, patch, patch]", patch->shape().to_string()));
    const int64_t positions = pos->size(0);
    int64_t grid = 0;
    while ((grid + 1) * (grid + 1) + 1 <= positions) ++grid;
    if (pos->size(1) != c.hidden_size || grid * grid + 1 != positions || grid * c.patch_size > 4096)
        return Error::bad_file(v + "embeddings.position_embedding.weight",
                               fmt::format("shape {}; expected [grid * grid + 1, {}]", pos->shape().to_string(), c.hidden_size));
    c.image_size = int(grid * c.patch_size);
    if (fc1->size(1) != c.hidden_size || fc1->size(0) < 1 || fc1->size(0) > int64_t(kMaxWidth) * 8)
        return Error::bad_file(v + "encoder.layers.0.mlp.fc1.weight",
                               fmt::format("shape {}; expected [intermediate, {}]", fc1->shape().to_string(), c.hidden_size));
    c.intermediate_size = int(fc1->size(0));
    if (proj->size(1) != c.hidden_size || proj->size(0) < 1 || proj->size(0) > kMaxWidth)
        return Error::bad_file(p + "visual_projection.weight",
                               fmt::format("shape {}; expected [projection_dim, {}]", proj->shape().to_string(), c.hidden_size));
    c.projection_dim = int(proj->size(0));
    int layers = 0;
    while (layers <= kMaxLayers && contains_prefix(w, fmt::format("{}encoder.layers.{}.", v, layers))) ++layers;
    if (layers > kMaxLayers) return Error::bad_file(v + "encoder.layers", "more layers than any CLIP has");
    c.num_layers = layers;
    if (c.hidden_size != 1024 && c.hidden_size != 1280 && c.hidden_size != 1664)
        return Error::unsupported(fmt::format("a CLIP image encoder {} wide is none of the known towers (ViT-L/14 1024, "
                                              "ViT-H/14 1280, ViT-bigG/14 1664): give its config.json beside it (a "
                                              "folder with config.json and model.safetensors)", c.hidden_size),
                                  p + "vision_model");
    c.num_heads = 16;
    c.hidden_act = c.hidden_size == 1024 && c.num_layers == 24 ? CLIPActivation::QuickGelu : CLIPActivation::Gelu;
    EASEL_TRY(c.validate());
    return c;
}

Status CLIPVisionConfig::validate() const {
    auto bad = [](const std::string& msg) { return Error::invalid_argument("CLIP vision config: " + msg); };
    if (hidden_size < 1 || hidden_size > kMaxWidth) return bad(fmt::format("hidden_size {} out of range", hidden_size));
    if (intermediate_size < 1 || intermediate_size > kMaxWidth * 8)
        return bad(fmt::format("intermediate_size {} out of range", intermediate_size));
    if (num_layers < 1 || num_layers > kMaxLayers) return bad(fmt::format("num_layers {} out of range", num_layers));
    if (num_heads < 1 || hidden_size % num_heads != 0)
        return bad(fmt::format("hidden_size {} cannot be split into {} heads", hidden_size, num_heads));
    if (patch_size < 1 || image_size < patch_size || image_size > 4096 || image_size % patch_size != 0)
        return bad(fmt::format("image_size {} is not a multiple of patch_size {}", image_size, patch_size));
    if (num_channels != 3) return bad(fmt::format("num_channels {}; an image encoder takes RGB (3)", num_channels));
    if (projection_dim < 1 || projection_dim > kMaxWidth) return bad(fmt::format("projection_dim {} out of range", projection_dim));
    if (!(layer_norm_eps > 0.0f) || !std::isfinite(layer_norm_eps)) return bad("layer_norm_eps must be positive");
    return ok();
}

std::string CLIPVisionConfig::summary() const {
    return fmt::format("hidden {}, mlp {}, {} layers, {} heads, {}, image {} in patches of {}, projection {}", hidden_size,
                       intermediate_size, num_layers, num_heads, clip_activation_name(hidden_act), image_size,
                       patch_size, projection_dim);
}

}  // namespace easel
