#include "kernels/cpu/attention_pack.h"

#include <algorithm>

#include "core/thread_pool.h"

namespace easel {

AttentionBlocking attention_blocking(const AttentionShape& s) {
    AttentionBlocking bl;
    const int64_t target = 8192 / std::max<int64_t>(1, s.head_dim);  // 32 KiB of floats
    bl.block_k = std::clamp<int64_t>(target / 16 * 16, 16, 256);
    // Never pad a short key sequence (77 text tokens) to a large block.
    bl.block_k = std::min(bl.block_k, (s.kv_len + 15) / 16 * 16);
    bl.num_kv_blocks = (s.kv_len + bl.block_k - 1) / bl.block_k;
    return bl;
}

std::unique_ptr<float[]> pack_k_transposed(const float* k, const AttentionShape& s, const AttentionBlocking& bl) {
    const int64_t D = s.head_dim, BK = bl.block_k;
    const int64_t tasks = s.batch * s.num_heads * bl.num_kv_blocks;
    std::unique_ptr<float[]> kt(new float[size_t(tasks * D * BK)]);
    parallel_for(tasks, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
            const int64_t blk = t % bl.num_kv_blocks;
            const int64_t h = (t / bl.num_kv_blocks) % s.num_heads;
            const int64_t b = t / (bl.num_kv_blocks * s.num_heads);
            float* dst = kt.get() + t * D * BK;
            const int64_t j0 = blk * BK;
            const int64_t valid = std::min(BK, s.kv_len - j0);
            for (int64_t j = 0; j < valid; ++j) {
                const float* src = k + b * s.k_batch_stride + (j0 + j) * s.k_row_stride + h * D;
                for (int64_t d = 0; d < D; ++d) dst[d * BK + j] = src[d];
            }
            for (int64_t d = 0; d < D; ++d)
                std::fill(dst + d * BK + valid, dst + (d + 1) * BK, 0.0f);
        }
    });
    return kt;
}

}  // namespace easel
