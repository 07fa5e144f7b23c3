// MappedFile: a whole file mapped read-only into memory, shared by every tensor view made over it.
//
//   EASEL_TRY_ASSIGN(std::shared_ptr<const MappedFile> f, MappedFile::open("v1-5.safetensors"));
//   const uint8_t* p = f->data();                       // f->size() bytes, valid while any owner lives
//   Tensor t = Tensor::wrap(const_cast<uint8_t*>(p) + off, {320, 4, 3, 3}, DType::F16,
//                           std::const_pointer_cast<MappedFile>(f));   // the view keeps the mapping alive
//
// The mapping is private copy-on-write (MAP_PRIVATE): a stray write through a tensor view changes only this
// process's copy of that page, never the file, and does not fault. Tensors made by readers are still meant
// to be treated as read-only: clone() before modifying one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/error.h"

namespace easel {

// How a file is mapped. Neither option changes what is read, only when pages are faulted in and how big.
struct MapOptions {
    // Every page is mapped now (read ahead and faulted in at open, not at first use).
    bool populate = false;
    // Asks for 2 MiB mappings (madvise MADV_HUGEPAGE): where the page cache holds the file in 2 MiB folios
    // (ext4 and others since Linux 6.16; a file written in aligned 2 MiB chunks, or read with this advice),
    // each is mapped by one page-table entry. That is 512 times fewer faults and TLB entries than 4 KiB pages,
    // which matters to weights read on every step and in a VM, where every fault is expensive. Elsewhere it
    // is a no-op.
    bool huge = false;
    // First drops the file's cached pages that no process maps (posix_fadvise POSIX_FADV_DONTNEED), so that they
    // are read again, in pages as large as `huge` asks. Pages another process maps stay where they are.
    bool drop_cached = false;
};

class MappedFile {
public:
    // Io error for a missing or unreadable path or a directory; an empty file maps to size() == 0.
    static Result<std::shared_ptr<const MappedFile>> open(const std::string& path, MapOptions options = {});

    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    // Drops this process's copies of the pages that lie wholly inside [p, p + n) (madvise MADV_DONTNEED), when
    // that range is inside a live MappedFile; a no-op for any other memory. The pages leave the process's
    // resident set and are read again from the page cache if touched, with the same bytes: every mapping is
    // read-only, so nothing written can be lost. Model loading calls it once a weight has been packed.
    static void release_pages(const void* p, size_t n);

    // Whether [p, p + n) lies wholly inside a live MappedFile (a weight read from a file, or a packed weight of
    // the weight cache), as opposed to memory of the process's own.
    static bool is_mapped(const void* p, size_t n);
    // Makes the pages of [p, p + n) inside a live MappedFile writable (mprotect). Every mapping is private, so a
    // write gives this process a copy of the page and never reaches the file; release_pages() on such a page
    // would drop the copy (and the write). Memory of the process's own is already writable: a no-op. Used to
    // patch packed weights in place (pipeline/lora.h LivePatch), which writes the original bytes back after.
    static Status make_writable(const void* p, size_t n);

    // Maps the pages of [p, p + n) inside a live MappedFile with madvise MADV_POPULATE_READ (ranges of 16 MiB
    // and more in 4 MiB pieces on every thread of the pool) instead of one page fault per 4 KiB page when they
    // are read: a weight read again after release_pages(). A no-op for other memory, and where the kernel lacks
    // it (before Linux 5.14).
    static void prefault(const void* p, size_t n);

    // How many bytes of this mapping the kernel maps with 2 MiB page-table entries right now (FilePmdMapped in
    // /proc/self/smaps, summed over its ranges); 0 where that cannot be read.
    uint64_t huge_mapped_bytes() const;

    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    const std::string& path() const { return path_; }

private:
    MappedFile() = default;
    const uint8_t* data_ = nullptr;  // null when size_ == 0
    size_t size_ = 0;
    std::string path_;
};

}  // namespace easel
