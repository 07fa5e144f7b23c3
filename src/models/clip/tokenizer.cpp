// CLIP BPE tokenizer. Upstream: transformers v4.40 models/clip/tokenization_clip.py (CLIPTokenizer: bpe,
// _tokenize, bytes_to_unicode), tokenization_utils.py (PreTrainedTokenizer.tokenize: the split on added
// tokens), and openai/CLIP simple_tokenizer.py (how the vocabulary is built from the .gz).
#include "models/clip/tokenizer.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unicode/uchar.h>
#include <zlib.h>

#include "io/mapped_file.h"
#include "models/clip/builtin_vocab.h"
#include "models/clip/text_clean.h"

namespace easel::clip {

namespace {

constexpr std::string_view kBos = "<|startoftext|>";
constexpr std::string_view kEos = "<|endoftext|>";
constexpr size_t kMaxVocabFileBytes = size_t(64) << 20;  // the real files are 1-3 MB

// CLIP's bytes_to_unicode order: printable Latin-1 bytes map to themselves ('!'..'~', '¡'..'¬', '®'..'ÿ'),
// the other 68 bytes to U+0100 upwards. The vocabulary lists the symbols in this order.
std::vector<std::pair<int, char32_t>> byte_symbols() {
    std::vector<std::pair<int, char32_t>> v;
    std::vector<bool> printable(256, false);
    for (int b = '!'; b <= '~'; ++b) printable[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
    for (int b = 0; b < 256; ++b)
        if (printable[b]) v.emplace_back(b, char32_t(b));
    int n = 0;
    for (int b = 0; b < 256; ++b)
        if (!printable[b]) v.emplace_back(b, char32_t(256 + n++));
    return v;
}

Result<std::string> read_file(const std::string& path) {
    EASEL_TRY_ASSIGN(auto f, MappedFile::open(path));
    if (f->size() > kMaxVocabFileBytes)
        return Error::bad_file(path, fmt::format("file is {} bytes; a CLIP vocabulary file is a few MB (limit {})",
                                                 f->size(), kMaxVocabFileBytes));
    return std::string(reinterpret_cast<const char*>(f->data()), f->size());
}

Result<std::string> gunzip(std::string_view data, const std::string& path) {
    z_stream zs{};
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return Error::internal("zlib inflateInit2 failed");
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    zs.avail_in = uInt(data.size());
    std::string out;
    char buf[1 << 15];
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
        zs.next_out = reinterpret_cast<Bytef*>(buf);
        zs.avail_out = sizeof(buf);
        rc = inflate(&zs, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) {
            const std::string why = zs.msg ? zs.msg : fmt::format("zlib error {}", rc);
            inflateEnd(&zs);
            return Error::bad_file(path, fmt::format("not a valid gzip stream ({}) at compressed byte {}; expected "
                                                     "CLIP's bpe_simple_vocab_16e6.txt.gz", why, zs.total_in));
        }
        out.append(buf, sizeof(buf) - zs.avail_out);
        if (out.size() > kMaxVocabFileBytes) {
            inflateEnd(&zs);
            return Error::bad_file(path, fmt::format("decompresses to more than {} bytes; CLIP's vocabulary is "
                                                     "about 3 MB", kMaxVocabFileBytes));
        }
        if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) {
            inflateEnd(&zs);
            return Error::bad_file(path, "gzip stream is truncated (download incomplete?)");
        }
    }
    inflateEnd(&zs);
    return out;
}

// Python's str.split() on one line: runs of whitespace separate, ends ignored.
std::vector<std::string_view> split_ws(std::string_view line) {
    std::vector<std::string_view> parts;
    size_t i = 0;
    auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; };
    while (i < line.size()) {
        while (i < line.size() && ws(line[i])) ++i;
        const size_t s = i;
        while (i < line.size() && !ws(line[i])) ++i;
        if (i > s) parts.push_back(line.substr(s, i - s));
    }
    return parts;
}

std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> lines;
    size_t s = 0;
    for (;;) {
        const size_t e = text.find('\n', s);
        if (e == std::string_view::npos) {
            lines.push_back(text.substr(s));
            return lines;
        }
        lines.push_back(text.substr(s, e - s));
        s = e + 1;
    }
}

// Python's str.strip() for the ASCII whitespace a merges file can hold.
std::string_view strip_ascii(std::string_view s) {
    auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; };
    while (!s.empty() && ws(s.front())) s.remove_prefix(1);
    while (!s.empty() && ws(s.back())) s.remove_suffix(1);
    return s;
}

// The merge lines after the header, at most kMaxMerges, each exactly two symbols.
Result<std::vector<std::pair<std::string, std::string>>> parse_merges(const std::vector<std::string_view>& lines,
                                                                      std::string_view source) {
    std::vector<std::pair<std::string, std::string>> merges;
    for (size_t i = 1; i < lines.size() && merges.size() < CLIPTokenizer::kMaxMerges; ++i) {
        const auto parts = split_ws(lines[i]);
        if (parts.size() != 2)
            return Error::bad_file(std::string(source),
                                   fmt::format("line {}: expected a merge of two symbols separated by a space, found "
                                               "{} field(s) in \"{}\"",
                                               i + 1, parts.size(), lines[i].substr(0, 80)));
        if (!decode_utf8(parts[0], "merge").has_value() || !decode_utf8(parts[1], "merge").has_value())
            return Error::bad_file(std::string(source), fmt::format("line {}: merge is not valid UTF-8", i + 1));
        merges.emplace_back(std::string(parts[0]), std::string(parts[1]));
    }
    return merges;
}

// Case-insensitive (simple case folding, as the `regex` module's IGNORECASE) match of `lit` at t[i].
bool match_folded(std::u32string_view t, size_t i, std::u32string_view lit) {
    if (t.size() - i < lit.size()) return false;
    for (size_t k = 0; k < lit.size(); ++k)
        if (u_foldCase(UChar32(t[i + k]), U_FOLD_CASE_DEFAULT) != u_foldCase(UChar32(lit[k]), U_FOLD_CASE_DEFAULT))
            return false;
    return true;
}

// The pre-tokenizer regex of CLIPTokenizer, applied to cleaned, lowercased text.
std::vector<std::u32string_view> pre_tokenize(std::u32string_view t) {
    static constexpr std::u32string_view kContractions[] = {U"'s", U"'t", U"'re", U"'ve", U"'m", U"'ll", U"'d"};
    std::vector<std::u32string_view> out;
    size_t i = 0;
    while (i < t.size()) {
        const char32_t c = t[i];
        size_t len = 0;
        if (match_folded(t, i, U"<|startoftext|>")) {
            len = 15;
        } else if (match_folded(t, i, U"<|endoftext|>")) {
            len = 13;
        } else {
            for (std::u32string_view k : kContractions)
                if (match_folded(t, i, k)) {
                    len = k.size();
                    break;
                }
        }
        if (len == 0) {
            if (is_letter(c)) {
                len = 1;
                while (i + len < t.size() && is_letter(t[i + len])) ++len;
            } else if (is_number(c)) {
                len = 1;
            } else if (!is_white_space(c) && !is_dropped_by_pretokenizer(c)) {
                len = 1;
                while (i + len < t.size() && !is_white_space(t[i + len]) && !is_letter(t[i + len]) &&
                       !is_number(t[i + len]) && !is_dropped_by_pretokenizer(t[i + len]))
                    ++len;
            }
        }
        if (len == 0) {
            ++i;  // white space (or a character no alternative matches) separates tokens and is dropped
            continue;
        }
        out.push_back(t.substr(i, len));
        i += len;
    }
    return out;
}

// Splits UTF-8 text into its code points as separate UTF-8 strings.
std::vector<std::string> utf8_chars(const std::string& s) {
    std::vector<std::string> out;
    for (size_t i = 0; i < s.size();) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        const size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        out.push_back(s.substr(i, len));
        i += len;
    }
    return out;
}

}  // namespace

// -------------------------------------------------------------------------------------------------------------

Result<CLIPTokenizer> CLIPTokenizer::finish(CLIPTokenizer t, std::string_view source) {
    for (const auto& [b, sym] : byte_symbols()) t.byte_symbol_[b] = encode_utf8(std::u32string(1, sym));
    auto bos = t.encoder_.find(std::string(kBos));
    auto eos = t.encoder_.find(std::string(kEos));
    if (bos == t.encoder_.end() || eos == t.encoder_.end())
        return Error::bad_file(std::string(source), "vocabulary lacks <|startoftext|> or <|endoftext|>; not a CLIP "
                                                    "vocabulary");
    t.bos_id_ = bos->second;
    t.eos_id_ = eos->second;
    int32_t max_id = 0;
    for (const auto& [tok, id] : t.encoder_) max_id = std::max(max_id, id);
    t.decoder_.assign(size_t(max_id) + 1, std::string());
    for (const auto& [tok, id] : t.encoder_) t.decoder_[size_t(id)] = tok;
    return t;
}

Result<CLIPTokenizer> CLIPTokenizer::from_vocab_json_text(std::string_view vocab_json, std::string_view merges_txt,
                                                          std::string_view source) {
    return build_from_json(vocab_json, merges_txt, source, source);
}

Result<CLIPTokenizer> CLIPTokenizer::build_from_json(std::string_view vocab_json, std::string_view merges_txt,
                                                     std::string_view source, std::string_view merges_source) {
    CLIPTokenizer t;
    nlohmann::json j = nlohmann::json::parse(vocab_json, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded())
        return Error::bad_file(std::string(source), "vocab.json is not valid JSON; expected an object mapping "
                                                    "each token to its id");
    if (!j.is_object())
        return Error::bad_file(std::string(source), fmt::format("vocab.json holds a JSON {}; expected an object "
                                                                "mapping each token to its id", j.type_name()));
    for (auto it = j.begin(); it != j.end(); ++it) {
        const auto& v = it.value();
        if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > (int64_t(1) << 24))
            return Error::bad_file(std::string(source),
                                   fmt::format("vocab.json: token \"{}\" has id {}; expected an integer in [0, {}]",
                                               it.key().substr(0, 80), v.dump().substr(0, 40), int64_t(1) << 24));
        t.encoder_[it.key()] = int32_t(v.get<int64_t>());
    }
    // transformers reads merges.txt as read().strip().split("\n")[1 : 48895].
    EASEL_TRY_ASSIGN(auto merges, parse_merges(split_lines(strip_ascii(merges_txt)), merges_source));
    for (size_t r = 0; r < merges.size(); ++r)
        t.merge_ranks_[merges[r].first + " " + merges[r].second] = int32_t(r);  // a repeated pair keeps the last
    return finish(std::move(t), source);
}

Result<CLIPTokenizer> CLIPTokenizer::from_bpe_text(std::string_view bpe_txt, std::string_view source) {
    // simple_tokenizer.py: split("\n")[1 : 48895], no strip. The real file has far more lines than that; for a
    // shorter one, trailing empty lines are dropped here (CLIP would turn each into an empty token).
    CLIPTokenizer t;
    std::vector<std::string_view> lines = split_lines(bpe_txt);
    while (lines.size() > 1 && strip_ascii(lines.back()).empty()) lines.pop_back();
    EASEL_TRY_ASSIGN(auto merges, parse_merges(lines, source));
    int32_t id = 0;
    std::vector<std::string> symbols;
    for (const auto& [b, sym] : byte_symbols()) {
        (void)b;
        symbols.push_back(encode_utf8(std::u32string(1, sym)));
    }
    for (const auto& s : symbols) t.encoder_[s] = id++;
    for (const auto& s : symbols) t.encoder_[s + "</w>"] = id++;
    for (const auto& [l, r] : merges) t.encoder_[l + r] = id++;  // a token already present keeps the later id
    t.encoder_[std::string(kBos)] = id++;
    t.encoder_[std::string(kEos)] = id++;
    for (size_t r = 0; r < merges.size(); ++r) t.merge_ranks_[merges[r].first + " " + merges[r].second] = int32_t(r);
    return finish(std::move(t), source);
}

Result<CLIPTokenizer> CLIPTokenizer::from_vocab_json(const std::string& vocab_json_path,
                                                     const std::string& merges_path) {
    EASEL_TRY_ASSIGN(std::string vocab, read_file(vocab_json_path));
    EASEL_TRY_ASSIGN(std::string merges, read_file(merges_path));
    return build_from_json(vocab, merges, vocab_json_path, merges_path);
}

Result<CLIPTokenizer> CLIPTokenizer::from_bpe_gz(const std::string& gz_path) {
    EASEL_TRY_ASSIGN(std::string gz, read_file(gz_path));
    EASEL_TRY_ASSIGN(std::string text, gunzip(gz, gz_path));
    return from_bpe_text(text, gz_path);
}

Result<CLIPTokenizer> CLIPTokenizer::builtin() {
    const std::span<const uint8_t> gz = builtin_bpe_gz();
    const std::string source = "easel's built-in bpe_simple_vocab_16e6.txt.gz";
    EASEL_TRY_ASSIGN(std::string text, gunzip({reinterpret_cast<const char*>(gz.data()), gz.size()}, source));
    return from_bpe_text(text, source);
}

Result<CLIPTokenizer> CLIPTokenizer::load(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        for (const fs::path& dir : {fs::path(path), fs::path(path) / "tokenizer"}) {
            if (fs::exists(dir / "vocab.json", ec) && fs::exists(dir / "merges.txt", ec))
                return from_vocab_json((dir / "vocab.json").string(), (dir / "merges.txt").string());
        }
        if (fs::exists(fs::path(path) / "bpe_simple_vocab_16e6.txt.gz", ec))
            return from_bpe_gz((fs::path(path) / "bpe_simple_vocab_16e6.txt.gz").string());
        return Error::not_found("folder holds no CLIP vocabulary: expected vocab.json + merges.txt (directly or in "
                                "tokenizer/) or bpe_simple_vocab_16e6.txt.gz", path);
    }
    if (!fs::exists(path, ec)) return Error::not_found("no such vocabulary file", path);
    const std::string name = fs::path(path).filename().string();
    if (name.size() >= 3 && name.compare(name.size() - 3, 3, ".gz") == 0) return from_bpe_gz(path);
    if (name.size() >= 5 && name.compare(name.size() - 5, 5, ".json") == 0) {
        const fs::path merges = fs::path(path).parent_path() / "merges.txt";
        if (!fs::exists(merges, ec))
            return Error::not_found(fmt::format("vocab.json needs merges.txt beside it ({} is missing)",
                                                merges.string()), path);
        return from_vocab_json(path, merges.string());
    }
    return Error::unsupported("not a CLIP vocabulary: expected a folder with vocab.json + merges.txt, a vocab.json, "
                              "or bpe_simple_vocab_16e6.txt.gz", path);
}

// -------------------------------------------------------------------------------------------------------------

void CLIPTokenizer::bpe(const std::string& symbols_utf8, std::vector<std::string>& out) const {
    // The two specials are in transformers' bpe cache from the start: they come back whole, without "</w>".
    if (symbols_utf8 == kBos || symbols_utf8 == kEos) {
        out.push_back(symbols_utf8);
        return;
    }
    constexpr int32_t kNoMerge = std::numeric_limits<int32_t>::max();
    std::string key;
    auto rank_of = [&](const std::string& a, const std::string& b) {
        key.assign(a).append(" ").append(b);
        auto it = merge_ranks_.find(key);
        return it == merge_ranks_.end() ? kNoMerge : it->second;
    };
    std::vector<std::string> word = utf8_chars(symbols_utf8);
    word.back() += "</w>";
    // rank[i] is the merge rank of (word[i], word[i+1]). Each round merges the best-ranked pair everywhere,
    // left to right without overlap (transformers' CLIPTokenizer.bpe), and looks up only the pairs it changed:
    // a round costs O(len) integer work, so a long word stays cheap.
    std::vector<int32_t> rank(word.size() - 1);
    for (size_t i = 0; i + 1 < word.size(); ++i) rank[i] = rank_of(word[i], word[i + 1]);
    std::vector<std::string> merged;
    std::vector<int32_t> old_index;  // for each symbol of `merged`: where it was in `word`, or -1 if new
    while (word.size() > 1) {
        const int32_t best = *std::min_element(rank.begin(), rank.end());
        if (best == kNoMerge) break;
        merged.clear();
        old_index.clear();
        for (size_t i = 0; i < word.size();) {
            if (i + 1 < word.size() && rank[i] == best) {  // ranks are unique per pair: this is the pair
                merged.push_back(word[i] + word[i + 1]);
                old_index.push_back(-1);
                i += 2;
            } else {
                merged.push_back(std::move(word[i]));
                old_index.push_back(int32_t(i));
                i += 1;
            }
        }
        std::vector<int32_t> next_rank(merged.size() - 1);
        for (size_t j = 0; j + 1 < merged.size(); ++j) {
            const bool kept = old_index[j] >= 0 && old_index[j + 1] == old_index[j] + 1;
            next_rank[j] = kept ? rank[size_t(old_index[j])] : rank_of(merged[j], merged[j + 1]);
        }
        word.swap(merged);
        rank.swap(next_rank);
    }
    for (auto& w : word) out.push_back(std::move(w));
}

Status CLIPTokenizer::tokenize_piece(std::string_view text, std::vector<std::string>& out) const {
    EASEL_TRY_ASSIGN(std::u32string t, decode_utf8(text, "prompt"));
    const std::u32string clean = to_lower(clip_whitespace_clean(ftfy_fix_text(t)));
    for (std::u32string_view word : pre_tokenize(clean)) {
        if (word.size() > kMaxWordChars)
            return Error::invalid_argument(fmt::format("prompt holds a single word of {} characters; the tokenizer "
                                                       "accepts at most {} (BPE time grows with its square)",
                                                       word.size(), kMaxWordChars), "prompt");
        std::string symbols;
        for (unsigned char b : encode_utf8(word)) symbols += byte_symbol_[b];
        bpe(symbols, out);
    }
    return ok();
}

Result<std::vector<std::string>> CLIPTokenizer::tokenize(std::string_view text) const {
    if (text.size() > kMaxTextBytes)
        return Error::invalid_argument(fmt::format("prompt is {} bytes; at most {} are accepted", text.size(),
                                                   kMaxTextBytes), "prompt");
    // PreTrainedTokenizer.tokenize: literal special tokens are split out first (exact, case-sensitive) and the
    // text between them is tokenized piece by piece; neither side is stripped (lstrip/rstrip are False).
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < text.size()) {
        const size_t a = text.find(kBos, pos), b = text.find(kEos, pos);
        const size_t next = std::min(a, b);
        const size_t end = next == std::string_view::npos ? text.size() : next;
        if (end > pos) EASEL_TRY(tokenize_piece(text.substr(pos, end - pos), out));
        if (next == std::string_view::npos) break;
        const std::string_view special = next == a ? kBos : kEos;
        out.emplace_back(special);
        pos = next + special.size();
    }
    return out;
}

Result<std::vector<int32_t>> CLIPTokenizer::encode(std::string_view text) const {
    std::vector<int32_t> ids;
    auto bpe_part = [&](std::string_view part) -> Status {
        EASEL_TRY_ASSIGN(std::vector<std::string> tokens, tokenize(part));
        for (const auto& tok : tokens) {
            auto it = encoder_.find(tok);
            ids.push_back(it == encoder_.end() ? unk_id() : it->second);
        }
        return ok();
    };
    if (split_tokens_.empty()) {
        EASEL_TRY(bpe_part(text));
        return ids;
    }
    if (text.size() > kMaxTextBytes)
        return Error::invalid_argument(fmt::format("prompt of {} bytes; at most {}", text.size(), kMaxTextBytes), "prompt");
    size_t pos = 0;
    while (pos <= text.size()) {
        // The earliest split token from here (the longest one at that place).
        size_t best = std::string_view::npos, best_len = 0;
        int32_t best_id = 0;
        for (const auto& [tok, id] : split_tokens_) {
            if (tok.empty()) continue;
            const size_t at = text.find(tok, pos);
            if (at != std::string_view::npos && (at < best || (at == best && tok.size() > best_len))) {
                best = at;
                best_len = tok.size();
                best_id = id;
            }
        }
        if (best == std::string_view::npos) {
            EASEL_TRY(bpe_part(text.substr(pos)));
            break;
        }
        EASEL_TRY(bpe_part(text.substr(pos, best - pos)));
        ids.push_back(best_id);
        pos = best + best_len;
    }
    return ids;
}

Result<std::vector<int32_t>> CLIPTokenizer::encode_with_specials(std::string_view text) const {
    EASEL_TRY_ASSIGN(std::vector<int32_t> ids, encode(text));
    ids.insert(ids.begin(), bos_id_);
    ids.push_back(eos_id_);
    return ids;
}

Result<std::vector<int32_t>> CLIPTokenizer::encode_padded(std::string_view text, int32_t pad_id,
                                                          int context_length) const {
    if (context_length < 2)
        return Error::invalid_argument(fmt::format("context length {} leaves no room for BOS and EOS",
                                                   context_length), "context_length");
    EASEL_TRY_ASSIGN(std::vector<int32_t> ids, encode(text));
    if (ids.size() > size_t(context_length - 2)) ids.resize(size_t(context_length - 2));
    ids.insert(ids.begin(), bos_id_);
    ids.push_back(eos_id_);
    ids.resize(size_t(context_length), pad_id);
    return ids;
}

std::string CLIPTokenizer::decode(std::span<const int32_t> ids) const {
    std::unordered_map<std::string, unsigned char> back;
    for (int b = 0; b < 256; ++b) back[byte_symbol_[b]] = static_cast<unsigned char>(b);
    std::string bytes;
    for (int32_t id : ids) {
        if (id < 0 || size_t(id) >= decoder_.size()) continue;
        std::string tok = decoder_[size_t(id)];
        if (tok == kBos || tok == kEos) {  // not made of byte symbols: kept as text
            bytes += tok;
            continue;
        }
        const bool word_end = tok.size() >= 4 && tok.compare(tok.size() - 4, 4, "</w>") == 0;
        if (word_end) tok.resize(tok.size() - 4);
        for (const std::string& ch : utf8_chars(tok)) {
            auto it = back.find(ch);
            if (it != back.end()) bytes += char(it->second);
        }
        if (word_end) bytes += ' ';
    }
    // A character cut between tokens becomes U+FFFD, like bytes.decode(errors="replace").
    std::string text;
    const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
    for (size_t i = 0; i < bytes.size();) {
        const size_t len = s[i] < 0x80 ? 1 : s[i] < 0xE0 ? 2 : s[i] < 0xF0 ? 3 : 4;
        const bool valid = i + len <= bytes.size() && decode_utf8(std::string_view(bytes).substr(i, len), "").has_value();
        if (valid) {
            text.append(bytes, i, len);
            i += len;
        } else {
            text += "\xEF\xBF\xBD";
            i += 1;
        }
    }
    const size_t b = text.find_first_not_of(' '), e = text.find_last_not_of(' ');
    return b == std::string::npos ? std::string() : text.substr(b, e - b + 1);
}

std::optional<int32_t> CLIPTokenizer::token_to_id(std::string_view token) const {
    auto it = encoder_.find(std::string(token));
    if (it == encoder_.end()) return std::nullopt;
    return it->second;
}

// -------------------------------------------------------------------------------------------------------------

std::string VocabSource::describe() const {
    return is_builtin() ? "built-in CLIP vocabulary (OpenAI's bpe_simple_vocab_16e6.txt.gz, MIT licence)"
                        : fmt::format("{} ({})", path, origin);
}

Result<CLIPTokenizer> VocabSource::load() const {
    return is_builtin() ? CLIPTokenizer::builtin() : CLIPTokenizer::load(path);
}

Result<VocabSource> find_vocab(const std::string& explicit_path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    // A folder counts when CLIPTokenizer::load would find a vocabulary in it.
    auto usable = [&](const fs::path& p) {
        if (fs::is_directory(p, ec))
            return (fs::exists(p / "vocab.json", ec) && fs::exists(p / "merges.txt", ec)) ||
                   (fs::exists(p / "tokenizer" / "vocab.json", ec) && fs::exists(p / "tokenizer" / "merges.txt", ec)) ||
                   fs::exists(p / "bpe_simple_vocab_16e6.txt.gz", ec);
        return fs::is_regular_file(p, ec);
    };
    constexpr const char* kExpected = "expected a folder with vocab.json + merges.txt, a vocab.json, or "
                                      "bpe_simple_vocab_16e6.txt.gz";
    if (!explicit_path.empty()) {
        if (usable(explicit_path)) return VocabSource{explicit_path, "--vocab"};
        return Error::not_found(fmt::format("--vocab names nothing usable: {}", kExpected), explicit_path);
    }
    if (const char* env = std::getenv("EASEL_VOCAB"); env && *env) {
        if (usable(env)) return VocabSource{env, "EASEL_VOCAB"};
        return Error::not_found(fmt::format("EASEL_VOCAB names nothing usable: {}", kExpected), env);
    }
    return VocabSource{"", "built-in"};
}

}  // namespace easel::clip
