// IP-Adapter at sampling time: image encoders and adapters read and matched to the model, reference images
// prepared as the reference prepares them, and the image tokens every cross-attention of the UNet attends to.
//
//   EASEL_TRY_ASSIGN(auto enc, load_image_encoder("models/image_encoder", Precision::F32));
//   EASEL_TRY_ASSIGN(auto ip, load_ip_adapter("ip-adapter_sd15.safetensors", model->info, Precision::F32));
//   p.ip_adapters.push_back({.adapter = ip, .encoder = enc, .images = {face}, .scale = 0.7});
//   EASEL_TRY_ASSIGN(auto images, generate(*model, p));
//
// Semantics are diffusers v0.30.3's (load_ip_adapter, IPAdapterAttnProcessor2_0, prepare_ip_adapter_image_embeds):
// each image through CLIPImageProcessor (shortest side to the encoder's size with Pillow's BICUBIC, centre crop,
// CLIP mean/std); the plain adapters read the encoder's image_embeds, Plus its penultimate hidden states; several
// images of one adapter give their tokens one after another; the unconditional half gets zero image_embeds
// (plain) or the encoder's output for an all-zero input (Plus); several adapters each add their own attention.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "io/image.h"
#include "models/clip/vision_encoder.h"
#include "models/detect.h"
#include "models/unet/ip_adapter.h"
#include "pipeline/interfaces.h"

namespace easel {

struct ImageEncoderFile {
    std::string path;
    std::string name;  // the file or folder name without extension
    CLIPVisionConfig config;
    CLIPVisionEncoder encoder;

    // What the encoder makes of an all-zero input (Plus adapters' negative), computed once.
    Tensor zeros_penultimate(const Ctx& c) const;

private:
    mutable std::mutex mu_;
    mutable std::optional<Tensor> zeros_;
};

// A transformers CLIPVisionModelWithProjection: a folder (config.json + model[.fp16].safetensors or
// pytorch_model.bin), or one file in its names (vision_model.*, visual_projection.weight; a full CLIPModel's
// text tower is ignored), whose config is then read off the tensors (CLIPVisionConfig::detect_from_weights).
Result<std::shared_ptr<const ImageEncoderFile>> load_image_encoder(const std::string& path, Precision precision);
// The same from weights already read (`config_text`: a folder's config.json, or empty: read off the tensors);
// `path` names them in messages. For tests and fuzzing.
Result<std::shared_ptr<const ImageEncoderFile>> image_encoder_from_weights(WeightSet&& weights, const std::string& config_text,
                                                                           Precision precision, const std::string& path);
// The config alone (no weights loaded): what a server checks before it queues a job.
Result<CLIPVisionConfig> check_image_encoder(const std::string& path);

struct IPAdapterFile {
    std::string path;
    std::string name;  // the file name without extension
    IPAdapterConfig config;
    IPAdapter adapter;
};

// An IP-Adapter file in the original layout (.safetensors with image_proj.* and ip_adapter.* keys, or a .bin of
// the nested dicts {"image_proj": ..., "ip_adapter": ...}) checked against the model described by `base`: one
// key/value pair per cross-attention block of its UNet, each of that block's width, reading the UNet's context
// width. Errors name the file and what differs.
Result<std::shared_ptr<const IPAdapterFile>> load_ip_adapter(const std::string& path, const ModelInfo& base,
                                                             Precision precision);
// The same from weights already read; `path` names them in messages. For tests and fuzzing.
Result<std::shared_ptr<const IPAdapterFile>> ip_adapter_from_weights(WeightSet&& weights, const ModelInfo& base,
                                                                     Precision precision, const std::string& path);
// The config alone, checked against `base` (no weights loaded).
Result<IPAdapterConfig> check_ip_adapter(const std::string& path, const ModelInfo& base);
// Whether an encoder gives what an adapter reads (its projection width for plain adapters, its hidden width for
// Plus); the error says which encoder the adapter needs.
Status check_encoder_fits(const IPAdapterConfig& adapter, const CLIPVisionConfig& encoder, const std::string& where);
// The image encoder an adapter needs, looked for where people keep it: an image_encoder folder beside the
// adapter or one level up (h94/IP-Adapter's models/image_encoder, sdxl_models/image_encoder), then a clip_vision
// folder beside the adapter's folder (ComfyUI's models/clip_vision); the first that fits. "" if none does.
// `first_dir`: a folder of encoders looked in before those; `hidden_width` > 0: only an encoder that wide (a
// tower a client named).
std::string find_image_encoder(const std::string& adapter_path, const IPAdapterConfig& adapter,
                               const std::string& first_dir = "", int hidden_width = 0);

// One adapter with its reference images and scale.
struct IPAdapterUnit {
    std::shared_ptr<const IPAdapterFile> adapter;
    std::shared_ptr<const ImageEncoderFile> encoder;
    std::vector<Image> images;  // one or more (gray, RGB or RGBA; any size)
    double scale = 1.0;         // diffusers set_ip_adapter_scale (A1111's Weight)
    // The guidance window, fractions of the steps that run (A1111's Guidance Start / End for an IP-Adapter
    // unit): outside it the adapter adds nothing. Decided per model call as for a ControlNet
    // (pipeline/guidance.h in_guidance_window: A1111's rule in k-diffusion mode, diffusers' per-step rule in
    // diffusers mode, which diffusers itself only gets from a step-end callback that sets the scale).
    double start = 0.0, end = 1.0;
};

// Checks units before any work: an adapter, an encoder that fits it, 1..16 images, a finite scale,
// 0 <= start < end <= 1.
Status validate_ip_adapters(const std::vector<IPAdapterUnit>& units);

// CLIPImageProcessor(size=S, crop_size=S) as transformers 4.40 runs it: RGB; the shortest side resized to S (the
// other to floor(S * long / short)) with Pillow's BICUBIC on 8-bit values; the centre S x S cut out (offsets
// (side - S) // 2); / 255 and (x - mean) / std with CLIP's mean and std in float32 -> [1, 3, S, S].
Tensor prepare_clip_image(const Image& image, int size);

// The preprocessor AUTOMATIC1111's ControlNet extension names for a unit's image encoder in its infotext:
// ip-adapter_clip_h (ViT-H/14), ip-adapter_clip_g (ViT-bigG/14), ip-adapter_clip_l (ViT-L/14), else
// ip-adapter_clip ("(encoder name)").
std::string ip_adapter_module_name(const IPAdapterUnit& u);

// Adds each unit's image tokens to both halves of `conds` (Conditioning::extra_kv), in the order of the units.
Status add_image_prompts(const Ctx& c, const std::vector<IPAdapterUnit>& units, ConditioningPair& conds);

// DenoiserHooks::image_prompts for the units' guidance windows over the run's schedule `sigmas` (steps + 1
// values); empty when every unit acts at every step (0 and 1).
std::function<std::vector<bool>(float sigma)> image_prompt_windows(const std::vector<IPAdapterUnit>& units,
                                                                   std::vector<float> sigmas, bool a1111);

// For a family with the hook: the conditioning's image prompts fit a UNet of `cfg` (one entry per cross-attention
// block, each of its width); an error, not a crash, otherwise.
Status check_image_prompts(const Conditioning& cond, const UNetConfig& cfg);

}  // namespace easel
