#include "io/keymap_key_list.h"

#include <cstdio>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

namespace easel {
namespace {

constexpr size_t kMaxKeyListBytes = size_t(64) << 20;
constexpr size_t kMaxTensors = 1 << 20;

}  // namespace

Tensor shape_only_tensor(const Shape& shape, DType dtype) {
    // One 16-byte zero block serves every placeholder of every dtype (the widest element is 8 bytes).
    static const std::shared_ptr<void> zero(new uint64_t[2]{0, 0}, [](uint64_t* p) { delete[] p; });
    Shape strides = shape;
    for (int i = 0; i < strides.rank(); ++i) strides[i] = 0;
    return Tensor::wrap_strided(zero.get(), shape, strides, dtype, zero);
}

Result<WeightSet> parse_key_list(std::string_view json_text, const std::string& source) {
    nlohmann::json j = nlohmann::json::parse(json_text.begin(), json_text.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Error::bad_file(source, "not a JSON object");
    auto fmt_it = j.find("format");
    if (fmt_it == j.end() || !fmt_it->is_string() || fmt_it->get<std::string>() != "easel-key-list-1")
        return Error::bad_file(source, "\"format\" is not \"easel-key-list-1\"");
    auto tensors = j.find("tensors");
    if (tensors == j.end() || !tensors->is_array()) return Error::bad_file(source, "\"tensors\" is not a list");
    if (tensors->size() > kMaxTensors) return Error::bad_file(source, fmt::format("more than {} tensors", kMaxTensors));
    WeightSet w;
    w.source = source;
    for (size_t i = 0; i < tensors->size(); ++i) {
        const nlohmann::json& e = (*tensors)[i];
        if (!e.is_array() || e.size() < 2 || !e[0].is_string() || !e[1].is_array() || e[1].size() > size_t(kMaxRank))
            return Error::bad_file(source, fmt::format("tensors[{}]: expected [name, [dims...]] (optionally dtype)", i));
        Shape shape;
        for (const nlohmann::json& d : e[1]) {
            if (!d.is_number_integer() || d.get<int64_t>() < 0 || d.get<int64_t>() > (int64_t(1) << 32))
                return Error::bad_file(source, fmt::format("tensors[{}]: dims must be integers in 0..2^32", i));
            shape.push_back(d.get<int64_t>());
        }
        DType dtype = DType::F32;
        if (e.size() >= 3 && e[2].is_string()) {
            auto dt = dtype_from_name(e[2].get<std::string>());
            if (!dt) return Error::bad_file(source, fmt::format("tensors[{}]: unknown dtype '{}'", i, e[2].get<std::string>()));
            dtype = *dt;
        }
        EASEL_TRY(w.add(e[0].get<std::string>(), shape_only_tensor(shape, dtype)));
    }
    if (auto md = j.find("metadata"); md != j.end() && md->is_object())
        for (auto it = md->begin(); it != md->end(); ++it)
            if (it.value().is_string()) w.metadata[it.key()] = it.value().get<std::string>();
    return w;
}

Result<WeightSet> read_key_list_file(const std::string& path) {
    // gzread reads plain files transparently, so one path serves .json and .json.gz.
    gzFile f = gzopen(path.c_str(), "rb");
    if (!f) return Error::io("cannot open the key list", path);
    std::unique_ptr<gzFile_s, int (*)(gzFile)> guard(f, gzclose);
    std::string text;
    char buf[1 << 16];
    for (;;) {
        const int n = gzread(f, buf, sizeof buf);
        if (n < 0) return Error::bad_file(path, "corrupt gzip data");
        if (n == 0) break;
        text.append(buf, size_t(n));
        if (text.size() > kMaxKeyListBytes)
            return Error::bad_file(path, fmt::format("more than {} bytes uncompressed; not a key list", kMaxKeyListBytes));
    }
    return parse_key_list(text, path);
}

std::string write_key_list(const WeightSet& w, std::string_view source) {
    nlohmann::json tensors = nlohmann::json::array();
    for (const std::string& n : w.names()) {
        const Tensor* t = w.find(n);
        tensors.push_back({n, t->shape().to_vector(), std::string(dtype_name(t->dtype()))});
    }
    nlohmann::json j = {{"format", "easel-key-list-1"}, {"source", std::string(source)}, {"tensors", tensors}};
    return j.dump();
}

}  // namespace easel
