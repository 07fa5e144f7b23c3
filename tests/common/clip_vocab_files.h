// CLIP's own vocabulary file (bpe_simple_vocab_16e6.txt.gz) rewritten as a diffusers tokenizer/ folder holds it
// (vocab.json + merges.txt), for tests that build a diffusers folder around a checkpoint. The vocabulary is the one
// openai/CLIP's SimpleTokenizer builds from the .gz: the 256 byte symbols in bytes_to_unicode's order, the same
// with "</w>", one token per merge (the 48,894 after the header line), then <|startoftext|> and <|endoftext|>;
// merges.txt is diffusers' "#version: 0.2" header and those merges.
//
//   EASEL_TRY(easel::testing::write_clip_tokenizer_folder(gz_path, folder / "tokenizer"));
#pragma once

#include <string>

#include "core/error.h"

namespace easel::testing {

Status write_clip_tokenizer_folder(const std::string& gz_path, const std::string& dir);

}  // namespace easel::testing
