// Quantized weight formats: ggml's block types (as GGUF files store them) and the 8-bit floats of safetensors
// (float8_e4m3fn, float8_e5m2). A quantized tensor stores each row as consecutive fixed-size blocks along its
// innermost dimension; a block decodes to block_elems floats. These scalar functions define the formats: the
// fast paths (kernels/matmul.h, quantized linear weights) are tested against them.
//
//   const QuantInfo& q = quant_info(QuantType::Q4_K);              // 256 elements in 144 bytes
//   std::vector<float> row(4096);
//   dequantize(QuantType::Q4_K, bytes, row.data(), 4096 / q.block_elems);
//   quantize(QuantType::Q8_0, row.data(), out_bytes, 4096 / 32);   // back, for `easel quantize`
//
// Block layouts (facts from ggml's ggml-common.h, written here from that description) are described above each
// function in quant.cpp. fp8 e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa bits, no infinities, S.1111.111 is
// NaN, largest 448; e5m2: 1, 5 (bias 15), 2, IEEE-like with infinities.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace easel {

enum class QuantType : uint8_t {
    None = 0,
    Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
    Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K,
    F8_E4M3, F8_E5M2,
};

struct QuantInfo {
    QuantType type = QuantType::None;
    std::string_view name;    // ggml's spelling ("q4_K"), or "f8_e4m3" / "f8_e5m2"
    uint32_t block_elems = 1;
    uint32_t block_bytes = 0;
    bool can_quantize = false;  // quantize() writes it (easel quantize)
};

const QuantInfo& quant_info(QuantType t);
std::optional<QuantType> quant_from_name(std::string_view name);  // "q8_0", "Q4_K", "f8_e4m3", ...
// The quantized types quantize() can write, for messages: "q4_0 q4_1 ...".
std::string_view quantizable_names();

// Bytes of `numel` elements (a multiple of block_elems) stored as t.
inline size_t quant_bytes(QuantType t, int64_t numel) {
    const QuantInfo& q = quant_info(t);
    return size_t(numel) / q.block_elems * q.block_bytes;
}

// Decodes n_blocks consecutive blocks (src needs no alignment) to n_blocks * block_elems floats.
void dequantize(QuantType t, const uint8_t* src, float* dst, size_t n_blocks);

// Encodes n_blocks * block_elems floats as n_blocks blocks. Only for types with can_quantize; NaN and infinities
// are not expected (model weights) and give unspecified blocks. Legacy types follow ggml's reference rounding;
// the K-quants use a plain min/max fit per sub-block (ggml searches scales iteratively: its blocks are a little
// more accurate, and any ggml reader decodes ours).
void quantize(QuantType t, const float* src, uint8_t* dst, size_t n_blocks);

float f8_e4m3_to_f32(uint8_t v);
float f8_e5m2_to_f32(uint8_t v);

}  // namespace easel
