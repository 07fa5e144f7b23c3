// Diffusers mode against diffusers v0.30.3: each scheduler's sigma list, UNet timesteps and initial noise
// scale, and its full 12-step loop with an analytic eps model reproduced by our k-diffusion-form samplers.
// Golden made by tools/reference/make_sampler_goldens.py (tests/golden/data/sampler_diffusers.safetensors).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/compare.h"
#include "io/safetensors.h"
#include "sampling/diffusers_schedule.h"
#include "sampling/rng_torch_cpu.h"
#include "sampling/sampler.h"

using namespace easel;
using easel::testing::compare;
using easel::testing::CompareReport;

namespace {

const WeightSet& golden() {
    static WeightSet w = [] {
        auto r = read_safetensors(std::string(EASEL_GOLDEN_DIR) + "/sampler_diffusers.safetensors");
        if (!r) {
            ADD_FAILURE() << r.error().to_string()
                          << " (regenerate: source /work/refenv/env.sh && /usr/bin/python3 "
                             "tools/reference/make_sampler_goldens.py)";
            return WeightSet{};
        }
        return std::move(r).value();
    }();
    return w;
}

std::vector<float> floats(const std::string& name) {
    const Tensor* t = golden().find(name);
    if (!t) {
        ADD_FAILURE() << "golden tensor " << name << " is missing";
        return {};
    }
    return t->to_floats();
}

struct Case {
    std::string name;
    DiffusersScheduler scheduler;
    TimestepSpacing spacing;
    bool karras;
    std::string key() const {
        const char* sp = spacing == TimestepSpacing::Leading ? "leading"
                         : spacing == TimestepSpacing::Linspace ? "linspace" : "trailing";
        return name + "/" + sp + (karras ? "/karras" : "");
    }
};

std::vector<Case> cases() {
    std::vector<Case> out = {{"ddim", DiffusersScheduler::Ddim, TimestepSpacing::Leading, false},
                             {"pndm", DiffusersScheduler::Pndm, TimestepSpacing::Leading, false},
                             {"lcm", DiffusersScheduler::Lcm, TimestepSpacing::Leading, false}};
    const std::pair<const char*, DiffusersScheduler> schedulers[] = {
        {"euler", DiffusersScheduler::Euler}, {"euler_a", DiffusersScheduler::EulerAncestral},
        {"heun", DiffusersScheduler::Heun},   {"lms", DiffusersScheduler::Lms},
        {"dpm++2m", DiffusersScheduler::DpmSolverMultistep}, {"unipc", DiffusersScheduler::UniPC}};
    for (const auto& [name, s] : schedulers)
        for (TimestepSpacing sp : {TimestepSpacing::Leading, TimestepSpacing::Linspace, TimestepSpacing::Trailing})
            for (bool karras : {false, true}) {
                if (karras && s == DiffusersScheduler::EulerAncestral) continue;
                out.push_back({name, s, sp, karras});
            }
    return out;
}

// The script's eps model on the UNet input x_in = x / sqrt(sigma^2 + 1) at timestep t, in float32.
Tensor eps_model(const Tensor& x_in, float t) {
    const float scale = 0.5f + t / 2000.0f;
    const int64_t w = x_in.size(-1), rows = x_in.numel() / w;
    Tensor out = Tensor::empty(x_in.shape());
    const float* p = x_in.data<float>();
    float* o = out.data<float>();
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < w; ++j) o[r * w + j] = std::tanh(p[r * w + j] * scale + 0.2f * p[r * w + (w - 1 - j)]);
    return out;
}

}  // namespace

TEST(DiffusersGolden, AlphasCumprod) {
    // float32 linspace/pow/cumprod in torch vs the same formulas here: a few ulp.
    CompareReport r = compare(diffusers_alphas_cumprod({}), floats("alphas_cumprod"), {.atol = 0, .rtol = 1e-6});
    std::printf("alphas_cumprod: %s\n", r.summary().c_str());
    EXPECT_TRUE(r.passed()) << r.summary();
}

TEST(DiffusersGolden, PlansMatchSetTimesteps) {
    int checked = 0;
    double worst_sigma = 0, worst_t = 0;
    for (const Case& c : cases()) {
        DiffusersSchedulerConfig cfg;
        cfg.timestep_spacing = c.spacing;
        cfg.use_karras_sigmas = c.karras;
        for (int n : {12, 20, 25}) {
            const std::string base = "plan/" + c.key() + "/" + std::to_string(n);
            auto plan = diffusers_plan(c.scheduler, cfg, n);
            ASSERT_TRUE(plan.has_value()) << base << ": " << plan.error().to_string();
            if (c.scheduler == DiffusersScheduler::Ddim || c.scheduler == DiffusersScheduler::Pndm ||
                c.scheduler == DiffusersScheduler::Lcm) {
                // No sigma list in diffusers; timesteps are integers and init_noise_sigma is 1 (VP).
                CompareReport rt = compare(plan->timesteps, floats(base + "/timesteps"), {.atol = 0, .rtol = 0});
                EXPECT_TRUE(rt.passed()) << base << " timesteps: " << rt.summary();
                EXPECT_EQ(floats(base + "/init").at(0), 1.0f) << base;
                EXPECT_EQ(plan->sigmas.size(), size_t(n + 1));
                ++checked;
                continue;
            }
            // Sigmas: float64 numpy from float32 training sigmas on both sides; karras goes through pow(.., 7).
            CompareReport rs = compare(plan->sigmas, floats(base + "/sigmas"), {.atol = 0, .rtol = 2e-6});
            EXPECT_TRUE(rs.passed()) << base << " sigmas: " << rs.summary();
            // Timesteps: integers (exact) or karras' fractional sigma_to_t (float32 log table): 1e-3 absolute.
            CompareReport rt = compare(plan->timesteps, floats(base + "/timesteps"), {.atol = 1e-3, .rtol = 0});
            EXPECT_TRUE(rt.passed()) << base << " timesteps: " << rt.summary();
            // diffusers' init_noise_sigma is in its own variables; DPM-Solver's is VP (1.0), i.e. our
            // x = noise * sqrt(sigma_0^2 + 1).
            float init = floats(base + "/init").at(0);
            if (c.scheduler == DiffusersScheduler::DpmSolverMultistep || c.scheduler == DiffusersScheduler::UniPC)
                init *= std::sqrt(plan->sigmas[0] * plan->sigmas[0] + 1.0f);
            EXPECT_NEAR(plan->init_noise_scale, init, 1e-6 * init) << base;
            worst_sigma = std::max(worst_sigma, rs.used);
            worst_t = std::max(worst_t, rt.used);
            ++checked;
        }
    }
    std::printf("%d plans; worst tolerance use: sigmas %.0f%%, timesteps %.0f%%\n", checked, 100 * worst_sigma,
                100 * worst_t);
    EXPECT_EQ(checked, 36 * 3);
}

// Full loops (12 steps; UniPC and LCM also 1, 4 and 7; LCM draws its noise from the generator). Our side:
// x = randn * init_noise_scale, the k-diffusion-form sampler the plan names, and a denoiser that calls the eps model at the plan's timestep for that sigma
// (x0 = x - sigma * eps). Tolerance as in the k-diffusion golden (float32 operation order only). Measured (x86-64,
// g++ 12): worst use 43% (euler_a/linspace), largest max_abs 2.7e-05 on values up to ~10 (dpm++2m karras,
// unipc karras/7); unipc worst 40% (trailing/7); plans: sigmas 13%, timesteps 6% of theirs.
TEST(DiffusersGolden, LoopsMatchDiffusers) {
    const uint64_t seed = std::stoull(golden().metadata.count("seed") ? golden().metadata.at("seed") : "0");
    int checked = 0;
    double worst = 0;
    std::string worst_key;
    std::vector<std::pair<Case, int>> runs;  // UniPC also at 1, 4 and 7 steps ("run/<key>/<n>")
    for (const Case& c : cases()) {
        runs.push_back({c, 12});
        if (c.scheduler == DiffusersScheduler::UniPC || c.scheduler == DiffusersScheduler::Lcm)
            for (int n : {1, 4, 7}) runs.push_back({c, n});
    }
    for (const auto& [c, steps] : runs) {
        DiffusersSchedulerConfig cfg;
        cfg.timestep_spacing = c.spacing;
        cfg.use_karras_sigmas = c.karras;
        const DiffusersPlan plan = diffusers_plan(c.scheduler, cfg, steps).value();
        const std::string key = c.key() + (steps == 12 ? "" : "/" + std::to_string(steps));
        TorchCpuGenerator gen(seed);
        TorchCpuNoise noise(gen);
        Tensor x = scaled(gen.randn({1, 4, 6, 6}), plan.init_noise_scale);
        bool missing_t = false;
        Denoiser d = [&](const Tensor& in, float sigma) -> Result<Tensor> {
            const float t = plan.timestep_for(sigma);
            if (t < 0) missing_t = true;
            const float c_in = 1.0f / std::sqrt(sigma * sigma + 1.0f);
            Tensor eps = eps_model(scaled(in, c_in), t);
            Tensor out = Tensor::empty(in.shape());
            for (int64_t i = 0; i < in.numel(); ++i)
                out.data<float>()[i] = in.data<float>()[i] - sigma * eps.data<float>()[i];
            return out;
        };
        Tensor got = sample_diffusers(plan, d, x, noise).value();
        EXPECT_FALSE(missing_t) << key << ": the sampler asked for a sigma outside the plan";
        // A single step lands on x0 = x - sigma * eps straight from the noise (|x| up to ~4 sigma_0 = 58): the
        // cancellation costs an ulp or so of x on both sides, 3.8e-6 measured, hence atol 6e-7 * sigma_0 there.
        const double atol = steps == 1 ? std::max(1e-6, 6e-7 * plan.sigmas[0]) : 1e-6;
        CompareReport r = compare(got.to_floats(), floats("run/" + key), {.atol = atol, .rtol = 4e-6});
        EXPECT_TRUE(r.passed()) << key << ": " << r.summary();
        std::printf("%-28s %s\n", key.c_str(), r.summary().c_str());
        if (r.used > worst) worst = r.used, worst_key = key;
        ++checked;
    }
    std::printf("worst: %s used %.0f%% of the tolerance\n", worst_key.c_str(), 100 * worst);
    EXPECT_EQ(checked, 36 + 7 * 3);
}

TEST(DiffusersPlan, RejectsWhatDiffusersLacks) {
    DiffusersSchedulerConfig cfg;
    cfg.use_karras_sigmas = true;
    auto r = diffusers_plan(DiffusersScheduler::EulerAncestral, cfg, 20);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code(), ErrorCode::Unsupported);
    EXPECT_FALSE(diffusers_plan(DiffusersScheduler::Euler, {}, 0).has_value());
    EXPECT_EQ(*parse_diffusers_scheduler("DPMSolverMultistepScheduler"), DiffusersScheduler::DpmSolverMultistep);
    EXPECT_EQ(*parse_diffusers_scheduler("EulerAncestralDiscreteScheduler"), DiffusersScheduler::EulerAncestral);
    EXPECT_EQ(*parse_diffusers_scheduler("PNDMScheduler"), DiffusersScheduler::Pndm);
    EXPECT_EQ(*parse_diffusers_scheduler("UniPCMultistepScheduler"), DiffusersScheduler::UniPC);
    EXPECT_EQ(*parse_diffusers_scheduler("LCMScheduler"), DiffusersScheduler::Lcm);
    auto kdpm = parse_diffusers_scheduler("KDPM2DiscreteScheduler");
    ASSERT_FALSE(kdpm.has_value());
    EXPECT_EQ(kdpm.error().code(), ErrorCode::Unsupported);
    EXPECT_FALSE(diffusers_plan(DiffusersScheduler::Lcm, {}, 51).has_value()) << "LCM: at most 50 steps";
    cfg.use_karras_sigmas = false;
    cfg.timestep_spacing = TimestepSpacing::Trailing;
    EXPECT_FALSE(diffusers_plan(DiffusersScheduler::Pndm, cfg, 20).has_value());
}
