#include "models/t5/tokenizer.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <sentencepiece_processor.h>

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
    return t;
}

std::vector<int32_t> T5Tokenizer::encode(std::string_view text, int max_length) const {
    std::vector<int> pieces;
    if (impl_ && !text.empty()) {
        const auto st = impl_->sp.Encode(text, &pieces);
        if (!st.ok()) pieces.clear();  // only on an unloaded model; load() made sure it is not
    }
    std::vector<int32_t> ids;
    if (max_length < 1) return ids;
    const size_t keep = std::min(pieces.size(), size_t(max_length - 1));
    ids.reserve(size_t(max_length));
    for (size_t i = 0; i < keep; ++i) ids.push_back(int32_t(pieces[i]));
    ids.push_back(eos_id_);
    while (int(ids.size()) < max_length) ids.push_back(pad_id_);
    return ids;
}

int T5Tokenizer::count(std::string_view text) const {
    std::vector<int> pieces;
    if (impl_ && !text.empty() && !impl_->sp.Encode(text, &pieces).ok()) return 0;
    return int(pieces.size());
}

int32_t T5Tokenizer::id_limit() const { return impl_ ? int32_t(impl_->sp.GetPieceSize()) : 0; }

}  // namespace easel
