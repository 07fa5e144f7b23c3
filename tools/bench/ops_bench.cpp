// Benchmarks of the non-GEMM kernels at SD 1.5 shapes, per variant (ISA is the benchmark argument:
// 1 = avx2, 2 = avx512; a variant this CPU lacks is skipped). Run e.g.
//   easel_bench_kernels --benchmark_filter='Attention.*/2'
// Napkin maths: attention does 4 * B * H * Lq * Lk * D flops (QK^T and PV), reported as FLOP/s; group norm
// must read and write the tensor once at minimum, reported as bytes/s over those 8 bytes per element.
#include <benchmark/benchmark.h>

#include <vector>

#include "core/cpu_features.h"
#include "kernels/attention.h"
#include "kernels/norm.h"

namespace {

using namespace easel;

std::vector<float> filled(size_t n, float scale) {
    std::vector<float> v(n);
    uint32_t s = 12345;
    for (float& x : v) {
        s = s * 1664525u + 1013904223u;
        x = scale * (float(s >> 8) / float(1u << 24) - 0.5f);
    }
    return v;
}

bool skip_unusable(benchmark::State& state, Isa isa) {
    if (isa_usable(isa)) return false;
    state.SkipWithError("variant not supported on this CPU (or capped by EASEL_CPU_ISA)");
    return true;
}

void run_attention(benchmark::State& state, int64_t batch, int64_t q_len, int64_t kv_len, int64_t heads,
                   int64_t head_dim) {
    const Isa isa = Isa(state.range(0));
    if (skip_unusable(state, isa)) return;
    const int64_t width = heads * head_dim;
    const std::vector<float> q = filled(size_t(batch * q_len * width), 2.0f);
    const std::vector<float> k = filled(size_t(batch * kv_len * width), 2.0f);
    const std::vector<float> v = filled(size_t(batch * kv_len * width), 2.0f);
    std::vector<float> out(q.size());
    const AttentionShape s = AttentionShape::contiguous(batch, q_len, kv_len, heads, head_dim);
    const AttentionF32Fn fn = attention_f32_variant(isa);
    for (auto _ : state) {
        fn(q.data(), k.data(), v.data(), out.data(), s);
        benchmark::ClobberMemory();
    }
    const double flops = 4.0 * double(batch * heads * q_len) * double(kv_len) * double(head_dim);
    state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate,
                                                  benchmark::Counter::kIs1000);
}

// SD 1.5 at 512x512: self-attention over the 64x64 latent (4096 tokens, 8 heads x 40), batch 2 (CFG).
void BM_AttentionSelf4096(benchmark::State& state) { run_attention(state, 2, 4096, 4096, 8, 40); }
// The 32x32 level: 1024 tokens, 8 heads x 80.
void BM_AttentionSelf1024(benchmark::State& state) { run_attention(state, 2, 1024, 1024, 8, 80); }
// Cross-attention over the 77 text tokens at 64x64.
void BM_AttentionCross4096x77(benchmark::State& state) { run_attention(state, 2, 4096, 77, 8, 40); }

void BM_GroupNorm_2x320x64x64(benchmark::State& state) {
    const Isa isa = Isa(state.range(0));
    if (skip_unusable(state, isa)) return;
    const GroupNormShape s{.batch = 2, .channels = 320, .spatial = 64 * 64, .groups = 32, .eps = 1e-5f,
                           .fuse_silu = state.range(1) != 0};
    const size_t n = size_t(s.batch * s.channels * s.spatial);
    const std::vector<float> x = filled(n, 4.0f), gamma = filled(320, 1.0f), beta = filled(320, 1.0f);
    std::vector<float> y(n);
    const GroupNormF32Fn fn = group_norm_f32_variant(isa);
    for (auto _ : state) {
        fn(x.data(), gamma.data(), beta.data(), y.data(), s);
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(n) * 8);
}

BENCHMARK(BM_AttentionSelf4096)->Arg(int(Isa::Avx2))->Arg(int(Isa::Avx512))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_AttentionSelf1024)->Arg(int(Isa::Avx2))->Arg(int(Isa::Avx512))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_AttentionCross4096x77)->Arg(int(Isa::Avx2))->Arg(int(Isa::Avx512))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_GroupNorm_2x320x64x64)
    ->Args({int(Isa::Ref), 1})
    ->Args({int(Isa::Avx2), 1})
    ->Args({int(Isa::Avx512), 0})
    ->Args({int(Isa::Avx512), 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
