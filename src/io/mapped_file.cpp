#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "core/thread_pool.h"

namespace easel {

namespace {

// Closes the descriptor on every path out of open(); the mapping stays valid after close.
struct FdGuard {
    int fd;
    ~FdGuard() {
        if (fd >= 0) ::close(fd);
    }
};

// The live mappings (start -> length), so that release_pages() can tell a mapped range from other memory.
// The lock is held across madvise, and a mapping leaves the registry before it is unmapped.
struct Registry {
    std::mutex mu;
    std::map<uintptr_t, size_t> maps;
};

Registry& registry() {
    static Registry* r = new Registry;  // never destroyed: mappings may outlive static destruction order
    return *r;
}

}  // namespace

void MappedFile::release_pages(const void* p, size_t n) {
    if (p == nullptr || n == 0) return;
    const uintptr_t begin = reinterpret_cast<uintptr_t>(p), end = begin + n;
    const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
    Registry& r = registry();
    std::lock_guard<std::mutex> lk(r.mu);
    auto it = r.maps.upper_bound(begin);
    if (it == r.maps.begin()) return;
    --it;
    if (begin < it->first || end > it->first + it->second) return;  // not (wholly) inside a mapping
    const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
    if (first < last) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

bool MappedFile::is_mapped(const void* p, size_t n) {
    if (p == nullptr) return false;
    const uintptr_t begin = reinterpret_cast<uintptr_t>(p), end = begin + n;
    Registry& r = registry();
    std::lock_guard<std::mutex> lk(r.mu);
    auto it = r.maps.upper_bound(begin);
    if (it == r.maps.begin()) return false;
    --it;
    return begin >= it->first && end <= it->first + it->second;
}

void MappedFile::prefault(const void* p, size_t n) {
#ifdef MADV_POPULATE_READ
    if (p == nullptr || n == 0 || !is_mapped(p, n)) return;
    const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
    const uintptr_t begin = reinterpret_cast<uintptr_t>(p) / page * page;
    const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n + page - 1) / page * page;
    // Big ranges in 4 MiB pieces on every thread: the page-table work is the kernel's, on the calling thread,
    // and two threads map an SD 1.5 UNet's 1.7 GB in about half the time one takes.
    const uintptr_t piece = uintptr_t(4) << 20;
    const int64_t pieces = int64_t((end - begin + piece - 1) / piece);
    if (pieces < 4) {
        (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_READ);
        return;
    }
    parallel_for(pieces, [&](int64_t b, int64_t e) {
        const uintptr_t from = begin + uintptr_t(b) * piece, to = std::min(end, begin + uintptr_t(e) * piece);
        (void)::madvise(reinterpret_cast<void*>(from), to - from, MADV_POPULATE_READ);
    });
#else
    (void)p;
    (void)n;
#endif
}

Status MappedFile::make_writable(const void* p, size_t n) {
    if (p == nullptr || n == 0 || !is_mapped(p, n)) return ok();
    const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
    const uintptr_t begin = reinterpret_cast<uintptr_t>(p) / page * page;
    const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n + page - 1) / page * page;
    if (::mprotect(reinterpret_cast<void*>(begin), end - begin, PROT_READ | PROT_WRITE) != 0)
        return Error::io(fmt::format("cannot make mapped memory writable: {}", std::strerror(errno)));
    return ok();
}

Result<std::shared_ptr<const MappedFile>> MappedFile::open(const std::string& path, MapOptions options) {
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
    // Read-only (a write is a bug and faults), private and without swap reservation: a multi-GB model must
    // not count against overcommit limits. Read-only is also what makes release_pages() safe.
    // With `huge`, the advice must come before the pages are faulted in, so MAP_POPULATE (which faults them in
    // inside mmap) gives way to MADV_POPULATE_READ after the advice. Both madvise calls are best effort: an
    // older kernel without them maps the same bytes, in smaller pages or at first use.
    if (options.drop_cached) ::posix_fadvise(g.fd, 0, 0, POSIX_FADV_DONTNEED);
    const bool populate_now = options.populate && !options.huge;
    void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE | MAP_NORESERVE | (populate_now ? MAP_POPULATE : 0),
                     g.fd, 0);
    if (p == MAP_FAILED) {
        const int e = errno;
        f->size_ = 0;
        return Error::io(fmt::format("cannot map {} bytes: {}", st.st_size, std::strerror(e)), path);
    }
    if (options.huge) {
        ::madvise(p, f->size_, MADV_HUGEPAGE);
#ifdef MADV_POPULATE_READ
        if (options.populate) ::madvise(p, f->size_, MADV_POPULATE_READ);
#endif
    }
    f->data_ = static_cast<const uint8_t*>(p);
    {
        std::lock_guard<std::mutex> lk(registry().mu);
        registry().maps[reinterpret_cast<uintptr_t>(p)] = f->size_;
    }
    return std::shared_ptr<const MappedFile>(std::move(f));
}

uint64_t MappedFile::huge_mapped_bytes() const {
    if (data_ == nullptr) return 0;
    const uintptr_t lo = reinterpret_cast<uintptr_t>(data_), hi = lo + size_;
    FILE* f = std::fopen("/proc/self/smaps", "re");
    if (!f) return 0;
    uint64_t total = 0;
    bool inside = false;
    char line[512];
    while (std::fgets(line, sizeof line, f)) {
        unsigned long a = 0, b = 0;
        unsigned long long kb = 0;
        // A range header is "start-end perms ..." (no field line parses as two hex numbers joined by '-'); the
        // range's fields follow, one per line, as "Name:   value kB".
        if (std::sscanf(line, "%lx-%lx ", &a, &b) == 2) {
            inside = a >= lo && b <= hi;
        } else if (inside && std::sscanf(line, "FilePmdMapped: %llu kB", &kb) == 1) {
            total += uint64_t(kb) * 1024;
        }
    }
    std::fclose(f);
    return total;
}

MappedFile::~MappedFile() {
    if (data_ == nullptr) return;
    {
        std::lock_guard<std::mutex> lk(registry().mu);
        registry().maps.erase(reinterpret_cast<uintptr_t>(data_));
    }
    ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace easel
