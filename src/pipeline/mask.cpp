#include "pipeline/mask.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "io/image_resize.h"

namespace easel {

Image mask_to_gray(const Image& m) {
    Image g;
    g.width = m.width;
    g.height = m.height;
    g.channels = 1;
    const size_t n = size_t(m.width) * size_t(m.height);
    g.pixels.resize(n);
    bool use_alpha = false;
    if (m.channels == 4)
        for (size_t i = 0; i < n && !use_alpha; ++i) use_alpha = m.pixels[i * 4 + 3] != 255;
    for (size_t i = 0; i < n; ++i) {
        if (m.channels == 1) {
            g.pixels[i] = m.pixels[i];
        } else if (use_alpha) {
            g.pixels[i] = m.pixels[i * 4 + 3] > 128 ? 255 : 0;
        } else {
            const uint8_t* p = &m.pixels[i * size_t(m.channels)];
            // Pillow's L24: (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16
            g.pixels[i] = uint8_t((uint32_t(p[0]) * 19595u + uint32_t(p[1]) * 38470u + uint32_t(p[2]) * 7471u + 0x8000u) >> 16);
        }
    }
    return g;
}

Image mask_to_luma(const Image& m) {
    if (m.channels != 4) return mask_to_gray(m);
    Image rgb{m.width, m.height, 3, std::vector<uint8_t>(size_t(m.width) * size_t(m.height) * 3)};
    for (size_t i = 0; i < size_t(m.width) * size_t(m.height); ++i)
        for (size_t ch = 0; ch < 3; ++ch) rgb.pixels[i * 3 + ch] = m.pixels[i * 4 + ch];
    return mask_to_gray(rgb);
}

namespace {

// OpenCV's BORDER_REFLECT_101: ... 2 1 | 0 1 2 ... n-1 | n-2 n-3 ...
int reflect101(int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) {
        if (i < 0) i = -i;
        if (i >= n) i = 2 * n - 2 - i;
    }
    return i;
}

std::vector<double> gaussian_kernel(int blur) {
    const int k = 2 * int(2.5 * blur + 0.5) + 1;
    std::vector<double> w(static_cast<size_t>(k));
    double sum = 0;
    const double s2 = 2.0 * double(blur) * double(blur);
    for (int i = 0; i < k; ++i) {
        const double x = i - (k - 1) / 2.0;
        w[size_t(i)] = std::exp(-x * x / s2);
        sum += w[size_t(i)];
    }
    for (double& v : w) v /= sum;
    return w;
}

uint8_t round_u8(double v) { return uint8_t(std::clamp(std::lround(v), 0L, 255L)); }

}  // namespace

Image blur_mask(const Image& gray, int blur) {
    if (blur <= 0) return gray;
    const std::vector<double> k = gaussian_kernel(blur);
    const int r = int(k.size() / 2), w = gray.width, h = gray.height;
    Image tmp = gray, out = gray;
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            double s = 0;
            for (int i = -r; i <= r; ++i) s += k[size_t(i + r)] * gray.pixels[size_t(y * w + reflect101(x + i, w))];
            tmp.pixels[size_t(y * w + x)] = round_u8(s);
        }
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            double s = 0;
            for (int i = -r; i <= r; ++i) s += k[size_t(i + r)] * tmp.pixels[size_t(reflect101(y + i, h) * w + x)];
            out.pixels[size_t(y * w + x)] = round_u8(s);
        }
    return out;
}

std::vector<uint8_t> resize_bicubic_u8(const Image& gray, int out_w, int out_h) {
    return resize_pillow(gray, out_w, out_h, ResampleFilter::Bicubic).pixels;
}

namespace {

// Pillow's ImagingGaussianBlur: the radius of each of `passes` extended box blurs whose sum has variance
// radius^2 (Gwosdek et al., "Theoretical foundations of Gaussian convolution by extended box filtering"), in
// single precision as Pillow computes it.
float box_radius_for_gaussian(float radius, int passes) {
    const float sigma2 = radius * radius / float(passes);
    const float big_l = std::sqrt(12.0f * sigma2 + 1.0f);
    const float l = std::floor((big_l - 1.0f) / 2.0f);
    float a = (2 * l + 1) * (l * (l + 1) - 3 * sigma2);
    a /= 6 * (sigma2 - (l + 1) * (l + 1));
    return l + a;
}

// One extended box pass over n bytes `stride` apart, edges extended, in Pillow's fixed point (BoxBlur.c): the
// sum over [-r, r] weighs 2^24 / (2 r + 1) per pixel, the two next pixels share what is left, and the result is
// rounded at bit 24.
void box_pass(uint8_t* v, int n, ptrdiff_t stride, float r, std::vector<uint32_t>& line) {
    const int l = int(r);
    const uint32_t ww = uint32_t(float(1 << 24) / (r * 2 + 1));
    const uint32_t fw = ((1u << 24) - uint32_t(l * 2 + 1) * ww) / 2;
    line.resize(size_t(n));
    for (int i = 0; i < n; ++i) line[size_t(i)] = v[ptrdiff_t(i) * stride];
    auto at = [&](int i) { return line[size_t(std::clamp(i, 0, n - 1))]; };
    uint32_t acc = 0;
    for (int i = -l; i <= l; ++i) acc += at(i);
    for (int x = 0; x < n; ++x) {
        const uint32_t bulk = acc * ww + (at(x - l - 1) + at(x + l + 1)) * fw;
        v[ptrdiff_t(x) * stride] = uint8_t((bulk + (1u << 23)) >> 24);
        acc += at(x + l + 1) - at(x - l);
    }
}

// Pillow's GaussianBlur(radius) of an interleaved 4-channel image: three box passes along x, then three along y.
void gaussian_blur_u8x4(std::vector<uint8_t>& px, int w, int h, float radius) {
    if (radius <= 0) return;
    const float r = box_radius_for_gaussian(radius, 3);
    std::vector<uint32_t> line;
    for (int pass = 0; pass < 3; ++pass)
        for (int y = 0; y < h; ++y)
            for (int ch = 0; ch < 4; ++ch) box_pass(&px[(size_t(y) * size_t(w)) * 4 + size_t(ch)], w, 4, r, line);
    for (int pass = 0; pass < 3; ++pass)
        for (int x = 0; x < w; ++x)
            for (int ch = 0; ch < 4; ++ch) box_pass(&px[size_t(x) * 4 + size_t(ch)], h, ptrdiff_t(w) * 4, r, line);
}

inline uint32_t shift_div255(uint32_t a) { return ((a >> 8) + a) >> 8; }

}  // namespace

Image fill_masked_area(const Image& rgb, const Image& gray) {
    const int w = rgb.width, h = rgb.height;
    const size_t n = size_t(w) * size_t(h);
    // What is not masked, premultiplied: Pillow's paste of the opaque picture through the inverted mask.
    std::vector<uint8_t> masked(n * 4);
    for (size_t i = 0; i < n; ++i) {
        const uint32_t k = 255u - gray.pixels[i];
        for (size_t ch = 0; ch < 3; ++ch) {
            const uint32_t t = uint32_t(rgb.pixels[i * size_t(rgb.channels) + (rgb.channels == 1 ? 0 : ch)]) * k + 128u;
            masked[i * 4 + ch] = uint8_t(shift_div255(t));
        }
        masked[i * 4 + 3] = uint8_t(k);
    }
    std::vector<uint8_t> out(n * 4, 0), blurred;
    static constexpr std::array<std::pair<int, int>, 6> kLayers{{{256, 1}, {64, 1}, {16, 2}, {4, 4}, {2, 2}, {0, 1}}};
    for (auto [radius, repeats] : kLayers) {
        blurred = masked;
        gaussian_blur_u8x4(blurred, w, h, float(radius));
        for (size_t i = 0; i < n; ++i) {  // RGBa -> RGBA
            const uint32_t a = blurred[i * 4 + 3];
            if (a != 0 && a != 255)
                for (size_t ch = 0; ch < 3; ++ch) blurred[i * 4 + ch] = uint8_t(std::min(255u, 255u * blurred[i * 4 + ch] / a));
        }
        for (int rep = 0; rep < repeats; ++rep)
            for (size_t i = 0; i < n; ++i) {  // Pillow's alpha_composite (7 fraction bits)
                const uint8_t* src = &blurred[i * 4];
                uint8_t* dst = &out[i * 4];
                if (src[3] == 0) continue;
                const uint32_t blend = uint32_t(dst[3]) * (255u - src[3]);
                const uint32_t outa255 = uint32_t(src[3]) * 255u + blend;
                const uint32_t coef1 = uint32_t(src[3]) * 255u * 255u * (1u << 7) / outa255;
                const uint32_t coef2 = 255u * (1u << 7) - coef1;
                for (size_t ch = 0; ch < 3; ++ch)
                    dst[ch] = uint8_t(shift_div255(uint32_t(src[ch]) * coef1 + uint32_t(dst[ch]) * coef2 + (0x80u << 7)) >> 7);
                dst[3] = uint8_t(shift_div255(outa255 + 0x80u));
            }
    }
    Image res{w, h, 3, std::vector<uint8_t>(n * 3)};
    for (size_t i = 0; i < n; ++i)
        for (size_t ch = 0; ch < 3; ++ch) res.pixels[i * 3 + ch] = out[i * 4 + ch];
    return res;
}

std::optional<CropRegion> mask_crop_region(const Image& gray, int pad) {
    const int w = gray.width, h = gray.height;
    int x1 = w, y1 = h, x2 = 0, y2 = 0;
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            if (gray.pixels[size_t(y) * size_t(w) + size_t(x)] != 0) {
                x1 = std::min(x1, x);
                y1 = std::min(y1, y);
                x2 = std::max(x2, x + 1);
                y2 = std::max(y2, y + 1);
            }
    if (x2 == 0) return std::nullopt;
    return CropRegion{std::max(x1 - pad, 0), std::max(y1 - pad, 0), std::min(x2 + pad, w), std::min(y2 + pad, h)};
}

namespace {

// One axis of expand_crop_region: grows [lo, hi) by `diff` (half before, the rest after), then moves it back
// inside [0, size) as far as it goes.
void grow_span(int& lo, int& hi, int diff, int size) {
    lo -= diff / 2;
    hi += diff - diff / 2;
    if (hi >= size) {
        const int over = hi - size;
        hi -= over;
        lo -= over;
    }
    if (lo < 0) {
        hi -= lo;
        lo = 0;
    }
    if (hi >= size) hi = size;
}

}  // namespace

CropRegion expand_crop_region(CropRegion r, int processing_w, int processing_h, int image_w, int image_h) {
    const double ratio_crop = double(r.width()) / r.height();
    const double ratio_processing = double(processing_w) / processing_h;
    if (ratio_crop > ratio_processing) {
        const double desired_h = r.width() / ratio_processing;
        grow_span(r.y1, r.y2, int(desired_h - r.height()), image_h);
    } else {
        const double desired_w = r.height() * ratio_processing;
        grow_span(r.x1, r.x2, int(desired_w - r.width()), image_w);
    }
    return r;
}

Image crop_image(const Image& in, const CropRegion& r) {
    Image out{r.width(), r.height(), in.channels, {}};
    out.pixels.resize(size_t(r.width()) * size_t(r.height()) * size_t(in.channels));
    const size_t row = size_t(r.width()) * size_t(in.channels);
    for (int y = 0; y < r.height(); ++y)
        std::copy_n(&in.pixels[(size_t(r.y1 + y) * size_t(in.width) + size_t(r.x1)) * size_t(in.channels)], row,
                    &out.pixels[size_t(y) * row]);
    return out;
}

namespace {

Image to_rgb_or_gray(const Image& in) {
    if (in.channels == 1 || in.channels == 3) return in;
    Image out{in.width, in.height, 3, std::vector<uint8_t>(size_t(in.width) * size_t(in.height) * 3)};
    for (size_t i = 0; i < size_t(in.width) * size_t(in.height); ++i)
        for (size_t ch = 0; ch < 3; ++ch) out.pixels[i * 3 + ch] = in.pixels[i * size_t(in.channels) + ch];
    return out;
}

// Pastes `src` into `dst` with its top-left corner at (x0, y0), clipped to dst.
void paste(Image& dst, const Image& src, int x0, int y0) {
    const size_t c = size_t(dst.channels);
    for (int y = std::max(0, -y0); y < src.height && y + y0 < dst.height; ++y)
        for (int x = std::max(0, -x0); x < src.width && x + x0 < dst.width; ++x)
            std::copy_n(&src.pixels[(size_t(y) * size_t(src.width) + size_t(x)) * c], c,
                        &dst.pixels[(size_t(y + y0) * size_t(dst.width) + size_t(x + x0)) * c]);
}

// One row (rows = true) or column of Pillow's resize (its default filter, BICUBIC) with a zero-size box at the
// first (far = false) or last edge: the bicubic weights (a = -0.5) of the two nearest lines at their centres'
// distances from the edge (0.5 and 1.5: 1.125 and -0.125), rounded to 22 fraction bits as Pillow's 8-bit
// resampler does.
Image edge_band(const Image& in, bool rows, bool far) {
    const int n = rows ? in.height : in.width, len = rows ? in.width : in.height;
    const size_t c = size_t(in.channels);
    auto bicubic = [](double x) {
        constexpr double a = -0.5;
        x = std::abs(x);
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
    };
    const double support = 2.0;
    const double center = far ? n : 0;
    int lo = int(center - support + 0.5), hi = int(center + support + 0.5);
    lo = std::max(lo, 0);
    hi = std::min(hi, n);
    std::vector<double> k;
    double total = 0;
    for (int i = lo; i < hi; ++i) total += k.emplace_back(bicubic(i - center + 0.5));
    std::vector<int32_t> kk;
    for (double v : k) kk.push_back(v / total < 0 ? int32_t(-0.5 + v / total * (1 << 22)) : int32_t(0.5 + v / total * (1 << 22)));
    Image out{rows ? len : 1, rows ? 1 : len, in.channels, std::vector<uint8_t>(size_t(len) * c)};
    for (int j = 0; j < len; ++j)
        for (size_t ch = 0; ch < c; ++ch) {
            int64_t acc = 1 << 21;
            for (int i = lo; i < hi; ++i) {
                const size_t at = rows ? size_t(i) * size_t(in.width) + size_t(j) : size_t(j) * size_t(in.width) + size_t(i);
                acc += int64_t(in.pixels[at * c + ch]) * kk[size_t(i - lo)];
            }
            out.pixels[size_t(j) * c + ch] = uint8_t(std::clamp<int64_t>(acc >> 22, 0, 255));
        }
    return out;
}

Image blank_like(const Image& in, int w, int h) {
    return Image{w, h, in.channels, std::vector<uint8_t>(size_t(w) * size_t(h) * size_t(in.channels), 0)};
}

}  // namespace

Image resize_crop_a1111(const Image& in_any, int width, int height) {
    const Image in = to_rgb_or_gray(in_any);
    const double ratio = double(width) / height, src_ratio = double(in.width) / in.height;
    const int src_w = ratio > src_ratio ? width : int(int64_t(in.width) * height / in.height);
    const int src_h = ratio <= src_ratio ? height : int(int64_t(in.height) * width / in.width);
    const Image resized = resize_pillow(in, std::max(1, src_w), std::max(1, src_h), ResampleFilter::Lanczos);
    Image res = blank_like(in, width, height);
    paste(res, resized, width / 2 - src_w / 2, height / 2 - src_h / 2);
    return res;
}

Image resize_fill_a1111(const Image& in_any, int width, int height) {
    const Image in = to_rgb_or_gray(in_any);
    const double ratio = double(width) / height, src_ratio = double(in.width) / in.height;
    const int src_w = ratio < src_ratio ? width : int(int64_t(in.width) * height / in.height);
    const int src_h = ratio >= src_ratio ? height : int(int64_t(in.height) * width / in.width);
    const Image resized = resize_pillow(in, std::max(1, src_w), std::max(1, src_h), ResampleFilter::Lanczos);
    Image res = blank_like(in, width, height);
    const int ox = width / 2 - src_w / 2, oy = height / 2 - src_h / 2;
    paste(res, resized, ox, oy);
    // The bands: Pillow's resize (BICUBIC, A1111 names no filter there) of a zero-wide box on the resized
    // picture's first or last row (column).
    if (ratio < src_ratio && oy > 0) {
        const Image top = edge_band(resized, /*rows=*/true, /*far=*/false), bottom = edge_band(resized, true, true);
        for (int y = 0; y < oy; ++y) paste(res, top, 0, y);
        for (int y = oy + src_h; y < std::min(height, 2 * oy + src_h); ++y) paste(res, bottom, 0, y);
    } else if (ratio > src_ratio && ox > 0) {
        const Image left = edge_band(resized, /*rows=*/false, /*far=*/false), right = edge_band(resized, false, true);
        for (int x = 0; x < ox; ++x) paste(res, left, x, 0);
        for (int x = ox + src_w; x < std::min(width, 2 * ox + src_w); ++x) paste(res, right, x, 0);
    }
    return res;
}

}  // namespace easel
