#include "models/flux/flux.h"

#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "kernels/rope.h"

namespace easel {

void flux_rope_tables(const std::vector<std::array<float, 3>>& ids, const std::vector<int>& axes, int theta,
                      std::vector<float>& cos, std::vector<float>& sin) {
    int half = 0;
    for (int a : axes) half += a / 2;
    cos.assign(ids.size() * size_t(half), 0.0f);
    sin.assign(ids.size() * size_t(half), 0.0f);
    for (size_t r = 0; r < ids.size(); ++r) {
        int col = 0;
        for (size_t axis = 0; axis < axes.size() && axis < 3; ++axis) {
            const int d = axes[axis];
            for (int k = 0; k < d / 2; ++k, ++col) {
                // diffusers rope(): scale = arange(0, d, 2) / d in float64, omega = 1 / theta**scale, pos * omega.
                const double omega = 1.0 / std::pow(double(theta), double(2 * k) / double(d));
                const double angle = double(ids[r][axis]) * omega;
                cos[r * size_t(half) + size_t(col)] = float(std::cos(angle));
                sin[r * size_t(half) + size_t(col)] = float(std::sin(angle));
            }
        }
    }
}

Tensor flux_pack(const Tensor& latent0) {
    const Tensor latent = latent0.contiguous();
    const int64_t N = latent.size(0), C = latent.size(1), h = latent.size(2), w = latent.size(3);
    Tensor out = Tensor::empty({N, (h / 2) * (w / 2), C * 4});
    const float* src = latent.data<float>();
    float* dst = out.data<float>();
    // view(N, C, h/2, 2, w/2, 2).permute(0, 2, 4, 1, 3, 5)
    for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < h / 2; ++i)
            for (int64_t j = 0; j < w / 2; ++j)
                for (int64_t ch = 0; ch < C; ++ch)
                    for (int64_t dy = 0; dy < 2; ++dy)
                        for (int64_t dx = 0; dx < 2; ++dx)
                            *dst++ = src[((n * C + ch) * h + 2 * i + dy) * w + 2 * j + dx];
    return out;
}

Tensor flux_unpack(const Tensor& packed0, int64_t h, int64_t w) {
    const Tensor packed = packed0.contiguous();
    const int64_t N = packed.size(0), C = packed.size(2) / 4;
    Tensor out = Tensor::empty({N, C, h, w});
    const float* src = packed.data<float>();
    float* dst = out.data<float>();
    for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < h / 2; ++i)
            for (int64_t j = 0; j < w / 2; ++j)
                for (int64_t ch = 0; ch < C; ++ch)
                    for (int64_t dy = 0; dy < 2; ++dy)
                        for (int64_t dx = 0; dx < 2; ++dx)
                            dst[((n * C + ch) * h + 2 * i + dy) * w + 2 * j + dx] = *src++;
    return out;
}

std::vector<std::array<float, 3>> flux_image_ids(int64_t h, int64_t w) {
    std::vector<std::array<float, 3>> ids;
    ids.reserve(size_t((h / 2) * (w / 2)));
    for (int64_t i = 0; i < h / 2; ++i)
        for (int64_t j = 0; j < w / 2; ++j) ids.push_back({0.0f, float(i), float(j)});
    return ids;
}

FluxTransformer FluxTransformer::declare(const ParamScope& s, const FluxConfig& cfg) {
    FluxTransformer f;
    f.cfg_ = cfg;
    const int64_t W = cfg.inner_dim(), D = cfg.head_dim;
    f.x_embedder_ = Linear::declare(s / "x_embedder", cfg.in_channels, W);
    f.context_embedder_ = Linear::declare(s / "context_embedder", cfg.joint_attention_dim, W);
    const ParamScope te = s / "time_text_embed";
    f.t_lin1_ = Linear::declare(te / "timestep_embedder" / "linear_1", 256, W);
    f.t_lin2_ = Linear::declare(te / "timestep_embedder" / "linear_2", W, W);
    if (cfg.guidance_embeds) {
        f.g_lin1_ = Linear::declare(te / "guidance_embedder" / "linear_1", 256, W);
        f.g_lin2_ = Linear::declare(te / "guidance_embedder" / "linear_2", W, W);
    }
    f.p_lin1_ = Linear::declare(te / "text_embedder" / "linear_1", cfg.pooled_projection_dim, W);
    f.p_lin2_ = Linear::declare(te / "text_embedder" / "linear_2", W, W);
    auto qk = [&](const ParamScope& a, const char* q, const char* k) {
        return QKNorm{RMSNorm::declare(a / q, D, 1e-6f), RMSNorm::declare(a / k, D, 1e-6f)};
    };
    for (int i = 0; i < cfg.num_layers; ++i) {
        const ParamScope b = s / "transformer_blocks" / i;
        const ParamScope a = b / "attn";
        DoubleBlock blk{
            .ada_x = Linear::declare(b / "norm1" / "linear", W, 6 * W),
            .ada_c = Linear::declare(b / "norm1_context" / "linear", W, 6 * W),
            .q = Linear::declare(a / "to_q", W, W),
            .k = Linear::declare(a / "to_k", W, W),
            .v = Linear::declare(a / "to_v", W, W),
            .cq = Linear::declare(a / "add_q_proj", W, W),
            .ck = Linear::declare(a / "add_k_proj", W, W),
            .cv = Linear::declare(a / "add_v_proj", W, W),
            .out = Linear::declare(a / "to_out" / 0, W, W),
            .add_out = Linear::declare(a / "to_add_out", W, W),
            .norm = qk(a, "norm_q", "norm_k"),
            .norm_added = qk(a, "norm_added_q", "norm_added_k"),
            .ff = GeluFeedForward::declare(b / "ff", W),
            .ff_context = GeluFeedForward::declare(b / "ff_context", W),
        };
        f.double_.push_back(std::move(blk));
    }
    const int64_t mlp = W * cfg.mlp_ratio;
    for (int i = 0; i < cfg.num_single_layers; ++i) {
        const ParamScope b = s / "single_transformer_blocks" / i;
        const ParamScope a = b / "attn";
        SingleBlock blk{
            .ada = Linear::declare(b / "norm" / "linear", W, 3 * W),
            .q = Linear::declare(a / "to_q", W, W),
            .k = Linear::declare(a / "to_k", W, W),
            .v = Linear::declare(a / "to_v", W, W),
            .proj_mlp = Linear::declare(b / "proj_mlp", W, mlp),
            .proj_out = Linear::declare(b / "proj_out", W + mlp, W),
            .norm = qk(a, "norm_q", "norm_k"),
        };
        f.single_.push_back(std::move(blk));
    }
    f.norm_out_ = Linear::declare(s / "norm_out" / "linear", W, 2 * W);
    f.proj_out_ = Linear::declare(s / "proj_out", W, cfg.in_channels);
    return f;
}

namespace {

// Per-head RMSNorm of q or k ([N, L, H * D]), in place of a new tensor.
Tensor head_norm(const Ctx& c, const Tensor& x, const RMSNorm& n, int64_t D) {
    const Tensor rows = x.contiguous().reshape({x.numel() / D, D});
    return n(c, rows).reshape(x.shape());
}

// RoPE on every batch item of q or k ([N, L, H * D]) with tables [L, D / 2].
void apply_rope(Tensor& x, const std::vector<float>& cos, const std::vector<float>& sin, int64_t heads, int64_t D) {
    const int64_t N = x.size(0), L = x.size(1);
    for (int64_t n = 0; n < N; ++n)
        rope_f32(x.data<float>() + n * L * heads * D, cos.data(), sin.data(), size_t(L), size_t(heads), size_t(D));
}

}  // namespace

Tensor FluxTransformer::forward(const Ctx& c, const Tensor& x_in, float t, std::optional<float> guidance,
                                const Tensor& context, const Tensor& pooled,
                                const std::vector<std::array<float, 3>>& img_ids,
                                const std::vector<std::array<float, 3>>& txt_ids) const {
    const int64_t N = x_in.size(0), T = x_in.size(1), L = context.size(1), D = cfg_.head_dim;
    const int64_t H = cfg_.num_heads;
    EASEL_ASSERT(x_in.size(2) == cfg_.in_channels && int64_t(img_ids.size()) == T && int64_t(txt_ids.size()) == L &&
                     context.size(0) == N && context.size(2) == cfg_.joint_attention_dim && pooled.size(0) == N &&
                     pooled.size(1) == cfg_.pooled_projection_dim,
                 "FluxTransformer::forward: inputs of the wrong shape");
    EASEL_ASSERT(guidance.has_value() == cfg_.guidance_embeds, "FluxTransformer::forward: guidance given to a model "
                                                                "without its embedding, or missing");
    Tensor x = x_embedder_(c, x_in);
    // The pipeline hands t / 1000 and the model multiplies by 1000 again, both in float32.
    const float tt = (t / 1000.0f) * 1000.0f;
    Tensor cond = t_lin2_(c, ops::silu(c, t_lin1_(c, ops::timestep_embedding(c, std::vector<float>(size_t(N), tt), 256, true, 0.0f))));
    if (guidance) {
        const float g = *guidance * 1000.0f;
        cond = ops::add(c, cond, g_lin2_(c, ops::silu(c, g_lin1_(c, ops::timestep_embedding(c, std::vector<float>(size_t(N), g), 256, true, 0.0f)))));
    }
    cond = ops::add(c, cond, p_lin2_(c, ops::silu(c, p_lin1_(c, pooled))));
    const Tensor act = ops::silu(c, cond);
    Tensor ctx = context_embedder_(c, context);

    // RoPE over (text ids, image ids): the joint sequence's order.
    std::vector<std::array<float, 3>> ids = txt_ids;
    ids.insert(ids.end(), img_ids.begin(), img_ids.end());
    std::vector<float> cos, sin;
    flux_rope_tables(ids, cfg_.axes_dims_rope, cfg_.rope_theta, cos, sin);

    for (const DoubleBlock& b : double_) {
        const Tensor mx = b.ada_x(c, act), mc = b.ada_c(c, act);
        const Tensor nx = modulated_norm(c, x, mx, 0, 1), nc = modulated_norm(c, ctx, mc, 0, 1);
        Tensor q = ops::concat(c, {head_norm(c, b.cq(c, nc), b.norm_added.q, D), head_norm(c, b.q(c, nx), b.norm.q, D)}, 1);
        Tensor k = ops::concat(c, {head_norm(c, b.ck(c, nc), b.norm_added.k, D), head_norm(c, b.k(c, nx), b.norm.k, D)}, 1);
        const Tensor v = ops::concat(c, {b.cv(c, nc), b.v(c, nx)}, 1);
        apply_rope(q, cos, sin, H, D);
        apply_rope(k, cos, sin, H, D);
        const Tensor att = ops::attention(c, q, k, v, int(H));  // [N, L + T, W]: context first
        gated_add(x, b.out(c, att.slice(1, L, L + T).contiguous()), mx, 2);
        gated_add(x, b.ff(c, modulated_norm(c, x, mx, 3, 4)), mx, 5);
        gated_add(ctx, b.add_out(c, att.slice(1, 0, L).contiguous()), mc, 2);
        gated_add(ctx, b.ff_context(c, modulated_norm(c, ctx, mc, 3, 4)), mc, 5);
    }
    Tensor h = ops::concat(c, {ctx, x}, 1);  // [N, L + T, W]
    for (const SingleBlock& b : single_) {
        const Tensor m = b.ada(c, act);  // shift, scale, gate
        const Tensor nh = modulated_norm(c, h, m, 0, 1);
        const Tensor mlp = ops::gelu(c, b.proj_mlp(c, nh), true);
        Tensor q = head_norm(c, b.q(c, nh), b.norm.q, D);
        Tensor k = head_norm(c, b.k(c, nh), b.norm.k, D);
        apply_rope(q, cos, sin, H, D);
        apply_rope(k, cos, sin, H, D);
        const Tensor att = ops::attention(c, q, k, b.v(c, nh), int(H));
        gated_add(h, b.proj_out(c, ops::concat(c, {att, mlp}, 2)), m, 2);
    }
    const Tensor img = h.slice(1, L, L + T).contiguous();
    return proj_out_(c, modulated_norm(c, img, norm_out_(c, act), 1, 0));  // AdaLayerNormContinuous: scale, shift
}

}  // namespace easel
