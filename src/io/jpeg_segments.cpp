#include "io/jpeg_segments.h"

#include <fmt/format.h>

namespace easel {

Result<std::vector<JpegSegment>> jpeg_head_segments(const uint8_t* data, size_t size, const std::string& name) {
    std::vector<JpegSegment> out;
    // Each marker is 0xFF and a code; a segment's big-endian length counts itself.
    for (size_t i = 2; i + 4 <= size;) {
        if (data[i] != 0xff) return Error::bad_file(name, fmt::format("JPEG marker expected at byte {}", i));
        const uint8_t code = data[i + 1];
        if (code == 0xd8 || (code >= 0xd0 && code <= 0xd7) || code == 0x01 || code == 0xff) {  // no length
            i += code == 0xff ? 1 : 2;
            continue;
        }
        if (code == 0xda || code == 0xd9) break;  // start of scan / end of image: no metadata after this
        const size_t len = size_t(data[i + 2]) << 8 | data[i + 3];
        if (len < 2 || i + 2 + len > size) return Error::bad_file(name, fmt::format("JPEG segment at byte {} runs past the end", i));
        out.push_back({code, i, 2 + len, data + i + 4, len - 2});
        i += 2 + len;
    }
    return out;
}

}  // namespace easel
