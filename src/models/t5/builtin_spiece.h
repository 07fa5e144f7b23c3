// T5 v1.1's SentencePiece model as easel carries it: data/t5/spiece.model (Apache-2.0, data/t5/README.md), built
// into the library at build time (the file's bytes as they are, 855 KB), so that Flux and SD3 single files and
// component files, which carry no tokenizer, need no --t5-tokenizer. SD3's text_encoder_3 and Flux's
// text_encoder_2 (T5-XXL v1.1) use this vocabulary.
//
//   std::span<const uint8_t> model = easel::t5::builtin_spiece_model();
//   EASEL_TRY_ASSIGN(T5Tokenizer tok, T5Tokenizer::builtin());  // the same, parsed
#pragma once

#include <cstdint>
#include <span>

namespace easel::t5 {

// The bytes of spiece.model.
std::span<const uint8_t> builtin_spiece_model();

}  // namespace easel::t5
