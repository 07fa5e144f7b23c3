// Tensor-level operations over the CPU kernels: what model code calls. Inputs are f32; outputs are new
// contiguous f32 tensors from the context's allocator (a BufferPool reuses them across sampling steps).
// Shapes are the caller's responsibility (a mismatch is a bug in model code, so it asserts).
//
//   Ctx c{&pool};
//   Tensor h = ops::group_norm(c, x, 32, gamma, beta, 1e-5f, /*silu=*/true);   // [N, C, H, W]
//   Tensor y = ops::add(c, h, ops::reshape(temb, {N, C, 1, 1}));              // broadcast add
#pragma once

#include <vector>

#include "core/allocator.h"
#include "core/tensor.h"

namespace easel {

struct Ctx {
    Allocator* alloc = nullptr;  // null: plain heap
    Tensor empty(const Shape& s) const { return Tensor::empty(s, DType::F32, alloc); }
};

namespace ops {

// Contiguous f32 copy (or the tensor itself if it already is one).
Tensor f32_contiguous(const Ctx& c, const Tensor& x);

Tensor silu(const Ctx& c, const Tensor& x);
Tensor gelu(const Ctx& c, const Tensor& x, bool tanh_approx = false);
Tensor quick_gelu(const Ctx& c, const Tensor& x);
// x: [..., 2H] -> [..., H]: a * gelu(b) with a, b the two halves of the last dim (diffusers GEGLU).
Tensor geglu(const Ctx& c, const Tensor& x);

Tensor add(const Ctx& c, const Tensor& a, const Tensor& b);  // PyTorch broadcasting
Tensor mul(const Ctx& c, const Tensor& a, const Tensor& b);
Tensor scale(const Ctx& c, const Tensor& x, float s);        // x * s
Tensor concat(const Ctx& c, const std::vector<Tensor>& parts, int dim);

// x: [N, C, H, W] -> [N, C, 2H, 2W]
Tensor upsample_nearest2x(const Ctx& c, const Tensor& x);

// x: [N, C, ...] (any trailing dims), gamma/beta: [C] f32
Tensor group_norm(const Ctx& c, const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps,
                  bool fuse_silu = false);
// x: [..., D], gamma/beta: [D]
Tensor layer_norm(const Ctx& c, const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);
// x: [..., D], gamma: [D] or undefined (T5LayerNorm / RMSNorm: x / sqrt(mean(x^2) + eps) * gamma)
Tensor rms_norm(const Ctx& c, const Tensor& x, const Tensor& gamma, float eps);
// Softmax over the last dim.
Tensor softmax(const Ctx& c, const Tensor& x);

// Multi-head scaled dot-product attention. q: [B, Lq, H*D], k, v: [B, Lk, H*D] (each may be a column slice
// of a wider row, e.g. one third of a fused QKV projection) -> [B, Lq, H*D]. Memory-efficient (no full score
// matrix). causal: query i attends to keys 0..i only (CLIP's text transformer).
Tensor attention(const Ctx& c, const Tensor& q, const Tensor& k, const Tensor& v, int num_heads, bool causal = false);

// Sinusoidal timestep embedding as diffusers' get_timestep_embedding. t: [N] -> [N, dim]
Tensor timestep_embedding(const Ctx& c, const std::vector<float>& t, int dim, bool flip_sin_to_cos, float freq_shift);

}  // namespace ops
}  // namespace easel
