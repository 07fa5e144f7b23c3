// Reference attention: for each (batch, head, query) the full score row, softmax and weighted sum, in double.
// This is the definition every fast path is measured against; it is O(Lq * Lk * D) and holds one score row.
#include <cmath>
#include <limits>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/attention.h"

namespace easel {

AttentionShape AttentionShape::contiguous(int64_t batch, int64_t q_len, int64_t kv_len, int64_t num_heads,
                                          int64_t head_dim) {
    AttentionShape s;
    s.batch = batch;
    s.q_len = q_len;
    s.kv_len = kv_len;
    s.num_heads = num_heads;
    s.head_dim = head_dim;
    const int64_t width = num_heads * head_dim;
    s.q_row_stride = s.k_row_stride = s.v_row_stride = s.out_row_stride = width;
    s.q_batch_stride = s.out_batch_stride = q_len * width;
    s.k_batch_stride = s.v_batch_stride = kv_len * width;
    s.scale = float(1.0 / std::sqrt(double(head_dim)));
    return s;
}

void attention_f32_ref(const float* q, const float* k, const float* v, float* out, const AttentionShape& s) {
    const int64_t D = s.head_dim;
    // Parallel over (batch, head, query) only to keep the tests quick; each row is computed independently.
    parallel_for(s.batch * s.num_heads * s.q_len, [&](int64_t begin, int64_t end) {
        std::vector<double> p(static_cast<size_t>(s.kv_len));
        std::vector<double> acc(static_cast<size_t>(D));
        for (int64_t idx = begin; idx < end; ++idx) {
            const int64_t i = idx % s.q_len;
            const int64_t h = (idx / s.q_len) % s.num_heads;
            const int64_t b = idx / (s.q_len * s.num_heads);
            const float* qi = q + b * s.q_batch_stride + i * s.q_row_stride + h * D;
            double m = -std::numeric_limits<double>::infinity();
            for (int64_t j = 0; j < s.kv_len; ++j) {
                const float* kj = k + b * s.k_batch_stride + j * s.k_row_stride + h * D;
                double dot = 0.0;
                for (int64_t d = 0; d < D; ++d) dot += double(qi[d]) * double(kj[d]);
                p[size_t(j)] = dot * double(s.scale);
                m = std::max(m, p[size_t(j)]);
            }
            double sum = 0.0;
            for (int64_t j = 0; j < s.kv_len; ++j) sum += p[size_t(j)] = std::exp(p[size_t(j)] - m);
            std::fill(acc.begin(), acc.end(), 0.0);
            for (int64_t j = 0; j < s.kv_len; ++j) {
                const float* vj = v + b * s.v_batch_stride + j * s.v_row_stride + h * D;
                for (int64_t d = 0; d < D; ++d) acc[size_t(d)] += p[size_t(j)] * double(vj[d]);
            }
            float* oi = out + b * s.out_batch_stride + i * s.out_row_stride + h * D;
            for (int64_t d = 0; d < D; ++d) oi[d] = float(acc[size_t(d)] / sum);
        }
    });
}

}  // namespace easel
