// Rotary position embedding on interleaved pairs (Flux; diffusers apply_rope / BFL's apply_rope): each row holds
// `heads` heads of `head_dim` values, pairs (x[2i], x[2i+1]) of a head rotated by the row's angle i:
//   y[2i] = cos_i x[2i] - sin_i x[2i+1],   y[2i+1] = sin_i x[2i] + cos_i x[2i+1]
// with the same cos/sin table row for every head. In place.
//
//   rope_f32(q, cos, sin, /*rows=*/L, /*heads=*/24, /*head_dim=*/128);   // cos, sin: [L, 64]
#pragma once

#include <cstddef>

#include "core/cpu_features.h"

namespace easel {

using RopeF32Fn = void (*)(float* x, const float* cos, const float* sin, size_t rows, size_t heads, size_t head_dim);
void rope_f32(float* x, const float* cos, const float* sin, size_t rows, size_t heads, size_t head_dim);
void rope_f32_ref(float* x, const float* cos, const float* sin, size_t rows, size_t heads, size_t head_dim);
void rope_f32_avx2(float* x, const float* cos, const float* sin, size_t rows, size_t heads, size_t head_dim);
void rope_f32_avx512(float* x, const float* cos, const float* sin, size_t rows, size_t heads, size_t head_dim);
RopeF32Fn rope_f32_variant(Isa isa);

}  // namespace easel
