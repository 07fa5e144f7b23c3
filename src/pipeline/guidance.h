// Guidance, and the k-diffusion denoiser the samplers call: x at sigma -> the guided denoised estimate.
//
//   ClassifierFreeGuidance cfg(7.0);                       // A1111's CFGDenoiser: cond and uncond in one batch
//   Denoiser d = make_denoiser(c, m, cfg, conds, hooks);   // what sample() takes (sampling/sampler.h)
//   EASEL_TRY_ASSIGN(Tensor x0, d(x, sigmas[0]));
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include "pipeline/interfaces.h"
#include "sampling/sampler.h"

namespace easel {

struct Model;

// The denoised estimate for x ([N, C, h, w]) at sigma under `cond` (batch N).
using PredictDenoised = std::function<Result<Tensor>(const Tensor& x, float sigma, const Conditioning& cond)>;

class Guidance {
public:
    virtual ~Guidance() = default;
    // The guided denoised estimate of x ([N, C, h, w], N images sampled together) at sigma, from `predict` over
    // the pair's conditionings (batch N each). `batched` is conds.cond and conds.uncond as one batch
    // (Conditioning::batch), made once per group of images by make_denoiser when batches() says so.
    virtual Result<Tensor> guide(const Ctx& c, const Tensor& x, float sigma, const ConditioningPair& conds,
                                 const Conditioning* batched, const PredictDenoised& predict) const = 0;
    // Whether guide() wants the batched conditioning.
    virtual bool batches() const = 0;
};

// Classifier-free guidance: uncond + (cond - uncond) * scale on the denoised estimates (A1111's CFGDenoiser,
// cond first in the batch). Scale 1 evaluates the conditional half alone; so does any scale <= 1 with
// `off_at_or_below_one` (diffusers: do_classifier_free_guidance = guidance_scale > 1, which SDXL Turbo's
// guidance_scale 0 relies on), while k-diffusion applies the formula to any scale (0: the unconditional estimate).
// `sequential` runs the two halves as two calls (A1111's low-memory modes): the same numbers, about half the
// activation memory.
//
// With skip layers (skip-layer guidance): at a sigma where `active` says so, and only while CFG runs, the
// conditional estimate is predicted once more with those blocks of the diffusion model left out (the prompt's half
// only), and the guided estimate becomes cfg + (cond - skipped) * scale (diffusers 0.32's StableDiffusion3Pipeline
// on the velocities; the same on denoised estimates, whose x terms cancel).
struct SkipLayers {
    std::vector<int> layers;
    double scale = 0.0;
    std::function<bool(float sigma)> active;
};

class ClassifierFreeGuidance : public Guidance {
public:
    explicit ClassifierFreeGuidance(double scale, bool sequential = false, bool off_at_or_below_one = false,
                                    std::optional<SkipLayers> skip = std::nullopt)
        : scale_(scale), sequential_(sequential), off_(scale == 1.0 || (off_at_or_below_one && scale <= 1.0)),
          skip_(std::move(skip)) {}
    Result<Tensor> guide(const Ctx& c, const Tensor& x, float sigma, const ConditioningPair& conds,
                         const Conditioning* batched, const PredictDenoised& predict) const override;
    bool batches() const override { return !off_ && !sequential_; }

private:
    double scale_;
    bool sequential_;
    bool off_;  // the conditional estimate alone
    std::optional<SkipLayers> skip_;
};

// A unit's guidance window (ControlNet and IP-Adapter units' start and end, fractions of the steps that run):
// whether it acts at the model call at `sigma`. `sigmas` is the run's schedule (steps + 1 values); a call belongs
// to the step of the last schedule sigma at or above its own.
//  - AUTOMATIC1111 (`a1111`, k-diffusion mode), as its ControlNet extension decides for ControlNets and
//    IP-Adapters alike: start <= s / S <= end, S the steps that run and s the sampler's step counter as the web
//    UI's callback leaves it: the step before for a step's first call (0 at the first step), the step itself
//    for a second call between two schedule sigmas (Heun, DPM2).
//  - diffusers (its control_guidance_start / end): step i of S acts unless i / S < start or (i + 1) / S > end.
bool in_guidance_window(const std::vector<float>& sigmas, float sigma, double start, double end, bool a1111);

// What a task (img2img, an inpainting method) adds to each model call.
struct DenoiserHooks {
    // The model's sigma -> model time, when it is not the model sampling's (diffusers mode: the scheduler's own
    // timesteps). Empty: ModelSampling::timestep.
    std::function<float(float sigma)> timestep;
    // Appended to the model input's channels for every call (inpainting models: [N, 5, h, w], one item per image
    // sampled together).
    std::optional<Tensor> concat;
    // Changes the guided estimate in place before the sampler sees it (A1111's inpainting blend).
    std::function<void(Tensor& denoised)> after_denoise;
    // Residuals for every model call (ControlNet; pipeline/controlnet.h make_control_fn): from the model's input
    // x, its time, the batch's conditioning and the sigma -> DiffusionInputs::control (empty: none this call).
    std::function<Result<std::vector<Tensor>>(const Ctx& c, const Tensor& x_in, float t, const Conditioning& cond,
                                              float sigma)>
        control;
    // Which image prompts act in the model call at a sigma (IP-Adapter guidance windows): one flag per adapter,
    // in the order of Conditioning::extra_kv's entries in each block; an adapter flagged false adds nothing.
    // Empty: every one acts.
    std::function<std::vector<bool>(float sigma)> image_prompts;
};

// The k-diffusion denoiser around the model's diffusion model: the model sampling's input scale and time,
// the prediction turned into a denoised estimate, guidance, then the hooks.
Denoiser make_denoiser(const Ctx& c, const Model& m, const Guidance& guidance, const ConditioningPair& conds,
                       const DenoiserHooks& hooks = {});

}  // namespace easel
