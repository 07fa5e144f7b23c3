// linear() at SD 1.5's big Linear shapes, fp16 weights, both precisions, the dispatcher's variant.
// Counters: GFLOP/s, and peak_fraction = GFLOP/s / measured peak of the precision (peak.h), on the same threads.
//   easel_bench_kernels --benchmark_filter=linear
// Napkin maths: [4096x320]x[320x1280] is 3.4 GFLOP; at ~200 GFLOP/s (2 Zen 4 cores, fp32) that is ~17 ms.
#include <benchmark/benchmark.h>

#include <chrono>
#include <vector>

#include "core/half.h"
#include "kernels/matmul.h"
#include "peak.h"

namespace easel::bench {
namespace {

void BM_linear(benchmark::State& state) {
    const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
    const Precision p = state.range(3) ? Precision::BF16 : Precision::F32;
    std::vector<uint16_t> w(size_t(n * k));
    for (size_t i = 0; i < w.size(); ++i) w[i] = f32_to_f16(float(int(i % 17) - 8) * 0.01f);
    std::vector<float> x(size_t(m * k), 0.5f), y(size_t(m * n)), bias(size_t(n), 0.1f);
    auto packed = pack_linear_weight(w.data(), DType::F16, n, k, p);
    if (!packed) {
        state.SkipWithError(packed.error().to_string().c_str());
        return;
    }
    const double peak = measured_peak_gflops(p);
    double seconds = 0.0;
    for (auto _ : state) {
        const auto t0 = std::chrono::steady_clock::now();
        linear(x.data(), m, *packed, y.data(), {.bias = bias.data()});
        seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        benchmark::DoNotOptimize(y.data());
    }
    const double gflops = 2.0 * double(m) * double(n) * double(k) * double(state.iterations()) / seconds * 1e-9;
    state.counters["GFLOP/s"] = gflops;
    state.counters["peak_fraction"] = peak > 0 ? gflops / peak : 0.0;
    state.SetLabel(std::string(isa_name(packed->isa)) + " " + std::string(precision_name(p)));
}

// {M, K, N, bf16}: x[M, K] · W[N, K]ᵀ.
BENCHMARK(BM_linear)
    ->ArgNames({"M", "K", "N", "bf16"})
    ->ArgsProduct({{4096}, {320}, {320, 1280}, {0, 1}})
    ->Args({4096, 1280, 320, 0})
    ->Args({4096, 1280, 320, 1})
    ->Args({1024, 640, 640, 0})
    ->Args({1024, 640, 640, 1})
    ->Args({77, 768, 320, 0})
    ->Args({77, 768, 320, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace easel::bench
