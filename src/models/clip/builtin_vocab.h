// CLIP's BPE vocabulary as easel carries it: OpenAI's bpe_simple_vocab_16e6.txt.gz (MIT licence, data/clip/LICENSE),
// built into the library at build time from data/clip/ (the .gz bytes as they are, 1.3 MB), so that single-file
// checkpoints, which carry no tokenizer, need no --vocab. SD 1.x's CLIP ViT-L, SD 2.x's OpenCLIP ViT-H and both
// SDXL text encoders use this vocabulary.
//
//   std::span<const uint8_t> gz = easel::clip::builtin_bpe_gz();
//   EASEL_TRY_ASSIGN(CLIPTokenizer tok, CLIPTokenizer::builtin());  // the same, decompressed and parsed
#pragma once

#include <cstdint>
#include <span>

namespace easel::clip {

// The bytes of bpe_simple_vocab_16e6.txt.gz.
std::span<const uint8_t> builtin_bpe_gz();

}  // namespace easel::clip
