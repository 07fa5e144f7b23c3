// Sampler maths against analytic answers (no reference run needed); the k-diffusion comparisons are in
// tests/golden/sampler_kdiffusion_test.cpp.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "common/compare.h"
#include "sampling/diffusers_schedule.h"
#include "sampling/rng_torch_cpu.h"
#include "sampling/sampler.h"
#include "sampling/schedule.h"

using namespace easel;
using easel::testing::compare;
using easel::testing::CompareReport;

namespace {

const std::vector<SamplerKind> kAll = {SamplerKind::Euler,   SamplerKind::EulerAncestral, SamplerKind::Heun,
                                       SamplerKind::Dpm2,    SamplerKind::Lms,            SamplerKind::DpmPP2M,
                                       SamplerKind::DpmPP2MSde, SamplerKind::DpmPPSde,    SamplerKind::Ddim,
                                       SamplerKind::Lcm};
const std::vector<SamplerKind> kDeterministic = {SamplerKind::Euler, SamplerKind::Heun, SamplerKind::Dpm2,
                                                 SamplerKind::Lms,   SamplerKind::DpmPP2M, SamplerKind::Ddim};

// Counts draws so tests can check when a sampler asks for noise.
class CountingNoise final : public NoiseSource {
public:
    explicit CountingNoise(uint64_t seed) : gen_(seed) {}
    Tensor randn_like(const Tensor& x) override {
        ++draws;
        return gen_.randn(x.shape());
    }
    Tensor sde_noise(const Tensor& x, float sigma, float sigma_next) override {
        ++sde_draws;
        return randn_like(x);
    }
    int draws = 0, sde_draws = 0;

private:
    TorchCpuGenerator gen_;
};

// The exact denoiser for data ~ N(mu, sd^2) per element: E[x0 | x] = mu + (x - mu) sd^2 / (sigma^2 + sd^2).
// Its probability-flow ODE dx/dsigma = (x - D)/sigma has the solution x(sigma) - mu = (x(s0) - mu) *
// sqrt(sigma^2 + sd^2) / sqrt(s0^2 + sd^2), so every deterministic sampler must approach
// x(0) = mu + (x_T - mu) * sd / sqrt(sigma_max^2 + sd^2) as the step count grows.
constexpr double kMu = 0.2, kSd = 0.5;
Denoiser gaussian_denoiser() {
    return [](const Tensor& x, float sigma) -> Result<Tensor> {
        Tensor out = Tensor::empty(x.shape());
        const double k = kSd * kSd / (double(sigma) * sigma + kSd * kSd);
        for (int64_t i = 0; i < x.numel(); ++i) out.data<float>()[i] = float(kMu + (x.data<float>()[i] - kMu) * k);
        return out;
    };
}

Tensor exact_ode_end(const Tensor& x_start, double sigma_max) {
    Tensor out = Tensor::empty(x_start.shape());
    const double k = kSd / std::sqrt(sigma_max * sigma_max + kSd * kSd);
    for (int64_t i = 0; i < x_start.numel(); ++i)
        out.data<float>()[i] = float(kMu + (x_start.data<float>()[i] - kMu) * k);
    return out;
}

double max_abs_err(const Tensor& a, const Tensor& b) {
    double m = 0;
    for (int64_t i = 0; i < a.numel(); ++i)
        m = std::max(m, std::fabs(double(a.data<float>()[i]) - double(b.data<float>()[i])));
    return m;
}

std::vector<float> sd_sigmas(ScheduleKind k, int n) {
    return make_sigmas(k, DiscreteSchedule::stable_diffusion(), n).value();
}

// A diffusers-mode loop (sample_plms, sample_unipc) on the Gaussian ODE from seed 7's noise at 20 and 40 karras
// steps: checks that it calls the denoiser n + extra_calls times and reports every step, and returns the max
// errors against the exact end point at the two step counts.
using LoopFn = Result<Tensor> (*)(const Denoiser&, const Tensor&, const std::vector<float>&, const StepCallback&);
std::array<double, 2> gaussian_ode_errors(LoopFn loop, int extra_calls) {
    TorchCpuGenerator gen(7);
    const Tensor noise0 = gen.randn({1, 4, 8, 8});
    std::array<double, 2> err{};
    for (int pass = 0; pass < 2; ++pass) {
        const int n = pass == 0 ? 20 : 40;
        const std::vector<float> sigmas = sd_sigmas(ScheduleKind::Karras, n);
        int calls = 0, steps_seen = 0;
        Denoiser d = [&](const Tensor& x, float s) -> Result<Tensor> {
            ++calls;
            return gaussian_denoiser()(x, s);
        };
        StepCallback cb = [&](int step, int, const Tensor&) -> Status {
            steps_seen = step;
            return ok();
        };
        Tensor x = scaled(noise0, sigmas[0]);
        Tensor out = loop(d, x, sigmas, cb).value();
        EXPECT_EQ(calls, n + extra_calls);
        EXPECT_EQ(steps_seen, n);
        err[size_t(pass)] = max_abs_err(out, exact_ode_end(x, sigmas[0]));
    }
    return err;
}

}  // namespace

TEST(Sampler, ConstantDenoiserLandsOnItsPrediction) {
    // Whatever the path, the last step to sigma = 0 returns the denoiser's prediction (Euler: x + (x-c)/s * (0-s)).
    const Tensor c = Tensor::full({1, 4, 8, 8}, 0.25f);
    Denoiser d = [&](const Tensor&, float) -> Result<Tensor> { return c.clone(); };
    for (SamplerKind k : kAll) {
        TorchCpuGenerator gen(1);
        TorchCpuNoise noise(gen);
        const std::vector<float> sigmas = sd_sigmas(ScheduleKind::Karras, 10);
        Tensor x = scaled(gen.randn({1, 4, 8, 8}), sigmas[0]);
        Tensor out = sample(k, d, x, sigmas, noise).value();
        CompareReport r = compare(out, c, {.atol = 1e-6, .rtol = 0});
        EXPECT_TRUE(r.passed()) << sampler_name(k) << ": " << r.summary();
    }
}

TEST(Sampler, DeterministicSamplersSolveTheGaussianOde) {
    // Error against the exact ODE end point, with the order each method should show: halving the step size
    // divides a first-order method's error by ~2 and a second-order one's by ~4. Measured max_abs errors
    // (x_T ~ 14.6 N(0,1), karras) are printed below; bounds are ~1.5x the 40-step measurement.
    TorchCpuGenerator gen(7);
    const Tensor noise0 = gen.randn({1, 4, 8, 8});
    struct Case { SamplerKind kind; double bound40; double min_ratio; };
    const Case cases[] = {
        // Measured (seed 7): euler 6.6e-2 (ratio 1.97), heun 2.5e-3 (7.8), dpm2 3.5e-4 (29), lms 9.6e-4 (11.7),
        // dpm++2m 2.5e-3 (7.9).
        {SamplerKind::Euler, 0.1, 1.8},  {SamplerKind::Ddim, 0.1, 1.8},    {SamplerKind::Heun, 4e-3, 3.5},
        {SamplerKind::Dpm2, 6e-4, 3.5},  {SamplerKind::Lms, 1.5e-3, 3.5},  {SamplerKind::DpmPP2M, 4e-3, 3.5},
    };
    for (const Case& c : cases) {
        double err[2];
        for (int pass = 0; pass < 2; ++pass) {
            const int n = pass == 0 ? 20 : 40;
            const std::vector<float> sigmas = sd_sigmas(ScheduleKind::Karras, n);
            CountingNoise noise(0);
            Tensor x = scaled(noise0, sigmas[0]);
            Tensor out = sample(c.kind, gaussian_denoiser(), x, sigmas, noise).value();
            err[pass] = max_abs_err(out, exact_ode_end(x, sigmas[0]));
            EXPECT_EQ(noise.draws, 0) << sampler_name(c.kind) << " must not draw noise";
        }
        std::printf("%-8s max_abs err 20 steps %.3e, 40 steps %.3e, ratio %.2f\n", sampler_name(c.kind), err[0], err[1],
                    err[0] / err[1]);
        EXPECT_LT(err[1], c.bound40) << sampler_name(c.kind);
        EXPECT_GT(err[0] / err[1], c.min_ratio) << sampler_name(c.kind) << " converges slower than its order";
    }
}

TEST(Sampler, StochasticSamplersDrawTheTargetDistribution) {
    // For N(mu, sd^2) data the reverse SDE ends in exactly that distribution; the samplers approach it as steps
    // grow. 2^14 independent elements give a sampling error of ~0.004 (mean) and ~0.003 (sd).
    // Measured sd at 25 / 100 karras steps printed below. (lcm is a consistency-model sampler: with a plain
    // denoiser it shrinks the variance by design, so it is checked by the golden test only.)
    for (SamplerKind k : {SamplerKind::EulerAncestral, SamplerKind::DpmPP2MSde, SamplerKind::DpmPPSde}) {
        double sd_at[2], mean_at[2];
        for (int pass = 0; pass < 2; ++pass) {
            TorchCpuGenerator gen(99);
            TorchCpuNoise noise(gen);
            const std::vector<float> sigmas = sd_sigmas(ScheduleKind::Karras, pass == 0 ? 25 : 100);
            Tensor x = scaled(gen.randn({1, 4, 64, 64}), sigmas[0]);
            Tensor out = sample(k, gaussian_denoiser(), x, sigmas, noise).value();
            double s = 0, s2 = 0;
            const int64_t n = out.numel();
            for (int64_t i = 0; i < n; ++i) {
                s += out.data<float>()[i];
                s2 += double(out.data<float>()[i]) * out.data<float>()[i];
            }
            mean_at[pass] = s / double(n);
            sd_at[pass] = std::sqrt(s2 / double(n) - mean_at[pass] * mean_at[pass]);
        }
        std::printf("%-12s 25 steps: mean %.4f sd %.4f   100 steps: mean %.4f sd %.4f   (want %.2f, %.2f)\n",
                    sampler_name(k), mean_at[0], sd_at[0], mean_at[1], sd_at[1], kMu, kSd);
        EXPECT_NEAR(mean_at[1], kMu, 0.015) << sampler_name(k);
        EXPECT_NEAR(sd_at[1], kSd, 0.02) << sampler_name(k);
        EXPECT_LE(std::fabs(sd_at[1] - kSd), std::fabs(sd_at[0] - kSd) + 0.006) << sampler_name(k) << " does not converge";
    }
}

TEST(Sampler, EulerAncestralVarianceFollowsItsRecursion) {
    // Per element, euler_a on Gaussian data is linear: x' - mu = a (x - mu) + sigma_up * n with
    // a = 1 + (sigma_down - sigma) (1 - k) / sigma, k = sd^2 / (sigma^2 + sd^2). Propagating mean and variance
    // through the steps predicts the output distribution exactly; the sample must match it within sampling error.
    const std::vector<float> sigmas = sd_sigmas(ScheduleKind::Karras, 25);
    double mean = 0.0, var = double(sigmas[0]) * sigmas[0];  // x = sigma_0 * N(0, 1)
    for (size_t i = 0; i + 1 < sigmas.size(); ++i) {
        const double s = sigmas[i], sn = sigmas[i + 1];
        const double up = sn > 0 ? std::min(sn, std::sqrt(sn * sn * (s * s - sn * sn) / (s * s))) : 0.0;
        const double down = std::sqrt(sn * sn - up * up);
        const double k = kSd * kSd / (s * s + kSd * kSd);
        const double a = 1.0 + (down - s) * (1.0 - k) / s;
        mean = kMu + a * (mean - kMu);
        var = a * a * var + up * up;
    }
    TorchCpuGenerator gen(1234);
    TorchCpuNoise noise(gen);
    Tensor x = scaled(gen.randn({1, 4, 64, 64}), sigmas[0]);
    Tensor out = sample(SamplerKind::EulerAncestral, gaussian_denoiser(), x, sigmas, noise).value();
    double s = 0, s2 = 0;
    const int64_t n = out.numel();
    for (int64_t i = 0; i < n; ++i) {
        s += out.data<float>()[i];
        s2 += double(out.data<float>()[i]) * out.data<float>()[i];
    }
    const double m = s / double(n), sd = std::sqrt(s2 / double(n) - m * m);
    std::printf("euler_a: predicted mean %.4f sd %.4f, sampled mean %.4f sd %.4f\n", mean, std::sqrt(var), m, sd);
    EXPECT_NEAR(m, mean, 0.016);             // 4 sampling standard errors (0.0039 each)
    EXPECT_NEAR(sd, std::sqrt(var), 0.012);  // likewise (0.0027 each)
}

TEST(Sampler, LcmStepIsDenoisedPlusFreshNoise) {
    // ComfyUI sample_lcm: x_{i+1} = D(x_i, sigma_i) + sigma_{i+1} * n_i, the last step without noise.
    const std::vector<float> sigmas = {14.6f, 3.0f, 0.5f, 0.0f};
    TorchCpuGenerator g1(8), g2(8);
    TorchCpuNoise noise(g1);
    Tensor x = scaled(g1.randn({1, 4, 4, 4}), sigmas[0]);
    Tensor expect = scaled(g2.randn({1, 4, 4, 4}), sigmas[0]);
    for (size_t i = 0; i + 1 < sigmas.size(); ++i) {
        expect = gaussian_denoiser()(expect, sigmas[i]).value();
        if (sigmas[i + 1] > 0) {
            Tensor n = g2.randn({1, 4, 4, 4});
            for (int64_t j = 0; j < n.numel(); ++j) expect.data<float>()[j] += sigmas[i + 1] * n.data<float>()[j];
        }
    }
    Tensor got = sample(SamplerKind::Lcm, gaussian_denoiser(), x, sigmas, noise).value();
    CompareReport r = compare(got, expect, {.atol = 1e-6, .rtol = 1e-6});
    EXPECT_TRUE(r.passed()) << r.summary();
}

TEST(Sampler, NoiseIsDrawnWhenKDiffusionDrawsIt) {
    // The draw order is what makes a seed reproduce: euler_a and lcm draw once per step except the last (to 0);
    // dpm++2m_sde once per step except the last through sde_noise; dpm++sde twice per such step.
    const std::vector<float> sigmas = sd_sigmas(ScheduleKind::Default, 8);
    auto draws = [&](SamplerKind k, double eta) {
        CountingNoise noise(3);
        SamplerOptions o;
        o.eta = eta;
        Tensor x = Tensor::full({1, 4, 4, 4}, 1.0f);
        EXPECT_TRUE(sample(k, gaussian_denoiser(), x, sigmas, noise, {}, o).has_value());
        return std::pair{noise.draws, noise.sde_draws};
    };
    EXPECT_EQ(draws(SamplerKind::EulerAncestral, 1.0), (std::pair{7, 0}));
    EXPECT_EQ(draws(SamplerKind::Lcm, 1.0), (std::pair{7, 0}));
    EXPECT_EQ(draws(SamplerKind::DpmPP2MSde, 1.0), (std::pair{7, 7}));
    EXPECT_EQ(draws(SamplerKind::DpmPPSde, 1.0), (std::pair{14, 14}));
    EXPECT_EQ(draws(SamplerKind::DpmPP2MSde, 0.0), (std::pair{0, 0}));  // eta = 0: k-diffusion skips the draw
    for (SamplerKind k : kDeterministic) EXPECT_EQ(draws(k, 1.0), (std::pair{0, 0})) << sampler_name(k);
}

TEST(Sampler, EtaZeroEulerAncestralIsEuler) {
    const std::vector<float> sigmas = sd_sigmas(ScheduleKind::Karras, 12);
    TorchCpuGenerator g(5);
    const Tensor x = scaled(g.randn({1, 4, 8, 8}), sigmas[0]);
    CountingNoise n1(0), n2(0);
    SamplerOptions o;
    o.eta = 0.0;
    Tensor a = sample(SamplerKind::EulerAncestral, gaussian_denoiser(), x, sigmas, n1, {}, o).value();
    Tensor b = sample(SamplerKind::Euler, gaussian_denoiser(), x, sigmas, n2).value();
    CompareReport r = compare(a, b, {.atol = 0, .rtol = 0});
    EXPECT_TRUE(r.passed()) << r.summary();
}

TEST(Sampler, DenoiserCallsAndCallbacks) {
    const std::vector<float> sigmas = sd_sigmas(ScheduleKind::Karras, 6);
    for (SamplerKind k : kAll) {
        int calls = 0;
        std::vector<int> seen;
        Denoiser d = [&](const Tensor& x, float s) -> Result<Tensor> {
            ++calls;
            return gaussian_denoiser()(x, s);
        };
        StepCallback cb = [&](int step, int total, const Tensor&) -> Status {
            EXPECT_EQ(total, 6);
            seen.push_back(step);
            return ok();
        };
        CountingNoise noise(1);
        ASSERT_TRUE(sample(k, d, Tensor::full({1, 4, 2, 2}, 3.0f), sigmas, noise, cb).has_value());
        EXPECT_EQ(calls, denoiser_calls(k, sigmas)) << sampler_name(k);
        EXPECT_EQ(seen, (std::vector<int>{1, 2, 3, 4, 5, 6})) << sampler_name(k);
    }
    EXPECT_EQ(denoiser_calls(SamplerKind::Heun, sigmas), 11);
    EXPECT_EQ(denoiser_calls(SamplerKind::DpmPP2M, sigmas), 6);
}

TEST(Sampler, CallbackErrorCancels) {
    const std::vector<float> sigmas = sd_sigmas(ScheduleKind::Karras, 6);
    int steps = 0;
    StepCallback cb = [&](int step, int, const Tensor&) -> Status {
        steps = step;
        if (step == 2) return Error::cancelled();
        return ok();
    };
    CountingNoise noise(1);
    auto r = sample(SamplerKind::DpmPP2M, gaussian_denoiser(), Tensor::full({1, 4, 2, 2}, 1.0f), sigmas, noise, cb);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code(), ErrorCode::Cancelled);
    EXPECT_EQ(steps, 2);
}

TEST(Sampler, BadInputsAreErrors) {
    CountingNoise noise(1);
    const Tensor x = Tensor::full({1, 4, 2, 2}, 1.0f);
    auto expect_error = [&](const Result<Tensor>& r, const std::string& what) {
        ASSERT_FALSE(r.has_value()) << what;
        EXPECT_FALSE(r.error().message().empty()) << what;
    };
    expect_error(sample(SamplerKind::Euler, gaussian_denoiser(), x, {14.6f}, noise), "one sigma");
    expect_error(sample(SamplerKind::Euler, gaussian_denoiser(), x, {14.6f, NAN, 0.0f}, noise), "NaN sigma");
    expect_error(sample(SamplerKind::Euler, gaussian_denoiser(), x, {14.6f, -1.0f, 0.0f}, noise), "negative sigma");
    expect_error(sample(SamplerKind::Euler, gaussian_denoiser(), x, {14.6f, 0.0f, 0.0f}, noise), "zero before the end");
    expect_error(sample(SamplerKind::Euler, gaussian_denoiser(), x.to(DType::F16), {14.6f, 0.0f}, noise), "f16 latent");
    Denoiser wrong_shape = [](const Tensor&, float) -> Result<Tensor> { return Tensor::zeros({3}); };
    expect_error(sample(SamplerKind::Heun, wrong_shape, x, {14.6f, 1.0f, 0.0f}, noise), "denoiser shape");
    Denoiser failing = [](const Tensor&, float) -> Result<Tensor> { return Error::internal("model exploded"); };
    auto r = sample(SamplerKind::Lms, failing, x, {14.6f, 1.0f, 0.0f}, noise);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().message(), "model exploded");
    SamplerOptions o;
    o.lms_order = 5;
    expect_error(sample(SamplerKind::Lms, gaussian_denoiser(), x, {14.6f, 0.0f}, noise, {}, o), "lms order");
}

TEST(Sampler, LmsCoefficientsIntegrateTheLagrangeBasis) {
    // Order 1 is the Euler step; for any order the basis sums to 1, so the coefficients sum to the step.
    const std::vector<float> s = sd_sigmas(ScheduleKind::Karras, 10);
    EXPECT_NEAR(lms_coefficient(1, s, 0, 0), double(s[1]) - s[0], 1e-12);
    for (int i = 3; i < 10; ++i) {
        double sum = 0;
        for (int j = 0; j < 4; ++j) sum += lms_coefficient(4, s, i, j);
        // Not exact: like k-diffusion we round the node differences to float32 (see lms_coefficient).
        const double step = double(s[size_t(i + 1)]) - s[size_t(i)];
        EXPECT_NEAR(sum, step, 1e-6 * std::fabs(step)) << i;
    }
    // Equally spaced nodes at unit spacing, order 2, stepping forward by one: Adams-Bashforth 3/2, -1/2.
    const std::vector<float> lin = {4, 3, 2, 1};
    EXPECT_NEAR(lms_coefficient(2, lin, 1, 0), -1.5, 1e-12);
    EXPECT_NEAR(lms_coefficient(2, lin, 1, 1), 0.5, 1e-12);
}

TEST(Sampler, ParsesTheNamesOtherToolsUse) {
    const std::pair<const char*, SamplerKind> names[] = {
        {"euler_a", SamplerKind::EulerAncestral},   {"k_euler_a", SamplerKind::EulerAncestral},
        {"Euler a", SamplerKind::EulerAncestral},   {"euler_ancestral", SamplerKind::EulerAncestral},
        {"sample_euler_ancestral", SamplerKind::EulerAncestral},
        {"Euler", SamplerKind::Euler},               {"k_lms", SamplerKind::Lms},
        {"LMS", SamplerKind::Lms},                   {"Heun", SamplerKind::Heun},
        {"DPM2", SamplerKind::Dpm2},                 {"k_dpm_2", SamplerKind::Dpm2},
        {"DPM++ 2M", SamplerKind::DpmPP2M},          {"dpmpp_2m", SamplerKind::DpmPP2M},
        {"dpm++2m", SamplerKind::DpmPP2M},           {"DPM++ 2M Karras", SamplerKind::DpmPP2M},
        {"DPM++ 2M SDE", SamplerKind::DpmPP2MSde},   {"dpmpp_2m_sde", SamplerKind::DpmPP2MSde},
        {"DPM++ SDE", SamplerKind::DpmPPSde},        {"dpmpp_sde", SamplerKind::DpmPPSde},
        {"DDIM", SamplerKind::Ddim},                 {"lcm", SamplerKind::Lcm},
    };
    for (const auto& [n, k] : names) {
        auto r = parse_sampler_name(n);
        ASSERT_TRUE(r.has_value()) << n;
        EXPECT_EQ(*r, k) << n;
    }
    for (SamplerKind k : kAll) EXPECT_EQ(*parse_sampler_name(sampler_name(k)), k);
    auto bad = parse_sampler_name("unipc");
    ASSERT_FALSE(bad.has_value());
    EXPECT_NE(bad.error().message().find("dpm++2m"), std::string::npos);
}

TEST(Plms, SolvesTheGaussianOdeAndCountsCalls) {
    // PNDM's PLMS (diffusers mode): n steps cost n + 1 calls (n >= 2), 1 call for n = 1; on the Gaussian ODE it
    // is at least second order. Measured (seed 7, karras): 6.4e-3 at 20 steps, 2.8e-4 at 40 (ratio 23).
    const auto err = gaussian_ode_errors(&sample_plms, 1);
    std::printf("plms     max_abs err 20 steps %.3e, 40 steps %.3e, ratio %.2f\n", err[0], err[1], err[0] / err[1]);
    EXPECT_LT(err[1], 4e-4);
    EXPECT_GT(err[0] / err[1], 3.5);

    int calls = 0;
    Denoiser d = [&](const Tensor& x, float s) -> Result<Tensor> {
        ++calls;
        return gaussian_denoiser()(x, s);
    };
    ASSERT_TRUE(sample_plms(d, Tensor::full({1, 4, 2, 2}, 2.0f), {14.6f, 0.03f}).has_value());
    EXPECT_EQ(calls, 1);
    EXPECT_FALSE(sample_plms(d, Tensor::full({1, 4, 2, 2}, 2.0f), {14.6f}).has_value());
}

TEST(UniPC, SolvesTheGaussianOdeAndCountsCalls) {
    // UniPC (diffusers mode): one call per step; on the Gaussian ODE the predictor-corrector pair is at least
    // second order. Measured (seed 7, karras): 8.0e-3 at 20 steps, 1.39e-3 at 40 (ratio 5.8); the order-1 last
    // step to 0 (lower_order_final) dominates, hence more than PLMS's error.
    const auto err = gaussian_ode_errors(&sample_unipc, 0);
    std::printf("unipc    max_abs err 20 steps %.3e, 40 steps %.3e, ratio %.2f\n", err[0], err[1], err[0] / err[1]);
    EXPECT_LT(err[1], 1.9e-3);
    EXPECT_GT(err[0] / err[1], 3.5);

    Denoiser d = gaussian_denoiser();
    EXPECT_FALSE(sample_unipc(d, Tensor::full({1, 4, 2, 2}, 2.0f), {14.6f}).has_value());
    // LCM needs one timestep per step.
    TorchCpuGenerator gen(7);
    TorchCpuNoise noise(gen);
    auto bad = sample_lcm_diffusers(d, Tensor::full({1, 4, 2, 2}, 2.0f), {14.6f, 1.0f, 0.0f}, {999.0f}, noise);
    ASSERT_FALSE(bad.has_value());
    EXPECT_NE(bad.error().message().find("timestep"), std::string::npos) << bad.error().message();
}

TEST(DiffusersPlan, DdimAndPndmEndAtSigmaMinAndRescale) {
    // set_alpha_to_one = false: the last target is alphas_cumprod[0]'s sigma, and diffusers' latents are ours
    // times sqrt(alphas_cumprod[0]).
    const DiffusersPlan plan = diffusers_plan(DiffusersScheduler::Pndm, {}, 20).value();
    ASSERT_EQ(plan.sigmas.size(), 21u);
    EXPECT_TRUE(plan.plms);
    EXPECT_EQ(plan.timesteps.front(), 951.0f);
    EXPECT_EQ(plan.timesteps.back(), 1.0f);
    const std::vector<float> ac = diffusers_alphas_cumprod({});
    EXPECT_NEAR(plan.sigmas.back(), std::sqrt((1.0 - ac[0]) / ac[0]), 1e-7);
    EXPECT_FLOAT_EQ(plan.final_scale, std::sqrt(ac[0]));
    EXPECT_EQ(plan.timestep_for(plan.sigmas[3]), plan.timesteps[3]);
    EXPECT_EQ(plan.timestep_for(1234.0f), -1.0f);
}
