// The first-order and Heun-family samplers, and LMS (k-diffusion v0.0.16 sampling.py; lcm from ComfyUI).
// to_d(x, sigma, denoised) = (x - denoised) / sigma is folded into each update: x + d * dt becomes
// (1 + dt/sigma) * x - (dt/sigma) * denoised, evaluated per element in double.
#include <cmath>
#include <deque>

#include "sampling/sampler_internal.h"

namespace easel::sampling_detail {

namespace {

// x + to_d(x, sigma, den) * dt
Tensor euler_update(const Tensor& x, const Tensor& den, double sigma, double dt) {
    const double c = dt / sigma;
    return lincomb({{1.0 + c, &x}, {-c, &den}});
}

}  // namespace

Result<Tensor> run_euler(const Run& r, Tensor x) {
    for (int i = 0; i < r.steps(); ++i) {
        const double s = r.sigmas[size_t(i)], s_next = r.sigmas[size_t(i + 1)];
        EASEL_TRY_ASSIGN(Tensor den, r.denoise(x, s));
        x = euler_update(x, den, s, s_next - s);
        EASEL_TRY(r.step_done(i, x));
    }
    return x;
}

// ComfyUI's sample_euler_ancestral_RF: down to sigma_down = s_next (1 + (s_next / s - 1) eta) along the flow
// (x -> (s_down / s) x + (1 - s_down / s) denoised), then back up to s_next: scaled by (1 - s_next) / (1 - s_down)
// with fresh noise of sqrt(s_next^2 - s_down^2 (1 - s_next)^2 / (1 - s_down)^2).
Result<Tensor> run_euler_ancestral_flow(const Run& r, Tensor x) {
    for (int i = 0; i < r.steps(); ++i) {
        const double s = r.sigmas[size_t(i)], s_next = r.sigmas[size_t(i + 1)];
        EASEL_TRY_ASSIGN(Tensor den, r.denoise(x, s));
        const double eta = r.options.eta;
        const double s_down = s_next * (1.0 + (s_next / s - 1.0) * eta);
        const double ratio = s_down / s;
        x = lincomb({{ratio, &x}, {1.0 - ratio, &den}});
        if (s_next > 0 && eta > 0) {
            const double a_next = 1.0 - s_next, a_down = 1.0 - s_down;
            const double renoise = std::sqrt(std::max(0.0, s_next * s_next - s_down * s_down * a_next * a_next / (a_down * a_down)));
            EASEL_TRY_ASSIGN(Tensor n, r.fresh_noise(x));
            x = lincomb({{a_next / a_down, &x}, {r.options.s_noise * renoise, &n}});
        }
        EASEL_TRY(r.step_done(i, x));
    }
    return x;
}

Result<Tensor> run_euler_ancestral(const Run& r, Tensor x) {
    if (r.options.flow) return run_euler_ancestral_flow(r, x);
    for (int i = 0; i < r.steps(); ++i) {
        const double s = r.sigmas[size_t(i)], s_next = r.sigmas[size_t(i + 1)];
        EASEL_TRY_ASSIGN(Tensor den, r.denoise(x, s));
        const auto [s_down, s_up] = ancestral_step(s, s_next, r.options.eta);
        x = euler_update(x, den, s, s_down - s);
        if (s_next > 0) {
            EASEL_TRY_ASSIGN(Tensor n, r.fresh_noise(x));
            x = lincomb({{1.0, &x}, {r.options.s_noise * s_up, &n}});
        }
        EASEL_TRY(r.step_done(i, x));
    }
    return x;
}

Result<Tensor> run_heun(const Run& r, Tensor x) {
    for (int i = 0; i < r.steps(); ++i) {
        const double s = r.sigmas[size_t(i)], s_next = r.sigmas[size_t(i + 1)];
        EASEL_TRY_ASSIGN(Tensor den, r.denoise(x, s));
        const double dt = s_next - s;
        if (s_next == 0) {
            x = euler_update(x, den, s, dt);
        } else {
            const Tensor x2 = euler_update(x, den, s, dt);
            EASEL_TRY_ASSIGN(Tensor den2, r.denoise(x2, s_next));
            // x + (d + d2)/2 * dt with d = (x - den)/s, d2 = (x2 - den2)/s_next
            const double a = 0.5 * dt / s, b = 0.5 * dt / s_next;
            x = lincomb({{1.0 + a, &x}, {-a, &den}, {b, &x2}, {-b, &den2}});
        }
        EASEL_TRY(r.step_done(i, x));
    }
    return x;
}

Result<Tensor> run_dpm2(const Run& r, Tensor x) {
    for (int i = 0; i < r.steps(); ++i) {
        const double s = r.sigmas[size_t(i)], s_next = r.sigmas[size_t(i + 1)];
        EASEL_TRY_ASSIGN(Tensor den, r.denoise(x, s));
        if (s_next == 0) {
            x = euler_update(x, den, s, s_next - s);
        } else {
            // sigma_mid = exp(lerp(log s, log s_next, 0.5)), the geometric mean.
            const double s_mid = std::exp(0.5 * (std::log(s) + std::log(s_next)));
            const Tensor x2 = euler_update(x, den, s, s_mid - s);
            EASEL_TRY_ASSIGN(Tensor den2, r.denoise(x2, s_mid));
            const double c = (s_next - s) / s_mid;  // x + d2 * dt_2, d2 = (x2 - den2) / s_mid
            x = lincomb({{1.0, &x}, {c, &x2}, {-c, &den2}});
        }
        EASEL_TRY(r.step_done(i, x));
    }
    return x;
}

Result<Tensor> run_lms(const Run& r, Tensor x) {
    const int order = r.options.lms_order;
    std::deque<Tensor> ds;  // derivatives, oldest first, at most `order`
    for (int i = 0; i < r.steps(); ++i) {
        const double s = r.sigmas[size_t(i)];
        EASEL_TRY_ASSIGN(Tensor den, r.denoise(x, s));
        ds.push_back(lincomb({{1.0 / s, &x}, {-1.0 / s, &den}}));
        if (int(ds.size()) > order) ds.pop_front();
        const int cur_order = std::min(i + 1, order);
        // x + sum_j coeff_j * ds[newest - j]
        Tensor out = x;
        for (int j = 0; j < cur_order; ++j) {
            const double c = lms_coefficient(cur_order, r.sigmas, i, j);
            out = lincomb({{1.0, &out}, {c, &ds[ds.size() - 1 - size_t(j)]}});
        }
        x = std::move(out);
        EASEL_TRY(r.step_done(i, x));
    }
    return x;
}

Result<Tensor> run_lcm(const Run& r, Tensor x) {
    for (int i = 0; i < r.steps(); ++i) {
        const double s = r.sigmas[size_t(i)], s_next = r.sigmas[size_t(i + 1)];
        EASEL_TRY_ASSIGN(Tensor den, r.denoise(x, s));
        x = std::move(den);
        if (s_next > 0) {
            EASEL_TRY_ASSIGN(Tensor n, r.fresh_noise(x));
            x = lincomb({{1.0, &x}, {s_next, &n}});
        }
        EASEL_TRY(r.step_done(i, x));
    }
    return x;
}

}  // namespace easel::sampling_detail
