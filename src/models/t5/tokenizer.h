// T5's tokenizer: a SentencePiece unigram model (spiece.model, Debian's libsentencepiece), as transformers'
// T5Tokenizer/T5TokenizerFast encode a prompt for SD3 and Flux: the pieces' ids, truncated to max_length - 1,
// then </s>, then <pad> up to max_length (padding="max_length", truncation=True, add_special_tokens=True).
//
//   EASEL_TRY_ASSIGN(T5Tokenizer t, T5Tokenizer::load("sd3/tokenizer_3"));     // a folder or the .model file
//   std::vector<int32_t> ids = t.encode("a photo of a cat", 256);              // 256 ids: ..., 1, 0, 0, ...
//   EASEL_TRY_ASSIGN(T5Tokenizer b, T5Tokenizer::builtin());                  // T5 v1.1's own (data/t5)
//
// Whitespace follows T5TokenizerFast, which diffusers' SD3 and Flux pipelines and ComfyUI run, where it differs
// from sentencepiece: a prompt ending in a space (or a character T5's normalizer makes one: tab, newline,
// no-break and other Unicode spaces, zero-width characters) gets a "▁" piece before </s>.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace easel {

class T5Tokenizer {
public:
    // `path`: spiece.model, or a folder holding it (a diffusers tokenizer_3 / tokenizer_2 folder). Errors name
    // the file: missing, not a SentencePiece model, or one without </s> and <pad>.
    static Result<T5Tokenizer> load(const std::string& path);
    // The same from the model file's bytes (`source` for messages).
    static Result<T5Tokenizer> from_bytes(std::string_view bytes, const std::string& source);
    // T5 v1.1's vocabulary as easel carries it (data/t5/spiece.model, Apache-2.0; built into the library), for
    // single files and component files that carry no tokenizer.
    static Result<T5Tokenizer> builtin();

    T5Tokenizer();
    ~T5Tokenizer();
    T5Tokenizer(T5Tokenizer&&) noexcept;
    T5Tokenizer& operator=(T5Tokenizer&&) noexcept;

    bool loaded() const;
    // Exactly max_length ids (max_length >= 1): the prompt's pieces (at most max_length - 1), </s>, <pad>s.
    std::vector<int32_t> encode(std::string_view text, int max_length) const;
    // How many pieces the prompt has before truncation (without </s>).
    int count(std::string_view text) const;
    int32_t pad_id() const { return pad_id_; }
    int32_t eos_id() const { return eos_id_; }
    // One more than the largest id it makes: the text encoder's vocabulary must be at least this big.
    int32_t id_limit() const;
    const std::string& source() const { return source_; }

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::vector<int> pieces(std::string_view text) const;
    int32_t pad_id_ = 0, eos_id_ = 1;
    int32_t space_id_ = -1;  // the lone "▁" piece, if the model has one
    std::string source_;
};

}  // namespace easel
