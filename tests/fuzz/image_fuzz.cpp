// Image decoding (init images and masks come from users and, through the server, from anyone): PNG, JPEG and
// WebP bytes must give an image or an error, never a crash or unbounded allocation; PNG text chunks, JPEG
// segments, WebP chunks and the XMP in them (what `easel verify` reads) likewise.
#include <cstddef>
#include <cstdint>

#include "io/image.h"
#include "io/xmp.h"
#include "pipeline/infotext.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto img = easel::decode_image(data, size, "fuzz");
    if (img) {
        // A decoded image re-encodes (small ones only, to keep the fuzzer fast).
        if (size_t(img->width) * size_t(img->height) <= 4096) (void)easel::encode_image(*img, easel::ImageFormat::Png);
    }
    auto text = easel::read_png_text(data, size, "fuzz");
    if (text) {
        for (const auto& [k, v] : *text) (void)easel::parse_infotext(v);
    }
    if (auto all = easel::read_image_text(data, size, "fuzz"))
        for (const auto& [k, v] : *all) (void)easel::parse_xmp(v);
    (void)easel::parse_xmp(std::string_view(reinterpret_cast<const char*>(data), size));
    (void)easel::parse_infotext(std::string(reinterpret_cast<const char*>(data), size));
    return 0;
}
