// Run-time choice of variant for every op except matmul/conv (those are in dispatch_gemm.cpp). The choice is
// re-read on each call from active_isa() (a few loads), so set_isa_cap() takes effect at any time.
// Preconditions on shapes are asserted here, once, rather than in every variant.
#include <cmath>

#include "core/error.h"
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/convert.h"
#include "kernels/elementwise.h"
#include "kernels/norm.h"
#include "kernels/rope.h"
#include "kernels/softmax.h"
#include "kernels/upsample.h"

namespace easel {
namespace {

// The variant for exactly `isa` (Avx512Bf16 uses the AVX-512 code: these ops have no bf16 path).
template <class Fn>
Fn pick(Isa isa, Fn ref, Fn avx2, Fn avx512) {
    if (int(isa) >= int(Isa::Avx512)) return avx512;
    if (int(isa) >= int(Isa::Avx2)) return avx2;
    return ref;
}

}  // namespace

UnaryF32Fn exp_f32_variant(Isa isa) { return pick<UnaryF32Fn>(isa, exp_f32_ref, exp_f32_avx2, exp_f32_avx512); }
UnaryF32Fn silu_f32_variant(Isa isa) { return pick<UnaryF32Fn>(isa, silu_f32_ref, silu_f32_avx2, silu_f32_avx512); }
UnaryF32Fn quick_gelu_f32_variant(Isa isa) {
    return pick<UnaryF32Fn>(isa, quick_gelu_f32_ref, quick_gelu_f32_avx2, quick_gelu_f32_avx512);
}
GeluF32Fn gelu_f32_variant(Isa isa) { return pick<GeluF32Fn>(isa, gelu_f32_ref, gelu_f32_avx2, gelu_f32_avx512); }
GegluF32Fn geglu_f32_variant(Isa isa) {
    return pick<GegluF32Fn>(isa, geglu_f32_ref, geglu_f32_avx2, geglu_f32_avx512);
}
GroupNormF32Fn group_norm_f32_variant(Isa isa) {
    return pick<GroupNormF32Fn>(isa, group_norm_f32_ref, group_norm_f32_avx2, group_norm_f32_avx512);
}
LayerNormF32Fn layer_norm_f32_variant(Isa isa) {
    return pick<LayerNormF32Fn>(isa, layer_norm_f32_ref, layer_norm_f32_avx2, layer_norm_f32_avx512);
}
RmsNormF32Fn rms_norm_f32_variant(Isa isa) {
    return pick<RmsNormF32Fn>(isa, rms_norm_f32_ref, rms_norm_f32_avx2, rms_norm_f32_avx512);
}
RopeF32Fn rope_f32_variant(Isa isa) { return pick<RopeF32Fn>(isa, rope_f32_ref, rope_f32_avx2, rope_f32_avx512); }
SoftmaxF32Fn softmax_f32_variant(Isa isa) {
    return pick<SoftmaxF32Fn>(isa, softmax_f32_ref, softmax_f32_avx2, softmax_f32_avx512);
}
AttentionF32Fn attention_f32_variant(Isa isa) {
    return pick<AttentionF32Fn>(isa, attention_f32_ref, attention_f32_avx2, attention_f32_avx512);
}
HalfToF32Fn f16_to_f32_n_variant(Isa isa) {
    return pick<HalfToF32Fn>(isa, f16_to_f32_n_ref, f16_to_f32_n_avx2, f16_to_f32_n_avx512);
}
HalfToF32Fn bf16_to_f32_n_variant(Isa isa) {
    return pick<HalfToF32Fn>(isa, bf16_to_f32_n_ref, bf16_to_f32_n_avx2, bf16_to_f32_n_avx512);
}
BinaryF32Fn binary_f32_variant(Isa isa) {
    return pick<BinaryF32Fn>(isa, binary_f32_ref, binary_f32_avx2, binary_f32_avx512);
}
UpsampleF32Fn upsample_nearest2x_f32_variant(Isa isa) {
    return pick<UpsampleF32Fn>(isa, upsample_nearest2x_f32_ref, upsample_nearest2x_f32_avx2,
                               upsample_nearest2x_f32_avx512);
}

void exp_f32(const float* x, float* y, size_t n) { exp_f32_variant(active_isa())(x, y, n); }
void silu_f32(const float* x, float* y, size_t n) { silu_f32_variant(active_isa())(x, y, n); }
void quick_gelu_f32(const float* x, float* y, size_t n) { quick_gelu_f32_variant(active_isa())(x, y, n); }
void gelu_f32(const float* x, float* y, size_t n, GeluApprox approx) {
    gelu_f32_variant(active_isa())(x, y, n, approx);
}
void geglu_f32(const float* x, float* y, size_t rows, size_t half, GeluApprox approx) {
    geglu_f32_variant(active_isa())(x, y, rows, half, approx);
}

void group_norm_f32(const float* x, const float* gamma, const float* beta, float* y, const GroupNormShape& s) {
    EASEL_ASSERT(s.batch >= 0 && s.spatial > 0 && s.groups > 0 && s.channels > 0 && s.channels % s.groups == 0,
                 "group_norm: channels must be a positive multiple of groups");
    group_norm_f32_variant(active_isa())(x, gamma, beta, y, s);
}

void layer_norm_f32(const float* x, const float* gamma, const float* beta, float* y, size_t rows, size_t dim,
                    float eps) {
    EASEL_ASSERT(dim > 0, "layer_norm: dim must be positive");
    layer_norm_f32_variant(active_isa())(x, gamma, beta, y, rows, dim, eps);
}

void rms_norm_f32(const float* x, const float* gamma, float* y, size_t rows, size_t dim, float eps) {
    EASEL_ASSERT(dim > 0, "rms_norm: dim must be positive");
    rms_norm_f32_variant(active_isa())(x, gamma, y, rows, dim, eps);
}

void rope_f32(float* x, const float* cos, const float* sin, size_t rows, size_t heads, size_t head_dim) {
    EASEL_ASSERT(head_dim % 2 == 0, "rope: head_dim must be even");
    rope_f32_variant(active_isa())(x, cos, sin, rows, heads, head_dim);
}

void softmax_f32(const float* x, float* y, size_t rows, size_t dim) {
    softmax_f32_variant(active_isa())(x, y, rows, dim);
}

void attention_f32(const float* q, const float* k, const float* v, float* out, const AttentionShape& s) {
    EASEL_ASSERT(s.batch >= 0 && s.q_len >= 0 && s.kv_len > 0 && s.num_heads > 0 && s.head_dim > 0,
                 "attention: kv_len, num_heads and head_dim must be positive");
    const int64_t width = s.num_heads * s.head_dim;
    EASEL_ASSERT(s.q_row_stride >= width && s.k_row_stride >= width && s.v_row_stride >= width &&
                     s.out_row_stride >= width,
                 "attention: a row stride is shorter than num_heads * head_dim");
    EASEL_ASSERT(std::isfinite(s.scale), "attention: scale must be finite");
    attention_f32_variant(active_isa())(q, k, v, out, s);
}

void binary_f32(BinaryOp op, const float* a, const Shape& sa, const float* b, const Shape& sb, float* out) {
    binary_f32_variant(active_isa())(op, a, sa, b, sb, out);
}

void f16_to_f32_n(const uint16_t* in, int64_t n, float* out) { f16_to_f32_n_variant(active_isa())(in, n, out); }
void bf16_to_f32_n(const uint16_t* in, int64_t n, float* out) { bf16_to_f32_n_variant(active_isa())(in, n, out); }

void upsample_nearest2x_f32(const float* x, float* y, size_t planes, size_t height, size_t width) {
    upsample_nearest2x_f32_variant(active_isa())(x, y, planes, height, width);
}

}  // namespace easel
