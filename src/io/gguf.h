// GGUF (versions 2 and 3): the single-file format of ggml, as written by stable-diffusion.cpp and llama.cpp.
// Plain tensors (f32, f16, bf16, f64, i8..i64) are zero-copy views where aligned; quantized tensors (q4_0, q4_1,
// q5_0, q5_1, q8_0, q2_K..q6_K, q8_K) are zero-copy quantized Tensors (core/tensor.h): Linear layers multiply
// them as stored, anything else decodes them when it loads them.
//
//   EASEL_TRY_ASSIGN(WeightSet w, read_gguf("sd-v1-5-q8_0.gguf"));
//   const Tensor* t = w.find("model.diffusion_model.input_blocks.0.0.weight");  // [320, 4, 3, 3], PyTorch order
//   std::string arch = w.metadata["general.architecture"];   // every key/value, as text
//
// Layout (little-endian): "GGUF" | u32 version | u64 tensor_count | u64 kv_count | kv_count key/values |
// tensor_count tensor infos | padding to `general.alignment` (default 32) | data section.
//   string   = u64 length | bytes (no terminator)
//   key/value = string key | u32 value type | value; types 0..12 are u8 i8 u16 i16 u32 i32 f32 bool string
//               array u64 i64 f64; an array is u32 element type | u64 count | elements (no nested arrays).
//   tensor info = string name | u32 n_dims (<= 4) | u64 dims[n_dims] (innermost first: reversed here to
//               PyTorch order) | u32 ggml type | u64 offset into the data section (a multiple of the alignment).
// Every count, length and offset is checked against the bytes that remain, so a corrupt or hostile file
// fails with an error naming the byte offset or tensor, and no allocation exceeds a size the file backs.
//
// Metadata as text: numbers in decimal, bools as true/false, strings as stored, arrays as JSON-style lists
// (an array longer than 16 MB as text is summarised instead).
// "gguf.version" is added.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/weights.h"

namespace easel {

Result<WeightSet> read_gguf(const std::string& path);

// The same over bytes in memory (fuzzing, tests). `keep_alive` owns `data` and is shared by every zero-copy
// tensor (empty when the caller guarantees `data` outlives them). `name` is used in messages.
Result<WeightSet> read_gguf_bytes(const uint8_t* data, size_t size, std::shared_ptr<const void> keep_alive,
                                  const std::string& name);

// Writing (io/gguf_writer.cpp): GGUF v3, alignment 32, every metadata value a string. The tensors are planned up
// front (names, shapes, stored types) and produced one at a time, so that a model larger than memory can be
// converted tensor by tensor; each produced tensor must have the planned shape and type (a quantized Tensor of
// that QuantType, or a plain one of that dtype). Written to a temporary file renamed over `path` at the end.
//
//   std::vector<GgufTensorPlan> plan = {{"w", {3072, 3072}, QuantType::Q8_0, DType::F32}};
//   EASEL_TRY(write_gguf("out.gguf", {{"general.architecture", "flux"}}, plan, [&](size_t i) { return make(i); }));
struct GgufTensorPlan {
    std::string name;
    Shape shape;            // PyTorch order, rank 1 to 4
    QuantType quant = QuantType::None;  // a ggml block type, or None for a plain tensor of `dtype`
    DType dtype = DType::F32;           // plain: F32, F16, BF16, F64, I8, I16, I32, I64
};
Status write_gguf(const std::string& path, const std::map<std::string, std::string>& metadata,
                  const std::vector<GgufTensorPlan>& plan, const std::function<Result<Tensor>(size_t index)>& produce);

}  // namespace easel
