#include "pipeline/mask.h"

#include <algorithm>
#include <cmath>

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

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's Resample.c

double bicubic(double x) {
    const double a = -0.5;
    x = std::fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

struct Coeffs {
    std::vector<int> bounds;  // per output: xmin, count
    std::vector<int32_t> k;   // per output: ksize fixed-point weights
    int ksize = 0;
};

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for in -> out samples.
Coeffs precompute(int in_size, int out_size) {
    const double scale = double(in_size) / out_size;
    const double filterscale = std::max(scale, 1.0);
    const double support = 2.0 * filterscale;
    Coeffs c;
    c.ksize = int(std::ceil(support)) * 2 + 1;
    c.bounds.resize(size_t(out_size) * 2);
    c.k.assign(size_t(out_size) * size_t(c.ksize), 0);
    std::vector<double> pre(size_t(c.ksize));
    for (int xx = 0; xx < out_size; ++xx) {
        const double center = (xx + 0.5) * scale;
        const double ss = 1.0 / filterscale;
        int xmin = int(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = int(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double ww = 0;
        for (int x = 0; x < xmax; ++x) {
            pre[size_t(x)] = bicubic((x + xmin - center + 0.5) * ss);
            ww += pre[size_t(x)];
        }
        for (int x = 0; x < xmax; ++x) {
            double v = ww != 0.0 ? pre[size_t(x)] / ww : pre[size_t(x)];
            c.k[size_t(xx * c.ksize + x)] = v < 0 ? int32_t(-0.5 + v * (1 << kPrecisionBits)) : int32_t(0.5 + v * (1 << kPrecisionBits));
        }
        c.bounds[size_t(xx) * 2] = xmin;
        c.bounds[size_t(xx) * 2 + 1] = xmax;
    }
    return c;
}

uint8_t clip8(int64_t in) {
    if (in >= (int64_t(1) << kPrecisionBits << 8)) return 255;
    if (in <= 0) return 0;
    return uint8_t(in >> kPrecisionBits);
}

}  // namespace

std::vector<uint8_t> resize_bicubic_u8(const Image& gray, int out_w, int out_h) {
    const int w = gray.width, h = gray.height;
    std::vector<uint8_t> cur(gray.pixels.begin(), gray.pixels.end());
    int cw = w;
    if (out_w != w) {
        const Coeffs c = precompute(w, out_w);
        std::vector<uint8_t> next(size_t(out_w) * size_t(h));
        for (int y = 0; y < h; ++y)
            for (int xx = 0; xx < out_w; ++xx) {
                const int xmin = c.bounds[size_t(xx) * 2], xn = c.bounds[size_t(xx) * 2 + 1];
                int64_t ss = int64_t(1) << (kPrecisionBits - 1);
                for (int x = 0; x < xn; ++x) ss += int64_t(cur[size_t(y * cw + xmin + x)]) * c.k[size_t(xx * c.ksize + x)];
                next[size_t(y * out_w + xx)] = clip8(ss);
            }
        cur.swap(next);
        cw = out_w;
    }
    if (out_h != h) {
        const Coeffs c = precompute(h, out_h);
        std::vector<uint8_t> next(size_t(cw) * size_t(out_h));
        for (int yy = 0; yy < out_h; ++yy) {
            const int ymin = c.bounds[size_t(yy) * 2], yn = c.bounds[size_t(yy) * 2 + 1];
            for (int x = 0; x < cw; ++x) {
                int64_t ss = int64_t(1) << (kPrecisionBits - 1);
                for (int y = 0; y < yn; ++y) ss += int64_t(cur[size_t((ymin + y) * cw + x)]) * c.k[size_t(yy * c.ksize + y)];
                next[size_t(yy * cw + x)] = clip8(ss);
            }
        }
        cur.swap(next);
    }
    return cur;
}

}  // namespace easel
