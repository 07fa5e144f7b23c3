// Fuzz target: arbitrary bytes as a GGUF file. Every byte of every zero-copy view is read (ASan flags a view
// outside the input); quantized tensors are decoded too (every block type's decoder on hostile bytes).
#include <cstddef>
#include <cstdint>

#include "io/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto r = easel::read_gguf_bytes(data, size, nullptr, "fuzz.gguf");
    if (!r) return 0;
    volatile uint8_t sink = 0;
    for (const std::string& name : r->names()) {
        const easel::Tensor* t = r->find(name);
        const uint8_t* p = static_cast<const uint8_t*>(t->raw());
        for (size_t i = 0; i < t->nbytes(); ++i) sink = uint8_t(sink ^ p[i]);
        if (t->quantized() && t->numel() <= (int64_t(1) << 24)) {
            const easel::Tensor f = t->to(easel::DType::F32);
            if (f.numel() > 0) sink = uint8_t(sink ^ uint8_t(f.data<float>()[0] > 0));
        }
    }
    return 0;
}
