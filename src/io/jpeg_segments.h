// The marker segments at the head of a JPEG file (APPn, COM, DQT, SOF...), up to its image data: where easel reads
// and writes metadata (the COM infotext, APP1 XMP, APP11 C2PA boxes).
//
//   EASEL_TRY_ASSIGN(auto segments, jpeg_head_segments(data, size, "in.jpg"));
//   for (const JpegSegment& s : segments) if (s.code == 0xfe) comment.assign(s.body, s.body + s.body_size);
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace easel {

struct JpegSegment {
    uint8_t code = 0;            // the marker's second byte (0xE0..0xEF APPn, 0xFE COM, ...)
    size_t offset = 0;           // of its 0xFF
    size_t size = 0;             // the whole segment: marker, length and body
    const uint8_t* body = nullptr;
    size_t body_size = 0;
};

// In file order, up to the start of scan or the end of image; the data must start with a JPEG's SOI. An error names
// the byte where a marker was expected, or the segment that runs past the end.
Result<std::vector<JpegSegment>> jpeg_head_segments(const uint8_t* data, size_t size, const std::string& name_for_errors);

}  // namespace easel
