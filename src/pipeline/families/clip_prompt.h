// What the CLIP-conditioned families (SD 1.x/2.x, SDXL, SD3) share on the prompt side: AUTOMATIC1111's emphasis,
// the tokenizers.
#pragma once

#include <vector>

#include "core/tensor.h"
#include "models/clip/prompt_parser.h"
#include "models/clip/text_encoder.h"
#include "models/t5/tokenizer.h"
#include "pipeline/interfaces.h"
#include "pipeline/model.h"

namespace easel {

// AUTOMATIC1111 sd_hijack_clip.process_tokens ("Original" emphasis): multiply each token's hidden state
// ([1, L, D], in place) by its weight, then restore the mean of the whole chunk's output. All weights 1: unchanged.
void apply_a1111_emphasis(Tensor& z, const std::vector<float>& weights);

// A1111 pads the shorter of two conditionings with empty chunks so both have the same length: appends the chunk
// of "" (BOS, EOS, padding as `opt` says) until `wp` has `chunks`.
Status pad_chunks(clip::WeightedPrompt& wp, const clip::CLIPTokenizer& tok, const clip::ChunkOptions& opt, int chunks);

// The textual-inversion embeddings of `ti` that one text encoder can use: those with vectors under `key` ("" for
// one-encoder files; "clip_l" / "clip_g" for SDXL's, which need `need` present too) of width `width`, their names
// tokenized with `tok`. Others are skipped, as A1111 skips an embedding made for another model.
std::vector<clip::Embedding> clip_embeddings(const TextualInversions* ti, const clip::CLIPTokenizer& tok,
                                             const std::string& key, const std::string& need, int64_t width);
// A chunk's embedding vectors as the encoder takes them (one row).
std::vector<std::vector<CLIPTextEncoder::Options::Fix>> chunk_fixes(const clip::PromptChunk& chunk);
// Adds the names `wp` used to `used`, each once.
void note_embeddings(const clip::WeightedPrompt& wp, std::vector<std::string>& used);

struct ClipTokenizerAndPad {
    clip::CLIPTokenizer tokenizer;
    int32_t pad_id = 0;
    std::string describe;
};
// A tokenizer as SD's are chosen (--vocab, else the model's own folder `dir`, else $EASEL_VOCAB, else the built-in
// CLIP vocabulary) and its pad id: the folder's tokenizer_config.json pad_token, else "<|endoftext|>", or "!" with
// `pad_with_bang` (SDXL's and SD3's tokenizer_2).
Result<ClipTokenizerAndPad> load_clip_tokenizer(const std::string& dir, bool pad_with_bang, const std::string& vocab_flag);

// A prompt's text without AUTOMATIC1111's emphasis markup (a BREAK as a space): what T5 reads, unweighted.
Result<std::string> prompt_plain_text(std::string_view prompt);

// T5's tokenizer: --t5-tokenizer, else the model folder's (`dir`, "" when it has none), else $EASEL_T5_TOKENIZER,
// else easel's built-in T5 v1.1 vocabulary. Errors: an unreadable file, or a tokenizer with more pieces than the
// encoder (`encoder`, for messages) has embedding rows (`vocab_rows`), which names --t5-tokenizer.
Result<T5Tokenizer> load_t5_tokenizer(const std::string& dir, const LoadOptions& options, const std::string& model_path,
                                      int64_t vocab_rows, std::string_view encoder);

}  // namespace easel
