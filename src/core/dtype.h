// Element types. Compute uses F32/F16/BF16/I32/I64/U8; the rest exist because real model files carry them
// (safetensors F64/I8/I16/BOOL..., GGUF block types are decoded in src/io and never become a DType).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace easel {

enum class DType : uint8_t { F32, F16, BF16, F64, I8, I16, I32, I64, U8, U16, U32, U64, Bool };

constexpr size_t dtype_size(DType t) {
    switch (t) {
        case DType::F32: return 4;
        case DType::F16: return 2;
        case DType::BF16: return 2;
        case DType::F64: return 8;
        case DType::I8: return 1;
        case DType::I16: return 2;
        case DType::I32: return 4;
        case DType::I64: return 8;
        case DType::U8: return 1;
        case DType::U16: return 2;
        case DType::U32: return 4;
        case DType::U64: return 8;
        case DType::Bool: return 1;
    }
    return 0;
}

constexpr bool dtype_is_float(DType t) {
    return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64;
}

// Lower-case names as PyTorch prints them without the "torch." prefix: "float32", "float16", "bfloat16"...
std::string_view dtype_name(DType t);
// Parses our names and the short ones ("f32", "fp16", "bf16").
std::optional<DType> dtype_from_name(std::string_view s);

}  // namespace easel
