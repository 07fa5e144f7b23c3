// AMX-BF16 GEMM for Precision::BF16: amx_kernel.h's microkernel on the tile unit. Compiled alone with the AMX
// flags; see gemm_kernels.h. The operands, their conversions and B's panels are the AVX512-BF16 kernel's (every
// AMX CPU has AVX512-BF16), so a weight packed for one runs on the other.
//
// Before its first use, gemm_kernel_amx() runs the kernel once on a product whose every partial sum is exact in
// f32 and compares it with a plain loop; a CPU or OS on which that fails gets the AVX512-BF16 kernel and one line
// on stderr. kernels_amx tests the unchecked kernel itself.
#include <cstdio>
#include <cstring>

#include "kernels/cpu/amx_kernel.h"
#include "kernels/cpu/amx_tiles.h"

namespace easel::gemm {

thread_local int amx_loaded_config = -1;

namespace {

void ukernel_amx(const UkernelArgs& p) { amx_ukernel<HwTiles>(p); }

GemmKernel make_amx_kernel() {
    const GemmKernel* bf16 = gemm_kernel_avx512bf16(Precision::BF16);
    GemmKernel k = *bf16;
    k.isa = Isa::Amx;
    k.mr = kAmxMr;
    k.nr = kAmxNr;
    k.ukernel = ukernel_amx;
    k.ukernel_rows = nullptr;  // tile loads need one row stride: conv2d builds its B blocks instead
    k.kw_align = kAmxKwAlign;
    return k;
}

// C[40, 64] = A[40, 72] · B[72, 64] with small integers (|a|, |b| <= 4): every product and partial sum is an
// integer below 2^24, so any order of f32 additions gives the exact result. 72 = 2 tile steps of 32 + a tail of
// 4 words; 40 rows = one full call and one of 8 rows.
bool self_check(const GemmKernel& k) {
    constexpr int M = 40, N = 64, K = 72, KW = K / 2;
    // Plain arrays, no std::vector: a library template instantiated in this file (compiled with the AMX and
    // AVX-512 flags) could be the copy the linker keeps for every other file too.
    uint32_t a[M * KW], b[KW * N];
    float c[M * N];
    for (float& v : c) v = -1.0f;
    auto bits = [](float f) {
        uint32_t u;
        std::memcpy(&u, &f, 4);
        return u >> 16;  // small integers are exact in bf16
    };
    auto av = [](int i, int kk) { return float((i * 7 + kk * 3) % 9 - 4); };
    auto bv = [](int kk, int j) { return float((kk * 5 + j * 11) % 9 - 4); };
    for (int i = 0; i < M; ++i)
        for (int w = 0; w < KW; ++w) a[size_t(i * KW + w)] = bits(av(i, 2 * w)) | (bits(av(i, 2 * w + 1)) << 16);
    for (int w = 0; w < KW; ++w)
        for (int j = 0; j < N; ++j) b[size_t(w * N + j)] = bits(bv(2 * w, j)) | (bits(bv(2 * w + 1, j)) << 16);
    for (int i0 = 0; i0 < M; i0 += kAmxMr) {
        UkernelArgs u;
        u.kw = KW;
        u.a = a + i0 * KW;
        u.lda = KW;
        u.b = b;
        u.c = c + i0 * N;
        u.ldc = N;
        u.mr = M - i0 < kAmxMr ? M - i0 : kAmxMr;
        u.nc = N;
        k.ukernel(u);
    }
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
            float want = 0.0f;
            for (int kk = 0; kk < K; ++kk) want += av(i, kk) * bv(kk, j);
            if (c[size_t(i * N + j)] != want) {
                std::fprintf(stderr,
                             "easel: the AMX GEMM kernel gave %g instead of %g at (%d, %d) of its start-up check; "
                             "using the AVX512-BF16 kernel\n",
                             double(c[size_t(i * N + j)]), double(want), i, j);
                return false;
            }
        }
    return true;
}

}  // namespace

const GemmKernel& gemm_kernel_amx_unchecked() {
    static const GemmKernel k = make_amx_kernel();
    return k;
}

const GemmKernel* gemm_kernel_amx(Precision p) {
    // Never a tile instruction on a CPU (or OS) without AMX, whatever the caller asked for.
    if (p != Precision::BF16 || int(best_isa(cpu_features())) < int(Isa::Amx)) return nullptr;
    static const bool ok = self_check(gemm_kernel_amx_unchecked());
    return ok ? &gemm_kernel_amx_unchecked() : nullptr;
}

}  // namespace easel::gemm
