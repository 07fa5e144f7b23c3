#include "common/clip_vocab_files.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <zlib.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace easel::testing {
namespace {

std::string utf8(uint32_t cp) {
    std::string s;
    if (cp < 0x80) {
        s += char(cp);
    } else {  // every byte symbol is below U+0800
        s += char(0xC0 | (cp >> 6));
        s += char(0x80 | (cp & 0x3F));
    }
    return s;
}

// CLIP's bytes_to_unicode, in its order: the printable Latin-1 bytes map to themselves, the other 68 to 256 + n.
std::vector<std::string> byte_symbols() {
    std::vector<int> bs;
    for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
    for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
    for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
    std::vector<uint32_t> cs(bs.begin(), bs.end());
    std::vector<bool> seen(256, false);
    for (int b : bs) seen[b] = true;
    int n = 0;
    for (int b = 0; b < 256; ++b)
        if (!seen[b]) cs.push_back(256 + n++);
    std::vector<std::string> out;
    for (uint32_t c : cs) out.push_back(utf8(c));
    return out;
}

}  // namespace

Status write_clip_tokenizer_folder(const std::string& gz_path, const std::string& dir) {
    gzFile f = gzopen(gz_path.c_str(), "rb");
    if (!f) return Error::not_found("cannot open", gz_path);
    std::string text;
    char buf[1 << 16];
    int got;
    while ((got = gzread(f, buf, sizeof buf)) > 0) text.append(buf, size_t(got));
    gzclose(f);
    if (got < 0) return Error::bad_file(gz_path, "not a readable gzip file");
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    constexpr size_t kMerges = 49152 - 256 - 2;
    if (lines.size() < kMerges + 1) return Error::bad_file(gz_path, fmt::format("only {} lines", lines.size()));

    std::vector<std::string> vocab = byte_symbols();
    for (size_t i = 0, n = vocab.size(); i < n; ++i) vocab.push_back(vocab[i] + "</w>");
    std::string merges = "#version: 0.2\n";
    for (size_t i = 1; i <= kMerges; ++i) {
        const std::string& m = lines[i];
        const size_t sp = m.find(' ');
        if (sp == std::string::npos) return Error::bad_file(gz_path, fmt::format("line {} is not a merge", i + 1));
        vocab.push_back(m.substr(0, sp) + m.substr(sp + 1));
        merges += m + "\n";
    }
    vocab.push_back("<|startoftext|>");
    vocab.push_back("<|endoftext|>");
    nlohmann::json j = nlohmann::json::object();
    for (size_t i = 0; i < vocab.size(); ++i) j[vocab[i]] = i;

    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return Error::io(fmt::format("cannot create: {}", ec.message()), dir);
    std::ofstream(std::filesystem::path(dir) / "vocab.json", std::ios::binary) << j.dump();
    std::ofstream(std::filesystem::path(dir) / "merges.txt", std::ios::binary) << merges;
    return ok();
}

}  // namespace easel::testing
