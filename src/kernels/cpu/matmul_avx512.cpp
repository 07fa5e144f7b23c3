// AVX-512 f32 GEMM microkernel (also the BF16-mode kernel on CPUs without AVX512-BF16: there the operands are
// rounded to bf16 and multiplied as f32). Compiled alone with the AVX-512 flags; see gemm_kernels.h.
//
// Register block: 6 rows x 64 columns = 24 zmm accumulators, 4 zmm of B and 1 broadcast per step. Per k step:
// 4 vector loads (256 B of B, from L1/L2) + 6 broadcasts (from the L1-resident A sliver) feed 24 FMAs, so the
// FMA pipes, not the loads, are the bound (Zen 4: 1 zmm FMA/cycle/core; 2 loads/cycle).
#include <immintrin.h>

#include "kernels/cpu/gemm_kernels.h"

namespace easel::gemm {
namespace {

constexpr int kMr = 6;
constexpr int kNv = 4;  // zmm vectors per row: nr = 64

inline __mmask16 lane_mask(int valid) {
    if (valid >= 16) return __mmask16(0xffff);
    if (valid <= 0) return __mmask16(0);
    return __mmask16((1u << valid) - 1u);
}

// Writes one row-block of accumulators through the epilogue.
template <int R>
inline void store_tile(const UkernelArgs& p, __m512 (&acc)[R][kNv]) {
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

template <int R>
void ukernel_f32(const UkernelArgs& p) {
    __m512 acc[R][kNv];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int j = 0; j < kNv; ++j) acc[r][j] = _mm512_setzero_ps();

    const float* a = reinterpret_cast<const float*>(p.a);
    const float* b = reinterpret_cast<const float*>(p.b);
    const int64_t lda = p.lda;
    for (int64_t k = 0; k < p.kw; ++k) {
        const __m512 b0 = _mm512_load_ps(b);
        const __m512 b1 = _mm512_load_ps(b + 16);
        const __m512 b2 = _mm512_load_ps(b + 32);
        const __m512 b3 = _mm512_load_ps(b + 48);
        b += 64;
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            const __m512 ar = _mm512_set1_ps(a[r * lda + k]);
            acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(ar, b2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(ar, b3, acc[r][3]);
        }
    }
    store_tile<R>(p, acc);
}

void ukernel_f32_avx512(const UkernelArgs& p) {
    switch (p.mr) {
        case 1: ukernel_f32<1>(p); break;
        case 2: ukernel_f32<2>(p); break;
        case 3: ukernel_f32<3>(p); break;
        case 4: ukernel_f32<4>(p); break;
        case 5: ukernel_f32<5>(p); break;
        default: ukernel_f32<6>(p); break;
    }
}

// Round to nearest even bf16 and keep as f32 (NaN stays a quiet NaN with its sign, as core/half.h does).
inline __m512 round_bf16(__m512 x) {
    const __m512i u = _mm512_castps_si512(x);
    // maskz form: g++ 12 warns (maybe-uninitialized) inside the plain _mm512_srli_epi32 (GCC bug 105593).
    const __m512i lsb = _mm512_and_si512(_mm512_maskz_srli_epi32(__mmask16(0xffff), u, 16), _mm512_set1_epi32(1));
    const __m512i rounded = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb);
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    const __m512i r = _mm512_mask_mov_epi32(rounded, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x00400000)));
    return _mm512_castsi512_ps(_mm512_and_si512(r, _mm512_set1_epi32(int(0xffff0000u))));
}

void round_rows_bf16_avx512(const float* src, int64_t lds, int64_t rows, int64_t k, uint32_t* dst, int64_t ldd) {
    for (int64_t r = 0; r < rows; ++r) {
        const float* s = src + r * lds;
        float* d = reinterpret_cast<float*>(dst + r * ldd);
        for (int64_t i = 0; i < k; i += 16) {
            const __mmask16 m = lane_mask(int(k - i < 16 ? k - i : 16));
            _mm512_mask_storeu_ps(d + i, m, round_bf16(_mm512_maskz_loadu_ps(m, s + i)));
        }
    }
}

void pack_row_bf16_avx512(const float* row0, const float*, int64_t n, uint32_t* dst) {
    round_rows_bf16_avx512(row0, n, 1, n, dst, n);
}

const GemmKernel kF32 = {Isa::Avx512, Precision::F32, kMr, 16 * kNv, 1, false, ukernel_f32_avx512, nullptr, nullptr,
                         nullptr, panel_f16_avx2, panel_f32_avx2};
const GemmKernel kBf16Widened = {Isa::Avx512, Precision::BF16, kMr, 16 * kNv, 1, true, ukernel_f32_avx512, nullptr,
                                 round_rows_bf16_avx512, pack_row_bf16_avx512, nullptr, panel_f32_avx2};

}  // namespace

const GemmKernel* gemm_kernel_avx512(Precision p) { return p == Precision::F32 ? &kF32 : &kBf16Widened; }

}  // namespace easel::gemm
