#include "pipeline/guidance.h"

#include <memory>

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
        if (hooks.concat) {
            const int64_t n = x.size(0);
            in.concat = n == 1 ? *hooks.concat : ops::concat(c, std::vector<Tensor>(size_t(n), *hooks.concat), 0);
        }
        const Tensor xin = ops::scale(c, x, ms.input_scale(sigma));
        if (hooks.control) {
            EASEL_TRY_ASSIGN(in.control, hooks.control(c, xin, t, cond, sigma));
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
