// Compiled with -ffp-contract=off (src/CMakeLists.txt): the Haar transform must round after every operation, as
// PyWavelets does, or a few percent of pixels truncate differently. Fused multiply-adds appear only where OpenCV's
// float colour conversion has them (std::fmaf, explicitly).
#include "pipeline/watermark.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace easel {

namespace {

constexpr int kBlock = 4;        // 4x4 coefficients of the low band (8x8 pixels) carry one bit
constexpr double kScale = 36.0;  // the library's default step for U (and V)

template <class T>
constexpr T haar_s();
template <>
constexpr double haar_s<double>() { return 0.7071067811865476; }
template <>
constexpr float haar_s<float>() { return 0.70710677f; }

// One level of the 2-D Haar transform of an H4 x W4 plane (both even), in PyWavelets' order of operations:
// pairs of rows first, then pairs of columns. Bands are (H4/2) x (W4/2).
template <class T>
struct Bands {
    int h = 0, w = 0;
    std::vector<T> ll, ch, cv, cd;
};

template <class T>
Bands<T> haar_forward(const std::vector<T>& plane, int H4, int W4) {
    const T s = haar_s<T>();
    Bands<T> b;
    b.h = H4 / 2;
    b.w = W4 / 2;
    const size_t n = size_t(b.h) * size_t(b.w);
    b.ll.resize(n);
    b.ch.resize(n);
    b.cv.resize(n);
    b.cd.resize(n);
    for (int k = 0; k < b.h; ++k)
        for (int l = 0; l < b.w; ++l) {
            const T a = plane[size_t(2 * k) * W4 + 2 * l], bb = plane[size_t(2 * k) * W4 + 2 * l + 1];
            const T c = plane[size_t(2 * k + 1) * W4 + 2 * l], d = plane[size_t(2 * k + 1) * W4 + 2 * l + 1];
            // Rows: low = s*odd + s*even, high = -s*odd + s*even, each product rounded.
            const T sc = s * c, sa = s * a, sd = s * d, sb = s * bb;
            const T a0e = sc + sa, a0o = sd + sb;
            const T d0e = -sc + sa, d0o = -sd + sb;
            // Columns.
            const T p1 = s * a0o, p0 = s * a0e, q1 = s * d0o, q0 = s * d0e;
            const size_t i = size_t(k) * b.w + l;
            b.ll[i] = p1 + p0;
            b.cv[i] = -p1 + p0;
            b.ch[i] = q1 + q0;
            b.cd[i] = -q1 + q0;
        }
    return b;
}

// The library's inverse: PyWavelets' idwt2 given the horizontal and vertical detail bands swapped. Columns first
// (approximation term added first), then rows.
template <class T>
void haar_inverse_swapped(const Bands<T>& b, std::vector<T>& plane, int W4) {
    const T s = haar_s<T>();
    for (int k = 0; k < b.h; ++k)
        for (int l = 0; l < b.w; ++l) {
            const size_t i = size_t(k) * b.w + l;
            const T sl = s * b.ll[i], sh = s * b.ch[i], sv = s * b.cv[i], sd = s * b.cd[i];
            const T ae = sl + sh, ao = sl + -sh;  // (LL, cH) where (LL, cV) belongs
            const T de = sv + sd, dof = sv + -sd;  // (cV, cD) where (cH, cD) belongs
            const T sae = s * ae, sde = s * de, sao = s * ao, sdo = s * dof;
            plane[size_t(2 * k) * W4 + 2 * l] = sae + sde;
            plane[size_t(2 * k + 1) * W4 + 2 * l] = sae + -sde;
            plane[size_t(2 * k) * W4 + 2 * l + 1] = sao + sdo;
            plane[size_t(2 * k + 1) * W4 + 2 * l + 1] = sao + -sdo;
        }
}

// Block by block in row-major order, block n carrying bit n mod L: the index (1..15, first on ties) of the largest
// magnitude after the block's first coefficient.
template <class T, class F>
void for_each_block(Bands<T>& b, F f) {
    int n = 0;
    for (int i = 0; i + kBlock <= b.h; i += kBlock)
        for (int j = 0; j + kBlock <= b.w; j += kBlock, ++n) {
            T* best = nullptr;
            T best_abs = 0;
            for (int m = 1; m < kBlock * kBlock; ++m) {
                T& c = b.ll[size_t(i + m / kBlock) * b.w + j + m % kBlock];
                if (!best || std::abs(c) > best_abs) {
                    best = &c;
                    best_abs = std::abs(c);
                }
            }
            f(n, *best);
        }
}

template <class T>
void embed_bits(Bands<T>& b, const WatermarkBits& bits) {
    for_each_block(b, [&](int n, T& c) {
        const T mag = std::abs(c);
        const T q = (mag - std::fmod(mag, T(kScale))) / T(kScale);  // Python's floor division, exactly
        const T moved = (q + T(0.25) + T(0.5) * T(bits[size_t(n) % bits.size()])) * T(kScale);
        c = c >= 0 ? moved : -moved;
    });
}

template <class T>
WatermarkBits decode_bits(Bands<T>& b, size_t length) {
    std::vector<int> ones(length, 0), count(length, 0);
    for_each_block(b, [&](int n, T& c) {
        const size_t bit = size_t(n) % length;
        ++count[bit];
        ones[bit] += std::fmod(std::abs(c), T(kScale)) > T(kScale / 2) ? 1 : 0;
    });
    WatermarkBits out(length);
    for (size_t i = 0; i < length; ++i) out[i] = 255 * int64_t(ones[i]) > 127 * int64_t(count[i]) ? 1 : 0;  // mean*255 > 127
    return out;
}

// OpenCV's 8-bit BGR <-> YUV (fixed point, 14 bits).
int descale(int x) { return (x + (1 << 13)) >> 14; }
uint8_t sat(int x) { return uint8_t(std::clamp(x, 0, 255)); }

struct Yuv8 {
    std::vector<uint8_t> y, u, v;
};

Yuv8 rgb_to_yuv8(const Image& img) {
    const size_t n = size_t(img.width) * size_t(img.height);
    Yuv8 o{std::vector<uint8_t>(n), std::vector<uint8_t>(n), std::vector<uint8_t>(n)};
    for (size_t i = 0; i < n; ++i) {
        const int R = img.pixels[i * 3], G = img.pixels[i * 3 + 1], B = img.pixels[i * 3 + 2];
        const int Y = sat(descale(B * 1868 + G * 9617 + R * 4899));
        o.y[i] = uint8_t(Y);
        o.u[i] = sat(descale((B - Y) * 8061 + 128 * 16384));
        o.v[i] = sat(descale((R - Y) * 14369 + 128 * 16384));
    }
    return o;
}

void yuv8_to_rgb(const Yuv8& yuv, Image& img) {
    const size_t n = size_t(img.width) * size_t(img.height);
    for (size_t i = 0; i < n; ++i) {
        const int Y = yuv.y[i], u = yuv.u[i] - 128, v = yuv.v[i] - 128;
        img.pixels[i * 3 + 2] = sat(Y + descale(u * 33292));
        img.pixels[i * 3 + 1] = sat(Y + descale(u * -6472 + v * -9519));
        img.pixels[i * 3] = sat(Y + descale(v * 18678));
    }
}

Status check_size(int w, int h, const char* what) {
    if (int64_t(w) * int64_t(h) < kWatermarkMinPixels)
        return Error::invalid_argument(fmt::format("the watermark needs at least 256x256 pixels; {} is {}x{}", what, w, h));
    return ok();
}

// The top-left region whose sides are multiples of 4, of one 8-bit plane, as doubles.
std::vector<double> region8(const std::vector<uint8_t>& p, int W, int H4, int W4) {
    std::vector<double> r(size_t(H4) * W4);
    for (int y = 0; y < H4; ++y)
        for (int x = 0; x < W4; ++x) r[size_t(y) * W4 + x] = p[size_t(y) * W + x];
    return r;
}

// The float path's colour conversion (OpenCV's SIMD loop: fused multiply-adds, offset 0.5).
struct YuvF {
    std::vector<float> y, u, v;
};

YuvF chw_to_yuvf(const float* chw, int h, int w) {
    const size_t n = size_t(h) * size_t(w);
    YuvF o{std::vector<float>(n), std::vector<float>(n), std::vector<float>(n)};
    auto x255 = [](float x) { return ((x / 2.0f) + 0.5f) * 255.0f; };  // diffusers: 255 * (x / 2 + 0.5), each op rounded
    for (size_t i = 0; i < n; ++i) {
        const float R = x255(chw[i]), G = x255(chw[n + i]), B = x255(chw[2 * n + i]);
        const float Y = std::fmaf(B, 0.114f, std::fmaf(G, 0.587f, R * 0.299f));
        o.y[i] = Y;
        o.u[i] = std::fmaf(B - Y, 0.492f, 0.5f);
        o.v[i] = std::fmaf(R - Y, 0.877f, 0.5f);
    }
    return o;
}

}  // namespace

WatermarkBits watermark_bits(std::string_view bytes) {
    WatermarkBits bits;
    for (unsigned char c : bytes)
        for (int i = 7; i >= 0; --i) bits.push_back(uint8_t((c >> i) & 1));
    return bits;
}

const WatermarkBits& sd_watermark_bits() {
    static const WatermarkBits b = watermark_bits("StableDiffusionV1");
    return b;
}

const WatermarkBits& sdxl_watermark_bits() {
    static const WatermarkBits b = [] {
        WatermarkBits v;
        const uint64_t msg = 0xB3EC907BB19Eull;  // diffusers' WATERMARK_MESSAGE, most significant bit first
        for (int i = 47; i >= 0; --i) v.push_back(uint8_t((msg >> i) & 1));
        return v;
    }();
    return b;
}

const WatermarkBits& easel_watermark_bits() {
    static const WatermarkBits b = watermark_bits("easel");
    return b;
}

Status embed_watermarks(Image& img, const WatermarkBits* u, const WatermarkBits* v) {
    if (img.channels != 3) return Error::invalid_argument(fmt::format("the watermark takes an RGB image, not {} channels", img.channels));
    if ((u && u->empty()) || (v && v->empty())) return Error::invalid_argument("the watermark message is empty");
    EASEL_TRY(check_size(img.width, img.height, "the image"));
    Yuv8 yuv = rgb_to_yuv8(img);
    const int H4 = img.height / 4 * 4, W4 = img.width / 4 * 4;
    for (auto [plane, bits] : {std::pair{&yuv.u, u}, std::pair{&yuv.v, v}}) {
        if (!bits) continue;
        Bands<double> b = haar_forward(region8(*plane, img.width, H4, W4), H4, W4);
        embed_bits(b, *bits);
        std::vector<double> out(size_t(H4) * W4);
        haar_inverse_swapped(b, out, W4);
        for (int y = 0; y < H4; ++y)
            for (int x = 0; x < W4; ++x)  // numpy's float -> uint8 cast: truncation
                (*plane)[size_t(y) * img.width + x] = uint8_t(std::clamp(int(out[size_t(y) * W4 + x]), 0, 255));
    }
    yuv8_to_rgb(yuv, img);
    return ok();
}

Status embed_watermark(Image& img, const WatermarkBits& bits, WatermarkChannel channel) {
    return channel == WatermarkChannel::U ? embed_watermarks(img, &bits, nullptr) : embed_watermarks(img, nullptr, &bits);
}

Result<WatermarkBits> decode_watermark(const Image& img, size_t length, WatermarkChannel channel) {
    if (img.channels != 3) return Error::invalid_argument(fmt::format("the watermark takes an RGB image, not {} channels", img.channels));
    if (length == 0) return Error::invalid_argument("the watermark length is 0");
    EASEL_TRY(check_size(img.width, img.height, "the image"));
    const Yuv8 yuv = rgb_to_yuv8(img);
    const int H4 = img.height / 4 * 4, W4 = img.width / 4 * 4;
    Bands<double> b = haar_forward(region8(channel == WatermarkChannel::U ? yuv.u : yuv.v, img.width, H4, W4), H4, W4);
    return decode_bits(b, length);
}

Status embed_watermark_sdxl(float* chw, int h, int w) {
    if (w < 256) return ok();  // diffusers checks the width alone
    EASEL_TRY(check_size(w, h, "the image"));
    YuvF yuv = chw_to_yuvf(chw, h, w);
    const int H4 = h / 4 * 4, W4 = w / 4 * 4;
    std::vector<float> region(size_t(H4) * W4);
    for (int y = 0; y < H4; ++y)
        for (int x = 0; x < W4; ++x) region[size_t(y) * W4 + x] = yuv.u[size_t(y) * w + x];
    Bands<float> b = haar_forward(region, H4, W4);
    embed_bits(b, sdxl_watermark_bits());
    haar_inverse_swapped(b, region, W4);
    for (int y = 0; y < H4; ++y)
        for (int x = 0; x < W4; ++x) yuv.u[size_t(y) * w + x] = region[size_t(y) * W4 + x];
    const size_t n = size_t(h) * size_t(w);
    auto back = [](float v255) { return std::clamp(((v255 / 255.0f) - 0.5f) * 2.0f, -1.0f, 1.0f); };
    for (size_t i = 0; i < n; ++i) {
        const float Y = yuv.y[i], u = yuv.u[i] - 0.5f, v = yuv.v[i] - 0.5f;
        const float B = std::fmaf(u, 2.032f, Y);
        const float G = std::fmaf(v, -0.581f, std::fmaf(u, -0.395f, Y));
        const float R = std::fmaf(v, 1.140f, Y);
        chw[i] = back(R);
        chw[n + i] = back(G);
        chw[2 * n + i] = back(B);
    }
    return ok();
}

Result<WatermarkBits> decode_watermark_sdxl(const float* chw, int h, int w, size_t length) {
    if (length == 0) return Error::invalid_argument("the watermark length is 0");
    EASEL_TRY(check_size(w, h, "the image"));
    const YuvF yuv = chw_to_yuvf(chw, h, w);
    const int H4 = h / 4 * 4, W4 = w / 4 * 4;
    std::vector<float> region(size_t(H4) * W4);
    for (int y = 0; y < H4; ++y)
        for (int x = 0; x < W4; ++x) region[size_t(y) * W4 + x] = yuv.u[size_t(y) * w + x];
    Bands<float> b = haar_forward(region, H4, W4);
    return decode_bits(b, length);
}

}  // namespace easel
