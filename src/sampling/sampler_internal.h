// Shared pieces of the sampler implementations (not a public header).
#pragma once

#include <initializer_list>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "sampling/sampler.h"

namespace easel::sampling_detail {

// Everything one sampler run needs: the denoiser wrapped with a shape check, the callback, the noise.
struct Run {
    const Denoiser& denoiser;
    NoiseSource& noise;
    const StepCallback& on_step;
    const SamplerOptions& options;
    const std::vector<float>& sigmas;
    int steps() const { return int(sigmas.size()) - 1; }

    Result<Tensor> denoise(const Tensor& x, double sigma) const;
    Status step_done(int i, const Tensor& x) const;  // i is the 0-based step just finished
    Result<Tensor> fresh_noise(const Tensor& like) const;                       // NoiseSource::randn_like, checked
    Result<Tensor> sde_noise(const Tensor& like, double sigma, double sigma_next) const;
};

// The noise source of the deterministic diffusers-mode loops (PLMS, UniPC, LMS from a begin index), which draw
// none: Run needs one.
struct NoNoise final : NoiseSource {
    Tensor randn_like(const Tensor& x) override { return Tensor::zeros(x.shape()); }
};

// The checks sample() applies to its inputs (latent, sigma list, options).
Status validate(const Tensor& x, const std::vector<float>& sigmas, const SamplerOptions& options);

// sum_k a_k * t_k elementwise, accumulated in double and rounded once (all tensors share one shape).
Tensor lincomb(std::initializer_list<std::pair<double, const Tensor*>> terms);

// k-diffusion get_ancestral_step: (sigma_down, sigma_up) for a step from sigma_from to sigma_to.
std::pair<double, double> ancestral_step(double sigma_from, double sigma_to, double eta);

Result<Tensor> run_euler(const Run& r, Tensor x);
Result<Tensor> run_euler_ancestral(const Run& r, Tensor x);
Result<Tensor> run_heun(const Run& r, Tensor x);
Result<Tensor> run_dpm2(const Run& r, Tensor x);
Result<Tensor> run_lms(const Run& r, Tensor x);
Result<Tensor> run_lcm(const Run& r, Tensor x);
Result<Tensor> run_dpmpp_2m(const Run& r, Tensor x);
Result<Tensor> run_dpmpp_2m_sde(const Run& r, Tensor x);
Result<Tensor> run_dpmpp_sde(const Run& r, Tensor x);

}  // namespace easel::sampling_detail
