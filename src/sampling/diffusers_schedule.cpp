#include "sampling/diffusers_schedule.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <deque>
#include <string>

#include <fmt/format.h>

#include "sampling/sampler_internal.h"
#include "sampling/schedule.h"

namespace easel {

namespace {

// The numbers below follow diffusers v0.30.3 set_timesteps() of each scheduler (numpy float64 unless noted).

// numpy round(): half to even.
double np_round(double v) { return std::nearbyint(v); }

// Training sigmas in float32 (torch: ((1 - ac) / ac) ** 0.5 on float32 tensors) and their float32 logs.
struct TrainSigmas {
    std::vector<float> sigmas;
    std::vector<float> log_sigmas;
};

TrainSigmas train_sigmas(const DiffusersSchedulerConfig& c) {
    TrainSigmas t;
    for (float ac : diffusers_alphas_cumprod(c)) {
        const float one_minus = 1.0f - ac;
        const float ratio = one_minus / ac;
        t.sigmas.push_back(std::sqrt(ratio));
        t.log_sigmas.push_back(std::log(t.sigmas.back()));
    }
    return t;
}

// np.interp(t, arange(T), sigmas)
double interp_sigma(const std::vector<float>& s, double t) {
    const int n = int(s.size());
    if (t <= 0) return s.front();
    if (t >= n - 1) return s.back();
    const int j = int(std::floor(t));
    if (double(j) == t) return s[size_t(j)];
    const double slope = (double(s[size_t(j + 1)]) - double(s[size_t(j)])) / 1.0;
    return slope * (t - double(j)) + double(s[size_t(j)]);
}

// EulerDiscreteScheduler._sigma_to_t (shared by the other schedulers): log-sigma interpolation against the
// float32 log table; the denominator is a float32 subtraction as in numpy.
double sigma_to_t(const std::vector<float>& log_sigmas, double sigma) {
    const double log_sigma = std::log(std::max(sigma, 1e-10));
    const int n = int(log_sigmas.size());
    int low = 0;
    for (int i = 0; i < n; ++i)
        if (log_sigma - double(log_sigmas[size_t(i)]) >= 0) low = i;
    low = std::min(low, n - 2);
    const float lo = log_sigmas[size_t(low)], hi = log_sigmas[size_t(low + 1)];
    const float den = lo - hi;
    double w = (double(lo) - log_sigma) / double(den);
    w = std::clamp(w, 0.0, 1.0);
    return (1.0 - w) * double(low) + w * double(low + 1);
}

// _convert_to_karras: rho = 7 between the given end points, numpy float64.
std::vector<double> karras(double sigma_min, double sigma_max, int n) {
    const double rho = 7.0;
    const double min_inv = std::pow(sigma_min, 1.0 / rho), max_inv = std::pow(sigma_max, 1.0 / rho);
    std::vector<double> out;
    for (int i = 0; i < n; ++i) {
        const double ramp = n == 1 ? 0.0 : double(i) * (1.0 / double(n - 1));
        const double r = (i == n - 1 && n > 1) ? 1.0 : ramp;  // np.linspace sets the last point exactly
        out.push_back(std::pow(max_inv + r * (min_inv - max_inv), rho));
    }
    return out;
}

// np.arange(T, 0, -T/n).round() - 1, the "trailing" timesteps (descending).
std::vector<double> trailing_timesteps(int T, int n) {
    const double step = double(T) / double(n);
    std::vector<double> out;
    for (int k = 0;; ++k) {
        const double v = double(T) - double(k) * step;
        if (!(v > 0)) break;
        out.push_back(np_round(v) - 1.0);
    }
    return out;
}

// Euler / EulerAncestral / Heun / LMS timesteps (float32 values), descending.
std::vector<double> euler_family_timesteps(const DiffusersSchedulerConfig& c, int n) {
    const int T = c.num_train_timesteps;
    std::vector<double> ts;
    switch (c.timestep_spacing) {
        case TimestepSpacing::Linspace: {
            // np.linspace(0, T-1, n, dtype=float32)[::-1]: computed in float64, rounded to float32.
            for (int i = n - 1; i >= 0; --i) {
                double v = n == 1 ? 0.0 : double(i) * (double(T - 1) / double(n - 1));
                if (i == n - 1 && n > 1) v = double(T - 1);
                ts.push_back(double(float(v)));
            }
            break;
        }
        case TimestepSpacing::Leading: {
            const int ratio = T / n;
            for (int i = n - 1; i >= 0; --i) ts.push_back(double(i * ratio + c.steps_offset));
            break;
        }
        case TimestepSpacing::Trailing: ts = trailing_timesteps(T, n); break;
    }
    return ts;
}

// DPMSolverMultistepScheduler timesteps (int64), descending; lambda_min_clipped = -inf so last_timestep = T.
std::vector<double> dpmsolver_timesteps(const DiffusersSchedulerConfig& c, int n) {
    const int T = c.num_train_timesteps;
    std::vector<double> ts;
    switch (c.timestep_spacing) {
        case TimestepSpacing::Linspace: {
            // np.linspace(0, T-1, n+1).round()[::-1][:-1]
            for (int i = n; i >= 1; --i) {
                double v = double(i) * (double(T - 1) / double(n));
                if (i == n) v = double(T - 1);
                ts.push_back(np_round(v));
            }
            break;
        }
        case TimestepSpacing::Leading: {
            const int ratio = T / (n + 1);
            for (int i = n; i >= 1; --i) ts.push_back(double(i * ratio + c.steps_offset));
            break;
        }
        case TimestepSpacing::Trailing: ts = trailing_timesteps(T, n); break;
    }
    return ts;
}

}  // namespace

std::vector<float> diffusers_alphas_cumprod(const DiffusersSchedulerConfig& c) {
    const int n = c.num_train_timesteps;
    // torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=float32) ** 2, alphas = 1 - betas (float32),
    // torch.cumprod on the CPU accumulates in double and stores float32.
    const float start = float(std::pow(c.beta_start, 0.5)), end = float(std::pow(c.beta_end, 0.5));
    const float step = (end - start) / float(n - 1);
    std::vector<float> out(static_cast<size_t>(n));
    double acc = 1.0;
    for (int i = 0; i < n; ++i) {
        float root;
        if (i < n / 2) {
            const float d = step * float(i);
            root = start + d;
        } else {
            const float d = step * float(n - 1 - i);
            root = end - d;
        }
        const float beta = root * root;
        const float alpha = 1.0f - beta;
        acc *= double(alpha);
        out[size_t(i)] = float(acc);
    }
    return out;
}

float DiffusersPlan::timestep_for(float sigma) const {
    for (size_t i = 0; i + 1 < sigmas.size() && i < timesteps.size(); ++i)
        if (sigmas[i] == sigma) return timesteps[i];
    return -1.0f;
}

Result<DiffusersPlan> flow_match_euler_plan(double shift, int num_train_timesteps, int steps, bool linear) {
    if (steps < 1 || steps > 1000)
        return Error::invalid_argument(fmt::format("must be between 1 and 1000, got {}", steps), "steps");
    if (num_train_timesteps < 2 || num_train_timesteps > 100000)
        return Error::invalid_argument(fmt::format("num_train_timesteps {} must be in [2, 100000]", num_train_timesteps),
                                       "num_train_timesteps");
    if (!(shift > 0.0 && shift < 1000.0)) return Error::invalid_argument(fmt::format("shift {} must be in (0, 1000)", shift), "shift");
    const FlowSchedule table(shift, num_train_timesteps);
    std::vector<float> sigmas;
    if (linear) {
        for (int i = 0; i < steps; ++i) {
            const double s = steps == 1 ? 1.0 : 1.0 + (1.0 / steps - 1.0) * double(i) / double(steps - 1);
            sigmas.push_back(table.sigma_at(s * double(num_train_timesteps)));
        }
        sigmas.push_back(0.0f);
    } else {
        EASEL_TRY_ASSIGN(sigmas, make_flow_sigmas(ScheduleKind::Default, table, steps));
    }
    DiffusersPlan plan;
    plan.sampler = SamplerKind::Euler;
    plan.sigmas = sigmas;
    for (size_t i = 0; i + 1 < sigmas.size(); ++i) plan.timesteps.push_back(sigmas[i] * float(num_train_timesteps));
    plan.init_noise_scale = 1.0f;
    plan.full_sigmas = plan.sigmas;
    return plan;
}

Result<DiffusersPlan> diffusers_plan(DiffusersScheduler scheduler, const DiffusersSchedulerConfig& c, int steps) {
    if (steps < 1 || steps > 1000)
        return Error::invalid_argument(fmt::format("must be between 1 and 1000, got {}", steps), "steps");
    if (c.num_train_timesteps < 2 || c.num_train_timesteps > 100000 || steps > c.num_train_timesteps)
        return Error::invalid_argument(
            fmt::format("num_train_timesteps {} must be in [2, 100000] and >= steps ({})", c.num_train_timesteps, steps),
            "num_train_timesteps");
    if (!(c.beta_start > 0 && c.beta_end > c.beta_start && c.beta_end < 1))
        return Error::invalid_argument(
            fmt::format("need 0 < beta_start < beta_end < 1, got {} and {}", c.beta_start, c.beta_end), "beta_start");
    if (scheduler == DiffusersScheduler::EulerAncestral && c.use_karras_sigmas)
        return Error::unsupported("EulerAncestralDiscreteScheduler has no use_karras_sigmas in diffusers 0.30",
                                  "use_karras_sigmas");
    const bool dpm_timesteps =
        scheduler == DiffusersScheduler::DpmSolverMultistep || scheduler == DiffusersScheduler::UniPC;
    if (dpm_timesteps && c.timestep_spacing == TimestepSpacing::Leading &&
        c.num_train_timesteps / (steps + 1) == 0)
        return Error::invalid_argument("too many steps for leading spacing", "steps");

    if ((scheduler == DiffusersScheduler::Ddim || scheduler == DiffusersScheduler::Pndm) &&
        c.timestep_spacing != TimestepSpacing::Leading)
        return Error::unsupported("DDIM and PNDM plans support only \"leading\" timestep spacing", "timestep_spacing");
    if ((scheduler == DiffusersScheduler::Ddim || scheduler == DiffusersScheduler::Pndm) && c.use_karras_sigmas)
        return Error::unsupported("DDIMScheduler and PNDMScheduler have no Karras sigmas", "use_karras_sigmas");

    DiffusersPlan plan;
    if (scheduler == DiffusersScheduler::Lcm) {
        // LCMScheduler.set_timesteps: k = T // 50, the 50 timesteps (j + 1) * k - 1 descending, n of them at
        // indices floor(linspace(0, 50, n, endpoint=False)). No spacing, offset or Karras option applies.
        constexpr int original_steps = 50;
        if (c.use_karras_sigmas)
            return Error::unsupported("LCMScheduler has no Karras sigmas", "use_karras_sigmas");
        if (steps > original_steps)
            return Error::invalid_argument(
                fmt::format("LCMScheduler takes at most original_inference_steps = {} steps, got {}", original_steps,
                            steps),
                "steps");
        const int k = c.num_train_timesteps / original_steps;
        if (k < 1)
            return Error::invalid_argument("LCMScheduler needs num_train_timesteps >= 50", "num_train_timesteps");
        const std::vector<float> ac = diffusers_alphas_cumprod(c);
        for (int i = 0; i < steps; ++i) {
            const int index = int(std::floor(double(i) * (double(original_steps) / double(steps))));
            const int t = (original_steps - index) * k - 1;
            plan.timesteps.push_back(float(t));
            plan.sigmas.push_back(float(std::sqrt((1.0 - double(ac[size_t(t)])) / double(ac[size_t(t)]))));
        }
        plan.sigmas.push_back(0.0f);
        plan.lcm = true;
        plan.sampler = SamplerKind::Lcm;  // unused: sample_diffusers runs sample_lcm_diffusers
        plan.init_noise_scale = float(std::sqrt(double(plan.sigmas[0]) * plan.sigmas[0] + 1.0));
        return plan;
    }
    if (scheduler == DiffusersScheduler::Ddim || scheduler == DiffusersScheduler::Pndm) {
        // Timesteps k * (T // n) + steps_offset, descending; each step goes to t - T // n, the last one to
        // final_alpha_cumprod = alphas_cumprod[0]. sigma = sqrt((1 - a) / a) of diffusers' float32 alphas.
        const std::vector<float> ac = diffusers_alphas_cumprod(c);
        auto sigma_of = [](float a) { return float(std::sqrt((1.0 - double(a)) / double(a))); };
        const int ratio = c.num_train_timesteps / steps;
        for (int k = steps - 1; k >= 0; --k) {
            const int t = k * ratio + c.steps_offset;
            if (t >= c.num_train_timesteps)
                return Error::invalid_argument(fmt::format("steps_offset {} puts timestep {} past the schedule",
                                                           c.steps_offset, t),
                                               "steps_offset");
            plan.timesteps.push_back(float(t));
            plan.sigmas.push_back(sigma_of(ac[size_t(t)]));
        }
        plan.sigmas.push_back(sigma_of(ac[0]));
        plan.sampler = SamplerKind::Euler;
        plan.plms = scheduler == DiffusersScheduler::Pndm;
        // init_noise_sigma is 1 (VP): our x = noise * sqrt(sigma_0^2 + 1); their result is ours * sqrt(ac[0]).
        plan.init_noise_scale = float(std::sqrt(double(plan.sigmas[0]) * plan.sigmas[0] + 1.0));
        plan.final_scale = std::sqrt(ac[0]);
        return plan;
    }

    const TrainSigmas train = train_sigmas(c);
    std::vector<double> ts, sig;
    if (dpm_timesteps) {
        // UniPC's set_timesteps is DPM-Solver's (timesteps, interpolated or Karras sigmas, final sigma 0).
        plan.sampler = SamplerKind::DpmPP2M;
        plan.unipc = scheduler == DiffusersScheduler::UniPC;
        ts = dpmsolver_timesteps(c, steps);
        if (c.use_karras_sigmas) {
            // In sigmas: all training sigmas, descending; timesteps rounded to integers.
            sig = karras(train.sigmas.front(), train.sigmas.back(), steps);
            ts.clear();
            for (double s : sig) ts.push_back(np_round(sigma_to_t(train.log_sigmas, s)));
        } else {
            for (double t : ts) sig.push_back(interp_sigma(train.sigmas, t));
        }
    } else {
        plan.sampler = scheduler == DiffusersScheduler::Euler          ? SamplerKind::Euler
                       : scheduler == DiffusersScheduler::EulerAncestral ? SamplerKind::EulerAncestral
                       : scheduler == DiffusersScheduler::Heun          ? SamplerKind::Heun
                                                                        : SamplerKind::Lms;
        ts = euler_family_timesteps(c, steps);
        for (double t : ts) sig.push_back(interp_sigma(train.sigmas, t));
        if (c.use_karras_sigmas) {
            // In sigmas: the interpolated list, so the range is sigma(t_last) .. sigma(t_first).
            sig = karras(sig.back(), sig.front(), steps);
            ts.clear();
            for (double s : sig) ts.push_back(sigma_to_t(train.log_sigmas, s));
        }
    }
    for (double s : sig) plan.sigmas.push_back(float(s));
    plan.sigmas.push_back(0.0f);
    for (double t : ts) plan.timesteps.push_back(float(t));

    const float sigma_max = *std::max_element(plan.sigmas.begin(), plan.sigmas.end());
    const bool vp_start = dpm_timesteps ||
                          c.timestep_spacing == TimestepSpacing::Leading;
    if (vp_start) {
        // (sigma_max ** 2 + 1) ** 0.5 on a float32 tensor; DPM-Solver's VP start is the same in our variables.
        const float sq = sigma_max * sigma_max;
        const float sum = sq + 1.0f;
        plan.init_noise_scale = std::sqrt(sum);
    } else {
        plan.init_noise_scale = sigma_max;
    }
    return plan;
}

void DiffusersPlan::begin_at(int t_start) {
    EASEL_ASSERT(t_start >= 0 && size_t(t_start) + 1 < sigmas.size() && size_t(t_start) <= timesteps.size(),
                 "DiffusersPlan::begin_at: no step left");
    full_sigmas = sigmas;
    begin = t_start;
    sigmas.erase(sigmas.begin(), sigmas.begin() + t_start);
    timesteps.erase(timesteps.begin(), timesteps.begin() + t_start);
}

void DiffusersPlan::end_at(int steps) {
    EASEL_ASSERT(steps >= 1 && size_t(steps) + 1 <= sigmas.size(), "DiffusersPlan::end_at: no step left");
    sigmas.resize(size_t(steps) + 1);
    timesteps.resize(std::min(timesteps.size(), size_t(steps)));
}

namespace {

// LMSDiscreteScheduler.step after set_begin_index(begin): at absolute step t = begin + i the order is
// min(t + 1, 4) and the coefficients are get_lms_coefficient(order, t, j) over the full sigma list, but only as
// many terms are summed as there are derivatives (zip over reversed(self.derivatives)), at most 4.
Result<Tensor> sample_lms_from(const Denoiser& denoiser, const Tensor& x_in, const std::vector<float>& full, int begin,
                               const StepCallback& on_step) {
    const std::vector<float> tail(full.begin() + begin, full.end());
    const SamplerOptions options;
    EASEL_TRY(sampling_detail::validate(x_in, tail, options));
    if (!denoiser) return Error::invalid_argument("no denoiser given", "sampler");
    sampling_detail::NoNoise no_noise;
    const sampling_detail::Run r{denoiser, no_noise, on_step, options, tail};
    Tensor x = x_in.clone();
    std::deque<Tensor> ds;  // derivatives, oldest first
    for (int i = 0; i < r.steps(); ++i) {
        const int t = begin + i;
        const double s = tail[size_t(i)];
        EASEL_TRY_ASSIGN(Tensor den, r.denoise(x, s));
        ds.push_back(sampling_detail::lincomb({{1.0 / s, &x}, {-1.0 / s, &den}}));
        if (ds.size() > 4) ds.pop_front();
        const int order = std::min(t + 1, 4);
        const int terms = std::min(order, int(ds.size()));
        Tensor out = x;
        for (int j = 0; j < terms; ++j) {
            const double c = lms_coefficient(order, full, t, j);
            out = sampling_detail::lincomb({{1.0, &out}, {c, &ds[ds.size() - 1 - size_t(j)]}});
        }
        x = std::move(out);
        EASEL_TRY(r.step_done(i, x));
    }
    return x;
}

}  // namespace

Result<Tensor> sample_diffusers(const DiffusersPlan& plan, const Denoiser& denoiser, const Tensor& x, NoiseSource& noise,
                                const StepCallback& on_step) {
    Tensor out;
    if (!plan.plms && plan.sampler == SamplerKind::Lms && plan.begin > 0) {
        EASEL_TRY_ASSIGN(out, sample_lms_from(denoiser, x, plan.full_sigmas, plan.begin, on_step));
    } else if (plan.lcm) {
        EASEL_TRY_ASSIGN(out, sample_lcm_diffusers(denoiser, x, plan.sigmas, plan.timesteps, noise, on_step));
    } else if (plan.unipc) {
        EASEL_TRY_ASSIGN(out, sample_unipc(denoiser, x, plan.sigmas, on_step));
    } else if (plan.plms) {
        EASEL_TRY_ASSIGN(out, sample_plms(denoiser, x, plan.sigmas, on_step,
                                          plan.v_prediction ? PlmsHistory::Velocity : PlmsHistory::Epsilon));
    } else {
        EASEL_TRY_ASSIGN(out, sample(plan.sampler, denoiser, x, plan.sigmas, noise, on_step));
    }
    if (plan.final_scale != 1.0f) out = scaled(out, plan.final_scale);
    return out;
}

Result<DiffusersScheduler> parse_diffusers_scheduler(std::string_view name) {
    std::string n;
    for (char ch : name)
        if (ch != ' ' && ch != '-' && ch != '_') n.push_back(char(std::tolower(static_cast<unsigned char>(ch))));
    if (n == "eulerdiscretescheduler" || n == "euler") return DiffusersScheduler::Euler;
    if (n == "eulerancestraldiscretescheduler" || n == "eulera" || n == "eulerancestral")
        return DiffusersScheduler::EulerAncestral;
    if (n == "heundiscretescheduler" || n == "heun") return DiffusersScheduler::Heun;
    if (n == "lmsdiscretescheduler" || n == "lms") return DiffusersScheduler::Lms;
    if (n == "dpmsolvermultistepscheduler" || n == "dpm++2m" || n == "dpmpp2m" || n == "dpmsolver++")
        return DiffusersScheduler::DpmSolverMultistep;
    if (n == "ddimscheduler" || n == "ddim") return DiffusersScheduler::Ddim;
    if (n == "pndmscheduler" || n == "pndm" || n == "plms") return DiffusersScheduler::Pndm;
    if (n == "unipcmultistepscheduler" || n == "unipc") return DiffusersScheduler::UniPC;
    if (n == "lcmscheduler" || n == "lcm") return DiffusersScheduler::Lcm;
    return Error::unsupported(
        fmt::format("diffusers scheduler '{}' is not supported; supported: EulerDiscreteScheduler, "
                    "EulerAncestralDiscreteScheduler, HeunDiscreteScheduler, LMSDiscreteScheduler, "
                    "DPMSolverMultistepScheduler, DDIMScheduler, PNDMScheduler, UniPCMultistepScheduler, LCMScheduler",
                    name));
}

std::string_view diffusers_scheduler_class(DiffusersScheduler scheduler) {
    switch (scheduler) {
        case DiffusersScheduler::Euler: return "EulerDiscreteScheduler";
        case DiffusersScheduler::EulerAncestral: return "EulerAncestralDiscreteScheduler";
        case DiffusersScheduler::Heun: return "HeunDiscreteScheduler";
        case DiffusersScheduler::Lms: return "LMSDiscreteScheduler";
        case DiffusersScheduler::DpmSolverMultistep: return "DPMSolverMultistepScheduler";
        case DiffusersScheduler::Ddim: return "DDIMScheduler";
        case DiffusersScheduler::Pndm: return "PNDMScheduler";
        case DiffusersScheduler::UniPC: return "UniPCMultistepScheduler";
        case DiffusersScheduler::Lcm: return "LCMScheduler";
    }
    return "?";
}

}  // namespace easel
