// Layers with parameters, declared from a ParamScope (STYLE.md section 4) and run on f32 activations.
// Weights are packed once at declare time for the active CPU ISA and precision; the f16/bf16 tensors of a
// mapped checkpoint are read once and can then be dropped by the page cache.
//
//   Linear to_q = Linear::declare(s / "to_q", 320, 320, /*bias=*/false);
//   Tensor q = to_q(c, x);                       // x: [..., 320] -> [..., 320]
//   Conv2d conv = Conv2d::declare(s / "conv1", 320, 640, {.kernel = 3, .padding = 1});
#pragma once

#include "kernels/conv2d.h"
#include "kernels/matmul.h"
#include "runtime/ops.h"
#include "runtime/param.h"

namespace easel {

struct Linear {
    PackedWeight weight;  // [out, in]
    Tensor bias;          // [out] f32, or undefined
    int64_t in = 0, out = 0;

    static Linear declare(const ParamScope& s, int64_t in, int64_t out, bool bias = true);
    // A 1x1 convolution's weight [out, in, 1, 1] used as a Linear over channels-last rows (the same maths).
    static Linear declare_conv1x1(const ParamScope& s, int64_t in, int64_t out, bool bias = true);
    // x: [..., in] -> [..., out]; with `residual` ([..., out]) the result is x·Wᵀ + b + residual.
    Tensor operator()(const Ctx& c, const Tensor& x, const Tensor* residual = nullptr) const;
};

struct Conv2dSpec {
    int kernel = 3;
    int stride = 1;
    int padding = 0;
    // diffusers' VAE Downsample2D pads (0, 1, 0, 1) by hand before a stride-2, padding-0 conv.
    bool pad_bottom_right = false;
};

struct Conv2d {
    PackedConv2dWeight weight;  // [out, in, k, k], packed for the active ISA
    Tensor bias;                // [out] f32
    int64_t in = 0, out = 0;
    Conv2dSpec spec;

    static Conv2d declare(const ParamScope& s, int64_t in, int64_t out, Conv2dSpec spec, bool bias = true);
    // x: [N, in, H, W] -> [N, out, Ho, Wo]; with `residual` ([N, out, Ho, Wo]) it is added (fused).
    Tensor operator()(const Ctx& c, const Tensor& x, const Tensor* residual = nullptr) const;
};

struct GroupNorm {
    Tensor gamma, beta;  // [C] f32
    int groups = 32;
    float eps = 1e-5f;

    static GroupNorm declare(const ParamScope& s, int groups, int64_t channels, float eps);
    Tensor operator()(const Ctx& c, const Tensor& x, bool fuse_silu = false) const;
};

struct LayerNorm {
    Tensor gamma, beta;  // [D] f32
    float eps = 1e-5f;

    static LayerNorm declare(const ParamScope& s, int64_t dim, float eps);
    Tensor operator()(const Ctx& c, const Tensor& x) const;
};

// T5's LayerNorm (RMSNorm): a weight, no bias.
struct RMSNorm {
    Tensor gamma;  // [D] f32
    float eps = 1e-6f;

    static RMSNorm declare(const ParamScope& s, int64_t dim, float eps);
    Tensor operator()(const Ctx& c, const Tensor& x) const { return ops::rms_norm(c, x, gamma, eps); }
};

}  // namespace easel
