// Matrix products: Linear layers (activations x weights packed once at load) and general strided batched
// products of two activations (attention scores, attention x values).
//
//   PackedWeight w = pack_linear_weight(data, DType::F16, /*n=*/320, /*k=*/1280, Precision::F32).value();
//   linear(x, /*m=*/4096, w, y, {.bias = b});           // y[4096, 320] = x[4096, 1280] · Wᵀ + b
//   linear(x, 4096, w, y, {.residual = y});              // y += x · Wᵀ   (the residual may alias y)
//   matmul_f32({.batch = 8, .m = 4096, .n = 4096, .k = 40, .a = q, .a_batch_stride = 4096 * 40, .a_row_stride = 40,
//               .b = k_, .b_batch_stride = 4096 * 40, .b_row_stride = 1, .b_col_stride = 40, .c = s, .alpha = 0.158f});
//
// Semantics are defined by the scalar references in kernels/ref/matmul_ref.cpp:
//   Precision::F32   exact mode: f16/bf16 weights are widened to f32; products accumulate in f32 (the reference
//                    accumulates in double, fast paths in f32 with a different order).
//   Precision::BF16  fast mode: BOTH operands are rounded to bf16 (nearest even), products are exact and are
//                    accumulated in f32. On AVX512-BF16 hardware this is vdpbf16ps; elsewhere the rounded values
//                    are widened to f32 and multiplied in f32, which gives the same products. (vdpbf16ps and
//                    vcvtneps2bf16 treat f32/bf16 denormals as zero; the reference does not. Activations and
//                    weights of SD never sit at 1e-38, so this is noted, not handled.)
// Matrices are row-major; a batch of Linear rows ([B, T, K]) is one call with m = B*T.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/quant.h"

namespace easel {

enum class Precision { F32, BF16 };
std::string_view precision_name(Precision p);  // "f32", "bf16"

// A [n, k] weight matrix (PyTorch Linear layout: out_features x in_features) in the layout one kernel variant
// wants. Produced by pack_linear_weight (or pack_conv2d_weight); treat the layout fields as private to the
// kernels. Copies share the packed data.
struct PackedWeight {
    int64_t n = 0, k = 0;
    Precision precision = Precision::F32;
    Isa isa = Isa::Ref;  // the variant it was packed for; linear() runs exactly that variant
    // Layout. nr == 0: row-major [n, k] f32 (the reference's layout; bf16-rounded values in BF16 mode).
    // nr > 0: ceil(n / nr) panels; panel j holds columns [j*nr, j*nr + nr) as k_words rows of nr 32-bit words,
    // consecutive in memory (panel stride k_words * nr words). A word is one f32 (kpack == 1) or the bf16 pair
    // (k = 2i, k = 2i + 1) in its (low, high) halves (kpack == 2). Padding columns and rows are zero.
    int nr = 0;
    int kpack = 1;
    int64_t k_words = 0;
    // Quantized (quantized_linear_weight): data is the n rows of blocks as stored (core/quant.h), usually a view
    // of the model file; linear() decodes a block of columns at a time into the isa kernel's panels, in scratch
    // (the reference decodes the whole weight and runs linear_f32_ref). nr, kpack and k_words are unused then.
    QuantType quant = QuantType::None;
    // Kept as f16/bf16 rows (stored_linear_weight): data is the [n, k] row-major weight as stored, decoded like a
    // quantized one. F32: not kept as stored.
    DType stored = DType::F32;
    std::shared_ptr<const void> data;

    bool empty() const { return data == nullptr; }
    size_t bytes() const;         // of data; 0 when empty
    size_t layout_bytes() const;  // what the layout fields call for, with or without data
};

// Packs w ([n, k] row-major, src_dtype F32, F16 or BF16) for the variant `isa` (default: the one the dispatcher
// picks, see core/cpu_features.h). Errors: unsupported dtype, non-positive or absurd sizes, an `isa` this CPU
// lacks. Isa::Avx512Bf16 with Precision::F32 packs for the AVX-512 f32 kernel (bf16 hardware does not help
// exact mode), so the result's isa() may be lower than asked.
Result<PackedWeight> pack_linear_weight(const void* w, DType src_dtype, int64_t n, int64_t k, Precision precision,
                                        Isa isa = active_isa());

// A weight kept as stored in a quantized format (core/quant.h): `blocks` holds n rows of k elements (k a
// multiple of the block), row after row; it is shared, not copied. Errors: sizes, a type that is not quantized,
// an `isa` this CPU lacks. linear() with it gives what linear() gives with the decoded f32 weight packed for the
// same isa and precision (the same kernel on the same values).
Result<PackedWeight> quantized_linear_weight(std::shared_ptr<const void> blocks, QuantType type, int64_t n, int64_t k,
                                             Precision precision, Isa isa = active_isa());

// A weight kept as its f16 or bf16 rows ([n, k] row-major, shared, not copied), widened a block of columns at a
// time in linear() exactly as a quantized one: half the memory of f32 panels, for what decoding costs per call
// (tools/bench: linear_stored). linear() gives what it gives with pack_linear_weight of the same rows, bit for bit.
// Errors: sizes, a dtype other than F16/BF16, an `isa` this CPU lacks.
Result<PackedWeight> stored_linear_weight(std::shared_ptr<const void> rows, DType dtype, int64_t n, int64_t k,
                                          Precision precision, Isa isa = active_isa());

// Packs w again into memory that already holds a weight of exactly `layout` (its padding words zero): what
// applying a LoRA to a loaded model does, in place. Errors: as pack_linear_weight, or `layout` is not what
// packed_linear_layout gives for its sizes, precision and ISA.
Status pack_linear_weight_into(const void* w, DType src_dtype, const PackedWeight& layout, void* into);
// Packs rows [row0, row0 + nrows) of a weight (`rows`: just those, [nrows, k] row-major) into their place in
// `into`, leaving the other rows as they are: the same bytes pack_linear_weight_into writes there. The block
// starts on a panel (row0 a multiple of layout.nr, when nr > 0) and ends on one or at the last row. Errors: as
// pack_linear_weight_into, or a block off the panels.
Status pack_linear_rows_into(const void* rows, DType src_dtype, const PackedWeight& layout, int64_t row0, int64_t nrows,
                             void* into);

// The layout (every field but data) that pack_linear_weight gives for these arguments, or its error. A cache of
// packed weights checks a stored entry against it: an entry is usable only if it matches field for field.
Result<PackedWeight> packed_linear_layout(int64_t n, int64_t k, Precision precision, Isa isa = active_isa());

struct LinearOptions {
    const float* bias = nullptr;      // [n] or null
    const float* residual = nullptr;  // [m, n] added to the result (row stride ld_residual); may equal y
    int64_t ld_residual = 0;          // 0: n
    int64_t ldx = 0;                  // row stride of x; 0: k
    int64_t ldy = 0;                  // row stride of y; 0: n
};

// y[m, n] = x[m, k] · Wᵀ (+ bias) (+ residual), running the variant w was packed for.
// FLOPs 2·m·n·k; compute-bound for m >= ~64 (weights are read once per 64..512 rows).
void linear(const float* x, int64_t m, const PackedWeight& w, float* y, const LinearOptions& options = {});

// C[b] = alpha · op(A[b]) · op(B[b]) (+ C[b] if accumulate), all f32 in memory. Element (b, i, j) of A is
// a[b*a_batch_stride + i*a_row_stride + j*a_col_stride]; a transposed operand is just swapped strides.
// B is packed per call (k·n copies per batch item), so this is for activation x activation products; use
// linear() for weights.
struct MatmulArgs {
    int64_t batch = 1, m = 0, n = 0, k = 0;
    const float* a = nullptr;  // [batch, m, k]
    int64_t a_batch_stride = 0, a_row_stride = 0, a_col_stride = 1;
    const float* b = nullptr;  // [batch, k, n]
    int64_t b_batch_stride = 0, b_row_stride = 0, b_col_stride = 1;
    float* c = nullptr;  // [batch, m, n], unit column stride
    int64_t c_batch_stride = 0, c_row_stride = 0;  // 0: m*n and n
    float alpha = 1.0f;
    bool accumulate = false;
    Precision precision = Precision::F32;
};
void matmul_f32(const MatmulArgs& args, Isa isa = active_isa());

// What "fast" precision (bf16 compute, f32 accumulation) should run on this CPU, chosen by measurement rather
// than by the ISA's name: BF16 only where the active ISA has a bf16 dot product (AVX512-BF16, AMX) and a short
// timing of one GEMM (a [256, 1024] x [1024, 1024]ᵀ product, each candidate timed three times, about 0.1 s, once
// per process) finds it at least 5% faster than f32; else F32, which is then also exact. On a CPU with AMX the
// tiles and the AVX512-BF16 dot products are both timed, and bf16 weights packed for Isa::Amx run whichever was
// faster (the two share their layout). Without the bf16 dot product the BF16 kernels round their operands and
// multiply in f32 (what the kernel tests check), which only costs time. EASEL_FAST_PRECISION=bf16|f32 overrides.
// `why` (optional) gets one line on the choice.
Precision fast_precision(std::string* why = nullptr);

// The variants this CPU can run, lowest first, ignoring the EASEL_CPU_ISA cap (tests run all of them).
// For Precision::F32, Avx512Bf16 and Amx are left out: they run the Avx512 kernel.
std::vector<Isa> gemm_supported_isas(Precision precision);

// Scalar references (kernels/ref/matmul_ref.cpp): plain loops accumulating in double, then one rounding to f32.
// They define the semantics above; in BF16 mode they first round both operands to bf16 (core/half.h).
// w_f32 is [n, k] row-major f32 (a reference-layout weight).
void linear_f32_ref(const float* x, int64_t m, const float* w_f32, int64_t n, int64_t k, float* y,
                    const LinearOptions& options, Precision precision);
void matmul_f32_ref(const MatmulArgs& args);

}  // namespace easel
