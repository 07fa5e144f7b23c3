// ggml's type ids as GGUF files store them, and their mapping to easel's quantized formats (core/quant.h,
// where the block layouts and the scalar dequantizers live). Each quantized type stores a row as consecutive
// fixed-size blocks; a block decodes to block_elems floats.
//
//   const GgmlTypeInfo* info = ggml_type_info(12);           // q4_K: 256 elements in 144 bytes
//   std::vector<float> out(n_blocks * info->block_elems);
//   dequantize_blocks(GgmlType::Q4_K, bytes, out.data(), n_blocks);
//
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/quant.h"

namespace easel {

// Values are ggml's type ids as stored in GGUF tensor infos (ids 4 and 5 were removed upstream).
enum class GgmlType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
    I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35,
};

struct GgmlTypeInfo {
    GgmlType type;
    std::string_view name;  // as ggml prints it: "q4_K", "f16"
    uint32_t block_elems;   // elements per block (1 for plain types)
    uint32_t block_bytes;   // bytes per block
    bool readable;          // easel can load it (plain types, or a dequantizer below exists)
    bool quantized;         // a block type (kept as stored: a quantized Tensor, core/tensor.h)
};

// nullptr for an id ggml never defined. Types that exist but easel cannot read have readable == false.
const GgmlTypeInfo* ggml_type_info(uint32_t id);

// The QuantType of a quantized ggml type easel reads (core/quant.h), or None for plain and unreadable types.
QuantType ggml_quant_type(GgmlType type);
// The ggml type id of a quantized type (what a GGUF writer stores).
GgmlType ggml_type_of(QuantType type);

// Decodes n_blocks consecutive blocks of a quantized, readable type into n_blocks * block_elems floats.
// `src` needs no alignment. Returns false (writing nothing) for a type that is not a readable quantized one.
bool dequantize_blocks(GgmlType type, const uint8_t* src, float* dst, size_t n_blocks);

}  // namespace easel
