// Normalisations over f32: GroupNorm over NCHW (with an optional fused SiLU), LayerNorm and RMSNorm over the last
// dim. GroupNorm and LayerNorm match PyTorch: biased variance, eps added to the variance, affine weights optional.
// RMSNorm is T5's LayerNorm (transformers T5LayerNorm, diffusers RMSNorm): x / sqrt(mean(x^2) + eps) * gamma,
// no mean subtracted, no bias.
//
//   GroupNormShape s{.batch = 2, .channels = 320, .spatial = 64 * 64, .groups = 32, .eps = 1e-5f};
//   group_norm_f32(x, gamma, beta, y, s);              // torch.nn.GroupNorm(32, 320)(x)
//   s.fuse_silu = true; group_norm_f32(x, gamma, beta, y, s);   // silu(GroupNorm(x)), as in every ResBlock
//   layer_norm_f32(x, gamma, beta, y, rows, 768, 1e-5f);       // torch.nn.LayerNorm(768)
//   rms_norm_f32(x, gamma, y, rows, 4096, 1e-6f);              // T5LayerNorm(4096)
//
// gamma/beta may be null (no affine). y may equal x. Shapes are preconditions (asserted): callers validate
// model configs before running kernels.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/cpu_features.h"

namespace easel {

struct GroupNormShape {
    int64_t batch = 1;     // N
    int64_t channels = 1;  // C, a multiple of groups
    int64_t spatial = 1;   // H * W (any trailing dims flattened)
    int64_t groups = 1;
    float eps = 1e-5f;
    bool fuse_silu = false;  // y = silu(groupnorm(x))
};

// x, y: [N, C, spatial] contiguous; gamma, beta: [C] or null.
using GroupNormF32Fn = void (*)(const float* x, const float* gamma, const float* beta, float* y,
                                const GroupNormShape& s);
void group_norm_f32(const float* x, const float* gamma, const float* beta, float* y, const GroupNormShape& s);
void group_norm_f32_ref(const float* x, const float* gamma, const float* beta, float* y, const GroupNormShape& s);
void group_norm_f32_avx2(const float* x, const float* gamma, const float* beta, float* y, const GroupNormShape& s);
void group_norm_f32_avx512(const float* x, const float* gamma, const float* beta, float* y,
                           const GroupNormShape& s);
GroupNormF32Fn group_norm_f32_variant(Isa isa);

// x, y: [rows, dim] contiguous; gamma, beta: [dim] or null.
using LayerNormF32Fn = void (*)(const float* x, const float* gamma, const float* beta, float* y, size_t rows,
                                size_t dim, float eps);
void layer_norm_f32(const float* x, const float* gamma, const float* beta, float* y, size_t rows, size_t dim,
                    float eps);
void layer_norm_f32_ref(const float* x, const float* gamma, const float* beta, float* y, size_t rows, size_t dim,
                        float eps);
void layer_norm_f32_avx2(const float* x, const float* gamma, const float* beta, float* y, size_t rows, size_t dim,
                         float eps);
void layer_norm_f32_avx512(const float* x, const float* gamma, const float* beta, float* y, size_t rows,
                           size_t dim, float eps);
LayerNormF32Fn layer_norm_f32_variant(Isa isa);

// x, y: [rows, dim] contiguous; gamma: [dim] or null.
using RmsNormF32Fn = void (*)(const float* x, const float* gamma, float* y, size_t rows, size_t dim, float eps);
void rms_norm_f32(const float* x, const float* gamma, float* y, size_t rows, size_t dim, float eps);
void rms_norm_f32_ref(const float* x, const float* gamma, float* y, size_t rows, size_t dim, float eps);
void rms_norm_f32_avx2(const float* x, const float* gamma, float* y, size_t rows, size_t dim, float eps);
void rms_norm_f32_avx512(const float* x, const float* gamma, float* y, size_t rows, size_t dim, float eps);
RmsNormF32Fn rms_norm_f32_variant(Isa isa);

}  // namespace easel
