// Half-precision weights to f32: f16 (IEEE binary16) and bf16, element by element.
//
//   f16_to_f32_n(halves, n, out);   // out[i] = f16_to_f32(halves[i]) (core/half.h), on the calling thread
//   bf16_to_f32_n(halves, n, out);
//
// Every f16 and bf16 value is an f32, so the conversion is exact and every variant equals the reference bit for
// bit, except a signalling NaN, which F16C's vcvtph2ps returns quietened (the reference keeps its payload as
// is): NaN either way. Memory-bound: 6 bytes moved per element. Callers split large arrays among threads.
#pragma once

#include <cstdint>

#include "core/cpu_features.h"

namespace easel {

using HalfToF32Fn = void (*)(const uint16_t* in, int64_t n, float* out);

void f16_to_f32_n(const uint16_t* in, int64_t n, float* out);
void f16_to_f32_n_ref(const uint16_t* in, int64_t n, float* out);
void f16_to_f32_n_avx2(const uint16_t* in, int64_t n, float* out);  // F16C
void f16_to_f32_n_avx512(const uint16_t* in, int64_t n, float* out);
HalfToF32Fn f16_to_f32_n_variant(Isa isa);

void bf16_to_f32_n(const uint16_t* in, int64_t n, float* out);
void bf16_to_f32_n_ref(const uint16_t* in, int64_t n, float* out);
void bf16_to_f32_n_avx2(const uint16_t* in, int64_t n, float* out);
void bf16_to_f32_n_avx512(const uint16_t* in, int64_t n, float* out);
HalfToF32Fn bf16_to_f32_n_variant(Isa isa);

}  // namespace easel
