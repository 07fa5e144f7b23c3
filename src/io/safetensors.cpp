#include "io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "io/mapped_file.h"

namespace easel {

static_assert(std::endian::native == std::endian::little, "the readers assume a little-endian host");

namespace {

using Json = nlohmann::json;

struct DTypeName {
    std::string_view name;
    DType dtype;
};
constexpr DTypeName kDTypeNames[] = {
    {"F64", DType::F64}, {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16},
    {"I64", DType::I64}, {"I32", DType::I32}, {"I16", DType::I16}, {"I8", DType::I8},
    {"U64", DType::U64}, {"U32", DType::U32}, {"U16", DType::U16}, {"U8", DType::U8},
    {"BOOL", DType::Bool},
};

std::optional<DType> dtype_from_st(std::string_view s) {
    for (const auto& d : kDTypeNames)
        if (d.name == s) return d.dtype;
    return std::nullopt;
}

std::string_view st_from_dtype(DType t) {
    for (const auto& d : kDTypeNames)
        if (d.dtype == t) return d.name;
    return "?";
}

uint64_t load_le_u64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

// One validated header entry.
struct Entry {
    std::string name;
    DType dtype;
    QuantType quant = QuantType::None;  // F8_E4M3 / F8_E5M2: one byte per element, kept as stored
    Shape shape;
    uint64_t begin;
    uint64_t end;
};

// A short, printable rendering of a JSON value for messages. Never recursive: dump() recurses once per nesting
// level, and a hostile header can nest millions deep (parsing and destroying are iterative in nlohmann).
std::string brief(const Json& v) {
    auto one = [](const Json& x) -> std::string {
        if (x.is_array()) return "[...]";
        if (x.is_object()) return "{...}";
        std::string s = x.dump(-1, ' ', true, Json::error_handler_t::replace);
        return s.size() > 40 ? s.substr(0, 37) + "..." : s;
    };
    if (v.is_object()) return fmt::format("an object of {} keys", v.size());
    if (!v.is_array()) return one(v);
    std::string s = "[";
    size_t i = 0;
    for (const Json& x : v) {
        if (i == 8) {
            s += ", ...";
            break;
        }
        s += (i++ ? ", " : "") + one(x);
    }
    return s + "]";
}

Result<Entry> parse_entry(const std::string& file, const std::string& name, const Json& v, uint64_t data_size) {
    auto bad = [&](const std::string& msg) { return Error::bad_file(file, fmt::format("tensor '{}': {}", name, msg)); };
    if (!v.is_object()) return bad(fmt::format("header entry is {}, expected an object with dtype, shape and data_offsets", brief(v)));
    Entry e;
    e.name = name;

    auto dt = v.find("dtype");
    if (dt == v.end() || !dt->is_string()) return bad("missing or non-string \"dtype\"");
    const std::string& dts = dt->get_ref<const std::string&>();
    if (auto d = dtype_from_st(dts)) {
        e.dtype = *d;
    } else if (dts == "F8_E4M3" || dts == "F8_E5M2") {
        e.dtype = DType::U8;
        e.quant = dts == "F8_E4M3" ? QuantType::F8_E4M3 : QuantType::F8_E5M2;
    } else if (dts.rfind("F8", 0) == 0) {
        return Error::unsupported(fmt::format("tensor '{}': dtype {} (8-bit float) is not supported; supported 8-bit "
                                              "floats: F8_E4M3, F8_E5M2", name, dts), file);
    } else {
        return bad(fmt::format("unknown dtype \"{}\"; expected one of F64 F32 F16 BF16 F8_E4M3 F8_E5M2 I64 I32 I16 "
                               "I8 U64 U32 U16 U8 BOOL", dts.substr(0, 40)));
    }

    auto sh = v.find("shape");
    if (sh == v.end() || !sh->is_array()) return bad("missing \"shape\" or not an array");
    if (sh->size() > size_t(kMaxRank))
        return Error::unsupported(fmt::format("tensor '{}': rank {} is above the supported {}", name, sh->size(), kMaxRank),
                                  file);
    uint64_t numel = 1;
    bool overflow = false;
    std::vector<uint64_t> udims;
    for (const Json& d : *sh) {
        if (!d.is_number_unsigned()) return bad(fmt::format("shape {} has a dimension that is not a non-negative integer", brief(*sh)));
        const uint64_t n = d.get<uint64_t>();
        if (n > uint64_t(INT64_MAX)) return bad(fmt::format("shape dimension {} is absurdly large", n));
        overflow |= __builtin_mul_overflow(numel, n, &numel);
        e.shape.push_back(int64_t(n));
        udims.push_back(n);
    }
    uint64_t nbytes = 0;
    overflow |= __builtin_mul_overflow(numel, uint64_t(dtype_size(e.dtype)), &nbytes);
    if (overflow || numel > uint64_t(INT64_MAX) || !dims_fit_int64(udims.data(), udims.size()))
        return bad(fmt::format("shape {} overflows 64 bits", brief(*sh)));

    auto off = v.find("data_offsets");
    if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
        return bad("\"data_offsets\" must be [begin, end] with non-negative integers");
    e.begin = (*off)[0].get<uint64_t>();
    e.end = (*off)[1].get<uint64_t>();
    if (e.begin > e.end) return bad(fmt::format("data_offsets [{}, {}] end before they begin", e.begin, e.end));
    if (e.end > data_size)
        return bad(fmt::format("data_offsets [{}, {}] run past the data section, which is {} bytes (truncated file?)",
                               e.begin, e.end, data_size));
    if (e.end - e.begin != nbytes)
        return bad(fmt::format("data_offsets [{}, {}] hold {} bytes but shape {} of {} needs {} bytes", e.begin, e.end,
                               e.end - e.begin, e.shape.to_string(), dts, nbytes));
    return e;
}

}  // namespace

Result<WeightSet> read_safetensors_bytes(const uint8_t* data, size_t size, std::shared_ptr<const void> keep_alive,
                                         const std::string& name) {
    if (size < 8)
        return Error::bad_file(name, fmt::format("file is {} bytes; a safetensors file starts with an 8-byte header "
                                                 "length", size));
    const uint64_t header_len = load_le_u64(data);
    if (header_len > kSafetensorsMaxHeaderBytes)
        return Error::bad_file(name, fmt::format("header length field says {} bytes, above the {} byte limit (not a "
                                                 "safetensors file?)", header_len, kSafetensorsMaxHeaderBytes));
    if (header_len > size - 8)
        return Error::bad_file(name, fmt::format("header length field says {} bytes but only {} bytes follow it "
                                                 "(truncated download, or not a safetensors file?)", header_len, size - 8));

    // nlohmann keeps the last of repeated keys silently; a repeated tensor name is a malformed file, so we
    // watch the top-level keys as they are parsed.
    std::unordered_set<std::string> seen;
    std::string duplicate;
    auto on_event = [&](int depth, Json::parse_event_t ev, Json& parsed) {
        if (ev == Json::parse_event_t::key && depth == 1 && duplicate.empty()) {
            const std::string& k = parsed.get_ref<const std::string&>();
            if (!seen.insert(k).second) duplicate = k;
        }
        return true;
    };
    const char* hb = reinterpret_cast<const char*>(data + 8);
    Json header = Json::parse(hb, hb + header_len, on_event, /*allow_exceptions=*/false);
    if (header.is_discarded())
        return Error::bad_file(name, fmt::format("header ({} bytes at offset 8) is not valid UTF-8 JSON", header_len));
    if (!header.is_object())
        return Error::bad_file(name, fmt::format("header is a JSON {}, expected an object of tensors", header.type_name()));
    if (!duplicate.empty())
        return Error::bad_file(name, fmt::format("tensor '{}': appears more than once in the header", duplicate));

    const uint64_t data_start = 8 + header_len;
    const uint64_t data_size = size - data_start;
    WeightSet out;
    out.source = name;
    std::vector<Entry> entries;
    entries.reserve(header.size());
    for (auto it = header.begin(); it != header.end(); ++it) {
        if (it.key() == "__metadata__") {
            if (!it->is_object())
                return Error::bad_file(name, "__metadata__ must be an object of string values");
            for (auto m = it->begin(); m != it->end(); ++m) {
                if (!m->is_string())
                    return Error::bad_file(name, fmt::format("__metadata__ key '{}' has value {}, expected a string",
                                                             m.key(), brief(*m)));
                out.metadata[m.key()] = m->get<std::string>();
            }
            continue;
        }
        EASEL_TRY_ASSIGN(Entry e, parse_entry(name, it.key(), *it, data_size));
        entries.push_back(std::move(e));
    }

    // Data order is file order (the JSON object itself comes back sorted by name); ties (empty tensors) by name.
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.name < b.name;
    });
    const Entry* prev = nullptr;
    for (const Entry& e : entries) {
        if (e.begin == e.end) continue;  // empty tensors occupy no bytes and cannot overlap
        if (prev != nullptr && e.begin < prev->end)
            return Error::bad_file(name, fmt::format("tensor '{}': data_offsets [{}, {}] overlap tensor '{}' at [{}, {}]",
                                                     e.name, e.begin, e.end, prev->name, prev->begin, prev->end));
        prev = &e;
    }

    auto owner = std::const_pointer_cast<void>(keep_alive);
    size_t copied = 0;
    for (const Entry& e : entries) {
        const uint8_t* p = data + data_start + e.begin;
        Tensor t;
        if (e.quant != QuantType::None) {
            t = e.shape.rank() == 0 ? Tensor::empty(e.shape, DType::F32)  // a scalar: decoded
                                    : Tensor::wrap_quantized(p, e.shape, e.quant, owner);
            if (e.shape.rank() == 0) t.data<float>()[0] = e.quant == QuantType::F8_E4M3 ? f8_e4m3_to_f32(*p) : f8_e5m2_to_f32(*p);
        } else if (reinterpret_cast<uintptr_t>(p) % dtype_size(e.dtype) != 0) {
            // Misaligned for its element type: typed loads through this pointer would be undefined behaviour.
            t = Tensor::empty(e.shape, e.dtype);
            if (e.end > e.begin) std::memcpy(t.raw(), p, size_t(e.end - e.begin));
            ++copied;
        } else {
            t = Tensor::wrap(const_cast<uint8_t*>(p), e.shape, e.dtype, owner);
        }
        EASEL_TRY(out.add(e.name, std::move(t)));
    }
    if (copied > 0)
        log_info("io", "{}: {} tensors were not aligned to their element size and were copied", name, copied);
    return out;
}

Result<WeightSet> read_safetensors(const std::string& path) {
    EASEL_TRY_ASSIGN(std::shared_ptr<const MappedFile> f, MappedFile::open(path));
    return read_safetensors_bytes(f->data(), f->size(), f, path);
}

Result<std::string> serialize_safetensors(const WeightSet& weights, const std::map<std::string, std::string>& metadata) {
    // fp8 tensors are written as stored; ggml's block types have no safetensors dtype and are written decoded.
    std::unordered_map<std::string, Tensor> ready;
    for (const std::string& n : weights.names()) {
        const Tensor& t = *weights.find(n);
        const bool f8 = t.quant() == QuantType::F8_E4M3 || t.quant() == QuantType::F8_E5M2;
        ready.emplace(n, t.quantized() && !f8 ? t.to(DType::F32) : t);
    }
    auto dtype_text = [](const Tensor& t) -> std::string_view {
        if (t.quant() == QuantType::F8_E4M3) return "F8_E4M3";
        if (t.quant() == QuantType::F8_E5M2) return "F8_E5M2";
        return st_from_dtype(t.dtype());
    };
    std::vector<std::string> order = weights.names();
    std::stable_sort(order.begin(), order.end(), [&](const std::string& a, const std::string& b) {
        const size_t sa = dtype_size(ready.at(a).dtype()), sb = dtype_size(ready.at(b).dtype());
        return sa != sb ? sa > sb : a < b;
    });
    std::map<std::string, std::string> meta = weights.metadata;
    for (const auto& [k, v] : metadata) meta[k] = v;

    auto quoted = [](const std::string& s) -> Result<std::string> {
        try {
            return Json(s).dump();
        } catch (const Json::exception&) {
            return Error::invalid_argument(fmt::format("name or metadata '{}' is not valid UTF-8", s));
        }
    };
    std::string header = "{";
    if (!meta.empty()) {
        header += "\"__metadata__\":{";
        bool first = true;
        for (const auto& [k, v] : meta) {
            EASEL_TRY_ASSIGN(std::string qk, quoted(k));
            EASEL_TRY_ASSIGN(std::string qv, quoted(v));
            header += fmt::format("{}{}:{}", first ? "" : ",", qk, qv);
            first = false;
        }
        header += "}";
    }
    uint64_t offset = 0;
    for (const std::string& n : order) {
        const Tensor& t = ready.at(n);
        EASEL_TRY_ASSIGN(std::string qn, quoted(n));
        std::string dims;
        for (int i = 0; i < t.rank(); ++i) dims += fmt::format("{}{}", i ? "," : "", t.size(i));
        header += fmt::format("{}{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
                              header.size() > 1 ? "," : "", qn, dtype_text(t), dims, offset,
                              offset + t.nbytes());
        offset += t.nbytes();
    }
    header += "}";
    header.append((8 - header.size() % 8) % 8, ' ');  // as the reference writer does: data starts 8-aligned

    std::string out;
    out.reserve(8 + header.size() + offset);
    const uint64_t n = header.size();
    out.append(reinterpret_cast<const char*>(&n), 8);
    out += header;
    for (const std::string& name : order) {
        const Tensor c = ready.at(name).contiguous();
        if (c.nbytes() > 0) out.append(reinterpret_cast<const char*>(c.raw()), c.nbytes());
    }
    return out;
}

Status write_safetensors(const std::string& path, const WeightSet& weights,
                         const std::map<std::string, std::string>& metadata) {
    EASEL_TRY_ASSIGN(std::string bytes, serialize_safetensors(weights, metadata));
    static std::atomic<unsigned> counter{0};
    const std::string tmp = fmt::format("{}.tmp-{}-{}", path, ::getpid(), counter++);
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return Error::io(fmt::format("cannot create temporary file {}: {}", tmp, std::strerror(errno)), path);
    auto fail = [&](const char* what) {
        const int e = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        return Error::io(fmt::format("{} {}: {}", what, tmp, std::strerror(e)), path);
    };
    size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return fail("cannot write");
        done += size_t(w);
    }
    if (::fsync(fd) != 0) return fail("cannot flush");
    if (::close(fd) != 0) {
        const int e = errno;
        ::unlink(tmp.c_str());
        return Error::io(fmt::format("cannot close {}: {}", tmp, std::strerror(e)), path);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int e = errno;
        ::unlink(tmp.c_str());
        return Error::io(fmt::format("cannot rename {} into place: {}", tmp, std::strerror(e)), path);
    }
    return ok();
}

}  // namespace easel
