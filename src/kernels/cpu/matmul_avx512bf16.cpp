// AVX512-BF16 GEMM microkernel for Precision::BF16: A and B words are bf16 pairs along k, and vdpbf16ps does
// two multiply-adds per f32 lane (acc += a0*b0 + a1*b1, products exact, f32 sum). Compiled alone with the
// AVX512-BF16 flags; see gemm_kernels.h.
//
// Register block as the f32 kernel: 6 rows x 64 columns (24 zmm accumulators), but each step covers two k, so
// B traffic per FLOP halves. Zen 4: 1 zmm vdpbf16ps/cycle/core = 64 FLOP/cycle, twice the f32 FMA rate.
#include <immintrin.h>

#include "kernels/cpu/gemm_kernels.h"

namespace easel::gemm {
namespace {

constexpr int kMr = 6;
constexpr int kNv = 4;  // zmm vectors per row: nr = 64 columns

inline __mmask16 lane_mask(int valid) {
    if (valid >= 16) return __mmask16(0xffff);
    if (valid <= 0) return __mmask16(0);
    return __mmask16((1u << valid) - 1u);
}

inline __m512bh as_bh(__m512i v) { return reinterpret_cast<__m512bh>(v); }

// Rows: B row k is read (unaligned) from p.b_rows[k] instead of the packed panel (conv2d's implicit GEMM).
template <int R, bool Rows = false>
void ukernel_bf16(const UkernelArgs& p) {
    __m512 acc[R][kNv];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int j = 0; j < kNv; ++j) acc[r][j] = _mm512_setzero_ps();

    const int* a = reinterpret_cast<const int*>(p.a);
    const __m512i* b = reinterpret_cast<const __m512i*>(p.b);
    const int64_t lda = p.lda;
    for (int64_t k = 0; k < p.kw; ++k) {
        __m512bh b0, b1, b2, b3;
        if constexpr (Rows) {
            const __m512i* br = reinterpret_cast<const __m512i*>(p.b_rows[k]);
            b0 = as_bh(_mm512_loadu_si512(br));
            b1 = as_bh(_mm512_loadu_si512(br + 1));
            b2 = as_bh(_mm512_loadu_si512(br + 2));
            b3 = as_bh(_mm512_loadu_si512(br + 3));
        } else {
            b0 = as_bh(_mm512_load_si512(b));
            b1 = as_bh(_mm512_load_si512(b + 1));
            b2 = as_bh(_mm512_load_si512(b + 2));
            b3 = as_bh(_mm512_load_si512(b + 3));
            b += 4;
        }
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            const __m512bh ar = as_bh(_mm512_set1_epi32(a[r * lda + k]));
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], ar, b0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], ar, b1);
            acc[r][2] = _mm512_dpbf16_ps(acc[r][2], ar, b2);
            acc[r][3] = _mm512_dpbf16_ps(acc[r][3], ar, b3);
        }
    }

    const __m512 alpha = _mm512_set1_ps(p.alpha);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
        const __m512 brow = p.bias_row ? _mm512_set1_ps(p.bias_row[r]) : _mm512_setzero_ps();
#pragma GCC unroll 4
        for (int j = 0; j < kNv; ++j) {
            const __mmask16 m = lane_mask(p.nc - 16 * j);
            if (!m) continue;
            __m512 add = brow;
            if (p.cin) add = _mm512_add_ps(add, _mm512_maskz_loadu_ps(m, p.cin + r * p.ldcin + 16 * j));
            if (p.bias_col) add = _mm512_add_ps(add, _mm512_maskz_loadu_ps(m, p.bias_col + 16 * j));
            _mm512_mask_storeu_ps(p.c + r * p.ldc + 16 * j, m, _mm512_fmadd_ps(acc[r][j], alpha, add));
        }
    }
}

void ukernel_bf16_avx512bf16(const UkernelArgs& p) {
    switch (p.mr) {
        case 1: ukernel_bf16<1>(p); break;
        case 2: ukernel_bf16<2>(p); break;
        case 3: ukernel_bf16<3>(p); break;
        case 4: ukernel_bf16<4>(p); break;
        case 5: ukernel_bf16<5>(p); break;
        default: ukernel_bf16<6>(p); break;
    }
}

void ukernel_bf16_rows_avx512bf16(const UkernelArgs& p) {
    switch (p.mr) {
        case 1: ukernel_bf16<1, true>(p); break;
        case 2: ukernel_bf16<2, true>(p); break;
        case 3: ukernel_bf16<3, true>(p); break;
        case 4: ukernel_bf16<4, true>(p); break;
        case 5: ukernel_bf16<5, true>(p); break;
        default: ukernel_bf16<6, true>(p); break;
    }
}

// f32 rows -> bf16 pairs (round to nearest even; vcvtne2ps2bf16 flushes denormal inputs to zero). An odd k
// gets a zero high half in its last word, because the masked load reads zeros there.
void convert_rows_bf16_avx512bf16(const float* src, int64_t lds, int64_t rows, int64_t k, uint32_t* dst,
                                  int64_t ldd) {
    for (int64_t r = 0; r < rows; ++r) {
        const float* s = src + r * lds;
        uint16_t* d = reinterpret_cast<uint16_t*>(dst + r * ldd);
        for (int64_t i = 0; i < k; i += 32) {
            const int left = int(k - i < 32 ? k - i : 32);
            const __m512 lo = _mm512_maskz_loadu_ps(lane_mask(left), s + i);
            const __m512 hi = _mm512_maskz_loadu_ps(lane_mask(left - 16), s + i + 16);
            const __m512i bf = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));
            const int halves = (left + 1) & ~1;  // whole words
            const __mmask32 m = halves >= 32 ? __mmask32(0xffffffffu) : __mmask32((1u << halves) - 1u);
            _mm512_mask_storeu_epi16(d + i, m, bf);
        }
    }
}

// B row pairs -> bf16 pair words: word j = (bf16(row0[j]), bf16(row1[j])). cvtne2ps gives [row0 x16 | row1 x16];
// one permute interleaves them.
void pack_row_bf16_avx512bf16(const float* row0, const float* row1, int64_t n, uint32_t* dst) {
    alignas(64) int16_t interleave[32];
    for (int j = 0; j < 32; ++j) interleave[j] = int16_t(j % 2 ? 16 + j / 2 : j / 2);
    const __m512i idx = _mm512_load_si512(interleave);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = lane_mask(int(n - i < 16 ? n - i : 16));
        const __m512 lo = _mm512_maskz_loadu_ps(m, row0 + i);
        const __m512 hi = row1 ? _mm512_maskz_loadu_ps(m, row1 + i) : _mm512_setzero_ps();
        const __m512i bf = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));
        _mm512_mask_storeu_epi32(dst + i, m, _mm512_permutexvar_epi16(idx, bf));
    }
}

const GemmKernel kBf16 = {Isa::Avx512Bf16, Precision::BF16, kMr, 16 * kNv, 2, false, ukernel_bf16_avx512bf16,
                          ukernel_bf16_rows_avx512bf16, convert_rows_bf16_avx512bf16, pack_row_bf16_avx512bf16};

}  // namespace

const GemmKernel* gemm_kernel_avx512bf16(Precision p) { return p == Precision::BF16 ? &kBf16 : nullptr; }

}  // namespace easel::gemm
