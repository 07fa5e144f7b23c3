#include "pipeline/families/clip_prompt.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "io/keymap_config_doc.h"
#include "io/model_file.h"

namespace easel {
namespace fs = std::filesystem;

void apply_a1111_emphasis(Tensor& z, const std::vector<float>& weights) {
    const bool weighted = std::any_of(weights.begin(), weights.end(), [](float w) { return w != 1.0f; });
    if (!weighted) return;
    float* p = z.data<float>();
    const int64_t L = z.size(1), D = z.size(2);
    double before = 0;
    for (int64_t i = 0; i < L * D; ++i) before += p[i];
    const float original_mean = float(before / double(L * D));
    double after = 0;
    for (int64_t t = 0; t < L; ++t)
        for (int64_t d = 0; d < D; ++d) {
            p[t * D + d] *= weights[size_t(t)];
            after += p[t * D + d];
        }
    const float new_mean = float(after / double(L * D));
    const float k = original_mean / new_mean;
    for (int64_t i = 0; i < L * D; ++i) p[i] *= k;
}

Status pad_chunks(clip::WeightedPrompt& wp, const clip::CLIPTokenizer& tok, const clip::ChunkOptions& opt, int chunks) {
    if (int(wp.chunks.size()) >= chunks) return ok();
    EASEL_TRY_ASSIGN(clip::WeightedPrompt empty, clip::tokenize_weighted(tok, "", opt));
    while (int(wp.chunks.size()) < chunks) wp.chunks.push_back(empty.chunks[0]);
    return ok();
}

std::vector<clip::Embedding> clip_embeddings(const TextualInversions* ti, const clip::CLIPTokenizer& tok,
                                             const std::string& key, const std::string& need, int64_t width) {
    std::vector<clip::Embedding> out;
    if (!ti) return out;
    for (const TextualInversion& e : ti->items) {
        auto it = e.vectors.find(key);
        if (it == e.vectors.end() || it->second.rank() != 2 || it->second.size(1) != width) continue;
        if (!need.empty() && !e.vectors.count(need)) continue;
        auto ids = tok.encode(e.name);
        if (!ids || ids->empty()) continue;
        out.push_back({e.name, *ids, it->second.to(DType::F32).contiguous()});
    }
    return out;
}

std::vector<std::vector<CLIPTextEncoder::Options::Fix>> chunk_fixes(const clip::PromptChunk& chunk) {
    if (chunk.fixes.empty()) return {};
    std::vector<CLIPTextEncoder::Options::Fix> row;
    for (const clip::PromptChunk::Fix& f : chunk.fixes) row.push_back({f.position, f.embedding->vectors});
    return {row};
}

void note_embeddings(const clip::WeightedPrompt& wp, std::vector<std::string>& used) {
    for (const std::string& n : wp.embeddings_used)
        if (std::find(used.begin(), used.end(), n) == used.end()) used.push_back(n);
}

Result<ClipTokenizerAndPad> load_clip_tokenizer(const std::string& dir, bool pad_with_bang, const std::string& vocab_flag) {
    ClipTokenizerAndPad r;
    std::string pad = pad_with_bang ? "!" : "<|endoftext|>";
    if (!vocab_flag.empty() || dir.empty()) {
        EASEL_TRY_ASSIGN(clip::VocabSource v, clip::find_vocab(vocab_flag));
        EASEL_TRY_ASSIGN(r.tokenizer, v.load());
        r.describe = v.describe();
    } else {
        EASEL_TRY_ASSIGN(r.tokenizer, clip::CLIPTokenizer::load(dir));
        r.describe = dir;
        const fs::path cfg = fs::path(dir) / "tokenizer_config.json";
        if (auto text = read_small_text_file(cfg.string(), size_t(1) << 20)) {
            EASEL_TRY_ASSIGN(ConfigNode doc, parse_json_config(*text, cfg.string()));
            if (const ConfigNode* n = doc.get("pad_token"); n && !n->is_null()) {
                if (n->is_scalar()) pad = n->scalar();
                else if (n->is_map()) { EASEL_TRY_ASSIGN(pad, n->get_string_or("content", pad)); }
            }
        }
    }
    const std::optional<int32_t> id = r.tokenizer.token_to_id(pad);
    if (!id) return Error::bad_file(r.describe, fmt::format("the pad token '{}' is not in the vocabulary", pad));
    r.pad_id = *id;
    return r;
}

Result<std::string> prompt_plain_text(std::string_view prompt) {
    EASEL_TRY_ASSIGN(std::vector<clip::PromptSpan> spans, clip::parse_prompt_attention(prompt));
    std::string s;
    for (const clip::PromptSpan& sp : spans) s += sp.is_break() ? std::string(" ") : sp.text;
    return s;
}

Result<T5Tokenizer> load_t5_tokenizer(const std::string& dir, const LoadOptions& options, const std::string& model_path,
                                      int64_t vocab_rows, std::string_view encoder) {
    Result<T5Tokenizer> t = Error::internal("unset");
    if (!options.t5_tokenizer.empty()) t = T5Tokenizer::load(options.t5_tokenizer);
    else if (!dir.empty()) t = T5Tokenizer::load(dir);
    else if (const char* env = std::getenv("EASEL_T5_TOKENIZER"); env && *env) t = T5Tokenizer::load(env);
    else t = T5Tokenizer::builtin();
    if (!t) return t;
    if (t->id_limit() > vocab_rows)
        return Error::invalid_argument(fmt::format("the T5 tokenizer ({}) has {} pieces but {}'s embedding has {} rows: "
                                                   "give this model's own spiece.model with --t5-tokenizer PATH or "
                                                   "$EASEL_T5_TOKENIZER", t->source(), t->id_limit(), encoder, vocab_rows),
                                       model_path);
    return t;
}

}  // namespace easel
