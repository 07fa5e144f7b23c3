// Fuzz target: arbitrary bytes as a diffusers model_index.json and as a sharded-weights index. Accepted
// names must never lead out of the model folder.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "io/diffusers_folder.h"

namespace {

bool escapes(std::string_view s) {
    return s.empty() || s == "." || s == ".." || s.find('/') != std::string_view::npos ||
           s.find('\\') != std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    if (auto f = easel::parse_model_index(text, "fuzz")) {
        for (const auto& c : f->components)
            if (escapes(c.name)) std::abort();
    }
    if (auto m = easel::parse_weight_index(text, "fuzz.index.json")) {
        for (const auto& [name, shard] : *m)
            if (escapes(shard)) std::abort();
    }
    return 0;
}
