#include "io/gguf_dequant.h"


namespace easel {

namespace {

constexpr uint32_t kQK = 32;    // elements per block of the legacy types
constexpr uint32_t kQK_K = 256;  // elements per super-block of the K-quants

constexpr GgmlTypeInfo kTypes[] = {
    {GgmlType::F32, "f32", 1, 4, true, false},
    {GgmlType::F16, "f16", 1, 2, true, false},
    {GgmlType::Q4_0, "q4_0", kQK, 18, true, true},
    {GgmlType::Q4_1, "q4_1", kQK, 20, true, true},
    {GgmlType::Q5_0, "q5_0", kQK, 22, true, true},
    {GgmlType::Q5_1, "q5_1", kQK, 24, true, true},
    {GgmlType::Q8_0, "q8_0", kQK, 34, true, true},
    {GgmlType::Q8_1, "q8_1", kQK, 36, false, true},
    {GgmlType::Q2_K, "q2_K", kQK_K, 84, true, true},
    {GgmlType::Q3_K, "q3_K", kQK_K, 110, true, true},
    {GgmlType::Q4_K, "q4_K", kQK_K, 144, true, true},
    {GgmlType::Q5_K, "q5_K", kQK_K, 176, true, true},
    {GgmlType::Q6_K, "q6_K", kQK_K, 210, true, true},
    {GgmlType::Q8_K, "q8_K", kQK_K, 292, true, true},
    {GgmlType::IQ2_XXS, "iq2_xxs", kQK_K, 66, false, true},
    {GgmlType::IQ2_XS, "iq2_xs", kQK_K, 74, false, true},
    {GgmlType::IQ3_XXS, "iq3_xxs", kQK_K, 98, false, true},
    {GgmlType::IQ1_S, "iq1_s", kQK_K, 50, false, true},
    {GgmlType::IQ4_NL, "iq4_nl", kQK, 18, false, true},
    {GgmlType::IQ3_S, "iq3_s", kQK_K, 110, false, true},
    {GgmlType::IQ2_S, "iq2_s", kQK_K, 82, false, true},
    {GgmlType::IQ4_XS, "iq4_xs", kQK_K, 136, false, true},
    {GgmlType::I8, "i8", 1, 1, true, false},
    {GgmlType::I16, "i16", 1, 2, true, false},
    {GgmlType::I32, "i32", 1, 4, true, false},
    {GgmlType::I64, "i64", 1, 8, true, false},
    {GgmlType::F64, "f64", 1, 8, true, false},
    {GgmlType::IQ1_M, "iq1_m", kQK_K, 56, false, true},
    {GgmlType::BF16, "bf16", 1, 2, true, false},
    {GgmlType::TQ1_0, "tq1_0", kQK_K, 54, false, true},
    {GgmlType::TQ2_0, "tq2_0", kQK_K, 66, false, true},
};

}  // namespace

const GgmlTypeInfo* ggml_type_info(uint32_t id) {
    for (const auto& t : kTypes)
        if (uint32_t(t.type) == id) return &t;
    return nullptr;
}

QuantType ggml_quant_type(GgmlType type) {
    switch (type) {
        case GgmlType::Q4_0: return QuantType::Q4_0;
        case GgmlType::Q4_1: return QuantType::Q4_1;
        case GgmlType::Q5_0: return QuantType::Q5_0;
        case GgmlType::Q5_1: return QuantType::Q5_1;
        case GgmlType::Q8_0: return QuantType::Q8_0;
        case GgmlType::Q2_K: return QuantType::Q2_K;
        case GgmlType::Q3_K: return QuantType::Q3_K;
        case GgmlType::Q4_K: return QuantType::Q4_K;
        case GgmlType::Q5_K: return QuantType::Q5_K;
        case GgmlType::Q6_K: return QuantType::Q6_K;
        case GgmlType::Q8_K: return QuantType::Q8_K;
        default: return QuantType::None;
    }
}

GgmlType ggml_type_of(QuantType type) {
    for (uint32_t id = 0; id < 64; ++id)
        if (const GgmlTypeInfo* t = ggml_type_info(id); t && ggml_quant_type(t->type) == type) return t->type;
    return GgmlType::F32;
}

bool dequantize_blocks(GgmlType type, const uint8_t* src, float* dst, size_t n_blocks) {
    const QuantType q = ggml_quant_type(type);
    if (q == QuantType::None) return false;
    dequantize(q, src, dst, n_blocks);
    return true;
}

}  // namespace easel
