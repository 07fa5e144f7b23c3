// Reference GEMMs: the definition every fast path is measured against (kernels/matmul.h). Each output is one
// double-precision dot product, plus bias and residual, rounded once to f32. Rows run in parallel only to
// keep the tests quick; the arithmetic per element is a plain loop.
#include <vector>

#include "core/half.h"
#include "core/thread_pool.h"
#include "kernels/matmul.h"

namespace easel {
namespace {

// BF16 mode: both operands are rounded to bf16 before the (exact, in double) products.
float operand(float v, Precision p) { return p == Precision::BF16 ? bf16_to_f32(f32_to_bf16(v)) : v; }

}  // namespace

void linear_f32_ref(const float* x, int64_t m, const float* w_f32, int64_t n, int64_t k, float* y,
                    const LinearOptions& options, Precision precision) {
    const int64_t ldx = options.ldx ? options.ldx : k;
    const int64_t ldy = options.ldy ? options.ldy : n;
    const int64_t ldr = options.ld_residual ? options.ld_residual : n;
    std::vector<float> w(static_cast<size_t>(n * k));
    for (int64_t i = 0; i < n * k; ++i) w[size_t(i)] = operand(w_f32[i], precision);

    parallel_for(m, [&](int64_t begin, int64_t end) {
        std::vector<double> xrow(static_cast<size_t>(k));
        std::vector<float> out(static_cast<size_t>(n));
        for (int64_t i = begin; i < end; ++i) {
            for (int64_t kk = 0; kk < k; ++kk) xrow[size_t(kk)] = operand(x[i * ldx + kk], precision);
            for (int64_t j = 0; j < n; ++j) {
                const float* wr = w.data() + j * k;
                double acc = 0.0;
                for (int64_t kk = 0; kk < k; ++kk) acc += xrow[size_t(kk)] * double(wr[kk]);
                if (options.bias) acc += double(options.bias[j]);
                if (options.residual) acc += double(options.residual[i * ldr + j]);
                out[size_t(j)] = float(acc);
            }
            // Written after the whole row is computed: the residual may be y itself.
            for (int64_t j = 0; j < n; ++j) y[i * ldy + j] = out[size_t(j)];
        }
    });
}

void matmul_f32_ref(const MatmulArgs& g) {
    const int64_t c_bs = g.c_batch_stride ? g.c_batch_stride : g.m * g.n;
    const int64_t c_rs = g.c_row_stride ? g.c_row_stride : g.n;
    parallel_for(g.batch * g.m, [&](int64_t begin, int64_t end) {
        std::vector<double> arow(static_cast<size_t>(g.k));
        for (int64_t bi = begin; bi < end; ++bi) {
            const int64_t b = bi / g.m, i = bi % g.m;
            const float* a = g.a + b * g.a_batch_stride + i * g.a_row_stride;
            const float* bm = g.b + b * g.b_batch_stride;
            float* c = g.c + b * c_bs + i * c_rs;
            for (int64_t kk = 0; kk < g.k; ++kk) arow[size_t(kk)] = operand(a[kk * g.a_col_stride], g.precision);
            for (int64_t j = 0; j < g.n; ++j) {
                double acc = 0.0;
                for (int64_t kk = 0; kk < g.k; ++kk)
                    acc += arow[size_t(kk)] * double(operand(bm[kk * g.b_row_stride + j * g.b_col_stride], g.precision));
                acc *= double(g.alpha);
                if (g.accumulate) acc += double(c[j]);
                c[j] = float(acc);
            }
        }
    });
}

}  // namespace easel
