#include "models/t5/tokenizer.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <sentencepiece_processor.h>

#include "models/t5/builtin_spiece.h"

namespace easel {
namespace fs = std::filesystem;

struct T5Tokenizer::Impl {
    sentencepiece::SentencePieceProcessor sp;
};

T5Tokenizer::T5Tokenizer() = default;
T5Tokenizer::~T5Tokenizer() = default;
T5Tokenizer::T5Tokenizer(T5Tokenizer&&) noexcept = default;
T5Tokenizer& T5Tokenizer::operator=(T5Tokenizer&&) noexcept = default;

bool T5Tokenizer::loaded() const { return impl_ != nullptr; }

Result<T5Tokenizer> T5Tokenizer::load(const std::string& path) {
    std::error_code ec;
    fs::path file = path;
    if (fs::is_directory(file, ec)) file /= "spiece.model";
    if (!fs::is_regular_file(file, ec))
        return Error::not_found(fs::is_directory(path, ec) ? "no spiece.model in the T5 tokenizer folder"
                                                           : "no such T5 tokenizer file (spiece.model)",
                                path);
    const auto size = fs::file_size(file, ec);
    if (ec || size > (64u << 20)) return Error::bad_file(file.string(), "not a SentencePiece model of at most 64 MiB");
    std::ifstream in(file, std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    if (!in.good() && !in.eof()) return Error::io(fmt::format("cannot read {}", file.string()));
    return from_bytes(bytes.str(), file.string());
}

Result<T5Tokenizer> T5Tokenizer::from_bytes(std::string_view bytes, const std::string& source) {
    T5Tokenizer t;
    t.impl_ = std::make_unique<Impl>();
    t.source_ = source;
    const auto st = t.impl_->sp.LoadFromSerializedProto(bytes);
    if (!st.ok()) return Error::bad_file(source, fmt::format("not a SentencePiece model: {}", st.ToString()));
    // T5's special pieces: <pad> 0, </s> 1, <unk> 2 in every T5 spiece.model; read them from the model itself.
    const int eos = t.impl_->sp.PieceToId("</s>"), pad = t.impl_->sp.PieceToId("<pad>");
    const int unk = t.impl_->sp.unk_id();
    if (eos < 0 || pad < 0 || (eos == unk && t.impl_->sp.IdToPiece(eos) != "</s>") ||
        (pad == unk && t.impl_->sp.IdToPiece(pad) != "<pad>"))
        return Error::bad_file(source, "a SentencePiece model without T5's </s> and <pad> pieces");
    t.eos_id_ = eos;
    t.pad_id_ = pad;
    const int space = t.impl_->sp.PieceToId("\u2581");
    if (space >= 0 && space != unk) t.space_id_ = space;
    return t;
}

Result<T5Tokenizer> T5Tokenizer::builtin() {
    const std::span<const uint8_t> b = t5::builtin_spiece_model();
    return from_bytes(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), "easel's built-in T5 vocabulary");
}

namespace {
// Whether the prompt's last character is one that T5's normalizer turns into a space, so that T5TokenizerFast
// ends its pieces with a lone "▁" (sentencepiece strips it). The set was measured: every code point up to
// U+3000 and the other Unicode spaces, appended to "a cat", through T5TokenizerFast with T5 v1.1's tokenizer.json
// (tools/reference/make_t5_spiece.py notes it).
bool ends_in_t5_space(std::string_view s) {
    if (s.empty()) return false;
    size_t i = s.size() - 1;
    while (i > 0 && (uint8_t(s[i]) & 0xC0) == 0x80) --i;  // back to the last character's first byte
    const auto* p = reinterpret_cast<const uint8_t*>(s.data() + i);
    const size_t n = s.size() - i;
    uint32_t cp = 0;
    if (n == 1) cp = p[0];
    else if (n == 2 && (p[0] & 0xE0) == 0xC0) cp = (uint32_t(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
    else if (n == 3 && (p[0] & 0xF0) == 0xE0) cp = (uint32_t(p[0] & 0x0F) << 12) | (uint32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    else return false;
    switch (cp) {
        case 0x09: case 0x0A: case 0x0C: case 0x0D: case 0x20: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
        case 0x202F: case 0x205F: case 0x2581: case 0x3000: case 0xFEFF:
            return true;
        default:
            return cp >= 0x2000 && cp <= 0x200F;
    }
}
}  // namespace

std::vector<int> T5Tokenizer::pieces(std::string_view text) const {
    std::vector<int> out;
    if (!impl_ || text.empty()) return out;
    if (!impl_->sp.Encode(text, &out).ok()) out.clear();  // only on an unloaded model; load() made sure it is not
    if (space_id_ >= 0 && ends_in_t5_space(text)) out.push_back(space_id_);
    return out;
}

std::vector<int32_t> T5Tokenizer::encode(std::string_view text, int max_length) const {
    const std::vector<int> p = pieces(text);
    std::vector<int32_t> ids;
    if (max_length < 1) return ids;
    const size_t keep = std::min(p.size(), size_t(max_length - 1));
    ids.reserve(size_t(max_length));
    for (size_t i = 0; i < keep; ++i) ids.push_back(int32_t(p[i]));
    ids.push_back(eos_id_);
    while (int(ids.size()) < max_length) ids.push_back(pad_id_);
    return ids;
}

int T5Tokenizer::count(std::string_view text) const { return int(pieces(text).size()); }

int32_t T5Tokenizer::id_limit() const { return impl_ ? int32_t(impl_->sp.GetPieceSize()) : 0; }

}  // namespace easel
