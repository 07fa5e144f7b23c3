// The packed-weight cache file (runtime/pack_cache.h) lives in a user-writable folder, so its parser gets the
// same treatment as a model file: any bytes give entries that lie inside the file, or an error. Seeds:
// tests/fuzz/corpus/pack_cache/ (files written for the key "fuzz").
#include <cstddef>
#include <cstdint>

#include "runtime/pack_cache.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto entries = easel::PackCache::parse(data, size, "fuzz");
    if (entries) {
        for (const auto& [name, e] : *entries) {
            if (e.offset > size || e.bytes > size - e.offset) __builtin_trap();  // parse promised in-bounds entries
        }
    }
    return 0;
}
