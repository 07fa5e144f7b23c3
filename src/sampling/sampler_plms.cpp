// PLMS (pseudo linear multistep), the update of diffusers' PNDMScheduler with skip_prk_steps (v0.30.3
// scheduling_pndm.py step_plms), in sigma form: a DDIM step from sigma to sigma' with noise estimate e is
// x' = x + (sigma' - sigma) * e, and e = (x - denoised) / sigma.
#include <cmath>
#include <deque>

#include "sampling/diffusers_schedule.h"
#include "sampling/sampler_internal.h"

namespace easel {

using namespace sampling_detail;

Result<Tensor> sample_plms(const Denoiser& denoiser, const Tensor& x_in, const std::vector<float>& sigmas,
                           const StepCallback& on_step) {
    return sample_plms(denoiser, x_in, sigmas, on_step, PlmsHistory::Epsilon);
}

Result<Tensor> sample_plms(const Denoiser& denoiser, const Tensor& x_in, const std::vector<float>& sigmas,
                           const StepCallback& on_step, PlmsHistory history) {
    EASEL_TRY(validate(x_in, sigmas, SamplerOptions{}));
    if (!denoiser) return Error::invalid_argument("no denoiser given", "sampler");
    NoNoise no_noise;
    const SamplerOptions options;
    const Run r{denoiser, no_noise, on_step, options, sigmas};
    const bool v = history == PlmsHistory::Velocity;
    // What the history holds for a call at (x, s): eps = (x - denoised) / s, or the model's raw v, recovered from
    // k-diffusion's v scalings: denoised = x / (s^2 + 1) - s v / sqrt(s^2 + 1).
    auto out_at = [&](const Tensor& x, double s) -> Result<Tensor> {
        EASEL_TRY_ASSIGN(Tensor den, r.denoise(x, s));
        if (!v) return lincomb({{1.0 / s, &x}, {-1.0 / s, &den}});
        const double k = -std::sqrt(s * s + 1.0) / s;
        return lincomb({{k, &den}, {-k / (s * s + 1.0), &x}});
    };
    // The eps a (combined) history entry stands for at (x, s): diffusers' _get_prev_sample turns a v into
    // sqrt(alphabar) v + sqrt(1 - alphabar) sample, with the step's own sample and timestep.
    auto eps_of = [&](Tensor out, const Tensor& x, double s) -> Tensor {
        if (!v) return out;
        return lincomb({{1.0 / std::sqrt(1.0 + s * s), &out}, {s / (1.0 + s * s), &x}});
    };

    Tensor x = x_in.clone();
    std::deque<Tensor> ets;  // noise estimates, oldest first, at most 4
    for (int i = 0; i < r.steps(); ++i) {
        const double s = sigmas[size_t(i)], s_next = sigmas[size_t(i + 1)];
        const double dt = s_next - s;
        EASEL_TRY_ASSIGN(Tensor e, out_at(x, s));
        if (i == 0) {
            if (r.steps() == 1) {
                const Tensor eps = eps_of(e, x, s);
                x = lincomb({{1.0, &x}, {dt, &eps}});
            } else {
                // diffusers' counter 0 and 1: a trial step, then the step redone from x with the model outputs
                // averaged over both ends (and, for v, turned into eps at x and s). Only the first output joins
                // the history.
                const Tensor eps0 = eps_of(e, x, s);
                const Tensor trial = lincomb({{1.0, &x}, {dt, &eps0}});
                EASEL_TRY_ASSIGN(Tensor e_end, out_at(trial, s_next));
                const Tensor eps = eps_of(lincomb({{0.5, &e}, {0.5, &e_end}}), x, s);
                x = lincomb({{1.0, &x}, {dt, &eps}});
            }
            ets.push_back(std::move(e));
        } else {
            ets.push_back(std::move(e));
            if (ets.size() > 4) ets.pop_front();
            const size_t n = ets.size();
            const Tensor& e1 = ets[n - 1];
            Tensor comb;
            if (n == 2) {
                comb = lincomb({{1.5, &e1}, {-0.5, &ets[n - 2]}});
            } else if (n == 3) {
                comb = lincomb({{23.0 / 12.0, &e1}, {-16.0 / 12.0, &ets[n - 2]}, {5.0 / 12.0, &ets[n - 3]}});
            } else {
                comb = lincomb({{55.0 / 24.0, &e1}, {-59.0 / 24.0, &ets[n - 2]}, {37.0 / 24.0, &ets[n - 3]},
                                {-9.0 / 24.0, &ets[n - 4]}});
            }
            const Tensor eps = eps_of(std::move(comb), x, s);
            x = lincomb({{1.0, &x}, {dt, &eps}});
        }
        EASEL_TRY(r.step_done(i, x));
    }
    return x;
}

}  // namespace easel
