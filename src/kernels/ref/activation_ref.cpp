// Reference activations: the definitions, evaluated in double and rounded once.
#include <cmath>

#include "kernels/activation.h"

namespace easel {
namespace {

// 0.5 x (1 + erf(x / sqrt2)) written with erfc: 1 + erf(z) = erfc(-z) keeps full relative precision for
// negative x, where 1 + erf(z) would cancel to 0 even in double.
double gelu_erf(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }

// 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), evaluated through the identity
// 0.5 (1 + tanh(u)) = 1 / (1 + exp(-2u)): the tanh form cancels to 0 in double once u < -19 (x < ~-5.5),
// which would make the reference, not the fast path, the less accurate one.
double gelu_tanh(double x) {
    const double u = std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
    return x / (1.0 + std::exp(-2.0 * u));
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace

void exp_f32_ref(const float* x, float* y, size_t n) {
    for (size_t i = 0; i < n; ++i) y[i] = float(std::exp(double(x[i])));
}

void silu_f32_ref(const float* x, float* y, size_t n) {
    for (size_t i = 0; i < n; ++i) y[i] = float(double(x[i]) * sigmoid(x[i]));
}

void quick_gelu_f32_ref(const float* x, float* y, size_t n) {
    // CLIP's quick_gelu: x * torch.sigmoid(1.702 * x); the float constant 1.702f is what torch multiplies by.
    for (size_t i = 0; i < n; ++i) y[i] = float(double(x[i]) * sigmoid(double(1.702f) * x[i]));
}

void gelu_f32_ref(const float* x, float* y, size_t n, GeluApprox approx) {
    for (size_t i = 0; i < n; ++i) y[i] = float(approx == GeluApprox::Tanh ? gelu_tanh(x[i]) : gelu_erf(x[i]));
}

void geglu_f32_ref(const float* x, float* y, size_t rows, size_t half, GeluApprox approx) {
    for (size_t r = 0; r < rows; ++r) {
        const float* a = x + r * 2 * half;
        const float* g = a + half;
        for (size_t j = 0; j < half; ++j) {
            const double gate = approx == GeluApprox::Tanh ? gelu_tanh(g[j]) : gelu_erf(g[j]);
            y[r * half + j] = float(double(a[j]) * gate);
        }
    }
}

}  // namespace easel
