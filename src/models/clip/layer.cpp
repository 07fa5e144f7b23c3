#include "models/clip/layer.h"

namespace easel {

CLIPLayer CLIPLayer::declare(const ParamScope& l, int64_t D, int64_t F, float eps) {
    CLIPLayer layer;
    layer.ln1 = LayerNorm::declare(l / "layer_norm1", D, eps);
    layer.q = Linear::declare(l / "self_attn" / "q_proj", D, D);
    layer.k = Linear::declare(l / "self_attn" / "k_proj", D, D);
    layer.v = Linear::declare(l / "self_attn" / "v_proj", D, D);
    layer.out = Linear::declare(l / "self_attn" / "out_proj", D, D);
    layer.ln2 = LayerNorm::declare(l / "layer_norm2", D, eps);
    layer.fc1 = Linear::declare(l / "mlp" / "fc1", D, F);
    layer.fc2 = Linear::declare(l / "mlp" / "fc2", F, D);
    return layer;
}

Tensor CLIPLayer::forward(const Ctx& c, const Tensor& x0, int heads, CLIPActivation act, bool causal) const {
    Tensor h = ln1(c, x0);
    Tensor a = ops::attention(c, q(c, h), k(c, h), v(c, h), heads, causal);
    Tensor x = out(c, a, &x0);
    h = fc1(c, ln2(c, x));
    h = act == CLIPActivation::QuickGelu ? ops::quick_gelu(c, h) : ops::gelu(c, h);
    return fc2(c, h, &x);
}

}  // namespace easel
