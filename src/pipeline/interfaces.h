// The seam between the driver (generate.h) and a model family. Every family hands the driver the same four
// parts; SD 1.x/2.x is the first (pipeline/families/sd.h), and a test registers a toy one
// (tests/unit/toy_family_test.cpp) to prove the driver knows no family.
//
//   Conditioner     prompts -> Conditioning (cross-attention context, pooled vector, extra ids; each optional)
//   DiffusionModel  predict(x, t, inputs) -> the network's raw output, in the units its ModelSampling reads
//   Autoencoder     image <-> latent (encode_moments, decode), in the LatentFormat the diffusion model works in
//   ModelSampling   eps / v / flow: the one place where an output becomes a denoised estimate, where noise is
//                   added to a latent, and where sigmas map to model time
//   Guidance        how conditional and unconditional estimates combine (pipeline/guidance.h)
//
//   EASEL_TRY_ASSIGN(ConditioningPair conds, m.conditioner().encode(c, {.prompt = "a cat", .negative = ""}));
//   float t = m.sampling->timestep(sigma);
//   EASEL_TRY_ASSIGN(Tensor out, m.diffusion_model().predict(c, m.sampling->scale_input(c, x, sigma), t, {&conds.cond}));
//   Tensor x0 = m.sampling->denoised(x, out, sigma);
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "models/common/blocks.h"
#include "models/unet/config.h"
#include "runtime/nn.h"
#include "sampling/schedule.h"

namespace easel {

// What a conditioner makes of one prompt, batch N (1 per prompt; 2 when the driver batches CFG's halves).
struct Conditioning {
    Tensor context;                 // [N, L, D] cross-attention context; undefined for a model without one
    std::optional<Tensor> pooled;   // [N, P] pooled text embedding (SDXL, SD3, Flux)
    std::optional<Tensor> ids;      // [N, K] extra conditioning numbers (SDXL's size and crop ids)
    // Per batch item, whether it is the negative prompt's (a guess-mode ControlNet leaves those alone); empty:
    // none is. make_denoiser marks the unconditional half.
    std::vector<bool> negative;
    // Image prompts (IP-Adapter): what each cross-attention block of the diffusion model adds (one entry per
    // block, in the model's own order: UNetConfig::cross_attention_blocks), keys and values [N, T, width] of
    // each adapter. Empty: none. pipeline/ip_adapter.h makes them; a model without the hook refuses them.
    std::vector<BlockExtras> extra_kv;
    // The guidance scale a guidance-distilled model takes as an input (Flux dev's guidance embedding); set by the
    // driver for models whose ModelSpec::guidance is Distilled.
    std::optional<float> guidance;
    // Blocks of the diffusion model to leave out in this call (skip-layer guidance's extra prediction; never
    // batched). Empty: none. A diffusion model without the hook refuses a non-empty list.
    std::vector<int> skip_layers;

    // `a` and `b` as one batch, a first: each field concatenated along dim 0. Both must carry the same fields
    // with the same shapes beyond the batch (a conditioner's pair does).
    static Conditioning batch(const Ctx& c, const Conditioning& a, const Conditioning& b);
    // `n` copies of `a` as one batch (the same prompt for n images sampled together); n = 1 gives `a` itself.
    static Conditioning repeat(const Ctx& c, const Conditioning& a, int n);
};

// SDXL's micro-conditioning (diffusers original_size, crops_coords_top_left, target_size): what the model is told
// about the picture's provenance. 0 = the image's own size; crop (0, 0).
struct SizeConditioning {
    int original_width = 0, original_height = 0;
    int crop_top = 0, crop_left = 0;
    int target_width = 0, target_height = 0;
    // The SDXL refiner's aesthetic score (diffusers' defaults: 6 for the prompt, 2.5 for the negative).
    double aesthetic_score = 6.0, negative_aesthetic_score = 2.5;
};

// Textual-inversion embeddings a prompt may use (pipeline/embeddings.h reads them): AUTOMATIC1111 replaces the
// tokens of an embedding's name, wherever the prompt has them, by its vectors. `vectors` by the text encoder they
// are for: "" for a one-encoder file ([n, D]: SD 1.x 768, SD 2.x 1024), "clip_l" and "clip_g" for SDXL's. A
// conditioner uses those whose width fits its encoders and ignores the rest (A1111's "skipped").
struct TextualInversion {
    std::string name;  // the file name without extension: what a prompt writes
    std::map<std::string, Tensor> vectors;
    std::string hash;  // A1111's short hash (the file's SHA-256, 12 digits): "TI hashes" in the infotext
};
struct TextualInversions {
    std::vector<TextualInversion> items;
};

struct PromptRequest {
    std::string prompt;
    std::string negative;
    // For a second text encoder (SDXL's bigG; diffusers prompt_2 / negative_prompt_2); empty: the same text.
    std::string prompt_2, negative_2;
    int clip_skip = 1;  // 1 = the model's usual layer; k stops k-1 layers earlier (A1111's "Clip skip")
    int max_sequence_length = 0;  // T5 tokens (SD3, Flux); 0: the model's default (diffusers': 256 SD3, 512 Flux)
    // Whether the unconditional half will be used (classifier-free guidance on); a conditioner whose model needs
    // no negative otherwise (Flux) may skip encoding it and hand back the conditional one.
    bool unconditional = true;
    int width = 0, height = 0;  // the image size
    SizeConditioning size;
    // An empty negative prompt as all zeros: empty = the model's own rule (diffusers' force_zeros_for_empty_prompt);
    // true in k-diffusion mode (AUTOMATIC1111 zeroes it for every SDXL model, the refiner too). Models whose
    // reference never zeroes (SD 1.x/2.x) ignore it.
    std::optional<bool> zero_empty_negative;
    // Embeddings the prompts may use (null: none).
    std::shared_ptr<const TextualInversions> embeddings;
};
// The conditional and unconditional conditionings of one request, shaped alike (a conditioner pads the shorter
// one where its model needs equal lengths).
struct ConditioningPair {
    Conditioning cond, uncond;
    std::vector<std::string> embeddings_used;  // names of the embeddings the prompts used, first use first
};

class Conditioner {
public:
    virtual ~Conditioner() = default;
    virtual Result<ConditioningPair> encode(const Ctx& c, const PromptRequest& p) const = 0;
};

// How a diffusion model's latent relates to pixels.
struct LatentFormat {
    int channels = 4;              // latent channels (what the diffusion model predicts)
    float scaling_factor = 0.18215f;
    float shift_factor = 0.0f;     // model latent = (autoencoder latent - shift) * scaling (SD3, Flux; 0 for SD 1/2)
    int downscale = 8;             // image pixels per latent pixel, per side
    int side_multiple = 1;         // each latent side must be a multiple of this (the UNet's down/up levels)
    int native_side = 64;          // the latent side the model was trained at
    int max_side = 0;              // the largest latent side the model takes (SD3: its position grid); 0: no limit

    // What each image side must be a multiple of: downscale x side_multiple, at least 8.
    int image_multiple() const { return std::max(8, downscale * side_multiple); }
};

// Everything a diffusion model call takes besides x and t. Families read the fields they know and refuse the
// ones they cannot use with an "unsupported" error (a ControlNet residual given to a model without the hook).
struct DiffusionInputs {
    const Conditioning* cond = nullptr;  // batch N, as x
    std::optional<Tensor> concat;        // [N, K, h, w] appended to x's channels (inpainting models: mask, masked latent)
    // Residuals (ControlNet): one per skip connection of the UNet in the order its down path makes them, then
    // one for the mid block's output; empty: none.
    std::vector<Tensor> control;
};

class DiffusionModel {
public:
    virtual ~DiffusionModel() = default;
    // x: [N, channels, h, w] already scaled for the model (ModelSampling::scale_input), t: the model time for
    // every item (SD: the fractional DDPM timestep) -> [N, channels, h, w], the raw prediction.
    virtual Result<Tensor> predict(const Ctx& c, const Tensor& x, float t, const DiffusionInputs& in) const = 0;
};

class Autoencoder {
public:
    virtual ~Autoencoder() = default;
    // image: [1, 3, H, W] in [-1, 1] -> (mean, logvar), each [1, channels, H / downscale, W / downscale], in the
    // autoencoder's own units (LatentFormat's scaling and shift not applied). tile: 0 = whole, else tiles of
    // that many pixels.
    virtual std::pair<Tensor, Tensor> encode_moments(const Ctx& c, const Tensor& image, int tile) const = 0;
    // z: [1, channels, h, w] in the autoencoder's units -> [1, 3, h * downscale, w * downscale] in ~[-1, 1].
    // tile: 0 = whole, else tiles of that many latent pixels.
    virtual Tensor decode(const Ctx& c, const Tensor& z, int tile) const = 0;
    virtual bool has_encoder() const = 0;
};

// eps / v / flow. sigma is k-diffusion's noise level: x = x0 + sigma * noise for eps and v models (VE form), and
// the flow time for flow models.
class ModelSampling {
public:
    virtual ~ModelSampling() = default;
    // The model's input at sigma: x * c_in (eps/v: 1 / sqrt(sigma^2 + 1); flow: 1).
    virtual float input_scale(float sigma) const = 0;
    // The model time for sigma (SD: k-diffusion's sigma_to_t on the training schedule).
    virtual float timestep(float sigma) const = 0;
    // out (the raw prediction for x) -> the denoised estimate, element by element; x and out alike in shape.
    virtual Tensor denoised(const Tensor& x, const Tensor& out, float sigma) const = 0;
    // A clean latent brought to noise level sigma with `noise` (img2img's start; eps/v: latent + sigma * noise).
    virtual Tensor noise_latent(const Ctx& c, const Tensor& latent, const Tensor& noise, float sigma) const = 0;
    // The starting x for pure noise at the first sigma (eps/v: noise * sigma).
    virtual Tensor pure_noise(const Tensor& noise, float sigma) const = 0;
    // The sigmas of a k-diffusion schedule of `steps` steps (steps + 1 values, the last 0).
    virtual Result<std::vector<float>> sigmas(ScheduleKind kind, int steps) const = 0;
    // eps or v for the diffusers schedulers' own loop (diffusers mode).
    virtual Prediction prediction() const = 0;
    // How much of the training schedule lies above sigma, in [0, 1] (AUTOMATIC1111's refiner switch compares it
    // with "Switch at": for a discrete schedule of T steps, (T - 1 - the nearest training timestep) / T).
    virtual float schedule_fraction(float sigma) const = 0;
    // ComfyUI's percent_to_sigma: the sigma a fraction of the way through the training schedule (0: above every
    // sigma, 1: 0). Discrete: t_to_sigma((1 - percent) * (T - 1)) (float32, as torch); flow: the shifted time
    // shift * t / (1 + (shift - 1) * t) at t = 1 - percent, in double as Python computes it.
    virtual double percent_to_sigma(double percent) const = 0;
    // A flow model's shift (diffusers' FlowMatchEulerDiscreteScheduler `shift`); empty for eps/v models.
    virtual std::optional<double> flow_shift() const { return std::nullopt; }
    // The model sampling for a latent of h x w, when it depends on the size (Flux's resolution-dependent shift);
    // null: this one.
    virtual std::shared_ptr<const ModelSampling> at_size(int64_t h, int64_t w) const { return nullptr; }
    // FluxPipeline's sigma list in diffusers mode and for the automatic schedule: linspace(1, 1/n, n) shifted,
    // instead of SD3's linspace over the shifted training range.
    virtual bool linear_sigmas() const { return false; }
};

// SD 1.x/2.x (and SDXL's) ModelSampling: a discrete DDPM training schedule, eps or v prediction, in k-diffusion's
// CompVisDenoiser / CompVisVDenoiser form.
class DiscreteModelSampling : public ModelSampling {
public:
    DiscreteModelSampling(DiscreteSchedule schedule, Prediction prediction)
        : schedule_(std::move(schedule)), prediction_(prediction) {}
    float input_scale(float sigma) const override;
    float timestep(float sigma) const override { return schedule_.sigma_to_t(sigma); }
    float schedule_fraction(float sigma) const override;
    double percent_to_sigma(double percent) const override;
    Tensor denoised(const Tensor& x, const Tensor& out, float sigma) const override;
    Tensor noise_latent(const Ctx& c, const Tensor& latent, const Tensor& noise, float sigma) const override;
    Tensor pure_noise(const Tensor& noise, float sigma) const override;
    Result<std::vector<float>> sigmas(ScheduleKind kind, int steps) const override;
    Prediction prediction() const override { return prediction_; }
    const DiscreteSchedule& schedule() const { return schedule_; }

private:
    DiscreteSchedule schedule_;
    Prediction prediction_;
};

// A rectified-flow model (SD3, Flux; ComfyUI's CONST model sampling with ModelSamplingDiscreteFlow): the model
// predicts a velocity v, x = (1 - sigma) * x0 + sigma * noise, so denoised = x - sigma * v; the input is not
// scaled; model time = sigma * 1000.
// diffusers' use_dynamic_shifting (Flux): shift = exp(mu), mu linear in the packed image's token count between
// (base_seq_len, base_shift) and (max_seq_len, max_shift) (FluxPipeline's calculate_shift).
struct DynamicShift {
    double base_shift = 0.5, max_shift = 1.15;
    int base_seq_len = 256, max_seq_len = 4096;
    double mu(double image_seq_len) const;
};

class FlowModelSampling : public ModelSampling {
public:
    explicit FlowModelSampling(double shift, bool linear_sigmas = false, std::optional<DynamicShift> dynamic = {})
        : schedule_(shift), linear_(linear_sigmas), dynamic_(dynamic) {}
    float input_scale(float) const override { return 1.0f; }
    float timestep(float sigma) const override { return sigma * float(schedule_.size()); }
    float schedule_fraction(float sigma) const override { return 1.0f - sigma; }
    double percent_to_sigma(double percent) const override;
    Tensor denoised(const Tensor& x, const Tensor& out, float sigma) const override;
    Tensor noise_latent(const Ctx& c, const Tensor& latent, const Tensor& noise, float sigma) const override;
    Tensor pure_noise(const Tensor& noise, float sigma) const override;
    Result<std::vector<float>> sigmas(ScheduleKind kind, int steps) const override;
    Prediction prediction() const override { return Prediction::Flow; }
    std::optional<double> flow_shift() const override { return schedule_.shift(); }
    // With dynamic shifting: the shift for an h x w latent (2x2-packed tokens: h w / 4).
    std::shared_ptr<const ModelSampling> at_size(int64_t h, int64_t w) const override;
    bool linear_sigmas() const override { return linear_; }
    const FlowSchedule& schedule() const { return schedule_; }

private:
    FlowSchedule schedule_;
    bool linear_ = false;
    std::optional<DynamicShift> dynamic_;
};

// What guidance a model takes besides classifier-free guidance (which the driver applies to any model whose CFG
// scale is not 1). Classifier: nothing else. Distilled: a guidance scale is an input of the model (Flux dev's
// guidance embedding, Conditioning::guidance; GenerateParams::guidance). None: the model was distilled to run
// without any (Flux schnell); its default CFG scale is 1.
enum class GuidanceMode { Classifier, Distilled, None };

}  // namespace easel
