#include "models/common/blocks.h"

#include "core/thread_pool.h"

namespace easel {

ResBlock ResBlock::declare(const ParamScope& s, int64_t in, int64_t out, int64_t temb_dim, int groups, float eps) {
    ResBlock b;
    b.norm1 = GroupNorm::declare(s / "norm1", groups, in, eps);
    b.conv1 = Conv2d::declare(s / "conv1", in, out, {.kernel = 3, .stride = 1, .padding = 1});
    if (temb_dim > 0) b.time_emb_proj = Linear::declare(s / "time_emb_proj", temb_dim, out);
    b.norm2 = GroupNorm::declare(s / "norm2", groups, out, eps);
    b.conv2 = Conv2d::declare(s / "conv2", out, out, {.kernel = 3, .stride = 1, .padding = 1});
    if (in != out) b.conv_shortcut = Conv2d::declare(s / "conv_shortcut", in, out, {.kernel = 1, .stride = 1, .padding = 0});
    return b;
}

Tensor ResBlock::forward(const Ctx& c, const Tensor& x, const Tensor& temb) const {
    Tensor h = conv1(c, norm1(c, x, /*silu=*/true));
    if (time_emb_proj && temb.storage()) {
        Tensor t = (*time_emb_proj)(c, ops::silu(c, temb));  // [N, out]
        h = ops::add(c, h, t.reshape({t.size(0), t.size(1), 1, 1}));
    }
    const Tensor skip = conv_shortcut ? (*conv_shortcut)(c, x) : x;
    return conv2(c, norm2(c, h, /*silu=*/true), &skip);  // conv2(...) + skip, fused into the GEMM's store
}

Attention Attention::declare(const ParamScope& s, int64_t dim, int64_t context_dim, int num_heads, bool qkv_bias) {
    Attention a;
    a.num_heads = num_heads;
    a.to_q = Linear::declare(s / "to_q", dim, dim, qkv_bias);
    a.to_k = Linear::declare(s / "to_k", context_dim, dim, qkv_bias);
    a.to_v = Linear::declare(s / "to_v", context_dim, dim, qkv_bias);
    a.to_out = Linear::declare(s / "to_out" / 0, dim, dim, true);
    return a;
}

Tensor Attention::forward(const Ctx& c, const Tensor& x, const Tensor& context, const Tensor* residual,
                          const BlockExtras* extras) const {
    const Tensor& kv_src = context.storage() ? context : x;
    Tensor q = to_q(c, x);
    Tensor k = to_k(c, kv_src);
    Tensor v = to_v(c, kv_src);
    Tensor o = ops::attention(c, q, k, v, num_heads);
    if (extras)
        for (const ExtraKV& e : *extras) {
            if (e.scale == 0.0f) continue;
            EASEL_ASSERT(e.k.size(0) == q.size(0) && e.k.size(2) == q.size(2) && e.v.shape() == e.k.shape(),
                         "Attention: extra keys/values of another batch or width");
            // diffusers: hidden_states + scale * ip_hidden_states, in that rounding order.
            o = ops::add(c, o, ops::scale(c, ops::attention(c, q, e.k, e.v, num_heads), e.scale));
        }
    return to_out(c, o, residual);
}

TransformerBlock TransformerBlock::declare(const ParamScope& s, int64_t dim, int64_t context_dim, int num_heads) {
    TransformerBlock b;
    // diffusers BasicTransformerBlock: LayerNorm eps 1e-5 (norm_eps default), elementwise affine.
    b.norm1 = LayerNorm::declare(s / "norm1", dim, 1e-5f);
    b.attn1 = Attention::declare(s / "attn1", dim, dim, num_heads, false);
    b.norm2 = LayerNorm::declare(s / "norm2", dim, 1e-5f);
    b.attn2 = Attention::declare(s / "attn2", dim, context_dim, num_heads, false);
    b.norm3 = LayerNorm::declare(s / "norm3", dim, 1e-5f);
    const int64_t inner = 4 * dim;
    b.ff_in = Linear::declare(s / "ff" / "net" / 0 / "proj", dim, 2 * inner);
    b.ff_out = Linear::declare(s / "ff" / "net" / 2, inner, dim);
    return b;
}

Tensor TransformerBlock::forward(const Ctx& c, const Tensor& x0, const Tensor& context, const BlockExtras* extras) const {
    Tensor x = attn1.forward(c, norm1(c, x0), Tensor(), &x0);
    x = attn2.forward(c, norm2(c, x), context, &x, extras);
    Tensor h = ops::geglu(c, ff_in(c, norm3(c, x)));
    return ff_out(c, h, &x);
}

Tensor nchw_to_nlc(const Ctx& c, const Tensor& x) {
    const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
    Tensor y = c.empty({N, HW, C});
    Tensor xc = ops::f32_contiguous(c, x);
    const float* src = xc.data<float>();
    float* dst = y.data<float>();
    parallel_for(N * HW, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
            const int64_t n = r / HW, p = r % HW;
            for (int64_t ch = 0; ch < C; ++ch) dst[r * C + ch] = src[(n * C + ch) * HW + p];
        }
    }, 64);
    return y;
}

Tensor nlc_to_nchw(const Ctx& c, const Tensor& x, int64_t h, int64_t w) {
    const int64_t N = x.size(0), HW = x.size(1), C = x.size(2);
    EASEL_ASSERT(HW == h * w, "nlc_to_nchw: token count does not match h*w");
    Tensor y = c.empty({N, C, h, w});
    Tensor xc = ops::f32_contiguous(c, x);
    const float* src = xc.data<float>();
    float* dst = y.data<float>();
    parallel_for(N * C, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
            const int64_t n = r / C, ch = r % C;
            for (int64_t p = 0; p < HW; ++p) dst[r * HW + p] = src[(n * HW + p) * C + ch];
        }
    }, 8);
    return y;
}

SpatialTransformer SpatialTransformer::declare(const ParamScope& s, int64_t channels, int64_t context_dim,
                                               int num_heads, int depth, int groups, bool linear_projection) {
    SpatialTransformer t;
    t.linear_projection = linear_projection;
    // diffusers Transformer2DModel: GroupNorm eps 1e-6.
    t.norm = GroupNorm::declare(s / "norm", groups, channels, 1e-6f);
    t.proj_in = linear_projection ? Linear::declare(s / "proj_in", channels, channels)
                                  : Linear::declare_conv1x1(s / "proj_in", channels, channels);
    for (int i = 0; i < depth; ++i)
        t.blocks.push_back(TransformerBlock::declare(s / "transformer_blocks" / i, channels, context_dim, num_heads));
    t.proj_out = linear_projection ? Linear::declare(s / "proj_out", channels, channels)
                                   : Linear::declare_conv1x1(s / "proj_out", channels, channels);
    return t;
}

// A 1x1 conv on NCHW equals a Linear over channels on [N, HW, C], so both SD 1.x (conv) and SD 2.x (linear)
// projections run as Linear after one layout change; the result is the same up to summation order.
Tensor SpatialTransformer::forward(const Ctx& c, const Tensor& x, const Tensor& context,
                                   std::span<const BlockExtras> extras) const {
    EASEL_ASSERT(extras.empty() || extras.size() == blocks.size(), "SpatialTransformer: extras for another depth");
    const int64_t h = x.size(2), w = x.size(3);
    Tensor t = proj_in(c, nchw_to_nlc(c, norm(c, x)));
    for (size_t i = 0; i < blocks.size(); ++i) t = blocks[i].forward(c, t, context, extras.empty() ? nullptr : &extras[i]);
    t = proj_out(c, t);
    return ops::add(c, nlc_to_nchw(c, t, h, w), x);
}

}  // namespace easel
