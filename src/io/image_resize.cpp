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

namespace {

Image blank_like(const Image& in, int w, int h) {
    Image out;
    out.width = w;
    out.height = h;
    out.channels = in.channels;
    out.pixels.assign(size_t(w) * size_t(h) * size_t(in.channels), 0);
    return out;
}

// OpenCV's scale of an axis: 1 / inv_scale, inv_scale = out / in, both in double.
double cv_scale(int in_size, int out_size) { return 1.0 / (double(out_size) / double(in_size)); }

int clamp_index(int i, int n) { return std::clamp(i, 0, n - 1); }

int16_t cv_coef(float c) { return int16_t(std::clamp(std::lrint(c * 2048.0f), -32768L, 32767L)); }

// One axis of the linear "area mode" (INTER_AREA growing): the first input index and its two weights.
struct LinearTap {
    int s;
    int16_t a0, a1;
};

std::vector<LinearTap> area_linear_taps(int in_size, int out_size, int* xmax) {
    const double scale = cv_scale(in_size, out_size), inv = double(out_size) / double(in_size);
    std::vector<LinearTap> taps;
    *xmax = out_size;
    for (int d = 0; d < out_size; ++d) {
        int s = int(std::floor(d * scale));
        float f = float((d + 1) - (s + 1) * inv);
        f = f <= 0 ? 0.0f : f - std::floor(f);
        if (s + 1 >= in_size) {
            *xmax = std::min(*xmax, d);
            if (s >= in_size - 1) {
                f = 0.0f;
                s = in_size - 1;
            }
        }
        taps.push_back({s, cv_coef(1.0f - f), cv_coef(f)});
    }
    return taps;
}

Image resize_area_linear_opencv(const Image& in, int out_w, int out_h) {
    const int cn = in.channels, W = in.width, H = in.height;
    int xmax = 0, ymax_unused = 0;
    const std::vector<LinearTap> xt = area_linear_taps(W, out_w, &xmax);
    const std::vector<LinearTap> yt = area_linear_taps(H, out_h, &ymax_unused);
    const size_t dw = size_t(out_w) * size_t(cn);
    // The horizontal pass over every input row; past xmax the input value times 2048.
    std::vector<int32_t> rows(size_t(H) * dw);
    for (int y = 0; y < H; ++y) {
        const uint8_t* S = &in.pixels[size_t(y) * size_t(W) * size_t(cn)];
        int32_t* D = &rows[size_t(y) * dw];
        for (int d = 0; d < out_w; ++d)
            for (int c = 0; c < cn; ++c) {
                const LinearTap& t = xt[size_t(d)];
                D[size_t(d) * size_t(cn) + size_t(c)] =
                    d < xmax ? int32_t(S[size_t(t.s) * size_t(cn) + size_t(c)]) * t.a0 + int32_t(S[size_t(t.s + 1) * size_t(cn) + size_t(c)]) * t.a1
                             : int32_t(S[size_t(t.s) * size_t(cn) + size_t(c)]) * 2048;
            }
    }
    Image out = blank_like(in, out_w, out_h);
    for (int y = 0; y < out_h; ++y) {
        const LinearTap& t = yt[size_t(y)];
        const int32_t* S0 = &rows[size_t(clamp_index(t.s, H)) * dw];
        const int32_t* S1 = &rows[size_t(clamp_index(t.s + 1, H)) * dw];
        uint8_t* D = &out.pixels[size_t(y) * dw];
        for (size_t x = 0; x < dw; ++x) {
            const int v = ((int(t.a0) * int(int16_t(std::clamp(S0[x] >> 4, -32768, 32767)))) >> 16) +
                          ((int(t.a1) * int(int16_t(std::clamp(S1[x] >> 4, -32768, 32767)))) >> 16);
            D[x] = uint8_t(std::clamp((std::clamp(v, -32768, 32767) + 2) >> 2, 0, 255));
        }
    }
    return out;
}

}  // namespace

Image resize_cubic_opencv(const Image& in, int out_w, int out_h) {
    const int cn = in.channels, W = in.width, H = in.height;
    struct Tap {
        int s;
        int16_t w[4];
    };
    auto taps = [](int in_size, int out_size) {
        const double scale = cv_scale(in_size, out_size);
        std::vector<Tap> r;
        for (int d = 0; d < out_size; ++d) {
            float f = float((d + 0.5) * scale - 0.5);
            const int s = int(std::floor(f));
            f -= float(s);
            const float A = -0.75f;
            const float c0 = ((A * (f + 1) - 5 * A) * (f + 1) + 8 * A) * (f + 1) - 4 * A;
            const float c1 = ((A + 2) * f - (A + 3)) * f * f + 1;
            const float c2 = ((A + 2) * (1 - f) - (A + 3)) * (1 - f) * (1 - f) + 1;
            const float c3 = 1.0f - c0 - c1 - c2;
            r.push_back({s, {cv_coef(c0), cv_coef(c1), cv_coef(c2), cv_coef(c3)}});
        }
        return r;
    };
    const std::vector<Tap> xt = taps(W, out_w), yt = taps(H, out_h);
    const size_t dw = size_t(out_w) * size_t(cn);
    std::vector<int32_t> rows(size_t(H) * dw);
    for (int y = 0; y < H; ++y) {
        const uint8_t* S = &in.pixels[size_t(y) * size_t(W) * size_t(cn)];
        int32_t* D = &rows[size_t(y) * dw];
        for (int d = 0; d < out_w; ++d) {
            const Tap& t = xt[size_t(d)];
            for (int c = 0; c < cn; ++c) {
                int32_t v = 0;
                for (int k = 0; k < 4; ++k) v += int32_t(S[size_t(clamp_index(t.s - 1 + k, W)) * size_t(cn) + size_t(c)]) * t.w[k];
                D[size_t(d) * size_t(cn) + size_t(c)] = v;
            }
        }
    }
    Image out = blank_like(in, out_w, out_h);
    const size_t vec = dw / 8 * 8;  // what OpenCV's 128-bit SIMD path computes (8 values at a time)
    for (int y = 0; y < out_h; ++y) {
        const Tap& t = yt[size_t(y)];
        const int32_t* S[4];
        float b[4];
        for (int k = 0; k < 4; ++k) {
            S[k] = &rows[size_t(clamp_index(t.s - 1 + k, H)) * dw];
            b[k] = float(t.w[k]) * (1.0f / 4194304.0f);
        }
        uint8_t* D = &out.pixels[size_t(y) * dw];
        for (size_t x = 0; x < vec; ++x) {
            const float v = float(S[0][x]) * b[0] + (float(S[1][x]) * b[1] + (float(S[2][x]) * b[2] + float(S[3][x]) * b[3]));
            D[x] = uint8_t(std::clamp<long>(std::clamp(std::lrint(v), -32768L, 32767L), 0L, 255L));
        }
        for (size_t x = vec; x < dw; ++x) {
            int64_t v = 0;
            for (int k = 0; k < 4; ++k) v += int64_t(S[k][x]) * t.w[k];
            D[x] = uint8_t(std::clamp<int64_t>((v + (int64_t(1) << 21)) >> 22, 0, 255));
        }
    }
    return out;
}

Image resize_nearest_opencv(const Image& in, int out_w, int out_h) {
    const int cn = in.channels;
    const double sx = cv_scale(in.width, out_w), sy = cv_scale(in.height, out_h);
    Image out = blank_like(in, out_w, out_h);
    for (int y = 0; y < out_h; ++y) {
        const int iy = std::min(int(std::floor(y * sy)), in.height - 1);
        for (int x = 0; x < out_w; ++x) {
            const int ix = std::min(int(std::floor(x * sx)), in.width - 1);
            std::copy_n(&in.pixels[(size_t(iy) * size_t(in.width) + size_t(ix)) * size_t(cn)], size_t(cn),
                        &out.pixels[(size_t(y) * size_t(out_w) + size_t(x)) * size_t(cn)]);
        }
    }
    return out;
}

Image resize_area_opencv(const Image& in, int out_w, int out_h) {
    if (out_w > in.width || out_h > in.height) return resize_area_linear_opencv(in, out_w, out_h);
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
