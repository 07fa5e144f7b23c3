// One CLIP transformer layer as transformers' CLIPEncoderLayer (modeling_clip.py, 4.40) computes it: pre-LN
// self-attention (q/k/v/out_proj with biases) and MLP (fc1, activation, fc2), each added to its input. The text
// tower runs it with a causal mask, the vision tower without.
//
//   CLIPLayer l = CLIPLayer::declare(scope / "encoder" / "layers" / 0, 768, 3072, 1e-5f);
//   x = l.forward(ctx, x, /*heads=*/12, CLIPActivation::QuickGelu, /*causal=*/true);   // [N, L, 768]
#pragma once

#include "models/clip/config.h"
#include "runtime/nn.h"

namespace easel {

struct CLIPLayer {
    LayerNorm ln1, ln2;
    Linear q, k, v, out, fc1, fc2;

    // Parameters under `s`: layer_norm1, self_attn.{q,k,v,out}_proj, layer_norm2, mlp.fc1, mlp.fc2.
    static CLIPLayer declare(const ParamScope& s, int64_t hidden, int64_t intermediate, float eps);
    // x: [N, L, hidden] -> [N, L, hidden]
    Tensor forward(const Ctx& c, const Tensor& x, int heads, CLIPActivation act, bool causal) const;
};

}  // namespace easel
