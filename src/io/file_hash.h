// SHA-256 of model and add-on files, as AUTOMATIC1111 reports them in infotext and its API.
//
//   EASEL_TRY_ASSIGN(std::string h, sha256_file("v1-5-pruned-emaonly.safetensors"));   // 64 hex digits
//   EASEL_TRY_ASSIGN(std::string a, addnet_hash("my_lora.safetensors"));  // "Lora hashes": a.substr(0, 12)
//
// AUTOMATIC1111 hashes a LoRA file the way the kohya-ss "additional networks" extension did (its
// `addnet_hash_safetensors`): for a safetensors file, the SHA-256 of the bytes after the header (8 + N bytes),
// so that editing the metadata keeps the hash; for any other file, of the whole file.
#pragma once

#include <string>

#include "core/error.h"

namespace easel {

// Lower-case hex SHA-256 of the file's bytes from `offset` on. Errors: the file cannot be read.
Result<std::string> sha256_file(const std::string& path, uint64_t offset = 0);
// The SHA-256 of a safetensors file's data section (everything after its header), else of the whole file.
Result<std::string> addnet_hash(const std::string& path);

}  // namespace easel
