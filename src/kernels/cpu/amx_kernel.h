// The AMX-BF16 GEMM microkernel, written once over a tile backend: matmul_amx.cpp instantiates it with the tile
// instructions, matmul_amx_emu.cpp with a plain C++ model of them (what the tests run on a CPU without AMX, so
// that the blocking, the k tail and the epilogue are checked everywhere). Everything is in an anonymous namespace:
// each file gets its own copy, compiled with its own flags (see gemm_kernels.h).
//
// Operands are those of the AVX512-BF16 kernel (matmul_avx512bf16.cpp), unchanged: A rows of bf16 pair words,
// B panels of 64 columns whose row w holds the pairs (k = 2w, 2w + 1) of each column. That panel row is exactly
// an AMX B tile row: a tile of 16 panel rows x 16 columns (64 bytes) is loaded with the panel's row stride
// (256 bytes), and an A tile is 16 rows x 16 words of A. One TDPBF16PS then does C[16, 16] += A[16, 32 k] ·
// B[32 k, 16]: 16,384 FLOP.
//
// Register plan (8 tiles): C tiles 0-3 hold 32 rows x 32 columns (rows 0-15 in 0 and 1, rows 16-31 in 2 and 3),
// A in 4 and 5, B in 6 and 7; the 64-column panel runs as two halves of 32 columns. A k tail of fewer than 16
// words (K not a multiple of 32) and the epilogue run in plain C++ on the stored C tiles.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/gemm_kernels.h"

namespace easel::gemm {
namespace {

constexpr int kAmxMr = 32;  // rows per call: two tile rows
constexpr int kAmxNr = 64;  // the AVX512-BF16 kernel's panel width
constexpr int kAmxKwAlign = 16;  // k blocks of whole tile steps (16 words), so only a product's last block has a tail

// The tile configuration ldtilecfg reads (Intel SDM vol. 2, LDTILECFG): palette 1, bytes per row and rows per
// tile; an unused tile has 0 and 0.
struct alignas(64) AmxTileConfig {
    uint8_t palette = 1;
    uint8_t start_row = 0;
    uint8_t reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
};
static_assert(sizeof(AmxTileConfig) == 64, "ldtilecfg reads 64 bytes");

// The configuration for a call of `rows_lo` + `rows_hi` rows (rows_lo 1..16, rows_hi 0..16).
inline AmxTileConfig amx_config(int rows_lo, int rows_hi) {
    AmxTileConfig c;
    auto set = [&](int t, int rows) {
        c.rows[t] = uint8_t(rows);
        c.colsb[t] = uint16_t(rows > 0 ? 64 : 0);
    };
    set(0, rows_lo);
    set(1, rows_lo);
    set(2, rows_hi);
    set(3, rows_hi);
    set(4, rows_lo);
    set(5, rows_hi);
    set(6, 16);
    set(7, 16);
    return c;
}

inline float bf16_lo(uint32_t w) {
    const uint32_t b = w << 16;
    float f;
    std::memcpy(&f, &b, 4);
    return f;
}
inline float bf16_hi(uint32_t w) {
    const uint32_t b = w & 0xffff0000u;
    float f;
    std::memcpy(&f, &b, 4);
    return f;
}

// Tiles: the backend. configure(rows_lo, rows_hi) loads amx_config (a thread may keep its last one); zero<t>(),
// load<t>(ptr, stride_bytes), dot<c, a, b>() (TDPBF16PS), store<t>(ptr, stride_bytes) as the instructions do.
template <class Tiles, bool TwoRows>
void amx_tiles_main(const UkernelArgs& p, int64_t kw16, int halves, float* acc) {
    const int64_t lda_bytes = p.lda * 4;
    const uint32_t* a1 = p.a + 16 * p.lda;
    for (int h = 0; h < halves; ++h) {
        Tiles::template zero<0>();
        Tiles::template zero<1>();
        if constexpr (TwoRows) {
            Tiles::template zero<2>();
            Tiles::template zero<3>();
        }
        const uint32_t* b = p.b + 32 * h;
        for (int64_t k = 0; k < kw16; k += 16) {
            Tiles::template load<4>(p.a + k, lda_bytes);
            Tiles::template load<6>(b + k * kAmxNr, kAmxNr * 4);
            Tiles::template load<7>(b + k * kAmxNr + 16, kAmxNr * 4);
            Tiles::template dot<0, 4, 6>();
            Tiles::template dot<1, 4, 7>();
            if constexpr (TwoRows) {
                Tiles::template load<5>(a1 + k, lda_bytes);
                Tiles::template dot<2, 5, 6>();
                Tiles::template dot<3, 5, 7>();
            }
        }
        Tiles::template store<0>(acc + 32 * h, kAmxNr * 4);
        Tiles::template store<1>(acc + 32 * h + 16, kAmxNr * 4);
        if constexpr (TwoRows) {
            Tiles::template store<2>(acc + 16 * kAmxNr + 32 * h, kAmxNr * 4);
            Tiles::template store<3>(acc + 16 * kAmxNr + 32 * h + 16, kAmxNr * 4);
        }
    }
}

template <class Tiles>
void amx_ukernel(const UkernelArgs& p) {
    alignas(64) float acc[kAmxMr * kAmxNr];
    const int mr = p.mr, cols = p.nc > 32 ? 64 : 32;
    const int halves = cols / 32;
    const int64_t kw16 = p.kw / 16 * 16;
    if (kw16 > 0) {
        const int lo = mr < 16 ? mr : 16, hi = mr - lo;
        Tiles::configure(lo, hi);
        if (hi > 0) {
            amx_tiles_main<Tiles, true>(p, kw16, halves, acc);
        } else {
            amx_tiles_main<Tiles, false>(p, kw16, halves, acc);
        }
    } else {
        for (int r = 0; r < mr; ++r)
            for (int j = 0; j < cols; ++j) acc[r * kAmxNr + j] = 0.0f;
    }
    // The last k words (fewer than 16), in the order TDPBF16PS adds: per word, the low product, then the high.
    for (int64_t k = kw16; k < p.kw; ++k) {
        const uint32_t* brow = p.b + k * kAmxNr;
        for (int r = 0; r < mr; ++r) {
            const uint32_t aw = p.a[r * p.lda + k];
            const float alo = bf16_lo(aw), ahi = bf16_hi(aw);
            float* c = acc + r * kAmxNr;
            for (int j = 0; j < cols; ++j) {
                float s = c[j] + alo * bf16_lo(brow[j]);
                c[j] = s + ahi * bf16_hi(brow[j]);
            }
        }
    }
    // Epilogue, as the AVX512-BF16 kernel: C = acc · alpha + (bias_row + cin + bias_col).
    for (int r = 0; r < mr; ++r) {
        const float brow = p.bias_row ? p.bias_row[r] : 0.0f;
        const float* cin = p.cin ? p.cin + r * p.ldcin : nullptr;
        float* c = p.c + r * p.ldc;
        const float* a = acc + r * kAmxNr;
        for (int j = 0; j < p.nc; ++j) {
            float add = brow;
            if (cin) add += cin[j];
            if (p.bias_col) add += p.bias_col[j];
            c[j] = std::fma(a[j], p.alpha, add);
        }
    }
}

}  // namespace
}  // namespace easel::gemm
