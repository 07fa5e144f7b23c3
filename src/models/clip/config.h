// CLIPTextConfig: the shape of a CLIP text encoder as transformers' CLIPTextModel builds it. Defaults are
// SD 1.5's (OpenAI CLIP ViT-L/14 text tower). SD 2.x uses OpenCLIP ViT-H/14's tower: hidden 1024, 16 heads,
// gelu, and only the first 23 of its 24 layers ("penultimate": diffusers' SD 2 text_encoder has
// num_hidden_layers 23, and final_layer_norm is applied to layer 23's output, exactly what ldm's
// FrozenOpenCLIPEmbedder(layer="penultimate") computes).
//
//   EASEL_TRY_ASSIGN(CLIPTextConfig c, CLIPTextConfig::from_diffusers_json(read_text("text_encoder/config.json")));
//   EASEL_TRY_ASSIGN(CLIPTextConfig d, CLIPTextConfig::detect_from_weights(weights, "text_encoder."));
//   d.hidden_act = c.hidden_act;     // not in the shapes
//   EASEL_TRY(d.validate());
//   int head_dim = d.hidden_size / d.num_heads;
#pragma once

#include <string>
#include <string_view>

#include "core/error.h"
#include "io/keymap_config_doc.h"
#include "io/weights.h"

namespace easel {

enum class CLIPActivation { QuickGelu, Gelu };  // x*sigmoid(1.702x) (OpenAI CLIP) vs exact erf GELU (OpenCLIP)
std::string_view clip_activation_name(CLIPActivation a);  // "quick_gelu", "gelu"

struct CLIPTextConfig {
    int vocab_size = 49408;
    int hidden_size = 768;
    int intermediate_size = 3072;
    int num_layers = 12;      // layers that run; a checkpoint may store more (SD 2.x stores 24, runs 23)
    int num_heads = 12;
    int max_positions = 77;   // transformers `max_position_embeddings`
    CLIPActivation hidden_act = CLIPActivation::QuickGelu;
    float layer_norm_eps = 1e-5f;
    bool has_projection = false;  // CLIPTextModelWithProjection: text_projection.weight [projection_dim, hidden]
    int projection_dim = 768;
    // Token ids as SD's config.json files carry them. SD 1.5/2.x say 0/2/1, transformers' "legacy" values:
    // with eos_token_id == 2, transformers pools at argmax(input_ids) (the real EOS, 49407, is the largest id).
    int bos_token_id = 0;
    int eos_token_id = 2;
    int pad_token_id = 1;

    int head_dim() const { return num_heads > 0 ? hidden_size / num_heads : 0; }

    // transformers' CLIPTextConfig keys (also accepted nested under "text_config" of a full CLIPConfig).
    // Absent keys take transformers' defaults, as transformers would.
    static Result<CLIPTextConfig> from_diffusers_json(const std::string& json_text);
    // `model.params.cond_stage_config` of an LDM yaml: FrozenCLIPEmbedder (SD 1.x, CLIP-L) or
    // FrozenOpenCLIPEmbedder (SD 2.x, arch ViT-H-14, layer "last" or "penultimate").
    static Result<CLIPTextConfig> from_ldm_yaml(const ConfigNode& root);
    // From transformers-named tensors under `prefix` ("text_encoder."): vocab, hidden, intermediate, stored
    // layers, positions, projection. num_heads = hidden / 64: both OpenAI CLIP and OpenCLIP text towers fix
    // the head width at 64 (OpenCLIP: heads = width // head_width, head_width 64). The activation, eps and
    // token ids keep SD 1.x's defaults here; detect_model() sets the family's.
    static Result<CLIPTextConfig> detect_from_weights(const WeightSet& w, std::string_view prefix);

    Status validate() const;
    std::string summary() const;
};

// OpenCLIP ViT-H/14's text tower as SD 2.x uses it (published config of stabilityai/stable-diffusion-2-1's
// text_encoder): hidden 1024, intermediate 4096, 16 heads, gelu, 23 layers run, projection_dim 512.
CLIPTextConfig open_clip_vit_h14_text_config();

// The image tower of a CLIP model as transformers' CLIPVisionModelWithProjection builds it (IP-Adapter's image
// encoders: OpenCLIP ViT-H/14, hidden 1280, 32 layers, 16 heads, patch 14, projection 1024; ViT-bigG/14, hidden
// 1664, 48 layers, projection 1280; OpenAI ViT-L/14, hidden 1024, 24 layers, quick_gelu, projection 768).
struct CLIPVisionConfig {
    int hidden_size = 768;
    int intermediate_size = 3072;
    int num_layers = 12;
    int num_heads = 12;
    int image_size = 224;
    int patch_size = 32;
    int num_channels = 3;
    int projection_dim = 512;
    CLIPActivation hidden_act = CLIPActivation::QuickGelu;
    float layer_norm_eps = 1e-5f;

    int grid() const { return patch_size > 0 ? image_size / patch_size : 0; }
    int tokens() const { return grid() * grid() + 1; }  // the class token, then one per patch

    // transformers' CLIPVisionConfig keys (a CLIPVisionModel[WithProjection] config.json, or "vision_config" of a
    // full CLIPConfig); absent keys take transformers' defaults (ViT-B/32).
    static Result<CLIPVisionConfig> from_json(const std::string& json_text, const std::string& where);
    // From transformers-named tensors under `prefix` (vision_model.*, visual_projection.weight): widths, layers,
    // patch and image size. The head count and activation are not in the shapes: the three towers IP-Adapter
    // uses (widths 1024, 1280, 1664) all have 16 heads, and only OpenAI's ViT-L/14 (1024 wide, 24 layers) uses
    // quick_gelu; another width needs its config.json (an error says so).
    static Result<CLIPVisionConfig> detect_from_weights(const WeightSet& w, std::string_view prefix);
    Status validate() const;
    std::string summary() const;
};

}  // namespace easel
