#include "pipeline/provenance.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include <fmt/format.h>

#include "io/file_hash.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "io/xmp.h"

namespace easel {

namespace fs = std::filesystem;

std::string provenance_xmp(const Provenance& p) {
    XmpFields f = {{"Iptc4xmpExt:DigitalSourceType", std::string(kIptcTrainedAlgorithmicMedia)}, {"xmp:CreatorTool", p.generator}};
    if (!p.model.empty()) f.emplace_back("easel:Model", p.model);
    if (!p.model_hash.empty()) f.emplace_back("easel:ModelHash", p.model_hash);
    f.emplace_back("easel:ModelLicense", p.license.empty() ? "unknown" : p.license);
    if (!p.lora_hashes.empty()) f.emplace_back("easel:LoraHashes", p.lora_hashes);
    if (!p.watermark.empty()) f.emplace_back("easel:Watermark", p.watermark);
    f.emplace_back("xmpRights:UsageTerms",
                   p.license.empty() ? "Made by a trained model (AI-generated) whose licence easel could not tell."
                                     : fmt::format("Made by a trained model (AI-generated) under the model's licence: {}.", p.license));
    return build_xmp(f);
}

TextChunks image_metadata(const std::string& infotext, const Provenance& p) {
    return {{"parameters", infotext}, {std::string(kXmpKey), provenance_xmp(p)}};
}

namespace {

// `license:` (or `license_name:` when it is "other") in a model card's YAML front matter.
std::string card_license(const fs::path& readme) {
    std::ifstream in(readme);
    std::string line;
    if (!in || !std::getline(in, line) || line.rfind("---", 0) != 0) return {};
    std::string license, name;
    auto value = [](std::string v) {
        while (!v.empty() && (v.back() == ' ' || v.back() == '\r')) v.pop_back();
        size_t i = 0;
        while (i < v.size() && v[i] == ' ') ++i;
        v = v.substr(i);
        if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) v = v.substr(1, v.size() - 2);
        return v;
    };
    for (int n = 0; n < 200 && std::getline(in, line); ++n) {
        if (line.rfind("---", 0) == 0) break;
        if (line.rfind("license:", 0) == 0) license = value(line.substr(8));
        if (line.rfind("license_name:", 0) == 0) name = value(line.substr(13));
    }
    return license == "other" && !name.empty() ? name : license;
}

}  // namespace

std::string detect_model_license(const std::string& path) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) return card_license(fs::path(path) / "README.md");
    const std::string ext = fs::path(path).extension().string();
    std::map<std::string, std::string> meta;
    if (ext == ".safetensors") {
        if (auto w = read_safetensors(path)) meta = w->metadata;
        for (const char* k : {"modelspec.license", "license"})
            if (auto it = meta.find(k); it != meta.end() && !it->second.empty()) return it->second;
    } else if (ext == ".gguf") {
        if (auto w = read_gguf(path)) meta = w->metadata;
        if (auto it = meta.find("general.license"); it != meta.end() && !it->second.empty()) return it->second;
    }
    return card_license(fs::path(path).parent_path() / "README.md");
}

std::string default_hash_cache_file() {
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return (fs::path(x) / "easel/model-hashes.tsv").string();
    if (const char* h = std::getenv("HOME"); h && *h) return (fs::path(h) / ".cache/easel/model-hashes.tsv").string();
    return {};
}

Result<std::string> model_short_hash(const std::string& path, const std::string& cache_file) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) return std::string();
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return Error::not_found("no such model file", path);
    const std::string abs = fs::absolute(path, ec).string();
    const std::string key = fmt::format("{}\t{}\t{}", int64_t(st.st_size), int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec, abs);
    static std::mutex mu;
    std::lock_guard<std::mutex> lk(mu);
    if (!cache_file.empty()) {
        std::ifstream in(cache_file);
        std::string line, found;
        while (std::getline(in, line))  // the last line for this file wins
            if (line.size() > 65 && line[64] == '\t' && line.compare(65, std::string::npos, key) == 0) found = line.substr(0, 64);
        if (!found.empty()) return found.substr(0, 10);
    }
    EASEL_TRY_ASSIGN(std::string sha, sha256_file(path));
    if (!cache_file.empty()) {
        fs::create_directories(fs::path(cache_file).parent_path(), ec);
        std::ofstream out(cache_file, std::ios::app);
        out << sha << '\t' << key << '\n';  // one short append: concurrent writers do not interleave lines
    }
    return sha.substr(0, 10);
}

}  // namespace easel
