// Generation requests: AUTOMATIC1111's txt2img/img2img JSON (field names and defaults of its /sdapi/v1 API,
// v1.10) turned into GenerateParams, with every field type-checked and bounded. The same parser serves our own
// /v1/jobs, whose defaults follow the model (its native size, 20 steps, Euler a).
//
//   EASEL_TRY_ASSIGN(GenerationRequest r, parse_generation_request(body, RequestKind::Txt2Img, a1111_defaults(), limits));
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "pipeline/control_preprocess.h"
#include "pipeline/generate.h"
#include "server.h"

namespace easel::server {

using json = nlohmann::json;

enum class RequestKind { Txt2Img, Img2Img };

struct RequestDefaults {
    int width = 512;
    int height = 512;
    int steps = 50;
    std::string sampler = "Euler";  // A1111's API model: sampler_index defaults to "Euler"
    double cfg_scale = 7.0;         // A1111's; /v1/jobs uses the model's recommended scale when it has one
};
RequestDefaults a1111_defaults();

// The hidden width of the image encoder an IP-Adapter preprocessor of AUTOMATIC1111's ControlNet extension names:
// 1280 (ViT-H/14: ip-adapter_clip_h, ip-adapter_clip_sd15, ip-adapter_clip_sdxl_plus_vith), 1664 (ViT-bigG/14:
// ip-adapter_clip_g, ip-adapter_clip_sdxl, ip-adapter_clip_bigg), 0 (ip-adapter-auto: whichever fits), -1 (not an
// IP-Adapter preprocessor).
int ip_adapter_module_width(const std::string& module);
std::vector<std::string> ip_adapter_modules();

// One unit of AUTOMATIC1111's ControlNet extension API (alwayson_scripts.controlnet.args[i]), enabled.
struct ControlRequest {
    std::string model;        // as the client names it ("control_v11p_sd15_canny [d14c016b]")
    Image image;              // the control map (no preprocessor: module "none"), or an IP-Adapter's reference image
    // An IP-Adapter unit (module ip-adapter_clip_*: the extension runs IP-Adapters as ControlNet units); `module`
    // then names the image encoder's tower (ip_adapter_module_width).
    bool ip_adapter = false;
    std::string module = "none";
    PreprocessorSpec preprocessor;  // a ControlNet unit's module and its sliders (threshold_a, threshold_b)
    std::optional<Image> mask;      // the inpaint preprocessor's (white = repaint)
    double weight = 1.0, start = 0.0, end = 1.0;
    ControlMode mode = ControlMode::Balanced;  // control_mode 0, 1, 2
    // resize_mode: "Just Resize" (0), "Crop and Resize" (1, A1111's default), "Resize and Fill" (2).
    ControlResize resize = ControlResize::Crop;
};

struct GenerationRequest {
    RequestKind kind = RequestKind::Txt2Img;
    GenerateParams params;
    std::string model;               // override_settings.sd_model_checkpoint or "model"; "" = the default model
    std::string refiner;             // refiner_checkpoint (A1111's): a model that finishes each image; "" = none
    bool send_images = true;
    std::string sampler_name;        // A1111's display name ("DPM++ 2M")
    std::string scheduler;           // A1111's scheduler name ("karras")
    std::vector<ControlRequest> controlnets;  // alwayson_scripts.controlnet's enabled units
    json parameters;                 // the request with defaults filled and the seed resolved
    int images() const { return params.batch_size * params.batch_count; }
};

// `body` must be a JSON object. Unknown fields are ignored, as A1111's API does; known fields easel does not
// implement (hires fix, face restoration, tiling, variation seeds, inpaint "only masked") are refused when set.
// seed -1 is replaced by a random seed.
Result<GenerationRequest> parse_generation_request(const json& body, RequestKind kind, const RequestDefaults& defaults,
                                                   const Limits& limits);

// json::dump that never throws: bytes that are not UTF-8 (from a file name in an error, say) become U+FFFD.
inline std::string safe_dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// The sampler and scheduler lists of /sdapi/v1/samplers and /sdapi/v1/schedulers.
json samplers_json();
json schedulers_json();

// Checked access to request JSON: a missing key is nullopt, a key of the wrong type an error naming it.
Result<std::optional<std::string>> get_string(const json& o, const char* key);
Result<std::optional<int64_t>> get_int(const json& o, const char* key);
Result<std::optional<double>> get_number(const json& o, const char* key);
Result<std::optional<bool>> get_bool(const json& o, const char* key);

// A whole file's bytes, or nullopt when it cannot be opened.
std::optional<std::string> read_whole_file(const std::string& path);

// Base64 (RFC 4648, standard alphabet; decode also takes a data: URL and ignores whitespace).
std::string base64_encode(const std::string& bytes);
// A base64 image (PNG, JPEG, WebP; a data: URL prefix allowed) of at most `max_pixels`, refused from its header.
Result<Image> decode_b64_image(const json& v, const std::string& field, int64_t max_pixels);
std::string base64_encode(const uint8_t* data, size_t n);
Result<std::string> base64_decode(std::string_view text, const std::string& field);

}  // namespace easel::server
