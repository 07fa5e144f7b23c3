#include "io/model_file.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "io/gguf.h"
#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "io/torch_checkpoint.h"

namespace easel {

std::string_view weight_format_name(WeightFormat f) {
    switch (f) {
        case WeightFormat::Safetensors: return "safetensors";
        case WeightFormat::Gguf: return "GGUF";
        case WeightFormat::TorchZip: return "PyTorch zip checkpoint";
        case WeightFormat::TorchLegacy: return "PyTorch legacy checkpoint";
        case WeightFormat::Unknown: return "unknown";
    }
    return "unknown";
}

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
    if (s.size() < suffix.size()) return false;
    std::string tail(s.substr(s.size() - suffix.size()));
    std::transform(tail.begin(), tail.end(), tail.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return tail == suffix;
}

}  // namespace

WeightFormat sniff_weight_format(const uint8_t* data, size_t size, std::string_view path) {
    if (size >= 4 && std::memcmp(data, "GGUF", 4) == 0) return WeightFormat::Gguf;
    if (size >= 4 && data[0] == 'P' && data[1] == 'K' &&
        ((data[2] == 3 && data[3] == 4) || (data[2] == 5 && data[3] == 6)))
        return WeightFormat::TorchZip;
    if (size >= 2 && data[0] == 0x80 && data[1] >= 2 && data[1] <= 5) return WeightFormat::TorchLegacy;
    if (size >= 9) {
        uint64_t n;
        std::memcpy(&n, data, 8);
        if (n >= 2 && n <= size - 8 && data[8] == '{') return WeightFormat::Safetensors;
    }
    if (ends_with(path, ".safetensors")) return WeightFormat::Safetensors;
    if (ends_with(path, ".gguf")) return WeightFormat::Gguf;
    for (const char* ext : {".ckpt", ".pt", ".pth", ".bin"})
        if (ends_with(path, ext)) return WeightFormat::TorchZip;
    return WeightFormat::Unknown;
}

Result<WeightSet> read_weights(const std::string& path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
        if (std::filesystem::exists(std::filesystem::path(path) / "model_index.json", ec))
            return Error::invalid_argument("is a diffusers folder, not a weight file; open it as a folder "
                                           "(open_diffusers_folder) to load its components", path);
        return Error::io("is a directory, expected a weight file", path);
    }
    EASEL_TRY_ASSIGN(std::shared_ptr<const MappedFile> f, MappedFile::open(path));
    switch (sniff_weight_format(f->data(), f->size(), path)) {
        case WeightFormat::Safetensors: return read_safetensors_bytes(f->data(), f->size(), f, path);
        case WeightFormat::Gguf: return read_gguf_bytes(f->data(), f->size(), f, path);
        case WeightFormat::TorchZip:
        case WeightFormat::TorchLegacy: return read_torch_checkpoint_bytes(f->data(), f->size(), f, path);
        case WeightFormat::Unknown: break;
    }
    std::string head;
    for (size_t i = 0; i < std::min<size_t>(f->size(), 8); ++i) head += fmt::format("{:02x} ", f->data()[i]);
    return Error::unsupported(fmt::format("not a recognised weight file (first bytes: {}); expected safetensors, "
                                          "GGUF or a PyTorch checkpoint (.ckpt/.pt/.pth/.bin)",
                                          head.empty() ? "none, the file is empty" : head.substr(0, head.size() - 1)),
                              path);
}

std::optional<std::string> read_small_text_file(const std::string& path, size_t max_bytes) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec) || std::filesystem::file_size(path, ec) > max_bytes) return std::nullopt;
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace easel
