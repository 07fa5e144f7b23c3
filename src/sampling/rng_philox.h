// PhiloxGenerator: the "GPU" random numbers of AUTOMATIC1111 ("--rng cuda"): what torch.randn on a CUDA device
// gives for a seed, reproduced on any machine. It follows AUTOMATIC1111's modules/rng_philox.py, which
// restates torch's CUDA path: Philox 4x32-10 with counter (offset, 0, element index, 0) and key = the 64-bit
// seed (low word first), then Box-Muller on the first two outputs in double precision, keeping only the sine
// branch. Each randn() call advances the offset by one, as that module does.
//
//   PhiloxGenerator g(1234);
//   Tensor x = g.randn({1, 4, 64, 64});   // initial latent (offset 0)
//   Tensor n = g.randn({1, 4, 64, 64});   // next draw (offset 1)
//
// At most 2^32 values per draw (the element index is one 32-bit counter word, as in the reference).
#pragma once

#include <array>
#include <cstdint>

#include "core/tensor.h"

namespace easel {

// Philox 4x32 with 10 rounds: counter and key in, four 32-bit outputs.
std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

class PhiloxGenerator {
public:
    explicit PhiloxGenerator(uint64_t seed, uint64_t offset = 0) : seed_(seed), offset_(offset) {}

    uint64_t seed() const { return seed_; }
    uint64_t offset() const { return offset_; }

    // n standard normals from the current offset, then offset += 1. n must be <= 2^32.
    void randn(float* out, int64_t n);
    Tensor randn(const Shape& shape);

private:
    uint64_t seed_;
    uint64_t offset_;
};

}  // namespace easel
