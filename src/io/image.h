// Image files: PNG (with text chunks, where AUTOMATIC1111 keeps its `parameters` infotext), JPEG and WebP,
// read and written as 8-bit RGB/RGBA/gray pixels.
//
//   EASEL_TRY_ASSIGN(Image img, read_image("init.png"));          // format from the bytes, not the name
//   EASEL_TRY(write_image("out.png", img, {{"parameters", infotext}}));  // format from the extension
//   EASEL_TRY_ASSIGN(auto text, read_png_text(bytes));            // {"parameters": "..."}
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"

namespace easel {

struct Image {
    int width = 0;
    int height = 0;
    int channels = 0;             // 1 (gray), 3 (RGB) or 4 (RGBA)
    std::vector<uint8_t> pixels;  // row-major, interleaved, height*width*channels bytes
};

enum class ImageFormat { Png, Jpeg, Webp };

using TextChunks = std::map<std::string, std::string>;

// Limits that keep a hostile file from asking for unbounded memory.
constexpr int kMaxImageSide = 16384;
// And at most 64 Mpx in all (8192x8192): a 39-byte WebP header asking for 16136x10353 made libwebp spend seconds
// filling a 668 MB frame (found by fuzz_image). SD input images are far smaller.
constexpr int64_t kMaxImagePixels = int64_t(1) << 26;

Result<ImageFormat> image_format_from_path(const std::string& path);  // by extension
// `max_pixels` lowers the bound below kMaxImagePixels (a server's largest output size): a larger image is refused
// from its header, before any pixel memory is allocated.
Result<Image> decode_image(const uint8_t* data, size_t size, const std::string& name_for_errors = "image",
                           int64_t max_pixels = kMaxImagePixels);
Result<Image> read_image(const std::string& path);
// The bytes of an image file: a regular file of at most 512 MiB (a folder, a device or a larger file is refused).
Result<std::vector<uint8_t>> read_image_file(const std::string& path);

// PNG text chunks (tEXt, zTXt and iTXt) of a PNG in memory.
Result<TextChunks> read_png_text(const uint8_t* data, size_t size, const std::string& name_for_errors = "image");

// `text` goes into PNG text chunks (tEXt when the value is Latin-1, else iTXt in UTF-8, as PIL does) and into a
// JPEG COM segment (key "parameters" only); WebP has no standard place for it and gets none. The key
// "XML:com.adobe.xmp" (io/xmp.h kXmpKey) is an XMP packet, written where each format keeps XMP: PNG's iTXt chunk
// of that name, JPEG's APP1 segment ("http://ns.adobe.com/xap/1.0/"), WebP's "XMP " chunk (extended format).
Result<std::vector<uint8_t>> encode_image(const Image& img, ImageFormat fmt, const TextChunks& text = {},
                                          int quality = 95);
// What encode_image wrote: "parameters" (PNG text, JPEG COM) and "XML:com.adobe.xmp" (all three formats), and any
// other PNG text chunks.
Result<TextChunks> read_image_text(const uint8_t* data, size_t size, const std::string& name_for_errors = "image");
// Writes through a temporary file and a rename, so a failed write never leaves a truncated image.
Status write_file_atomically(const std::string& path, const std::vector<uint8_t>& bytes);
Status write_image(const std::string& path, const Image& img, const TextChunks& text = {}, int quality = 95);

// Pillow's convert("RGB"): gray replicated, alpha dropped (not composited); an RGB image as it is.
Image to_rgb(const Image& img);
// The w x h region at (x, y); the region must lie inside the image (the caller's contract).
Image crop_image(const Image& img, int x, int y, int w, int h);

}  // namespace easel
