#include "io/image_resize.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace easel {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's Resample.c

double bicubic(double x) {
    const double a = -0.5;
    x = std::fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

double sinc(double x) {
    if (x == 0.0) return 1.0;
    x *= M_PI;
    return std::sin(x) / x;
}

double lanczos(double x) { return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3.0) : 0.0; }

struct Coeffs {
    std::vector<int> bounds;  // per output: xmin, count
    std::vector<int32_t> k;   // per output: ksize fixed-point weights
    int ksize = 0;
};

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for in -> out samples.
Coeffs precompute(int in_size, int out_size, ResampleFilter f) {
    const double support_1 = f == ResampleFilter::Lanczos ? 3.0 : 2.0;
    const double scale = double(in_size) / out_size;
    const double filterscale = std::max(scale, 1.0);
    const double support = support_1 * filterscale;
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
            const double t = (x + xmin - center + 0.5) * ss;
            pre[size_t(x)] = f == ResampleFilter::Lanczos ? lanczos(t) : bicubic(t);
            ww += pre[size_t(x)];
        }
        for (int x = 0; x < xmax; ++x) {
            const double v = ww != 0.0 ? pre[size_t(x)] / ww : pre[size_t(x)];
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

Image resize_pillow(const Image& in, int out_w, int out_h, ResampleFilter filter) {
    const int w = in.width, h = in.height, ch = in.channels;
    std::vector<uint8_t> cur(in.pixels.begin(), in.pixels.end());
    int cw = w;
    if (out_w != w) {
        const Coeffs c = precompute(w, out_w, filter);
        std::vector<uint8_t> next(size_t(out_w) * size_t(h) * size_t(ch));
        for (int y = 0; y < h; ++y)
            for (int xx = 0; xx < out_w; ++xx) {
                const int xmin = c.bounds[size_t(xx) * 2], xn = c.bounds[size_t(xx) * 2 + 1];
                for (int k = 0; k < ch; ++k) {
                    int64_t ss = int64_t(1) << (kPrecisionBits - 1);
                    for (int x = 0; x < xn; ++x)
                        ss += int64_t(cur[(size_t(y) * size_t(cw) + size_t(xmin + x)) * size_t(ch) + size_t(k)]) *
                              c.k[size_t(xx * c.ksize + x)];
                    next[(size_t(y) * size_t(out_w) + size_t(xx)) * size_t(ch) + size_t(k)] = clip8(ss);
                }
            }
        cur.swap(next);
        cw = out_w;
    }
    if (out_h != h) {
        const Coeffs c = precompute(h, out_h, filter);
        std::vector<uint8_t> next(size_t(cw) * size_t(out_h) * size_t(ch));
        for (int yy = 0; yy < out_h; ++yy) {
            const int ymin = c.bounds[size_t(yy) * 2], yn = c.bounds[size_t(yy) * 2 + 1];
            for (size_t i = 0; i < size_t(cw) * size_t(ch); ++i) {
                int64_t ss = int64_t(1) << (kPrecisionBits - 1);
                for (int y = 0; y < yn; ++y) ss += int64_t(cur[size_t(ymin + y) * size_t(cw) * size_t(ch) + i]) * c.k[size_t(yy * c.ksize + y)];
                next[size_t(yy) * size_t(cw) * size_t(ch) + i] = clip8(ss);
            }
        }
        cur.swap(next);
    }
    Image out;
    out.width = out_w;
    out.height = out_h;
    out.channels = ch;
    out.pixels = std::move(cur);
    return out;
}

namespace {

struct AreaTap {
    int di, si;
    float alpha;
};

// computeResizeAreaTab: for each output index, the input indices under it and their weights.
std::vector<AreaTap> area_taps(int ssize, int dsize, int cn, double scale) {
    std::vector<AreaTap> tab;
    for (int dx = 0; dx < dsize; ++dx) {
        const double fsx1 = dx * scale, fsx2 = fsx1 + scale;
        const double cell = std::min(scale, ssize - fsx1);
        int sx1 = int(std::ceil(fsx1)), sx2 = int(std::floor(fsx2));
        sx2 = std::min(sx2, ssize - 1);
        sx1 = std::min(sx1, sx2);
        if (sx1 - fsx1 > 1e-3) tab.push_back({dx * cn, (sx1 - 1) * cn, float((sx1 - fsx1) / cell)});
        for (int sx = sx1; sx < sx2; ++sx) tab.push_back({dx * cn, sx * cn, float(1.0 / cell)});
        if (fsx2 - sx2 > 1e-3) tab.push_back({dx * cn, sx2 * cn, float(std::min(std::min(fsx2 - sx2, 1.0), cell) / cell)});
    }
    return tab;
}

uint8_t round_u8(float v) { return uint8_t(std::clamp(std::lrint(v), 0L, 255L)); }

}  // namespace

Image resize_area_opencv(const Image& in, int out_w, int out_h) {
    const int cn = in.channels, W = in.width;
    Image out;
    out.width = out_w;
    out.height = out_h;
    out.channels = cn;
    out.pixels.assign(size_t(out_w) * size_t(out_h) * size_t(cn), 0);
    const double sx = double(in.width) / out_w, sy = double(in.height) / out_h;
    const int ix = int(std::lround(sx)), iy = int(std::lround(sy));
    if (std::fabs(sx - ix) < 1e-15 && std::fabs(sy - iy) < 1e-15) {
        // The integer-scale path: block sums.
        const int area = ix * iy;
        const float inv = 1.0f / float(area);
        for (int y = 0; y < out_h; ++y)
            for (int x = 0; x < out_w; ++x)
                for (int c = 0; c < cn; ++c) {
                    int sum = 0;
                    for (int dy = 0; dy < iy; ++dy)
                        for (int dx = 0; dx < ix; ++dx)
                            sum += in.pixels[(size_t(y * iy + dy) * size_t(W) + size_t(x * ix + dx)) * size_t(cn) + size_t(c)];
                    out.pixels[(size_t(y) * size_t(out_w) + size_t(x)) * size_t(cn) + size_t(c)] =
                        area == 4 ? uint8_t((sum + 2) >> 2) : round_u8(float(sum) * inv);
                }
        return out;
    }
    const std::vector<AreaTap> xtab = area_taps(in.width, out_w, cn, sx);
    const std::vector<AreaTap> ytab = area_taps(in.height, out_h, 1, sy);
    const int dw = out_w * cn;
    std::vector<float> buf(static_cast<size_t>(dw), 0.0f), sum(static_cast<size_t>(dw), 0.0f);
    int prev_dy = ytab.empty() ? 0 : ytab[0].di;
    for (const AreaTap& yt : ytab) {
        const float beta = yt.alpha;
        const uint8_t* S = &in.pixels[size_t(yt.si) * size_t(W) * size_t(cn)];
        std::fill(buf.begin(), buf.end(), 0.0f);
        for (const AreaTap& xt : xtab)
            for (int c = 0; c < cn; ++c) buf[size_t(xt.di + c)] = buf[size_t(xt.di + c)] + float(S[xt.si + c]) * xt.alpha;
        if (yt.di != prev_dy) {
            uint8_t* D = &out.pixels[size_t(prev_dy) * size_t(dw)];
            for (int d = 0; d < dw; ++d) {
                D[d] = round_u8(sum[size_t(d)]);
                sum[size_t(d)] = beta * buf[size_t(d)];
            }
            prev_dy = yt.di;
        } else {
            for (int d = 0; d < dw; ++d) sum[size_t(d)] += beta * buf[size_t(d)];
        }
    }
    uint8_t* D = &out.pixels[size_t(prev_dy) * size_t(dw)];
    for (int d = 0; d < dw; ++d) D[d] = round_u8(sum[size_t(d)]);
    return out;
}

}  // namespace easel
