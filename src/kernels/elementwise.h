// Element-wise add and mul with PyTorch broadcasting, and concatenation along a dim, over contiguous f32.
//
//   Shape out_shape = broadcast_shapes({2, 320, 64, 64}, {2, 320, 1, 1}).value();
//   binary_f32(BinaryOp::Add, h, {2, 320, 64, 64}, temb, {2, 320, 1, 1}, out);   // h + temb[:, :, None, None]
//   binary_f32(BinaryOp::Mul, x, {4096, 1280}, gate, {1280}, out);               // [C] over [..., C]
//   concat_f32({{h, {2, 640, 32, 32}}, {skip, {2, 320, 32, 32}}}, /*dim=*/1, out);   // torch.cat(dim=1)
//
// Fast paths cover every pattern where the smaller operand's dims are one contiguous run of the output's
// (same shape, scalar, [N,C,1,1] over [N,C,H,W], [C] over [...,C], [1,C,1,1] ...); anything else runs the
// general strided loop. out may equal a (or b when b has the output's shape). Shapes are preconditions:
// check them with broadcast_shapes()/concat_shape(), which return an Error naming the mismatch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/tensor.h"

namespace easel {

enum class BinaryOp : uint8_t { Add, Mul };

// PyTorch broadcasting: shapes align at the last dim; each pair of dims must be equal or one of them 1.
Result<Shape> broadcast_shapes(const Shape& a, const Shape& b);

using BinaryF32Fn = void (*)(BinaryOp op, const float* a, const Shape& sa, const float* b, const Shape& sb,
                             float* out);
// out: broadcast_shapes(sa, sb), contiguous.
void binary_f32(BinaryOp op, const float* a, const Shape& sa, const float* b, const Shape& sb, float* out);
void binary_f32_ref(BinaryOp op, const float* a, const Shape& sa, const float* b, const Shape& sb, float* out);
void binary_f32_avx2(BinaryOp op, const float* a, const Shape& sa, const float* b, const Shape& sb, float* out);
void binary_f32_avx512(BinaryOp op, const float* a, const Shape& sa, const float* b, const Shape& sb,
                       float* out);
BinaryF32Fn binary_f32_variant(Isa isa);

// How the smaller operand of a broadcast maps onto the output: out viewed as [outer, mid, inner], the full
// operand indexed by all three, the small one by `mid` only. Computed once per call by the variants.
struct BinaryPlan {
    enum class Kind : uint8_t {
        Blocks,   // out[o, m, i] = full[o, m, i] op small[m]
        General,  // no such view: strided loop
    };
    Kind kind = Kind::General;
    bool small_is_a = false;  // add and mul commute, so this only says which pointer is the small one
    int64_t outer = 1, mid = 1, inner = 1;
};
BinaryPlan plan_binary(const Shape& sa, const Shape& sb);

struct ConcatPart {
    const float* data;
    Shape shape;
};
// All parts have the same rank and agree on every dim but `dim` (negative counts from the end).
Result<Shape> concat_shape(const std::vector<ConcatPart>& parts, int dim);

using ConcatF32Fn = void (*)(const std::vector<ConcatPart>& parts, int dim, float* out);
// out: concat_shape(parts, dim), contiguous; must not overlap the parts. The fast path is memcpy of
// contiguous runs (already vectorised by libc), parallel over the outer index; no per-ISA variants.
void concat_f32(const std::vector<ConcatPart>& parts, int dim, float* out);
void concat_f32_ref(const std::vector<ConcatPart>& parts, int dim, float* out);

}  // namespace easel
