// read_weights: open any supported weight file, choosing the reader by its first bytes (the extension only
// breaks ties for files too broken to recognise, so that the error comes from the right reader).
//
//   EASEL_TRY_ASSIGN(WeightSet w, read_weights("v1-5-pruned-emaonly.ckpt"));   // or .safetensors / .gguf
//   WeightFormat f = sniff_weight_format(bytes, n, "model.bin");              // without reading it
//
// Formats: safetensors (u64 header length then '{'), GGUF ("GGUF"), PyTorch zip checkpoints ("PK\3\4") and
// legacy PyTorch pickles (0x80 protocol byte), the last two through io/torch_checkpoint.h. A diffusers folder
// is not a file: open it with io/diffusers_folder.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"
#include "io/weights.h"

namespace easel {

enum class WeightFormat { Safetensors, Gguf, TorchZip, TorchLegacy, Unknown };

std::string_view weight_format_name(WeightFormat f);

// Looks at the first bytes of a file (`size` is the whole file's size, `data` at least its first 16 bytes or
// all of it), then at the extension of `path` when the bytes match nothing.
WeightFormat sniff_weight_format(const uint8_t* data, size_t size, std::string_view path);

Result<WeightSet> read_weights(const std::string& path);

// A small text file that travels with a model (a config.json, an LDM .yaml, easel_defaults.json): its bytes, or
// nullopt when it is not a regular file or is larger than `max_bytes` (so a huge file is never read into memory).
std::optional<std::string> read_small_text_file(const std::string& path, size_t max_bytes = size_t(16) << 20);

}  // namespace easel
