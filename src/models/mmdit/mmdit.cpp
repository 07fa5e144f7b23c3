#include "models/mmdit/mmdit.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "models/common/dit.h"

namespace easel {

MMDiT MMDiT::declare(const ParamScope& s, const MMDiTConfig& cfg) {
    MMDiT m;
    m.cfg_ = cfg;
    const int64_t W = cfg.inner_dim(), P = cfg.patch_size;
    m.patch_ = Conv2d::declare(s / "pos_embed" / "proj", cfg.in_channels, W, {.kernel = int(P), .stride = int(P), .padding = 0});
    const int64_t M = cfg.pos_embed_max_size;
    m.pos_grid_ = s.take_f32("pos_embed.pos_embed", {1, M * M, W}).reshape({M * M, W});
    const ParamScope te = s / "time_text_embed";
    m.t_lin1_ = Linear::declare(te / "timestep_embedder" / "linear_1", 256, W);
    m.t_lin2_ = Linear::declare(te / "timestep_embedder" / "linear_2", W, W);
    m.p_lin1_ = Linear::declare(te / "text_embedder" / "linear_1", cfg.pooled_projection_dim, W);
    m.p_lin2_ = Linear::declare(te / "text_embedder" / "linear_2", W, W);
    m.context_embedder_ = Linear::declare(s / "context_embedder", cfg.joint_attention_dim, cfg.caption_projection_dim);
    const int64_t D = cfg.head_dim;
    auto qk = [&](const ParamScope& a, const char* q, const char* k, std::optional<RMSNorm>& nq, std::optional<RMSNorm>& nk) {
        if (!cfg.qk_norm) return;
        nq = RMSNorm::declare(a / q, D, 1e-6f);
        nk = RMSNorm::declare(a / k, D, 1e-6f);
    };
    for (int i = 0; i < cfg.num_layers; ++i) {
        const ParamScope b = s / "transformer_blocks" / i;
        Block blk;
        blk.context_pre_only = i == cfg.num_layers - 1;
        blk.x.ada = Linear::declare(b / "norm1" / "linear", W, (cfg.dual(i) ? 9 : 6) * W);
        qk(b / "attn", "norm_q", "norm_k", blk.x.norm_q, blk.x.norm_k);
        qk(b / "attn", "norm_added_q", "norm_added_k", blk.ctx.norm_q, blk.ctx.norm_k);
        if (cfg.dual(i)) {
            const ParamScope a2 = b / "attn2";
            SelfAttention sa{Linear::declare(a2 / "to_q", W, W), Linear::declare(a2 / "to_k", W, W), Linear::declare(a2 / "to_v", W, W),
                             Linear::declare(a2 / "to_out" / 0, W, W), {}, {}};
            qk(a2, "norm_q", "norm_k", sa.norm_q, sa.norm_k);
            blk.attn2 = std::move(sa);
        }
        blk.x.q = Linear::declare(b / "attn" / "to_q", W, W);
        blk.x.k = Linear::declare(b / "attn" / "to_k", W, W);
        blk.x.v = Linear::declare(b / "attn" / "to_v", W, W);
        blk.x.out = Linear::declare(b / "attn" / "to_out" / 0, W, W);
        blk.x.ff1 = Linear::declare(b / "ff" / "net" / 0 / "proj", W, 4 * W);
        blk.x.ff2 = Linear::declare(b / "ff" / "net" / 2, 4 * W, W);
        blk.ctx.ada = Linear::declare(b / "norm1_context" / "linear", W, (blk.context_pre_only ? 2 : 6) * W);
        blk.ctx.q = Linear::declare(b / "attn" / "add_q_proj", W, W);
        blk.ctx.k = Linear::declare(b / "attn" / "add_k_proj", W, W);
        blk.ctx.v = Linear::declare(b / "attn" / "add_v_proj", W, W);
        if (!blk.context_pre_only) {
            blk.ctx.out = Linear::declare(b / "attn" / "to_add_out", W, W);
            blk.ctx.ff1 = Linear::declare(b / "ff_context" / "net" / 0 / "proj", W, 4 * W);
            blk.ctx.ff2 = Linear::declare(b / "ff_context" / "net" / 2, 4 * W, W);
        }
        m.blocks_.push_back(std::move(blk));
    }
    m.norm_out_ = Linear::declare(s / "norm_out" / "linear", W, 2 * W);
    m.proj_out_ = Linear::declare(s / "proj_out", W, P * P * cfg.out_channels);
    return m;
}

namespace {

// q or k ([N, L, H * D]) through a per-head RMSNorm when the model has one.
Tensor normed(const Ctx& c, const Tensor& x, const std::optional<RMSNorm>& n, int64_t D) {
    if (!n) return x;
    return (*n)(c, x.contiguous().reshape({x.numel() / D, D})).reshape(x.shape());
}

}  // namespace

Tensor MMDiT::forward(const Ctx& c, const Tensor& x_in, float t, const Tensor& context, const Tensor& pooled,
                      std::span<const int> skip) const {
    const int64_t N = x_in.size(0), H = x_in.size(2), Wd = x_in.size(3), P = cfg_.patch_size, W = cfg_.inner_dim();
    const int64_t h = H / P, w = Wd / P, T = h * w, M = cfg_.pos_embed_max_size;
    EASEL_ASSERT(x_in.size(1) == cfg_.in_channels && H % P == 0 && Wd % P == 0 && h <= M && w <= M,
                 "MMDiT::forward: latent size outside the position grid (validate the size first)");
    EASEL_ASSERT(context.size(0) == N && context.size(2) == cfg_.joint_attention_dim && pooled.size(0) == N &&
                     pooled.size(1) == cfg_.pooled_projection_dim,
                 "MMDiT::forward: conditioning of the wrong shape");

    // Patches -> tokens [N, T, W], plus the centre crop of the position grid (diffusers cropped_pos_embed).
    const Tensor patches = patch_(c, x_in);  // [N, W, h, w]
    Tensor x = c.empty({N, T, W});
    const int64_t top = (M - h) / 2, left = (M - w) / 2;
    for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < T; ++i) {
            const float* pos = pos_grid_.data<float>() + ((top + i / w) * M + left + i % w) * W;
            float* o = x.data<float>() + (n * T + i) * W;
            const float* src = patches.data<float>() + n * W * T + i;
            for (int64_t d = 0; d < W; ++d) o[d] = src[d * T] + pos[d];
        }

    // The conditioning vector: timestep MLP (256-wide sinusoid, cos first, no shift) + pooled MLP; silu'd once
    // for every adaLN linear.
    const Tensor temb0 = ops::timestep_embedding(c, std::vector<float>(size_t(N), t), 256, true, 0.0f);
    const Tensor temb = t_lin2_(c, ops::silu(c, t_lin1_(c, temb0)));
    const Tensor cond = ops::add(c, temb, p_lin2_(c, ops::silu(c, p_lin1_(c, pooled))));
    const Tensor act = ops::silu(c, cond);

    Tensor ctx = context_embedder_(c, context);  // [N, L, W]
    const int64_t L = ctx.size(1);
    const int heads = cfg_.num_heads;
    for (size_t bi = 0; bi < blocks_.size(); ++bi) {
        if (std::find(skip.begin(), skip.end(), int(bi)) != skip.end()) continue;
        const Block& blk = blocks_[bi];
        const Tensor mx = blk.x.ada(c, act);   // shift, scale, gate (attention), shift, scale, gate (MLP)
        const Tensor mc = blk.ctx.ada(c, act); // the same, or (scale, shift) on the last block
        const Tensor nx = modulated_norm(c, x, mx, 0, 1);
        const Tensor nc = blk.context_pre_only ? modulated_norm(c, ctx, mc, 1, 0) : modulated_norm(c, ctx, mc, 0, 1);
        const int64_t D = cfg_.head_dim;
        const Tensor q = ops::concat(c, {normed(c, blk.x.q(c, nx), blk.x.norm_q, D), normed(c, blk.ctx.q(c, nc), blk.ctx.norm_q, D)}, 1);
        const Tensor k = ops::concat(c, {normed(c, blk.x.k(c, nx), blk.x.norm_k, D), normed(c, blk.ctx.k(c, nc), blk.ctx.norm_k, D)}, 1);
        const Tensor v = ops::concat(c, {blk.x.v(c, nx), blk.ctx.v(c, nc)}, 1);
        const Tensor att = ops::attention(c, q, k, v, heads);  // [N, T + L, W]
        const Tensor ax = (*blk.x.out)(c, att.slice(1, 0, T).contiguous());
        if (blk.attn2) {
            // MMDiT-X (SD3.5 medium): the block input's norm modulated by the 7th-8th chunks, self-attention over the
            // image tokens alone, added after the joint attention's output with the 9th chunk as its gate.
            const SelfAttention& a2 = *blk.attn2;
            const Tensor nx2 = modulated_norm(c, x, mx, 6, 7);
            const Tensor att2 = ops::attention(c, normed(c, a2.q(c, nx2), a2.norm_q, D), normed(c, a2.k(c, nx2), a2.norm_k, D),
                                               a2.v(c, nx2), heads);
            gated_add(x, ax, mx, 2);
            gated_add(x, a2.out(c, att2), mx, 8);
        } else {
            gated_add(x, ax, mx, 2);
        }
        const Tensor nx2 = modulated_norm(c, x, mx, 3, 4);
        gated_add(x, (*blk.x.ff2)(c, ops::gelu(c, (*blk.x.ff1)(c, nx2), true)), mx, 5);
        if (!blk.context_pre_only) {
            const Tensor ac = (*blk.ctx.out)(c, att.slice(1, T, T + L).contiguous());
            gated_add(ctx, ac, mc, 2);
            const Tensor nc2 = modulated_norm(c, ctx, mc, 3, 4);
            gated_add(ctx, (*blk.ctx.ff2)(c, ops::gelu(c, (*blk.ctx.ff1)(c, nc2), true)), mc, 5);
        }
    }
    // AdaLayerNormContinuous: (scale, shift), then the projection to p x p x C per token.
    const Tensor fx = modulated_norm(c, x, norm_out_(c, act), 1, 0);
    const Tensor y = proj_out_(c, fx);  // [N, T, P * P * C]
    const int64_t C = cfg_.out_channels;
    Tensor out = c.empty({N, C, H, Wd});
    // einsum("nhwpqc->nchpwq")
    for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < h; ++i)
            for (int64_t j = 0; j < w; ++j) {
                const float* src = y.data<float>() + (n * T + i * w + j) * P * P * C;
                for (int64_t p = 0; p < P; ++p)
                    for (int64_t q = 0; q < P; ++q)
                        for (int64_t ch = 0; ch < C; ++ch)
                            out.data<float>()[((n * C + ch) * H + i * P + p) * Wd + j * P + q] = src[(p * P + q) * C + ch];
            }
    return out;
}

}  // namespace easel
