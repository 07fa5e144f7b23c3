// AUTOMATIC1111 prompt syntax. Upstream: AUTOMATIC1111/stable-diffusion-webui modules/prompt_parser.py
// (re_attention, re_break, parse_prompt_attention; commit 28bd8e14) and modules/sd_hijack_clip.py
// (tokenize_line, process_tokens; commit 00e09382). The regular expressions are restated as scanners that make
// the same leftmost-first choices as Python's `re`.
#include "models/clip/prompt_parser.h"

#include <algorithm>
#include <map>

#include <charconv>

#include <fmt/format.h>
#include <unicode/uchar.h>

#include "models/clip/text_clean.h"

namespace easel::clip {

namespace {

// Python `re` classes on str: \s is str.isspace() (White_Space plus U+001C..U+001F), \w is alphanumeric
// (letters and numbers of every kind) or '_', \d is a decimal digit (Nd).
bool re_space(char32_t c) { return (c >= 0x1C && c <= 0x1F) || is_white_space(c); }
bool re_word(char32_t c) { return c == U'_' || is_letter(c) || is_number(c); }
bool re_digit(char32_t c) { return u_charType(UChar32(c)) == U_DECIMAL_DIGIT_NUMBER; }

// ":\s*([+-]?[.\d]+)\s*\)" at t[i] (t[i] == ':'). On a match returns its length and sets *weight.
size_t match_weight(std::u32string_view t, size_t i, std::u32string_view* weight) {
    size_t j = i + 1;
    while (j < t.size() && re_space(t[j])) ++j;
    const size_t w0 = j;
    if (j < t.size() && (t[j] == U'+' || t[j] == U'-')) ++j;
    const size_t body = j;
    while (j < t.size() && (t[j] == U'.' || re_digit(t[j]))) ++j;
    if (j == body) return 0;
    const size_t w1 = j;
    while (j < t.size() && re_space(t[j])) ++j;
    if (j >= t.size() || t[j] != U')') return 0;
    *weight = t.substr(w0, w1 - w0);
    return j + 1 - i;
}

// Python's float() on what "[+-]?[.\d]+" matched.
Result<double> parse_weight(std::u32string_view w) {
    std::string s;
    for (char32_t c : w) {
        if (c == U'+' && s.empty()) continue;
        if (re_digit(c))
            s += char('0' + u_charDigitValue(UChar32(c)));
        else
            s += char(c);  // '.', '-'
    }
    double v = 0.0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || ptr != s.data() + s.size())
        return Error::invalid_argument(
            fmt::format("attention weight \"{}\" is not a number (expected e.g. (word:1.2))", encode_utf8(w)), "prompt");
    return v;
}

// re.split(r"\s*\bBREAK\b\s*", text), with its leftmost matches.
std::vector<std::u32string> split_break(std::u32string_view t) {
    std::vector<std::u32string> parts;
    constexpr std::u32string_view kBreak = U"BREAK";
    size_t pos = 0;
    for (size_t b = t.find(kBreak, pos); b != std::u32string_view::npos; b = t.find(kBreak, b + 1)) {
        if (b < pos) continue;
        const bool left = b == 0 || !re_word(t[b - 1]);
        const bool right = b + kBreak.size() >= t.size() || !re_word(t[b + kBreak.size()]);
        if (!left || !right) continue;
        size_t start = b;
        while (start > pos && re_space(t[start - 1])) --start;
        size_t end = b + kBreak.size();
        while (end < t.size() && re_space(t[end])) ++end;
        parts.emplace_back(t.substr(pos, start - pos));
        pos = end;
        b = end - 1;  // the loop's b + 1 resumes the search at `end`
    }
    parts.emplace_back(t.substr(pos));
    return parts;
}

bool is_escapable(char32_t c) { return c == U'(' || c == U')' || c == U'[' || c == U']' || c == U'\\'; }

}  // namespace

Result<std::vector<PromptSpan>> parse_prompt_attention(std::string_view prompt) {
    if (prompt.size() > CLIPTokenizer::kMaxTextBytes)
        return Error::invalid_argument(fmt::format("prompt is {} bytes; at most {} are accepted", prompt.size(),
                                                   CLIPTokenizer::kMaxTextBytes), "prompt");
    EASEL_TRY_ASSIGN(const std::u32string text, decode_utf8(prompt, "prompt"));
    const std::u32string_view t = text;  // tokens below are views into it
    struct Span {
        std::u32string text;
        double weight;
    };
    std::vector<Span> res;
    std::vector<size_t> round, square;
    constexpr double kRound = 1.1;
    constexpr double kSquare = 1 / 1.1;
    // Each bracket multiplies every span from its opening to the end; nesting makes that quadratic, so the total
    // work is capped (real prompts use a tiny fraction of it) instead of letting a crafted prompt hang.
    constexpr size_t kMaxMultiplies = size_t(1) << 26;
    size_t multiplies = 0;
    auto multiply_range = [&](size_t start, double m) {
        multiplies += res.size() - start;
        for (size_t p = start; p < res.size(); ++p) res[p].weight *= m;
    };
    auto too_nested = [&] {
        return Error::invalid_argument(fmt::format("prompt nests brackets too deeply to weigh (more than {} span "
                                                   "multiplications)", kMaxMultiplies), "prompt");
    };

    for (size_t i = 0; i < t.size();) {
        const char32_t c = t[i];
        std::u32string_view token;
        std::u32string_view weight;
        bool has_weight = false;
        if (c == U'\\') {
            token = t.substr(i, (i + 1 < t.size() && is_escapable(t[i + 1])) ? 2 : 1);
        } else if (c == U'(' || c == U'[' || c == U')' || c == U']') {
            token = t.substr(i, 1);
        } else if (c == U':') {
            const size_t m = match_weight(t, i, &weight);
            has_weight = m > 0;
            token = t.substr(i, has_weight ? m : 1);
        } else {
            size_t j = i;
            while (j < t.size() && t[j] != U'\\' && t[j] != U'(' && t[j] != U')' && t[j] != U'[' && t[j] != U']' &&
                   t[j] != U':')
                ++j;
            token = t.substr(i, j - i);
        }
        i += token.size();

        if (token[0] == U'\\') {
            res.push_back({std::u32string(token.substr(1)), 1.0});
        } else if (token == U"(") {
            round.push_back(res.size());
        } else if (token == U"[") {
            square.push_back(res.size());
        } else if (multiplies > kMaxMultiplies) {
            return too_nested();
        } else if (has_weight && !round.empty()) {
            EASEL_TRY_ASSIGN(double w, parse_weight(weight));
            multiply_range(round.back(), w);
            round.pop_back();
        } else if (token == U")" && !round.empty()) {
            multiply_range(round.back(), kRound);
            round.pop_back();
        } else if (token == U"]" && !square.empty()) {
            multiply_range(square.back(), kSquare);
            square.pop_back();
        } else {
            const std::vector<std::u32string> parts = split_break(token);
            for (size_t k = 0; k < parts.size(); ++k) {
                if (k > 0) res.push_back({U"BREAK", -1.0});
                res.push_back({parts[k], 1.0});
            }
        }
    }
    size_t pending = 0;
    for (size_t pos : round) pending += res.size() - pos;
    for (size_t pos : square) pending += res.size() - pos;
    if (multiplies + pending > kMaxMultiplies) return too_nested();
    for (size_t pos : round) multiply_range(pos, kRound);
    for (size_t pos : square) multiply_range(pos, kSquare);
    if (res.empty()) res.push_back({U"", 1.0});

    // Merge runs of identical weights.
    std::vector<PromptSpan> out;
    for (const Span& s : res) {
        if (!out.empty() && out.back().weight == s.weight)
            out.back().text += encode_utf8(s.text);
        else
            out.push_back({encode_utf8(s.text), s.weight});
    }
    return out;
}

Result<WeightedPrompt> tokenize_weighted(const CLIPTokenizer& tok, std::string_view prompt,
                                         const ChunkOptions& options) {
    if (options.chunk_length < 1)
        return Error::invalid_argument(fmt::format("chunk length must be positive, got {}", options.chunk_length),
                                       "chunk_length");
    std::vector<PromptSpan> parsed;
    if (options.emphasis) {
        EASEL_TRY_ASSIGN(parsed, parse_prompt_attention(prompt));
    } else {
        parsed.push_back({std::string(prompt), 1.0});
    }

    const size_t chunk_length = size_t(options.chunk_length);
    const std::optional<int32_t> comma = tok.token_to_id(",</w>");
    WeightedPrompt out;
    std::vector<int32_t> ids;
    std::vector<double> mults;
    long last_comma = -1;
    std::vector<PromptChunk::Fix> fixes;  // of the chunk being filled
    // A1111's EmbeddingDatabase.ids_lookup: by first token, longest name first.
    std::map<int32_t, std::vector<const Embedding*>> lookup;
    if (options.embeddings)
        for (const Embedding& e : *options.embeddings)
            if (!e.ids.empty() && e.vectors.rank() == 2 && e.vectors.size(0) > 0) lookup[e.ids[0]].push_back(&e);
    for (auto& [id, list] : lookup)
        std::stable_sort(list.begin(), list.end(), [](const Embedding* a, const Embedding* b) { return a->ids.size() > b->ids.size(); });
    auto embedding_at = [&](const std::vector<int32_t>& tokens, size_t position) -> const Embedding* {
        auto it = lookup.find(tokens[position]);
        if (it == lookup.end()) return nullptr;
        for (const Embedding* e : it->second)
            if (position + e->ids.size() <= tokens.size() &&
                std::equal(e->ids.begin(), e->ids.end(), tokens.begin() + long(position)))
                return e;
        return nullptr;
    };

    auto next_chunk = [&](bool is_last) {
        out.token_count += is_last ? int(ids.size()) : int(chunk_length);
        if (ids.size() < chunk_length) {
            mults.resize(chunk_length, 1.0);
            ids.resize(chunk_length, tok.eos_id());
        }
        PromptChunk c;
        c.fixes = std::move(fixes);
        fixes.clear();
        c.ids.reserve(chunk_length + 2);
        c.ids.push_back(tok.bos_id());
        c.ids.insert(c.ids.end(), ids.begin(), ids.end());
        c.ids.push_back(tok.eos_id());
        c.weights.push_back(1.0f);
        for (double m : mults) c.weights.push_back(float(m));
        c.weights.push_back(1.0f);
        out.chunks.push_back(std::move(c));
        ids.clear();
        mults.clear();
        last_comma = -1;
    };

    for (const PromptSpan& span : parsed) {
        EASEL_TRY_ASSIGN(std::vector<int32_t> tokens, tok.encode(span.text));
        if (span.is_break()) {
            next_chunk(false);
            continue;
        }
        for (size_t position = 0; position < tokens.size();) {
            const int32_t token = tokens[position];
            if (comma && token == *comma) {
                last_comma = long(ids.size());
            } else if (options.comma_padding_backtrack != 0 && ids.size() == chunk_length && last_comma != -1 &&
                       long(ids.size()) - last_comma <= options.comma_padding_backtrack) {
                // The chunk is full and a comma is near its end: move what follows the comma to the next chunk.
                const size_t cut = size_t(last_comma + 1);
                std::vector<int32_t> moved_ids(ids.begin() + long(cut), ids.end());
                std::vector<double> moved_mults(mults.begin() + long(cut), mults.end());
                ids.resize(cut);
                mults.resize(cut);
                next_chunk(false);
                ids = std::move(moved_ids);
                mults = std::move(moved_mults);
            }
            // ">=": an embedding longer than a chunk leaves it overfull; what follows starts the next one.
            if (ids.size() >= chunk_length) next_chunk(false);
            const Embedding* e = embedding_at(tokens, position);
            if (!e) {
                ids.push_back(token);
                mults.push_back(span.weight);
                ++position;
                continue;
            }
            // An embedding: its vectors take as many positions (placeholder 0), in the next chunk if they would
            // not fit in this one (A1111 does not split an embedding across chunks unless it is longer than one).
            const size_t n = size_t(e->vectors.size(0));
            if (ids.size() + n > chunk_length) next_chunk(false);
            fixes.push_back({int(ids.size()) + 1, e});
            if (std::find(out.embeddings_used.begin(), out.embeddings_used.end(), e->name) == out.embeddings_used.end())
                out.embeddings_used.push_back(e->name);
            ids.insert(ids.end(), n, 0);
            mults.insert(mults.end(), n, span.weight);
            position += e->ids.size();
        }
    }
    if (!ids.empty() || out.chunks.empty()) next_chunk(true);
    // An embedding longer than a chunk overflows it (A1111 lets it); the chunk is cut back to its length, its
    // fixes kept (the encoder applies what fits).
    for (PromptChunk& c : out.chunks) {
        if (c.ids.size() <= chunk_length + 2) continue;
        c.ids.resize(chunk_length + 1);
        c.ids.push_back(tok.eos_id());
        c.weights.resize(chunk_length + 1);
        c.weights.push_back(1.0f);
    }

    // process_tokens: with a pad id other than EOS (SD 2.x), everything after a chunk's first EOS is padding.
    if (options.pad_id && *options.pad_id != tok.eos_id()) {
        for (PromptChunk& c : out.chunks) {
            for (size_t k = 0; k < c.ids.size(); ++k) {
                if (c.ids[k] != tok.eos_id()) continue;
                for (size_t p = k + 1; p < c.ids.size(); ++p) c.ids[p] = *options.pad_id;
                break;
            }
        }
    }
    return out;
}

}  // namespace easel::clip
