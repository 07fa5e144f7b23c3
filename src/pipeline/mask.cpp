#include "pipeline/mask.h"

#include <algorithm>
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

}  // namespace easel
