#include "pipeline/guidance.h"

#include <algorithm>
#include <memory>

#include <fmt/format.h>

#include "pipeline/model.h"
#include "runtime/ops.h"

namespace easel {

Result<Tensor> ClassifierFreeGuidance::guide(const Ctx& c, const Tensor& x, float sigma, const ConditioningPair& conds,
                                             const Conditioning* batched, const PredictDenoised& predict) const {
    if (off_) return predict(x, sigma, conds.cond);
    Tensor both, uncond_only;
    const float* dc;
    const float* du;
    if (batched) {
        EASEL_TRY_ASSIGN(both, predict(ops::concat(c, {x, x}, 0), sigma, *batched));
        dc = both.data<float>();
        du = dc + x.numel();
    } else {
        EASEL_TRY_ASSIGN(both, predict(x, sigma, conds.cond));
        EASEL_TRY_ASSIGN(uncond_only, predict(x, sigma, conds.uncond));
        dc = both.data<float>();
        du = uncond_only.data<float>();
    }
    Tensor den = Tensor::empty(x.shape());
    float* d = den.data<float>();
    const float s = float(scale_);
    for (int64_t i = 0; i < x.numel(); ++i) d[i] = du[i] + (dc[i] - du[i]) * s;
    if (skip_ && !skip_->layers.empty() && skip_->active && skip_->active(sigma)) {
        Conditioning skipping = conds.cond;
        skipping.skip_layers = skip_->layers;
        EASEL_TRY_ASSIGN(const Tensor skipped, predict(x, sigma, skipping));
        const float* ds = skipped.data<float>();
        const float k = float(skip_->scale);
        for (int64_t i = 0; i < x.numel(); ++i) d[i] += (dc[i] - ds[i]) * k;
    }
    return den;
}

bool in_guidance_window(const std::vector<float>& sigmas, float sigma, double start, double end, bool a1111) {
    // The step this call belongs to: the last schedule sigma at or above its own; `exact` when it is one.
    const int steps = std::max<int>(1, int(sigmas.size()) - 1);
    int step = 0;
    bool exact = false;
    for (int i = 0; i < steps; ++i)
        if (sigmas[size_t(i)] >= sigma * (1.0f - 1e-6f)) {
            step = i;
            exact = sigmas[size_t(i)] <= sigma * (1.0f + 1e-6f);
        }
    if (a1111) {
        // A1111's counter: a call at a schedule sigma is a step's first call (or a previous step's second one,
        // landing on it), which sees the step before; a call between two sigmas is its step's second call.
        const int a_step = exact ? std::max(step - 1, 0) : step;
        const double percent = double(a_step) / double(steps);
        return !(percent < start || percent > end);
    }
    // diffusers: keep = 1 - (i / N < start or (i + 1) / N > end)
    const double i = step, n = steps;
    return !(i / n < start || (i + 1) / n > end);
}

namespace {

// `cond` without the image prompts `active` turns off; nothing when all of them act (`cond` itself serves).
Result<std::optional<Conditioning>> without_inactive_image_prompts(const Conditioning& cond, const std::vector<bool>& active) {
    if (cond.extra_kv.empty() || std::all_of(active.begin(), active.end(), [](bool a) { return a; }))
        return std::optional<Conditioning>();
    Conditioning r = cond;
    for (BlockExtras& block : r.extra_kv) {
        if (block.size() != active.size())
            return Error::invalid_argument(fmt::format("{} image prompts in a cross-attention block, {} adapters with "
                                                       "guidance windows", block.size(), active.size()), "ip_adapter");
        BlockExtras kept;
        for (size_t j = 0; j < block.size(); ++j)
            if (active[j]) kept.push_back(block[j]);
        block = std::move(kept);
    }
    return std::optional<Conditioning>(std::move(r));
}

}  // namespace

Denoiser make_denoiser(const Ctx& c, const Model& m, const Guidance& guidance, const ConditioningPair& conds_in,
                       const DenoiserHooks& hooks) {
    // The negative prompt's items marked as such (what a guess-mode ControlNet needs to tell the halves apart).
    ConditioningPair conds = conds_in;
    if (hooks.control) {
        const Tensor& u = conds.uncond.context.defined() ? conds.uncond.context : *conds.uncond.pooled;
        conds.uncond.negative.assign(size_t(u.size(0)), true);
    }
    std::shared_ptr<const Conditioning> batched;
    if (guidance.batches()) batched = std::make_shared<const Conditioning>(Conditioning::batch(c, conds.cond, conds.uncond));
    const ModelSampling& ms = *m.sampling;
    const DiffusionModel& dm = m.diffusion_model();
    PredictDenoised predict = [c, &ms, &dm, hooks](const Tensor& x, float sigma, const Conditioning& cond) -> Result<Tensor> {
        float t = hooks.timestep ? hooks.timestep(sigma) : -1.0f;
        if (t < 0) t = ms.timestep(sigma);
        DiffusionInputs in;
        in.cond = &cond;
        std::optional<Conditioning> windowed;  // without the image prompts outside their guidance window
        if (hooks.image_prompts) {
            EASEL_TRY_ASSIGN(windowed, without_inactive_image_prompts(cond, hooks.image_prompts(sigma)));
            if (windowed) in.cond = &*windowed;
        }
        if (hooks.concat) {
            // One copy per guidance half: the hook holds the images' items, x is them once per half.
            const int64_t n = x.size(0), k = hooks.concat->size(0);
            if (n % k != 0)
                return Error::invalid_argument(fmt::format("the model input's extra channels are for {} images, the "
                                                           "call has {}", k, n), "concat");
            in.concat = n == k ? *hooks.concat : ops::concat(c, std::vector<Tensor>(size_t(n / k), *hooks.concat), 0);
        }
        const Tensor xin = ops::scale(c, x, ms.input_scale(sigma));
        if (hooks.control) {
            EASEL_TRY_ASSIGN(in.control, hooks.control(c, xin, t, *in.cond, sigma));
        }
        EASEL_TRY_ASSIGN(Tensor out, dm.predict(c, xin, t, in));
        return ms.denoised(x, out, sigma);
    };
    return [c, &guidance, conds, batched, predict, hooks](const Tensor& x, float sigma) -> Result<Tensor> {
        EASEL_TRY_ASSIGN(Tensor den, guidance.guide(c, x, sigma, conds, batched.get(), predict));
        if (hooks.after_denoise) hooks.after_denoise(den);
        return den;
    };
}

}  // namespace easel
