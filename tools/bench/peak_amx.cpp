// AMX-BF16 peak loop (see peak.h): 4 independent C tiles, each TDPBF16PS a 16x16 += 16x32 · 32x16 product
// (16,384 FLOP) from A and B tiles that stay loaded, so it measures the tile unit and nothing else. Runs only where
// best_isa() is Isa::Amx (the OS granted the tile state).
#include <cstring>

#include "kernels/cpu/amx_tiles.h"
#include "peak.h"

namespace easel::bench {

double peak_loop_bf16_amx(int64_t iters) {
    using gemm::HwTiles;
    alignas(64) uint16_t ab[16 * 32];
    for (int i = 0; i < 16 * 32; ++i) ab[i] = uint16_t(0x3c00 + (i % 7));  // bf16 values near 0.0078
    alignas(64) float c[16 * 16 * 4];
    HwTiles::configure(16, 16);
    HwTiles::zero<0>();
    HwTiles::zero<1>();
    HwTiles::zero<2>();
    HwTiles::zero<3>();
    HwTiles::load<4>(ab, 64);
    HwTiles::load<5>(ab, 64);
    HwTiles::load<6>(ab, 64);
    HwTiles::load<7>(ab, 64);
    for (int64_t it = 0; it < iters; ++it) {
        HwTiles::dot<0, 4, 6>();
        HwTiles::dot<1, 4, 7>();
        HwTiles::dot<2, 5, 6>();
        HwTiles::dot<3, 5, 7>();
    }
    HwTiles::store<0>(c, 64);
    HwTiles::store<1>(c + 256, 64);
    HwTiles::store<2>(c + 512, 64);
    HwTiles::store<3>(c + 768, 64);
    volatile float sink = c[0] + c[1023];
    (void)sink;
    return double(iters) * 4 * 16 * 16 * 32 * 2;
}

}  // namespace easel::bench
