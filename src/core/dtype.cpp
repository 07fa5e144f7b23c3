#include "core/dtype.h"

namespace easel {

std::string_view dtype_name(DType t) {
    switch (t) {
        case DType::F32: return "float32";
        case DType::F16: return "float16";
        case DType::BF16: return "bfloat16";
        case DType::F64: return "float64";
        case DType::I8: return "int8";
        case DType::I16: return "int16";
        case DType::I32: return "int32";
        case DType::I64: return "int64";
        case DType::U8: return "uint8";
        case DType::U16: return "uint16";
        case DType::U32: return "uint32";
        case DType::U64: return "uint64";
        case DType::Bool: return "bool";
    }
    return "?";
}

std::optional<DType> dtype_from_name(std::string_view s) {
    struct Alias { std::string_view name; DType t; };
    static constexpr Alias kAliases[] = {
        {"float32", DType::F32}, {"f32", DType::F32}, {"fp32", DType::F32},
        {"float16", DType::F16}, {"f16", DType::F16}, {"fp16", DType::F16}, {"half", DType::F16},
        {"bfloat16", DType::BF16}, {"bf16", DType::BF16},
        {"float64", DType::F64}, {"f64", DType::F64},
        {"int8", DType::I8}, {"int16", DType::I16}, {"int32", DType::I32}, {"i32", DType::I32},
        {"int64", DType::I64}, {"i64", DType::I64}, {"uint8", DType::U8}, {"u8", DType::U8},
        {"uint16", DType::U16}, {"uint32", DType::U32}, {"uint64", DType::U64}, {"bool", DType::Bool},
    };
    for (const auto& a : kAliases)
        if (a.name == s) return a.t;
    return std::nullopt;
}

}  // namespace easel
