// Reference normalisations: two-pass mean and biased variance in double, as torch.nn.GroupNorm/LayerNorm
// define them.
#include <cmath>

#include "kernels/norm.h"

namespace easel {
namespace {

// Normalises one run of `n` values sharing mean/variance; gamma/beta index by channel = i / per_channel.
void normalize_run(const float* x, float* y, size_t n, size_t per_channel, const float* gamma, const float* beta,
                   double eps, bool fuse_silu) {
    double sum = 0.0;
    for (size_t i = 0; i < n; ++i) sum += x[i];
    const double mean = sum / double(n);
    double sq = 0.0;
    for (size_t i = 0; i < n; ++i) sq += (x[i] - mean) * (x[i] - mean);
    const double rstd = 1.0 / std::sqrt(sq / double(n) + eps);
    for (size_t i = 0; i < n; ++i) {
        const size_t c = i / per_channel;
        double v = (x[i] - mean) * rstd;
        if (gamma) v *= gamma[c];
        if (beta) v += beta[c];
        if (fuse_silu) v = v / (1.0 + std::exp(-v));
        y[i] = float(v);
    }
}

}  // namespace

void group_norm_f32_ref(const float* x, const float* gamma, const float* beta, float* y, const GroupNormShape& s) {
    const size_t cpg = size_t(s.channels / s.groups);
    const size_t group_len = cpg * size_t(s.spatial);
    for (int64_t n = 0; n < s.batch; ++n) {
        for (int64_t g = 0; g < s.groups; ++g) {
            const size_t off = (size_t(n) * size_t(s.groups) + size_t(g)) * group_len;
            const size_t c0 = size_t(g) * cpg;
            normalize_run(x + off, y + off, group_len, size_t(s.spatial), gamma ? gamma + c0 : nullptr,
                          beta ? beta + c0 : nullptr, s.eps, s.fuse_silu);
        }
    }
}

void layer_norm_f32_ref(const float* x, const float* gamma, const float* beta, float* y, size_t rows, size_t dim,
                        float eps) {
    // LayerNorm is a run of `dim` values whose "channel" is the element itself: per_channel = 1.
    for (size_t r = 0; r < rows; ++r) normalize_run(x + r * dim, y + r * dim, dim, 1, gamma, beta, eps, false);
}

void rms_norm_f32_ref(const float* x, const float* gamma, float* y, size_t rows, size_t dim, float eps) {
    for (size_t r = 0; r < rows; ++r) {
        const float* xr = x + r * dim;
        float* yr = y + r * dim;
        double sq = 0.0;
        for (size_t i = 0; i < dim; ++i) sq += double(xr[i]) * xr[i];
        const double rstd = 1.0 / std::sqrt(sq / double(dim) + double(eps));
        for (size_t i = 0; i < dim; ++i) yr[i] = float(double(xr[i]) * rstd * (gamma ? double(gamma[i]) : 1.0));
    }
}

}  // namespace easel
