// A loaded model as the driver (generate.h) sees it, whatever its family: a conditioner, a diffusion model, an
// autoencoder and a model sampling (pipeline/interfaces.h), plus what validating a request needs (ModelSpec).
// Families register a detector and a loader in one list (pipeline/families/families.cpp); load_model() asks each
// in turn, so the driver and the apps name no family.
//
//   LoadOptions o;  o.precision = Precision::F32;
//   EASEL_TRY_ASSIGN(std::unique_ptr<Model> m, load_model("v1-5-pruned-emaonly.safetensors", o));
//   EASEL_TRY_ASSIGN(auto images, generate(*m, params));        // pipeline/generate.h
//   fmt::print("{}\n", m->describe());
#pragma once

#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/matmul.h"
#include "models/detect.h"
#include "pipeline/interfaces.h"
#include "runtime/param.h"
#include "sampling/diffusers_schedule.h"

namespace easel {

class PackCache;

// What loading does with Linear and conv weights a file stores in f16/bf16 where the kernels multiply f32 words
// (fp32 precision, or fast without a bf16 dot product): pack them (twice the memory, nothing to decode per call) or
// keep them as stored and widen a block at a time per call (kernels/matmul.h stored_linear_weight,
// kernels/conv2d.h stored_conv2d_weight). `--weights`.
enum class WeightLayout { Auto, Packed, Stored };
std::string_view weight_layout_name(WeightLayout w);  // "auto", "packed", "stored"
std::optional<WeightLayout> weight_layout_from_name(std::string_view s);

struct LoadOptions {
    Precision precision = Precision::F32;
    // Auto: stored, except where LoRAs are applied in place (keep_param_registry), which needs packed weights.
    WeightLayout weights = WeightLayout::Auto;
    // `--precision auto` of a server's workers: each model gets auto_precision(its path) when it loads.
    bool precision_auto = false;
    std::string vocab_path;                 // --vocab; empty: the model's own, else $EASEL_VOCAB, else the built-in one
    // What a single-file SD3 or Flux checkpoint may not carry, as ComfyUI keeps them beside it: text encoder files
    // (CLIP-L, CLIP-G, T5 in transformers' names; which is which from names and shapes) and the autoencoder (LDM or
    // diffusers names): --text-encoder, --vae. And T5's tokenizer (spiece.model, or a folder holding it):
    // --t5-tokenizer, else the model's own, else $EASEL_T5_TOKENIZER, else the built-in T5 v1.1 vocabulary.
    std::vector<std::string> component_files;
    std::string t5_tokenizer;
    // SD3 without its T5 encoder, even where the model has one (--no-t5; diffusers' text_encoder_3=None).
    bool skip_t5 = false;
    std::optional<Prediction> prediction;   // --prediction: overrides what the model's config says
    std::string variant;                    // diffusers weight variant, e.g. "fp16"
    bool with_vae_encoder = true;           // img2img and inpainting need it; inpainting models always get it
    // Folder of packed-weight caches (runtime/pack_cache.h); empty: no cache. The CLI, server and benchmark
    // pass --weight-cache or default_weight_cache_dir() ($EASEL_WEIGHT_CACHE, else ~/.cache/easel/weights).
    // Models smaller than weight_cache_min_bytes are packed every time.
    std::string weight_cache_dir;
    uint64_t weight_cache_max_bytes = 8ull << 30;
    uint64_t weight_cache_min_bytes = 64ull << 20;
    // Write a new cache file on a thread of its own (Model::weight_cache_write) instead of before returning:
    // a first load of SD 1.5 then takes ~4.5 s instead of ~14 s on the development VM, where the fdatasync of
    // 2 GB alone takes seconds; the write overlaps the first generation. The CLI, server and benchmark do this.
    bool weight_cache_write_in_background = false;
    // Weight changes applied to parameters before they are packed (LoRA and kin; runtime/param.h), in order.
    // Each one's identity() is part of the weight-cache key, so a cached model never comes back without them.
    std::vector<std::shared_ptr<const WeightAdapter>> adapters;
    // Keep a registry of the packed weights (Model::packed_params), so that LoRAs can be applied to the loaded
    // model and taken off again (pipeline/lora.h LivePatch): what `easel serve`'s workers do. It keeps every
    // weight alive, so release_conditioner() / release_diffusion_model() no longer free memory; off for the CLI.
    bool keep_param_registry = false;
    // The model's licence as the user states it (--license), over what the model names (provenance.h).
    std::string license;
    // Hash the model file (A1111's "Model hash" in infotext and XMP), remembered in hash_cache_file ("" = no
    // cache; the CLI and server use default_hash_cache_file()). Off by default: a multi-GB file takes seconds.
    bool model_hash = false;
    std::string hash_cache_file;
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

// Refuses a beta_schedule other than scaled_linear, trained_betas, and out-of-range values.
Result<SchedulerFileConfig> parse_scheduler_config(std::string_view json, const std::string& source);

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
// A recommended cfg_scale's bounds, wherever a model carries it: a number in [0, 100].
Status check_default_cfg_scale(double v, const std::string& source);

// Everything about a model but its networks' weights: what validating a request needs (sizes, capabilities, the
// scheduler config), read from configs and tensor names without loading any weight. The server's front process
// holds this while worker processes hold the whole Model.
struct ModelSpec {
    std::string path;
    std::string name;    // file or folder name without extension (A1111's "Model" infotext field)
    std::string family;  // the registered family that loaded it ("sd", ...)
    // What images made with it say about it (pipeline/provenance.h): its licence (LoadOptions::license, else what
    // the model names; "" = unknown) and AUTOMATIC1111's short hash ("" unless LoadOptions::model_hash, or a folder).
    std::string license;
    std::string short_hash;
    ModelInfo info;      // what detection found (configs of each network)
    LatentFormat latent;
    // Inpainting models take [mask, masked-image latent] concatenated to their input's channels
    // (DiffusionInputs::concat); they need the VAE encoder even for txt2img.
    bool inpainting = false;
    std::shared_ptr<const ModelSampling> sampling;  // eps / v / flow: how predictions become denoised estimates
    // Whether the model takes a guidance scale as an input (Flux dev: Distilled), and the one it is given when a
    // request names none (FLUX.1-dev's 3.5). --cfg-scale keeps its meaning (classifier-free guidance) for every model.
    GuidanceMode guidance = GuidanceMode::Classifier;
    double default_guidance = 3.5;
    // How many transformer blocks skip-layer guidance may leave out (GenerateParams::slg: indices below it); 0: the
    // diffusion model has no such hook, and skip-layer guidance is refused.
    int skippable_blocks = 0;
    // What its networks compute in (LoadOptions::precision as loaded); images made in BF16 say so in their infotext.
    Precision precision = Precision::F32;
    // What diffusers mode (--schedule-from diffusers) reads: the folder's scheduler/scheduler_config.json, or
    // SD 1.5's own scheduler_config.json for a single file (what diffusers' from_single_file uses).
    SchedulerFileConfig scheduler_config;
    ModelDefaults defaults;  // the model's recommended settings, if it carries any
    // The guidance to use when the user gives none: the model's recommended scale, else SD's 7.
    double default_cfg_scale() const { return defaults.cfg_scale.value_or(kSdDefaultCfgScale); }
    // The image side the model was trained at (512 for SD 1.x): what a request without a size gets.
    int native_image_side() const { return latent.native_side * latent.downscale; }
    std::vector<std::string> notes;
    // Whether the VAE encoder is (or, for a spec, would be) loaded: img2img and inpainting need it.
    bool has_vae_encoder = false;
    // Set by generate_once(), which drops the conditioner's and diffusion model's weights: the model cannot
    // generate again.
    bool spent = false;
};

// A loaded model. A family's class derives from it and hands out its networks through the interfaces.
struct Model : ModelSpec {
    virtual ~Model();

    virtual const Conditioner& conditioner() const = 0;
    virtual const DiffusionModel& diffusion_model() const = 0;
    virtual const Autoencoder& autoencoder() const = 0;
    // Drops the weights of the conditioner / the diffusion model (generate_once: memory of about one network at
    // a time). Afterwards the part must not be called.
    virtual void release_conditioner() = 0;
    virtual void release_diffusion_model() = 0;
    virtual std::string describe() const;

    WeightCacheUse weight_cache = WeightCacheUse::Off;
    std::string weight_cache_note;  // one line on what the cache did (also in notes); empty when Off
    // Every packed parameter by name, when loaded with LoadOptions::keep_param_registry; else null.
    std::shared_ptr<ParamRegistry> packed_params;
    // A weight cache file being written in the background (LoadOptions::weight_cache_write_in_background): true
    // when written. The packed weights it writes stay alive until it is done, and destroying the model waits for
    // it (a std::future from std::async).
    std::future<std::pair<bool, std::string>> weight_cache_write;
    // Waits for that write, if any: weight_cache becomes Written or Failed, and its note is returned ("" when
    // there was none or it was already collected).
    std::string wait_for_weight_cache();
};

// The weight cache for a family's loader: opened before the networks are declared (nullptr: no cache for this
// load), then finished once they are, which fills the model's weight_cache fields and notes.
// `what_packs` names what else decides the packed bytes besides the files, precision, ISA, variant and adapters.
struct WeightCacheSession {
    std::unique_ptr<PackCache> cache;
    std::string rebuilt;  // why an existing cache file was not used
};
WeightCacheSession open_weight_cache(const std::string& path, const LoadOptions& options, ParamLoader& loader);
void finish_weight_cache(WeightCacheSession session, const LoadOptions& options, Model& m);
// The adapters' part of the weight-cache key ("" without adapters).
std::string adapters_key(const LoadOptions& options);

// What every family's loader does around declaring its networks: a ParamLoader over `weights` with the options'
// precision and adapters and the weight cache; `declare` builds the networks into `m` from it. Fails with every
// missing or mis-shaped tensor, and with adapter targets the model lacks.
// `strict_prefix`: tensors under it that no declare() took are an error too (a checkpoint for a bigger model, or
// a block the config left out).
Status load_networks(const WeightSet& weights, const std::string& path, const LoadOptions& options, Model& m,
                     const std::function<void(ParamLoader&)>& declare, std::string_view strict_prefix = "unet.");

// A model family: how to tell its files and how to load them. Registered in one list (families()).
struct Family {
    std::string name;  // "sd", ...
    // Whether the model at `path` is this family's, from file names, tensor names and shapes and the configs
    // that travel with it (no weight data). `what` says what the family recognised, for the message when no
    // family takes a model ("an SDXL model"); empty when it recognised nothing. Errors: unreadable files.
    struct Claim {
        bool mine = false;
        std::string what;
    };
    std::function<Result<Claim>(const std::string& path)> claim;
    std::function<Result<std::unique_ptr<Model>>(const std::string& path, const LoadOptions&)> load;
    // Everything load() checks and fills but the weights.
    std::function<Result<ModelSpec>(const std::string& path, const LoadOptions&)> load_spec;
};
// The families load_model() tries, in order: those added with register_family() (tests, plugins), then the
// built-in ones.
std::vector<Family> families();
// Adds a family ahead of the built-in ones (for the rest of the process).
void register_family(Family f);

// The bytes of a model's weight files: a file's size, or every file of a folder, recursively (0: unreadable).
uint64_t model_weight_bytes(const std::string& path);
// `--precision auto`: fast (kernels/matmul.h fast_precision: bf16 only where this CPU's measurement favours it)
// for models whose weights are 64 MiB or more, where the speed matters, and F32 for smaller ones. `why` gets one
// line on the choice.
Precision auto_precision(const std::string& path, std::string* why = nullptr);

// The first family that claims `path` loads it. Errors: unreadable files, or no family takes the model (the
// message says what was recognised).
Result<std::unique_ptr<Model>> load_model(const std::string& path, const LoadOptions& options);
// The same checks and everything but the weights: what load_model would refuse, this refuses too.
Result<ModelSpec> load_model_spec(const std::string& path, const LoadOptions& options);

}  // namespace easel
