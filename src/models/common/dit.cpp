#include "models/common/dit.h"

#include "kernels/norm.h"

namespace easel {

Tensor modulated_norm(const Ctx& c, const Tensor& x, const Tensor& mod, int shift_chunk, int scale_chunk) {
    const int64_t N = x.size(0), T = x.size(1), D = x.size(2), K = mod.size(1);
    EASEL_ASSERT(mod.size(0) == N && K >= D * (std::max(shift_chunk, scale_chunk) + 1), "modulated_norm: mod too narrow");
    Tensor y = c.empty(x.shape());
    std::vector<float> gamma(size_t(D), 0.0f);
    for (int64_t n = 0; n < N; ++n) {
        const float* m = mod.data<float>() + n * K;
        for (int64_t d = 0; d < D; ++d) gamma[size_t(d)] = 1.0f + m[scale_chunk * D + d];
        layer_norm_f32(x.data<float>() + n * T * D, gamma.data(), m + shift_chunk * D, y.data<float>() + n * T * D,
                       size_t(T), size_t(D), 1e-6f);
    }
    return y;
}

void gated_add(Tensor& x, const Tensor& y, const Tensor& mod, int chunk) {
    const int64_t N = x.size(0), T = x.size(1), D = x.size(2), K = mod.size(1);
    for (int64_t n = 0; n < N; ++n) {
        const float* g = mod.data<float>() + n * K + chunk * D;
        float* xp = x.data<float>() + n * T * D;
        const float* yp = y.data<float>() + n * T * D;
        for (int64_t i = 0; i < T; ++i)
            for (int64_t d = 0; d < D; ++d) xp[i * D + d] += g[d] * yp[i * D + d];
    }
}

GeluFeedForward GeluFeedForward::declare(const ParamScope& s, int64_t dim, int64_t mult) {
    return {Linear::declare(s / "net" / 0 / "proj", dim, mult * dim), Linear::declare(s / "net" / 2, mult * dim, dim)};
}

}  // namespace easel
