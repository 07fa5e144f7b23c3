// Samplers: k-diffusion's solvers as pure functions of a denoiser callback, a starting latent and a sigma list.
//
//   Denoiser denoise = [&](const Tensor& x, float sigma) -> Result<Tensor> { return model_x0(x, sigma); };
//   std::vector<float> sigmas = make_sigmas(ScheduleKind::Karras, DiscreteSchedule::stable_diffusion(), 20).value();
//   Tensor x = scaled(gen.randn({1, 4, 64, 64}), sigmas[0]);            // the caller scales noise by sigmas[0]
//   TorchCpuNoise noise(gen);
//   EASEL_TRY_ASSIGN(Tensor x0, sample(SamplerKind::DpmPP2M, denoise, x, sigmas, noise, on_step));
//
// Conventions (k-diffusion, "Karras" form): x at noise level sigma is data + sigma * noise (no VP scaling); the
// denoiser returns its estimate of the clean data x0 for (x, sigma), whatever the model predicts internally
// (eps, v: the model wrapper converts, and chooses the UNet timestep with DiscreteSchedule::sigma_to_t).
// `sigmas` is descending and normally ends with 0; one step per consecutive pair. The result is the last x.
//
// Semantics follow k-diffusion v0.0.16 sampling.py (the version AUTOMATIC1111 pins), defaults as there:
//   euler        sample_euler (s_churn = 0)              1 call/step
//   euler_a      sample_euler_ancestral (eta, s_noise)   1 call/step, noise when sigma_next > 0
//   heun         sample_heun                             2 calls/step (1 on the last step to 0)
//   dpm2         sample_dpm_2                            2 calls/step (1 on the last step to 0)
//   lms          sample_lms (order 4; coefficients by numerical integration, as scipy.integrate.quad does)
//   dpm++2m      sample_dpmpp_2m
//   dpm++2m_sde  sample_dpmpp_2m_sde (midpoint, eta)     noise via NoiseSource::sde_noise (see noise.h)
//   dpm++sde     sample_dpmpp_sde (r = 1/2, eta)         2 calls and 2 noise draws per step
//   ddim         DDIM with eta = 0 in sigma form, which is exactly an Euler step; ComfyUI's "ddim" runs
//                sample_euler. Pair it with ScheduleKind::DdimUniform for the classic timestep spacing.
//   lcm          ComfyUI sample_lcm: x = denoised, plus sigma_next * fresh noise while sigma_next > 0
#pragma once

#include <functional>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "sampling/noise.h"

namespace easel {

// x (F32, contiguous, any shape) at noise level sigma -> the denoised estimate of x0, same shape.
using Denoiser = std::function<Result<Tensor>(const Tensor& x, float sigma)>;
// Called after each step with the 1-based step number, the step count and the updated x. Returning an error
// stops sampling and sample() returns that error (use Error::cancelled() to cancel). x is the sampler's own
// state, not a copy: writing into its data (Tensor::data is a view) changes what the next step starts from,
// which is how diffusers-mode inpainting blends the original back in after each step.
using StepCallback = std::function<Status(int step, int total, const Tensor& x)>;

enum class SamplerKind { Euler, EulerAncestral, Heun, Dpm2, Lms, DpmPP2M, DpmPP2MSde, DpmPPSde, Ddim, Lcm };

struct SamplerOptions {
    double eta = 1.0;      // ancestral / SDE noise amount (euler_a, dpm++2m_sde, dpm++sde); 0 = deterministic
    double s_noise = 1.0;  // noise multiplier (same samplers)
    int lms_order = 4;     // 1..4
    double dpmpp_sde_r = 0.5;  // dpm++sde intermediate point, in (0, 1]
    // The model is a rectified flow (x = (1 - sigma) x0 + sigma noise; the driver sets this from its model
    // sampling): euler_a then takes ComfyUI's sample_euler_ancestral_RF step. The SDE samplers and lcm refuse it.
    bool flow = false;
};

// Runs `kind` from x (which is at noise level sigmas[0]) down the list. Errors: x not F32 contiguous, sigmas
// with fewer than 2 values, negative or non-finite sigmas, a sigma of 0 anywhere but the end, bad options,
// a denoiser that fails or returns another shape, a callback that returns an error.
Result<Tensor> sample(SamplerKind kind, const Denoiser& denoiser, const Tensor& x, const std::vector<float>& sigmas,
                      NoiseSource& noise, const StepCallback& on_step = {}, const SamplerOptions& options = {});

// How many times `kind` calls the denoiser for this sigma list (for progress bars and cost estimates).
int denoiser_calls(SamplerKind kind, const std::vector<float>& sigmas);

// Accepts our names and the spellings AUTOMATIC1111 / ComfyUI / k-diffusion use: "euler_a", "k_euler_a",
// "Euler a", "euler_ancestral", "DPM++ 2M", "dpmpp_2m", "dpm++2m", "DPM++ 2M SDE", "DPM++ SDE", "LMS", "DDIM",
// "LCM", "DPM2", "Heun"...  Case, spaces, '-' and '_' are ignored where unambiguous.
Result<SamplerKind> parse_sampler_name(std::string_view name);
const char* sampler_name(SamplerKind kind);  // our canonical name: "euler_a", "dpm++2m", ...

// k-diffusion linear_multistep_coeff(order, sigmas, i, j): the integral over [sigmas[i], sigmas[i+1]] of the
// Lagrange basis polynomial j through sigmas[i], sigmas[i-1], ..., sigmas[i-order+1]. Needs order-1 <= i.
double lms_coefficient(int order, const std::vector<float>& sigmas, int i, int j);

// x * s as a new tensor (e.g. the initial noise times sigmas[0]).
Tensor scaled(const Tensor& x, float s);

}  // namespace easel
