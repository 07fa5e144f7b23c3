// txt2img, img2img and inpainting with a loaded model of any family (pipeline/model.h), in k-diffusion semantics
// (what AUTOMATIC1111 and ComfyUI run) or diffusers': prompt -> the model's conditioner -> guided denoiser around
// its diffusion model -> sampler -> its autoencoder's decode. Randomness follows torch's CPU generator (or
// A1111's Philox "GPU" RNG), so a seed gives the image the reference tools give.
//
//   GenerateParams p;  p.prompt = "a red circle on a blue background";  p.seed = 42;
//   EASEL_TRY_ASSIGN(auto images, generate(model, p, [](const ProgressEvent& e) { return ok(); }));
//   write_image("out.png", images[0].image, {{"parameters", images[0].infotext}});
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "io/image.h"
#include "pipeline/controlnet.h"
#include "pipeline/ip_adapter.h"
#include "pipeline/model.h"
#include "pipeline/provenance.h"
#include "sampling/sampler.h"
#include "sampling/schedule.h"

namespace easel {

enum class RngKind { Cpu, Cuda };
// Whose sampling semantics: k-diffusion's (AUTOMATIC1111, ComfyUI, stable-diffusion.cpp) or diffusers' scheduler
// classes driven by the model's scheduler_config.json (StableDiffusionPipeline).
enum class ScheduleFrom { KDiffusion, Diffusers };

// AUTOMATIC1111's "Masked content" choices, numbered as its API's inpainting_fill.
enum class MaskedContent { Fill = 0, Original = 1, LatentNoise = 2, LatentNothing = 3 };
const char* masked_content_name(MaskedContent m);  // "fill", "original", "latent noise", "latent nothing"

// Skip-layer guidance's settings (GenerateParams::slg). The window is a fraction of the schedule: in diffusers mode
// the steps i with start * steps < i < stop * steps (StableDiffusion3Pipeline), in k-diffusion mode the model calls
// whose sigma lies in [sigma(stop), sigma(start)] of the model's schedule (ComfyUI's SkipLayerGuidanceDiT with
// percent_to_sigma).
struct SkipLayerParams {
    std::vector<int> layers;
    double scale = 2.8;  // diffusers' defaults
    double start = 0.01, stop = 0.2;
};

// Skip-layer guidance's blocks as people write them ("7,8,9", spaces allowed) -> {7, 8, 9}. Errors (field
// "slg_layers"): an empty item, anything but a number from 0 to 1000.
Result<std::vector<int>> parse_slg_layers(std::string_view text);

struct GenerateParams {
    std::string prompt;
    std::string negative_prompt;
    // SDXL's second text encoder's prompts (diffusers prompt_2, negative_prompt_2); empty: the same as the first.
    std::string prompt_2, negative_prompt_2;
    int width = 512;
    int height = 512;
    int steps = 20;
    double cfg_scale = 7.0;
    // The guidance a guidance-distilled model (Flux dev) takes as its input (--guidance; Forge's
    // distilled_cfg_scale); unset: the model's default (3.5). Other models ignore it.
    std::optional<double> guidance;
    // Skip-layer guidance (SD3.5 medium's model card: layers 7, 8, 9): each step in the window also predicts the
    // prompt's estimate with these transformer blocks left out, and the result moves away from it by `slg.scale`
    // (diffusers 0.32's skip_guidance_layers, ComfyUI's SkipLayerGuidanceSD3). Needs CFG; a model whose diffusion
    // model has no such blocks refuses it. Empty layers: off.
    SkipLayerParams slg;
    // The flow shift (SD3, Flux) instead of the model's (its scheduler config's, or Flux's resolution-dependent one).
    std::optional<double> shift;
    int64_t seed = 0;  // resolved by the caller (-1 = random is a CLI/API concern)
    SamplerKind sampler = SamplerKind::EulerAncestral;  // k-diffusion mode
    ScheduleKind schedule = ScheduleKind::Default;      // Default or Karras (use_karras_sigmas) in diffusers mode
    ScheduleFrom schedule_from = ScheduleFrom::KDiffusion;
    DiffusersScheduler diffusers_scheduler = DiffusersScheduler::Euler;  // diffusers mode
    // Diffusers mode: the scheduler's timestep_spacing instead of the model's scheduler config's, as
    // `Scheduler.from_config(config, timestep_spacing="trailing")` (what SDXL-Lightning's and Hyper-SD's cards use).
    std::optional<TimestepSpacing> timestep_spacing;
    RngKind rng = RngKind::Cpu;
    int clip_skip = 1;
    int max_sequence_length = 0;  // T5 tokens (SD3, Flux: diffusers' max_sequence_length); 0: the model's default
    // Images per batch; image i uses seed + i (AUTOMATIC1111). A batch's images are sampled together, every model
    // call taking up to four 512x512 images' worth of latent at once (weights read once for all of them); each
    // image is the one its seed gives alone.
    int batch_size = 1;
    int batch_count = 1;  // batches; seeds continue across batches
    SamplerOptions sampler_options;
    // img2img: an init image (resized by the caller to width x height) and how much of the schedule runs.
    std::optional<Image> init_image;
    double denoising_strength = 0.75;
    // Inpainting (needs init_image): white = repaint, same size as the init image; blurred by mask_blur pixels
    // (A1111's default 4), "original" masked content, whole picture. Works with inpainting models (9-channel UNet)
    // and, by latent blending, with ordinary ones. In diffusers mode: StableDiffusionInpaintPipeline's semantics
    // (mask binarised at 0.5, no blur, mask_blur ignored, no paste-back; see README).
    std::optional<Image> mask;
    int mask_blur = 4;
    // A1111's "Masked content" (k-diffusion mode): what the repainted part starts from. Original: the init image;
    // Fill: the init image with the masked part filled from its surroundings (pipeline/mask.h fill_masked_area);
    // LatentNoise: the masked part of the init latent replaced by the image's noise; LatentNothing: set to 0.
    MaskedContent masked_content = MaskedContent::Original;
    // A1111's "Inpaint area: Only masked" (k-diffusion mode): the box around the (blurred) mask, grown by
    // inpaint_padding pixels and to the aspect ratio of width x height, is cut out, resized to width x height,
    // inpainted there and pasted back; the init image and mask may then have any size, and the output has theirs.
    bool inpaint_only_masked = false;
    int inpaint_padding = 32;
    // Decode (and, for img2img and inpainting, encode) in tiles of this many pixels (diffusers' enable_tiling: 512
    // for SD 1.5, 768 for SD 2.x 768-v), so large images need the memory of one tile; 0: whole. A multiple of the
    // VAE's downscale.
    int vae_tile = 0;
    // SDXL's size conditioning (ignored by models without it).
    SizeConditioning size_conditioning;
    // diffusers' "ensemble of experts" (an SDXL base handing over to its refiner; diffusers mode): the base stops
    // after the steps whose timestep is at least (1 - denoising_end) * 1000 and returns its latent as it stands...
    double denoising_end = 1.0;
    // ... and the refiner goes on from that latent (GeneratedImage::latent) with the remaining steps: the timesteps
    // below (1 - denoising_start) * 1000, no noise added, the strength not used.
    std::optional<Tensor> init_latent;
    double denoising_start = 0.0;
    bool decode = true;  // false: GeneratedImage::image is left empty (a stage whose latent goes on elsewhere)
    // The invisible watermark (pipeline/watermark.h) on images of at least 256x256 pixels: the SD 1.x/2.x scripts'
    // "StableDiffusionV1" in U for SD 1.x/2.x models, diffusers' SDXL mark for SDXL, and easel's own message in V
    // for every model. Off in the library (reference images have none); the CLI and server turn it on.
    bool watermark = false;
    // A second model that finishes each image (an SDXL refiner after its base), switched to at refiner_switch_at:
    // - k-diffusion mode, AUTOMATIC1111's "Refiner" / "Switch at": the sampler's loop goes on unchanged (sigmas,
    //   noise, its state) and, from the first model evaluation whose sigma has schedule_fraction >= switch_at,
    //   calls the refiner with the prompts encoded by the refiner; the refiner's autoencoder decodes.
    // - diffusers mode, the ensemble of experts: the base runs with denoising_end = switch_at and its latent goes,
    //   undecoded, to the refiner with denoising_start = switch_at (txt2img only).
    // Both models stay loaded (the caller owns the refiner). The infotext gets "Refiner" and "Refiner switch at".
    const Model* refiner = nullptr;
    double refiner_switch_at = 0.8;
    // The infotext's "Model" (default: the model's name; a refiner stage names the base), and fields appended to
    // it (A1111's "Refiner", "Refiner switch at").
    std::string infotext_model;
    std::vector<std::pair<std::string, std::string>> infotext_extra;
    // Textual-inversion embeddings the prompts may name (pipeline/embeddings.h); null: none.
    std::shared_ptr<const TextualInversions> embeddings;
    // ControlNets steering the sampling, each with its control image (pipeline/controlnet.h); their residuals
    // are summed.
    std::vector<ControlUnit> control;
    // IP-Adapters, each with its image encoder and reference images (pipeline/ip_adapter.h); each adds its own
    // attention over its image tokens to every cross-attention.
    std::vector<IPAdapterUnit> ip_adapters;
};

struct ProgressEvent {
    std::string phase;  // "encode", "sampling", "decode"
    int image = 0;      // 0-based index of the image being made (sampling: the first of those sampled together)
    int images = 1;
    int batch = 1;      // sampling: how many images are sampled together, image .. image + batch - 1
    int step = 0;       // within the phase
    int total = 0;
    double elapsed_s = 0;
    const Tensor* latent = nullptr;  // sampling only: the current x of the `batch` images (for previews)
};
// Returning an error (e.g. Error::cancelled()) stops generation with that error.
using ProgressFn = std::function<Status(const ProgressEvent&)>;

// AUTOMATIC1111's Skip and Interrupt, polled after every sampler step: both stop sampling the current image (all
// the images sampled together with it, as A1111 stops its batch) and decode the latent reached so far (the
// current x, not yet fully denoised); Skip then goes on with the next image, Interrupt returns the images made
// so far.
enum class StopRequest { None, Skip, Interrupt };
using StopFn = std::function<StopRequest()>;

struct GeneratedImage {
    Image image;
    int64_t seed = 0;
    std::string infotext;  // AUTOMATIC1111's `parameters` text
    // What to write into its file: the infotext and the XMP packet (pipeline/provenance.h); write_image(path,
    // g.image, g.metadata).
    TextChunks metadata;
    Provenance provenance;  // what the metadata says, for a C2PA manifest (write_provenance_image)
    std::string watermark;  // what it carries ("StableDiffusionV1 (U), easel (V)"), or why none
    Tensor latent;         // the sampler's final x0 (before decoding), [1, C, h, w]
};

// Checks what a request can get wrong before any work: sizes (multiples of the model's
// LatentFormat::image_multiple(), within limits), steps, CFG, batch, strength, init image size.
// `refiner`: the refiner's spec when p.refiner is not loaded yet (a server checks a request before its worker loads
// the refiner); default: p.refiner.
Status validate_params(const GenerateParams& p, const ModelSpec& m, const ModelSpec* refiner = nullptr);

Result<std::vector<GeneratedImage>> generate(const Model& m, const GenerateParams& p, const ProgressFn& progress = {},
                                             const StopFn& stop = {});

// The CLI's one-shot form of generate(): the same images, and each network's weights are dropped as soon as
// this call no longer needs them (the conditioner once the prompts are encoded, the diffusion model after the
// last image is sampled), so that memory holds about one network at a time; the two CFG halves run one after
// the other (ClassifierFreeGuidance's sequential mode: the same numbers, half the activations). Afterwards `m`
// is spent: a further generate() on it fails with a clear error (load the model again).
Result<std::vector<GeneratedImage>> generate_once(Model& m, const GenerateParams& p, const ProgressFn& progress = {},
                                                  const StopFn& stop = {});

// Lower-level pieces, exposed for tests and the server.
// [N, 3, H, W] in [-1, 1] -> RGB image (the first item), rounding as diffusers' numpy_to_pil does.
Image tensor_to_image(const Tensor& x, int index = 0);
// RGB(A) image -> [1, 3, H, W] in [-1, 1].
Tensor image_to_tensor(const Image& img);

std::string sampler_display_name(SamplerKind k);    // A1111's: "Euler a", "DPM++ 2M", ...
std::string sampler_display_name(DiffusersScheduler k);  // the same names for diffusers' classes; "PNDM"
std::string schedule_display_name(ScheduleKind k);  // A1111's "Schedule type": "Automatic", "Karras", ...

}  // namespace easel
