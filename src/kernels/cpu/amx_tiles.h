// The AMX tile instructions for amx_kernel.h's templates (and the bench's peak loop): include only from files
// compiled with the AMX flags (*_amx.cpp), and run only where best_isa() is Isa::Amx (the OS granted the tile
// state). Anonymous namespace: see amx_kernel.h.
//
// Inline assembly with the tile number as an immediate ("%c"): g++'s _tile_* macros paste their argument into the
// mnemonic, which a template parameter cannot be, and its _tile_loadconfig tells the compiler that it reads 8
// bytes of the 64.
#pragma once

#include <cstdint>

#include "kernels/cpu/amx_kernel.h"

namespace easel::gemm {

// The configuration this thread's tiles hold (rows_lo * 32 + rows_hi; -1: none yet), one variable for every file
// that loads one (defined in matmul_amx.cpp).
extern thread_local int amx_loaded_config;

namespace {

struct HwTiles {
    // ldtilecfg also zeroes every tile; calls with the same row counts keep the loaded configuration.
    static void configure(int rows_lo, int rows_hi) {
        const int key = rows_lo * 32 + rows_hi;
        if (key == amx_loaded_config) return;
        const AmxTileConfig cfg = amx_config(rows_lo, rows_hi);
        __asm__ volatile("ldtilecfg %0" ::"m"(cfg) : "memory");
        amx_loaded_config = key;
    }
    template <int T>
    static void zero() {
        __asm__ volatile("tilezero %%tmm%c0" ::"i"(T));
    }
    template <int T>
    static void load(const void* base, int64_t stride) {
        __asm__ volatile("tileloadd (%0,%1,1), %%tmm%c2" ::"r"(base), "r"(stride), "i"(T));
    }
    template <int T>
    static void store(void* base, int64_t stride) {
        __asm__ volatile("tilestored %%tmm%c2, (%0,%1,1)" ::"r"(base), "r"(stride), "i"(T) : "memory");
    }
    template <int C, int A, int B>
    static void dot() {
        __asm__ volatile("tdpbf16ps %%tmm%c2, %%tmm%c1, %%tmm%c0" ::"i"(C), "i"(A), "i"(B));
    }
};

}  // namespace
}  // namespace easel::gemm
