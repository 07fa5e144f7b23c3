// conv2d() at SD 1.5's UNet and VAE shapes, fp16 weights packed at load or kept as stored (stored_conv2d_weight,
// widened per call; only where the kernel takes f32 words), both precisions, the dispatcher's variant.
// Counters: GFLOP/s and peak_fraction (see peak.h).
//   easel_bench_kernels --benchmark_filter=conv2d
// Napkin maths: 3x3 320->320 at 64x64 is 7.5 GFLOP (~38 ms at 200 GFLOP/s); VAE 3x3 128->128 at 512x512 is
// 77 GFLOP (~0.4 s), its input 128 MiB: compute-bound, the im2col tiles stay in L2.
#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>
#include <vector>

#include "core/half.h"
#include "kernels/conv2d.h"
#include "peak.h"

namespace easel::bench {
namespace {

void BM_conv2d(benchmark::State& state) {
    const int64_t cin = state.range(0), cout = state.range(1), hw = state.range(2), stride = state.range(3);
    const Precision p = state.range(4) ? Precision::BF16 : Precision::F32;
    const bool stored = state.range(5) != 0;
    const int64_t k = 3;
    auto w = std::make_shared<std::vector<uint16_t>>(size_t(cout * cin * k * k));
    for (size_t i = 0; i < w->size(); ++i) (*w)[i] = f32_to_f16(float(int(i % 13) - 6) * 0.01f);
    auto packed = stored ? stored_conv2d_weight(std::shared_ptr<const void>(w, w->data()), DType::F16, cout, cin, k, k, p)
                         : pack_conv2d_weight(w->data(), DType::F16, cout, cin, k, k, p);
    if (!packed) {
        state.SkipWithError(packed.error().to_string().c_str());
        return;
    }
    const Conv2dOptions opt{.stride = stride, .padding = 1};
    const auto out_hw = conv2d_output_hw(hw, hw, k, k, opt).value();
    const int64_t ho = out_hw.first, wo = out_hw.second;
    std::vector<float> x(size_t(cin * hw * hw), 0.25f), y(size_t(cout * ho * wo)), bias(size_t(cout), 0.1f);
    Conv2dOptions run = opt;
    run.bias = bias.data();
    const double peak = measured_peak_gflops(p);
    double seconds = 0.0;
    for (auto _ : state) {
        const auto t0 = std::chrono::steady_clock::now();
        conv2d(x.data(), 1, hw, hw, *packed, y.data(), run);
        seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        benchmark::DoNotOptimize(y.data());
    }
    const double flops = 2.0 * double(cout * ho * wo) * double(cin * k * k);
    const double gflops = flops * double(state.iterations()) / seconds * 1e-9;
    state.counters["GFLOP/s"] = gflops;
    state.counters["peak_fraction"] = peak > 0 ? gflops / peak : 0.0;
    state.SetLabel(std::string(isa_name(packed->isa)) + " " + std::string(precision_name(p)) +
                   (stored ? " f16 stored" : " packed"));
}

// {Cin, Cout, H=W, stride, bf16, stored}; 3x3, padding 1, batch 1.
BENCHMARK(BM_conv2d)
    ->ArgNames({"Cin", "Cout", "HW", "s", "bf16", "stored"})
    ->ArgsProduct({{320}, {320}, {64}, {1}, {0, 1}, {0, 1}})           // UNet level 0
    ->ArgsProduct({{640}, {640}, {32}, {1}, {0, 1}, {0, 1}})           // level 1
    ->ArgsProduct({{1280}, {1280}, {16, 8}, {1}, {0, 1}, {0, 1}})      // levels 2, 3
    ->ArgsProduct({{320}, {320}, {64}, {2}, {0, 1}, {0, 1}})           // downsampler
    ->ArgsProduct({{4}, {320}, {64}, {1}, {0, 1}, {0, 1}})             // conv_in
    ->ArgsProduct({{320}, {4}, {64}, {1}, {0, 1}, {0, 1}})             // conv_out
    ->ArgsProduct({{128}, {128}, {512}, {1}, {0, 1}, {0, 1}})          // VAE decoder, last level
    ->ArgsProduct({{256}, {256}, {256}, {1}, {0, 1}, {0, 1}})          // VAE decoder
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace easel::bench
