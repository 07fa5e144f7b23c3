// PLMS (pseudo linear multistep), the update of diffusers' PNDMScheduler with skip_prk_steps (v0.30.3
// scheduling_pndm.py step_plms), in sigma form: a DDIM step from sigma to sigma' with noise estimate e is
// x' = x + (sigma' - sigma) * e, and e = (x - denoised) / sigma.
#include <deque>

#include "sampling/diffusers_schedule.h"
#include "sampling/sampler_internal.h"

namespace easel {

using namespace sampling_detail;

Result<Tensor> sample_plms(const Denoiser& denoiser, const Tensor& x_in, const std::vector<float>& sigmas,
                           const StepCallback& on_step) {
    EASEL_TRY(validate(x_in, sigmas, SamplerOptions{}));
    if (!denoiser) return Error::invalid_argument("no denoiser given", "sampler");
    NoNoise no_noise;
    const SamplerOptions options;
    const Run r{denoiser, no_noise, on_step, options, sigmas};
    auto eps_at = [&](const Tensor& x, double s) -> Result<Tensor> {
        EASEL_TRY_ASSIGN(Tensor den, r.denoise(x, s));
        return lincomb({{1.0 / s, &x}, {-1.0 / s, &den}});
    };

    Tensor x = x_in.clone();
    std::deque<Tensor> ets;  // noise estimates, oldest first, at most 4
    for (int i = 0; i < r.steps(); ++i) {
        const double s = sigmas[size_t(i)], s_next = sigmas[size_t(i + 1)];
        const double dt = s_next - s;
        EASEL_TRY_ASSIGN(Tensor e, eps_at(x, s));
        if (i == 0) {
            if (r.steps() == 1) {
                x = lincomb({{1.0, &x}, {dt, &e}});
            } else {
                // diffusers' counter 0 and 1: a trial step, then the step redone with the eps averaged over both
                // ends. Only the first eps joins the history.
                const Tensor trial = lincomb({{1.0, &x}, {dt, &e}});
                EASEL_TRY_ASSIGN(Tensor e_end, eps_at(trial, s_next));
                x = lincomb({{1.0, &x}, {0.5 * dt, &e}, {0.5 * dt, &e_end}});
            }
            ets.push_back(std::move(e));
        } else {
            ets.push_back(std::move(e));
            if (ets.size() > 4) ets.pop_front();
            const size_t n = ets.size();
            const Tensor& e1 = ets[n - 1];
            if (n == 2) {
                x = lincomb({{1.0, &x}, {dt * 1.5, &e1}, {dt * -0.5, &ets[n - 2]}});
            } else if (n == 3) {
                x = lincomb({{1.0, &x}, {dt * 23.0 / 12.0, &e1}, {dt * -16.0 / 12.0, &ets[n - 2]},
                             {dt * 5.0 / 12.0, &ets[n - 3]}});
            } else {
                x = lincomb({{1.0, &x}, {dt * 55.0 / 24.0, &e1}, {dt * -59.0 / 24.0, &ets[n - 2]},
                             {dt * 37.0 / 24.0, &ets[n - 3]}, {dt * -9.0 / 24.0, &ets[n - 4]}});
            }
        }
        EASEL_TRY(r.step_done(i, x));
    }
    return x;
}

}  // namespace easel
