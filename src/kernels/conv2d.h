// 2-D convolution, NCHW f32 activations, weights [Cout, Cin, kh, kw] (f32, f16 or bf16) packed once at load.
//
//   PackedConv2dWeight w = pack_conv2d_weight(data, DType::F16, 320, 320, 3, 3, Precision::F32).value();
//   auto [ho, wo] = conv2d_output_hw(64, 64, 3, 3, {.padding = 1}).value();     // 64 x 64
//   conv2d(x, /*batch=*/2, 64, 64, w, y, {.padding = 1, .bias = b});             // y: [2, 320, 64, 64]
//   conv2d(x, 2, 64, 64, w, y, {.padding = 1, .residual = skip});               // y = conv(x) + skip
//   conv2d(x, 1, 64, 64, down, y, {.stride = 2, .extra_pad_bottom = 1, .extra_pad_right = 1});  // VAE encoder
//
// Computed as a GEMM per image: Y[Cout, Ho*Wo] = W[Cout, Cin*kh*kw] · im2col(X)[Cin*kh*kw, Ho*Wo], with the
// weights as the broadcast operand and im2col built straight into the microkernel's column panels one
// (256-word k block) x (<= 384 output pixels) tile at a time, so the im2col scratch stays below ~0.4 MiB per
// thread whatever the image size. BF16 mode with bf16 hardware also holds the input image as bf16 channel pairs
// (half the size of x) for the duration of the call. Precision has the meaning given in kernels/matmul.h (BF16: weights and
// input rounded to bf16, f32 accumulation). Semantics: conv2d_f32_ref in kernels/ref/conv2d_ref.cpp.
#pragma once

#include <cstdint>
#include <utility>

#include "core/cpu_features.h"
#include "core/error.h"
#include "kernels/matmul.h"

namespace easel {

struct Conv2dOptions {
    int64_t stride = 1;
    int64_t padding = 0;  // zeros on all four sides
    // Extra zeros at the bottom / right only, on top of `padding`: diffusers' VAE Downsample2D pads (0, 1, 0, 1)
    // by hand and then convolves 3x3 / stride 2 with padding 0.
    int64_t extra_pad_bottom = 0, extra_pad_right = 0;
    const float* bias = nullptr;      // [Cout] or null
    const float* residual = nullptr;  // [batch, Cout, Ho, Wo] added after the bias; may equal y
};

// Weights for one conv layer in the layout of one kernel variant (see PackedWeight).
struct PackedConv2dWeight {
    int64_t cout = 0, cin = 0, kh = 0, kw = 0;
    Precision precision = Precision::F32;
    Isa isa = Isa::Ref;
    // Isa::Ref: f32 [cout, cin*kh*kw], exact values. Otherwise cout rows of k_words 32-bit words (row stride
    // ld_words, zero padded): f32 or bf16-rounded f32 in PyTorch's (ci, ky, kx) order (kpack 1), or bf16 pairs
    // of channels (2c, 2c+1) in (ky, kx, c) order (kpack 2; an odd cin gets a zero partner channel).
    int kpack = 1;
    int64_t k_words = 0;
    int64_t ld_words = 0;
    // Kept as f16/bf16 (stored_conv2d_weight): data is the [cout, cin, kh, kw] weight as stored, widened to the
    // kernel's f32 words a block at a time in conv2d(); ld_words and k_words describe those words. F32: packed.
    DType stored = DType::F32;
    std::shared_ptr<const void> data;

    bool empty() const { return data == nullptr; }
    int64_t k() const { return cin * kh * kw; }
    // What the layout calls for: the packed words, or the weight as stored.
    size_t layout_bytes() const {
        return stored != DType::F32 ? size_t(cout * k()) * dtype_size(stored) : size_t(cout * ld_words) * 4;
    }
};

// Errors: dtype not f32/f16/bf16, a non-positive or absurd dimension, an `isa` this CPU lacks. As with
// pack_linear_weight, Isa::Avx512Bf16 with Precision::F32 gives the Avx512 layout.
Result<PackedConv2dWeight> pack_conv2d_weight(const void* w, DType src_dtype, int64_t cout, int64_t cin,
                                              int64_t kh, int64_t kw, Precision precision, Isa isa = active_isa());

// A weight kept as its f16 or bf16 values ([cout, cin, kh, kw], shared, not copied): each conv2d() call widens a
// (k block) x (all output channels) block of it into the kernel's f32 words per tile of output pixels, so it costs
// half the memory of the packed f32 words for a few percent of conversion. conv2d() then gives what it gives with
// pack_conv2d_weight of the same values, bit for bit. Only for layouts of f32 words (kpack 1: every f32 kernel,
// and BF16 mode without bf16 hardware); where the kernel wants bf16 pairs (kpack 2, already half the size) it is
// refused, and the caller packs. Errors: dtype, sizes, null data, an `isa` this CPU lacks, a kpack 2 layout.
Result<PackedConv2dWeight> stored_conv2d_weight(std::shared_ptr<const void> w, DType dtype, int64_t cout, int64_t cin,
                                                int64_t kh, int64_t kw, Precision precision, Isa isa = active_isa());

// Packs w again into memory that already holds a weight of exactly `layout` (see pack_linear_weight_into).
Status pack_conv2d_weight_into(const void* w, DType src_dtype, const PackedConv2dWeight& layout, void* into);
// Packs output channels [row0, row0 + nrows) (`rows`: just those, [nrows, cin, kh, kw]) into their place in
// `into` (see pack_linear_rows_into; any block of channels).
Status pack_conv2d_rows_into(const void* rows, DType src_dtype, const PackedConv2dWeight& layout, int64_t row0,
                             int64_t nrows, void* into);

// The layout (every field but data) pack_conv2d_weight gives for these arguments, or its error (see
// packed_linear_layout).
Result<PackedConv2dWeight> packed_conv2d_layout(int64_t cout, int64_t cin, int64_t kh, int64_t kw, Precision precision,
                                                Isa isa = active_isa());

// Output height and width (defined next to the reference, kernels/ref/conv2d_ref.cpp), or an error when the (padded) input is smaller than the kernel or stride < 1.
Result<std::pair<int64_t, int64_t>> conv2d_output_hw(int64_t h, int64_t w, int64_t kh, int64_t kw,
                                                     const Conv2dOptions& options);

// x: [batch, cin, h, w] -> y: [batch, cout, ho, wo], using the variant `weight` was packed for.
// FLOPs 2·batch·cout·ho·wo·cin·kh·kw. Preconditions (asserted): conv2d_output_hw succeeds for these sizes.
void conv2d(const float* x, int64_t batch, int64_t h, int64_t w, const PackedConv2dWeight& weight, float* y,
            const Conv2dOptions& options = {});

// Scalar reference (kernels/ref/conv2d_ref.cpp): direct loops, double accumulation; in BF16 mode x and w are
// rounded to bf16 first. w_f32: [cout, cin, kh, kw].
void conv2d_f32_ref(const float* x, int64_t batch, int64_t cin, int64_t h, int64_t w, const float* w_f32,
                    int64_t cout, int64_t kh, int64_t kw, float* y, const Conv2dOptions& options, Precision precision);

}  // namespace easel
