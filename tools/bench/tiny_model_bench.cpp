// The embedded model end to end: one 20-step, CFG 7 generation at its native 32x32 (issue 4's "under 1 s"),
// and its parts. Skips (with a message) when models/tiny is absent.
#include <benchmark/benchmark.h>

#include <memory>

#include "pipeline/families/sd.h"
#include "pipeline/generate.h"

namespace {

easel::SDModel* tiny_model(easel::Precision precision) {
    static std::unique_ptr<easel::SDModel> models[2];
    const int k = precision == easel::Precision::F32 ? 0 : 1;
    if (!models[k]) {
        easel::LoadOptions o;
        o.precision = precision;
        auto m = easel::load_sd_model(EASEL_SOURCE_MODELS_DIR "/tiny", o);
        if (!m) return nullptr;
        models[k] = std::move(m).value();
    }
    return models[k].get();
}

void BM_TinyGenerate20Steps(benchmark::State& state) {
    const auto precision = state.range(0) ? easel::Precision::BF16 : easel::Precision::F32;
    easel::SDModel* m = tiny_model(precision);
    if (!m) {
        state.SkipWithError("models/tiny not found");
        return;
    }
    easel::GenerateParams p;
    p.prompt = "a red circle on a blue background";
    p.width = p.height = 32;
    p.steps = 20;
    int64_t seed = 1;
    for (auto _ : state) {
        p.seed = seed++;
        auto r = easel::generate(*m, p);
        if (!r) state.SkipWithError(r.error().to_string().c_str());
        benchmark::DoNotOptimize(r);
    }
    state.SetLabel(precision == easel::Precision::F32 ? "fp32, euler_a, CFG 7, 32x32" : "fast (bf16), euler_a, CFG 7, 32x32");
}
BENCHMARK(BM_TinyGenerate20Steps)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_TinyLoad(benchmark::State& state) {
    for (auto _ : state) {
        auto m = easel::load_sd_model(EASEL_SOURCE_MODELS_DIR "/tiny", easel::LoadOptions{});
        if (!m) state.SkipWithError(m.error().to_string().c_str());
        benchmark::DoNotOptimize(m);
    }
}
BENCHMARK(BM_TinyLoad)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
