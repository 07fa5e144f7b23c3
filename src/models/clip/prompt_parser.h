// AUTOMATIC1111's prompt syntax: attention weights and 75-token chunking.
//
// parse_prompt_attention follows modules/prompt_parser.py (webui 1.x). "(text)" multiplies by 1.1,
// "(text:1.3)" by 1.3, and "[text]" by 1/1.1. Brackets nest. "\(", "\)", "\[", "\]" and "\\" are literal,
// and a lone backslash disappears. Brackets left open apply to the end of the prompt. "BREAK" (a whole word)
// ends the chunk. Adjacent spans of equal weight are merged.
// tokenize_weighted follows modules/sd_hijack_clip.py tokenize_line. Each span is tokenized separately.
// Tokens go into chunks of 75. When a chunk is full and a comma came within the last
// comma_padding_backtrack tokens, the text after that comma moves to the next chunk. Each chunk gets
// BOS/EOS and is padded to 77. Textual-inversion embeddings (ChunkOptions::embeddings) are found as A1111 finds
// them: at each token, the longest embedding whose name's tokens follow there; its n vectors take n token
// positions (placeholder id 0), in the next chunk if they would not fit in this one, recorded as a fix.
// The encoder multiplies each token's output by its weight, then rescales the whole output so that its mean
// is what it was before the weights ("Original" emphasis).
//
//   EASEL_TRY_ASSIGN(auto spans, parse_prompt_attention("a (red:1.2) [cat]"));
//   // {"a ", 1.0}, {"red", 1.2}, {" ", 1.0}, {"cat", 0.909...}
//   EASEL_TRY_ASSIGN(WeightedPrompt wp, tokenize_weighted(tok, "a (red:1.2) cat, BREAK dog"));
//   for (const PromptChunk& c : wp.chunks) encode(c.ids /*77*/, c.weights /*77*/);
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "models/clip/tokenizer.h"

namespace easel::clip {

// One span of prompt text and its weight. A BREAK is the span {"BREAK", -1.0}. A bracket around a BREAK
// scales that -1 too, and the span then counts as the plain word "BREAK", as it does in A1111.
struct PromptSpan {
    std::string text;  // UTF-8
    double weight = 1.0;

    bool is_break() const { return text == "BREAK" && weight == -1.0; }
    bool operator==(const PromptSpan&) const = default;
};

// Errors: invalid UTF-8, or a weight such as "(x:1.2.3)" that Python's float() rejects, when a '(' is open.
Result<std::vector<PromptSpan>> parse_prompt_attention(std::string_view prompt);

// A textual-inversion embedding as a tokenizer sees it: its name's tokens and its vectors [n, D] for this encoder.
struct Embedding {
    std::string name;
    std::vector<int32_t> ids;  // the name tokenized (no BOS/EOS)
    Tensor vectors;            // [n, D] f32
};

struct PromptChunk {
    std::vector<int32_t> ids;    // chunk_length + 2: BOS, 75 tokens (EOS-padded), EOS
    std::vector<float> weights;  // same length; 1.0 on BOS, EOS and padding
    // Embeddings in this chunk: from `position` in ids (BOS counted), its vectors replace the token embeddings
    // (as many as fit before the end of the chunk, A1111's EmbeddingsWithFixes).
    struct Fix {
        int position = 0;
        const Embedding* embedding = nullptr;
    };
    std::vector<Fix> fixes;
};

struct ChunkOptions {
    int chunk_length = 75;            // tokens per chunk between BOS and EOS
    int comma_padding_backtrack = 20;  // A1111 setting; 0 disables
    bool emphasis = true;             // false: the prompt is one span of weight 1 (A1111 emphasis "None")
    // Pad id after the chunk's first EOS. Unset: EOS (SD 1.x). SD 2.x's OpenCLIP: 0.
    std::optional<int32_t> pad_id;
    // Textual-inversion embeddings to look for (not owned; null: none).
    const std::vector<Embedding>* embeddings = nullptr;
};

struct WeightedPrompt {
    std::vector<PromptChunk> chunks;  // at least one
    int token_count = 0;              // A1111's count, shown as "n/75" in its UI
    std::vector<std::string> embeddings_used;  // names, first use first, each once
};

// A1111's FrozenCLIPEmbedderWithCustomWordsBase.tokenize_line (with embeddings), plus the pad substitution of
// process_tokens.
Result<WeightedPrompt> tokenize_weighted(const CLIPTokenizer& tok, std::string_view prompt,
                                         const ChunkOptions& options = {});

}  // namespace easel::clip
