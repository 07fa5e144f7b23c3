// Fuzz target: arbitrary bytes as a GGUF file. Every byte of every zero-copy view is read (ASan flags a view
// outside the input); dequantized tensors are read too (uninitialised output shows up under MSan/valgrind).
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
    }
    return 0;
}
