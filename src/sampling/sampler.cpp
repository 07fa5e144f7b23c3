#include "sampling/sampler.h"

#include <array>
#include <cctype>
#include <cmath>
#include <string>

#include <fmt/format.h>

#include "sampling/sampler_internal.h"

namespace easel {

namespace sampling_detail {

Result<Tensor> Run::denoise(const Tensor& x, double sigma) const {
    EASEL_TRY_ASSIGN(Tensor d, denoiser(x, float(sigma)));
    if (d.shape() != x.shape() || d.dtype() != DType::F32)
        return Error::invalid_argument(fmt::format("denoiser returned {} {} for an F32 input of shape {}",
                                                   dtype_name(d.dtype()), d.shape().to_string(), x.shape().to_string()),
                                       "sampler");
    return d.contiguous();
}

Status Run::step_done(int i, const Tensor& x) const {
    if (!on_step) return ok();
    return on_step(i + 1, steps(), x);
}

namespace {
Result<Tensor> check_noise(Tensor n, const Tensor& like) {
    if (n.shape() != like.shape() || n.dtype() != DType::F32)
        return Error::invalid_argument(fmt::format("noise source returned {} {} for a latent of shape {}",
                                                   dtype_name(n.dtype()), n.shape().to_string(), like.shape().to_string()),
                                       "sampler");
    return n.contiguous();
}
}  // namespace

Result<Tensor> Run::fresh_noise(const Tensor& like) const { return check_noise(noise.randn_like(like), like); }

Result<Tensor> Run::sde_noise(const Tensor& like, double sigma, double sigma_next) const {
    return check_noise(noise.sde_noise(like, float(sigma), float(sigma_next)), like);
}

Tensor lincomb(std::initializer_list<std::pair<double, const Tensor*>> terms) {
    const Tensor& first = *terms.begin()->second;
    Tensor out = Tensor::empty(first.shape(), DType::F32);
    float* o = out.data<float>();
    const int64_t n = first.numel();
    std::vector<std::pair<double, const float*>> t;
    t.reserve(terms.size());
    for (const auto& [a, p] : terms) {
        EASEL_ASSERT(p->shape() == first.shape() && p->is_contiguous(), "lincomb: operands differ in shape");
        t.emplace_back(a, p->data<float>());
    }
    for (int64_t i = 0; i < n; ++i) {
        double acc = 0.0;
        for (const auto& [a, p] : t) acc += a * double(p[i]);
        o[i] = float(acc);
    }
    return out;
}

std::pair<double, double> ancestral_step(double sigma_from, double sigma_to, double eta) {
    if (eta == 0.0) return {sigma_to, 0.0};
    const double up = std::min(
        sigma_to, eta * std::sqrt(sigma_to * sigma_to * (sigma_from * sigma_from - sigma_to * sigma_to) /
                                  (sigma_from * sigma_from)));
    const double down = std::sqrt(sigma_to * sigma_to - up * up);
    return {down, up};
}

}  // namespace sampling_detail

using namespace sampling_detail;

Tensor scaled(const Tensor& x, float s) {
    Tensor c = x.contiguous();
    return lincomb({{double(s), &c}});
}

namespace sampling_detail {

Status validate(const Tensor& x, const std::vector<float>& sigmas, const SamplerOptions& o) {
    if (x.dtype() != DType::F32 || !x.is_contiguous() || !x.defined())
        return Error::invalid_argument(
            fmt::format("latent must be a contiguous F32 tensor, got {} {}", dtype_name(x.dtype()), x.shape().to_string()),
            "sampler");
    if (sigmas.size() < 2)
        return Error::invalid_argument(fmt::format("need at least 2 sigmas (one step), got {}", sigmas.size()), "sigmas");
    for (size_t i = 0; i < sigmas.size(); ++i) {
        const float s = sigmas[i];
        if (!std::isfinite(s) || s < 0.0f)
            return Error::invalid_argument(fmt::format("sigma[{}] = {} is not a finite value >= 0", i, s), "sigmas");
        if (s == 0.0f && i + 1 != sigmas.size())
            return Error::invalid_argument(fmt::format("sigma[{}] is 0 before the end of the list", i), "sigmas");
    }
    if (!(o.eta >= 0.0 && o.eta <= 10.0))
        return Error::invalid_argument(fmt::format("eta must be in [0, 10], got {}", o.eta), "eta");
    if (!(o.s_noise >= 0.0 && o.s_noise <= 10.0))
        return Error::invalid_argument(fmt::format("s_noise must be in [0, 10], got {}", o.s_noise), "s_noise");
    if (o.lms_order < 1 || o.lms_order > 4)
        return Error::invalid_argument(fmt::format("LMS order must be 1..4, got {}", o.lms_order), "lms_order");
    if (!(o.dpmpp_sde_r > 0.0 && o.dpmpp_sde_r <= 1.0))
        return Error::invalid_argument(fmt::format("r must be in (0, 1], got {}", o.dpmpp_sde_r), "dpmpp_sde_r");
    return ok();
}

}  // namespace sampling_detail

Result<Tensor> sample(SamplerKind kind, const Denoiser& denoiser, const Tensor& x, const std::vector<float>& sigmas,
                      NoiseSource& noise, const StepCallback& on_step, const SamplerOptions& options) {
    EASEL_TRY(validate(x, sigmas, options));
    if (!denoiser) return Error::invalid_argument("no denoiser given", "sampler");
    const Run r{denoiser, noise, on_step, options, sigmas};
    Tensor x0 = x.clone();  // samplers never write into the caller's tensor
    switch (kind) {
        case SamplerKind::Euler:
        case SamplerKind::Ddim: return run_euler(r, std::move(x0));
        case SamplerKind::EulerAncestral: return run_euler_ancestral(r, std::move(x0));
        case SamplerKind::Heun: return run_heun(r, std::move(x0));
        case SamplerKind::Dpm2: return run_dpm2(r, std::move(x0));
        case SamplerKind::Lms: return run_lms(r, std::move(x0));
        case SamplerKind::DpmPP2M: return run_dpmpp_2m(r, std::move(x0));
        case SamplerKind::DpmPP2MSde: return run_dpmpp_2m_sde(r, std::move(x0));
        case SamplerKind::DpmPPSde: return run_dpmpp_sde(r, std::move(x0));
        case SamplerKind::Lcm: return run_lcm(r, std::move(x0));
    }
    return Error::internal("sample: unknown sampler kind");
}

int denoiser_calls(SamplerKind kind, const std::vector<float>& sigmas) {
    const int steps = std::max(int(sigmas.size()) - 1, 0);
    const bool ends_at_zero = !sigmas.empty() && sigmas.back() == 0.0f;
    switch (kind) {
        case SamplerKind::Heun:
        case SamplerKind::Dpm2:
        case SamplerKind::DpmPPSde: return steps > 0 ? 2 * steps - (ends_at_zero ? 1 : 0) : 0;
        default: return steps;
    }
}

namespace {

// Lower-case, spaces/'-'/'_' removed, a leading "k_" / "sample_" dropped.
std::string normalise_name(std::string_view name) {
    std::string n;
    for (char c : name)
        if (c != ' ' && c != '-' && c != '_') n.push_back(char(std::tolower(static_cast<unsigned char>(c))));
    if (n.rfind("sample", 0) == 0) n = n.substr(6);
    if (n.size() > 1 && n[0] == 'k' && name.size() > 2 && (name[1] == '_' || name[1] == '-')) n = n.substr(1);
    return n;
}

}  // namespace

Result<SamplerKind> parse_sampler_name(std::string_view name) {
    static const std::array<std::pair<const char*, SamplerKind>, 24> table = {{
        {"euler", SamplerKind::Euler},
        {"eulera", SamplerKind::EulerAncestral},
        {"eulerancestral", SamplerKind::EulerAncestral},
        {"heun", SamplerKind::Heun},
        {"dpm2", SamplerKind::Dpm2},
        {"lms", SamplerKind::Lms},
        {"dpm++2m", SamplerKind::DpmPP2M},
        {"dpmpp2m", SamplerKind::DpmPP2M},
        {"dpmsolver++2m", SamplerKind::DpmPP2M},
        {"dpm++2msde", SamplerKind::DpmPP2MSde},
        {"dpmpp2msde", SamplerKind::DpmPP2MSde},
        {"dpm++sde", SamplerKind::DpmPPSde},
        {"dpmppsde", SamplerKind::DpmPPSde},
        {"ddim", SamplerKind::Ddim},
        {"lcm", SamplerKind::Lcm},
        // A1111 labels with the schedule baked in ("DPM++ 2M Karras") name the sampler only here; the caller
        // picks the schedule separately.
        {"dpm++2mkarras", SamplerKind::DpmPP2M},
        {"dpm++2msdekarras", SamplerKind::DpmPP2MSde},
        {"dpm++sdekarras", SamplerKind::DpmPPSde},
        {"lmskarras", SamplerKind::Lms},
        {"dpm2karras", SamplerKind::Dpm2},
        {"dpmpp2mkarras", SamplerKind::DpmPP2M},
        {"dpmpp2msdekarras", SamplerKind::DpmPP2MSde},
        {"dpmppsdekarras", SamplerKind::DpmPPSde},
        {"eulerdiscrete", SamplerKind::Euler},
    }};
    const std::string n = normalise_name(name);
    for (const auto& [key, kind] : table)
        if (n == key) return kind;
    return Error::invalid_argument(
        fmt::format("unknown sampler '{}'; expected one of euler, euler_a, heun, dpm2, lms, dpm++2m, dpm++2m_sde, "
                    "dpm++sde, ddim, lcm",
                    name));
}

const char* sampler_name(SamplerKind kind) {
    switch (kind) {
        case SamplerKind::Euler: return "euler";
        case SamplerKind::EulerAncestral: return "euler_a";
        case SamplerKind::Heun: return "heun";
        case SamplerKind::Dpm2: return "dpm2";
        case SamplerKind::Lms: return "lms";
        case SamplerKind::DpmPP2M: return "dpm++2m";
        case SamplerKind::DpmPP2MSde: return "dpm++2m_sde";
        case SamplerKind::DpmPPSde: return "dpm++sde";
        case SamplerKind::Ddim: return "ddim";
        case SamplerKind::Lcm: return "lcm";
    }
    return "?";
}

double lms_coefficient(int order, const std::vector<float>& sigmas, int i, int j) {
    EASEL_ASSERT(order >= 1 && order - 1 <= i && j < order && i + 1 < int(sigmas.size()),
                 "lms_coefficient: order too high for this step");
    // The integrand is a polynomial of degree order-1 <= 3, so 5-point Gauss-Legendre (exact to degree 9) gives
    // the integral to rounding, as scipy's adaptive Gauss-Kronrod quad does for it.
    static constexpr std::array<double, 5> nodes = {0.0, -0.5384693101056831, 0.5384693101056831,
                                                    -0.9061798459386640, 0.9061798459386640};
    static constexpr std::array<double, 5> weights = {0.5688888888888889, 0.4786286704993665, 0.4786286704993665,
                                                      0.2369268850561891, 0.2369268850561891};
    auto t = [&](int k) { return double(sigmas[size_t(k)]); };
    auto basis = [&](double tau) {
        double prod = 1.0;
        for (int k = 0; k < order; ++k) {
            if (k == j) continue;
            // k-diffusion passes float32 numpy sigmas: the node difference is a float32 subtraction (rounded),
            // the rest float64. We round it the same way to agree with its coefficients to ~1e-15.
            const float den = sigmas[size_t(i - j)] - sigmas[size_t(i - k)];
            prod *= (tau - t(i - k)) / double(den);
        }
        return prod;
    };
    const double a = t(i), b = t(i + 1);
    const double half = 0.5 * (b - a), mid = 0.5 * (a + b);
    double sum = 0.0;
    for (size_t q = 0; q < nodes.size(); ++q) sum += weights[q] * basis(mid + half * nodes[q]);
    return sum * half;
}

}  // namespace easel
