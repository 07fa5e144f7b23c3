// Fuzz target: arbitrary bytes as a PyTorch checkpoint (zip or legacy), read from memory. Any input must yield
// weights or an Error; every tensor of an accepted file must lie inside the input (ASan reports a view that
// reaches outside it when its last element is read below). Seeds: tests/fuzz/corpus/ckpt/ (the benign
// torch.save fixtures and the hostile archives of tools/reference/make_pickle_corpus.py).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "io/torch_checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // A private copy, so that a view past the end of the input is past the end of a heap block for ASan.
    std::vector<uint8_t> copy(data, data + size);
    auto w = easel::read_torch_checkpoint_bytes(copy.data(), copy.size(), nullptr, "fuzz.pt");
    if (!w) return 0;
    volatile unsigned sink = 0;  // keeps the reads from being optimised away
    for (const std::string& name : w->names()) {
        const easel::Tensor* t = w->find(name);
        if (t->numel() == 0) continue;
        // First and last element the view reaches (strides are non-negative).
        int64_t last = 0;
        for (int d = 0; d < t->rank(); ++d) last += (t->size(d) - 1) * t->stride(d);
        const size_t es = easel::dtype_size(t->dtype());
        const auto* p = static_cast<const uint8_t*>(t->raw());
        sink = sink + p[0] + p[size_t(last) * es + es - 1];
    }
    return 0;
}
