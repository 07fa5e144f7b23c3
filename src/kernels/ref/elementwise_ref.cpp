// Reference broadcasting add/mul and concat, plus the shape rules every variant shares (broadcast_shapes,
// plan_binary, concat_shape).
#include <algorithm>
#include <array>
#include <cstring>

#include <fmt/format.h>

#include "kernels/elementwise.h"

namespace easel {
namespace {

// `s` padded on the left with 1s to `rank` dims.
std::array<int64_t, kMaxRank> aligned_dims(const Shape& s, int rank) {
    std::array<int64_t, kMaxRank> d;
    d.fill(1);
    for (int i = 0; i < s.rank(); ++i) d[size_t(rank - s.rank() + i)] = s[i];
    return d;
}

// Element strides of a contiguous `s` viewed at the output's rank, 0 along broadcast dims.
std::array<int64_t, kMaxRank> broadcast_strides(const Shape& s, const Shape& out) {
    const int rank = out.rank();
    const auto d = aligned_dims(s, rank);
    std::array<int64_t, kMaxRank> st{};
    int64_t step = 1;
    for (int i = rank - 1; i >= 0; --i) {
        st[size_t(i)] = d[size_t(i)] == 1 ? 0 : step;
        step *= d[size_t(i)];
    }
    return st;
}

float apply(BinaryOp op, float a, float b) { return op == BinaryOp::Add ? a + b : a * b; }

// `small` spans one contiguous run of the output's non-1 dims and is 1 elsewhere; `full` has the output's
// shape. Fills outer/mid/inner; false if `small` is not of that form.
bool blocks_view(const Shape& full, const Shape& small, const Shape& out, BinaryPlan& plan) {
    const int rank = out.rank();
    const auto f = aligned_dims(full, rank), s = aligned_dims(small, rank);
    for (int i = 0; i < rank; ++i)
        if (f[size_t(i)] != out[i]) return false;
    // Phase 0: leading dims where small is 1 (outer); 1: dims small shares (mid); 2: trailing 1s (inner).
    int phase = 0;
    plan.outer = plan.mid = plan.inner = 1;
    for (int i = 0; i < rank; ++i) {
        const int64_t o = out[i];
        if (o == 1) continue;  // a size-1 output dim belongs to any phase
        const bool shared = s[size_t(i)] == o;
        if (phase == 0 && shared) phase = 1;
        if (phase == 1 && !shared) phase = 2;
        if (phase == 2 && shared) return false;
        (phase == 0 ? plan.outer : phase == 1 ? plan.mid : plan.inner) *= o;
    }
    plan.kind = BinaryPlan::Kind::Blocks;
    return true;
}

}  // namespace

Result<Shape> broadcast_shapes(const Shape& a, const Shape& b) {
    const int rank = std::max(a.rank(), b.rank());
    const auto da = aligned_dims(a, rank), db = aligned_dims(b, rank);
    Shape out;
    for (int i = 0; i < rank; ++i) {
        const int64_t x = da[size_t(i)], y = db[size_t(i)];
        if (x != y && x != 1 && y != 1)
            return Error::invalid_argument(fmt::format("shapes {} and {} do not broadcast: dim {} is {} vs {} "
                                                       "(each pair of dims must be equal or one of them 1)",
                                                       a.to_string(), b.to_string(), i - rank, x, y));
        out.push_back(x == 1 ? y : x);
    }
    return out;
}

BinaryPlan plan_binary(const Shape& sa, const Shape& sb) {
    BinaryPlan plan;
    auto out = broadcast_shapes(sa, sb);
    EASEL_ASSERT(out.has_value(), out.error().to_string());
    if (blocks_view(sa, sb, *out, plan)) return plan;
    if (blocks_view(sb, sa, *out, plan)) {
        plan.small_is_a = true;
        return plan;
    }
    plan = BinaryPlan{};
    return plan;
}

void binary_f32_ref(BinaryOp op, const float* a, const Shape& sa, const float* b, const Shape& sb, float* out) {
    auto out_shape = broadcast_shapes(sa, sb);
    EASEL_ASSERT(out_shape.has_value(), out_shape.error().to_string());
    const Shape& os = *out_shape;
    const int rank = os.rank();
    const auto st_a = broadcast_strides(sa, os), st_b = broadcast_strides(sb, os);
    std::array<int64_t, kMaxRank> idx{};
    const int64_t n = os.numel();
    int64_t ia = 0, ib = 0;
    for (int64_t i = 0; i < n; ++i) {
        out[i] = apply(op, a[ia], b[ib]);
        // Odometer increment of the output index, updating both input offsets.
        for (int d = rank - 1; d >= 0; --d) {
            const size_t u = size_t(d);
            if (++idx[u] < os[d]) {
                ia += st_a[u];
                ib += st_b[u];
                break;
            }
            ia -= st_a[u] * (os[d] - 1);
            ib -= st_b[u] * (os[d] - 1);
            idx[u] = 0;
        }
    }
}

Result<Shape> concat_shape(const std::vector<ConcatPart>& parts, int dim) {
    if (parts.empty()) return Error::invalid_argument("concat of no tensors");
    const Shape& first = parts[0].shape;
    const int rank = first.rank();
    const int d = dim < 0 ? dim + rank : dim;
    if (d < 0 || d >= rank)
        return Error::invalid_argument(fmt::format("concat dim {} is out of range for rank {}", dim, rank));
    Shape out = first;
    out[d] = 0;
    for (size_t p = 0; p < parts.size(); ++p) {
        const Shape& s = parts[p].shape;
        if (s.rank() != rank)
            return Error::invalid_argument(
                fmt::format("concat: part {} has shape {}, rank {} expected", p, s.to_string(), rank));
        for (int i = 0; i < rank; ++i)
            if (i != d && s[i] != first[i])
                return Error::invalid_argument(fmt::format("concat along dim {}: part {} has shape {} but part 0 has "
                                                           "{}; all dims but {} must match",
                                                           d, p, s.to_string(), first.to_string(), d));
        out[d] += s[d];
    }
    return out;
}

void concat_f32_ref(const std::vector<ConcatPart>& parts, int dim, float* out) {
    auto out_shape = concat_shape(parts, dim);
    EASEL_ASSERT(out_shape.has_value(), out_shape.error().to_string());
    const Shape& os = *out_shape;
    const int d = dim < 0 ? dim + os.rank() : dim;
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < d; ++i) outer *= os[i];
    for (int i = d + 1; i < os.rank(); ++i) inner *= os[i];
    // Element by element: out[o, offset + j, i] = part[o, j, i].
    int64_t offset = 0;
    for (const ConcatPart& part : parts) {
        const int64_t len = part.shape[d];
        for (int64_t o = 0; o < outer; ++o)
            for (int64_t j = 0; j < len; ++j)
                for (int64_t i = 0; i < inner; ++i)
                    out[(o * os[d] + offset + j) * inner + i] = part.data[(o * len + j) * inner + i];
        offset += len;
    }
}

}  // namespace easel
