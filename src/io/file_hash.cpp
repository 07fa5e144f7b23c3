#include "io/file_hash.h"

#include <openssl/evp.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include <fmt/format.h>

namespace easel {

namespace {

struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
};
struct CtxFree {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

}  // namespace

Result<std::string> sha256_file(const std::string& path, uint64_t offset) {
    std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
    if (!f) return Error::io(fmt::format("cannot open: {}", std::strerror(errno)), path);
    if (offset && fseeko(f.get(), off_t(offset), SEEK_SET) != 0)
        return Error::io(fmt::format("cannot seek to byte {}: {}", offset, std::strerror(errno)), path);
    std::unique_ptr<EVP_MD_CTX, CtxFree> ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) return Error::internal("SHA-256 unavailable");
    std::vector<unsigned char> buf(size_t(1) << 20);
    for (;;) {
        const size_t n = std::fread(buf.data(), 1, buf.size(), f.get());
        if (n > 0) EVP_DigestUpdate(ctx.get(), buf.data(), n);
        if (n < buf.size()) {
            if (std::ferror(f.get())) return Error::io(fmt::format("cannot read: {}", std::strerror(errno)), path);
            break;
        }
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx.get(), md, &len);
    std::string hex;
    hex.reserve(len * 2);
    for (unsigned int i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
    return hex;
}

Result<std::string> addnet_hash(const std::string& path) {
    std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
    if (!f) return Error::io(fmt::format("cannot open: {}", std::strerror(errno)), path);
    unsigned char head[9] = {};
    const size_t got = std::fread(head, 1, sizeof(head), f.get());
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = n << 8 | head[i];
    // A safetensors file: u64 header length, then the JSON header's '{'.
    if (got == sizeof(head) && head[8] == '{' && n < (uint64_t(1) << 40)) return sha256_file(path, 8 + n);
    return sha256_file(path, 0);
}

}  // namespace easel
