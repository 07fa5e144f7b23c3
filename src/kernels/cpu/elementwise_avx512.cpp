// AVX512 broadcasting add/mul. plan_binary() views the output as [outer, mid, inner] with the smaller operand
// indexed by mid only, which reduces every supported pattern to two loops: vector op vector (inner == 1) and
// vector op scalar. 12 bytes moved per element and one op: memory-bound, split across the thread pool.
#include <immintrin.h>

#include <algorithm>

#include "core/thread_pool.h"
#include "kernels/elementwise.h"

namespace easel {
namespace {

constexpr int64_t kGrain = 32768;  // elements per task

template <BinaryOp Op>
__m512 apply(__m512 a, __m512 b) {
    if constexpr (Op == BinaryOp::Add) return _mm512_add_ps(a, b);
    else return _mm512_mul_ps(a, b);
}

template <BinaryOp Op>
float apply1(float a, float b) {
    if constexpr (Op == BinaryOp::Add) return a + b;
    else return a * b;
}

// y[i] = x[i] op s[i]
template <BinaryOp Op>
void vv(const float* x, const float* s, float* y, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, apply<Op>(_mm512_loadu_ps(x + i), _mm512_loadu_ps(s + i)));
    for (; i < n; ++i) y[i] = apply1<Op>(x[i], s[i]);
}

// y[i] = x[i] op s
template <BinaryOp Op>
void vs(const float* x, float s, float* y, size_t n) {
    const __m512 vsc = _mm512_set1_ps(s);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, apply<Op>(_mm512_loadu_ps(x + i), vsc));
    for (; i < n; ++i) y[i] = apply1<Op>(x[i], s);
}

// The operation is commutative, so "full op small" serves both operand orders.
template <BinaryOp Op>
void run(const float* full, const float* small, float* out, const BinaryPlan& p) {
    const int64_t total = p.outer * p.mid * p.inner;
    if (p.outer == 1 && p.inner == 1) {  // same shape
        parallel_for(total, [&](int64_t b, int64_t e) { vv<Op>(full + b, small + b, out + b, size_t(e - b)); },
                     kGrain);
    } else if (p.mid == 1) {  // scalar
        const float s = small[0];
        parallel_for(total, [&](int64_t b, int64_t e) { vs<Op>(full + b, s, out + b, size_t(e - b)); }, kGrain);
    } else if (p.inner == 1) {  // [mid] repeated over outer rows
        parallel_for(p.outer, [&](int64_t b, int64_t e) {
            for (int64_t o = b; o < e; ++o) vv<Op>(full + o * p.mid, small, out + o * p.mid, size_t(p.mid));
        }, std::max<int64_t>(1, kGrain / p.mid));
    } else {  // one scalar per (outer, mid) row of inner elements
        parallel_for(p.outer * p.mid, [&](int64_t b, int64_t e) {
            for (int64_t r = b; r < e; ++r) vs<Op>(full + r * p.inner, small[r % p.mid], out + r * p.inner, size_t(p.inner));
        }, std::max<int64_t>(1, kGrain / p.inner));
    }
}

}  // namespace

void binary_f32_avx512(BinaryOp op, const float* a, const Shape& sa, const float* b, const Shape& sb, float* out) {
    const BinaryPlan p = plan_binary(sa, sb);
    if (p.kind == BinaryPlan::Kind::General) return binary_f32_ref(op, a, sa, b, sb, out);
    const float* full = p.small_is_a ? b : a;
    const float* small = p.small_is_a ? a : b;
    if (op == BinaryOp::Add) run<BinaryOp::Add>(full, small, out, p);
    else run<BinaryOp::Mul>(full, small, out, p);
}

}  // namespace easel
