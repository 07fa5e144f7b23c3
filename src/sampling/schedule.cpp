#include "sampling/schedule.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <string>

#include <fmt/format.h>

namespace easel {

namespace {

// torch.linspace(start, end, n) for float32 on the CPU (scalar formula): the first half counts up from start,
// the second half down from end, so both ends are exact.
std::vector<float> linspace_f32(float start, float end, int n) {
    std::vector<float> out(size_t(std::max(n, 0)));
    if (n == 1) out[0] = start;
    if (n <= 1) return out;
    const float step = (end - start) / float(n - 1);
    const int halfway = n / 2;
    for (int i = 0; i < n; ++i) {
        if (i < halfway) {
            const float d = step * float(i);
            out[size_t(i)] = start + d;
        } else {
            const float d = step * float(n - 1 - i);
            out[size_t(i)] = end - d;
        }
    }
    return out;
}

// The same in double (torch.linspace(..., dtype=torch.float64)).
std::vector<double> linspace_f64(double start, double end, int n) {
    std::vector<double> out(size_t(std::max(n, 0)));
    if (n == 1) out[0] = start;
    if (n <= 1) return out;
    const double step = (end - start) / double(n - 1);
    const int halfway = n / 2;
    for (int i = 0; i < n; ++i)
        out[size_t(i)] = i < halfway ? start + step * double(i) : end - step * double(n - 1 - i);
    return out;
}

// Published Align Your Steps noise levels (NVIDIA, arXiv:2404.14507; the lists ComfyUI ships), 10 steps.
constexpr std::array<double, 11> kAysSD15 = {14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520,
                                             1.8841921177,  1.3943805092, 0.9642583904, 0.6523686016,
                                             0.3977456272,  0.1515232662, 0.0291671582};
constexpr std::array<double, 11> kAysSDXL = {14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769,
                                             1.3405244945,  0.8620721141, 0.5550693289, 0.3798540708,
                                             0.2332364134,  0.1114188177, 0.0291671582};

// numpy.linspace(0, 1, n) (step form, last point exactly `stop`).
std::vector<double> np_linspace01(int n) {
    std::vector<double> out(static_cast<size_t>(n));
    if (n == 1) {
        out[0] = 0.0;
        return out;
    }
    const double step = 1.0 / double(n - 1);
    for (int i = 0; i < n; ++i) out[size_t(i)] = double(i) * step;
    out[size_t(n - 1)] = 1.0;
    return out;
}

// ComfyUI's loglinear_interp: resample a decreasing list to n points, linearly in log space.
std::vector<double> loglinear_interp(const std::array<double, 11>& levels, int n) {
    const std::vector<double> xs = np_linspace01(int(levels.size()));
    std::vector<double> ys(levels.size());
    for (size_t i = 0; i < levels.size(); ++i) ys[i] = std::log(levels[levels.size() - 1 - i]);  // increasing
    const std::vector<double> new_xs = np_linspace01(n);
    std::vector<double> out(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
        const double x = new_xs[size_t(i)];
        size_t j = 0;
        while (j + 2 < xs.size() && x >= xs[j + 1]) ++j;
        double y;
        if (x >= xs.back())
            y = ys.back();
        else {
            const double slope = (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j]);
            y = slope * (x - xs[j]) + ys[j];
        }
        out[size_t(n - 1 - i)] = std::exp(y);  // back to decreasing order
    }
    return out;
}

}  // namespace

DiscreteSchedule DiscreteSchedule::scaled_linear(int num_train_timesteps, double beta_start, double beta_end) {
    EASEL_ASSERT(num_train_timesteps >= 2, "a discrete schedule needs at least two timesteps");
    DiscreteSchedule s;
    const std::vector<double> root_betas =
        linspace_f64(std::pow(beta_start, 0.5), std::pow(beta_end, 0.5), num_train_timesteps);
    double cumprod = 1.0;
    s.alphas_cumprod_.resize(size_t(num_train_timesteps));
    s.sigmas_.resize(size_t(num_train_timesteps));
    s.log_sigmas_.resize(size_t(num_train_timesteps));
    for (size_t t = 0; t < root_betas.size(); ++t) {
        const double beta = root_betas[t] * root_betas[t];
        cumprod *= 1.0 - beta;
        const float ac = float(cumprod);
        const float one_minus = 1.0f - ac;
        const float ratio = one_minus / ac;
        s.alphas_cumprod_[t] = ac;
        s.sigmas_[t] = std::sqrt(ratio);
        s.log_sigmas_[t] = std::log(s.sigmas_[t]);
    }
    return s;
}

float DiscreteSchedule::sigma_to_t(float sigma) const {
    const float log_sigma = std::log(sigma);
    const int n = size();
    // Last index whose log-sigma is <= log_sigma (0 if none), at most n-2 so that low+1 exists.
    int low = 0;
    for (int i = 0; i < n; ++i)
        if (log_sigma - log_sigmas_[size_t(i)] >= 0.0f) low = i;
    low = std::min(low, n - 2);
    const int high = low + 1;
    const float lo = log_sigmas_[size_t(low)], hi = log_sigmas_[size_t(high)];
    const float num = lo - log_sigma;
    const float den = lo - hi;
    float w = num / den;
    w = std::clamp(w, 0.0f, 1.0f);
    const float a = (1.0f - w) * float(low);
    const float b = w * float(high);
    return a + b;
}

int DiscreteSchedule::sigma_to_t_quantized(float sigma) const {
    const float log_sigma = std::log(sigma);
    int best = 0;
    float best_d = std::fabs(log_sigma - log_sigmas_[0]);
    for (int i = 1; i < size(); ++i) {
        const float d = std::fabs(log_sigma - log_sigmas_[size_t(i)]);
        if (d < best_d) {
            best_d = d;
            best = i;
        }
    }
    return best;
}

int DiscreteSchedule::nearest_timestep(float sigma) const {
    int best = 0;
    float best_d = std::fabs(sigmas_[0] - sigma);
    for (int i = 1; i < size(); ++i) {
        const float d = std::fabs(sigmas_[size_t(i)] - sigma);
        if (d < best_d) {
            best_d = d;
            best = i;
        }
    }
    return best;
}

float DiscreteSchedule::t_to_sigma(float t) const {
    t = std::clamp(t, 0.0f, float(size() - 1));
    const float lo_t = std::floor(t);
    const float w = t - lo_t;
    const size_t low = size_t(lo_t), high = size_t(std::ceil(t));
    const float a = (1.0f - w) * log_sigmas_[low];
    const float b = w * log_sigmas_[high];
    const float log_sigma = a + b;
    return std::exp(log_sigma);
}

std::vector<float> karras_sigmas(int n, float sigma_min, float sigma_max, double rho) {
    // k-diffusion get_sigmas_karras: the inverse-rho powers are Python floats (double), the ramp and the rest
    // float32 tensor arithmetic.
    const std::vector<float> ramp = linspace_f32(0.0f, 1.0f, n);
    const double min_inv_rho = std::pow(double(sigma_min), 1.0 / rho);
    const double max_inv_rho = std::pow(double(sigma_max), 1.0 / rho);
    const float diff = float(min_inv_rho - max_inv_rho);
    std::vector<float> out;
    out.reserve(size_t(n) + 1);
    for (float r : ramp) {
        const float scaled = r * diff;
        const float base = float(max_inv_rho) + scaled;
        out.push_back(std::pow(base, float(rho)));
    }
    out.push_back(0.0f);
    return out;
}

std::vector<float> exponential_sigmas(int n, float sigma_min, float sigma_max) {
    const std::vector<float> logs =
        linspace_f32(float(std::log(double(sigma_max))), float(std::log(double(sigma_min))), n);
    std::vector<float> out;
    out.reserve(size_t(n) + 1);
    for (float l : logs) out.push_back(std::exp(l));
    out.push_back(0.0f);
    return out;
}

Result<std::vector<float>> make_sigmas(ScheduleKind kind, const DiscreteSchedule& s, int steps) {
    if (steps < 1 || steps > 10000)
        return Error::invalid_argument(fmt::format("must be between 1 and 10000, got {}", steps), "steps");
    const int T = s.size();
    std::vector<float> out;
    switch (kind) {
        case ScheduleKind::Default: {
            for (float t : linspace_f32(float(T - 1), 0.0f, steps)) out.push_back(s.t_to_sigma(t));
            out.push_back(0.0f);
            return out;
        }
        case ScheduleKind::Karras: return karras_sigmas(steps, s.sigma_min(), s.sigma_max());
        case ScheduleKind::Exponential: return exponential_sigmas(steps, s.sigma_min(), s.sigma_max());
        case ScheduleKind::SgmUniform: {
            std::vector<float> ts = linspace_f32(float(T - 1), 0.0f, steps + 1);
            ts.pop_back();
            for (float t : ts) out.push_back(s.t_to_sigma(t));
            out.push_back(0.0f);
            return out;
        }
        case ScheduleKind::Simple: {
            const double ss = double(T) / double(steps);
            for (int x = 0; x < steps; ++x) out.push_back(s.sigmas()[size_t(T - 1 - int(double(x) * ss))]);
            out.push_back(0.0f);
            return out;
        }
        case ScheduleKind::DdimUniform: {
            // ComfyUI: training sigmas 1, 1+ss, 1+2ss, ... (ss = T // steps), reversed, then 0. (Its branch for
            // a schedule whose sigma[1] is ~0 does not arise for SD's schedules.)
            const int ss = std::max(T / steps, 1);
            out.push_back(0.0f);
            for (int x = 1; x < T; x += ss) out.push_back(s.sigmas()[size_t(x)]);
            std::reverse(out.begin(), out.end());
            return out;
        }
        case ScheduleKind::AlignYourSteps:
        case ScheduleKind::AlignYourStepsXL: {
            const auto& levels = kind == ScheduleKind::AlignYourSteps ? kAysSD15 : kAysSDXL;
            if (steps + 1 == int(levels.size())) {
                for (double v : levels) out.push_back(float(v));
            } else {
                for (double v : loglinear_interp(levels, steps + 1)) out.push_back(float(v));
            }
            out.back() = 0.0f;
            return out;
        }
    }
    return Error::internal("make_sigmas: unknown schedule kind");
}

FlowSchedule::FlowSchedule(double shift, int num_train_timesteps) : shift_(shift), train_(std::max(num_train_timesteps, 1)) {
    sigmas_.reserve(size_t(train_));
    for (int i = 1; i <= train_; ++i) sigmas_.push_back(sigma_at(double(i)));
}

float FlowSchedule::sigma_at(double t) const {
    const double u = t / double(train_);
    return float(shift_ * u / (1.0 + (shift_ - 1.0) * u));
}

Result<std::vector<float>> make_flow_sigmas(ScheduleKind kind, const FlowSchedule& s, int steps) {
    if (steps < 1 || steps > 10000)
        return Error::invalid_argument(fmt::format("must be between 1 and 10000, got {}", steps), "steps");
    const double T = double(s.size());
    std::vector<float> out;
    switch (kind) {
        case ScheduleKind::Default:
        case ScheduleKind::SgmUniform: {
            // ComfyUI normal_scheduler: start = timestep(sigma_max), end = timestep(sigma_min); sgm: n + 1 points
            // without the last. (Its "sigma(end) is ~0" branch needs shift < 0.01.)
            const double start = double(s.sigma_max()) * T, end = double(s.sigma_min()) * T;
            const int n = kind == ScheduleKind::SgmUniform ? steps + 1 : steps;
            for (int i = 0; i < steps; ++i) {
                const double t = n == 1 ? start : start + (end - start) * double(i) / double(n - 1);
                out.push_back(s.sigma_at(t));
            }
            out.push_back(0.0f);
            return out;
        }
        case ScheduleKind::Simple: {
            const double ss = T / double(steps);
            for (int x = 0; x < steps; ++x) out.push_back(s.sigmas()[size_t(s.size() - 1 - int(double(x) * ss))]);
            out.push_back(0.0f);
            return out;
        }
        case ScheduleKind::Karras: return karras_sigmas(steps, s.sigma_min(), s.sigma_max());
        case ScheduleKind::Exponential: return exponential_sigmas(steps, s.sigma_min(), s.sigma_max());
        case ScheduleKind::DdimUniform:
        case ScheduleKind::AlignYourSteps:
        case ScheduleKind::AlignYourStepsXL:
            return Error::unsupported(fmt::format("the {} schedule is made for SD's noise schedule, not a flow model's; use "
                                                  "normal, simple, sgm_uniform, karras or exponential", schedule_name(kind)),
                                      "scheduler");
    }
    return Error::internal("make_flow_sigmas: unknown schedule kind");
}

Result<ScheduleKind> parse_schedule_name(std::string_view name) {
    std::string n;
    for (char c : name) n.push_back(c == '-' || c == ' ' ? '_' : char(std::tolower(static_cast<unsigned char>(c))));
    if (n == "default" || n == "normal" || n == "automatic" || n == "discrete") return ScheduleKind::Default;
    if (n == "karras") return ScheduleKind::Karras;
    if (n == "exponential") return ScheduleKind::Exponential;
    if (n == "sgm_uniform" || n == "sgm") return ScheduleKind::SgmUniform;
    if (n == "simple") return ScheduleKind::Simple;
    if (n == "ddim_uniform" || n == "ddim") return ScheduleKind::DdimUniform;
    if (n == "ays" || n == "align_your_steps" || n == "ays_sd15" || n == "ays_sd1") return ScheduleKind::AlignYourSteps;
    if (n == "ays_xl" || n == "ays_sdxl") return ScheduleKind::AlignYourStepsXL;
    return Error::invalid_argument(
        fmt::format("unknown schedule '{}'; expected one of default (normal), karras, exponential, sgm_uniform, "
                    "simple, ddim_uniform, ays, ays_xl",
                    name));
}

const char* schedule_name(ScheduleKind kind) {
    switch (kind) {
        case ScheduleKind::Default: return "default";
        case ScheduleKind::Karras: return "karras";
        case ScheduleKind::Exponential: return "exponential";
        case ScheduleKind::SgmUniform: return "sgm_uniform";
        case ScheduleKind::Simple: return "simple";
        case ScheduleKind::DdimUniform: return "ddim_uniform";
        case ScheduleKind::AlignYourSteps: return "ays";
        case ScheduleKind::AlignYourStepsXL: return "ays_xl";
    }
    return "?";
}

}  // namespace easel
