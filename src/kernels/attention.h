// Multi-head scaled dot-product attention over f32, memory-efficient (flash-attention style): queries and keys
// are processed in blocks with an online (running max / running sum) softmax, so no Lq x Lk score matrix is
// ever held; scratch per thread is bounded by the block sizes.
//
//   // q: [B, Lq, H*D], k, v: [B, Lk, H*D], out: [B, Lq, H*D], all contiguous:
//   AttentionShape s = AttentionShape::contiguous(/*batch=*/2, /*q_len=*/4096, /*kv_len=*/77, /*heads=*/8, 40);
//   attention_f32(q, k, v, out, s);         // softmax(q k^T / sqrt(D)) v per head, like diffusers' Attention
//   // q, k, v as slices of one fused [B, L, 3*H*D] projection: set the row and batch strides.
//   s.q_row_stride = s.k_row_stride = s.v_row_stride = 3 * 320;  s.q_batch_stride = ... ;
//
// Layout is what Linear layers produce: token t of batch b, head h starts at
// base + b * batch_stride + t * row_stride + h * head_dim, and a head's D values are contiguous.
// out must not overlap q, k or v. Shapes are preconditions (asserted).
#pragma once

#include <cstdint>

#include "core/cpu_features.h"

namespace easel {

struct AttentionShape {
    int64_t batch = 1;
    int64_t q_len = 1;   // Lq
    int64_t kv_len = 1;  // Lk
    int64_t num_heads = 1;
    int64_t head_dim = 1;  // D
    // Strides in elements.
    int64_t q_row_stride = 0, k_row_stride = 0, v_row_stride = 0, out_row_stride = 0;
    int64_t q_batch_stride = 0, k_batch_stride = 0, v_batch_stride = 0, out_batch_stride = 0;
    float scale = 1.0f;  // multiplies q.k; contiguous() sets 1/sqrt(D)

    // Dense [B, L, H*D] tensors, scale 1/sqrt(D).
    static AttentionShape contiguous(int64_t batch, int64_t q_len, int64_t kv_len, int64_t num_heads,
                                     int64_t head_dim);
};

using AttentionF32Fn = void (*)(const float* q, const float* k, const float* v, float* out,
                                const AttentionShape& s);
void attention_f32(const float* q, const float* k, const float* v, float* out, const AttentionShape& s);
// The definition: full score rows, softmax and weighted sum in double. O(Lk) scratch per query row.
void attention_f32_ref(const float* q, const float* k, const float* v, float* out, const AttentionShape& s);
void attention_f32_avx2(const float* q, const float* k, const float* v, float* out, const AttentionShape& s);
void attention_f32_avx512(const float* q, const float* k, const float* v, float* out, const AttentionShape& s);
AttentionF32Fn attention_f32_variant(Isa isa);

}  // namespace easel
