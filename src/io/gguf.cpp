#include "io/gguf.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "io/gguf_dequant.h"
#include "io/mapped_file.h"

namespace easel {

namespace {

enum class GgufValue : uint32_t {
    U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9, U64 = 10,
    I64 = 11, F64 = 12,
};

// Bytes a value of a fixed-size type takes; 0 for string and array.
size_t value_size(uint32_t t) {
    switch (GgufValue(t)) {
        case GgufValue::U8: case GgufValue::I8: case GgufValue::Bool: return 1;
        case GgufValue::U16: case GgufValue::I16: return 2;
        case GgufValue::U32: case GgufValue::I32: case GgufValue::F32: return 4;
        case GgufValue::U64: case GgufValue::I64: case GgufValue::F64: return 8;
        default: return 0;
    }
}

constexpr uint32_t kMaxDims = 4;            // GGML_MAX_DIMS
// Metadata arrays are shown as text up to this size. Real ones (a tokenizer's tokens, merges and scores) stay
// within a few MB.
constexpr size_t kMaxArrayText = 16u << 20;
constexpr uint64_t kDefaultAlignment = 32;  // GGUF_DEFAULT_ALIGNMENT

// A bounds-checked little-endian cursor. Every read names the byte offset it failed at.
class Reader {
public:
    Reader(const uint8_t* data, size_t size, const std::string& file) : p_(data), size_(size), file_(file) {}

    size_t pos() const { return pos_; }
    size_t remaining() const { return size_ - pos_; }

    Error error(const std::string& msg) const { return Error::bad_file(file_, fmt::format("at byte {}: {}", pos_, msg)); }

    template <class T>
    Result<T> read(const char* what) {
        if (remaining() < sizeof(T))
            return error(fmt::format("file ends inside {} ({} bytes needed, {} left)", what, sizeof(T), remaining()));
        T v;
        std::memcpy(&v, p_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }

    Result<std::string> string(const char* what) {
        EASEL_TRY_ASSIGN(uint64_t n, read<uint64_t>(what));
        if (n > remaining())
            return Error::bad_file(file_, fmt::format("at byte {}: {} length is {} bytes but only {} bytes remain",
                                                      pos_ - 8, what, n, remaining()));
        std::string s(reinterpret_cast<const char*>(p_ + pos_), size_t(n));
        pos_ += size_t(n);
        return s;
    }

    Status skip(size_t n, const char* what) {
        if (n > remaining()) return error(fmt::format("file ends inside {}", what));
        pos_ += n;
        return ok();
    }

private:
    const uint8_t* p_;
    size_t size_;
    size_t pos_ = 0;
    const std::string& file_;
};

void append_json_string(std::string& out, std::string_view s) {
    out += '"';
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (uint8_t(c) < 0x20) {
            out += fmt::format("\\u{:04x}", int(uint8_t(c)));
        } else {
            out += c;
        }
    }
    out += '"';
}

// Reads one scalar of type `t` and appends its text.
Status append_scalar(Reader& r, uint32_t t, std::string& out) {
    switch (GgufValue(t)) {
        case GgufValue::U8: { EASEL_TRY_ASSIGN(auto v, r.read<uint8_t>("u8 value")); out += fmt::format("{}", v); break; }
        case GgufValue::I8: { EASEL_TRY_ASSIGN(auto v, r.read<int8_t>("i8 value")); out += fmt::format("{}", v); break; }
        case GgufValue::U16: { EASEL_TRY_ASSIGN(auto v, r.read<uint16_t>("u16 value")); out += fmt::format("{}", v); break; }
        case GgufValue::I16: { EASEL_TRY_ASSIGN(auto v, r.read<int16_t>("i16 value")); out += fmt::format("{}", v); break; }
        case GgufValue::U32: { EASEL_TRY_ASSIGN(auto v, r.read<uint32_t>("u32 value")); out += fmt::format("{}", v); break; }
        case GgufValue::I32: { EASEL_TRY_ASSIGN(auto v, r.read<int32_t>("i32 value")); out += fmt::format("{}", v); break; }
        case GgufValue::U64: { EASEL_TRY_ASSIGN(auto v, r.read<uint64_t>("u64 value")); out += fmt::format("{}", v); break; }
        case GgufValue::I64: { EASEL_TRY_ASSIGN(auto v, r.read<int64_t>("i64 value")); out += fmt::format("{}", v); break; }
        case GgufValue::F32: { EASEL_TRY_ASSIGN(auto v, r.read<float>("f32 value")); out += fmt::format("{}", v); break; }
        case GgufValue::F64: { EASEL_TRY_ASSIGN(auto v, r.read<double>("f64 value")); out += fmt::format("{}", v); break; }
        case GgufValue::Bool: { EASEL_TRY_ASSIGN(auto v, r.read<uint8_t>("bool value")); out += v ? "true" : "false"; break; }
        default: return r.error(fmt::format("internal: {} is not a scalar type", t));
    }
    return ok();
}

// Reads the value of key `key` (type already read) into its text form.
Result<std::string> read_value(Reader& r, const std::string& key, uint32_t type) {
    std::string out;
    if (type == uint32_t(GgufValue::String)) return r.string("string value");
    if (type == uint32_t(GgufValue::Array)) {
        EASEL_TRY_ASSIGN(uint32_t et, r.read<uint32_t>("array element type"));
        EASEL_TRY_ASSIGN(uint64_t count, r.read<uint64_t>("array length"));
        if (et == uint32_t(GgufValue::Array))
            return r.error(fmt::format("key '{}': arrays of arrays are not part of GGUF", key));
        const size_t es = et == uint32_t(GgufValue::String) ? 8 : value_size(et);
        if (es == 0) return r.error(fmt::format("key '{}': unknown array element type {}; expected 0..12", key, et));
        if (count > r.remaining() / es)
            return r.error(fmt::format("key '{}': array of {} elements cannot fit in the {} bytes that remain", key,
                                       count, r.remaining()));
        out += '[';
        for (uint64_t i = 0; i < count; ++i) {
            if (out.size() > kMaxArrayText) {
                // Still walk the rest (string lengths must be checked to find the next key), but show no more:
                // text for a huge u8 array would be 5x its size in the file.
                for (; i < count; ++i) {
                    if (et == uint32_t(GgufValue::String)) {
                        EASEL_TRY(r.string("array string"));
                    } else {
                        EASEL_TRY(r.skip(size_t(count - i) * es, "array"));
                        break;
                    }
                }
                return fmt::format("[array of {} elements of type {}, longer than {} bytes as text: not shown]", count,
                                   et, kMaxArrayText);
            }
            if (i) out += ", ";
            if (et == uint32_t(GgufValue::String)) {
                EASEL_TRY_ASSIGN(std::string s, r.string("array string"));
                append_json_string(out, s);
            } else {
                EASEL_TRY(append_scalar(r, et, out));
            }
        }
        out += ']';
        return out;
    }
    if (value_size(type) == 0) return r.error(fmt::format("key '{}': unknown value type {}; expected 0..12", key, type));
    EASEL_TRY(append_scalar(r, type, out));
    return out;
}

struct TensorInfo {
    std::string name;
    std::vector<int64_t> dims;  // PyTorch order
    const GgmlTypeInfo* type;
    uint64_t offset;
    uint64_t nbytes;
};

std::optional<DType> plain_dtype(GgmlType t) {
    switch (t) {
        case GgmlType::F32: return DType::F32;
        case GgmlType::F16: return DType::F16;
        case GgmlType::BF16: return DType::BF16;
        case GgmlType::F64: return DType::F64;
        case GgmlType::I8: return DType::I8;
        case GgmlType::I16: return DType::I16;
        case GgmlType::I32: return DType::I32;
        case GgmlType::I64: return DType::I64;
        default: return std::nullopt;
    }
}

}  // namespace

Result<WeightSet> read_gguf_bytes(const uint8_t* data, size_t size, std::shared_ptr<const void> keep_alive,
                                  const std::string& name) {
    Reader r(data, size, name);
    if (size < 4 || std::memcmp(data, "GGUF", 4) != 0)
        return Error::bad_file(name, "does not start with the GGUF magic bytes \"GGUF\"");
    EASEL_TRY(r.skip(4, "magic"));
    EASEL_TRY_ASSIGN(uint32_t version, r.read<uint32_t>("version"));
    if (version == 1)
        return Error::unsupported("GGUF version 1 (2023, 32-bit lengths) is not supported; re-convert the model "
                                  "with a current tool to get version 3", name);
    if (version != 2 && version != 3) {
        if ((version & 0xffff) == 0 && version != 0)
            return Error::unsupported(fmt::format("big-endian GGUF (version field reads {:#x}) is not supported",
                                                  version), name);
        return Error::unsupported(fmt::format("GGUF version {} is not supported; expected 2 or 3", version), name);
    }
    EASEL_TRY_ASSIGN(uint64_t n_tensors, r.read<uint64_t>("tensor count"));
    EASEL_TRY_ASSIGN(uint64_t n_kv, r.read<uint64_t>("key/value count"));
    // A key/value takes at least 13 bytes (8 key length + 4 type + 1 value), a tensor info at least 24.
    if (n_kv > r.remaining() / 13)
        return Error::bad_file(name, fmt::format("header claims {} key/values but only {} bytes follow", n_kv,
                                                 r.remaining()));
    if (n_tensors > r.remaining() / 24)
        return Error::bad_file(name, fmt::format("header claims {} tensors but only {} bytes follow", n_tensors,
                                                 r.remaining()));

    WeightSet out;
    out.source = name;
    out.metadata["gguf.version"] = std::to_string(version);
    uint64_t alignment = kDefaultAlignment;
    std::set<std::string> keys;
    for (uint64_t i = 0; i < n_kv; ++i) {
        EASEL_TRY_ASSIGN(std::string key, r.string("key"));
        EASEL_TRY_ASSIGN(uint32_t type, r.read<uint32_t>("value type"));
        if (!keys.insert(key).second) return r.error(fmt::format("key '{}' appears more than once", key));
        if (key == "general.alignment") {
            if (type != uint32_t(GgufValue::U32))
                return r.error(fmt::format("general.alignment has value type {}, expected u32 (4)", type));
            EASEL_TRY_ASSIGN(uint32_t a, r.read<uint32_t>("general.alignment"));
            if (a == 0 || (a & (a - 1)) != 0)
                return r.error(fmt::format("general.alignment is {}, expected a power of two", a));
            alignment = a;
            out.metadata[key] = std::to_string(a);
            continue;
        }
        EASEL_TRY_ASSIGN(std::string text, read_value(r, key, type));
        out.metadata[key] = std::move(text);
    }

    std::vector<TensorInfo> infos;
    std::set<std::string> names;
    for (uint64_t i = 0; i < n_tensors; ++i) {
        const size_t at = r.pos();
        TensorInfo t;
        EASEL_TRY_ASSIGN(t.name, r.string("tensor name"));
        auto bad = [&](const std::string& msg) {
            return Error::bad_file(name, fmt::format("tensor '{}' (info at byte {}): {}", t.name, at, msg));
        };
        if (!names.insert(t.name).second) return bad("name appears more than once");
        EASEL_TRY_ASSIGN(uint32_t n_dims, r.read<uint32_t>("tensor rank"));
        if (n_dims == 0 || n_dims > kMaxDims) return bad(fmt::format("has {} dimensions, expected 1 to {}", n_dims, kMaxDims));
        std::vector<uint64_t> ne(n_dims);
        uint64_t numel = 1;
        bool overflow = false;
        for (uint32_t d = 0; d < n_dims; ++d) {
            EASEL_TRY_ASSIGN(ne[d], r.read<uint64_t>("tensor dimension"));
            overflow |= __builtin_mul_overflow(numel, ne[d], &numel);
        }
        EASEL_TRY_ASSIGN(uint32_t type_id, r.read<uint32_t>("tensor type"));
        EASEL_TRY_ASSIGN(t.offset, r.read<uint64_t>("tensor offset"));
        std::string dims_text;
        for (uint32_t d = 0; d < n_dims; ++d) dims_text += fmt::format("{}{}", d ? ", " : "", ne[n_dims - 1 - d]);
        // Each dimension on its own too: with another dimension 0 the product is 0 whatever this one is.
        for (uint32_t d = 0; d < n_dims; ++d) overflow |= ne[d] > uint64_t(INT64_MAX);
        if (overflow || numel > uint64_t(INT64_MAX) || !dims_fit_int64(ne.data(), ne.size()))
            return bad(fmt::format("dimensions [{}] overflow 64 bits", dims_text));
        t.type = ggml_type_info(type_id);
        if (t.type == nullptr) return bad(fmt::format("unknown ggml type id {}", type_id));
        if (!t.type->readable)
            return Error::unsupported(fmt::format("tensor '{}': ggml type {} is not supported; supported: f32 f16 bf16 "
                                                  "f64 i8-i64 q4_0 q4_1 q5_0 q5_1 q8_0 q2_K q3_K q4_K q5_K q6_K q8_K",
                                                  t.name, t.type->name), name);
        if (ne[0] % t.type->block_elems != 0)
            return bad(fmt::format("innermost dimension {} is not a multiple of the {} block size {}", ne[0],
                                   t.type->name, t.type->block_elems));
        if (__builtin_mul_overflow(numel / t.type->block_elems, uint64_t(t.type->block_bytes), &t.nbytes))
            return bad(fmt::format("dimensions [{}] of {} overflow 64 bits in bytes", dims_text, t.type->name));
        if (t.offset % alignment != 0)
            return bad(fmt::format("offset {} is not a multiple of the alignment {}", t.offset, alignment));
        for (uint32_t d = 0; d < n_dims; ++d) t.dims.push_back(int64_t(ne[n_dims - 1 - d]));
        infos.push_back(std::move(t));
    }

    // The data section starts at the next multiple of the alignment.
    const uint64_t data_start = (uint64_t(r.pos()) + alignment - 1) / alignment * alignment;
    const uint64_t data_size = data_start <= size ? size - data_start : 0;
    std::vector<const TensorInfo*> by_offset;
    for (const TensorInfo& t : infos) by_offset.push_back(&t);
    std::stable_sort(by_offset.begin(), by_offset.end(),
                     [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
    const TensorInfo* prev = nullptr;
    for (const TensorInfo* t : by_offset) {
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return Error::bad_file(name, fmt::format("tensor '{}': {} bytes at data offset {} run past the end of the "
                                                     "file (data section is {} bytes from byte {}; truncated file?)",
                                                     t->name, t->nbytes, t->offset, data_size, data_start));
        if (t->nbytes == 0) continue;
        if (prev != nullptr && t->offset < prev->offset + prev->nbytes)
            return Error::bad_file(name, fmt::format("tensor '{}' at data offset {} overlaps tensor '{}' at [{}, {})",
                                                     t->name, t->offset, prev->name, prev->offset,
                                                     prev->offset + prev->nbytes));
        prev = t;
    }

    auto owner = std::const_pointer_cast<void>(keep_alive);
    for (const TensorInfo& t : infos) {
        const uint8_t* p = data + data_start + t.offset;
        const Shape shape(t.dims);
        Tensor tensor;
        if (auto dt = plain_dtype(t.type->type)) {
            if (reinterpret_cast<uintptr_t>(p) % dtype_size(*dt) == 0) {
                tensor = Tensor::wrap(const_cast<uint8_t*>(p), shape, *dt, owner);
            } else {  // possible only with general.alignment < element size
                tensor = Tensor::empty(shape, *dt);
                if (t.nbytes) std::memcpy(tensor.raw(), p, size_t(t.nbytes));
            }
        } else {  // kept as stored: Linear layers multiply it as it is (kernels/matmul.h), others decode it
            tensor = Tensor::wrap_quantized(p, shape, ggml_quant_type(t.type->type), owner);
        }
        EASEL_TRY(out.add(t.name, std::move(tensor)));
    }
    return out;
}

Result<WeightSet> read_gguf(const std::string& path) {
    EASEL_TRY_ASSIGN(std::shared_ptr<const MappedFile> f, MappedFile::open(path));
    return read_gguf_bytes(f->data(), f->size(), f, path);
}

}  // namespace easel
