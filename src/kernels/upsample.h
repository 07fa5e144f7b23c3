// Nearest-neighbour 2x upsampling of NCHW f32, as torch.nn.functional.interpolate(x, scale_factor=2,
// mode="nearest") in diffusers' Upsample2D: y[n, c, 2h + i, 2w + j] = x[n, c, h, w] for i, j in {0, 1}.
//
//   upsample_nearest2x_f32(x, y, /*planes=*/N * C, H, W);    // x: [N, C, H, W] -> y: [N, C, 2H, 2W]
//   upsample_nearest2x_f32_variant(Isa::Avx2)(x, y, planes, H, W);
//
// Pure data movement: reads 4 bytes and writes 16 per input element; memory-bound.
#pragma once

#include <cstddef>

#include "core/cpu_features.h"

namespace easel {

using UpsampleF32Fn = void (*)(const float* x, float* y, size_t planes, size_t height, size_t width);
void upsample_nearest2x_f32(const float* x, float* y, size_t planes, size_t height, size_t width);
void upsample_nearest2x_f32_ref(const float* x, float* y, size_t planes, size_t height, size_t width);
void upsample_nearest2x_f32_avx2(const float* x, float* y, size_t planes, size_t height, size_t width);
void upsample_nearest2x_f32_avx512(const float* x, float* y, size_t planes, size_t height, size_t width);
UpsampleF32Fn upsample_nearest2x_f32_variant(Isa isa);

}  // namespace easel
