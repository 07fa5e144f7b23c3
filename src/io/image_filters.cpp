#include "io/image_filters.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <vector>

namespace easel {

namespace {

constexpr int kShift = 15;
// tan(22.5 deg) in 15-bit fixed point: (int)(0.41421356... * 2^15 + 0.5).
constexpr int kTan22 = 13573;

// Sobel, aperture 3, int16, BORDER_REPLICATE: dx = [-1 0 1] x [1 2 1]^T, dy its transpose. Per channel.
void sobel(const Image& img, int cn, std::vector<int16_t>& dx, std::vector<int16_t>& dy) {
    const int W = img.width, H = img.height, stride = img.channels;
    auto at = [&](int y, int x, int c) -> int {
        y = std::clamp(y, 0, H - 1);
        x = std::clamp(x, 0, W - 1);
        return img.pixels[(size_t(y) * size_t(W) + size_t(x)) * size_t(stride) + size_t(c)];
    };
    dx.assign(size_t(W) * size_t(H) * size_t(cn), 0);
    dy.assign(dx.size(), 0);
    for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x)
            for (int c = 0; c < cn; ++c) {
                const int gx = (at(y - 1, x + 1, c) - at(y - 1, x - 1, c)) + 2 * (at(y, x + 1, c) - at(y, x - 1, c)) +
                               (at(y + 1, x + 1, c) - at(y + 1, x - 1, c));
                const int gy = (at(y + 1, x - 1, c) - at(y - 1, x - 1, c)) + 2 * (at(y + 1, x, c) - at(y - 1, x, c)) +
                               (at(y + 1, x + 1, c) - at(y - 1, x + 1, c));
                const size_t i = (size_t(y) * size_t(W) + size_t(x)) * size_t(cn) + size_t(c);
                dx[i] = int16_t(gx);
                dy[i] = int16_t(gy);
            }
}

}  // namespace

Image canny(const Image& img, double low_thresh, double high_thresh, bool l2) {
    const int W = img.width, H = img.height;
    const int cn = img.channels >= 3 ? 3 : 1;
    Image out;
    out.width = W;
    out.height = H;
    out.channels = 1;
    out.pixels.assign(size_t(W) * size_t(H), 0);
    if (W < 1 || H < 1) return out;
    if (low_thresh > high_thresh) std::swap(low_thresh, high_thresh);
    if (l2) {
        low_thresh = std::min(32767.0, low_thresh);
        high_thresh = std::min(32767.0, high_thresh);
        if (low_thresh > 0) low_thresh *= low_thresh;
        if (high_thresh > 0) high_thresh *= high_thresh;
    }
    const int low = int(std::floor(low_thresh)), high = int(std::floor(high_thresh));

    std::vector<int16_t> dxs, dys;
    sobel(img, cn, dxs, dys);
    // Per pixel: the largest channel magnitude and that channel's derivatives; rows padded by one zero column on
    // each side, with a zero row above the first and below the last.
    const int MW = W + 2;
    std::vector<int> mag(size_t(MW) * size_t(H + 2), 0);
    std::vector<int16_t> gx(size_t(W) * size_t(H)), gy(size_t(W) * size_t(H));
    for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x) {
            const size_t p = size_t(y) * size_t(W) + size_t(x);
            int best = -1, bc = 0;
            for (int c = 0; c < cn; ++c) {
                const int a = dxs[p * size_t(cn) + size_t(c)], b = dys[p * size_t(cn) + size_t(c)];
                const int m = l2 ? a * a + b * b : std::abs(a) + std::abs(b);
                if (m > best) best = m, bc = c;
            }
            mag[size_t(y + 1) * size_t(MW) + size_t(x + 1)] = best;
            gx[p] = dxs[p * size_t(cn) + size_t(bc)];
            gy[p] = dys[p * size_t(cn) + size_t(bc)];
        }

    // The map: 1 = not an edge, 0 = maybe (a local maximum above low), 2 = an edge; a border of 1s around it.
    const int mapstep = W + 2;
    std::vector<uint8_t> map(size_t(mapstep) * size_t(H + 2), 1);
    std::vector<int> stack;
    for (int y = 0; y < H; ++y) {
        const int* mp = &mag[size_t(y) * size_t(MW) + 1];      // the row above
        const int* mc = &mag[size_t(y + 1) * size_t(MW) + 1];  // this row
        const int* mn = &mag[size_t(y + 2) * size_t(MW) + 1];  // the row below
        uint8_t* row = &map[size_t(y + 1) * size_t(mapstep) + 1];
        bool prev_flag = false;
        for (int x = 0; x < W; ++x) {
            const int m = mc[x];
            bool local_max = false;
            if (m > low) {
                const size_t p = size_t(y) * size_t(W) + size_t(x);
                const int xs = gx[p], ys = gy[p];
                const int ax = std::abs(xs);
                const int64_t ay = int64_t(std::abs(ys)) << kShift;
                const int64_t tg22x = int64_t(ax) * kTan22;
                if (ay < tg22x) {
                    local_max = m > mc[x - 1] && m >= mc[x + 1];
                } else {
                    const int64_t tg67x = tg22x + (int64_t(ax) << (kShift + 1));
                    if (ay > tg67x) {
                        local_max = m > mp[x] && m >= mn[x];
                    } else {
                        const int s = (xs ^ ys) < 0 ? -1 : 1;
                        local_max = m > mp[x - s] && m > mn[x + s];
                    }
                }
            }
            if (!local_max) {
                prev_flag = false;
                row[x] = 1;
                continue;
            }
            if (!prev_flag && m > high && row[x - mapstep] != 2) {
                row[x] = 2;
                stack.push_back((y + 1) * mapstep + x + 1);
                prev_flag = true;
            } else {
                row[x] = 0;
            }
        }
    }
    // Hysteresis: every "maybe" 8-connected to an edge becomes one.
    while (!stack.empty()) {
        const int at = stack.back();
        stack.pop_back();
        for (int d : {-mapstep - 1, -mapstep, -mapstep + 1, -1, 1, mapstep - 1, mapstep, mapstep + 1})
            if (map[size_t(at + d)] == 0) {
                map[size_t(at + d)] = 2;
                stack.push_back(at + d);
            }
    }
    for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x)
            if (map[size_t(y + 1) * size_t(mapstep) + size_t(x + 1)] == 2) out.pixels[size_t(y) * size_t(W) + size_t(x)] = 255;
    return out;
}

std::vector<float> gaussian_blur_f32(const std::vector<float>& img, int w, int h, int c, double sigma) {
    const int n = int(std::lround(sigma * 8 + 1)) | 1, r = n / 2;
    std::vector<double> kd(static_cast<size_t>(n));
    double sum = 0;
    for (int i = 0; i < n; ++i) {
        const double x = i - (n - 1) * 0.5;
        kd[size_t(i)] = std::exp(-0.5 / (sigma * sigma) * x * x);
        sum += kd[size_t(i)];
    }
    std::vector<float> k(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) k[size_t(i)] = float(kd[size_t(i)] / sum);
    auto reflect = [](int p, int len) {  // BORDER_REFLECT_101: gfedcb|abcdefgh|gfedcba
        if (len == 1) return 0;
        while (p < 0 || p >= len) p = p < 0 ? -p : 2 * len - 2 - p;
        return p;
    };
    std::vector<float> tmp(img.size()), out(img.size());
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int ch = 0; ch < c; ++ch) {
                float s = 0;
                for (int i = 0; i < n; ++i)
                    s += k[size_t(i)] * img[(size_t(y) * size_t(w) + size_t(reflect(x + i - r, w))) * size_t(c) + size_t(ch)];
                tmp[(size_t(y) * size_t(w) + size_t(x)) * size_t(c) + size_t(ch)] = s;
            }
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int ch = 0; ch < c; ++ch) {
                float s = 0;
                for (int i = 0; i < n; ++i)
                    s += k[size_t(i)] * tmp[(size_t(reflect(y + i - r, h)) * size_t(w) + size_t(x)) * size_t(c) + size_t(ch)];
                out[(size_t(y) * size_t(w) + size_t(x)) * size_t(c) + size_t(ch)] = s;
            }
    return out;
}

Image scribble_xdog(const Image& rgb, int t) {
    const int w = rgb.width, h = rgb.height;
    std::vector<float> f(rgb.pixels.begin(), rgb.pixels.end());
    const std::vector<float> g1 = gaussian_blur_f32(f, w, h, 3, 0.5), g2 = gaussian_blur_f32(f, w, h, 3, 5.0);
    Image out = rgb;
    for (size_t p = 0; p < size_t(w) * size_t(h); ++p) {
        float m = g2[p * 3] - g1[p * 3];
        for (size_t k = 1; k < 3; ++k) m = std::min(m, g2[p * 3 + k] - g1[p * 3 + k]);
        const uint8_t dog = uint8_t(std::clamp(255.0f - m, 0.0f, 255.0f));  // truncated, as astype(uint8)
        const uint8_t twice = uint8_t(2 * uint8_t(255 - dog));              // uint8 arithmetic: wraps
        const uint8_t v = twice > t ? 255 : 0;
        for (size_t k = 0; k < 3; ++k) out.pixels[p * 3 + k] = v;
    }
    return out;
}

Image threshold(const Image& rgb, int t) {
    Image out = rgb;
    const size_t n = size_t(rgb.width) * size_t(rgb.height);
    for (size_t p = 0; p < n; ++p) {
        const uint8_t* px = &rgb.pixels[p * 3];
        const uint8_t v = std::min({px[0], px[1], px[2]}) > t ? 255 : 0;
        for (size_t k = 0; k < 3; ++k) out.pixels[p * 3 + k] = v;
    }
    return out;
}

Image invert(const Image& img) {
    Image out = img;
    for (uint8_t& v : out.pixels) v = uint8_t(255 - v);
    return out;
}

}  // namespace easel
