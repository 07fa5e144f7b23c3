// Element-wise activations over contiguous f32 arrays: exp, SiLU, GELU (erf and tanh forms), QuickGELU, and
// GEGLU (split the last dim into halves a | b, out = a * gelu(b)).
//
//   silu_f32(x, y, n);                                  // y may equal x (in place)
//   gelu_f32(x, y, n, GeluApprox::None);                // torch.nn.functional.gelu(x)
//   geglu_f32(proj, out, rows, /*half=*/1280);          // proj: [rows, 2560] -> out: [rows, 1280]
//   auto fn = silu_f32_variant(Isa::Avx2);              // one variant directly (tests, benchmarks)
//
// The plain names pick the fastest variant this CPU supports under the ISA cap (EASEL_CPU_ISA) on every call.
// `_ref` variants (src/kernels/ref/activation_ref.cpp) define the ops, in double precision. The SIMD variants
// split large arrays across the thread pool and are accurate to a few ulp (tests/kernels/activation_test.cpp
// states each bound); the exp argument of the tanh-GELU and QuickGELU is rounded to float, as in torch.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/cpu_features.h"

namespace easel {

// GELU flavours, named as torch's `approximate` argument: None is 0.5x(1 + erf(x/sqrt2)), Tanh is
// 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))).
enum class GeluApprox : uint8_t { None, Tanh };

using UnaryF32Fn = void (*)(const float* x, float* y, size_t n);
using GeluF32Fn = void (*)(const float* x, float* y, size_t n, GeluApprox approx);
// x: [rows, 2*half] -> y: [rows, half]; y = x[:, :half] * gelu(x[:, half:]). y must not overlap x.
using GegluF32Fn = void (*)(const float* x, float* y, size_t rows, size_t half, GeluApprox approx);

// y = exp(x). Exposed mainly so that the vector exp every other kernel relies on has its own test.
void exp_f32(const float* x, float* y, size_t n);
void exp_f32_ref(const float* x, float* y, size_t n);
void exp_f32_avx2(const float* x, float* y, size_t n);
void exp_f32_avx512(const float* x, float* y, size_t n);
UnaryF32Fn exp_f32_variant(Isa isa);

// y = x * sigmoid(x)
void silu_f32(const float* x, float* y, size_t n);
void silu_f32_ref(const float* x, float* y, size_t n);
void silu_f32_avx2(const float* x, float* y, size_t n);
void silu_f32_avx512(const float* x, float* y, size_t n);
UnaryF32Fn silu_f32_variant(Isa isa);

// y = x * sigmoid(1.702 x), CLIP's "quick_gelu".
void quick_gelu_f32(const float* x, float* y, size_t n);
void quick_gelu_f32_ref(const float* x, float* y, size_t n);
void quick_gelu_f32_avx2(const float* x, float* y, size_t n);
void quick_gelu_f32_avx512(const float* x, float* y, size_t n);
UnaryF32Fn quick_gelu_f32_variant(Isa isa);

void gelu_f32(const float* x, float* y, size_t n, GeluApprox approx = GeluApprox::None);
void gelu_f32_ref(const float* x, float* y, size_t n, GeluApprox approx);
void gelu_f32_avx2(const float* x, float* y, size_t n, GeluApprox approx);
void gelu_f32_avx512(const float* x, float* y, size_t n, GeluApprox approx);
GeluF32Fn gelu_f32_variant(Isa isa);

// diffusers' GEGLU (attention.py, v0.30.3): hidden, gate = proj(x).chunk(2, dim=-1); hidden * gelu(gate).
void geglu_f32(const float* x, float* y, size_t rows, size_t half, GeluApprox approx = GeluApprox::None);
void geglu_f32_ref(const float* x, float* y, size_t rows, size_t half, GeluApprox approx);
void geglu_f32_avx2(const float* x, float* y, size_t rows, size_t half, GeluApprox approx);
void geglu_f32_avx512(const float* x, float* y, size_t rows, size_t half, GeluApprox approx);
GegluF32Fn geglu_f32_variant(Isa isa);

}  // namespace easel
