// The AMX microkernel (amx_kernel.h) on a plain C++ model of the tile unit: what the kernel tests run on every
// CPU, so that the kernel's tiling, k tail and epilogue are checked against the reference where there is no AMX
// (matmul_amx.cpp runs the same template on the real tiles). Compiled without ISA flags.
//
// The model follows the Intel SDM's pseudo-code for TILELOADD, TILESTORED, TILEZERO and TDPBF16PS, including the
// shape rules whose breach faults on the hardware (they are asserted here, so a wrong configuration fails the
// tests instead of waiting for an AMX machine). Not modelled: TDPBF16PS treats bf16 denormals as zero and
// flushes denormal results; SD's values never come near 1e-38 (kernels/matmul.h).
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "kernels/cpu/amx_kernel.h"

namespace easel::gemm {
namespace {

struct EmuTiles {
    struct State {
        AmxTileConfig cfg;
        bool configured = false;
        alignas(64) uint8_t tile[8][16][64];
    };
    static State& state() {
        thread_local State s;
        return s;
    }
    static void configure(int rows_lo, int rows_hi) {
        EASEL_ASSERT(rows_lo >= 1 && rows_lo <= 16 && rows_hi >= 0 && rows_hi <= 16, "AMX model: rows out of range");
        State& s = state();
        s.cfg = amx_config(rows_lo, rows_hi);
        s.configured = true;
        std::memset(s.tile, 0, sizeof s.tile);  // ldtilecfg zeroes the tiles
    }
    static void check_tile(int t) {
        const State& s = state();
        EASEL_ASSERT(s.configured, "AMX model: tile instruction before ldtilecfg");
        EASEL_ASSERT(s.cfg.rows[t] >= 1 && s.cfg.rows[t] <= 16 && s.cfg.colsb[t] >= 4 && s.cfg.colsb[t] <= 64 &&
                         s.cfg.colsb[t] % 4 == 0,
                     "AMX model: tile used but not configured (#UD on the hardware)");
    }
    template <int T>
    static void zero() {
        check_tile(T);
        std::memset(state().tile[T], 0, sizeof state().tile[T]);
    }
    template <int T>
    static void load(const void* base, int64_t stride) {
        check_tile(T);
        State& s = state();
        std::memset(s.tile[T], 0, sizeof s.tile[T]);  // bytes past colsb and rows past rows read as zero
        for (int r = 0; r < s.cfg.rows[T]; ++r)
            std::memcpy(s.tile[T][r], static_cast<const uint8_t*>(base) + r * stride, s.cfg.colsb[T]);
    }
    template <int T>
    static void store(void* base, int64_t stride) {
        check_tile(T);
        const State& s = state();
        for (int r = 0; r < s.cfg.rows[T]; ++r)
            std::memcpy(static_cast<uint8_t*>(base) + r * stride, s.tile[T][r], s.cfg.colsb[T]);
    }
    template <int C, int A, int B>
    static void dot() {
        check_tile(C);
        check_tile(A);
        check_tile(B);
        State& s = state();
        const AmxTileConfig& c = s.cfg;
        // TDPBF16PS's #UD conditions on shapes.
        EASEL_ASSERT(c.rows[C] == c.rows[A] && c.colsb[C] == c.colsb[B] && c.colsb[A] / 4 == c.rows[B],
                     "AMX model: TDPBF16PS operand shapes do not agree");
        EASEL_ASSERT(C != A && C != B && A != B, "AMX model: TDPBF16PS registers must differ");
        for (int m = 0; m < c.rows[C]; ++m) {
            float tmp[16];
            std::memcpy(tmp, s.tile[C][m], 64);
            for (int k = 0; k < c.colsb[A] / 4; ++k) {
                uint32_t aw;
                std::memcpy(&aw, s.tile[A][m] + 4 * k, 4);
                for (int n = 0; n < c.colsb[C] / 4; ++n) {
                    uint32_t bw;
                    std::memcpy(&bw, s.tile[B][k] + 4 * n, 4);
                    tmp[n] += bf16_lo(aw) * bf16_lo(bw);
                    tmp[n] += bf16_hi(aw) * bf16_hi(bw);
                }
            }
            std::memcpy(s.tile[C][m], tmp, size_t(c.colsb[C]));
        }
    }
};

void ukernel_amx_emulated(const UkernelArgs& p) { amx_ukernel<EmuTiles>(p); }

// The operand conversions of the AVX512-BF16 kernel, in plain C++ (round to nearest even; an odd k's last word
// gets a zero high half).
void convert_rows_bf16_plain(const float* src, int64_t lds, int64_t rows, int64_t k, uint32_t* dst, int64_t ldd) {
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < k; i += 2) {
            const uint32_t lo = f32_to_bf16(src[r * lds + i]);
            const uint32_t hi = i + 1 < k ? f32_to_bf16(src[r * lds + i + 1]) : 0u;
            dst[r * ldd + i / 2] = lo | (hi << 16);
        }
}

void pack_row_bf16_plain(const float* row0, const float* row1, int64_t n, uint32_t* dst) {
    for (int64_t j = 0; j < n; ++j)
        dst[j] = uint32_t(f32_to_bf16(row0[j])) | (row1 ? uint32_t(f32_to_bf16(row1[j])) << 16 : 0u);
}

GemmKernel make_emulated() {
    GemmKernel k;
    k.isa = Isa::Amx;
    k.precision = Precision::BF16;
    k.mr = kAmxMr;
    k.nr = kAmxNr;
    k.kpack = 2;
    k.ukernel = ukernel_amx_emulated;
    k.convert_rows = convert_rows_bf16_plain;
    k.pack_row = pack_row_bf16_plain;
    k.kw_align = kAmxKwAlign;
    return k;
}

}  // namespace

const GemmKernel& gemm_kernel_amx_emulated() {
    static const GemmKernel k = make_emulated();
    return k;
}

}  // namespace easel::gemm
