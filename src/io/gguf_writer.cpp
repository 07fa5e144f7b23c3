// GGUF writer (io/gguf.h): the layout read_gguf reads, written in one pass. Tensor offsets are known before any
// data is produced (sizes follow from shapes and types), so the header goes first and each tensor streams after.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "io/gguf.h"
#include "io/gguf_dequant.h"

namespace easel {

namespace {

constexpr uint64_t kAlign = 32;
constexpr uint32_t kTypeString = 8;

std::optional<GgmlType> ggml_plain(DType t) {
    switch (t) {
        case DType::F32: return GgmlType::F32;
        case DType::F16: return GgmlType::F16;
        case DType::BF16: return GgmlType::BF16;
        case DType::F64: return GgmlType::F64;
        case DType::I8: return GgmlType::I8;
        case DType::I16: return GgmlType::I16;
        case DType::I32: return GgmlType::I32;
        case DType::I64: return GgmlType::I64;
        default: return std::nullopt;
    }
}

template <class T>
void put(std::string& out, T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

void put_string(std::string& out, std::string_view s) {
    put<uint64_t>(out, s.size());
    out.append(s);
}

class File {
public:
    explicit File(std::string path) : path_(std::move(path)) {}
    ~File() {
        if (fd_ >= 0) {
            ::close(fd_);
            ::unlink(tmp_.c_str());
        }
    }
    Status open() {
        static std::atomic<unsigned> counter{0};
        tmp_ = fmt::format("{}.tmp-{}-{}", path_, ::getpid(), counter++);
        fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd_ < 0) return Error::io(fmt::format("cannot create {}: {}", tmp_, std::strerror(errno)), path_);
        return ok();
    }
    Status write(const void* p, size_t n) {
        const char* c = static_cast<const char*>(p);
        while (n > 0) {
            const ssize_t w = ::write(fd_, c, n);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) return Error::io(fmt::format("cannot write {}: {}", tmp_, std::strerror(errno)), path_);
            c += w;
            n -= size_t(w);
            written_ += uint64_t(w);
        }
        return ok();
    }
    Status pad_to(uint64_t align) {
        static const char zeros[kAlign] = {};
        const uint64_t n = (align - written_ % align) % align;
        return write(zeros, size_t(n));
    }
    Status commit() {
        if (::fsync(fd_) != 0 || ::close(fd_) != 0) {
            fd_ = -1;
            ::unlink(tmp_.c_str());
            return Error::io(fmt::format("cannot finish {}: {}", tmp_, std::strerror(errno)), path_);
        }
        fd_ = -1;
        if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
            ::unlink(tmp_.c_str());
            return Error::io(fmt::format("cannot rename {} to {}: {}", tmp_, path_, std::strerror(errno)), path_);
        }
        return ok();
    }

private:
    std::string path_, tmp_;
    int fd_ = -1;
    uint64_t written_ = 0;
};

}  // namespace

Status write_gguf(const std::string& path, const std::map<std::string, std::string>& metadata,
                  const std::vector<GgufTensorPlan>& plan, const std::function<Result<Tensor>(size_t index)>& produce) {
    std::string header = "GGUF";
    put<uint32_t>(header, 3);
    put<uint64_t>(header, plan.size());
    size_t kv = 0;
    for (const auto& [k, v] : metadata) kv += k.rfind("gguf.", 0) == 0 ? 0 : 1;  // the reader's own keys
    put<uint64_t>(header, kv);
    for (const auto& [k, v] : metadata) {
        if (k.rfind("gguf.", 0) == 0) continue;
        put_string(header, k);
        put<uint32_t>(header, kTypeString);
        put_string(header, v);
    }
    std::vector<uint64_t> sizes;
    uint64_t offset = 0;
    for (const GgufTensorPlan& t : plan) {
        const int rank = t.shape.rank();
        if (rank < 1 || rank > 4)
            return Error::invalid_argument(fmt::format("tensor '{}' has rank {}; GGUF holds 1 to 4 dimensions", t.name, rank));
        GgmlType type;
        uint64_t bytes;
        if (t.quant != QuantType::None) {
            type = ggml_type_of(t.quant);
            if (ggml_quant_type(type) != t.quant)
                return Error::invalid_argument(fmt::format("tensor '{}': {} is not a ggml type", t.name, quant_info(t.quant).name));
            if (t.shape.dim(-1) % quant_info(t.quant).block_elems != 0)
                return Error::invalid_argument(fmt::format("tensor '{}' {}: rows are not whole {} blocks", t.name,
                                                           t.shape.to_string(), quant_info(t.quant).name));
            bytes = quant_bytes(t.quant, t.shape.numel());
        } else {
            const auto g = ggml_plain(t.dtype);
            if (!g) return Error::invalid_argument(fmt::format("tensor '{}': dtype {} has no GGUF type", t.name, dtype_name(t.dtype)));
            type = *g;
            bytes = uint64_t(t.shape.numel()) * dtype_size(t.dtype);
        }
        put_string(header, t.name);
        put<uint32_t>(header, uint32_t(rank));
        for (int d = rank - 1; d >= 0; --d) put<uint64_t>(header, uint64_t(t.shape[d]));  // innermost first
        put<uint32_t>(header, uint32_t(type));
        put<uint64_t>(header, offset);
        sizes.push_back(bytes);
        offset += (bytes + kAlign - 1) / kAlign * kAlign;
    }

    File f(path);
    EASEL_TRY(f.open());
    EASEL_TRY(f.write(header.data(), header.size()));
    EASEL_TRY(f.pad_to(kAlign));
    for (size_t i = 0; i < plan.size(); ++i) {
        const GgufTensorPlan& t = plan[i];
        EASEL_TRY_ASSIGN(Tensor got, produce(i));
        if (got.shape() != t.shape || got.quant() != t.quant || (t.quant == QuantType::None && got.dtype() != t.dtype))
            return Error::internal(fmt::format("tensor '{}' was produced as {} {}, planned {} {}", t.name,
                                               got.quantized() ? quant_info(got.quant()).name : dtype_name(got.dtype()),
                                               got.shape().to_string(),
                                               t.quant != QuantType::None ? quant_info(t.quant).name : dtype_name(t.dtype),
                                               t.shape.to_string()));
        const Tensor c = got.contiguous();
        if (c.nbytes() != sizes[i]) return Error::internal(fmt::format("tensor '{}': {} bytes, planned {}", t.name, c.nbytes(), sizes[i]));
        EASEL_TRY(f.write(c.raw(), c.nbytes()));
        EASEL_TRY(f.pad_to(kAlign));
    }
    return f.commit();
}

}  // namespace easel
