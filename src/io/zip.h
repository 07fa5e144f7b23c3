// ZipArchive: a reader for the zip archives torch.save writes (and for checkpoints someone re-zipped). Stored
// members come back zero-copy as pointers into the archive bytes; deflated members are inflated (zlib) into a
// buffer of their declared size, bounded by the deflate ratio limit. ZIP64 is supported for >4 GB checkpoints.
// Every offset and size is checked against the archive; member names with a '..' component, an absolute path,
// a backslash or NUL, duplicate names, overlapping members and encrypted members are refused, naming the member.
//
//   EASEL_TRY_ASSIGN(ZipArchive zip, ZipArchive::open(bytes, size, "model.ckpt"));
//   for (const ZipEntry& e : zip.entries()) ...                     // central-directory order
//   if (const ZipEntry* e = zip.find("archive/data.pkl")) {
//       EASEL_TRY_ASSIGN(ZipMemberData d, zip.read(*e, /*verify_crc=*/true));   // d.data, d.size
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace easel {

struct ZipEntry {
    std::string name;
    uint16_t method = 0;            // 0 = stored, 8 = deflate
    uint32_t crc32 = 0;
    uint64_t compressed_size = 0;   // bytes in the archive
    uint64_t size = 0;              // bytes once extracted
    uint64_t local_header_offset = 0;
    uint64_t data_offset = 0;       // first byte of the member's (compressed) data in the archive
};

// Bytes of one member. `owner` is null when `data` points into the archive itself (stored members); it owns
// the buffer when the member was inflated.
struct ZipMemberData {
    const uint8_t* data = nullptr;
    size_t size = 0;
    std::shared_ptr<const void> owner;
};

class ZipArchive {
public:
    // `data` must outlive the archive and every ZipMemberData without an owner. `name` is for messages.
    static Result<ZipArchive> open(const uint8_t* data, size_t size, std::string name);

    // True if the bytes start like a zip archive (a local file header or an empty archive's end record).
    static bool looks_like_zip(const uint8_t* data, size_t size);

    const std::vector<ZipEntry>& entries() const { return entries_; }
    const ZipEntry* find(std::string_view member_name) const;
    const std::string& name() const { return name_; }

    // Stored members: zero-copy. Deflated: inflated into a fresh buffer. `verify_crc` costs a pass over the
    // bytes (cheap for a pickle, not worth it for gigabytes of stored weights).
    Result<ZipMemberData> read(const ZipEntry& entry, bool verify_crc) const;

private:
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
    std::string name_;
    std::vector<ZipEntry> entries_;
    std::unordered_map<std::string, size_t> index_;
};

// Deflate cannot expand data by more than about 1032:1, so a member that declares more is a zip bomb (or a
// corrupt size field) and is refused before anything is allocated.
constexpr uint64_t kZipMaxDeflateRatio = 1032;

}  // namespace easel
