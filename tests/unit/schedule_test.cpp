// Schedule properties that need no reference run (the k-diffusion comparisons are in
// tests/golden/sampler_kdiffusion_test.cpp).
#include <gtest/gtest.h>

#include <cmath>

#include "sampling/schedule.h"

using namespace easel;

namespace {
const std::vector<ScheduleKind> kAll = {ScheduleKind::Default,     ScheduleKind::Karras, ScheduleKind::Exponential,
                                        ScheduleKind::SgmUniform,  ScheduleKind::Simple, ScheduleKind::DdimUniform,
                                        ScheduleKind::AlignYourSteps, ScheduleKind::AlignYourStepsXL};
}

TEST(Schedule, StableDiffusionSigmaRange) {
    // SD's sigma_max is 14.6146; sigma_min is 0.02916753 from k-diffusion's float32 maths (the value GITS lists
    // carry) and 0.0291671582 from ComfyUI's float64 maths (the value the AYS lists carry): 1.3e-5 apart.
    const DiscreteSchedule s = DiscreteSchedule::stable_diffusion();
    ASSERT_EQ(s.size(), 1000);
    EXPECT_NEAR(s.sigma_max(), 14.6146412293, 2e-6);
    EXPECT_NEAR(s.sigma_min(), 0.02916753, 1e-8);
    for (int t = 1; t < s.size(); ++t) ASSERT_LT(s.sigmas()[size_t(t - 1)], s.sigmas()[size_t(t)]) << t;
}

TEST(Schedule, SigmaToTInvertsTToSigma) {
    const DiscreteSchedule s = DiscreteSchedule::stable_diffusion();
    for (float t : {0.0f, 0.25f, 1.0f, 17.5f, 500.0f, 981.75f, 999.0f}) {
        const float back = s.sigma_to_t(s.t_to_sigma(t));
        EXPECT_NEAR(back, t, 2e-3f) << t;  // float32 log/exp round trip, a few ulp of t
    }
    EXPECT_EQ(s.sigma_to_t_quantized(s.sigmas()[321]), 321);
    // Outside the table sigma_to_t clamps, as k-diffusion's w.clamp(0, 1) does.
    EXPECT_EQ(s.sigma_to_t(100.0f), 999.0f);
    EXPECT_EQ(s.sigma_to_t(1e-4f), 0.0f);
}

TEST(Schedule, EveryKindIsDescendingAndEndsAtZero) {
    const DiscreteSchedule s = DiscreteSchedule::stable_diffusion();
    for (ScheduleKind k : kAll) {
        for (int n : {1, 2, 7, 20, 50, 150}) {
            auto r = make_sigmas(k, s, n);
            ASSERT_TRUE(r.has_value()) << schedule_name(k) << " " << n;
            const std::vector<float>& v = *r;
            if (k == ScheduleKind::DdimUniform)
                EXPECT_GE(int(v.size()), n + 1) << n;  // ComfyUI may add a step when 1000 % n != 0
            else
                EXPECT_EQ(int(v.size()), n + 1) << schedule_name(k) << " " << n;
            EXPECT_EQ(v.back(), 0.0f);
            for (size_t i = 1; i + 1 < v.size(); ++i) EXPECT_GT(v[i - 1], v[i]) << schedule_name(k) << " n=" << n << " i=" << i;
            EXPECT_LE(v.front(), s.sigma_max() * 1.0001f) << schedule_name(k);
        }
    }
}

TEST(Schedule, KarrasAndExponentialHitTheModelRange) {
    const DiscreteSchedule s = DiscreteSchedule::stable_diffusion();
    std::vector<float> k = karras_sigmas(20, s.sigma_min(), s.sigma_max());
    EXPECT_NEAR(k.front(), s.sigma_max(), 1e-5 * s.sigma_max());
    EXPECT_NEAR(k[19], s.sigma_min(), 1e-5 * s.sigma_min());
    std::vector<float> e = exponential_sigmas(20, s.sigma_min(), s.sigma_max());
    EXPECT_NEAR(e.front(), s.sigma_max(), 1e-5 * s.sigma_max());
    EXPECT_NEAR(e[19], s.sigma_min(), 1e-5 * s.sigma_min());
    // Exponential: constant ratio between neighbours.
    for (int i = 1; i < 19; ++i) EXPECT_NEAR(e[size_t(i)] / e[size_t(i - 1)], e[1] / e[0], 1e-5);
}

TEST(Schedule, AlignYourStepsTenStepsIsThePublishedList) {
    const DiscreteSchedule s = DiscreteSchedule::stable_diffusion();
    const std::vector<float> v = make_sigmas(ScheduleKind::AlignYourSteps, s, 10).value();
    const double published[] = {14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092,
                                0.9642583904,  0.6523686016, 0.3977456272, 0.1515232662};
    for (int i = 0; i < 10; ++i) EXPECT_EQ(v[size_t(i)], float(published[i])) << i;
    EXPECT_EQ(v[10], 0.0f);  // ComfyUI replaces the last level (sigma_min) by 0
    // 20 steps: log-linear resampling keeps the end points and puts every old level at an even index.
    const std::vector<float> v20 = make_sigmas(ScheduleKind::AlignYourSteps, s, 20).value();
    for (int i = 0; i < 10; ++i) EXPECT_NEAR(v20[size_t(2 * i)], published[i], 2e-6 * published[i]) << i;
}

TEST(Schedule, SimpleAndDdimUniformPickTrainingSigmas) {
    const DiscreteSchedule s = DiscreteSchedule::stable_diffusion();
    const std::vector<float> simple = make_sigmas(ScheduleKind::Simple, s, 4).value();
    EXPECT_EQ(simple[0], s.sigmas()[999]);
    EXPECT_EQ(simple[1], s.sigmas()[749]);
    EXPECT_EQ(simple[3], s.sigmas()[249]);
    const std::vector<float> ddim = make_sigmas(ScheduleKind::DdimUniform, s, 20).value();
    ASSERT_EQ(ddim.size(), 21u);
    EXPECT_EQ(ddim[0], s.sigmas()[951]);
    EXPECT_EQ(ddim[19], s.sigmas()[1]);
}

TEST(Schedule, BadStepsAndNamesAreErrors) {
    const DiscreteSchedule s = DiscreteSchedule::stable_diffusion();
    auto r = make_sigmas(ScheduleKind::Karras, s, 0);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code(), ErrorCode::InvalidArgument);
    EXPECT_EQ(r.error().where(), "steps");
    EXPECT_FALSE(make_sigmas(ScheduleKind::Default, s, 100000).has_value());
    EXPECT_EQ(*parse_schedule_name("Karras"), ScheduleKind::Karras);
    EXPECT_EQ(*parse_schedule_name("sgm-uniform"), ScheduleKind::SgmUniform);
    EXPECT_EQ(*parse_schedule_name("normal"), ScheduleKind::Default);
    EXPECT_EQ(*parse_schedule_name("AYS"), ScheduleKind::AlignYourSteps);
    auto bad = parse_schedule_name("polyexponential");
    ASSERT_FALSE(bad.has_value());
    EXPECT_NE(bad.error().message().find("karras"), std::string::npos) << "the message lists the valid names";
    for (ScheduleKind k : kAll) EXPECT_EQ(*parse_schedule_name(schedule_name(k)), k);
}
