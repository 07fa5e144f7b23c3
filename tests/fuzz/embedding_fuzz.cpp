// Fuzz target: arbitrary bytes as a textual-inversion embedding file, read as safetensors and as a PyTorch
// checkpoint (A1111's .pt, diffusers' .bin), then taken as an embedding. An accepted embedding has [n, D] f32
// vectors with every value finite.
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "io/safetensors.h"
#include "io/torch_checkpoint.h"
#include "pipeline/embeddings.h"

namespace {
void check(const easel::WeightSet& w) {
    auto e = easel::embedding_from_weights(w, "fuzz.pt", "0123456789abcdef");
    if (!e) return;
    for (const auto& [key, v] : e->vectors) {
        if (v.rank() != 2 || v.dtype() != easel::DType::F32) __builtin_trap();
        const float* p = v.data<float>();
        for (int64_t i = 0; i < v.numel(); ++i)
            if (!std::isfinite(p[i])) __builtin_trap();
    }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (auto w = easel::read_safetensors_bytes(data, size, nullptr, "fuzz.safetensors")) check(*w);
    if (auto w = easel::read_torch_checkpoint_bytes(data, size, nullptr, "fuzz.pt")) check(*w);
    return 0;
}
