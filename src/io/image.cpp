#include "io/image.h"

#include <jpeglib.h>
#include <png.h>
#include <webp/decode.h>
#include <webp/encode.h>
#include <webp/mux.h>

#include "io/jpeg_segments.h"
#include "io/xmp.h"

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>

#include <fmt/format.h>

namespace easel {

namespace {
// The namespace that opens a JPEG APP1 segment holding XMP, with its terminating NUL.
constexpr char kJpegXmpSignature[] = "http://ns.adobe.com/xap/1.0/";
}  // namespace
namespace {

std::string lower_ext(const std::string& path) {
    std::string ext = std::filesystem::path(path).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return ext;
}

bool is_latin1(const std::string& s) {
    // UTF-8 text is Latin-1-representable if every code point is < 256.
    for (size_t i = 0; i < s.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) continue;
        if ((c == 0xC2 || c == 0xC3) && i + 1 < s.size()) {
            ++i;
            continue;
        }
        return false;
    }
    return true;
}

std::string utf8_to_latin1(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            out += char(c);
        } else {
            out += char(((c & 0x1f) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3f));
            ++i;
        }
    }
    return out;
}

std::string latin1_to_utf8(const char* p, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i) {
        const unsigned char c = static_cast<unsigned char>(p[i]);
        if (c < 0x80) {
            out += char(c);
        } else {
            out += char(0xC0 | (c >> 6));
            out += char(0x80 | (c & 0x3f));
        }
    }
    return out;
}

// ---- PNG -------------------------------------------------------------------------------------------------

struct PngReadState {
    const uint8_t* data;
    size_t size;
    size_t pos;
};

struct PngError {
    std::string message;
};

void png_error_fn(png_structp png, png_const_charp msg) {
    auto* err = static_cast<PngError*>(png_get_error_ptr(png));
    if (err) err->message = msg;
    png_longjmp(png, 1);
}
void png_warning_fn(png_structp, png_const_charp) {}

void png_read_fn(png_structp png, png_bytep out, png_size_t n) {
    auto* st = static_cast<PngReadState*>(png_get_io_ptr(png));
    if (n > st->size - st->pos) png_error(png, "file is truncated");
    std::memcpy(out, st->data + st->pos, n);
    st->pos += n;
}

// Every chunk's declared length must fit in the bytes that follow it. libpng reads a stream and allocates a
// chunk's buffer from its length before reading it (a 1.9 GB tEXt length in a 200-byte file was found by
// fuzz_image), so the whole-buffer check here bounds every allocation by the input's size.
Status check_png_chunks(const uint8_t* data, size_t size, const std::string& name) {
    size_t pos = 8;
    while (size - pos >= 12) {
        const uint32_t len = uint32_t(data[pos]) << 24 | uint32_t(data[pos + 1]) << 16 | uint32_t(data[pos + 2]) << 8 | data[pos + 3];
        std::string type;
        for (int i = 4; i < 8; ++i) {
            const uint8_t c = data[pos + size_t(i)];
            type += (c >= 0x20 && c < 0x7f) ? char(c) : '?';
        }
        if (len > size - pos - 12)
            return Error::bad_file(name, fmt::format("not a valid PNG: chunk '{}' at byte {} declares {} bytes of data but "
                                                     "only {} remain", type, pos, len, size - pos - 12));
        pos += 12 + size_t(len);
        if (type == "IEND") break;
    }
    return ok();
}

// Decodes with libpng's setjmp-based errors confined to this function; no C++ objects with destructors live
// across the setjmp except those declared before it and only touched after.
Result<Image> decode_png(const uint8_t* data, size_t size, const std::string& name, TextChunks* text_out,
                         int64_t max_pixels = kMaxImagePixels) {
    EASEL_TRY(check_png_chunks(data, size, name));
    PngError err;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, png_error_fn, png_warning_fn);
    if (!png) return Error::exhausted("libpng could not allocate a reader", name);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, nullptr, nullptr);
        return Error::exhausted("libpng could not allocate a reader", name);
    }
    PngReadState st{data, size, 0};
    // Every C++ object with a destructor lives outside the setjmp/longjmp span: libpng's errors longjmp back
    // here, and a longjmp over a live std::vector's scope would skip its destructor (a leak the fuzzer found).
    Image img;
    std::vector<png_bytep> rows;
    std::vector<uint8_t> raw;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, nullptr);
        return Error::bad_file(name, "not a valid PNG: " + err.message);
    }
    png_set_read_fn(png, &st, png_read_fn);
    png_set_user_limits(png, kMaxImageSide, kMaxImageSide);
    png_set_chunk_malloc_max(png, 64u << 20);
    png_read_info(png, info);
    const png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (int64_t(w) * int64_t(h) > max_pixels) {
        png_destroy_read_struct(&png, &info, nullptr);
        return Error::bad_file(name, fmt::format("PNG is {}x{}; the limit is {} pixels in all", w, h, max_pixels));
    }
    const int color = png_get_color_type(png, info);
    const int depth = png_get_bit_depth(png, info);
    if (depth == 16) png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    const int ch = png_get_channels(png, info);
    img.width = int(w);
    img.height = int(h);
    img.channels = ch == 2 ? 4 : ch;  // gray+alpha is expanded below
    raw.resize(size_t(w) * h * size_t(ch));
    rows.resize(h);
    for (png_uint_32 y = 0; y < h; ++y) rows[y] = raw.data() + size_t(y) * w * size_t(ch);
    png_read_image(png, rows.data());
    png_read_end(png, info);
    if (text_out) {
        png_textp texts = nullptr;
        int n = 0;
        png_get_text(png, info, &texts, &n);
        for (int i = 0; i < n; ++i) {
            std::string key = texts[i].key ? texts[i].key : "";
            std::string value;
            if (texts[i].compression == PNG_ITXT_COMPRESSION_NONE || texts[i].compression == PNG_ITXT_COMPRESSION_zTXt)
                value.assign(texts[i].text ? texts[i].text : "", texts[i].itxt_length);
            else
                value = latin1_to_utf8(texts[i].text ? texts[i].text : "", texts[i].text_length);
            (*text_out)[key] = value;
        }
    }
    png_destroy_read_struct(&png, &info, nullptr);
    if (ch == 2) {
        img.pixels.resize(size_t(w) * h * 4);
        for (size_t i = 0; i < size_t(w) * h; ++i) {
            img.pixels[i * 4 + 0] = img.pixels[i * 4 + 1] = img.pixels[i * 4 + 2] = raw[i * 2];
            img.pixels[i * 4 + 3] = raw[i * 2 + 1];
        }
    } else {
        img.pixels = std::move(raw);
    }
    return img;
}

void png_write_fn(png_structp png, png_bytep data, png_size_t n) {
    auto* out = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(png));
    out->insert(out->end(), data, data + n);
}
void png_flush_fn(png_structp) {}

Result<std::vector<uint8_t>> encode_png(const Image& img, const TextChunks& text) {
    PngError err;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, png_error_fn, png_warning_fn);
    if (!png) return Error::exhausted("libpng could not allocate a writer");
    png_infop info = png_create_info_struct(png);
    std::vector<uint8_t> out;
    std::vector<png_text> chunks;
    std::vector<std::string> store;  // keeps converted strings alive until the write ends
    store.reserve(text.size() * 2);
    std::vector<png_const_bytep> rows(size_t(img.height));
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return Error::internal("PNG encoding failed: " + err.message);
    }
    png_set_write_fn(png, &out, png_write_fn, png_flush_fn);
    const int color = img.channels == 1 ? PNG_COLOR_TYPE_GRAY
                      : img.channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGB_ALPHA;
    png_set_IHDR(png, info, png_uint_32(img.width), png_uint_32(img.height), 8, color, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    for (const auto& [k, v] : text) {
        png_text t{};
        store.push_back(k);
        t.key = const_cast<char*>(store.back().c_str());
        if (is_latin1(v)) {
            store.push_back(utf8_to_latin1(v));
            t.compression = PNG_TEXT_COMPRESSION_NONE;
            t.text = const_cast<char*>(store.back().c_str());
            t.text_length = store.back().size();
        } else {
            store.push_back(v);
            t.compression = PNG_ITXT_COMPRESSION_NONE;
            t.text = const_cast<char*>(store.back().c_str());
            t.itxt_length = store.back().size();
            t.lang = nullptr;
            t.lang_key = nullptr;
        }
        chunks.push_back(t);
    }
    if (!chunks.empty()) png_set_text(png, info, chunks.data(), int(chunks.size()));
    png_write_info(png, info);
    for (int y = 0; y < img.height; ++y) rows[size_t(y)] = img.pixels.data() + size_t(y) * size_t(img.width) * size_t(img.channels);
    png_write_rows(png, const_cast<png_bytepp>(rows.data()), png_uint_32(img.height));
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return out;
}

// ---- JPEG ------------------------------------------------------------------------------------------------

struct JpegErr {
    jpeg_error_mgr mgr;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

void jpeg_error_exit_fn(j_common_ptr cinfo) {
    auto* e = reinterpret_cast<JpegErr*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, e->message);
    longjmp(e->jump, 1);
}
void jpeg_silent(j_common_ptr) {}

Result<Image> decode_jpeg(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
    jpeg_decompress_struct cinfo{};
    JpegErr err{};
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpeg_error_exit_fn;
    err.mgr.output_message = jpeg_silent;
    Image img;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return Error::bad_file(name, std::string("not a valid JPEG: ") + err.message);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.image_width > unsigned(kMaxImageSide) || cinfo.image_height > unsigned(kMaxImageSide) ||
        int64_t(cinfo.image_width) * int64_t(cinfo.image_height) > max_pixels) {
        jpeg_destroy_decompress(&cinfo);
        return Error::bad_file(name, fmt::format("JPEG is {}x{}; the limit is {} per side and {} pixels in all",
                                                 cinfo.image_width, cinfo.image_height, kMaxImageSide, max_pixels));
    }
    cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    img.width = int(cinfo.output_width);
    img.height = int(cinfo.output_height);
    img.channels = int(cinfo.output_components);
    img.pixels.resize(size_t(img.width) * size_t(img.height) * size_t(img.channels));
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = img.pixels.data() + size_t(cinfo.output_scanline) * size_t(img.width) * size_t(img.channels);
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return img;
}

Result<std::vector<uint8_t>> encode_jpeg(const Image& src, const TextChunks& text, int quality) {
    // JPEG has no alpha: drop it.
    Image img = src;
    if (src.channels == 4) {
        img.channels = 3;
        img.pixels.resize(size_t(src.width) * size_t(src.height) * 3);
        for (size_t i = 0; i < size_t(src.width) * size_t(src.height); ++i)
            for (int c = 0; c < 3; ++c) img.pixels[i * 3 + size_t(c)] = src.pixels[i * 4 + size_t(c)];
    }
    jpeg_compress_struct cinfo{};
    JpegErr err{};
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpeg_error_exit_fn;
    unsigned char* buf = nullptr;
    unsigned long len = 0;
    if (setjmp(err.jump)) {
        jpeg_destroy_compress(&cinfo);
        std::free(buf);
        return Error::internal(std::string("JPEG encoding failed: ") + err.message);
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &buf, &len);
    cinfo.image_width = JDIMENSION(img.width);
    cinfo.image_height = JDIMENSION(img.height);
    cinfo.input_components = img.channels;
    cinfo.in_color_space = img.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, std::clamp(quality, 1, 100), TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    auto it = text.find("parameters");
    if (it != text.end()) {
        const size_t n = std::min<size_t>(it->second.size(), 65533);
        jpeg_write_marker(&cinfo, JPEG_COM, reinterpret_cast<const JOCTET*>(it->second.data()), unsigned(n));
    }
    if (auto x = text.find(std::string(kXmpKey)); x != text.end()) {
        // XMP in APP1 (XMP specification part 3): its namespace, a NUL, the packet; one segment holds 65502 bytes.
        const std::string seg = std::string(kJpegXmpSignature, sizeof kJpegXmpSignature) + x->second;
        if (seg.size() > 65533) return Error::invalid_argument(fmt::format("the XMP packet is {} bytes; a JPEG segment holds 65502", x->second.size()));
        jpeg_write_marker(&cinfo, JPEG_APP0 + 1, reinterpret_cast<const JOCTET*>(seg.data()), unsigned(seg.size()));
    }
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = img.pixels.data() + size_t(cinfo.next_scanline) * size_t(img.width) * size_t(img.channels);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    std::vector<uint8_t> out(buf, buf + len);
    std::free(buf);
    return out;
}

// ---- WebP ------------------------------------------------------------------------------------------------

Result<Image> decode_webp(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
    int w = 0, h = 0;
    if (!WebPGetInfo(data, size, &w, &h)) return Error::bad_file(name, "not a valid WebP image");
    if (w > kMaxImageSide || h > kMaxImageSide || int64_t(w) * int64_t(h) > max_pixels)
        return Error::bad_file(name, fmt::format("WebP is {}x{}; the limit is {} per side and {} pixels in all", w, h,
                                                 kMaxImageSide, max_pixels));
    Image img;
    img.width = w;
    img.height = h;
    img.channels = 4;
    img.pixels.resize(size_t(w) * size_t(h) * 4);
    if (!WebPDecodeRGBAInto(data, size, img.pixels.data(), img.pixels.size(), w * 4))
        return Error::bad_file(name, "WebP image data is corrupt");
    return img;
}

// Adds an XMP packet to a simple WebP file: the extended format (VP8X) with an "XMP " chunk, by libwebpmux.
Result<std::vector<uint8_t>> webp_with_xmp(const std::vector<uint8_t>& webp, const std::string& xmp) {
    WebPData image{webp.data(), webp.size()}, meta{reinterpret_cast<const uint8_t*>(xmp.data()), xmp.size()};
    std::unique_ptr<WebPMux, void (*)(WebPMux*)> mux(WebPMuxNew(), WebPMuxDelete);
    if (!mux || WebPMuxSetImage(mux.get(), &image, 1) != WEBP_MUX_OK || WebPMuxSetChunk(mux.get(), "XMP ", &meta, 1) != WEBP_MUX_OK)
        return Error::internal("cannot add XMP to the WebP image");
    WebPData out{};
    if (WebPMuxAssemble(mux.get(), &out) != WEBP_MUX_OK) return Error::internal("cannot assemble the WebP image with its XMP");
    std::vector<uint8_t> bytes(out.bytes, out.bytes + out.size);
    WebPDataClear(&out);
    return bytes;
}

Result<std::vector<uint8_t>> encode_webp(const Image& img, int quality) {
    uint8_t* buf = nullptr;
    size_t len = 0;
    if (img.channels == 3)
        len = WebPEncodeRGB(img.pixels.data(), img.width, img.height, img.width * 3, float(quality), &buf);
    else if (img.channels == 4)
        len = WebPEncodeRGBA(img.pixels.data(), img.width, img.height, img.width * 4, float(quality), &buf);
    else {
        Image rgb;
        rgb.width = img.width;
        rgb.height = img.height;
        rgb.channels = 3;
        rgb.pixels.resize(img.pixels.size() * 3);
        for (size_t i = 0; i < img.pixels.size(); ++i) rgb.pixels[i * 3] = rgb.pixels[i * 3 + 1] = rgb.pixels[i * 3 + 2] = img.pixels[i];
        return encode_webp(rgb, quality);
    }
    if (len == 0) return Error::internal("WebP encoding failed");
    std::vector<uint8_t> out(buf, buf + len);
    WebPFree(buf);
    return out;
}

}  // namespace

Result<ImageFormat> image_format_from_path(const std::string& path) {
    const std::string ext = lower_ext(path);
    if (ext == ".png") return ImageFormat::Png;
    if (ext == ".jpg" || ext == ".jpeg") return ImageFormat::Jpeg;
    if (ext == ".webp") return ImageFormat::Webp;
    return Error::invalid_argument(
        fmt::format("cannot tell the image format from the extension '{}'; use .png, .jpg/.jpeg or .webp", ext), path);
}

Result<Image> decode_image(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
    static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    max_pixels = std::min(max_pixels, kMaxImagePixels);
    if (size >= 8 && std::memcmp(data, kPng, 8) == 0) return decode_png(data, size, name, nullptr, max_pixels);
    if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) return decode_jpeg(data, size, name, max_pixels);
    if (size >= 12 && std::memcmp(data, "RIFF", 4) == 0 && std::memcmp(data + 8, "WEBP", 4) == 0)
        return decode_webp(data, size, name, max_pixels);
    return Error::bad_file(name, "not a PNG, JPEG or WebP image (unrecognised first bytes)");
}

Result<std::vector<uint8_t>> read_image_file(const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) return Error::not_found("no such image file", path);
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) return Error::io("cannot read: " + ec.message(), path);
    if (size > (512u << 20)) return Error::bad_file(path, fmt::format("image file is {} bytes; the limit is 512 MiB", size));
    std::ifstream in(path, std::ios::binary);
    if (!in) return Error::io("cannot open for reading", path);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

Result<Image> read_image(const std::string& path) {
    EASEL_TRY_ASSIGN(std::vector<uint8_t> bytes, read_image_file(path));
    return decode_image(bytes.data(), bytes.size(), path);
}

Result<TextChunks> read_png_text(const uint8_t* data, size_t size, const std::string& name) {
    static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (size < 8 || std::memcmp(data, kPng, 8) != 0) return Error::bad_file(name, "not a PNG image");
    TextChunks text;
    EASEL_TRY(decode_png(data, size, name, &text));
    return text;
}

Result<TextChunks> read_image_text(const uint8_t* data, size_t size, const std::string& name) {
    static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    TextChunks text;
    if (size >= 8 && std::memcmp(data, kPng, 8) == 0) return read_png_text(data, size, name);
    if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) {
        EASEL_TRY_ASSIGN(std::vector<JpegSegment> segments, jpeg_head_segments(data, size, name));
        for (const JpegSegment& seg : segments) {
            const char* body = reinterpret_cast<const char*>(seg.body);
            const size_t n = seg.body_size;
            if (seg.code == 0xfe) text["parameters"] = std::string(body, n);
            if (seg.code == 0xe1 && n >= sizeof kJpegXmpSignature && std::memcmp(body, kJpegXmpSignature, sizeof kJpegXmpSignature) == 0)
                text[std::string(kXmpKey)] = std::string(body + sizeof kJpegXmpSignature, n - sizeof kJpegXmpSignature);
        }
        return text;
    }
    if (size >= 12 && std::memcmp(data, "RIFF", 4) == 0 && std::memcmp(data + 8, "WEBP", 4) == 0) {
        WebPData in{data, size};
        std::unique_ptr<WebPMux, void (*)(WebPMux*)> mux(WebPMuxCreate(&in, 0), WebPMuxDelete);
        if (!mux) return Error::bad_file(name, "not a valid WebP file");
        WebPData xmp{};
        if (WebPMuxGetChunk(mux.get(), "XMP ", &xmp) == WEBP_MUX_OK)
            text[std::string(kXmpKey)] = std::string(reinterpret_cast<const char*>(xmp.bytes), xmp.size);
        return text;
    }
    return Error::bad_file(name, "not a PNG, JPEG or WebP image (unrecognised first bytes)");
}

Result<std::vector<uint8_t>> encode_image(const Image& img, ImageFormat fmt, const TextChunks& text, int quality) {
    if (img.width <= 0 || img.height <= 0 || img.width > kMaxImageSide || img.height > kMaxImageSide)
        return Error::invalid_argument(fmt::format("cannot encode a {}x{} image", img.width, img.height));
    if (img.channels != 1 && img.channels != 3 && img.channels != 4)
        return Error::invalid_argument(fmt::format("cannot encode an image with {} channels", img.channels));
    if (img.pixels.size() != size_t(img.width) * size_t(img.height) * size_t(img.channels))
        return Error::invalid_argument("image pixel buffer does not match its size");
    switch (fmt) {
        case ImageFormat::Png: return encode_png(img, text);
        case ImageFormat::Jpeg: return encode_jpeg(img, text, quality);
        case ImageFormat::Webp: {
            EASEL_TRY_ASSIGN(std::vector<uint8_t> webp, encode_webp(img, quality));
            auto x = text.find(std::string(kXmpKey));
            return x == text.end() ? Result<std::vector<uint8_t>>(std::move(webp)) : webp_with_xmp(webp, x->second);
        }
    }
    return Error::internal("unknown image format");
}

Status write_image(const std::string& path, const Image& img, const TextChunks& text, int quality) {
    EASEL_TRY_ASSIGN(ImageFormat fmt, image_format_from_path(path));
    EASEL_TRY_ASSIGN(std::vector<uint8_t> bytes, encode_image(img, fmt, text, quality));
    return write_file_atomically(path, bytes);
}

Status write_file_atomically(const std::string& path, const std::vector<uint8_t>& bytes) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) return Error::io("cannot open for writing", tmp);
        out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
        out.flush();
        if (!out) {
            std::error_code ec;
            std::filesystem::remove(tmp, ec);
            return Error::io("write failed (disk full?)", tmp);
        }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::filesystem::remove(tmp, ec);
        return Error::io("cannot rename the finished file into place: " + ec.message(), path);
    }
    return ok();
}

Image to_rgb(const Image& img) {
    if (img.channels == 3) return img;
    Image c;
    c.width = img.width;
    c.height = img.height;
    c.channels = 3;
    const size_t n = size_t(img.width) * size_t(img.height), in = size_t(img.channels);
    c.pixels.resize(n * 3);
    for (size_t p = 0; p < n; ++p)
        for (size_t k = 0; k < 3; ++k) c.pixels[p * 3 + k] = img.pixels[p * in + (in < 3 ? 0 : k)];
    return c;
}

Image crop_image(const Image& img, int x, int y, int w, int h) {
    EASEL_ASSERT(x >= 0 && y >= 0 && w >= 0 && h >= 0 && x + w <= img.width && y + h <= img.height,
                 "crop_image: region outside the image");
    Image cut;
    cut.width = w;
    cut.height = h;
    cut.channels = img.channels;
    const size_t ch = size_t(img.channels);
    cut.pixels.resize(size_t(w) * size_t(h) * ch);
    for (int r = 0; r < h; ++r)
        std::copy_n(img.pixels.begin() + ptrdiff_t((size_t(y + r) * size_t(img.width) + size_t(x)) * ch), size_t(w) * ch,
                    cut.pixels.begin() + ptrdiff_t(size_t(r) * size_t(w) * ch));
    return cut;
}

}  // namespace easel
