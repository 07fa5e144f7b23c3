// What the diffusion transformers (SD3's MMDiT, Flux) share: adaLN modulation of token rows, one gamma/beta pair
// per batch item, and the gated residual add; diffusers' FeedForward with the tanh GELU.
//
//   Tensor mod = ada(c, silu_temb);                    // [N, 6 * D]: shift, scale, gate, shift, scale, gate
//   Tensor nx = modulated_norm(c, x, mod, 0, 1);       // LayerNorm(x) * (1 + scale) + shift, eps 1e-6
//   gated_add(x, attn_out, mod, 2);                    // x += gate * attn_out
#pragma once

#include "runtime/nn.h"

namespace easel {

// LayerNorm without affine (eps 1e-6) of each row of x [N, T, D], then * (1 + mod[n, scale_chunk]) +
// mod[n, shift_chunk]; mod is [N, k * D] and its chunks D wide.
Tensor modulated_norm(const Ctx& c, const Tensor& x, const Tensor& mod, int shift_chunk, int scale_chunk);
// x[n] += mod[n, chunk] * y[n] (x [N, T, D] updated in place, y shaped like x).
void gated_add(Tensor& x, const Tensor& y, const Tensor& mod, int chunk);

// diffusers FeedForward(activation_fn="gelu-approximate"): net.0.proj (D -> mult D), tanh GELU, net.2 back.
struct GeluFeedForward {
    Linear proj_in, proj_out;
    static GeluFeedForward declare(const ParamScope& s, int64_t dim, int64_t mult = 4);
    Tensor operator()(const Ctx& c, const Tensor& x) const { return proj_out(c, ops::gelu(c, proj_in(c, x), true)); }
};

}  // namespace easel
