// Diffusers mode ("--schedule-from diffusers"): the sigma lists, UNet timesteps and initial-noise scale that
// diffusers v0.30.3 schedulers use, so that our k-diffusion-form samplers reproduce their loops.
//
//   DiffusersSchedulerConfig cfg;                              // SD's scheduler_config: leading, steps_offset 1
//   EASEL_TRY_ASSIGN(DiffusersPlan plan, diffusers_plan(DiffusersScheduler::DpmSolverMultistep, cfg, 20));
//   Tensor x = scaled(gen.randn({1, 4, 64, 64}), plan.init_noise_scale);
//   Denoiser d = [&](const Tensor& x, float sigma) { float t = plan.timestep_for(sigma); ... x - sigma * eps };
//   EASEL_TRY_ASSIGN(x, sample(plan.sampler, d, x, plan.sigmas, noise));
//
// Why this is exact up to float rounding: these schedulers are the k-diffusion solvers written in other
// variables. With alpha = 1/sqrt(sigma^2+1), diffusers' sample is alpha * x (VP form; EulerDiscrete & co. keep x
// and scale only the UNet input, which is the same thing); eps -> x0 is x - sigma * eps; and
//   EulerDiscreteScheduler           = euler        EulerAncestralDiscreteScheduler = euler_a (eta 1)
//   HeunDiscreteScheduler            = heun         LMSDiscreteScheduler            = lms (order 4)
//   DPMSolverMultistepScheduler (dpmsolver++, order 2, midpoint, lower_order_final, final sigma 0) = dpm++2m
// The differences lie in the sigma list (timesteps by spacing, sigma interpolated linearly in sigma at those
// timesteps, optional Karras resampling), the UNet timestep per sigma, and the starting scale: diffusers starts
// from noise * init_noise_sigma in its own variables, i.e. x = noise * sqrt(sigma_0^2 + 1) for "leading" spacing
// and for DPM-Solver (VP), noise * sigma_0 for the Euler family with "linspace"/"trailing".
// Ancestral noise: diffusers draws randn(shape, generator) per step as we do, plus one draw on the final step
// that is multiplied by 0; it changes nothing.
// DDIMScheduler (eta 0) and PNDMScheduler (skip_prk_steps, SD's default) work on the training timesteps in VP
// form and stop at alphas_cumprod[0] (set_alpha_to_one false), not at 0. In sigma form DDIM is an Euler step
// (x' = x + (sigma' - sigma) * eps), PNDM's PLMS a linear multistep on eps with a trapezoidal first step; the
// list ends at sigma_min and the result is multiplied by final_scale = sqrt(alphas_cumprod[0]) to give their
// latents. sample_diffusers() runs a plan, PLMS included. Only "leading" spacing for these two (with the others
// diffusers steps to timesteps that are not on its list).
// UniPCMultistepScheduler (bh2, order 2, predict_x0, lower_order_final, final sigma 0) has DPM-Solver's
// timesteps, sigmas and VP start; its predictor-corrector loop is sample_unipc (sampler_unipc.cpp).
// LCMScheduler (original_inference_steps 50, timestep_scaling 10) picks n of the 50 timesteps 999, 979, ..., 19
// (whatever the spacing), sigma from alphas_cumprod there, VP start; its loop is sample_lcm_diffusers: the
// consistency boundary condition, then fresh noise at the next sigma. Guidance is ordinary CFG, as
// StableDiffusionPipeline with scheduler=LCMScheduler runs it (not the guidance embedding of LCM pipelines).
// img2img: DiffusersPlan::begin_at (StableDiffusionImg2ImgPipeline), every class but PNDM.
// Inpainting (StableDiffusionInpaintPipeline, src/pipeline/generate.cpp): the same plan; ordinary UNets get the
// original blended back after each step at the next sigma through the step callback, and un-noised after the
// last step (add_noise is alpha * (x0 + sigma * noise) and the scheduler's sample alpha * x for every class
// above, so the blend is one formula in our x). Not Heun (its half steps are blended too), PNDM, UniPC (its
// corrector reads the blended sample) or LCM: no goldens for those.
// Not covered: PNDM with PRK steps; inpainting with Heun, PNDM, UniPC and LCM.
#pragma once

#include <string_view>
#include <vector>

#include "core/error.h"
#include "sampling/sampler.h"

namespace easel {

enum class DiffusersScheduler { Euler, EulerAncestral, Heun, Lms, DpmSolverMultistep, Ddim, Pndm, UniPC, Lcm };
enum class TimestepSpacing { Leading, Linspace, Trailing };

// The fields of SD 1.x's scheduler_config.json that these schedulers read (defaults = that file, with the
// "leading" spacing and steps_offset 1 its pipelines use).
struct DiffusersSchedulerConfig {
    int num_train_timesteps = 1000;
    double beta_start = 0.00085;
    double beta_end = 0.012;  // beta_schedule "scaled_linear", computed in float32 as diffusers does
    TimestepSpacing timestep_spacing = TimestepSpacing::Leading;
    int steps_offset = 1;
    bool use_karras_sigmas = false;
};

struct DiffusersPlan {
    SamplerKind sampler = SamplerKind::Euler;  // unused when plms is set
    bool plms = false;                         // PNDMScheduler: run sample_plms instead of `sampler`
    bool unipc = false;                        // UniPCMultistepScheduler: run sample_unipc instead
    bool lcm = false;                          // LCMScheduler: run sample_lcm_diffusers instead
    bool v_prediction = false;                 // the model predicts v (PNDM keeps raw v in its history)
    std::vector<float> sigmas;     // descending, ends with 0: one sampler step per pair
    std::vector<float> timesteps;  // UNet timestep for sigmas[i], i < sigmas.size() - 1
    float init_noise_scale = 1.0f; // initial x = randn * init_noise_scale (our x, see above)
    float final_scale = 1.0f;      // diffusers' latents = our final x * final_scale (DDIM/PNDM: sqrt(ac[0]))

    // The UNet timestep for a sigma the sampler asks about: the listed timestep when sigma is one of `sigmas`
    // (every call these schedulers make), otherwise -1 (the caller then falls back to sigma_to_t).
    float timestep_for(float sigma) const;

    // img2img (StableDiffusionImg2ImgPipeline, set_begin_index): drops the first t_start steps. The full list is
    // kept for LMS, whose diffusers step takes its order from the absolute step index (see sample_diffusers).
    void begin_at(int t_start);
    // denoising_end (an SDXL base handing over to its refiner): keeps the first `steps` steps; the last sigma is
    // then the refiner's first, not 0.
    void end_at(int steps);
    int begin = 0;
    std::vector<float> full_sigmas;  // before begin_at
};

Result<DiffusersPlan> diffusers_plan(DiffusersScheduler scheduler, const DiffusersSchedulerConfig& config, int steps);

// FlowMatchEulerDiscreteScheduler (diffusers 0.30; SD3), without dynamic shifting: model times
// linspace(T sigma_max, T sigma_min, steps) of its shifted training table, shifted again, as sigmas (ending in 0);
// timestep = sigma * T in float32; the Euler step x + (sigma_next - sigma) v, which k-diffusion's Euler is for a
// flow model's denoised = x - sigma v. x starts as the noise itself (init_noise_scale 1).
// `linear`: FluxPipeline's explicit sigmas, linspace(1, 1/steps, steps) shifted (its dynamic shift comes in as
// `shift` = exp(mu)).
Result<DiffusersPlan> flow_match_euler_plan(double shift, int num_train_timesteps, int steps, bool linear = false);

// Runs a plan: sample(plan.sampler, ...) or sample_plms, then multiplies by plan.final_scale. `x` is at
// plan.sigmas[0] (randn * plan.init_noise_scale for txt2img). After begin_at(t_start > 0), LMS runs as
// diffusers' LMSDiscreteScheduler does there: order min(t_start + i + 1, 4) from the first step, i.e. the
// Lagrange coefficients of that order over the full list's sigmas, applied to the derivatives there are.
Result<Tensor> sample_diffusers(const DiffusersPlan& plan, const Denoiser& denoiser, const Tensor& x, NoiseSource& noise,
                                const StepCallback& on_step = {});

// diffusers PNDMScheduler.step_plms (skip_prk_steps) in sigma form, eps = (x - denoised) / sigma:
// step 0 is Heun-like (eps averaged with the eps at the step's end, 2 calls), then Adams-Bashforth of order 2, 3,
// 4 on the eps history. One step with one call when the list has a single step. n steps = n + 1 calls (n >= 2).
Result<Tensor> sample_plms(const Denoiser& denoiser, const Tensor& x, const std::vector<float>& sigmas,
                           const StepCallback& on_step = {});
// What PNDMScheduler keeps in its history: the model's raw output. For an eps model that is eps; for a v model
// it is v, combined across steps as v and turned into eps only at the current step's sample and timestep
// (_get_prev_sample), which is not the same as combining each step's eps.
enum class PlmsHistory { Epsilon, Velocity };
Result<Tensor> sample_plms(const Denoiser& denoiser, const Tensor& x, const std::vector<float>& sigmas,
                           const StepCallback& on_step, PlmsHistory history);

// diffusers UniPCMultistepScheduler.step in sigma form (see sampler_unipc.cpp): predictor UniP of order
// min(2, i + 1, n - i) at step i, and after each new model call the corrector UniC on the previous step.
// One call per step; the last step to sigma 0 returns the denoised estimate.
Result<Tensor> sample_unipc(const Denoiser& denoiser, const Tensor& x, const std::vector<float>& sigmas,
                            const StepCallback& on_step = {});

// diffusers LCMScheduler.step in sigma form (see sampler_lcm_diffusers.cpp): one call per step, the boundary
// condition at timesteps[i], then sigmas[i + 1] * noise.randn_like(x) on every step but the last.
Result<Tensor> sample_lcm_diffusers(const Denoiser& denoiser, const Tensor& x, const std::vector<float>& sigmas,
                                    const std::vector<float>& timesteps, NoiseSource& noise,
                                    const StepCallback& on_step = {});

// "EulerDiscreteScheduler" / "euler", "EulerAncestralDiscreteScheduler" / "euler_a", "HeunDiscreteScheduler" /
// "heun", "LMSDiscreteScheduler" / "lms", "DPMSolverMultistepScheduler" / "dpm++2m" / "dpmsolver++",
// "DDIMScheduler" / "ddim", "PNDMScheduler" / "pndm" / "plms", "UniPCMultistepScheduler" / "unipc",
// "LCMScheduler" / "lcm".
Result<DiffusersScheduler> parse_diffusers_scheduler(std::string_view name);
// diffusers' class name: "EulerDiscreteScheduler", "UniPCMultistepScheduler", ...
std::string_view diffusers_scheduler_class(DiffusersScheduler scheduler);

// diffusers' float32 alphas_cumprod for the scaled_linear schedule (betas linspace in float32, cumprod
// accumulated in double as torch does on the CPU).
std::vector<float> diffusers_alphas_cumprod(const DiffusersSchedulerConfig& config);

}  // namespace easel
