#include "runtime/ops.h"

#include <cmath>
#include <limits>

#include "core/thread_pool.h"
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"
#include "kernels/softmax.h"
#include "kernels/upsample.h"

namespace easel::ops {

Tensor f32_contiguous(const Ctx& c, const Tensor& x) {
    if (x.dtype() == DType::F32 && x.is_contiguous()) return x;
    Tensor y = c.empty(x.shape());
    y.copy_from(x);
    return y;
}

namespace {
template <class F>
Tensor unary(const Ctx& c, const Tensor& x0, F&& fn) {
    Tensor x = f32_contiguous(c, x0);
    Tensor y = c.empty(x.shape());
    fn(x.data<float>(), y.data<float>(), size_t(x.numel()));
    return y;
}

Tensor binary(const Ctx& c, BinaryOp op, const Tensor& a0, const Tensor& b0) {
    Tensor a = f32_contiguous(c, a0), b = f32_contiguous(c, b0);
    auto shape = broadcast_shapes(a.shape(), b.shape());
    EASEL_ASSERT(shape.has_value(), shape.has_value() ? "" : shape.error().to_string());
    Tensor y = c.empty(*shape);
    binary_f32(op, a.data<float>(), a.shape(), b.data<float>(), b.shape(), y.data<float>());
    return y;
}
}  // namespace

Tensor silu(const Ctx& c, const Tensor& x) { return unary(c, x, silu_f32); }
Tensor quick_gelu(const Ctx& c, const Tensor& x) { return unary(c, x, quick_gelu_f32); }
Tensor gelu(const Ctx& c, const Tensor& x, bool tanh_approx) {
    return unary(c, x, [&](const float* a, float* b, size_t n) {
        gelu_f32(a, b, n, tanh_approx ? GeluApprox::Tanh : GeluApprox::None);
    });
}

Tensor geglu(const Ctx& c, const Tensor& x0) {
    Tensor x = f32_contiguous(c, x0);
    const int64_t two_h = x.size(-1);
    EASEL_ASSERT(two_h % 2 == 0, "geglu: last dim must be even");
    Shape s = x.shape();
    s[s.rank() - 1] = two_h / 2;
    Tensor y = c.empty(s);
    geglu_f32(x.data<float>(), y.data<float>(), size_t(x.numel() / two_h), size_t(two_h / 2));
    return y;
}

Tensor add(const Ctx& c, const Tensor& a, const Tensor& b) { return binary(c, BinaryOp::Add, a, b); }
Tensor mul(const Ctx& c, const Tensor& a, const Tensor& b) { return binary(c, BinaryOp::Mul, a, b); }

Tensor scale(const Ctx& c, const Tensor& x, float s) {
    Tensor k = Tensor::full({1}, s);
    return binary(c, BinaryOp::Mul, x, k);
}

Tensor concat(const Ctx& c, const std::vector<Tensor>& parts0, int dim) {
    std::vector<Tensor> parts;
    std::vector<ConcatPart> cp;
    for (const Tensor& p : parts0) parts.push_back(f32_contiguous(c, p));
    for (const Tensor& p : parts) cp.push_back({p.data<float>(), p.shape()});
    auto shape = concat_shape(cp, dim);
    EASEL_ASSERT(shape.has_value(), shape.has_value() ? "" : shape.error().to_string());
    Tensor y = c.empty(*shape);
    concat_f32(cp, dim, y.data<float>());
    return y;
}

Tensor upsample_nearest2x(const Ctx& c, const Tensor& x0) {
    Tensor x = f32_contiguous(c, x0);
    EASEL_ASSERT(x.rank() == 4, "upsample_nearest2x: expected [N, C, H, W]");
    Tensor y = c.empty({x.size(0), x.size(1), x.size(2) * 2, x.size(3) * 2});
    upsample_nearest2x_f32(x.data<float>(), y.data<float>(), size_t(x.size(0) * x.size(1)), size_t(x.size(2)),
                           size_t(x.size(3)));
    return y;
}

Tensor group_norm(const Ctx& c, const Tensor& x0, int groups, const Tensor& gamma, const Tensor& beta, float eps,
                  bool fuse_silu) {
    Tensor x = f32_contiguous(c, x0);
    GroupNormShape s;
    s.batch = x.size(0);
    s.channels = x.size(1);
    s.spatial = x.numel() / (s.batch * s.channels);
    s.groups = groups;
    s.eps = eps;
    s.fuse_silu = fuse_silu;
    Tensor y = c.empty(x.shape());
    group_norm_f32(x.data<float>(), gamma.data<float>(), beta.data<float>(), y.data<float>(), s);
    return y;
}

Tensor layer_norm(const Ctx& c, const Tensor& x0, const Tensor& gamma, const Tensor& beta, float eps) {
    Tensor x = f32_contiguous(c, x0);
    const int64_t d = x.size(-1);
    Tensor y = c.empty(x.shape());
    layer_norm_f32(x.data<float>(), gamma.data<float>(), beta.data<float>(), y.data<float>(), size_t(x.numel() / d),
                   size_t(d), eps);
    return y;
}

Tensor rms_norm(const Ctx& c, const Tensor& x0, const Tensor& gamma, float eps) {
    Tensor x = f32_contiguous(c, x0);
    const int64_t d = x.size(-1);
    EASEL_ASSERT(!gamma.defined() || gamma.numel() == d, "rms_norm: gamma must have the last dim's size");
    Tensor y = c.empty(x.shape());
    rms_norm_f32(x.data<float>(), gamma.defined() ? gamma.data<float>() : nullptr, y.data<float>(),
                 size_t(x.numel() / d), size_t(d), eps);
    return y;
}

Tensor softmax(const Ctx& c, const Tensor& x0) {
    Tensor x = f32_contiguous(c, x0);
    const int64_t d = x.size(-1);
    Tensor y = c.empty(x.shape());
    softmax_f32(x.data<float>(), y.data<float>(), size_t(x.numel() / d), size_t(d));
    return y;
}

namespace {
// Rows of a [B, L, C] view must have a unit column stride; rows and batches may be strided.
bool row_view_ok(const Tensor& t) { return t.dtype() == DType::F32 && t.rank() == 3 && t.stride(2) == 1; }

// Causal attention for short sequences (CLIP's 77 tokens): scores per head with a triangular mask, softmax,
// times v. O(L^2) memory per head is fine at L = 77.
void causal_attention(const float* q, const float* k, const float* v, float* out, const AttentionShape& s) {
    const int64_t L = s.q_len, D = s.head_dim;
    parallel_for(s.batch * s.num_heads, [&](int64_t b0, int64_t e0) {
        std::vector<float> p(static_cast<size_t>(L));
        for (int64_t bh = b0; bh < e0; ++bh) {
            const int64_t b = bh / s.num_heads, h = bh % s.num_heads;
            const float* qb = q + b * s.q_batch_stride + h * D;
            const float* kb = k + b * s.k_batch_stride + h * D;
            const float* vb = v + b * s.v_batch_stride + h * D;
            float* ob = out + b * s.out_batch_stride + h * D;
            for (int64_t i = 0; i < L; ++i) {
                float mx = -std::numeric_limits<float>::infinity();
                for (int64_t j = 0; j <= i; ++j) {
                    float acc = 0.0f;
                    for (int64_t d = 0; d < D; ++d) acc += qb[i * s.q_row_stride + d] * kb[j * s.k_row_stride + d];
                    p[size_t(j)] = acc * s.scale;
                    mx = std::max(mx, p[size_t(j)]);
                }
                float sum = 0.0f;
                for (int64_t j = 0; j <= i; ++j) {
                    p[size_t(j)] = std::exp(p[size_t(j)] - mx);
                    sum += p[size_t(j)];
                }
                const float inv = 1.0f / sum;
                float* o = ob + i * s.out_row_stride;
                for (int64_t d = 0; d < D; ++d) o[d] = 0.0f;
                for (int64_t j = 0; j <= i; ++j) {
                    const float w = p[size_t(j)] * inv;
                    const float* vr = vb + j * s.v_row_stride;
                    for (int64_t d = 0; d < D; ++d) o[d] += w * vr[d];
                }
            }
        }
    });
}
}  // namespace

Tensor attention(const Ctx& c, const Tensor& q0, const Tensor& k0, const Tensor& v0, int num_heads, bool causal) {
    Tensor q = row_view_ok(q0) ? q0 : f32_contiguous(c, q0);
    Tensor k = row_view_ok(k0) ? k0 : f32_contiguous(c, k0);
    Tensor v = row_view_ok(v0) ? v0 : f32_contiguous(c, v0);
    EASEL_ASSERT(q.rank() == 3 && k.rank() == 3 && v.rank() == 3, "attention: expected [B, L, H*D] tensors");
    const int64_t B = q.size(0), Lq = q.size(1), C = q.size(2), Lk = k.size(1);
    EASEL_ASSERT(C % num_heads == 0 && k.size(2) == C && v.size(2) == C && k.size(0) == B && v.size(1) == Lk,
                 "attention: shapes disagree");
    AttentionShape s = AttentionShape::contiguous(B, Lq, Lk, num_heads, C / num_heads);
    s.q_row_stride = q.stride(1);
    s.k_row_stride = k.stride(1);
    s.v_row_stride = v.stride(1);
    s.q_batch_stride = q.stride(0);
    s.k_batch_stride = k.stride(0);
    s.v_batch_stride = v.stride(0);
    Tensor out = c.empty({B, Lq, C});
    s.out_row_stride = C;
    s.out_batch_stride = Lq * C;
    if (causal) {
        EASEL_ASSERT(Lq == Lk, "causal attention needs Lq == Lk");
        causal_attention(q.data<float>(), k.data<float>(), v.data<float>(), out.data<float>(), s);
    } else {
        attention_f32(q.data<float>(), k.data<float>(), v.data<float>(), out.data<float>(), s);
    }
    return out;
}

Tensor timestep_embedding(const Ctx& c, const std::vector<float>& t, int dim, bool flip_sin_to_cos, float freq_shift) {
    Tensor y = c.empty({int64_t(t.size()), dim});
    TimestepEmbeddingParams p;
    p.dim = dim;
    p.flip_sin_to_cos = flip_sin_to_cos;
    p.downscale_freq_shift = freq_shift;
    timestep_embedding_f32(t.data(), t.size(), y.data<float>(), p);
    return y;
}

}  // namespace easel::ops
