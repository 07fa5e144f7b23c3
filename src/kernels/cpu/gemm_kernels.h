// Private to the GEMM and conv2d kernels: the microkernel interface each ISA file implements, and the blocked
// driver (dispatch_gemm.cpp) that linear(), matmul_f32() and conv2d() share.
//
// The driver computes C[M, N] = alpha · A[M, K] · B[K, N] (+ cin) (+ bias). A is row-major in "words" (one f32,
// or one bf16 pair along k); the microkernel broadcasts A words and loads B rows of nr words. B always comes as
// panels of nr columns (see PackedWeight in kernels/matmul.h): pre-packed weights for linear(), built per
// block by a callback for matmul_f32() and conv2d() (im2col rows straight into panels).
//
// Intrinsics live only in matmul_<isa>.cpp; everything here and in the driver is plain C++ compiled without ISA
// flags, so nothing inline that is shared can be emitted with the wrong instructions.
#pragma once

#include <cstdint>
#include <functional>

#include "core/cpu_features.h"
#include "kernels/matmul.h"

namespace easel::gemm {

// One microkernel call: C[0:mr, 0:nc] = cin[0:mr, 0:nc] + bias_row[r] + bias_col[j] + alpha · A[0:mr, 0:kw] · B.
struct UkernelArgs {
    int64_t kw = 0;                // k extent in words (f32 values, or bf16 pairs)
    const uint32_t* a = nullptr;   // mr rows, row stride lda words
    int64_t lda = 0;
    const uint32_t* b = nullptr;   // kw rows of nr words (one panel slice), 64-byte aligned
    // Or (ukernel_rows only) row k of B is the nr words at b_rows[k], anywhere in memory (implicit GEMM).
    const uint32_t* const* b_rows = nullptr;
    float* c = nullptr;
    int64_t ldc = 0;
    const float* cin = nullptr;    // may equal c; null: 0
    int64_t ldcin = 0;
    const float* bias_row = nullptr;  // [mr] or null
    const float* bias_col = nullptr;  // [nc] or null
    float alpha = 1.0f;
    int mr = 0;  // 1..MR
    int nc = 0;  // 1..nr
};
using UkernelFn = void (*)(const UkernelArgs&);

// Converts `rows` rows of k floats (row stride lds floats) to the kernel's A words (row stride ldd words):
// bf16 pairs (odd k padded with a zero half) or bf16-rounded f32.
using ConvertRowsFn = void (*)(const float* src, int64_t lds, int64_t rows, int64_t k, uint32_t* dst, int64_t ldd);

// Writes n B words: bf16 pairs (row0[j], row1[j]) with row1 null meaning zeros, or bf16-rounded row0[j] (dst
// may equal row0 then). Used for B panel rows and, in conv2d, to turn whole channel planes into pair planes.
using PackRowFn = void (*)(const float* row0, const float* row1, int64_t n, uint32_t* dst);

// Widens a block of an f16 weight kept as stored into one f32 panel (kpack 1): out[kk * nr + j] =
// w[j * ldw + kk] for kk < kc, j < cols, and 0 for cols <= j < nr (nr a multiple of 8).
using PanelF16Fn = void (*)(const uint16_t* w, int64_t ldw, int64_t cols, int64_t kc, int64_t nr, float* out);
// F16C's (matmul_avx2.cpp; the AVX-512 f32 kernel uses it too).
void panel_f16_avx2(const uint16_t* w, int64_t ldw, int64_t cols, int64_t kc, int64_t nr, float* out);
// The same from f32 rows, for packing a weight (kpack 1): out[kk * nr + j] = w[j * ldw + kk], zeros past cols.
using PanelF32Fn = void (*)(const float* w, int64_t ldw, int64_t cols, int64_t kc, int64_t nr, float* out);
void panel_f32_avx2(const float* w, int64_t ldw, int64_t cols, int64_t kc, int64_t nr, float* out);

struct GemmKernel {
    Isa isa = Isa::Ref;
    Precision precision = Precision::F32;
    int mr = 0, nr = 0;
    int kpack = 1;           // 2: words are bf16 pairs
    bool round_bf16 = false;  // kpack == 1 but values are bf16-rounded (BF16 mode without bf16 hardware)
    UkernelFn ukernel = nullptr;
    UkernelFn ukernel_rows = nullptr;      // the same with B rows by address (UkernelArgs::b_rows); may be null
    ConvertRowsFn convert_rows = nullptr;  // null: A is used as f32 as it is
    PackRowFn pack_row = nullptr;          // null: B words are row0 as it is (f32)
    PanelF16Fn panel_f16 = nullptr;        // f16 weights kept as stored, into this kernel's panels; null: generic
    PanelF32Fn panel_f32 = nullptr;        // packing (kpack 1): a panel transposed at once (then rounded where
                                           // round_bf16); null: row by row through pack_row
    int kw_align = 8;                      // k blocks (but the last) are a multiple of this many words
};

// Per-ISA tables (defined in matmul_<isa>.cpp). Null if that ISA file has no kernel for the precision.
const GemmKernel* gemm_kernel_avx2(Precision p);
const GemmKernel* gemm_kernel_avx512(Precision p);
const GemmKernel* gemm_kernel_avx512bf16(Precision p);
// AMX (matmul_amx.cpp): null unless the CPU has AMX and the kernel passed its start-up check (a product with an
// exact answer); then Isa::Amx runs the AVX512-BF16 kernel instead.
const GemmKernel* gemm_kernel_amx(Precision p);
// For the tests: the AMX kernel without the start-up check (call only where the CPU has AMX), and the same kernel
// on a plain C++ model of the tile unit (matmul_amx_emu.cpp), which runs on any CPU.
const GemmKernel& gemm_kernel_amx_unchecked();
const GemmKernel& gemm_kernel_amx_emulated();

// The kernel a PackedWeight of (isa, precision) runs, or null for Isa::Ref (the reference path). Isa::Amx in BF16
// runs the AMX kernel, or the AVX512-BF16 one (the same panels) when AMX failed its start-up check or
// fast_precision() timed it slower.
const GemmKernel* gemm_kernel_for(Isa isa, Precision p);

// The A operand of one GEMM: f32 element (i, k) at f32[i*row_stride + k*col_stride], or, when `words` is set,
// rows already in the kernel's word format (row stride ld_words).
// Or (kpack 1 kernels only) f16/bf16 rows kept as stored (element (i, k) at half[i*half_ld + k]), widened to f32
// words a block at a time per tile (and rounded where the kernel rounds).
struct GemmA {
    const float* f32 = nullptr;
    int64_t row_stride = 0, col_stride = 1;
    const uint32_t* words = nullptr;
    int64_t ld_words = 0;
    const void* half = nullptr;
    DType half_dtype = DType::F16;
    int64_t half_ld = 0;
};

// The B operand: pre-packed panels covering all of K (panel stride panel_stride words), or a callback that
// writes the block k in [k0, k0 + kc), columns [n0, n0 + nc) as ceil(nc / nr) panels of ceil(kc / kpack)
// rows x nr words (padding zero) to dst. k0 is a multiple of kpack. The callback may run on any thread.
struct GemmB {
    const uint32_t* packed = nullptr;
    int64_t panel_stride = 0;
    std::function<void(int64_t k0, int64_t kc, int64_t n0, int64_t nc, uint32_t* dst)> build;
    // Or B read in place: rows(kw0, kwn, n0, out) stores in out[r] the address of the nr words of word row
    // kw0 + r at columns [n0, n0 + nr), for r in [0, kwn). Needs kern.ukernel_rows and N a multiple of nr.
    std::function<void(int64_t kw0, int64_t kwn, int64_t n0, const uint32_t** out)> rows;
    // build is costly (decoding quantized weights): tiles take every row, so each B block is built once.
    bool build_once = false;
};

struct GemmEpilogue {
    float alpha = 1.0f;
    const float* cin = nullptr;  // [M, N] added (row stride ldcin); may equal C
    int64_t ldcin = 0;
    const float* bias_row = nullptr;  // [M]
    const float* bias_col = nullptr;  // [N]
};

// C[M, N] (row stride ldc) = alpha · A · B + epilogue, threaded over M x N tiles.
void gemm_run(const GemmKernel& kern, int64_t M, int64_t N, int64_t K, const GemmA& a, const GemmB& b, float* c,
              int64_t ldc, const GemmEpilogue& ep);

// Conversions used when packing (weights once, B blocks per call).
float load_as_f32(const void* src, DType dtype, int64_t index);
// n consecutive elements from `index` on, as load_as_f32 gives each (kernels/convert.h's dispatched widening).
void load_row_as_f32(const void* src, DType dtype, int64_t index, int64_t n, float* dst);

// Writes one row of B words into panels: columns [0, nc) of B rows k = 2i, 2i + 1 (kpack 2; row1 null means a
// zero row) or of row k (kpack 1, rounded to bf16 if the kernel says so) go to word row `row_base` of each panel:
// column j lands at row_base[(j / nr) * panel_stride + j % nr].
void pack_b_row(const GemmKernel& kern, const float* row0, const float* row1, int64_t nc, uint32_t* row_base,
                int64_t panel_stride);

// 64-byte aligned scratch owned by the calling thread, reused across calls; grows, never shrinks.
// Slots 0-6: gemm_run uses 0-2, the f32 pack path of linear 3, conv2d its channel-pair image 4, quantized
// linear weights their decoded rows and conv2d its whole im2col 5, conv2d a stored weight widened whole 6.
uint32_t* thread_scratch(int slot, size_t words);

}  // namespace easel::gemm
