// scheduler_config.json as diffusers' from_config reads it for diffusers mode (src/pipeline/sd_model.h).
#include <gtest/gtest.h>

#include "pipeline/sd_model.h"

using namespace easel;

TEST(SchedulerConfig, Sd15FileLeavesTheSpacingToEachClass) {
    // SD 1.5's scheduler_config.json: PNDM, steps_offset 1, no timestep_spacing.
    auto c = parse_scheduler_config(R"({"_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
        "beta_start": 0.00085, "clip_sample": false, "num_train_timesteps": 1000, "set_alpha_to_one": false,
        "skip_prk_steps": true, "steps_offset": 1, "trained_betas": null})", "sd15.json");
    ASSERT_TRUE(c) << c.error().to_string();
    EXPECT_FALSE(c->spacing_given);
    EXPECT_EQ(c->base.steps_offset, 1);
    EXPECT_EQ(c->for_scheduler(DiffusersScheduler::Euler).timestep_spacing, TimestepSpacing::Linspace);
    EXPECT_EQ(c->for_scheduler(DiffusersScheduler::DpmSolverMultistep).timestep_spacing, TimestepSpacing::Linspace);
    EXPECT_EQ(c->for_scheduler(DiffusersScheduler::Ddim).timestep_spacing, TimestepSpacing::Leading);
    EXPECT_EQ(c->for_scheduler(DiffusersScheduler::Pndm).timestep_spacing, TimestepSpacing::Leading);
}

TEST(SchedulerConfig, GivenSpacingAndKarrasAreKept) {
    auto c = parse_scheduler_config(R"({"_class_name": "EulerDiscreteScheduler", "timestep_spacing": "trailing",
        "use_karras_sigmas": true, "num_train_timesteps": 1000})", "x.json");
    ASSERT_TRUE(c) << c.error().to_string();
    EXPECT_TRUE(c->spacing_given);
    EXPECT_EQ(c->for_scheduler(DiffusersScheduler::Ddim).timestep_spacing, TimestepSpacing::Trailing);
    EXPECT_TRUE(c->base.use_karras_sigmas);
    EXPECT_EQ(c->base.steps_offset, 0);  // diffusers' default when absent
}

TEST(SchedulerConfig, RefusesWhatItCannotRun) {
    const char* bad[] = {
        R"({"beta_schedule": "linear"})",
        R"({"beta_schedule": "squaredcos_cap_v2"})",
        R"({"trained_betas": [0.1, 0.2]})",
        R"({"timestep_spacing": "sideways"})",
        R"({"beta_start": 0.5, "beta_end": 0.1})",
        R"({"num_train_timesteps": 0})",
        R"({"steps_offset": -3})",
        R"({"num_train_timesteps": "many"})",
        R"([1, 2)",
    };
    for (const char* text : bad) {
        auto c = parse_scheduler_config(text, "scheduler_config.json");
        ASSERT_FALSE(c) << text;
        std::printf("%-45s -> %s\n", text, c.error().to_string().c_str());
        EXPECT_NE(c.error().to_string().find("scheduler_config.json"), std::string::npos);
    }
}
