// LCM, the update of diffusers' LCMScheduler (v0.30.3 scheduling_lcm.py step, prediction_type epsilon, no
// thresholding or clipping), in sigma form.
//
// diffusers works on the VP sample alpha_t * x (alpha_t = sqrt(alphas_cumprod[t])). Its step takes the
// x0 estimate D (= x - sigma * eps in our variables), applies the consistency-model boundary condition
//   denoised = c_out(t) * D + c_skip(t) * alpha_t * x,
//   c_skip = sigma_data^2 / ((10 t)^2 + sigma_data^2), c_out = 10 t / sqrt((10 t)^2 + sigma_data^2), sigma_data 0.5
// (timestep_scaling 10; the VP sample alpha_t * x is what diffusers mixes in), and moves to the next timestep with
// fresh noise: prev = sqrt(ac_prev) * denoised + sqrt(1 - ac_prev) * randn, which is x' = denoised + sigma' * randn
// in our variables. The last step returns `denoised` and draws nothing.
#include <cmath>

#include <fmt/format.h>

#include "sampling/diffusers_schedule.h"
#include "sampling/sampler_internal.h"

namespace easel {

using namespace sampling_detail;

Result<Tensor> sample_lcm_diffusers(const Denoiser& denoiser, const Tensor& x_in, const std::vector<float>& sigmas,
                                    const std::vector<float>& timesteps, NoiseSource& noise,
                                    const StepCallback& on_step) {
    EASEL_TRY(validate(x_in, sigmas, SamplerOptions{}));
    if (!denoiser) return Error::invalid_argument("no denoiser given", "sampler");
    if (timesteps.size() + 1 != sigmas.size())
        return Error::invalid_argument(fmt::format("LCM needs one timestep per step: {} sigmas, {} timesteps",
                                                   sigmas.size(), timesteps.size()),
                                       "timesteps");
    const SamplerOptions options;
    const Run r{denoiser, noise, on_step, options, sigmas};
    const double sigma_data = 0.5, timestep_scaling = 10.0;
    Tensor x = x_in.clone();
    for (int i = 0; i < r.steps(); ++i) {
        const double s = sigmas[size_t(i)], s_next = sigmas[size_t(i + 1)];
        EASEL_TRY_ASSIGN(Tensor den, r.denoise(x, s));
        const double st = double(timesteps[size_t(i)]) * timestep_scaling;
        const double c_skip = sigma_data * sigma_data / (st * st + sigma_data * sigma_data);
        const double c_out = st / std::sqrt(st * st + sigma_data * sigma_data);
        const double alpha = 1.0 / std::sqrt(s * s + 1.0);
        Tensor out = lincomb({{c_out, &den}, {c_skip * alpha, &x}});
        if (i + 1 < r.steps()) {
            EASEL_TRY_ASSIGN(Tensor n, r.fresh_noise(x));
            out = lincomb({{1.0, &out}, {s_next, &n}});
        }
        x = std::move(out);
        EASEL_TRY(r.step_done(i, x));
    }
    return x;
}

}  // namespace easel
