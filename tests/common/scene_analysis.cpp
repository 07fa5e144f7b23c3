#include "common/scene_analysis.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <vector>

namespace easel::testing {

namespace {

struct PaletteEntry {
    const char* name;
    std::array<float, 3> rgb;
};
// tools/train/data.py COLOURS, same order (ties resolve to the first, as numpy's argmin does).
constexpr PaletteEntry kPalette[] = {
    {"red", {220, 30, 30}},     {"green", {30, 160, 50}},  {"blue", {30, 70, 220}},   {"yellow", {240, 220, 40}},
    {"purple", {140, 40, 170}}, {"orange", {250, 140, 20}}, {"white", {245, 245, 245}}, {"black", {15, 15, 15}},
};
struct Centre {
    const char* name;
    double x, y;
};
// data.py POSITION_CENTRES (image-side units), same order.
constexpr Centre kCentres[] = {{"centre", 0.5, 0.5}, {"left", 0.24, 0.5}, {"right", 0.76, 0.5}, {"top", 0.5, 0.24}, {"bottom", 0.5, 0.76}};
constexpr double kSmall = 0.12, kLarge = 0.19;

const PaletteEntry& nearest(const std::array<float, 3>& rgb) {
    const PaletteEntry* best = &kPalette[0];
    float best_d = std::numeric_limits<float>::max();
    for (const PaletteEntry& p : kPalette) {
        float d = 0;
        for (int c = 0; c < 3; ++c) d += (p.rgb[size_t(c)] - rgb[size_t(c)]) * (p.rgb[size_t(c)] - rgb[size_t(c)]);
        if (d < best_d) {
            best_d = d;
            best = &p;
        }
    }
    return *best;
}

// numpy.median: the mean of the two middle values for an even count.
float median(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5f * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

SceneAttributes analyse_scene(const Image& img) {
    const int w = img.width, h = img.height, ch = img.channels;
    auto px = [&](int x, int y, int c) { return float(img.pixels[size_t((y * w + x) * ch + (ch == 1 ? 0 : c))]); };
    SceneAttributes r;
    // Border pixels as data.py concatenates them: top row, bottom row, left column, right column (corners twice).
    std::array<std::vector<float>, 3> border;
    for (int c = 0; c < 3; ++c) {
        for (int x = 0; x < w; ++x) border[size_t(c)].push_back(px(x, 0, c));
        for (int x = 0; x < w; ++x) border[size_t(c)].push_back(px(x, h - 1, c));
        for (int y = 0; y < h; ++y) border[size_t(c)].push_back(px(0, y, c));
        for (int y = 0; y < h; ++y) border[size_t(c)].push_back(px(w - 1, y, c));
    }
    const std::array<float, 3> bg_rgb{median(border[0]), median(border[1]), median(border[2])};
    const PaletteEntry& bg = nearest(bg_rgb);
    r.background = bg.name;

    std::array<std::vector<float>, 3> fg;
    double sx = 0, sy = 0;
    int n = 0, x0 = w, x1 = -1, y0 = h, y1 = -1;
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            float d = 0;
            for (int c = 0; c < 3; ++c) d += (px(x, y, c) - bg.rgb[size_t(c)]) * (px(x, y, c) - bg.rgb[size_t(c)]);
            if (std::sqrt(d) <= 60.0f) continue;
            for (int c = 0; c < 3; ++c) fg[size_t(c)].push_back(px(x, y, c));
            sx += x;
            sy += y;
            ++n;
            x0 = std::min(x0, x);
            x1 = std::max(x1, x);
            y0 = std::min(y0, y);
            y1 = std::max(y1, y);
        }
    if (n < 3) return r;
    r.colour = nearest({median(fg[0]), median(fg[1]), median(fg[2])}).name;
    const double cx = (sx / n + 0.5) / w, cy = (sy / n + 0.5) / h;
    double best = std::numeric_limits<double>::max();
    for (const Centre& c : kCentres) {
        const double d = (c.x - cx) * (c.x - cx) + (c.y - cy) * (c.y - cy);
        if (d < best) {
            best = d;
            r.position = c.name;
        }
    }
    const int bw = x1 - x0 + 1, bh = y1 - y0 + 1;
    const double extent = std::max(bw, bh) / (2.0 * w);
    r.size = extent < (kSmall + kLarge) / 2 ? "small" : "large";
    const double fill = double(n) / double(bw * bh);
    r.shape = fill < 0.64 ? "triangle" : (fill < 0.89 ? "circle" : "square");
    return r;
}

}  // namespace easel::testing
