// Reference softmax: max-subtracted, exp and sum in double.
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/softmax.h"

namespace easel {

void softmax_f32_ref(const float* x, float* y, size_t rows, size_t dim) {
    std::vector<double> e(dim);
    for (size_t r = 0; r < rows; ++r) {
        const float* xr = x + r * dim;
        double m = -std::numeric_limits<double>::infinity();
        for (size_t j = 0; j < dim; ++j) m = std::max(m, double(xr[j]));
        double sum = 0.0;
        for (size_t j = 0; j < dim; ++j) sum += e[j] = std::exp(double(xr[j]) - m);
        for (size_t j = 0; j < dim; ++j) y[r * dim + j] = float(e[j] / sum);
    }
}

}  // namespace easel
