#include "io/jumbf.h"

#include <algorithm>
#include <cstring>
#include <map>

#include <fmt/format.h>
#include <zlib.h>

#include "io/jpeg_segments.h"

namespace easel {

JumbfUuid jumbf_uuid(std::string_view four_letters) {
    JumbfUuid u{0, 0, 0, 0, 0x00, 0x11, 0x00, 0x10, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};
    for (size_t i = 0; i < 4 && i < four_letters.size(); ++i) u[i] = uint8_t(four_letters[i]);
    return u;
}
const JumbfUuid kJumbfC2paStore = jumbf_uuid("c2pa");
const JumbfUuid kJumbfC2paManifest = jumbf_uuid("c2ma");
const JumbfUuid kJumbfAssertionStore = jumbf_uuid("c2as");
const JumbfUuid kJumbfClaim = jumbf_uuid("c2cl");
const JumbfUuid kJumbfSignature = jumbf_uuid("c2cs");
const JumbfUuid kJumbfCborContent = jumbf_uuid("cbor");
const JumbfUuid kJumbfJsonContent = jumbf_uuid("json");

namespace {

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
void put32(std::vector<uint8_t>& o, uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) o.push_back(uint8_t(v >> s));
}
void put_box(std::vector<uint8_t>& o, std::string_view type, const std::vector<uint8_t>& payload) {
    put32(o, uint32_t(8 + payload.size()));
    o.insert(o.end(), type.begin(), type.end());
    o.insert(o.end(), payload.begin(), payload.end());
}
std::string printable(const uint8_t* p, size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) s += (p[i] >= 0x20 && p[i] < 0x7f) ? char(p[i]) : '?';
    return s;
}

struct BoxHeader {
    std::string type;
    size_t header = 0;  // 8, or 16 with an XLBox
    size_t size = 0;    // the whole box
};

Result<BoxHeader> read_header(const uint8_t* data, size_t pos, size_t end, const std::string& name) {
    if (end - pos < 8) return Error::bad_file(name, fmt::format("JUMBF: a box header at byte {} is cut off", pos));
    BoxHeader h{printable(data + pos + 4, 4), 8, be32(data + pos)};
    if (h.size == 1) {
        if (end - pos < 16) return Error::bad_file(name, fmt::format("JUMBF: box '{}' at byte {} is cut off", h.type, pos));
        uint64_t xl = 0;
        for (int i = 0; i < 8; ++i) xl = xl << 8 | data[pos + 8 + size_t(i)];
        h.header = 16;
        h.size = xl > end - pos ? end - pos + 1 : size_t(xl);  // a too-large size is caught below
    } else if (h.size == 0) {
        h.size = end - pos;
    }
    if (h.size < h.header || h.size > end - pos)
        return Error::bad_file(name, fmt::format("JUMBF: box '{}' at byte {} declares {} bytes, but {} remain in its parent",
                                                 h.type, pos, h.size, end - pos));
    return h;
}

struct Parser {
    const uint8_t* data;
    const std::string& name;
    int boxes = 0;

    Result<JumbfBox> parse(size_t pos, size_t end, int depth) {
        EASEL_TRY_ASSIGN(BoxHeader h, read_header(data, pos, end, name));
        if (++boxes > 10000) return Error::bad_file(name, "JUMBF: more than 10,000 boxes");
        JumbfBox box;
        box.type = h.type;
        box.offset = pos;
        box.size = h.size;
        box.header = h.header;
        const size_t body = pos + h.header, box_end = pos + h.size;
        if (h.type != "jumb") {
            box.data.assign(data + body, data + box_end);
            return box;
        }
        if (depth >= 8) return Error::bad_file(name, fmt::format("JUMBF: superboxes nested more than 8 deep at byte {}", pos));
        EASEL_TRY_ASSIGN(BoxHeader d, read_header(data, body, box_end, name));
        if (d.type != "jumd")
            return Error::bad_file(name, fmt::format("JUMBF: the superbox at byte {} opens with '{}', not a description box (jumd)", pos, d.type));
        const uint8_t* p = data + body + d.header;
        const size_t n = d.size - d.header;
        if (n < 17) return Error::bad_file(name, fmt::format("JUMBF: the description box at byte {} is shorter than a type and toggles", body));
        std::memcpy(box.uuid.data(), p, 16);
        box.toggles = p[16];
        if (box.toggles & 0x02) {
            const uint8_t* nul = static_cast<const uint8_t*>(std::memchr(p + 17, 0, n - 17));
            if (!nul) return Error::bad_file(name, fmt::format("JUMBF: the label of the description box at byte {} has no terminating NUL", body));
            box.label.assign(reinterpret_cast<const char*>(p + 17), size_t(nul - (p + 17)));
        }
        for (size_t c = body + d.size; c < box_end;) {
            EASEL_TRY_ASSIGN(JumbfBox child, parse(c, box_end, depth + 1));
            c += child.size;
            box.children.push_back(std::move(child));
        }
        return box;
    }
};

constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
bool is_png(const uint8_t* d, size_t n) { return n >= 8 && std::memcmp(d, kPngSignature, 8) == 0; }
bool is_jpeg(const uint8_t* d, size_t n) { return n >= 4 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff; }

// JPEG XT box-format APP11 segments: FF EB, Lp (counts itself), "JP", En (box instance), Z (packet sequence, from
// 1), then the box: whole header in packet 1, the header repeated before each later packet's continuation.
constexpr size_t kApp11Overhead = 2 + 2 + 2 + 2 + 4;  // marker, Lp, CI, En, Z
constexpr size_t kApp11MaxBody = 65535 - 2 - 2 - 2 - 4;  // box bytes one segment can hold (Lp's 16 bits)
constexpr uint16_t kC2paBoxInstance = 0x0001;

}  // namespace

JumbfBox jumbf_superbox(const JumbfUuid& uuid, std::string label, std::vector<JumbfBox> children) {
    JumbfBox b;
    b.type = "jumb";
    b.uuid = uuid;
    b.label = std::move(label);
    b.children = std::move(children);
    return b;
}

JumbfBox jumbf_content(std::string type, std::vector<uint8_t> data) {
    JumbfBox b;
    b.type = std::move(type);
    b.data = std::move(data);
    return b;
}

std::vector<uint8_t> serialize_jumbf(const JumbfBox& box) {
    std::vector<uint8_t> out;
    if (box.type != "jumb") {
        put_box(out, box.type, box.data);
        return out;
    }
    std::vector<uint8_t> jumd(box.uuid.begin(), box.uuid.end());
    jumd.push_back(uint8_t(box.toggles | 0x02));
    jumd.insert(jumd.end(), box.label.begin(), box.label.end());
    jumd.push_back(0);
    std::vector<uint8_t> body;
    put_box(body, "jumd", jumd);
    for (const JumbfBox& c : box.children) {
        const std::vector<uint8_t> cb = serialize_jumbf(c);
        body.insert(body.end(), cb.begin(), cb.end());
    }
    put_box(out, "jumb", body);
    return out;
}

Result<JumbfBox> parse_jumbf(const uint8_t* data, size_t size, const std::string& name) {
    Parser p{data, name};
    EASEL_TRY_ASSIGN(JumbfBox box, p.parse(0, size, 0));
    if (box.type != "jumb") return Error::bad_file(name, fmt::format("JUMBF: expected a superbox (jumb), found '{}'", box.type));
    return box;
}

const JumbfBox* jumbf_child(const JumbfBox& box, std::string_view label) {
    for (const JumbfBox& c : box.children)
        if (c.type == "jumb" && c.label == label) return &c;
    return nullptr;
}

Result<C2paStoreLocation> find_c2pa_store(const uint8_t* data, size_t size, const std::string& name) {
    C2paStoreLocation loc;
    if (is_png(data, size)) {
        for (size_t pos = 8; size - pos >= 12;) {
            const uint32_t len = be32(data + pos);
            if (len > size - pos - 12)
                return Error::bad_file(name, fmt::format("not a valid PNG: chunk '{}' at byte {} declares {} bytes of data but only {} remain",
                                                         printable(data + pos + 4, 4), pos, len, size - pos - 12));
            if (std::memcmp(data + pos + 4, "caBX", 4) == 0) {
                if (loc.found) return Error::bad_file(name, fmt::format("PNG: a second C2PA manifest store (caBX chunk) at byte {}", pos));
                loc = {true, std::vector<uint8_t>(data + pos + 8, data + pos + 8 + len), pos, 12 + size_t(len)};
            }
            if (std::memcmp(data + pos + 4, "IEND", 4) == 0) break;
            pos += 12 + size_t(len);
        }
        return loc;
    }
    if (!is_jpeg(data, size)) return Error::bad_file(name, "not a PNG or JPEG image: C2PA manifests are read from these two");
    std::map<uint32_t, std::vector<uint8_t>> packets;  // the C2PA box's packets by sequence number
    size_t first = 0, last_end = 0;
    uint16_t store_en = 0;
    bool ended = false;  // a non-C2PA segment came after the store's segments
    EASEL_TRY_ASSIGN(std::vector<JpegSegment> segments, jpeg_head_segments(data, size, name));
    for (const JpegSegment& seg : segments) {
        const uint8_t code = seg.code;
        const size_t i = seg.offset;
        const uint8_t* body = seg.body;
        const size_t n = seg.body_size;
        // A C2PA packet: "JP", our instance or any, a sequence number, then (packet 1) a jumb whose jumd is "c2pa"
        // or (later packets) the repeated box header of an instance already seen.
        bool c2pa = false;
        if (code == 0xeb && n >= 8 + 8 && body[0] == 'J' && body[1] == 'P') {
            const uint16_t en = uint16_t(body[2] << 8 | body[3]);
            const uint32_t z = be32(body + 4);
            const uint8_t* box = body + 8;
            const size_t box_n = n - 8;
            if (z == 1 && box_n >= 24 && std::memcmp(box + 4, "jumb", 4) == 0 && std::memcmp(box + 12, "jumd", 4) == 0 &&
                std::memcmp(box + 16, kJumbfC2paStore.data(), 16) == 0) {
                c2pa = true;
                if (!packets.empty()) return Error::bad_file(name, fmt::format("JPEG: a second C2PA manifest store at byte {}", i));
                store_en = en;
                packets[1].assign(box, box + box_n);
                first = i;
            } else if (z > 1 && !packets.empty() && en == store_en && std::memcmp(box, packets[1].data(), 8) == 0) {
                c2pa = true;
                if (packets.count(z)) return Error::bad_file(name, fmt::format("JPEG: C2PA packet {} appears twice (byte {})", z, i));
                packets[z].assign(box + 8, box + box_n);
            }
        }
        if (c2pa) {
            if (ended) return Error::bad_file(name, fmt::format("JPEG: the C2PA manifest store's segments are not consecutive (byte {})", i));
            last_end = i + seg.size;
        } else if (!packets.empty()) {
            ended = true;
        }
    }
    if (packets.empty()) return loc;
    uint32_t expect = 1;
    for (auto& [z, bytes] : packets) {
        if (z != expect) return Error::bad_file(name, fmt::format("JPEG: C2PA packet {} is missing", expect));
        ++expect;
        loc.store.insert(loc.store.end(), bytes.begin(), bytes.end());
    }
    loc.found = true;
    loc.start = first;
    loc.length = last_end - first;
    return loc;
}

Result<size_t> c2pa_store_offset(const std::vector<uint8_t>& file, const std::string& name) {
    if (is_png(file.data(), file.size())) {
        if (file.size() < 33 || std::memcmp(file.data() + 12, "IHDR", 4) != 0 || be32(file.data() + 8) != 13)
            return Error::bad_file(name, "PNG: the first chunk is not a 13-byte IHDR");
        return size_t(33);
    }
    if (!is_jpeg(file.data(), file.size())) return Error::invalid_argument("C2PA manifests are embedded in PNG and JPEG files only", name);
    EASEL_TRY_ASSIGN(std::vector<JpegSegment> segments, jpeg_head_segments(file.data(), file.size(), name));
    size_t at = 2;
    for (const JpegSegment& seg : segments) {
        if (seg.code < 0xe0 || seg.code > 0xef || seg.offset != at) break;
        at += seg.size;
    }
    return at;
}

size_t c2pa_store_container_size(const std::vector<uint8_t>& file, size_t store_size) {
    if (is_png(file.data(), file.size())) return 12 + store_size;
    // Packet 1 holds the box from its start; each later one repeats the 8-byte header before its part.
    size_t total = kApp11Overhead + std::min(store_size, kApp11MaxBody);
    for (size_t left = store_size > kApp11MaxBody ? store_size - kApp11MaxBody : 0; left > 0;) {
        const size_t part = std::min(left, kApp11MaxBody - 8);
        total += kApp11Overhead + 8 + part;
        left -= part;
    }
    return total;
}

Result<std::vector<uint8_t>> embed_c2pa_store(const std::vector<uint8_t>& file, const std::vector<uint8_t>& store,
                                              const std::string& name) {
    EASEL_TRY_ASSIGN(C2paStoreLocation existing, find_c2pa_store(file.data(), file.size(), name));
    if (existing.found) return Error::invalid_argument("the image already holds a C2PA manifest store", name);
    if (store.size() < 8 || store.size() > (size_t(1) << 30)) return Error::invalid_argument("a C2PA manifest store of an impossible size", name);
    EASEL_TRY_ASSIGN(size_t at, c2pa_store_offset(file, name));
    std::vector<uint8_t> holder;
    if (is_png(file.data(), file.size())) {
        put32(holder, uint32_t(store.size()));
        const size_t type_at = holder.size();
        holder.insert(holder.end(), {'c', 'a', 'B', 'X'});
        holder.insert(holder.end(), store.begin(), store.end());
        put32(holder, uint32_t(crc32(crc32(0, nullptr, 0), holder.data() + type_at, uInt(holder.size() - type_at))));
    } else {
        auto segment = [&](uint32_t z, const uint8_t* header, const uint8_t* part, size_t n) {
            const size_t lp = 2 + 2 + 2 + 4 + (header ? 8 : 0) + n;
            holder.insert(holder.end(), {0xff, 0xeb, uint8_t(lp >> 8), uint8_t(lp), 'J', 'P', uint8_t(kC2paBoxInstance >> 8), uint8_t(kC2paBoxInstance)});
            put32(holder, z);
            if (header) holder.insert(holder.end(), header, header + 8);
            holder.insert(holder.end(), part, part + n);
        };
        size_t done = std::min(store.size(), kApp11MaxBody);
        segment(1, nullptr, store.data(), done);
        for (uint32_t z = 2; done < store.size(); ++z) {
            const size_t part = std::min(store.size() - done, kApp11MaxBody - 8);
            segment(z, store.data(), store.data() + done, part);
            done += part;
        }
    }
    std::vector<uint8_t> out;
    out.reserve(file.size() + holder.size());
    out.insert(out.end(), file.begin(), file.begin() + std::ptrdiff_t(at));
    out.insert(out.end(), holder.begin(), holder.end());
    out.insert(out.end(), file.begin() + std::ptrdiff_t(at), file.end());
    return out;
}

}  // namespace easel
