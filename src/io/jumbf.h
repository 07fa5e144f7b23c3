// JUMBF boxes (ISO/IEC 19566-5), the container of a C2PA manifest store, and where PNG and JPEG files keep one:
// PNG in a `caBX` chunk, JPEG in APP11 segments (JPEG XT's box format: "JP", a box instance number, a packet
// sequence number, and the box split across segments). io/c2pa.h builds and checks the manifest inside.
//
//   JumbfBox store = jumbf_superbox(kJumbfC2paStore, "c2pa", {manifest});
//   std::vector<uint8_t> bytes = serialize_jumbf(store);
//   EASEL_TRY_ASSIGN(auto file_with_store, embed_c2pa_store(png_bytes, bytes, "out.png"));
//   EASEL_TRY_ASSIGN(C2paStoreLocation where, find_c2pa_store(file_with_store.data(), file_with_store.size(), "out.png"));
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace easel {

using JumbfUuid = std::array<uint8_t, 16>;

// The description-box types C2PA uses (C2PA 2.1, section 11.1): four ASCII letters, then the ISO suffix
// 0011-0010-8000-00AA00389B71.
JumbfUuid jumbf_uuid(std::string_view four_letters);
extern const JumbfUuid kJumbfC2paStore;      // "c2pa": the manifest store
extern const JumbfUuid kJumbfC2paManifest;   // "c2ma": a manifest
extern const JumbfUuid kJumbfAssertionStore; // "c2as"
extern const JumbfUuid kJumbfClaim;          // "c2cl"
extern const JumbfUuid kJumbfSignature;      // "c2cs"
extern const JumbfUuid kJumbfCborContent;    // "cbor": an assertion held in one CBOR content box
extern const JumbfUuid kJumbfJsonContent;    // "json"

struct JumbfBox {
    std::string type;               // "jumb" for a superbox; else a content box's type ("cbor", "json", ...)
    // A superbox's description box (jumd):
    JumbfUuid uuid{};
    uint8_t toggles = 0x03;         // requestable, label present
    std::string label;
    std::vector<JumbfBox> children;
    // A content box's payload:
    std::vector<uint8_t> data;
    // Where a parsed box lies in the parsed buffer (its header included); 0 for a built one.
    size_t offset = 0;
    size_t size = 0;
    size_t header = 8;  // its LBox and TBox, and XLBox when present (16)
};

JumbfBox jumbf_superbox(const JumbfUuid& uuid, std::string label, std::vector<JumbfBox> children);
JumbfBox jumbf_content(std::string type, std::vector<uint8_t> data);
std::vector<uint8_t> serialize_jumbf(const JumbfBox& box);

// One superbox (the first box of the buffer), its children parsed down to content boxes. Refuses boxes that run
// past their parent, more than 8 levels, more than 10,000 boxes, and a superbox that does not open with jumd.
Result<JumbfBox> parse_jumbf(const uint8_t* data, size_t size, const std::string& name_for_errors);
// The child superbox with this label, or nullptr.
const JumbfBox* jumbf_child(const JumbfBox& box, std::string_view label);

// Where a file keeps its C2PA manifest store: the bytes of the store itself (reassembled from JPEG's segments)
// and the byte range of the chunk or segments that hold it, which the hard binding excludes from its hash.
struct C2paStoreLocation {
    bool found = false;
    std::vector<uint8_t> store;
    size_t start = 0;   // offset of the caBX chunk's length field / the first APP11 segment's 0xFF
    size_t length = 0;  // the whole chunk (length, type, data, CRC) / all the store's segments
};
// PNG or JPEG. found = false when the file has no store; an error when it is not a PNG or JPEG or its store is
// malformed (a second store, a JPEG store in non-consecutive segments, a missing packet).
Result<C2paStoreLocation> find_c2pa_store(const uint8_t* data, size_t size, const std::string& name_for_errors);
// Where embed_c2pa_store will put the store (PNG: after IHDR; JPEG: after the APPn segments that open the file),
// and how many bytes the chunk or segments holding a store of `store_size` bytes take.
Result<size_t> c2pa_store_offset(const std::vector<uint8_t>& file, const std::string& name_for_errors);
size_t c2pa_store_container_size(const std::vector<uint8_t>& file, size_t store_size);
// The file with the store inserted at c2pa_store_offset. The file must not hold a store already.
Result<std::vector<uint8_t>> embed_c2pa_store(const std::vector<uint8_t>& file, const std::vector<uint8_t>& store,
                                              const std::string& name_for_errors);

}  // namespace easel
