// GenerateParams from a golden case's JSON (the "<name>.params" metadata the tools/reference scripts write):
// prompt, steps, cfg, seed, and when present negative, sampler and schedule; the size is the caller's.
#pragma once

#include <nlohmann/json.hpp>

#include "pipeline/generate.h"

namespace easel::testing {

inline GenerateParams case_params(const nlohmann::json& j, int side) {
    GenerateParams p;
    p.prompt = j["prompt"];
    if (j.contains("negative")) p.negative_prompt = j["negative"];
    p.steps = j["steps"];
    p.cfg_scale = j["cfg"];
    p.seed = j["seed"];
    p.width = p.height = side;
    if (j.contains("sampler")) p.sampler = parse_sampler_name(j["sampler"].get<std::string>()).value();
    if (j.contains("schedule")) p.schedule = parse_schedule_name(j["schedule"].get<std::string>()).value();
    return p;
}

}  // namespace easel::testing
