#include "pipeline/interfaces.h"

#include <cmath>

#include <fmt/format.h>

#include "runtime/ops.h"
#include "sampling/sampler.h"

namespace easel {

Conditioning Conditioning::batch(const Ctx& c, const Conditioning& a, const Conditioning& b) {
    Conditioning r;
    if (a.context.defined() && a.context.numel() > 0) r.context = ops::concat(c, {a.context, b.context}, 0);
    if (a.pooled) r.pooled = ops::concat(c, {*a.pooled, *b.pooled}, 0);
    if (a.ids) r.ids = ops::concat(c, {*a.ids, *b.ids}, 0);
    EASEL_ASSERT(a.guidance == b.guidance, "Conditioning::batch: different guidance inputs");
    r.guidance = a.guidance;
    EASEL_ASSERT(a.extra_kv.size() == b.extra_kv.size(), "Conditioning::batch: image prompts on one side only");
    r.extra_kv.resize(a.extra_kv.size());
    for (size_t i = 0; i < a.extra_kv.size(); ++i) {
        EASEL_ASSERT(a.extra_kv[i].size() == b.extra_kv[i].size(), "Conditioning::batch: image prompts differ");
        for (size_t j = 0; j < a.extra_kv[i].size(); ++j) {
            const ExtraKV& x = a.extra_kv[i][j];
            const ExtraKV& y = b.extra_kv[i][j];
            EASEL_ASSERT(x.scale == y.scale, "Conditioning::batch: image prompt scales differ");
            r.extra_kv[i].push_back({ops::concat(c, {x.k, y.k}, 0), ops::concat(c, {x.v, y.v}, 0), x.scale});
        }
    }
    if (!a.negative.empty() || !b.negative.empty()) {
        auto flags = [](const Conditioning& x) {
            const int64_t n = x.context.defined() ? x.context.size(0) : x.pooled ? x.pooled->size(0) : 0;
            return x.negative.empty() ? std::vector<bool>(size_t(n), false) : x.negative;
        };
        r.negative = flags(a);
        const std::vector<bool> fb = flags(b);
        r.negative.insert(r.negative.end(), fb.begin(), fb.end());
    }
    return r;
}

Conditioning Conditioning::repeat(const Ctx& c, const Conditioning& a, int n) {
    if (n <= 1) return a;
    auto copies = [&](const Tensor& t) { return ops::concat(c, std::vector<Tensor>(size_t(n), t), 0); };
    Conditioning r = a;
    if (a.context.defined() && a.context.numel() > 0) r.context = copies(a.context);
    if (a.pooled) r.pooled = copies(*a.pooled);
    if (a.ids) r.ids = copies(*a.ids);
    for (BlockExtras& block : r.extra_kv)
        for (ExtraKV& e : block) e = {copies(e.k), copies(e.v), e.scale};
    r.negative.clear();
    for (int i = 0; i < n; ++i) r.negative.insert(r.negative.end(), a.negative.begin(), a.negative.end());
    return r;
}

// k-diffusion CompVisDenoiser.get_scalings: c_in = 1/sqrt(sigma^2 + 1) (the same for CompVisVDenoiser with
// sigma_data 1).
float DiscreteModelSampling::input_scale(float sigma) const {
    return float(1.0 / std::sqrt(double(sigma) * sigma + 1.0));
}

Tensor DiscreteModelSampling::denoised(const Tensor& x, const Tensor& out, float sigma) const {
    const int64_t n = x.numel();
    const float* o = out.data<float>();
    const float* xp = x.data<float>();
    Tensor den = Tensor::empty(x.shape());
    float* d = den.data<float>();
    if (prediction_ != Prediction::V) {
        // CompVisDenoiser: c_out = -sigma, c_skip = 1.
        for (int64_t i = 0; i < n; ++i) d[i] = xp[i] + o[i] * -sigma;
    } else {
        // CompVisVDenoiser (sigma_data 1): c_skip = 1/(sigma^2+1), c_out = -sigma/sqrt(sigma^2+1).
        const float c_skip = float(1.0 / (double(sigma) * sigma + 1.0));
        const float c_out = float(-double(sigma) / std::sqrt(double(sigma) * sigma + 1.0));
        for (int64_t i = 0; i < n; ++i) d[i] = o[i] * c_out + xp[i] * c_skip;
    }
    return den;
}

Tensor DiscreteModelSampling::noise_latent(const Ctx& c, const Tensor& latent, const Tensor& noise, float sigma) const {
    return ops::add(c, latent, scaled(noise, sigma));
}

double DiscreteModelSampling::percent_to_sigma(double percent) const {
    if (percent <= 0.0) return 999999999.9;  // ComfyUI's "above every sigma"
    if (percent >= 1.0) return 0.0;
    return schedule_.t_to_sigma(float((1.0 - percent) * double(schedule_.size() - 1)));
}

double FlowModelSampling::percent_to_sigma(double percent) const {
    if (percent <= 0.0) return 1.0;
    if (percent >= 1.0) return 0.0;
    const double t = 1.0 - percent, a = schedule_.shift();
    return a * t / (1.0 + (a - 1.0) * t);
}

float DiscreteModelSampling::schedule_fraction(float sigma) const {
    // A1111: (999 - argmin |sigmas - sigma|) / 1000 as a float32 tensor.
    const int n = schedule_.size();
    return float(n - 1 - schedule_.nearest_timestep(sigma)) / float(n);
}

Tensor DiscreteModelSampling::pure_noise(const Tensor& noise, float sigma) const { return scaled(noise, sigma); }

Result<std::vector<float>> DiscreteModelSampling::sigmas(ScheduleKind kind, int steps) const {
    return make_sigmas(kind, schedule_, steps);
}

Tensor FlowModelSampling::denoised(const Tensor& x, const Tensor& out, float sigma) const {
    const int64_t n = x.numel();
    Tensor den = Tensor::empty(x.shape());
    const float* xp = x.data<float>();
    const float* o = out.data<float>();
    float* d = den.data<float>();
    for (int64_t i = 0; i < n; ++i) d[i] = xp[i] - sigma * o[i];
    return den;
}

// ComfyUI CONST.noise_scaling: sigma * noise + (1 - sigma) * latent (diffusers' scale_noise).
Tensor FlowModelSampling::noise_latent(const Ctx&, const Tensor& latent, const Tensor& noise, float sigma) const {
    const Tensor l = latent.contiguous(), e = noise.contiguous();
    Tensor x = Tensor::empty(l.shape());
    for (int64_t i = 0; i < l.numel(); ++i) x.data<float>()[i] = sigma * e.data<float>()[i] + (1.0f - sigma) * l.data<float>()[i];
    return x;
}

double DynamicShift::mu(double image_seq_len) const {
    const double m = (max_shift - base_shift) / double(max_seq_len - base_seq_len);
    const double b = base_shift - m * double(base_seq_len);
    return image_seq_len * m + b;
}

std::shared_ptr<const ModelSampling> FlowModelSampling::at_size(int64_t h, int64_t w) const {
    if (!dynamic_) return nullptr;
    return std::make_shared<FlowModelSampling>(std::exp(dynamic_->mu(double((h / 2) * (w / 2)))), linear_);
}

Result<std::vector<float>> FlowModelSampling::sigmas(ScheduleKind kind, int steps) const {
    if (kind == ScheduleKind::Default && linear_) {
        if (steps < 1 || steps > 10000)
            return Error::invalid_argument(fmt::format("must be between 1 and 10000, got {}", steps), "steps");
        // FluxPipeline: np.linspace(1.0, 1 / steps, steps), shifted, then 0.
        std::vector<float> out;
        for (int i = 0; i < steps; ++i) {
            const double s = steps == 1 ? 1.0 : 1.0 + (1.0 / steps - 1.0) * double(i) / double(steps - 1);
            out.push_back(schedule_.sigma_at(s * double(schedule_.size())));
        }
        out.push_back(0.0f);
        return out;
    }
    return make_flow_sigmas(kind, schedule_, steps);
}

Tensor FlowModelSampling::pure_noise(const Tensor& noise, float sigma) const { return scaled(noise, sigma); }

}  // namespace easel
