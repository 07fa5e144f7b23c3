// TorchCpuGenerator: a bit-exact copy of PyTorch's CPU random generator (torch.Generator() on the CPU), so that
// a seed gives the same initial latent and the same ancestral noise as diffusers / AUTOMATIC1111 / ComfyUI
// running on the CPU ("--rng cpu").
//
//   TorchCpuGenerator g(42);                      // torch.Generator().manual_seed(42)
//   Tensor x = g.randn({1, 4, 64, 64});           // torch.randn([1,4,64,64], generator=g), bit for bit
//   Tensor n = g.randn({1, 4, 64, 64});           // the next draw continues the same stream
//   TorchCpuGenerator a1111(TorchCpuGenerator::seed_from_int64(-1));  // Python's manual_seed(-1)
//
// What torch does (facts from torch 1.13 ATen: CPUGeneratorImpl, core/DistributionsHelper.h,
// core/TransformationHelper.h, native/cpu/DistributionTemplates.h, native/cpu/avx_mathfun.h):
//  * The engine is the standard 32-bit MT19937 seeded with the low 32 bits of the 64-bit seed
//    (identical to std::mt19937). random() is one output; random64() is (first << 32) | second.
//  * A float uniform in [0,1) is (random() & (2^24-1)) * 2^-24; a double one is (random64() & (2^53-1)) * 2^-53.
//  * randn of a float32 tensor with >= 16 elements: first one float uniform per element, in order; then for each
//    full block of 16, Box-Muller pairs element j with j+8 (u1 = 1 - data[j], u2 = data[j+8]);
//    if numel % 16 != 0, 16 *fresh* uniforms overwrite the last 16 elements (so they overlap the last full
//    block) and that block is transformed again. The Box-Muller maths comes in two builds:
//      - Avx2 (the build every x86 CPU with AVX2 runs in torch 1.13; pip and Debian wheels alike): float32
//        Cephes-style log and sincos polynomials (avx_mathfun.h), reproduced here operation by operation;
//      - Scalar (torch's "default" capability build, used on CPUs without AVX2, and by builds whose dispatch
//        picks the AVX512 kernels, where CPU_CAPABILITY_AVX2 is not defined): libm logf/cosf/sinf, with
//        theta = float(2*pi (double) * u2).
//  * randn with fewer than 16 elements: one double normal per element, from the double Box-Muller of
//    normal_distribution<double> (u1 -> angle, u2 -> radius, r*cos returned and r*sin *cached in the
//    generator* for the next scalar normal draw, even across randn calls); each value rounded to float.
//    manual_seed clears that cache.
#pragma once

#include <cstdint>
#include <optional>
#include <random>

#include "core/tensor.h"

namespace easel {

enum class TorchNormalKernel {
    Avx2,    // torch's AVX2 kernel (default: what torch on a modern x86 CPU computes)
    Scalar,  // torch's portable kernel (ATEN_CPU_CAPABILITY=default, CPUs without AVX2)
};

// How the < 16-element path forms the radius: torch 1.13 uses log(1 - u2); later releases switched to
// log1p(-u2), which differs in the last bits for some draws.
enum class TorchSmallNormalLog { OneMinus, Log1p };

struct TorchCpuRngOptions {
    TorchNormalKernel kernel = TorchNormalKernel::Avx2;
    TorchSmallNormalLog small_log = TorchSmallNormalLog::OneMinus;
};

class TorchCpuGenerator {
public:
    // torch's default_rng_seed_val, the seed of a fresh torch.Generator().
    static constexpr uint64_t kDefaultSeed = 67280421310721ull;

    explicit TorchCpuGenerator(uint64_t seed = kDefaultSeed, TorchCpuRngOptions options = {});

    // Python's Generator.manual_seed(n) for a negative n stores the two's-complement bits.
    static uint64_t seed_from_int64(int64_t seed) { return static_cast<uint64_t>(seed); }

    void manual_seed(uint64_t seed);
    uint64_t initial_seed() const { return seed_; }
    const TorchCpuRngOptions& options() const { return options_; }

    uint32_t random();    // one MT19937 output
    uint64_t random64();  // two outputs, the first in the high half
    float uniform_f32();  // [0, 1), 24 random bits
    double uniform_f64(); // [0, 1), 53 random bits
    double normal_f64();  // torch's normal_distribution<double>, including its cached second value

    // torch.randn(n, generator=g) into `out` (float32), continuing this generator.
    void randn(float* out, int64_t n);
    // torch.randn(shape, generator=g): a contiguous F32 tensor.
    Tensor randn(const Shape& shape);

private:
    uint64_t seed_ = 0;
    TorchCpuRngOptions options_;
    std::mt19937 engine_;
    std::optional<double> next_double_normal_;
};

// The Box-Muller transform of one block of 16 uniforms, in place (exposed for tests).
void torch_normal_fill_16(float* data, TorchNormalKernel kernel);

}  // namespace easel
