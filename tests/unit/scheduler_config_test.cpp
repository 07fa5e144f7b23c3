// scheduler_config.json as diffusers' from_config reads it for diffusers mode (src/pipeline/model.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "pipeline/generate.h"
#include "pipeline/model.h"
#include "pipeline/tasks.h"
#include "sampling/diffusers_schedule.h"

#include <fmt/format.h>

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

// Fields that change what a step does are read, and a value easel does not implement is refused when a scheduler
// that reads it is chosen (diffusers' from_config gives every field to every class; each reads its own).
TEST(SchedulerConfig, RefusesUnimplementedFieldsForTheClassesThatReadThem) {
    using DS = DiffusersScheduler;
    struct Case {
        const char* json;
        std::vector<DS> refused;
    };
    const Case cases[] = {
        {R"({"solver_order": 3})", {DS::DpmSolverMultistep, DS::UniPC}},
        {R"({"solver_type": "heun"})", {DS::DpmSolverMultistep}},
        {R"({"solver_type": "bh1"})", {DS::UniPC}},
        {R"({"algorithm_type": "sde-dpmsolver++"})", {DS::DpmSolverMultistep}},
        {R"({"lower_order_final": false})", {DS::DpmSolverMultistep, DS::UniPC}},
        {R"({"final_sigmas_type": "sigma_min"})", {DS::DpmSolverMultistep, DS::UniPC}},
        {R"({"euler_at_final": true})", {DS::DpmSolverMultistep}},
        {R"({"use_lu_lambdas": true})", {DS::DpmSolverMultistep}},
        {R"({"variance_type": "learned_range"})", {DS::DpmSolverMultistep}},
        {R"({"lambda_min_clipped": -5.1})", {DS::DpmSolverMultistep}},
        {R"({"disable_corrector": [0, 1]})", {DS::UniPC}},
        {R"({"predict_x0": false})", {DS::UniPC}},
        {R"({"original_inference_steps": 100})", {DS::Lcm}},
        {R"({"timestep_scaling": 5.0})", {DS::Lcm}},
        {R"({"clip_sample": true})", {DS::Ddim, DS::Lcm}},
        {R"({"set_alpha_to_one": true})", {DS::Ddim, DS::Pndm}},
        {R"({"skip_prk_steps": false})", {DS::Pndm}},
        {R"({"thresholding": true})", {DS::Ddim, DS::DpmSolverMultistep, DS::UniPC, DS::Lcm}},
        {R"({"timestep_type": "continuous"})", {DS::Euler}},
        {R"({"interpolation_type": "log_linear"})", {DS::Euler}},
        {R"({"rescale_betas_zero_snr": true})",
         {DS::Euler, DS::EulerAncestral, DS::Heun, DS::Lms, DS::DpmSolverMultistep, DS::Ddim, DS::Pndm, DS::UniPC, DS::Lcm}},
    };
    const DS every[] = {DS::Euler, DS::EulerAncestral, DS::Heun, DS::Lms, DS::DpmSolverMultistep,
                        DS::Ddim, DS::Pndm, DS::UniPC, DS::Lcm};
    for (const Case& k : cases) {
        auto c = parse_scheduler_config(k.json, "scheduler_config.json");
        ASSERT_TRUE(c) << k.json << ": " << c.error().to_string();
        for (DS s : every) {
            const Status st = c->check_supported(s);
            const bool want_refused = std::find(k.refused.begin(), k.refused.end(), s) != k.refused.end();
            EXPECT_EQ(!st, want_refused) << k.json << " with " << diffusers_scheduler_class(s);
            if (!st) {
                EXPECT_NE(st.error().to_string().find("scheduler_config.json"), std::string::npos);
                EXPECT_NE(st.error().to_string().find(diffusers_scheduler_class(s)), std::string::npos);
            }
        }
        if (!k.refused.empty()) std::printf("%-40s -> %s\n", k.json, c->check_supported(k.refused[0]).error().to_string().c_str());
    }
}

TEST(SchedulerConfig, DefaultsAndCrossClassSolverTypesAreAccepted) {
    // What diffusers writes for each class with its defaults; UniPC's bh2 means midpoint to DPM-Solver and
    // DPM-Solver's midpoint means bh2 to UniPC.
    const char* ok[] = {
        R"({"_class_name": "UniPCMultistepScheduler", "solver_order": 2, "solver_type": "bh2", "predict_x0": true,
            "lower_order_final": true, "disable_corrector": [], "final_sigmas_type": "zero", "thresholding": false})",
        R"({"_class_name": "DPMSolverMultistepScheduler", "solver_order": 2, "algorithm_type": "dpmsolver++",
            "solver_type": "midpoint", "lower_order_final": true, "euler_at_final": false, "use_lu_lambdas": false,
            "variance_type": null, "lambda_min_clipped": -Infinity, "final_sigmas_type": "zero"})",
        R"({"_class_name": "LCMScheduler", "original_inference_steps": 50, "timestep_scaling": 10.0, "clip_sample": false})",
        R"({"_class_name": "EulerDiscreteScheduler", "interpolation_type": "linear", "timestep_type": "discrete",
            "rescale_betas_zero_snr": false})",
    };
    for (const char* text : ok) {
        auto c = parse_scheduler_config(text, "scheduler_config.json");
        ASSERT_TRUE(c) << text << ": " << c.error().to_string();
        for (DiffusersScheduler s : {DiffusersScheduler::Euler, DiffusersScheduler::EulerAncestral, DiffusersScheduler::Heun,
                                     DiffusersScheduler::Lms, DiffusersScheduler::DpmSolverMultistep, DiffusersScheduler::Ddim,
                                     DiffusersScheduler::Pndm, DiffusersScheduler::UniPC, DiffusersScheduler::Lcm}) {
            const Status st = c->check_supported(s);
            EXPECT_TRUE(st) << text << " with " << diffusers_scheduler_class(s) << ": " << st.error().to_string();
        }
    }
}

// GenerateParams::timestep_spacing (--timestep-spacing) replaces the model's spacing in diffusers mode: the plan is
// the one of the model's config with timestep_spacing "trailing" (diffusers' from_config(..., timestep_spacing=)),
// and differs from the model's own (SD 1.5's leading).
TEST(SchedulerConfig, TimestepSpacingOverridesTheModelsConfig) {
    auto m = load_model(std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd1", LoadOptions{});
    ASSERT_TRUE(m) << m.error().to_string();
    GenerateParams p;
    p.schedule_from = ScheduleFrom::Diffusers;
    p.diffusers_scheduler = DiffusersScheduler::Euler;
    p.steps = 4;
    auto own = plan_sigmas(**m, p);
    p.timestep_spacing = TimestepSpacing::Trailing;
    auto trailing = plan_sigmas(**m, p);
    ASSERT_TRUE(own && trailing);
    DiffusersSchedulerConfig c = (*m)->scheduler_config.for_scheduler(DiffusersScheduler::Euler);
    c.timestep_spacing = TimestepSpacing::Trailing;
    auto want = diffusers_plan(DiffusersScheduler::Euler, c, 4);
    ASSERT_TRUE(want);
    EXPECT_EQ(trailing->plan.timesteps, want->timesteps);
    EXPECT_NE(trailing->plan.timesteps, own->plan.timesteps);
    std::string t;
    for (float x : trailing->plan.timesteps) t += fmt::format("{} ", x);
    std::printf("trailing timesteps: %s\n", t.c_str());
    EXPECT_FLOAT_EQ(trailing->plan.timesteps.front(), 999.0f);  // trailing starts at T - 1
}
