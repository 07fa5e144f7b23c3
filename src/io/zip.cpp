#include "io/zip.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>

#include <fmt/format.h>
#include <zlib.h>

namespace easel {

// Record layouts follow PKWARE's APPNOTE.TXT (6.3.x): local file header (4.3.7), central directory header
// (4.3.12), end of central directory (4.3.16), ZIP64 end record and locator (4.3.14, 4.3.15), ZIP64 extra
// field (4.5.3). All integers are little-endian.
namespace {

constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralHeaderSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr size_t kLocalHeaderSize = 30;
constexpr size_t kCentralHeaderSize = 46;
constexpr size_t kEndSize = 22;
constexpr size_t kZip64EndMinSize = 56;
constexpr size_t kZip64LocatorSize = 20;
constexpr uint16_t kZip64ExtraId = 0x0001;

uint16_t le16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
uint32_t le32(const uint8_t* p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24); }
uint64_t le64(const uint8_t* p) { return uint64_t(le32(p)) | (uint64_t(le32(p + 4)) << 32); }

// True if [off, off+len) lies inside [0, size) without overflow.
bool in_bounds(uint64_t off, uint64_t len, uint64_t size) { return off <= size && len <= size - off; }

// Names are refused rather than sanitised: a checkpoint has no business naming files outside its folder.
std::string check_member_name(std::string_view n) {
    if (n.empty()) return "an empty name";
    if (n.find('\0') != std::string_view::npos) return "a NUL byte";
    if (n.find('\\') != std::string_view::npos) return "a backslash";
    if (n.front() == '/') return "an absolute path";
    if (n.size() >= 2 && n[1] == ':') return "a drive letter";
    size_t start = 0;
    while (start <= n.size()) {
        size_t end = n.find('/', start);
        if (end == std::string_view::npos) end = n.size();
        if (n.substr(start, end - start) == "..") return "a '..' component";
        start = end + 1;
    }
    return {};
}

std::string printable(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 200)) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) out += fmt::format("\\x{:02x}", u);
        else out += c;
    }
    if (s.size() > 200) out += "...";
    return out;
}

}  // namespace

bool ZipArchive::looks_like_zip(const uint8_t* data, size_t size) {
    return size >= 4 && (le32(data) == kLocalHeaderSig || le32(data) == kEndSig);
}

Result<ZipArchive> ZipArchive::open(const uint8_t* data, size_t size, std::string name) {
    ZipArchive z;
    z.data_ = data;
    z.size_ = size;
    z.name_ = std::move(name);
    auto bad = [&](const std::string& msg) { return Error::bad_file(z.name_, "zip: " + msg); };

    if (size < kEndSize)
        return bad(fmt::format("file is {} bytes; a zip archive ends with a {}-byte end-of-central-directory record "
                               "(truncated download?)", size, kEndSize));

    // The end record sits at the very end, followed only by its comment (at most 65535 bytes); scan backwards.
    size_t end_off = std::numeric_limits<size_t>::max();
    const size_t scan_lo = size - kEndSize > 65535 ? size - kEndSize - 65535 : 0;
    for (size_t off = size - kEndSize + 1; off-- > scan_lo;) {
        if (le32(data + off) == kEndSig && le16(data + off + 20) == size - off - kEndSize) {
            end_off = off;
            break;
        }
    }
    if (end_off == std::numeric_limits<size_t>::max())
        return bad("no end-of-central-directory record found (truncated download, or not a zip archive?)");

    const uint8_t* e = data + end_off;
    uint64_t num_entries = le16(e + 10);
    uint64_t cd_size = le32(e + 12);
    uint64_t cd_offset = le32(e + 16);
    if (le16(e + 4) != 0 || le16(e + 6) != 0 || le16(e + 8) != le16(e + 10))
        return bad("multi-disk (split) archives are not supported");

    // ZIP64: the locator sits right before the end record and points at the ZIP64 end record.
    if (end_off >= kZip64LocatorSize && le32(data + end_off - kZip64LocatorSize) == kZip64LocatorSig) {
        const uint8_t* loc = data + end_off - kZip64LocatorSize;
        const uint64_t z64_off = le64(loc + 8);
        if (!in_bounds(z64_off, kZip64EndMinSize, end_off - kZip64LocatorSize))
            return bad(fmt::format("ZIP64 end record offset {} is outside the archive ({} bytes)", z64_off, size));
        const uint8_t* r = data + z64_off;
        if (le32(r) != kZip64EndSig)
            return bad(fmt::format("no ZIP64 end record at offset {} where the locator points", z64_off));
        if (le32(r + 16) != 0 || le32(r + 20) != 0 || le64(r + 24) != le64(r + 32))
            return bad("multi-disk (split) ZIP64 archives are not supported");
        num_entries = le64(r + 32);
        cd_size = le64(r + 40);
        cd_offset = le64(r + 48);
    }

    if (!in_bounds(cd_offset, cd_size, end_off))
        return bad(fmt::format("central directory (offset {}, {} bytes) does not fit before the end record at {} "
                               "(truncated download?)", cd_offset, cd_size, end_off));
    if (num_entries > cd_size / kCentralHeaderSize)
        return bad(fmt::format("end record claims {} members but the {}-byte central directory holds at most {}",
                               num_entries, cd_size, cd_size / kCentralHeaderSize));

    z.entries_.reserve(size_t(num_entries));
    uint64_t pos = cd_offset;
    const uint64_t cd_end = cd_offset + cd_size;
    for (uint64_t i = 0; i < num_entries; ++i) {
        if (!in_bounds(pos, kCentralHeaderSize, cd_end) || le32(data + pos) != kCentralHeaderSig)
            return bad(fmt::format("central directory entry {} at offset {} is missing or truncated", i, pos));
        const uint8_t* c = data + pos;
        const uint16_t flags = le16(c + 8);
        ZipEntry ent;
        ent.method = le16(c + 10);
        ent.crc32 = le32(c + 16);
        ent.compressed_size = le32(c + 20);
        ent.size = le32(c + 24);
        const uint16_t name_len = le16(c + 28), extra_len = le16(c + 30), comment_len = le16(c + 32);
        const uint16_t disk = le16(c + 34);
        ent.local_header_offset = le32(c + 42);
        const uint64_t var_len = uint64_t(name_len) + extra_len + comment_len;
        if (!in_bounds(pos + kCentralHeaderSize, var_len, cd_end))
            return bad(fmt::format("central directory entry {} at offset {} runs past the directory", i, pos));
        ent.name.assign(reinterpret_cast<const char*>(c + kCentralHeaderSize), name_len);

        // ZIP64 extra field: 8-byte values replace, in order, each 32-bit field that reads 0xFFFFFFFF.
        const uint8_t* x = c + kCentralHeaderSize + name_len;
        for (size_t xo = 0; xo + 4 <= extra_len;) {
            const uint16_t id = le16(x + xo), len = le16(x + xo + 2);
            if (xo + 4 + len > extra_len) return bad(fmt::format("member '{}': extra field runs past its end", printable(ent.name)));
            if (id == kZip64ExtraId) {
                const uint8_t* v = x + xo + 4;
                size_t vo = 0;
                auto take = [&](uint64_t& field) -> bool {
                    if (field != 0xFFFFFFFFu) return true;
                    if (vo + 8 > len) return false;
                    field = le64(v + vo);
                    vo += 8;
                    return true;
                };
                if (!take(ent.size) || !take(ent.compressed_size) || !take(ent.local_header_offset))
                    return bad(fmt::format("member '{}': ZIP64 extra field is too short for the sizes it replaces",
                                           printable(ent.name)));
            }
            xo += 4 + size_t(len);
        }

        const std::string why = check_member_name(ent.name);
        if (!why.empty())
            return Error::refused(fmt::format("zip: refused member name '{}': it contains {} (a checkpoint's members "
                                              "must stay inside its own folder)", printable(ent.name), why),
                                  z.name_);
        if (z.index_.count(ent.name))
            return Error::refused(fmt::format("zip: refused duplicate member name '{}' (two members with one name can "
                                              "hide one behind the other)", printable(ent.name)),
                                  z.name_);
        if (flags & 0x1)
            return Error::unsupported(fmt::format("zip: member '{}' is encrypted", printable(ent.name)), z.name_);
        if (disk != 0) return bad(fmt::format("member '{}' is on another disk", printable(ent.name)));
        if (ent.method != 0 && ent.method != 8)
            return Error::unsupported(fmt::format("zip: member '{}' uses compression method {}; only stored (0) and "
                                                  "deflate (8) are supported", printable(ent.name), ent.method),
                                      z.name_);
        if (ent.method == 0 && ent.compressed_size != ent.size)
            return bad(fmt::format("stored member '{}' has compressed size {} but size {}", printable(ent.name),
                                   ent.compressed_size, ent.size));
        if (ent.method == 8 && ent.size > ent.compressed_size * kZipMaxDeflateRatio + 1024)
            return Error::refused(fmt::format("zip: member '{}' declares {} bytes from {} compressed bytes, beyond what "
                                              "deflate can produce ({}:1): a zip bomb or a corrupt size",
                                              printable(ent.name), ent.size, ent.compressed_size, kZipMaxDeflateRatio),
                                  z.name_);

        // The local header repeats the name and has its own extra field (torch pads it to align the data).
        const uint64_t lh = ent.local_header_offset;
        if (!in_bounds(lh, kLocalHeaderSize, cd_offset) || le32(data + lh) != kLocalHeaderSig)
            return bad(fmt::format("member '{}': no local header at offset {}", printable(ent.name), lh));
        const uint16_t lname = le16(data + lh + 26), lextra = le16(data + lh + 28);
        if (!in_bounds(lh + kLocalHeaderSize, uint64_t(lname) + lextra, cd_offset) ||
            std::string_view(reinterpret_cast<const char*>(data + lh + kLocalHeaderSize), lname) != ent.name)
            return bad(fmt::format("member '{}': local header at offset {} names another member", printable(ent.name), lh));
        ent.data_offset = lh + kLocalHeaderSize + lname + lextra;
        if (!in_bounds(ent.data_offset, ent.compressed_size, cd_offset))
            return bad(fmt::format("member '{}': {} bytes at offset {} run past the central directory at {} "
                                   "(truncated download?)", printable(ent.name), ent.compressed_size, ent.data_offset,
                                   cd_offset));

        z.index_.emplace(ent.name, z.entries_.size());
        z.entries_.push_back(std::move(ent));
        pos += kCentralHeaderSize + var_len;
    }

    // Members must not overlap: overlapping entries are how "non-recursive" zip bombs reuse one payload.
    std::vector<const ZipEntry*> by_offset;
    by_offset.reserve(z.entries_.size());
    for (const ZipEntry& en : z.entries_) by_offset.push_back(&en);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const ZipEntry* a, const ZipEntry* b) { return a->local_header_offset < b->local_header_offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
        const ZipEntry* prev = by_offset[i - 1];
        if (prev->data_offset + prev->compressed_size > by_offset[i]->local_header_offset)
            return Error::refused(fmt::format("zip: members '{}' and '{}' overlap in the archive",
                                              printable(prev->name), printable(by_offset[i]->name)),
                                  z.name_);
    }
    return z;
}

const ZipEntry* ZipArchive::find(std::string_view member_name) const {
    auto it = index_.find(std::string(member_name));
    return it == index_.end() ? nullptr : &entries_[it->second];
}

Result<ZipMemberData> ZipArchive::read(const ZipEntry& entry, bool verify_crc) const {
    ZipMemberData out;
    if (entry.method == 0) {
        out.data = data_ + entry.data_offset;
        out.size = size_t(entry.size);
    } else {
        // Declared sizes were bounded by the deflate ratio in open(), so this allocation is bounded by the input.
        if (entry.size > std::numeric_limits<size_t>::max() / 2)
            return Error::exhausted(fmt::format("zip: member '{}' declares {} bytes", printable(entry.name), entry.size), name_);
        auto buf = std::shared_ptr<uint8_t[]>(new (std::nothrow) uint8_t[std::max<size_t>(size_t(entry.size), 1)]);
        if (!buf)
            return Error::exhausted(fmt::format("zip: no memory to inflate member '{}' ({} bytes)", printable(entry.name),
                                                entry.size), name_);
        z_stream zs{};
        if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) return Error::internal("zlib inflateInit2 failed");
        // zlib counts in uInt; feed in chunks so members over 4 GB work.
        uint64_t in_left = entry.compressed_size, out_left = entry.size;
        const uint8_t* in = data_ + entry.data_offset;
        uint8_t* outp = buf.get();
        uint8_t probe = 0;  // once the declared size is filled, one more byte of room tells "ends here" from "more"
        bool probing = false;
        int rc = Z_OK;
        while (rc == Z_OK) {
            if (zs.avail_in == 0 && in_left > 0) {
                zs.next_in = const_cast<Bytef*>(in);
                zs.avail_in = uInt(std::min<uint64_t>(in_left, 1u << 30));
                in += zs.avail_in;
                in_left -= zs.avail_in;
            }
            if (zs.avail_out == 0) {
                if (probing) break;  // the probe byte was written: more output than declared
                if (out_left == 0) {
                    probing = true;
                    zs.next_out = &probe;
                    zs.avail_out = 1;
                } else {
                    zs.next_out = outp;
                    zs.avail_out = uInt(std::min<uint64_t>(out_left, 1u << 30));
                    outp += zs.avail_out;
                    out_left -= zs.avail_out;
                }
            }
            rc = inflate(&zs, Z_NO_FLUSH);
        }
        const bool overflow = probing && zs.avail_out == 0;
        const uint64_t produced = probing ? entry.size + (overflow ? 1 : 0) : entry.size - out_left - zs.avail_out;
        inflateEnd(&zs);
        if (rc != Z_STREAM_END || produced != entry.size)
            return Error::bad_file(name_, fmt::format("zip: member '{}': deflate data is corrupt or does not match its "
                                                      "declared size of {} bytes (zlib code {}, {}{} bytes produced)",
                                                      printable(entry.name), entry.size, rc, produced, overflow ? "+" : ""));
        out.data = buf.get();
        out.size = size_t(entry.size);
        out.owner = std::shared_ptr<const void>(buf, buf.get());
    }
    if (verify_crc) {
        uLong crc = crc32(0L, Z_NULL, 0);
        for (size_t off = 0; off < out.size;) {
            const uInt n = uInt(std::min<size_t>(out.size - off, 1u << 30));
            crc = crc32(crc, out.data + off, n);
            off += n;
        }
        if (uint32_t(crc) != entry.crc32)
            return Error::bad_file(name_, fmt::format("zip: member '{}': CRC-32 is {:08x} but the directory says {:08x} "
                                                      "(corrupt download?)", printable(entry.name), uint32_t(crc),
                                                      entry.crc32));
    }
    return out;
}

}  // namespace easel
