// AVX2/FMA GEMM microkernel (f32; also BF16 mode with bf16-rounded operands multiplied as f32). Compiled alone
// with the AVX2 flags; see gemm_kernels.h.
//
// Register block: 6 rows x 16 columns = 12 ymm accumulators + 2 of B + 1 broadcast (15 of 16 registers).
// Per k step 2 loads + 6 broadcasts feed 12 FMAs: on 2 FMA pipes that is 6 cycles, FMA-bound.
#include <immintrin.h>

#include "kernels/cpu/gemm_kernels.h"

namespace easel::gemm {
namespace {

constexpr int kMr = 6;
constexpr int kNv = 2;  // ymm vectors per row: nr = 16

inline __m256i lane_mask(int valid) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Rows: B row k is read (unaligned) from p.b_rows[k] instead of the packed panel (conv2d's implicit GEMM).
template <int R, bool Rows = false>
void ukernel_f32(const UkernelArgs& p) {
    __m256 acc[R][kNv];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
        acc[r][0] = _mm256_setzero_ps();
        acc[r][1] = _mm256_setzero_ps();
    }
    const float* a = reinterpret_cast<const float*>(p.a);
    const float* b = reinterpret_cast<const float*>(p.b);
    const int64_t lda = p.lda;
    for (int64_t k = 0; k < p.kw; ++k) {
        __m256 b0, b1;
        if constexpr (Rows) {
            const float* br = reinterpret_cast<const float*>(p.b_rows[k]);
            b0 = _mm256_loadu_ps(br);
            b1 = _mm256_loadu_ps(br + 8);
        } else {
            b0 = _mm256_load_ps(b);
            b1 = _mm256_load_ps(b + 8);
            b += 16;
        }
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            const __m256 ar = _mm256_broadcast_ss(a + r * lda + k);
            acc[r][0] = _mm256_fmadd_ps(ar, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(ar, b1, acc[r][1]);
        }
    }

    const __m256 alpha = _mm256_set1_ps(p.alpha);
    const __m256i m0 = lane_mask(p.nc), m1 = lane_mask(p.nc - 8);
    const bool full = p.nc >= 16;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
        const __m256 brow = p.bias_row ? _mm256_set1_ps(p.bias_row[r]) : _mm256_setzero_ps();
        float* c = p.c + r * p.ldc;
        __m256 add0 = brow, add1 = brow;
        if (full) {
            if (p.cin) {
                add0 = _mm256_add_ps(add0, _mm256_loadu_ps(p.cin + r * p.ldcin));
                add1 = _mm256_add_ps(add1, _mm256_loadu_ps(p.cin + r * p.ldcin + 8));
            }
            if (p.bias_col) {
                add0 = _mm256_add_ps(add0, _mm256_loadu_ps(p.bias_col));
                add1 = _mm256_add_ps(add1, _mm256_loadu_ps(p.bias_col + 8));
            }
            _mm256_storeu_ps(c, _mm256_fmadd_ps(acc[r][0], alpha, add0));
            _mm256_storeu_ps(c + 8, _mm256_fmadd_ps(acc[r][1], alpha, add1));
        } else {
            if (p.cin) {
                add0 = _mm256_add_ps(add0, _mm256_maskload_ps(p.cin + r * p.ldcin, m0));
                add1 = _mm256_add_ps(add1, _mm256_maskload_ps(p.cin + r * p.ldcin + 8, m1));
            }
            if (p.bias_col) {
                add0 = _mm256_add_ps(add0, _mm256_maskload_ps(p.bias_col, m0));
                add1 = _mm256_add_ps(add1, _mm256_maskload_ps(p.bias_col + 8, m1));
            }
            _mm256_maskstore_ps(c, m0, _mm256_fmadd_ps(acc[r][0], alpha, add0));
            _mm256_maskstore_ps(c + 8, m1, _mm256_fmadd_ps(acc[r][1], alpha, add1));
        }
    }
}

void ukernel_f32_avx2(const UkernelArgs& p) {
    switch (p.mr) {
        case 1: ukernel_f32<1>(p); break;
        case 2: ukernel_f32<2>(p); break;
        case 3: ukernel_f32<3>(p); break;
        case 4: ukernel_f32<4>(p); break;
        case 5: ukernel_f32<5>(p); break;
        default: ukernel_f32<6>(p); break;
    }
}

void ukernel_f32_rows_avx2(const UkernelArgs& p) {
    switch (p.mr) {
        case 1: ukernel_f32<1, true>(p); break;
        case 2: ukernel_f32<2, true>(p); break;
        case 3: ukernel_f32<3, true>(p); break;
        case 4: ukernel_f32<4, true>(p); break;
        case 5: ukernel_f32<5, true>(p); break;
        default: ukernel_f32<6, true>(p); break;
    }
}

// Round to nearest even bf16, kept as f32 (NaN stays a quiet NaN with its sign, as core/half.h does).
inline __m256 round_bf16(__m256 x) {
    const __m256i u = _mm256_castps_si256(x);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i rounded = _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb);
    const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    const __m256i quiet = _mm256_or_si256(u, _mm256_set1_epi32(0x00400000));
    const __m256 r = _mm256_blendv_ps(_mm256_castsi256_ps(rounded), _mm256_castsi256_ps(quiet), nan);
    return _mm256_and_ps(r, _mm256_castsi256_ps(_mm256_set1_epi32(int(0xffff0000u))));
}

void round_rows_bf16_avx2(const float* src, int64_t lds, int64_t rows, int64_t k, uint32_t* dst, int64_t ldd) {
    for (int64_t r = 0; r < rows; ++r) {
        const float* s = src + r * lds;
        float* d = reinterpret_cast<float*>(dst + r * ldd);
        int64_t i = 0;
        for (; i + 8 <= k; i += 8) _mm256_storeu_ps(d + i, round_bf16(_mm256_loadu_ps(s + i)));
        if (i < k) {
            const __m256i m = lane_mask(int(k - i));
            _mm256_maskstore_ps(d + i, m, round_bf16(_mm256_maskload_ps(s + i, m)));
        }
    }
}

// r[j] (8 values of row j) -> r[t] (value t of rows 0..7).
inline void transpose8(__m256 r[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

}  // namespace

// 8 rows x 8 k values at a time: F16C widens each row's 8 halves, an 8x8 transpose turns them into 8 panel rows.
void panel_f16_avx2(const uint16_t* w, int64_t ldw, int64_t cols, int64_t kc, int64_t nr, float* out) {
    for (int64_t j0 = 0; j0 < nr; j0 += 8) {
        int64_t kk = 0;
        for (; kk + 8 <= kc; kk += 8) {
            __m256 r[8];
            for (int j = 0; j < 8; ++j)
                r[j] = j0 + j < cols ? _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + (j0 + j) * ldw + kk)))
                                     : _mm256_setzero_ps();
            transpose8(r);
            for (int t = 0; t < 8; ++t) _mm256_storeu_ps(out + (kk + t) * nr + j0, r[t]);
        }
        for (; kk < kc; ++kk)
            for (int64_t j = j0; j < j0 + 8; ++j) out[kk * nr + j] = j < cols ? _cvtsh_ss(w[j * ldw + kk]) : 0.0f;
    }
}

// The same for f32 rows (a weight being packed): 8 rows x 8 k values loaded, transposed, stored as 8 panel rows.
void panel_f32_avx2(const float* w, int64_t ldw, int64_t cols, int64_t kc, int64_t nr, float* out) {
    for (int64_t j0 = 0; j0 < nr; j0 += 8) {
        int64_t kk = 0;
        for (; kk + 8 <= kc; kk += 8) {
            __m256 r[8];
            for (int j = 0; j < 8; ++j) r[j] = j0 + j < cols ? _mm256_loadu_ps(w + (j0 + j) * ldw + kk) : _mm256_setzero_ps();
            transpose8(r);
            for (int t = 0; t < 8; ++t) _mm256_storeu_ps(out + (kk + t) * nr + j0, r[t]);
        }
        for (; kk < kc; ++kk)
            for (int64_t j = j0; j < j0 + 8; ++j) out[kk * nr + j] = j < cols ? w[j * ldw + kk] : 0.0f;
    }
}

namespace {

void pack_row_bf16_avx2(const float* row0, const float*, int64_t n, uint32_t* dst) {
    round_rows_bf16_avx2(row0, n, 1, n, dst, n);
}

const GemmKernel kF32 = {Isa::Avx2, Precision::F32, kMr, 8 * kNv, 1, false, ukernel_f32_avx2, ukernel_f32_rows_avx2,
                         nullptr, nullptr, panel_f16_avx2, panel_f32_avx2};
const GemmKernel kBf16Widened = {Isa::Avx2, Precision::BF16, kMr, 8 * kNv, 1, true, ukernel_f32_avx2, nullptr,
                                 round_rows_bf16_avx2, pack_row_bf16_avx2, nullptr, panel_f32_avx2};

}  // namespace

const GemmKernel* gemm_kernel_avx2(Precision p) { return p == Precision::F32 ? &kF32 : &kBf16Widened; }

}  // namespace easel::gemm
