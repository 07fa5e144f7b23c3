// Reference conv2d: the definition (kernels/conv2d.h). Each output is a double-precision sum over the
// receptive field, plus bias and residual, rounded once to f32; out-of-image taps are zeros. Output rows run in
// parallel only to keep the tests quick.
#include <vector>

#include <fmt/format.h>

#include "core/half.h"
#include "core/thread_pool.h"
#include "kernels/conv2d.h"

namespace easel {

Result<std::pair<int64_t, int64_t>> conv2d_output_hw(int64_t h, int64_t w, int64_t kh, int64_t kw,
                                                     const Conv2dOptions& o) {
    if (o.stride < 1) return Error::invalid_argument(fmt::format("conv2d stride must be >= 1, got {}", o.stride));
    if (o.padding < 0 || o.extra_pad_bottom < 0 || o.extra_pad_right < 0)
        return Error::invalid_argument(fmt::format("conv2d padding must be >= 0, got {} (+{} bottom, +{} right)",
                                                   o.padding, o.extra_pad_bottom, o.extra_pad_right));
    if (h <= 0 || w <= 0 || kh <= 0 || kw <= 0)
        return Error::invalid_argument(fmt::format("conv2d sizes must be positive: input {}x{}, kernel {}x{}", h, w, kh, kw));
    const int64_t hp = h + 2 * o.padding + o.extra_pad_bottom, wp = w + 2 * o.padding + o.extra_pad_right;
    if (hp < kh || wp < kw)
        return Error::invalid_argument(
            fmt::format("conv2d input {}x{} (padded {}x{}) is smaller than the {}x{} kernel", h, w, hp, wp, kh, kw));
    return std::pair<int64_t, int64_t>{(hp - kh) / o.stride + 1, (wp - kw) / o.stride + 1};
}


void conv2d_f32_ref(const float* x, int64_t batch, int64_t cin, int64_t h, int64_t w, const float* w_f32,
                    int64_t cout, int64_t kh, int64_t kw, float* y, const Conv2dOptions& o, Precision precision) {
    const auto hw = conv2d_output_hw(h, w, kh, kw, o);
    EASEL_ASSERT(hw.has_value(), "conv2d_f32_ref: " + hw.error().to_string());
    const int64_t ho = hw->first, wo = hw->second;
    auto operand = [&](float v) { return precision == Precision::BF16 ? bf16_to_f32(f32_to_bf16(v)) : v; };

    std::vector<double> wt(static_cast<size_t>(cout * cin * kh * kw));
    for (size_t i = 0; i < wt.size(); ++i) wt[i] = operand(w_f32[i]);

    parallel_for(batch * cout * ho, [&](int64_t begin, int64_t end) {
        std::vector<double> row(static_cast<size_t>(wo));
        for (int64_t r = begin; r < end; ++r) {
            const int64_t n = r / (cout * ho), co = (r / ho) % cout, oy = r % ho;
            for (int64_t ox = 0; ox < wo; ++ox) {
                double acc = 0.0;
                for (int64_t ci = 0; ci < cin; ++ci) {
                    for (int64_t ky = 0; ky < kh; ++ky) {
                        const int64_t iy = oy * o.stride + ky - o.padding;
                        if (iy < 0 || iy >= h) continue;
                        for (int64_t kx = 0; kx < kw; ++kx) {
                            const int64_t ix = ox * o.stride + kx - o.padding;
                            if (ix < 0 || ix >= w) continue;
                            acc += double(operand(x[((n * cin + ci) * h + iy) * w + ix])) *
                                   wt[size_t(((co * cin + ci) * kh + ky) * kw + kx)];
                        }
                    }
                }
                if (o.bias) acc += double(o.bias[co]);
                row[size_t(ox)] = acc;
            }
            // The residual may be y itself: read it for the whole row before writing.
            const int64_t base = ((n * cout + co) * ho + oy) * wo;
            for (int64_t ox = 0; ox < wo; ++ox) {
                const double res = o.residual ? double(o.residual[base + ox]) : 0.0;
                y[base + ox] = float(row[size_t(ox)] + res);
            }
        }
    });
}

}  // namespace easel
