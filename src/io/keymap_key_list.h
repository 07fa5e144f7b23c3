// Key lists: a model's tensor names and shapes without any data, as JSON (optionally gzip-compressed). They
// are what tests/data/keys/ holds (written by tools/reference/make_key_lists.py from diffusers' own classes)
// and what the key-map and config-detection tests run on; `easel info --keys` can print one later.
//
//   {"format": "easel-key-list-1", "source": "...", "tensors": [["conv_in.weight", [320, 4, 3, 3]], ...]}
//
//   EASEL_TRY_ASSIGN(WeightSet w, read_key_list_file("tests/data/keys/sd15_ldm.json.gz"));
//   w.find("model.diffusion_model.input_blocks.0.0.weight")->shape();   // [320, 4, 3, 3]
//
// Tensors in such a set are placeholders: every element aliases one shared zero float (all strides 0), so a
// [49408, 1024] embedding costs nothing. They have the right shape and rank but must never be read as weights.
#pragma once

#include <string>
#include <string_view>

#include "core/error.h"
#include "io/weights.h"

namespace easel {

// A tensor of the given shape and dtype backed by no real memory (see above).
Tensor shape_only_tensor(const Shape& shape, DType dtype = DType::F32);

Result<WeightSet> parse_key_list(std::string_view json_text, const std::string& source);
// Reads a .json or .json.gz key list (gzip detected from the magic bytes). Files over 64 MiB uncompressed
// are refused.
Result<WeightSet> read_key_list_file(const std::string& path);
// The inverse, for tools and tests: names in set order.
std::string write_key_list(const WeightSet& w, std::string_view source);

}  // namespace easel
