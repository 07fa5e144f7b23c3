// UniPC, the update of diffusers' UniPCMultistepScheduler as SD pipelines build it (v0.30.3
// scheduling_unipc_multistep.py: solver_order 2, predict_x0, solver_type "bh2", lower_order_final,
// disable_corrector [], final_sigmas_type "zero"), in sigma form.
//
// diffusers works on the VP sample alpha * x with lambda = log(alpha) - log(sigma_vp); in our variables
// lambda = -log(sigma) and every step divides by alpha_t, so a data-prediction step from s to t reads
//   x_t = (sigma_t / sigma_s) * x_s - expm1(-h) * m0 - B(h) * res,   h = lambda_t - lambda_s, B(h) = expm1(-h)
// where m0 is the denoised estimate at s and res the higher-order term built from earlier estimates:
//   predictor UniP (multistep_uni_p_bh_update), order 2: res = 0.5 * D1, D1 = (m_prev - m0) / r,
//     r = (lambda_prev - lambda_s) / h;
//   corrector UniC (multistep_uni_c_bh_update): after the model has been evaluated at the predicted x_t, the step
//     s -> t is redone with the new estimate m_t: res = rho_c . [D1s..., m_t - m0], rho_c = 0.5 for order 1, else
//     the solution of R rho = b (R's rows r^(k-1), b_k = k! * h_phi_k / B(h), h_phi_(k+1) = h_phi_k / hh - 1/(k+1)!,
//     hh = -h, h_phi_1 = expm1(hh) / hh - 1).
// The model estimate stored for a step comes from the *predicted* x (diffusers converts the model output with the
// sample it was given, then corrects that sample). Order at step i of n: min(2, i + 1, n - i) (warm-up, then
// lower_order_final); the corrector of step i uses the order of step i - 1's predictor. The last step to sigma 0
// has order 1 and lands exactly on the estimate (expm1(-inf) = -1).
#include <cmath>

#include "sampling/diffusers_schedule.h"
#include "sampling/sampler_internal.h"

namespace easel {

using namespace sampling_detail;

namespace {

double lambda_of(double sigma) { return sigma > 0 ? -std::log(sigma) : INFINITY; }

// The coefficients b_1..b_order of the UniP/UniC linear system (the loop over factorial_i in diffusers).
std::vector<double> unipc_b(double hh, int order) {
    const double b_h = std::expm1(hh);  // bh2
    double h_phi_k = std::expm1(hh) / hh - 1.0;
    double factorial = 1.0;
    std::vector<double> b;
    for (int k = 1; k <= order; ++k) {
        b.push_back(h_phi_k * factorial / b_h);
        factorial *= double(k + 1);
        h_phi_k = h_phi_k / hh - 1.0 / factorial;
    }
    return b;
}

}  // namespace

Result<Tensor> sample_unipc(const Denoiser& denoiser, const Tensor& x_in, const std::vector<float>& sigmas,
                            const StepCallback& on_step) {
    EASEL_TRY(validate(x_in, sigmas, SamplerOptions{}));
    if (!denoiser) return Error::invalid_argument("no denoiser given", "sampler");
    NoNoise no_noise;
    const SamplerOptions options;
    const Run r{denoiser, no_noise, on_step, options, sigmas};
    const int n = r.steps();
    auto sigma = [&](int i) { return double(sigmas[size_t(i)]); };
    auto lambda = [&](int i) { return lambda_of(sigma(i)); };

    Tensor x = x_in.clone();
    Tensor last_x;               // x at the previous step, after its correction (diffusers' last_sample)
    std::vector<Tensor> models;  // denoised estimates, one per step so far
    int last_order = 0;
    for (int i = 0; i < n; ++i) {
        EASEL_TRY_ASSIGN(Tensor den, r.denoise(x, sigma(i)));
        if (i > 0) {
            // UniC: redo the step i-1 -> i with the estimate at i, from last_x.
            const Tensor& m0 = models[size_t(i - 1)];
            const double h = lambda(i) - lambda(i - 1), hh = -h;
            const double b_h = std::expm1(hh);
            const Tensor d1_t = lincomb({{1.0, &den}, {-1.0, &m0}});
            if (last_order == 1) {
                x = lincomb({{sigma(i) / sigma(i - 1), &last_x}, {-b_h, &m0}, {-b_h * 0.5, &d1_t}});
            } else {
                const double rk = (lambda(i - 2) - lambda(i - 1)) / h;
                const std::vector<double> b = unipc_b(hh, 2);
                // [[1, 1], [rk, 1]] rho = b
                const double rho0 = (b[0] - b[1]) / (1.0 - rk), rho1 = b[0] - rho0;
                const Tensor d1 = lincomb({{1.0 / rk, &models[size_t(i - 2)]}, {-1.0 / rk, &m0}});
                x = lincomb({{sigma(i) / sigma(i - 1), &last_x}, {-b_h, &m0}, {-b_h * rho0, &d1}, {-b_h * rho1, &d1_t}});
            }
        }
        models.push_back(std::move(den));
        const Tensor& m0 = models.back();

        // UniP: step i -> i+1.
        const int order = std::min({2, i + 1, n - i});
        const double h = lambda(i + 1) - lambda(i), hh = -h;
        const double b_h = std::expm1(hh);
        const double ratio = sigma(i + 1) / sigma(i);  // 0 on the last step to sigma 0
        Tensor next;
        if (order == 1) {
            next = lincomb({{ratio, &x}, {-b_h, &m0}});
        } else {
            const double rk = (lambda(i - 1) - lambda(i)) / h;
            const Tensor& m1 = models[size_t(i - 1)];
            // rho_p = 0.5 for order 2: res = 0.5 * (m1 - m0) / rk
            next = lincomb({{ratio, &x}, {-b_h, &m0}, {-b_h * 0.5 / rk, &m1}, {b_h * 0.5 / rk, &m0}});
        }
        last_x = std::move(x);
        x = std::move(next);
        last_order = order;
        EASEL_TRY(r.step_done(i, x));
    }
    return x;
}

}  // namespace easel
