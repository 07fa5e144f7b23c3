// CLIP's byte-level BPE tokenizer. It gives the ids of transformers' slow CLIPTokenizer with ftfy installed
// (transformers 4.40, ftfy 6.1.1), which is what diffusers and AUTOMATIC1111 feed the SD 1.x/2.x text
// encoders.
//
// For each piece of text between literal "<|startoftext|>"/"<|endoftext|>" tokens, tokenization runs:
// ftfy.fix_text, whitespace_clean, lower(), the pre-tokenizer regex
// (<|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+, case-insensitive),
// bytes to CLIP's printable byte symbols, then BPE with merge ranks and the "</w>" end-of-word marker.
// A vocabulary is either diffusers' tokenizer/ folder (vocab.json + merges.txt) or CLIP's own
// bpe_simple_vocab_16e6.txt.gz. The vocabulary built from the .gz is 256 byte symbols, their "</w>" forms,
// one token per merge (the first 48894 after the header line), then <|startoftext|> 49406 and
// <|endoftext|> 49407.
//
//   EASEL_TRY_ASSIGN(VocabSource vocab, find_vocab(flag_vocab));  // --vocab, $EASEL_VOCAB or the built-in one
//   EASEL_TRY_ASSIGN(CLIPTokenizer tok, vocab.load());
//   EASEL_TRY_ASSIGN(auto ids, tok.encode_padded("a photo of a cat", tok.eos_id()));  // 77 ids, SD 1.x
//   EASEL_TRY_ASSIGN(auto ids2, tok.encode_padded("a photo of a cat", 0));            // SD 2.x (OpenCLIP)
//   EASEL_TRY_ASSIGN(auto raw, tok.encode("a photo"));   // no BOS/EOS: {320, 1125}
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace easel::clip {

class CLIPTokenizer {
public:
    static constexpr int kContextLength = 77;  // positions of the SD 1.x/2.x text encoders
    static constexpr size_t kMaxMerges = 49152 - 256 - 2;  // merges CLIP reads (48894), see from_bpe_gz
    static constexpr size_t kMaxTextBytes = 1 << 20;        // longer prompts are refused, not tokenized
    static constexpr size_t kMaxWordChars = 4096;           // BPE is quadratic in the length of one word

    // `path` is a directory holding vocab.json and merges.txt (or a tokenizer/ folder with them, or CLIP's
    // .gz), a vocab.json with merges.txt beside it, or a bpe_simple_vocab_16e6.txt.gz.
    static Result<CLIPTokenizer> load(const std::string& path);
    static Result<CLIPTokenizer> from_vocab_json(const std::string& vocab_json_path, const std::string& merges_path);
    static Result<CLIPTokenizer> from_bpe_gz(const std::string& gz_path);
    // The same from memory. `source` names the data in error messages.
    static Result<CLIPTokenizer> from_vocab_json_text(std::string_view vocab_json, std::string_view merges_txt,
                                                      std::string_view source);
    static Result<CLIPTokenizer> from_bpe_text(std::string_view bpe_txt, std::string_view source);
    // The vocabulary built into easel (builtin_vocab.h): CLIP's bpe_simple_vocab_16e6.txt.gz.
    static Result<CLIPTokenizer> builtin();

    // Ids of `text` with no BOS/EOS, untruncated: tok(text, add_special_tokens=False)["input_ids"].
    // Errors: invalid UTF-8, a text over kMaxTextBytes, or a single word over kMaxWordChars code points.
    Result<std::vector<int32_t>> encode(std::string_view text) const;
    // BOS + encode(text) + EOS, untruncated: tok(text, truncation=False)["input_ids"].
    Result<std::vector<int32_t>> encode_with_specials(std::string_view text) const;
    // `context_length` ids: BOS, encode(text) cut to context_length - 2, EOS, then pad_id up to the end.
    // SD 1.x pads with eos_id(). SD 2.x's OpenCLIP pads with 0, the "!" token that diffusers' SD 2
    // tokenizer uses as pad.
    Result<std::vector<int32_t>> encode_padded(std::string_view text, int32_t pad_id,
                                               int context_length = kContextLength) const;

    // BPE tokens (as in vocab.json, e.g. "photo</w>") of `text`, before the id lookup.
    Result<std::vector<std::string>> tokenize(std::string_view text) const;
    // Text of ids: symbols back to bytes, "</w>" to spaces, stripped; invalid UTF-8 becomes U+FFFD.
    std::string decode(std::span<const int32_t> ids) const;

    // Splits `token` out of every text before BPE and gives it `id`, as transformers does with a tokenizer's
    // special added tokens (its trie). diffusers' SDXL and SD3 tokenizer_2 pads with "!", a special token there, so
    // each "!" of a prompt is id 0 ("!" alone) rather than BPE's "!</w>". AUTOMATIC1111's OpenCLIP tokenizer does
    // not split: the conditioner decides.
    void split_out(std::string token, int32_t id) { split_tokens_.emplace_back(std::move(token), id); }

    std::optional<int32_t> token_to_id(std::string_view token) const;
    int32_t bos_id() const { return bos_id_; }
    int32_t eos_id() const { return eos_id_; }
    // The id an unknown token maps to: <|endoftext|>, as in transformers' CLIPTokenizer.
    int32_t unk_id() const { return eos_id_; }
    size_t vocab_size() const { return encoder_.size(); }
    // One more than the largest id encode() can return: the rows a text encoder's token embedding must have.
    size_t id_limit() const { return decoder_.size(); }
    size_t num_merges() const { return merge_ranks_.size(); }

private:
    static Result<CLIPTokenizer> finish(CLIPTokenizer t, std::string_view source);
    static Result<CLIPTokenizer> build_from_json(std::string_view vocab_json, std::string_view merges_txt,
                                                 std::string_view source, std::string_view merges_source);
    void bpe(const std::string& symbols_utf8, std::vector<std::string>& out) const;
    Status tokenize_piece(std::string_view text, std::vector<std::string>& out) const;

    std::unordered_map<std::string, int32_t> encoder_;
    std::vector<std::string> decoder_;                     // id -> token ("" for unused ids)
    std::unordered_map<std::string, int32_t> merge_ranks_;  // "left right" -> rank
    std::string byte_symbol_[256];                          // byte -> its printable symbol, as UTF-8
    int32_t bos_id_ = -1;
    int32_t eos_id_ = -1;
    std::vector<std::pair<std::string, int32_t>> split_tokens_;
};

// Where the CLIP vocabulary of a model that carries none (a single-file checkpoint) comes from: `explicit_path`
// (--vocab), else $EASEL_VOCAB, else the built-in one. A tokenizer that travels with the model (a diffusers
// tokenizer/ folder, easel's metadata keys) is the caller's to prefer over the last two (SDModel does).
struct VocabSource {
    std::string path;    // something CLIPTokenizer::load accepts; empty for the built-in vocabulary
    std::string origin;  // "--vocab", "EASEL_VOCAB" or "built-in"
    bool is_builtin() const { return path.empty(); }
    // "built-in CLIP vocabulary (bpe_simple_vocab_16e6.txt.gz)" or "PATH (EASEL_VOCAB)", for `easel info`.
    std::string describe() const;
    Result<CLIPTokenizer> load() const;
};
// Errors only when --vocab or EASEL_VOCAB names nothing usable: a path the user gave is never skipped silently.
Result<VocabSource> find_vocab(const std::string& explicit_path);

}  // namespace easel::clip
