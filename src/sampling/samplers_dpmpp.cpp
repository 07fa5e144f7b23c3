// DPM-Solver++ samplers in k-diffusion v0.0.16 form (sampling.py sample_dpmpp_2m, sample_dpmpp_2m_sde with
// solver_type='midpoint', sample_dpmpp_sde). They work in t = -log(sigma); sigma_fn(t) = exp(-t).
#include <cmath>

#include "sampling/sampler_internal.h"

namespace easel::sampling_detail {

Result<Tensor> run_dpmpp_2m(const Run& r, Tensor x) {
    Tensor old_den;
    for (int i = 0; i < r.steps(); ++i) {
        const double s = r.sigmas[size_t(i)], s_next = r.sigmas[size_t(i + 1)];
        EASEL_TRY_ASSIGN(Tensor den, r.denoise(x, s));
        if (s_next == 0) {
            // (sigma_fn(t_next)/sigma_fn(t)) * x - expm1(-h) * den with t_next = inf: exactly den.
            x = den;
        } else {
            const double t = -std::log(s), t_next = -std::log(s_next);
            const double h = t_next - t;
            const double ratio = s_next / s;
            const double em = -std::expm1(-h);  // 1 - sigma_next/sigma
            if (!old_den.defined() || old_den.numel() == 0) {
                x = lincomb({{ratio, &x}, {em, &den}});
            } else {
                const double h_last = t - (-std::log(double(r.sigmas[size_t(i - 1)])));
                const double rr = h_last / h;
                const double a = 1.0 + 1.0 / (2.0 * rr), b = 1.0 / (2.0 * rr);
                x = lincomb({{ratio, &x}, {em * a, &den}, {-em * b, &old_den}});
            }
        }
        old_den = std::move(den);
        EASEL_TRY(r.step_done(i, x));
    }
    return x;
}

Result<Tensor> run_dpmpp_2m_sde(const Run& r, Tensor x) {
    const double eta = r.options.eta;
    Tensor old_den;
    double h_last = 0.0;
    bool have_old = false;
    for (int i = 0; i < r.steps(); ++i) {
        const double s = r.sigmas[size_t(i)], s_next = r.sigmas[size_t(i + 1)];
        EASEL_TRY_ASSIGN(Tensor den, r.denoise(x, s));
        double h = h_last;
        if (s_next == 0) {
            x = den;  // denoising step
        } else {
            const double t = -std::log(s), t_s = -std::log(s_next);
            h = t_s - t;
            const double eta_h = eta * h;
            const double em = -std::expm1(-h - eta_h);
            const double cx = s_next / s * std::exp(-eta_h);
            if (!have_old) {
                x = lincomb({{cx, &x}, {em, &den}});
            } else {
                const double rr = h_last / h;
                const double c = 0.5 * em * (1.0 / rr);  // midpoint correction on (den - old_den)
                x = lincomb({{cx, &x}, {em + c, &den}, {-c, &old_den}});
            }
            if (eta != 0.0) {
                EASEL_TRY_ASSIGN(Tensor n, r.sde_noise(x, s, s_next));
                const double cn = s_next * std::sqrt(-std::expm1(-2.0 * eta_h)) * r.options.s_noise;
                x = lincomb({{1.0, &x}, {cn, &n}});
            }
        }
        old_den = std::move(den);
        have_old = true;
        h_last = h;
        EASEL_TRY(r.step_done(i, x));
    }
    return x;
}

Result<Tensor> run_dpmpp_sde(const Run& r, Tensor x) {
    const double eta = r.options.eta, rr = r.options.dpmpp_sde_r;
    auto sigma_fn = [](double t) { return std::exp(-t); };
    auto t_fn = [](double sigma) { return -std::log(sigma); };
    for (int i = 0; i < r.steps(); ++i) {
        const double s = r.sigmas[size_t(i)], s_next = r.sigmas[size_t(i + 1)];
        EASEL_TRY_ASSIGN(Tensor den, r.denoise(x, s));
        if (s_next == 0) {
            const double c = (s_next - s) / s;  // Euler: x + (x - den)/s * dt
            x = lincomb({{1.0 + c, &x}, {-c, &den}});
        } else {
            const double t = t_fn(s), t_next = t_fn(s_next);
            const double h = t_next - t;
            const double t_mid = t + h * rr;
            const double fac = 1.0 / (2.0 * rr);

            // Step 1: to the intermediate point, with its share of the noise.
            auto [sd1, su1] = ancestral_step(sigma_fn(t), sigma_fn(t_mid), eta);
            const double s1 = t_fn(sd1);
            Tensor x2 = lincomb({{sigma_fn(s1) / sigma_fn(t), &x}, {-std::expm1(t - s1), &den}});
            EASEL_TRY_ASSIGN(Tensor n1, r.sde_noise(x, sigma_fn(t), sigma_fn(t_mid)));
            x2 = lincomb({{1.0, &x2}, {r.options.s_noise * su1, &n1}});
            EASEL_TRY_ASSIGN(Tensor den2, r.denoise(x2, sigma_fn(t_mid)));

            // Step 2: the full step with the blended denoised estimate.
            auto [sd2, su2] = ancestral_step(sigma_fn(t), sigma_fn(t_next), eta);
            const double t_next2 = t_fn(sd2);
            const double e2 = -std::expm1(t - t_next2);
            x = lincomb({{sigma_fn(t_next2) / sigma_fn(t), &x}, {e2 * (1.0 - fac), &den}, {e2 * fac, &den2}});
            EASEL_TRY_ASSIGN(Tensor n2, r.sde_noise(x, sigma_fn(t), sigma_fn(t_next)));
            x = lincomb({{1.0, &x}, {r.options.s_noise * su2, &n2}});
        }
        EASEL_TRY(r.step_done(i, x));
    }
    return x;
}

}  // namespace easel::sampling_detail
