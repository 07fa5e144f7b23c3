// Softmax over the last dim of a contiguous f32 [rows, dim] array, numerically stable (the row max is
// subtracted first, so logits of +-1e4 are fine).
//
//   softmax_f32(logits, probs, rows, dim);     // torch.softmax(logits, dim=-1); probs may equal logits
//   softmax_f32_variant(Isa::Avx512)(logits, probs, rows, dim);
//
// A row whose entries are all -inf has no defined softmax; it comes out as NaN, as in PyTorch.
#pragma once

#include <cstddef>

#include "core/cpu_features.h"

namespace easel {

using SoftmaxF32Fn = void (*)(const float* x, float* y, size_t rows, size_t dim);
void softmax_f32(const float* x, float* y, size_t rows, size_t dim);
void softmax_f32_ref(const float* x, float* y, size_t rows, size_t dim);
void softmax_f32_avx2(const float* x, float* y, size_t rows, size_t dim);
void softmax_f32_avx512(const float* x, float* y, size_t rows, size_t dim);
SoftmaxF32Fn softmax_f32_variant(Isa isa);

}  // namespace easel
