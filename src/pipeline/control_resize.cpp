#include "pipeline/control_resize.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <unordered_set>
#include <vector>

#include "io/image_resize.h"

namespace easel {

namespace {

// A one-channel 8-bit plane.
struct Plane {
    int w = 0, h = 0;
    std::vector<uint8_t> v;
    uint8_t at(int x, int y) const { return v[size_t(y) * size_t(w) + size_t(x)]; }
};

using Kernel = std::array<std::array<int, 3>, 3>;  // 1: set, -1: clear, 0: either (hit-or-miss); 1/0 for dilate

// np.rot90(k, 1): counter-clockwise, r[i][j] = k[j][2 - i].
Kernel rot90(const Kernel& k) {
    Kernel r{};
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) r[size_t(i)][size_t(j)] = k[size_t(j)][size_t(2 - i)];
    return r;
}

// The patterns and their rotations by 0, 90, 180 and 270 degrees, interleaved as the extension lists them.
std::vector<Kernel> rotations(const std::array<Kernel, 2>& patterns) {
    std::vector<Kernel> r;
    std::array<Kernel, 2> cur = patterns;
    for (int turn = 0; turn < 4; ++turn) {
        for (const Kernel& k : cur) r.push_back(k);
        for (Kernel& k : cur) k = rot90(k);
    }
    return r;
}

const std::vector<Kernel>& thinning_kernels() {
    static const std::vector<Kernel> k = rotations({Kernel{{{-1, -1, -1}, {0, 1, 0}, {1, 1, 1}}},
                                                    Kernel{{{0, -1, -1}, {1, 1, -1}, {0, 1, 0}}}});
    return k;
}

const std::vector<Kernel>& pruning_kernels() {
    static const std::vector<Kernel> k = rotations({Kernel{{{-1, -1, -1}, {-1, 1, -1}, {0, 0, -1}}},
                                                    Kernel{{{-1, -1, -1}, {-1, 1, -1}, {-1, 0, 0}}}});
    return k;
}

// OpenCV's dilate (max) with a 0/1 kernel anchored at its centre; pixels outside the image are left out.
Plane dilate(const Plane& x, const Kernel& k) {
    Plane r{x.w, x.h, std::vector<uint8_t>(x.v.size(), 0)};
    for (int y = 0; y < x.h; ++y)
        for (int i = 0; i < x.w; ++i) {
            uint8_t m = 0;
            for (int dy = -1; dy <= 1; ++dy)
                for (int dx = -1; dx <= 1; ++dx)
                    if (k[size_t(dy + 1)][size_t(dx + 1)] && y + dy >= 0 && y + dy < x.h && i + dx >= 0 && i + dx < x.w)
                        m = std::max(m, x.at(i + dx, y + dy));
            r.v[size_t(y) * size_t(x.w) + size_t(i)] = m;
        }
    return r;
}

// cv2.morphologyEx(x, MORPH_HITMISS, k) > 127 on a 0/255 plane, all matches cleared at once: a match wants every
// pixel under a 1 set and every pixel under a -1 clear (pixels outside the image satisfy both). Returns whether
// any pixel matched.
bool clear_matches(Plane& x, const Kernel& k) {
    std::vector<size_t> hits;
    for (int y = 0; y < x.h; ++y)
        for (int i = 0; i < x.w; ++i) {
            bool match = true;
            for (int dy = -1; dy <= 1 && match; ++dy)
                for (int dx = -1; dx <= 1 && match; ++dx) {
                    const int want = k[size_t(dy + 1)][size_t(dx + 1)];
                    if (want == 0 || y + dy < 0 || y + dy >= x.h || i + dx < 0 || i + dx >= x.w) continue;
                    const bool set = x.at(i + dx, y + dy) == 255;
                    match = want == 1 ? set : x.at(i + dx, y + dy) == 0;
                }
            if (match) hits.push_back(size_t(y) * size_t(x.w) + size_t(i));
        }
    for (size_t p : hits) x.v[p] = 0;
    return !hits.empty();
}

bool clear_all(Plane& x, const std::vector<Kernel>& kernels) {
    bool changed = false;
    for (const Kernel& k : kernels) changed |= clear_matches(x, k);
    return changed;
}

// lvmin_thin: up to 32 rounds of the thinning kernels until one changes nothing, then one of pruning.
void thin(Plane& x, bool prunings) {
    for (int round = 0; round < 32; ++round)
        if (!clear_all(x, thinning_kernels())) break;
    if (prunings) clear_all(x, pruning_kernels());
}

// nake_nms: a pixel is kept when it is the maximum along one of the four 3-pixel lines through it.
Plane line_nms(const Plane& x) {
    static const Kernel lines[4] = {Kernel{{{0, 0, 0}, {1, 1, 1}, {0, 0, 0}}}, Kernel{{{0, 1, 0}, {0, 1, 0}, {0, 1, 0}}},
                                    Kernel{{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}}, Kernel{{{0, 0, 1}, {0, 1, 0}, {1, 0, 0}}}};
    Plane y{x.w, x.h, std::vector<uint8_t>(x.v.size(), 0)};
    for (const Kernel& k : lines) {
        const Plane d = dilate(x, k);
        for (size_t p = 0; p < x.v.size(); ++p)
            if (d.v[p] == x.v[p]) y.v[p] = x.v[p];
    }
    return y;
}

// OpenCV's Otsu threshold (getThreshVal_Otsu_8u, in double), then THRESH_BINARY: 255 above it, else 0.
void otsu_binarize(Plane& x) {
    std::array<double, 256> hist{};
    for (uint8_t v : x.v) hist[v] += 1;
    const double scale = 1.0 / double(x.v.size());
    double mu = 0;
    for (int i = 0; i < 256; ++i) mu += i * hist[size_t(i)];
    mu *= scale;
    double mu1 = 0, q1 = 0, max_sigma = 0;
    int thresh = 0;
    const double eps = double(1.19209290e-07f);  // FLT_EPSILON
    for (int i = 0; i < 256; ++i) {
        const double p = hist[size_t(i)] * scale;
        mu1 *= q1;
        q1 += p;
        const double q2 = 1.0 - q1;
        if (std::min(q1, q2) < eps || std::max(q1, q2) > 1.0 - eps) continue;
        mu1 = (mu1 + i * p) / q1;
        const double mu2 = (mu - q1 * mu1) / q2;
        const double sigma = q1 * q2 * (mu1 - mu2) * (mu1 - mu2);
        if (sigma > max_sigma) {
            max_sigma = sigma;
            thresh = i;
        }
    }
    for (uint8_t& v : x.v) v = v > thresh ? 255 : 0;
}

// More than half of the set values vanish under a 3x3 opening (erode then dilate, per channel).
bool one_pixel_edges(const Image& x) {
    auto filter = [&](const std::vector<uint8_t>& in, bool take_max) {
        std::vector<uint8_t> out(in.size());
        for (int y = 0; y < x.height; ++y)
            for (int i = 0; i < x.width; ++i)
                for (int c = 0; c < 3; ++c) {
                    uint8_t m = take_max ? 0 : 255;
                    for (int dy = -1; dy <= 1; ++dy)
                        for (int dx = -1; dx <= 1; ++dx) {
                            if (y + dy < 0 || y + dy >= x.height || i + dx < 0 || i + dx >= x.width) continue;
                            const uint8_t v = in[(size_t(y + dy) * size_t(x.width) + size_t(i + dx)) * 3 + size_t(c)];
                            m = take_max ? std::max(m, v) : std::min(m, v);
                        }
                    out[(size_t(y) * size_t(x.width) + size_t(i)) * 3 + size_t(c)] = m;
                }
        return out;
    };
    const std::vector<uint8_t> opened = filter(filter(x.pixels, false), true);
    int64_t ones = 0, all = 0;
    for (size_t p = 0; p < x.pixels.size(); ++p) {
        ones += opened[p] < x.pixels[p];
        all += x.pixels[p] > 127;
    }
    return ones * 2 > all;
}

// high_quality_resize of an RGB map to w x h.
Image fit(const Image& x, int w, int h) {
    if (x.width == w && x.height == h) return x;
    std::unordered_set<uint32_t> colours;
    for (size_t p = 0; p < x.pixels.size() && colours.size() < 200; p += 3)
        colours.insert(uint32_t(x.pixels[p]) << 16 | uint32_t(x.pixels[p + 1]) << 8 | x.pixels[p + 2]);
    const size_t n = colours.size();
    const auto [lo, hi] = std::minmax_element(x.pixels.begin(), x.pixels.end());
    const bool binary = n == 2 && *lo < 16 && *hi > 240;
    const bool one_pixel = binary && one_pixel_edges(x);
    const int64_t before = int64_t(x.width) * x.height, after = int64_t(w) * h;
    Image y = n > 2 && n < 200 ? resize_nearest_opencv(x, w, h)
              : after < before ? resize_area_opencv(x, w, h)
                               : resize_cubic_opencv(x, w, h);
    if (!binary) return y;
    // float32 mean of the three channels, truncated to 8 bits
    Plane g{w, h, std::vector<uint8_t>(size_t(w) * size_t(h))};
    for (size_t p = 0; p < g.v.size(); ++p)
        g.v[p] = uint8_t(float(int(y.pixels[p * 3]) + int(y.pixels[p * 3 + 1]) + int(y.pixels[p * 3 + 2])) / 3.0f);
    if (one_pixel) g = line_nms(g);
    otsu_binarize(g);
    if (one_pixel) thin(g, /*prunings=*/after > before);
    for (size_t p = 0; p < g.v.size(); ++p) std::fill_n(&y.pixels[p * 3], 3, g.v[p]);
    return y;
}

int round_half_even(double v) { return int(std::nearbyint(v)); }

}  // namespace

Image fit_control_map_a1111(const Image& rgb, int width, int height, ControlResize mode) {
    if (mode == ControlResize::Stretch) return fit(rgb, width, height);
    const double kh = double(height) / rgb.height, kw = double(width) / rgb.width;
    if (mode == ControlResize::Fill) {
        const double k = std::min(kh, kw);
        const Image small = fit(rgb, std::clamp(round_half_even(rgb.width * k), 1, width),
                                std::clamp(round_half_even(rgb.height * k), 1, height));
        uint8_t colour[3];
        border_median_colour(rgb, colour);
        return centred_on(small, width, height, colour);
    }
    const double k = std::max(kh, kw);
    const Image big = fit(rgb, std::max(width, round_half_even(rgb.width * k)), std::max(height, round_half_even(rgb.height * k)));
    const int y0 = (big.height - height) / 2, x0 = (big.width - width) / 2;
    Image out{width, height, 3, std::vector<uint8_t>(size_t(width) * size_t(height) * 3)};
    for (int y = 0; y < height; ++y)
        std::copy_n(&big.pixels[(size_t(y0 + y) * size_t(big.width) + size_t(x0)) * 3], size_t(width) * 3,
                    &out.pixels[size_t(y) * size_t(width) * 3]);
    return out;
}

Image centred_on(const Image& rgb, int width, int height, const uint8_t colour[3]) {
    Image canvas{width, height, 3, std::vector<uint8_t>(size_t(width) * size_t(height) * 3)};
    for (size_t p = 0; p < size_t(width) * size_t(height); ++p) std::copy_n(colour, 3, &canvas.pixels[p * 3]);
    const int y0 = (height - rgb.height) / 2, x0 = (width - rgb.width) / 2;
    for (int y = 0; y < rgb.height; ++y)
        std::copy_n(&rgb.pixels[size_t(y) * size_t(rgb.width) * 3], size_t(rgb.width) * 3,
                    &canvas.pixels[(size_t(y0 + y) * size_t(width) + size_t(x0)) * 3]);
    return canvas;
}

void border_median_colour(const Image& rgb, uint8_t out[3]) {
    for (int k = 0; k < 3; ++k) {
        std::vector<int> v;
        auto px = [&](int x, int y) { v.push_back(rgb.pixels[(size_t(y) * size_t(rgb.width) + size_t(x)) * 3 + size_t(k)]); };
        for (int x = 0; x < rgb.width; ++x) px(x, 0);
        for (int x = 0; x < rgb.width; ++x) px(x, rgb.height - 1);
        for (int y = 0; y < rgb.height; ++y) px(0, y);
        for (int y = 0; y < rgb.height; ++y) px(rgb.width - 1, y);
        std::sort(v.begin(), v.end());
        const size_t n = v.size();
        out[k] = uint8_t(n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2);
    }
}

}  // namespace easel
