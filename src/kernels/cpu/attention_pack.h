// Shared, ISA-free parts of the blocked attention kernels (attention_avx2.cpp, attention_avx512.cpp): block
// sizes and the packed K^T layout. Internal to src/kernels/cpu.
#pragma once

#include <cstdint>
#include <memory>

#include "kernels/attention.h"

namespace easel {

struct AttentionBlocking {
    int64_t block_q = 64;  // query rows per task: packing Q and the O accumulator cost O(block_q * D)
    int64_t block_k = 128;  // keys per block, a multiple of 16
    int64_t num_kv_blocks = 1;
};

// A packed K^T block (D x block_k floats) of ~32 KiB, so it stays in L1/L2 while one query block sweeps it.
AttentionBlocking attention_blocking(const AttentionShape& s);

// K transposed per (batch, head, kv block): float[B][H][num_kv_blocks][D][block_k], columns past kv_len zero.
// Packed once per call (as many floats as K itself, rounded up to whole blocks), shared by all query blocks;
// the microkernel then reads block_k consecutive keys per d with unit stride.
std::unique_ptr<float[]> pack_k_transposed(const float* k, const AttentionShape& s, const AttentionBlocking& bl);

inline const float* packed_k_block(const float* kt, const AttentionShape& s, const AttentionBlocking& bl,
                                   int64_t b, int64_t h, int64_t blk) {
    return kt + ((b * s.num_heads + h) * bl.num_kv_blocks + blk) * s.head_dim * bl.block_k;
}

}  // namespace easel
