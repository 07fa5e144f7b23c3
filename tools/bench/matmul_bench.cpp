// linear() at SD 1.5's big Linear shapes, fp16 weights, both precisions, the dispatcher's variant.
// Counters: GFLOP/s, and peak_fraction = GFLOP/s / measured peak of the precision (peak.h), on the same threads.
//   easel_bench_kernels --benchmark_filter=linear
// Napkin maths: [4096x320]x[320x1280] is 3.4 GFLOP; at ~200 GFLOP/s (2 Zen 4 cores, fp32) that is ~17 ms.
#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/half.h"
#include "core/quant.h"
#include "kernels/matmul.h"
#include "peak.h"

namespace easel::bench {
namespace {

// Times linear() with `packed` and sets the counters: GFLOP/s and the fraction of the precision's measured peak.
void time_linear(benchmark::State& state, const PackedWeight& packed, int64_t m, Precision p, const std::string& label) {
    const int64_t n = packed.n, k = packed.k;
    std::vector<float> x(size_t(m * k), 0.5f), y(size_t(m * n)), bias(size_t(n), 0.1f);
    const double peak = measured_peak_gflops(p);
    double seconds = 0.0;
    for (auto _ : state) {
        const auto t0 = std::chrono::steady_clock::now();
        linear(x.data(), m, packed, y.data(), {.bias = bias.data()});
        seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        benchmark::DoNotOptimize(y.data());
    }
    const double gflops = 2.0 * double(m) * double(n) * double(k) * double(state.iterations()) / seconds * 1e-9;
    state.counters["GFLOP/s"] = gflops;
    state.counters["peak_fraction"] = peak > 0 ? gflops / peak : 0.0;
    state.SetLabel(std::string(isa_name(packed.isa)) + " " + std::string(precision_name(p)) + label);
}

void BM_linear(benchmark::State& state) {
    const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
    const Precision p = state.range(3) ? Precision::BF16 : Precision::F32;
    std::vector<uint16_t> w(size_t(n * k));
    for (size_t i = 0; i < w.size(); ++i) w[i] = f32_to_f16(float(int(i % 17) - 8) * 0.01f);
    auto packed = pack_linear_weight(w.data(), DType::F16, n, k, p);
    if (!packed) {
        state.SkipWithError(packed.error().to_string().c_str());
        return;
    }
    time_linear(state, *packed, m, p, "");
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

// Quantized weights multiplied as stored (quantized_linear_weight: each B block decoded once per call into the
// kernel's panels) at Flux's shapes (1536 tokens at 512x512: 1024 image + 512 text; 3072 wide, MLP 12288) and
// T5-XXL's (512 tokens, 4096 wide, 10240 FF), against the same weight packed from fp16 (type 0).
//   easel_bench_kernels --benchmark_filter=linear_quant
void BM_linear_quant(benchmark::State& state) {
    const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
    const Precision p = state.range(3) ? Precision::BF16 : Precision::F32;
    const QuantType type = QuantType(state.range(4));
    std::vector<float> wf(size_t(n * k));
    for (size_t i = 0; i < wf.size(); ++i) wf[i] = float(int(i % 17) - 8) * 0.01f;
    std::shared_ptr<std::vector<uint8_t>> blocks;
    Result<PackedWeight> packed = Error::internal("unset");
    if (type == QuantType::None) {
        std::vector<uint16_t> w(wf.size());
        for (size_t i = 0; i < w.size(); ++i) w[i] = f32_to_f16(wf[i]);
        packed = pack_linear_weight(w.data(), DType::F16, n, k, p);
    } else {
        blocks = std::make_shared<std::vector<uint8_t>>(quant_bytes(type, n * k));
        quantize(type, wf.data(), blocks->data(), size_t(n * k) / quant_info(type).block_elems);
        packed = quantized_linear_weight(std::shared_ptr<const void>(blocks, blocks->data()), type, n, k, p);
    }
    if (!packed) {
        state.SkipWithError(packed.error().to_string().c_str());
        return;
    }
    time_linear(state, *packed, m, p, " " + std::string(type == QuantType::None ? "f16" : quant_info(type).name));
}

// {M, K, N, bf16, type}: type 0 = fp16 packed; else a QuantType value (5 = q8_0, 8 = q4_K, 10 = q6_K).
BENCHMARK(BM_linear_quant)
    ->ArgNames({"M", "K", "N", "bf16", "type"})
    ->ArgsProduct({{1536}, {3072}, {3072}, {0, 1}, {0, int(QuantType::Q8_0), int(QuantType::Q4_K)}})
    ->ArgsProduct({{512}, {4096}, {10240}, {0, 1}, {0, int(QuantType::Q8_0)}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// f16 weights kept as stored (stored_linear_weight: widened a block of columns at a time per call, half the memory
// of f32 panels) against the same weight packed at load, at SDXL's shapes at 1024x1024 with CFG: 8192 tokens at
// 640 wide, 2048 at 1280 (attention and its GEGLU feed-forward), and the cross-attention's keys (154 x 2048).
//   easel_bench_kernels --benchmark_filter=linear_stored
void BM_linear_stored(benchmark::State& state) {
    const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
    const Precision p = state.range(3) ? Precision::BF16 : Precision::F32;
    const bool stored = state.range(4) != 0;
    auto w = std::make_shared<std::vector<uint16_t>>(size_t(n * k));
    for (size_t i = 0; i < w->size(); ++i) (*w)[i] = f32_to_f16(float(int(i % 17) - 8) * 0.01f);
    auto packed = stored ? stored_linear_weight(std::shared_ptr<const void>(w, w->data()), DType::F16, n, k, p)
                         : pack_linear_weight(w->data(), DType::F16, n, k, p);
    if (!packed) {
        state.SkipWithError(packed.error().to_string().c_str());
        return;
    }
    time_linear(state, *packed, m, p, stored ? " f16 stored" : " f16 packed");
}

// {M, K, N, bf16, stored}
BENCHMARK(BM_linear_stored)
    ->ArgNames({"M", "K", "N", "bf16", "stored"})
    ->ArgsProduct({{8192}, {640}, {640}, {0}, {0, 1}})
    ->ArgsProduct({{2048}, {1280}, {1280, 10240}, {0}, {0, 1}})
    ->ArgsProduct({{2048}, {5120}, {1280}, {0}, {0, 1}})
    ->ArgsProduct({{154}, {2048}, {1280}, {0}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace easel::bench
