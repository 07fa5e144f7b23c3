// What an image says about where it came from, as `easel verify` and the server's /v1/verify report it: the XMP
// label and fields, A1111's infotext, the invisible watermarks a decoder reads, and the C2PA content credential
// with every check (io/c2pa.h). One verdict sums them up, with an exit status a script can use.
//
//   EASEL_TRY_ASSIGN(ImageProvenance p, inspect_image_provenance(bytes.data(), bytes.size(), anchors, "x.png"));
//   std::printf("%s", provenance_report_text(p).c_str());   // p.verdict, p.exit_status()
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/c2pa.h"
#include "io/image.h"
#include "io/xmp.h"

namespace easel {

struct WatermarkReading {
    std::string name;  // "Stable Diffusion (StableDiffusionV1, U)", "SDXL (diffusers, U)", "easel (V)"
    size_t right = 0;  // bits read as the message has them
    size_t bits = 0;
    bool found = false;  // at 85% of the bits or more
};

enum class ProvenanceVerdict {
    Signed,         // a C2PA credential, intact (its signature, assertions and hard binding all hold)
    Labelled,       // no credential; the XMP label says AI-generated
    WatermarkOnly,  // no credential or label (stripped, or the image was re-encoded); a watermark is there
    None,           // no mark of any kind (another tool's image, or one scrubbed of every mark)
    Tampered,       // a credential whose checks fail: the image, its metadata or the credential was changed
};

struct ImageProvenance {
    std::string label;           // the XMP digital source type ("" none)
    XmpFields xmp;
    std::string infotext;        // A1111's `parameters`
    int width = 0, height = 0;
    std::string decode_error;    // the image does not decode (reported only beside a credential; else an error)
    bool watermark_readable = false;  // at least 256x256
    std::vector<WatermarkReading> watermarks;
    C2paReport c2pa;
    ProvenanceVerdict verdict = ProvenanceVerdict::None;

    // 0: signed, labelled or watermarked; 1: no mark; 3: tampered (2 is left for an unreadable file).
    int exit_status() const;
    std::string verdict_text() const;  // one line, e.g. "tampered: the image's bytes do not match ..."
};

const char* verdict_name(ProvenanceVerdict v);  // "signed", "labelled", "watermark-only", "none", "tampered"

// Fails only when the bytes are not a PNG, JPEG or WebP image that decodes (of at most `max_pixels`).
Result<ImageProvenance> inspect_image_provenance(const uint8_t* data, size_t size, const std::vector<DerCertificate>& trust_anchors,
                                                 const std::string& name_for_errors, int64_t max_pixels = kMaxImagePixels);
std::string provenance_report_text(const ImageProvenance& p);  // indented lines, as `easel verify` prints them
nlohmann::json provenance_report_json(const ImageProvenance& p);

}  // namespace easel
