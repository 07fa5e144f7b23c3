#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace easel {

namespace {

// Closes the descriptor on every path out of open(); the mapping stays valid after close.
struct FdGuard {
    int fd;
    ~FdGuard() {
        if (fd >= 0) ::close(fd);
    }
};

}  // namespace

Result<std::shared_ptr<const MappedFile>> MappedFile::open(const std::string& path) {
    if (path.empty()) return Error::io("empty path", "<empty path>");
    FdGuard g{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (g.fd < 0) {
        const int e = errno;
        if (e == ENOENT) return Error::io("no such file", path);
        return Error::io(fmt::format("cannot open for reading: {}", std::strerror(e)), path);
    }
    struct stat st {};
    if (::fstat(g.fd, &st) != 0) return Error::io(fmt::format("cannot stat: {}", std::strerror(errno)), path);
    if (S_ISDIR(st.st_mode)) return Error::io("is a directory, expected a file", path);
    if (!S_ISREG(st.st_mode)) return Error::io("is not a regular file (a device, pipe or socket?)", path);

    std::shared_ptr<MappedFile> f(new MappedFile());
    f->path_ = path;
    f->size_ = size_t(st.st_size);
    if (f->size_ == 0) return std::shared_ptr<const MappedFile>(std::move(f));
    // Copy-on-write and without swap reservation: a multi-GB model must not count against overcommit
    // limits for pages nobody writes.
    void* p = ::mmap(nullptr, f->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, g.fd, 0);
    if (p == MAP_FAILED) {
        const int e = errno;
        f->size_ = 0;
        return Error::io(fmt::format("cannot map {} bytes: {}", st.st_size, std::strerror(e)), path);
    }
    f->data_ = static_cast<const uint8_t*>(p);
    return std::shared_ptr<const MappedFile>(std::move(f));
}

MappedFile::~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace easel
