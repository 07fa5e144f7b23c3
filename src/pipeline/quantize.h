// `easel quantize`: a model file rewritten as GGUF with its Linear weights in a quantized type, to be loaded
// like any single file and multiplied as stored (kernels/matmul.h quantized_linear_weight).
//
//   QuantizeOptions o{.type = QuantType::Q8_0};
//   EASEL_TRY_ASSIGN(QuantizeReport r, quantize_model_file("flux1-dev.safetensors", "flux1-dev-q8_0.gguf", o));
//
// What is quantized: 2-D float tensors named *.weight whose rows are whole blocks of the type — the weights of
// Linear layers, the bulk of every transformer and text encoder. Embedding tables (names with "embedding",
// "embed_tokens", "shared.weight", "pos_embed"), 1-D tensors (biases, norms) and convolutions stay as stored:
// easel decodes those at load, so quantizing them would cost precision and save no memory. A K-quant whose
// 256-element blocks do not divide a row falls back to the 32-element type of about the same size (q4_K to q4_1,
// q5_K to q5_1, q6_K to q8_0); a row that 32 does not divide either stays as stored. fp8 tensors that stay are
// written as f16 (GGUF has no fp8), f64 as f32. Tensor names and the file's metadata are kept, so the result
// is detected and loaded as the input is; general.architecture (sd1, sdxl, sd3, flux, as ComfyUI-GGUF names
// them) and general.quantization_version 2 are added.
//
// One tensor is in memory at a time (decoded to f32, then encoded), so a model larger than memory converts.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/error.h"
#include "core/quant.h"
#include "io/weights.h"

namespace easel {

struct QuantizeOptions {
    QuantType type = QuantType::Q8_0;
    // Called before each tensor is written: index, count, name, what it becomes ("q8_0", "f16 (kept)").
    std::function<void(size_t index, size_t count, const std::string& name, const std::string& as)> progress;
};

struct QuantizeReport {
    size_t quantized = 0, fell_back = 0, kept = 0;
    uint64_t bytes_in = 0, bytes_out = 0;  // tensor data only
    std::string architecture;               // what general.architecture says ("" when unknown)
};

// The type tensor `name` of `t` is written as (None: as stored, see above) for target `type`.
QuantType quantize_choice(const std::string& name, const Tensor& t, QuantType type);

// `t` (2-D, any float dtype or quantized, rows whole blocks of `type`) encoded as `type`, rows in parallel: a new
// quantized Tensor of its own memory.
Tensor quantize_tensor(const Tensor& t, QuantType type);

// Errors: unreadable input, a target type easel cannot write (q2_K, q3_K...), an output that cannot be written.
// A diffusers folder is refused (quantize its single-file form, or each component file).
Result<QuantizeReport> quantize_model_file(const std::string& in, const std::string& out, const QuantizeOptions& options);

}  // namespace easel
