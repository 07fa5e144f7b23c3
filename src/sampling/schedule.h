// Noise schedules: the sigma lists samplers walk down, and the map between sigma and the UNet's timestep.
//
//   DiscreteSchedule sd = DiscreteSchedule::stable_diffusion();             // SD 1.x/2.x/XL training schedule
//   EASEL_TRY_ASSIGN(std::vector<float> sigmas, make_sigmas(ScheduleKind::Karras, sd, 20));  // 21 values, last 0
//   float t = sd.sigma_to_t(sigmas[3]);      // fractional timestep for the UNet call (k-diffusion semantics)
//   EASEL_TRY_ASSIGN(ScheduleKind k, parse_schedule_name("sgm_uniform"));
//
// Semantics follow k-diffusion v0.0.16 (the version AUTOMATIC1111 pins: external.DiscreteSchedule,
// sampling.get_sigmas_*) and ComfyUI (comfy/samplers.py simple/ddim_uniform/normal(sgm) schedulers,
// comfy_extras/nodes_align_your_steps.py). Every list is descending and ends with 0, so a list of n + 1 values
// is n sampler steps. Values are float32, as those libraries hand them to the sampler; where they compute in
// float32 torch ops we compute in double and round once, so results agree to ~1 ulp (not bit for bit).
#pragma once

#include <string_view>
#include <vector>

#include "core/error.h"

namespace easel {

// A model's discrete training schedule in k-diffusion form: sigma(t) = sqrt((1 - alphas_cumprod[t]) /
// alphas_cumprod[t]) for t = 0 .. num_train_timesteps-1, ascending.
class DiscreteSchedule {
public:
    // SD's "scaled_linear" betas: linspace(sqrt(beta_start), sqrt(beta_end), n)^2 in float64 (as the original
    // LDM code builds them), alphas_cumprod accumulated in float64 and stored as float32, sigmas computed from
    // those float32 values in float32 (k-diffusion's CompVisDenoiser), log-sigmas from them.
    static DiscreteSchedule scaled_linear(int num_train_timesteps, double beta_start, double beta_end);
    static DiscreteSchedule stable_diffusion() { return scaled_linear(1000, 0.00085, 0.012); }

    const std::vector<float>& sigmas() const { return sigmas_; }          // ascending, index = timestep
    const std::vector<float>& alphas_cumprod() const { return alphas_cumprod_; }
    int size() const { return int(sigmas_.size()); }
    float sigma_min() const { return sigmas_.front(); }
    float sigma_max() const { return sigmas_.back(); }

    // k-diffusion DiscreteSchedule.sigma_to_t (quantize=False): linear interpolation in log-sigma between the two
    // neighbouring training sigmas, clamped to [0, size-1]. The UNet is called with this fractional timestep.
    float sigma_to_t(float sigma) const;
    // ComfyUI's ModelSamplingDiscrete.timestep / k-diffusion quantize=True: the index of the nearest log-sigma.
    int sigma_to_t_quantized(float sigma) const;
    // The index of the training sigma nearest to `sigma` in sigma itself (not log-sigma), the first on a tie:
    // AUTOMATIC1111's refiner switch (argmin |sigmas - sigma|).
    int nearest_timestep(float sigma) const;
    // k-diffusion t_to_sigma: exp of the log-sigma interpolated at fractional t (t clamped to [0, size-1]).
    float t_to_sigma(float t) const;

private:
    std::vector<float> alphas_cumprod_;
    std::vector<float> sigmas_;
    std::vector<float> log_sigmas_;
};

enum class ScheduleKind {
    Default,      // k-diffusion get_sigmas(n): t = linspace(T-1, 0, n) -> sigma (A1111 "Automatic", ComfyUI "normal")
    Karras,       // Karras et al. 2022, rho = 7, between the model's sigma_min and sigma_max
    Exponential,  // uniform in log sigma between sigma_max and sigma_min
    SgmUniform,   // ComfyUI sgm_uniform: t = linspace(T-1, 0, n+1) without its last point
    Simple,       // ComfyUI simple: every (T/n)-th training sigma from the top
    DdimUniform,  // ComfyUI ddim_uniform: training sigmas 1, 1+T//n, ... reversed
    AlignYourSteps,  // NVIDIA AYS list for SD 1.5 (10 steps), log-linearly resampled to n steps as ComfyUI does
    AlignYourStepsXL,  // the same for SDXL
};

// n sampler steps -> n + 1 sigmas (DdimUniform may give more steps when T is not a multiple of n, as ComfyUI
// does). Errors: n < 1 or n > 10000.
Result<std::vector<float>> make_sigmas(ScheduleKind kind, const DiscreteSchedule& schedule, int steps);

// A rectified-flow training schedule (SD3, Flux) as ComfyUI's ModelSamplingDiscreteFlow and diffusers'
// FlowMatchEulerDiscreteScheduler define it: sigma(t) = shift * t / (1 + (shift - 1) * t) for t = i / T,
// i = 1 .. T (T = 1000), model time = sigma * T. Sigma runs from sigma(1/T) (0.0029940 at shift 3) to 1.
class FlowSchedule {
public:
    explicit FlowSchedule(double shift = 1.0, int num_train_timesteps = 1000);
    double shift() const { return shift_; }
    int size() const { return int(sigmas_.size()); }
    const std::vector<float>& sigmas() const { return sigmas_; }  // ascending, float32 as torch holds them
    float sigma_min() const { return sigmas_.front(); }
    float sigma_max() const { return sigmas_.back(); }
    // sigma(t / T) for a model time t, computed in double and rounded once.
    float sigma_at(double t) const;

private:
    double shift_;
    int train_ = 1000;
    std::vector<float> sigmas_;
};

// k-diffusion-style lists over a flow schedule, as ComfyUI's schedulers compute them with that model sampling:
// Default = "normal" (model times linspace(T sigma_max, T sigma_min, n), then sigma(t); the same list as
// diffusers' FlowMatchEulerDiscreteScheduler.set_timesteps), SgmUniform, Simple, Karras and Exponential (between
// sigma_min and sigma_max). DdimUniform and the AYS lists are SD's and are refused.
Result<std::vector<float>> make_flow_sigmas(ScheduleKind kind, const FlowSchedule& schedule, int steps);

// The building blocks, for callers with their own sigma range (n >= 1; each returns n + 1 values).
std::vector<float> karras_sigmas(int n, float sigma_min, float sigma_max, double rho = 7.0);
std::vector<float> exponential_sigmas(int n, float sigma_min, float sigma_max);

// "karras", "Karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "ays", "ays_xl", "normal" /
// "default" / "automatic" (k-diffusion get_sigmas).
Result<ScheduleKind> parse_schedule_name(std::string_view name);
const char* schedule_name(ScheduleKind kind);

}  // namespace easel
