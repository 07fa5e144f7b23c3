// safetensors: the Hugging Face tensor file format, read zero-copy and validated in full before any tensor is
// handed out (the file may come from anywhere).
//
//   EASEL_TRY_ASSIGN(WeightSet w, read_safetensors("v1-5-pruned-emaonly.safetensors"));
//   const Tensor* t = w.find("model.diffusion_model.input_blocks.0.0.weight");   // F16 view into the mapping
//   std::string fmt = w.metadata["format"];                                        // from __metadata__
//   EASEL_TRY(write_safetensors("out.safetensors", w));                           // atomic: temp file + rename
//
// Layout: u64 little-endian header length N | N bytes of JSON | data section. The header maps each tensor
// name to {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]} (offsets relative to the data
// section) and may hold "__metadata__": {str: str}. Checked: N <= 100 MB and inside the file, a JSON object
// with unique keys, known dtypes (F8_* is refused as Unsupported, naming the tensor), non-negative shapes of
// rank <= 8 whose byte size does not overflow, end - begin == numel * element size, ranges inside the data
// section and not overlapping. Trailing bytes and gaps between tensors are allowed (harmless).
// A tensor whose data is not aligned to its element size (legal in the format, rare in practice) is copied
// into aligned memory instead of being handed out as a misaligned pointer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "core/error.h"
#include "io/weights.h"

namespace easel {

// Largest header we accept; the reference implementation uses the same limit.
constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

Result<WeightSet> read_safetensors(const std::string& path);

// The same over bytes in memory (fuzzing, tests, a file already mapped). `keep_alive` owns `data` and is
// shared by every returned tensor (empty when the caller guarantees `data` outlives them). `name` is used
// in messages and as WeightSet::source.
Result<WeightSet> read_safetensors_bytes(const uint8_t* data, size_t size, std::shared_ptr<const void> keep_alive,
                                         const std::string& name);

// Serialises `weights` (any dtype, any strides) to the bytes of a safetensors file: tensors laid out by
// decreasing element size, then by name, as the reference writer does, so every tensor is aligned.
// __metadata__ is weights.metadata overlaid with `metadata`.
Result<std::string> serialize_safetensors(const WeightSet& weights,
                                          const std::map<std::string, std::string>& metadata = {});

// Writes serialize_safetensors() to `path` through a temporary file in the same folder that is renamed over
// `path` only when complete, so a crash or full disk never leaves a half-written file under that name.
Status write_safetensors(const std::string& path, const WeightSet& weights,
                         const std::map<std::string, std::string>& metadata = {});

}  // namespace easel
