// A loaded Stable Diffusion 1.x / 2.x model: tokenizer, text encoder, UNet and VAE, from a diffusers folder or a
// single-file checkpoint (.safetensors, .ckpt/.pt, .gguf) in the original LDM layout. The same code path loads
// every checkpoint, including easel's own embedded model.
//
//   LoadOptions o;  o.precision = Precision::F32;
//   EASEL_TRY_ASSIGN(std::unique_ptr<SDModel> m, load_sd_model("v1-5-pruned-emaonly.safetensors", o));
//   fmt::print("{}\n", m->describe());
#pragma once

#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/matmul.h"
#include "models/clip/text_encoder.h"
#include "models/clip/tokenizer.h"
#include "models/detect.h"
#include "models/unet/unet.h"
#include "models/vae/vae.h"
#include "sampling/diffusers_schedule.h"

namespace easel {

struct LoadOptions {
    Precision precision = Precision::F32;
    std::string vocab_path;                 // --vocab; empty: the model's own, else $EASEL_VOCAB, else the built-in one
    std::optional<Prediction> prediction;   // --prediction: overrides what the model's config says
    std::string variant;                    // diffusers weight variant, e.g. "fp16"
    bool with_vae_encoder = true;           // img2img and inpainting need it; 9-channel models always get it
    // Folder of packed-weight caches (runtime/pack_cache.h); empty: no cache. The CLI, server and benchmark
    // pass --weight-cache or default_weight_cache_dir() ($EASEL_WEIGHT_CACHE, else ~/.cache/easel/weights).
    // Models smaller than weight_cache_min_bytes are packed every time.
    std::string weight_cache_dir;
    uint64_t weight_cache_max_bytes = 8ull << 30;
    uint64_t weight_cache_min_bytes = 64ull << 20;
    // Write a new cache file on a thread of its own (SDModel::weight_cache_write) instead of before returning:
    // a first load of SD 1.5 then takes ~4.5 s instead of ~14 s on the development VM, where the fdatasync of
    // 2 GB alone takes seconds; the write overlaps the first generation. The CLI, server and benchmark do this.
    bool weight_cache_write_in_background = false;
};

// A diffusers scheduler_config.json as diffusers' `from_config` sees it: a field the file does not carry takes
// the default of the scheduler class it is loaded into, so the spacing is resolved per scheduler.
struct SchedulerFileConfig {
    DiffusersSchedulerConfig base;  // timestep_spacing there is only meaningful when spacing_given
    bool spacing_given = false;
    // The config diffusers builds for `scheduler`: the file's spacing, else the class default ("leading" for
    // DDIM and PNDM, "linspace" for the Euler family, LMS, Heun and DPM-Solver in diffusers 0.30).
    DiffusersSchedulerConfig for_scheduler(DiffusersScheduler scheduler) const;

    // A field the file sets to a value easel's schedulers do not implement (solver_order 3, clip_sample true,
    // ...), with the classes that read it. diffusers' from_config hands every field to every class and each reads
    // its own, so a file written for one class still serves the others: the check happens when a scheduler is
    // chosen (check_supported), not when the file is read.
    struct Departure {
        std::string field, value, expected;
        std::vector<DiffusersScheduler> classes;
    };
    std::vector<Departure> departures;
    std::string source;  // the file, for messages

    // An "unsupported" error naming the file, the field, its value and what easel implements, when `scheduler`
    // reads a field the file sets to something else.
    Status check_supported(DiffusersScheduler scheduler) const;
};

// What the packed-weight cache did for a load (LoadOptions::weight_cache_dir).
enum class WeightCacheUse {
    Off,      // no cache folder, or a model below weight_cache_min_bytes
    Mapped,   // every packed weight came from the cache file, used in place
    Copied,   // every packed weight came from the cache file, copied into huge pages
    Writing,  // weights were packed and a new cache file is being written in the background
    Written,  // ... and it was written
    Failed,   // ... and writing it failed (the model works; the note says why)
};

// What a model recommends for the settings a user leaves out (InvokeAI calls these a model's "default
// settings"): easel's own file easel_defaults.json at the top of a diffusers folder, or the metadata key
// easel.default_cfg_scale of a single file (easel-tiny carries both). Real SD checkpoints carry none, so SD's
// usual defaults apply to them.
//   {"cfg_scale": 3.0}            a number in [0, 100]; keys starting with "_" are comments; others are refused
struct ModelDefaults {
    std::optional<double> cfg_scale;
    std::string source;  // the file or "<file> metadata", for messages; empty when the model has none
};
constexpr double kSdDefaultCfgScale = 7.0;  // AUTOMATIC1111's and diffusers' default guidance

// Errors name `source` and the field: not a JSON object, cfg_scale not a number in [0, 100], an unknown key.
Result<ModelDefaults> parse_model_defaults(std::string_view json, const std::string& source);

// Everything about a model but its networks' weights: what validating a request needs (sizes, the tokenizer, the
// scheduler config), read from configs and tensor names without loading any weight. The server's front process
// holds this while worker processes hold the whole SDModel.
struct ModelSpec {
    std::string path;
    std::string name;  // file or folder name without extension (A1111's "Model" infotext field)
    ModelInfo info;
    clip::CLIPTokenizer tokenizer;
    int32_t pad_id = 0;  // SD 1.x pads prompts with <|endoftext|>, SD 2.x with 0
    // What diffusers mode (--schedule-from diffusers) reads: the folder's scheduler/scheduler_config.json, or
    // SD 1.5's own scheduler_config.json for a single file (what diffusers' from_single_file uses).
    SchedulerFileConfig scheduler_config;
    ModelDefaults defaults;  // the model's recommended settings, if it carries any
    // The guidance to use when the user gives none: the model's recommended scale, else SD's 7.
    double default_cfg_scale() const { return defaults.cfg_scale.value_or(kSdDefaultCfgScale); }
    std::vector<std::string> notes;
    // Whether the VAE encoder is (or, for a spec, would be) loaded: img2img and inpainting need it.
    bool has_vae_encoder = false;
    // Set by generate_once(), which drops the text encoder's and UNet's weights: the model cannot generate again.
    bool spent = false;
};

struct SDModel : ModelSpec {
    CLIPTextEncoder text_encoder;
    UNet unet;
    VAE vae;
    WeightCacheUse weight_cache = WeightCacheUse::Off;
    std::string weight_cache_note;  // one line on what the cache did (also in notes); empty when Off
    // A weight cache file being written in the background (LoadOptions::weight_cache_write_in_background): true
    // when written. The packed weights it writes stay alive until it is done, and destroying the model waits for
    // it (a std::future from std::async).
    std::future<std::pair<bool, std::string>> weight_cache_write;
    // Waits for that write, if any: weight_cache becomes Written or Failed, and its note is returned ("" when
    // there was none or it was already collected).
    std::string wait_for_weight_cache();

    std::string describe() const;
};

// What `easel info` shows: configs and weight names read without building the networks, and where the tokenizer
// would come from (load_sd_model's choice for the same --vocab; empty when the file has no text encoder).
struct ModelInspection {
    ModelInfo info;
    std::vector<std::string> notes;
    std::string tokenizer;
};
Result<ModelInspection> inspect_model(const std::string& path, const std::string& vocab_flag = {});
// The tokenizer load_sd_model would give the model at `path` for the same --vocab (for `easel tokenize`).
Result<clip::CLIPTokenizer> load_model_tokenizer(const std::string& path, const std::string& vocab_flag = {});

// Refuses a beta_schedule other than scaled_linear, trained_betas, and out-of-range values.
Result<SchedulerFileConfig> parse_scheduler_config(std::string_view json, const std::string& source);

Result<std::unique_ptr<SDModel>> load_sd_model(const std::string& path, const LoadOptions& options);
// The same checks and everything but the weights (ModelSpec): what load_sd_model would refuse, this refuses too.
Result<ModelSpec> load_model_spec(const std::string& path, const LoadOptions& options);

}  // namespace easel
